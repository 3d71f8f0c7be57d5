"""Runtimes made from a CPython already installed on this machine (uv-managed, then pyenv).

The result is the same `install_only` archive as a download (a top-level `python/` folder),
so everything downstream treats it alike. Two things differ and are recorded: the archive is
made here (no sha256 known in advance), and it only runs on machines like this one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from venvstacks.errors import CommandError
from venvstacks.fsutil import sha256_file
from venvstacks.runtimes.pack import pack_prefix
from venvstacks.runtimes.sources import Candidate, version_key, version_matches
from venvstacks.tools import run, uv_bin

_VERSION_DIR = re.compile(r"^\d+\.\d+\.\d+$")
_UV_DIR = re.compile(r"^cpython-(\d+\.\d+\.\d+)-")
_PROBE = (
    "import json, sys; print(json.dumps([sys.implementation.name, "
    "'%d.%d.%d' % sys.version_info[:3], sys.version_info.releaselevel, sys.prefix, "
    "getattr(sys, 'abiflags', '')]))"
)


@dataclass(frozen=True)
class LocalInterpreter:
    version: str  # X.Y.Z, from the folder name; checked by running it before use
    prefix: Path
    kind: str  # "uv" (a python-build-standalone build, relocatable) or "pyenv"


def uv_python_dir() -> Path | None:
    """Where uv keeps its managed Pythons (honours UV_PYTHON_INSTALL_DIR), if uv is here."""
    try:
        uv = uv_bin()
    except (ImportError, FileNotFoundError):
        uv = shutil.which("uv") or ""
    if not uv:
        return None
    try:
        out = run("uv python dir", [uv, "python", "dir"])
    except CommandError:
        return None
    lines = out.strip().splitlines()
    return Path(lines[-1].strip()) if lines else None


def pyenv_root() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def discover() -> list[LocalInterpreter]:
    """Candidate CPython installs, newest first; uv before pyenv for the same version."""
    found: list[LocalInterpreter] = []
    uv_dir = uv_python_dir()
    if uv_dir is not None and uv_dir.is_dir():
        for entry in uv_dir.iterdir():
            # Free-threaded and debug builds are named cpython-3.13.0+freethreaded-...
            m = _UV_DIR.match(entry.name)
            if m and (entry / "bin" / "python3").exists():
                found.append(LocalInterpreter(m.group(1), entry, "uv"))
    versions = pyenv_root() / "versions"
    if versions.is_dir():
        for entry in versions.iterdir():
            # Only plain X.Y.Z: pyenv also holds pypy3.10, miniconda, 3.12-dev, venvs...
            if _VERSION_DIR.match(entry.name) and (entry / "bin" / "python3").exists():
                found.append(LocalInterpreter(entry.name, entry, "pyenv"))
    found.sort(key=lambda i: (version_key(i.version), i.kind == "uv"), reverse=True)
    return found


def is_real_build(interp: LocalInterpreter) -> bool:
    """Is this a standalone CPython X.Y.Z release build living at its own prefix?

    Rules out shims, venvs and symlinks into system Pythons (Debian's /usr/bin/python3 is
    not relocatable), which report another prefix or version when run.
    """
    try:
        out = run(
            f"inspecting {interp.prefix}",
            [interp.prefix / "bin" / "python3", "-I", "-S", "-c", _PROBE],
        )
        name, version, level, prefix, abiflags = json.loads(out.strip().splitlines()[-1])
    except (CommandError, ValueError, IndexError):
        return False
    return (
        name == "cpython"
        and version == interp.version
        and level == "final"
        and "t" not in abiflags
        and os.path.realpath(prefix) == os.path.realpath(interp.prefix)
    )


class LocalSource:
    """A CPython installed on this machine, packaged into an install_only archive."""

    def __init__(self) -> None:
        self._usable: dict[Path, bool] = {}
        self._by_origin: dict[str, LocalInterpreter] = {}
        self._found: list[LocalInterpreter] | None = None

    def _interpreters(self) -> list[LocalInterpreter]:
        if self._found is None:
            self._found = discover()
        return self._found

    def _check(self, interp: LocalInterpreter) -> bool:
        if interp.prefix not in self._usable:
            self._usable[interp.prefix] = is_real_build(interp)
        return self._usable[interp.prefix]

    def find(self, implementation: str, version_request: str) -> Candidate | None:
        if implementation != "cpython":
            return None
        for interp in self._interpreters():
            if version_matches(interp.version, version_request) and self._check(interp):
                self._by_origin[str(interp.prefix)] = interp
                name = f"cpython-{interp.version}-local-{interp.kind}.tar.gz"
                return Candidate("cpython", interp.version, "local", str(interp.prefix), None, name, False)
        return None

    def available(self, implementation: str) -> list[str]:
        if implementation != "cpython":
            return []
        usable = {i.version for i in self._interpreters() if self._check(i)}
        return sorted(usable, key=version_key)

    def fetch(self, candidate: Candidate, dest_archive: Path) -> str:
        interp = self._by_origin[candidate.origin]
        marker = {"made_from": str(interp.prefix), "kind": interp.kind, "version": interp.version}
        pack_prefix(interp.prefix, interp.version, dest_archive, relocate=interp.kind != "uv", marker=marker)
        return sha256_file(dest_archive)
