"""Export, publish and deploy a real (small) built stack."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.stacks import Stack

# Each test builds a stack end to end through the CLI, in subprocesses.
pytestmark = pytest.mark.slow

ORDER = ("cpython-3.11", "framework-web", "app-hello")


def _archives(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()
    }


def _run_hello(folder: Path) -> str:
    """Run the app from a deployed or exported folder with an empty environment."""
    python = folder / "app-hello" / "bin" / "python"
    proc = subprocess.run(["env", "-i", python, "-m", "hello"], capture_output=True, text=True, check=True)
    return proc.stdout


def test_publish_from_two_fresh_build_folders_is_identical(stack: Stack) -> None:
    for n in (1, 2):
        stack.venvstacks("publish", str(stack.spec), "--build-dir", f"_build{n}", "--output-dir", f"out{n}",
                         "--format", "tar.gz", "-j", "2")  # fmt: skip
    first, second = _archives(stack.root / "out1"), _archives(stack.root / "out2")
    archives = ["app-hello.tar.gz", "cpython-3.11.tar.gz", "framework-web.tar.gz"]
    assert sorted(first) == sorted(archives + [f"{name}.cdx.json" for name in archives])
    assert first == second  # the archives and their SBOMs
    meta = json.loads((stack.root / "out1/__venvstacks__/venvstacks.json").read_text())
    app = meta["layers"]["applications"][0]
    assert app["archive_hashes"]["sha256"] == first["app-hello.tar.gz"]
    assert app["required_layers"] == ["framework-web"] and app["runtime_layer"] == "cpython-3.11"
    assert app["app_launch_module"] == "hello"
    # unchanged inputs: nothing is archived again
    run = stack.venvstacks("publish", str(stack.spec), "--build-dir", "_build1", "--output-dir", "out1",
                           "--format", "tar.gz")  # fmt: skip
    assert not {t for t in run.ran if t.startswith("publish:")}


def test_deployed_stack_runs_after_the_folder_moves(stack: Stack, tmp_path: Path) -> None:
    stack.venvstacks("publish", str(stack.spec), "--format", "tar.zst", "--output-dir", "out")
    target = tmp_path / "deployed"
    run = stack.venvstacks("deploy", str(stack.root / "out"), str(target))
    assert f"run app-hello with: {target}/app-hello/bin/python -m hello\n" in run.out  # stdout
    moved = tmp_path / "moved"
    shutil.move(target, moved)
    runtime = moved / "cpython-3.11" / "bin" / "python3"
    for layer in ORDER:
        subprocess.run([runtime, moved / layer / "postinstall.py"], check=True)
    out = _run_hello(moved)
    assert f"idna from {moved}/framework-web/lib/python3.11/site-packages/idna/__init__.py" in out
    assert "hello from the app layer" in out


def test_local_export_runs_and_skips_unchanged_layers(stack: Stack) -> None:
    stack.venvstacks("local-export", str(stack.spec))
    export = stack.root / "_export"
    out = _run_hello(export)
    assert f"idna from {export}/framework-web/" in out
    assert (
        not (export / "app-hello/lib/python3.11/site-packages/sitecustomize.py").read_text().count("_build")
    )
    assert not (export / "app-hello/share/venv/metadata/build-state").exists()
    again = stack.venvstacks("local-export", str(stack.spec))
    assert not {t for t in again.ran if t.startswith("export:")}
