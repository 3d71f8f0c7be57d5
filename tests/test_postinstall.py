"""postinstall.py on deployed layers: links, pyvenv.cfg, sitecustomize, byte-compiling."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.layers import (
    CONFIG,
    PY,
    PY_FULL,
    RUNTIME,
    SITE,
    SampleStack,
    run_app,
    sample_stack,
)
from venvstacks.layers.pywrapper import wrapper_script
from venvstacks.platforms import PLATFORMS
from venvstacks.ship.export import POSTINSTALL_SCRIPT, layer_entries, materialise

FW, APP = "framework-fw@2", "app-hello"
TAG = f"cpython-{PY.replace('.', '')}"


@pytest.fixture
def stack(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> SampleStack:
    return sample_stack(tmp_path_factory, tmp_path / "_build")


def unpack_layers(stack: SampleStack, deploy_dir: Path) -> Path:
    """Layers as an archive would unpack them, postinstall not run yet."""
    deploy_dir.mkdir()
    for layer in stack.layers():
        target = layer.metadata.install_target
        materialise(layer_entries(layer.layer_dir, target, layer.config), target, deploy_dir / target)
    return deploy_dir


def postinstall(layer_dir: Path, python: str | Path = sys.executable) -> subprocess.CompletedProcess[str]:
    # From an unrelated folder, with an empty environment: "python postinstall.py".
    cmd = ["env", "-i", str(python), str(layer_dir / "postinstall.py")]
    return subprocess.run(cmd, capture_output=True, text=True, cwd="/")


def postinstall_all(deploy_dir: Path, python: str | Path = sys.executable) -> None:
    for name in (RUNTIME, FW, APP):
        proc = postinstall(deploy_dir / name, python)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""


def test_script_keeps_to_python_3_8_syntax() -> None:
    ast.parse(POSTINSTALL_SCRIPT.read_text(), feature_version=(3, 8))


def test_layers_are_linked_configured_and_compiled(stack: SampleStack, tmp_path: Path) -> None:
    deploy = unpack_layers(stack, tmp_path / "deploy")
    postinstall_all(deploy)
    app = deploy / APP
    assert os.readlink(app / "bin" / "python") == f"../../{RUNTIME}/bin/python3"
    assert os.readlink(app / "bin" / "python3") == "python"
    assert os.readlink(app / "bin" / f"python{PY}") == "python"
    assert (app / "pyvenv.cfg").read_text() == (
        f"home = {deploy}/{RUNTIME}/bin\n"
        "include-system-site-packages = false\n"
        f"version = {PY_FULL}\n"
        f"executable = {deploy}/{RUNTIME}/bin/python3\n"
    )
    sitecustomize = (app / SITE / "sitecustomize.py").read_text().splitlines()
    assert sitecustomize[-3:] == [
        "from site import addsitedir",
        f"addsitedir('{deploy}/{FW}/{SITE}')",
        f"addsitedir('{deploy}/{RUNTIME}/{SITE}')",
    ]
    # the runtime is left as it is, apart from its byte-code
    runtime = deploy / RUNTIME
    assert not (runtime / "pyvenv.cfg").exists()
    assert not (runtime / SITE / "sitecustomize.py").exists()
    assert (runtime / f"lib/python{PY}/__pycache__/os.{TAG}.pyc").is_file()
    assert (app / SITE / "__pycache__" / f"hello_app.{TAG}.pyc").is_file()
    assert (deploy / FW / SITE / "fwpkg" / "__pycache__" / f"__init__.{TAG}.pyc").is_file()

    result = run_app(app)
    assert result["values"] == ["framework", "pth", "runtime", "support"]
    assert result["fwpkg"] == f"{deploy}/{FW}/{SITE}/fwpkg/__init__.py"
    assert result["prefix"] == str(app)
    assert result["base_prefix"] == str(runtime)


def test_rerun_after_moving_the_deployment(stack: SampleStack, tmp_path: Path) -> None:
    deploy = unpack_layers(stack, tmp_path / "deploy")
    postinstall_all(deploy)
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    deploy.rename(moved)
    postinstall_all(moved, moved / RUNTIME / "bin" / "python3")
    result = run_app(moved / APP)
    assert result["values"] == ["framework", "pth", "runtime", "support"]
    assert result["fwpkg"] == f"{moved}/{FW}/{SITE}/fwpkg/__init__.py"
    assert not [p for p in result["path"] if str(deploy) in p]
    for written in (moved / APP / "pyvenv.cfg", moved / APP / SITE / "sitecustomize.py"):
        assert str(deploy) not in written.read_text()


def test_symlinked_paths_are_kept_as_given(stack: SampleStack, tmp_path: Path) -> None:
    deploy = unpack_layers(stack, tmp_path / "deploy")
    alias = tmp_path / "alias"
    alias.symlink_to(deploy)
    postinstall_all(alias)
    assert f"home = {alias}/{RUNTIME}/bin\n" in (deploy / APP / "pyvenv.cfg").read_text()
    assert run_app(alias / APP)["prefix"] == str(alias / APP)


def test_running_twice_changes_nothing(stack: SampleStack, tmp_path: Path) -> None:
    deploy = unpack_layers(stack, tmp_path / "deploy")
    postinstall_all(deploy)
    first = {p: p.read_bytes() for p in deploy.rglob("*") if p.is_file()}
    postinstall_all(deploy)
    assert {p: p.read_bytes() for p in deploy.rglob("*") if p.is_file()} == first
    assert not list(deploy.rglob("*.tmp"))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("base_python", "../../elsewhere/bin/python3"),
        ("base_python", "/usr/bin/python3"),
        ("pylib_dirs", ["/usr/lib/python3/dist-packages"]),
        ("pylib_dirs", [f"../{RUNTIME}/{SITE}", "../../../etc"]),
        ("python", f"../{RUNTIME}/bin/python"),
        ("site_dir", f"../{FW}/{SITE}"),
    ],
)
def test_paths_leaving_the_deployment_are_refused(
    stack: SampleStack, tmp_path: Path, field: str, value: object
) -> None:
    deploy = unpack_layers(stack, tmp_path / "deploy")
    config_path = deploy / APP / CONFIG
    config = json.loads(config_path.read_text())
    config[field] = value
    config_path.write_text(json.dumps(config))
    before = sorted(map(str, tmp_path.rglob("*")))
    proc = postinstall(deploy / APP)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("postinstall.py: error: ") and " leaves " in proc.stderr
    assert sorted(map(str, tmp_path.rglob("*"))) == before  # nothing written at all


def _other_python() -> str | None:
    """A Python of another minor version (3.8 preferred: the oldest we promise to run on)."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for minor in (8, 9, 10, 12, 13):
        if minor == sys.version_info.minor:
            continue
        candidates = [str(p) for p in sorted(pyenv.glob(f"3.{minor}.*/bin/python3.{minor}"))]
        candidates.append(shutil.which(f"python3.{minor}") or "")
        for found in filter(None, candidates):
            # pyenv shims exist for versions that are not active: try before trusting
            if subprocess.run([found, "-c", ""], capture_output=True).returncode == 0:
                return found
    return None


def test_another_python_version_can_run_it(stack: SampleStack, tmp_path: Path) -> None:
    other = _other_python()
    if other is None:
        pytest.skip("no Python of another minor version here")
    deploy = unpack_layers(stack, tmp_path / "deploy")
    postinstall_all(deploy, other)
    # byte-code is made by the layer's own Python version, not the one running the script
    assert (deploy / APP / SITE / "__pycache__" / f"hello_app.{TAG}.pyc").is_file()
    assert len(list(deploy.rglob("*.pyc"))) == len(list(deploy.rglob(f"*.{TAG}.pyc")))
    assert run_app(deploy / APP)["values"] == ["framework", "pth", "runtime", "support"]


def test_missing_runtime_only_skips_compiling(stack: SampleStack, tmp_path: Path) -> None:
    other = _other_python()
    if other is None:
        pytest.skip("no Python of another minor version here")
    deploy = unpack_layers(stack, tmp_path / "deploy")
    shutil.rmtree(deploy / RUNTIME)
    proc = postinstall(deploy / APP, other)
    assert proc.returncode == 0, proc.stderr
    assert "warning" in proc.stderr and "left uncompiled" in proc.stderr
    assert (deploy / APP / "pyvenv.cfg").is_file()
    assert not list((deploy / APP).rglob("*.pyc"))


def test_library_script_stays_and_python_underscore_is_linked(stack: SampleStack, tmp_path: Path) -> None:
    built_python = stack.build_dir / "app-hello" / "bin" / "python"
    built_python.unlink()
    script = wrapper_script([FW, RUNTIME], PLATFORMS["linux_x86_64"])
    built_python.write_text(script)
    built_python.chmod(0o755)
    deploy = unpack_layers(stack, tmp_path / "deploy")
    postinstall_all(deploy)
    app = deploy / APP
    assert (app / "bin" / "python").read_text() == script
    assert os.readlink(app / "bin" / "python_") == f"../../{RUNTIME}/bin/python3"
    assert os.readlink(app / "bin" / "python3") == "python"
    result = run_app(app)
    assert result["values"] == ["framework", "pth", "runtime", "support"]
    assert result["prefix"] == str(app)
