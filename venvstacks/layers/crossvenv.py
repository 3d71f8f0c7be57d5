"""A layer's virtual environment made without running its Python.

What `python -m venv` would leave for the target, written by hand: `pyvenv.cfg`, the
(empty) site-packages folder and the interpreter. On POSIX that is `bin/python`, a relative
link to the runtime's `bin/python3` (with `python3` and `pythonX.Y` links to it); on
Windows `Scripts/python.exe` and `pythonw.exe`, copies of the venv launchers the runtime
carries (`Lib/venv/scripts/nt/`), as `venv --copies` makes them there. `pyvenv.cfg` and
the links are rewritten by `postinstall.py` on the target, so only their shape matters here.

`create_venv` is the cross-build's; `create_host_venv` is the whole of what
`python -m venv --without-pip --symlinks` leaves on a POSIX build machine (less the activate
scripts, which the install removes anyway), so a host build need not start the runtime's
Python for it: the layer's files, modes and links are the same.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from venvstacks.errors import VenvStacksError
from venvstacks.platforms import Platform, major_minor

# The runtime's venv launchers (Python 3.13 renamed them) and their names in a venv.
_LAUNCHERS = {
    "python.exe": ("venvlauncher.exe", "python.exe"),
    "pythonw.exe": ("venvwlauncher.exe", "pythonw.exe"),
}
LAUNCHER_DIR = "Lib/venv/scripts/nt"


def python_aliases(py_version: str) -> tuple[str, ...]:
    return ("python", "python3", f"python{major_minor(py_version)}")


def link_python(bindir: Path, base_python: Path, py_version: str) -> None:
    """bin/python: a relative link to the runtime's; python3 and pythonX.Y: links to it."""
    python, *aliases = python_aliases(py_version)
    (bindir / python).symlink_to(os.path.relpath(base_python, bindir))
    for alias in aliases:
        (bindir / alias).symlink_to(python)


def create_venv(runtime_dir: Path, env_dir: Path, py_version: str, platform: Platform) -> None:
    """Make `env_dir` a venv of the runtime in `runtime_dir` for `platform`; it appears whole."""
    with _whole(env_dir) as tmp:
        (tmp / platform.site_packages(py_version)).mkdir(parents=True)
        (tmp / platform.scripts_dir).mkdir(parents=True, exist_ok=True)
        if platform.is_windows:
            _copy_launchers(runtime_dir, tmp / platform.scripts_dir)
        else:
            link_python(tmp / platform.scripts_dir, runtime_dir / platform.runtime_python, py_version)
        _write_cfg(tmp, _cfg_lines(runtime_dir, py_version, platform))


def create_host_venv(runtime_dir: Path, env_dir: Path, py_version: str, platform: Platform) -> None:
    """What the runtime's `python -m venv --without-pip --symlinks` makes on this POSIX
    machine (its venv scheme: `include/pythonX.Y`, `lib64` linked to `lib` on Linux, a
    `.gitignore` from Python 3.13 on), with `bin/python` linked relatively as deployed."""
    if platform.is_windows:
        raise ValueError("a Windows venv is made by the runtime's own venv module (--copies)")
    base_python = runtime_dir / platform.runtime_python
    with _whole(env_dir) as tmp:
        (tmp / platform.site_packages(py_version)).mkdir(parents=True)
        (tmp / "include" / f"python{major_minor(py_version)}").mkdir(parents=True)
        if platform.is_linux:
            (tmp / "lib64").symlink_to("lib")
        (tmp / platform.scripts_dir).mkdir()
        link_python(tmp / platform.scripts_dir, base_python, py_version)
        executable = f"executable = {os.path.realpath(base_python)}"
        _write_cfg(tmp, [*_cfg_lines(runtime_dir, py_version, platform), executable])
        if _version_tuple(py_version) >= (3, 13):
            text = "# Created by venv; see https://docs.python.org/3/library/venv.html\n*\n"
            (tmp / ".gitignore").write_text(text, encoding="utf-8")


@contextlib.contextmanager
def _whole(env_dir: Path) -> Iterator[Path]:
    """A temporary folder beside `env_dir`, renamed to it once filled (removed on failure)."""
    tmp = env_dir.with_name(f".tmp-{env_dir.name}-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        os.replace(tmp, env_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _cfg_lines(runtime_dir: Path, py_version: str, platform: Platform) -> list[str]:
    return [
        f"home = {runtime_dir / platform.runtime_python.parent}",
        "include-system-site-packages = false",
        f"version = {py_version}",
    ]


def _write_cfg(env_dir: Path, lines: list[str]) -> None:
    (env_dir / "pyvenv.cfg").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _version_tuple(py_version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in major_minor(py_version).split("."))


# Where wheels' `.data/data/` files go in a venv is its root (`Library/bin/*.dll` on Windows,
# `share/...`); uv's --target puts them in site-packages instead. These are moved out.
DATA_ROOTS = ("Library", "share", "etc")


def move_data_files(env_dir: Path, site_dir: PurePosixPath) -> None:
    """Tidy what uv's --target left: move wheels' data files from site-packages to the
    layer's root, as a venv has them, and make their RECORD entries say so (relative to
    site-packages, as installers write); drop uv's lock file."""
    site = env_dir / site_dir
    (site / ".lock").unlink(missing_ok=True)  # uv's own, for installs into the same --target
    moved = [name for name in DATA_ROOTS if (site / name).is_dir()]
    for name in moved:
        shutil.copytree(site / name, env_dir / name, symlinks=True, dirs_exist_ok=True)
        shutil.rmtree(site / name)
    if not moved:
        return
    up = "../" * len(site_dir.parts)
    for record in site.glob("*.dist-info/RECORD"):
        lines = record.read_text(encoding="utf-8").splitlines(keepends=True)
        fixed = [up + line if line.startswith(tuple(f"{n}/" for n in moved)) else line for line in lines]
        if fixed != lines:
            record.write_text("".join(fixed), encoding="utf-8")


def _copy_launchers(runtime_dir: Path, scripts: Path) -> None:
    for name, candidates in _LAUNCHERS.items():
        source = next((s for c in candidates if (s := runtime_dir / LAUNCHER_DIR / c).is_file()), None)
        if source is not None:
            shutil.copyfile(source, scripts / name)
    if not (scripts / "python.exe").is_file():
        raise VenvStacksError(
            f"{runtime_dir.name}: the runtime has no venv launcher ({LAUNCHER_DIR}/python.exe or "
            "venvlauncher.exe); is it a python-build-standalone install_only archive for Windows?"
        )
