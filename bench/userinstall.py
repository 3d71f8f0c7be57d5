"""The venvstacks users run: a regular (non-editable) install of this checkout.

The checkout's `.venv` holds venvstacks as an editable install, whose import finder costs
every start-up about 9 ms that a `pip install` never pays, so start-up figures taken with it
are not what users see. `user_install()` builds a wheel of this checkout (from a copy of its
sources, so no `build/` folder appears in the repository), installs it with pip into a
throwaway venv in the bench cache (`user-venv`), and rebuilds it only when the sources
changed (their hash is kept beside the venv). pip byte-compiles what it installs, as for a
user; that venv's commands run without the bench's `PYTHONPYCACHEPREFIX`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from benchlib import VENV_DIR, BenchError, run_ok
from cachedir import CACHE_DIR, ROOT

#: What a wheel is built from: the package, its docs (installed with it) and the project file.
WHEEL_SOURCES = ("venvstacks", "docs", "pyproject.toml", "README.md")
USER_VENV = CACHE_DIR / "user-venv"
SOURCE_STAMP = "venvstacks-source.sha256"


@dataclass(frozen=True)
class Install:
    """One installation of venvstacks that a benchmark times."""

    label: str
    venv: Path
    #: whether its commands cache bytecode under the bench cache (benchlib.PYCACHE_ENV): the
    #: editable install's modules are compiled nowhere else when PYTHONDONTWRITEBYTECODE is set
    pycache_prefix: bool

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def venvstacks(self) -> Path:
        return self.venv / "bin" / "venvstacks"

    @property
    def doit(self) -> Path:
        return self.venv / "bin" / "doit"


EDITABLE = Install("editable", VENV_DIR, pycache_prefix=True)
PIP_INSTALLED = Install("pip install", USER_VENV, pycache_prefix=False)


def source_files() -> list[Path]:
    """The checkout's files a wheel is built from (tracked, or new and not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", *WHEEL_SOURCES],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    names = sorted({name for name in os.fsdecode(listed).split("\0") if name})
    return [ROOT / name for name in names if (ROOT / name).is_file()]


def source_key(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(os.fsencode(path.relative_to(ROOT)) + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def user_install(base_python: Path) -> tuple[Install, bool]:
    """(the pip-installed venvstacks, whether it was (re)built now) for this checkout's sources;
    BenchError (one line) if it cannot be made.

    *base_python* makes the venv (the project's own Python, so both installs run on one
    interpreter).
    """
    files = source_files()
    key = source_key(files)
    stamp = USER_VENV / SOURCE_STAMP
    if PIP_INSTALLED.venvstacks.exists() and stamp.is_file() and stamp.read_text().strip() == key:
        return PIP_INSTALLED, False
    wheel = _build_wheel(files, base_python)
    if not PIP_INSTALLED.python.exists():
        run_ok([str(base_python), "-m", "venv", str(USER_VENV)], pycache_prefix=False)
    # run_ok shows pip's output (its warnings about this machine's index settings) only if it fails.
    pip = [str(PIP_INSTALLED.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    run_ok([*pip, str(wheel)], pycache_prefix=False)  # its dependencies, the first time
    # The version number does not change with the sources: put this wheel's files in place.
    run_ok([*pip, "--force-reinstall", "--no-deps", str(wheel)], pycache_prefix=False)
    stamp.write_text(key + "\n")
    return PIP_INSTALLED, True


def _build_wheel(files: list[Path], python: Path) -> Path:
    src, out = CACHE_DIR / "wheel-src", CACHE_DIR / "wheel"
    for folder in (src, out):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    for path in files:
        target = src / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    pip = [str(python), "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps"]
    run_ok([*pip, "--wheel-dir", str(out), str(src)], pycache_prefix=False)
    wheels = sorted(out.glob("venvstacks-*.whl"))
    if len(wheels) != 1:
        raise BenchError(f"pip wheel left {len(wheels)} venvstacks wheels in {out}, expected 1")
    return wheels[0]
