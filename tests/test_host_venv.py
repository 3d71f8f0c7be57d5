"""A host layer's venv is written by hand (no Python started for it): it must hold exactly
what the runtime's own `python -m venv --without-pip --symlinks` leaves, as the install then
keeps it (bin/python linked relatively, activate scripts gone): the same entries, modes and
link targets, and the same pyvenv.cfg but for its informational `command` line.

Checked against every local CPython series found here (3.11 at least; 3.12 and 3.13 when
pyenv or uv has them: 3.13's venv adds a `.gitignore`). Windows venvs are still made by the
runtime's venv module (`--copies`), so there is nothing to compare there.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from venvstacks.layers import crossvenv
from venvstacks.platforms import host_platform
from venvstacks.runtimes.local import LocalSource

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX venvs only")

SERIES = ["3.11", "3.12", "3.13"]
ACTIVATE = {"activate", "activate.csh", "activate.fish", "Activate.ps1"}


def tree(root: Path) -> dict[str, tuple[str, int, str | None]]:
    """Every entry under root: kind, permission bits, link target."""
    entries: dict[str, tuple[str, int, str | None]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = os.lstat(path)
            kind = "link" if stat.S_ISLNK(st.st_mode) else "dir" if stat.S_ISDIR(st.st_mode) else "file"
            link = os.readlink(path) if kind == "link" else None
            entries[path.relative_to(root).as_posix()] = (kind, stat.S_IMODE(st.st_mode), link)
    return entries


def cfg(env: Path) -> list[str]:
    return [line for line in (env / "pyvenv.cfg").read_text().splitlines() if not line.startswith("command")]


@pytest.mark.parametrize("series", SERIES)
def test_the_hand_made_venv_is_what_python_m_venv_leaves(series: str, tmp_path: Path) -> None:
    found = LocalSource().find("cpython", series)
    if found is None:
        pytest.skip(f"no local CPython {series} here")
    runtime_dir, version = Path(found.origin), found.version
    platform = host_platform()

    by_venv = tmp_path / "by-venv"
    python = runtime_dir / platform.runtime_python
    subprocess.run([python, "-Im", "venv", "--without-pip", "--symlinks", by_venv], check=True)
    bindir = by_venv / "bin"
    for name in crossvenv.python_aliases(version):
        (bindir / name).unlink()
    crossvenv.link_python(bindir, python, version)  # as the install did to venv's links
    for name in ACTIVATE:
        (bindir / name).unlink(missing_ok=True)  # as the install removes them

    by_hand = tmp_path / "by-hand"
    crossvenv.create_host_venv(runtime_dir, by_hand, version, platform)

    assert tree(by_hand) == tree(by_venv)
    assert cfg(by_hand) == cfg(by_venv)
    assert not list(tmp_path.glob(".tmp-*"))  # the temporary folder was renamed, nothing left
