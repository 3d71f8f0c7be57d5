#!/usr/bin/env python3
"""Bootstrap and run the project: `python3 dev.py sample` or `python3 dev.py test`.

Creates `.venv` (once) with the project, its test tools and its docs tool (MkDocs) installed
from the package index, as pyproject.toml's `test` and `docs` extras say, then runs inside
it. Needs only Python >= 3.11 with venv and pip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed-from"


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 (dev.py may be run by any python3)
        sys.exit("error: venvstacks needs Python >= 3.11 to run dev.py")
    wanted = (ROOT / "pyproject.toml").read_text()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    print(f"setting up {VENV} ...", flush=True)
    if not (BIN / "python").exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-e", f"{ROOT}[test,docs]"], check=True)
    STAMP.write_text(wanted)


def run(*cmd: str) -> None:
    env = dict(os.environ, UV_PYTHON_DOWNLOADS="never")
    print("$ " + " ".join(cmd), flush=True)
    result = subprocess.run(cmd, cwd=ROOT, env=env, check=False)
    if result.returncode != 0:
        sys.exit(result.returncode)


def sample() -> None:
    stack = ROOT / "stacks" / "sample"
    run(str(BIN / "venvstacks"), "build", str(stack))
    for app in sorted((stack / "_build").glob("app-*")):
        config = app / "share" / "venv" / "metadata" / "venvstacks_layer.json"
        import json

        module = json.loads(config.read_text())["launch_module"]
        run("env", "-i", str(app / "bin" / "python"), "-m", module)


def test() -> None:
    run(str(BIN / "ruff"), "check", ".")
    run(str(BIN / "ruff"), "format", "--check", ".")
    run(str(BIN / "mypy"))
    # The documentation site, so that no link or anchor between the pages breaks.
    with tempfile.TemporaryDirectory(prefix="venvstacks-site-") as site:
        run(str(BIN / "mkdocs"), "build", "--strict", "--site-dir", site)
    run(str(BIN / "python"), "-m", "pytest", "-q", *sys.argv[2:])


if __name__ == "__main__":
    commands = {"sample": sample, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: python3 {Path(__file__).name} {{{'|'.join(commands)}}}")
    ensure_venv()
    commands[sys.argv[1]]()
