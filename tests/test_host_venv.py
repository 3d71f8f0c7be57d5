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
from venvstacks.platforms import PLATFORMS, host_platform
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


@pytest.mark.parametrize("name", ["macosx_arm64", "macosx_x86_64", "linux_aarch64"])
def test_macos_venvs_have_no_lib64_and_linux_ones_do(name: str, tmp_path: Path) -> None:
    """Simulated (no Mac runs here): CPython's venv links lib64 to lib on 64-bit POSIX
    systems other than macOS; the rest of the layout is the same on both."""
    platform = PLATFORMS[name]
    runtime = tmp_path / "runtime"
    (runtime / platform.runtime_python).parent.mkdir(parents=True)
    (runtime / platform.runtime_python).write_bytes(b"")
    env = tmp_path / "env"
    crossvenv.create_host_venv(runtime, env, "3.12.4", platform)
    assert (env / "lib64").is_symlink() == platform.is_linux
    assert (env / "include" / "python3.12").is_dir() and (env / "lib/python3.12/site-packages").is_dir()
    python = runtime / platform.runtime_python
    assert os.readlink(env / "bin" / "python") == os.path.relpath(python, env / "bin")
    assert not (env / ".gitignore").exists()  # 3.13 and later only


def test_a_windows_venv_is_left_to_the_runtimes_venv_module(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--copies"):
        crossvenv.create_host_venv(tmp_path, tmp_path / "env", "3.12.4", PLATFORMS["win_amd64"])
