"""A stack file becomes a working stack: lock, build, and the app runs from its layer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.pylock_data import locked
from tests.support.stacks import Stack
from tests.support.wheels import SimpleIndex

# Each test builds a stack end to end through the CLI, in subprocesses.
pytestmark = pytest.mark.slow

DODO = Path(__file__).parents[1] / "dodo.py"


def test_three_layer_stack_builds_and_app_runs(stack: Stack) -> None:
    run = stack.build()
    assert {"lock:app-hello", "install:app-hello", "build:app-hello"} <= run.ran

    output = stack.run_app()
    framework_site = stack.build_dir / "framework-web" / "lib" / "python3.11" / "site-packages"
    app_site = stack.build_dir / "app-hello" / "lib" / "python3.11" / "site-packages"
    assert f"idna from {framework_site / 'idna' / '__init__.py'}" in output
    assert f"attrs from {app_site / 'attrs' / '__init__.py'}" in output
    assert "hello from the app layer" in output
    # idna is shared: installed once, in the framework, not again in the app layer
    assert not list(app_site.glob("idna*"))
    assert list(framework_site.glob("idna-*.dist-info"))


def test_lock_files_and_metadata(stack: Stack) -> None:
    stack.venvstacks("lock", str(stack.spec))
    req = stack.root / "requirements" / "app-hello"
    lock = (req / "pylock.app-hello.toml").read_text()
    assert "sys_platform == 'from_lower_layer'" in lock  # idna, provided by framework-web
    assert 'requires-python = "==3.11.*"' in lock
    meta = json.loads((req / "pylock.app-hello.meta.json").read_text())
    assert meta["lock_version"] == 1
    for key in ("requirements_hash", "lock_input_hash", "other_inputs_hash", "locked_at"):
        assert meta[key]
    summary = (req / "packages-app-hello.txt").read_text()
    assert "attrs==" in summary and "(from framework-web)" in summary
    # relocking without changes rewrites nothing
    before = {p.name: p.stat().st_mtime_ns for p in req.iterdir()}
    stack.venvstacks("lock", str(stack.spec))
    assert before == {p.name: p.stat().st_mtime_ns for p in req.iterdir()}


def _pinned(stack: Stack, name: str) -> str:
    return locked(stack.root / "requirements" / "app-hello" / "pylock.app-hello.toml", name).version


def test_existing_pins_are_kept_unless_upgrade_is_asked(stack: Stack) -> None:
    stack.app_requirements = ["attrs<26"]
    stack.write()
    stack.venvstacks("lock", str(stack.spec))
    old = _pinned(stack, "attrs")
    assert not old.startswith("26")
    stack.app_requirements = ["attrs"]
    stack.write()
    stack.venvstacks("lock", str(stack.spec))
    assert _pinned(stack, "attrs") == old
    stack.venvstacks("lock", str(stack.spec), "--upgrade-package", "attrs")
    assert _pinned(stack, "attrs") != old


def test_show_json_lists_layers_and_dependencies(stack: Stack) -> None:
    run = stack.venvstacks("show", str(stack.spec), "--json")
    data = json.loads(run.out)
    assert [e["name"] for e in data["runtimes"]] == ["cpython-3.11"]
    app = data["applications"][0]
    assert app["name"] == "app-hello"
    assert app["dependencies"] == ["framework-web", "cpython-3.11"]
    assert app["has_valid_lock"] is False
    stack.venvstacks("lock", str(stack.spec))
    data = json.loads(stack.venvstacks("show", str(stack.spec), "--json").out)
    assert data["applications"][0]["has_valid_lock"] is True


def test_doit_lists_one_task_per_layer_step(stack: Stack) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "doit", "-f", str(DODO), "list", f"stack={stack.spec}"],
        env=stack.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    docs = dict(line.split(None, 1) for line in proc.stdout.splitlines() if line.strip())
    for kind in ("lock", "build"):
        for layer in ("cpython-3.11", "framework-web", "app-hello"):
            assert layer in docs[f"{kind}:{layer}"]
    assert "runtime:cpython-3.11" in docs


def test_a_conflict_with_a_lower_layers_pin_names_that_layer(
    tmp_path: Path, runtime_cache: Path, simple_index: SimpleIndex
) -> None:
    simple_index.add("vstest-pin", "1.0")
    simple_index.add("vstest-pin", "2.0")
    stack = Stack(
        tmp_path / "stack",
        runtime_cache,
        simple_index.url,
        framework_requirements=["vstest-pin==1.0"],
        app_requirements=["vstest-pin>=2.0"],
    ).write()
    run = stack.venvstacks("lock", str(stack.spec), check=False)
    assert run.code == 1
    (failed,) = [line for line in run.out.splitlines() if line.startswith("FAILED")]
    assert failed.startswith("FAILED lock:app-hello: ")
    assert failed.endswith("[framework-web pins vstest-pin==1.0: change the requirement, or that layer's]")


def test_a_rebuild_from_locks_takes_cached_wheels_without_asking_the_server(
    tmp_path: Path, runtime_cache: Path, simple_index: SimpleIndex
) -> None:
    """A lock names its wheels by URL; uv would revalidate (on some servers download again)
    such a cached wheel on every install. Installing from uv's cache first asks no server."""
    import shutil

    simple_index.add("vstest-cached", "1.0")
    simple_index.add("vstest-other", "1.0")
    stack = Stack(tmp_path / "stack", runtime_cache, simple_index.url, uv_cache=tmp_path / "uv")
    stack.framework_requirements, stack.app_requirements = ["vstest-cached"], ["vstest-other"]
    stack.write().build()
    assert any(p.endswith(".whl") for p in simple_index.requests)

    shutil.rmtree(stack.build_dir)
    simple_index.requests.clear()
    stack.build()
    site = stack.build_dir / "framework-web" / "lib" / "python3.11" / "site-packages"
    assert (site / "vstest_cached.py").read_text().startswith("VERSION = '1.0'")
    wheels_asked = [p.rsplit("/", 1)[-1] for p in simple_index.requests if p.endswith(".whl")]
    assert wheels_asked == []
