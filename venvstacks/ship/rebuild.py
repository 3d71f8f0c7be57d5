"""``venvstacks verify --rebuild ARTIFACTS_DIR``: do the published archives come from these sources?

What the stack needs of its folder (its stack file, committed locks, launch and support
modules: ``venvstacks.ship.scratch``; never a build or output folder) is copied into a
scratch folder, and every published layer is built and published there from those locks,
in the published archive format and naming, with the ``venvstacks`` command itself. Each
rebuilt archive's sha256 is then compared with the published one; for an archive that
differs, both are read side by side to name the first member that differs. The scratch
folder is removed afterwards, also on Ctrl-C or SIGTERM.

Layers published on a local runtime (``runtime_portable: false`` in their metadata) were
published with ``--allow-local-runtime``, so their rebuild is too, unless
``--no-allow-local-runtime`` says otherwise.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import IO, cast

from venvstacks.archive.formats import ArchiveFormat
from venvstacks.archive.unpack import open_tar
from venvstacks.errors import VenvStacksError, os_error_line
from venvstacks.fsutil import sha256_file
from venvstacks.platforms import cores
from venvstacks.ship.publish import archive_name
from venvstacks.ship.published_meta import PublishedLayer, load_published
from venvstacks.ship.scratch import copy_stack
from venvstacks.tools import stop_group


@dataclass(frozen=True)
class Rebuilt:
    layer_name: str
    published_sha256: str
    rebuilt_sha256: str | None  # None: not rebuilt
    first_difference: str = ""

    @property
    def reproduced(self) -> bool:
        return self.published_sha256 == self.rebuilt_sha256

    def line(self) -> str:
        if self.reproduced:
            return f"reproduced  {self.layer_name} (sha256 {self.published_sha256[:16]}...)"
        if self.rebuilt_sha256 is None:
            return f"DIFFERS     {self.layer_name}: {self.first_difference}"
        return (
            f"DIFFERS     {self.layer_name}: sha256 {self.rebuilt_sha256[:16]}... rebuilt, "
            f"{self.published_sha256[:16]}... published; {self.first_difference}"
        )


# How long the inner run may take to stop its tools and tidy up after SIGTERM, before SIGKILL.
_STOP_GRACE = 30.0


def verify_rebuild(
    artifacts: Path, stack_file: Path, allow_local_runtime: bool | None = None
) -> list[Rebuilt]:
    """Rebuild what ``artifacts`` holds from ``stack_file``'s folder and compare the archives.

    ``allow_local_runtime``: None carries over what the published metadata says.
    """
    stack_file = stack_file.resolve()  # a relative path's parent has no name to copy it under
    if not stack_file.is_file():
        raise VenvStacksError(
            f"--stack {stack_file}: no stack file there; pass the stack the artifacts came from"
        )
    published = load_published(artifacts)
    if not published:
        raise VenvStacksError(f"{artifacts}: publishes no layer")
    allow = _allow_local_runtime(published, allow_local_runtime)
    fmt = ArchiveFormat.from_name(published[0].archive.name)
    try:
        with tempfile.TemporaryDirectory(prefix="venvstacks-rebuild-") as scratch:
            copy = Path(scratch) / (stack_file.parent.name or "stack")
            copied_file, copied = copy_stack(stack_file, copy)
            print(f"rebuilding in {scratch} from a copy of: {', '.join(copied)}", file=sys.stderr)
            out = Path(scratch) / "_artifacts"
            _publish(copied_file, out, fmt, published, allow)
            rebuilt = {la.metadata.layer_name: la for la in load_published(out)}
            return [_compare(la, rebuilt.get(la.metadata.layer_name)) for la in published]
    except OSError as exc:  # the user's disk or folder: one line, not a traceback
        detail = os_error_line(exc) if exc.filename is not None else str(exc)
        raise VenvStacksError(f"verify --rebuild: {detail}") from exc


def _allow_local_runtime(published: Sequence[PublishedLayer], given: bool | None) -> bool:
    local = [str(la.metadata.layer_name) for la in published if la.metadata.runtime_portable is False]
    if local and given is False:
        raise VenvStacksError(
            f"{local[0]} was published on a local runtime (runtime_portable: false in its metadata); "
            "rebuild it with --allow-local-runtime"
        )
    if local and given is None:
        print(
            f"note: {', '.join(local)} published on a local runtime (runtime_portable: false): "
            "rebuilding with --allow-local-runtime, as they were published",
            file=sys.stderr,
        )
    return bool(given) or bool(local)


def _publish(
    spec: Path, out: Path, fmt: ArchiveFormat, layers: Sequence[PublishedLayer], allow_local: bool
) -> None:
    tagged = any(la.archive.name != archive_name(la.install_target, fmt) for la in layers)
    cmd = [sys.executable, "-m", "venvstacks", "publish", str(spec), "--output-dir", str(out)]
    cmd += ["--format", str(fmt), "--tag-outputs" if tagged else "--no-tag-outputs", "-j", str(cores())]
    cmd += ["--allow-local-runtime" if allow_local else "--no-allow-local-runtime"]
    # As published: the archives of a --bytecode publish hold its pycs.
    bytecode = any(la.metadata.bytecode_included is True for la in layers)
    cmd += ["--bytecode" if bytecode else "--no-bytecode"]
    for layer in layers:
        cmd += ["--include", str(layer.metadata.layer_name)]
    # The build's own progress goes to stderr, as it would for `venvstacks publish`. Its own
    # session: on Ctrl-C or SIGTERM, it and its uv processes stop before the scratch goes.
    # Its temporary files (and uv's) go inside the scratch folder, removed with it even if
    # it is killed half-way.
    tmp = out.parent / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    with subprocess.Popen(cmd, stdout=sys.stderr, env=env, start_new_session=True) as proc:
        try:
            code = proc.wait()
        except BaseException:  # Ctrl-C, SIGTERM: the whole session, uv processes included
            # SIGTERM first: the inner run stops its own tools (each in a process group of its
            # own, out of reach of killpg here) and waits for them; a kill at once left them
            # writing into the scratch folder while it was being removed.
            stop_group(proc, grace=_STOP_GRACE)
            raise
    if code != 0:
        raise VenvStacksError(f"rebuilding {spec.parent.name} failed (exit {code}); see above")


def _compare(published: PublishedLayer, rebuilt: PublishedLayer | None) -> Rebuilt:
    name = str(published.metadata.layer_name)
    expected = published.metadata.archive_sha256 or ""
    if rebuilt is None:
        return Rebuilt(name, expected, None, "not rebuilt: not in the stack, or not built on this platform")
    actual = sha256_file(rebuilt.archive)
    if actual == expected:
        return Rebuilt(name, expected, actual)
    if not published.archive.is_file():
        return Rebuilt(name, expected, actual, f"{published.archive} is missing")
    return Rebuilt(name, expected, actual, first_difference(published.archive, rebuilt.archive))


Member = tuple[str, str]  # (name, what it is: type, mode, link target or content hash)


def first_difference(published: Path, rebuilt: Path) -> str:
    """The first member in which two archives of the same format differ, as a phrase."""
    for old, new in zip_longest(_members(published), _members(rebuilt)):
        if old == new:
            continue
        if old is None or (new is not None and new[0] < old[0]):
            return f"first differing member: {new[0]} (only in the rebuilt archive)"
        if new is None or new[0] > old[0]:
            return f"first differing member: {old[0]} (only in the published archive)"
        return f"first differing member: {old[0]} (published {old[1]}, rebuilt {new[1]})"
    return "the members are the same; the archives differ in their headers or compression"


def _members(archive: Path) -> Iterator[Member]:
    fmt = ArchiveFormat.from_name(archive.name)
    if fmt is ArchiveFormat.ZIP:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                with zf.open(info) as data:
                    digest = _sha256(data)
                yield info.filename, f"mode {info.external_attr >> 16:o}, sha256 {digest}"
        return
    with open_tar(archive, fmt) as tf:
        for ti in tf:
            if ti.isreg():
                digest = _sha256(tf.extractfile(ti))
                what = f"file, mode {ti.mode:o}, mtime {ti.mtime}, sha256 {digest}"
            elif ti.issym():
                what = f"link to {ti.linkname!r}"
            else:
                what = f"type {ti.type!r}, mode {ti.mode:o}, mtime {ti.mtime}"
            yield ti.name, what


def _sha256(data: IO[bytes] | None) -> str:
    """The first 12 hex digits of a member's sha256 (enough to tell two members apart)."""
    if data is None:
        return hashlib.sha256(b"").hexdigest()[:12]
    # tarfile and zipfile hand out buffered readers, which file_digest reads with readinto.
    return hashlib.file_digest(cast(io.BufferedIOBase, data), "sha256").hexdigest()[:12]
