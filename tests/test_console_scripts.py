"""Console scripts of installed packages are kept, and run from every place a layer goes:
the build folder, a local export, a deployment, and that deployment moved elsewhere."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.stacks import Stack
from tests.support.wheels import SimpleIndex, make_wheel

TOOL = """
import sys

def main():
    import idna  # from the framework layer below

    print("tool ran on", sys.prefix, "with", idna.__file__)
"""


def _run_tool(layer: Path) -> str:
    proc = subprocess.run(
        ["env", "-i", layer / "bin" / "vstest-tool"], capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


def _ran_in(folder: Path) -> str:
    """What the tool prints when run from the app layer in `folder`, idna beside it."""
    idna = folder / "framework-web" / "lib" / "python3.11" / "site-packages" / "idna" / "__init__.py"
    return f"tool ran on {folder / 'app-hello'} with {idna}"


@pytest.mark.slow
def test_console_scripts_work_after_export_deploy_and_a_move(
    tmp_path: Path, runtime_cache: Path, package_index: SimpleIndex, simple_index: SimpleIndex
) -> None:
    make_wheel(simple_index.root, "vstest-tool", "1.0", body=TOOL, scripts={"vstest-tool": "main"})
    stack = Stack(
        tmp_path / "stack", runtime_cache, package_index.url, app_requirements=["attrs", "vstest-tool"]
    )
    stack.write()
    stack.spec.write_text(stack.spec.read_text() + f'\n[tool.uv]\nextra-index-url = ["{simple_index.url}"]\n')
    stack.build()
    assert _run_tool(stack.build_dir / "app-hello") == _ran_in(stack.build_dir)
    assert not list((stack.build_dir / "app-hello" / "bin").glob("activate*"))  # they name the build folder

    stack.venvstacks("local-export", str(stack.spec))
    assert _run_tool(stack.root / "_export" / "app-hello") == _ran_in(stack.root / "_export")

    stack.venvstacks("publish", str(stack.spec), "--format", "tar.gz")
    target = tmp_path / "deployed"
    stack.venvstacks("deploy", str(stack.root / "_artifacts"), str(target))
    assert _run_tool(target / "app-hello") == _ran_in(target)

    moved = tmp_path / "moved"
    shutil.move(target, moved)
    shutil.rmtree(stack.root)  # nothing of the build may be needed
    for layer in ("cpython-3.11", "framework-web", "app-hello"):  # as docs/deployment.md says
        postinstall = [moved / "cpython-3.11" / "bin" / "python3", moved / layer / "postinstall.py"]
        subprocess.run(postinstall, check=True, capture_output=True)
    assert _run_tool(moved / "app-hello") == _ran_in(moved)
