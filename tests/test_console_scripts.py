"""Console scripts of installed packages are kept, and run from every place a layer goes:
the build folder, a local export, a deployment, and that deployment moved elsewhere."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support.stacks import Stack
from tests.support.wheels import SimpleIndex, make_wheel

TOOL = """
import sys

def main():
    print("tool ran on", sys.prefix)
"""


def _run_tool(layer: Path) -> str:
    proc = subprocess.run(
        ["env", "-i", layer / "bin" / "vstest-tool"], capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


def test_console_scripts_work_after_export_deploy_and_a_move(
    tmp_path: Path, runtime_cache: Path, simple_index: SimpleIndex
) -> None:
    make_wheel(simple_index.root, "vstest-tool", "1.0", body=TOOL, scripts={"vstest-tool": "main"})
    stack = Stack(tmp_path / "stack", runtime_cache, app_requirements=["attrs", "vstest-tool"])
    stack.write()
    stack.spec.write_text(stack.spec.read_text() + f'\n[tool.uv]\nextra-index-url = ["{simple_index.url}"]\n')
    stack.build()
    built = stack.build_dir / "app-hello"
    assert _run_tool(built) == f"tool ran on {built}"
    assert not list((built / "bin").glob("activate*"))  # those name the build folder: dropped

    stack.venvstacks("local-export", str(stack.spec))
    exported = stack.root / "_export" / "app-hello"
    assert _run_tool(exported) == f"tool ran on {exported}"

    stack.venvstacks("publish", str(stack.spec), "--format", "tar.gz")
    target = tmp_path / "deployed"
    stack.venvstacks("deploy", str(stack.root / "_artifacts"), str(target))
    assert _run_tool(target / "app-hello") == f"tool ran on {target / 'app-hello'}"

    moved = tmp_path / "moved"
    shutil.move(target, moved)
    shutil.rmtree(stack.root)  # nothing of the build may be needed
    assert _run_tool(moved / "app-hello") == f"tool ran on {moved / 'app-hello'}"
