"""The incremental contract (docs/doit.md, "Which change triggers what"): each change reruns
exactly these tasks, nothing else."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.support.runtime_checks import local_cpython
from tests.support.stacks import Stack
from venvstacks.layout import DOIT_DB

# Each test builds a stack end to end through the CLI, in subprocesses.
pytestmark = pytest.mark.slow

APP = {"lock:app-hello", "install:app-hello", "build:app-hello"}
FRAMEWORK = {"lock:framework-web", "install:framework-web", "build:framework-web"}
RUNTIME = {"runtime:cpython-3.11", "lock:cpython-3.11", "install:cpython-3.11", "build:cpython-3.11"}


@pytest.fixture
def built(stack: Stack) -> Stack:
    first = stack.build()
    assert first.ran == RUNTIME | FRAMEWORK | APP
    return stack


def test_nothing_changed_runs_nothing(built: Stack) -> None:
    run = built.build()
    assert run.ran == set()
    assert run.up_to_date == RUNTIME | FRAMEWORK | APP


def test_app_requirements_rerun_only_that_app(built: Stack) -> None:
    built.app_requirements = ["attrs", "idna", "six"]
    built.write()
    assert built.build().ran == APP
    assert "six" in (built.root / "requirements/app-hello/pylock.app-hello.toml").read_text()


def test_emptied_requirements_remove_what_was_installed(built: Stack) -> None:
    """A layer whose lock lists nothing skips uv when it holds nothing; one that held a
    package still runs uv, which removes it."""
    site = built.build_dir / "framework-web" / "lib" / "python3.11" / "site-packages"
    assert list(site.glob("idna*.dist-info"))
    built.framework_requirements = []
    built.write()
    assert {"install:framework-web"} <= built.build().ran
    assert list(site.glob("*.dist-info")) == []


def test_launch_or_support_module_rewires_without_relock(built: Stack) -> None:
    built.greeting = "changed greeting"
    built.write()
    assert built.build().ran == {"build:app-hello"}
    assert "changed greeting" in built.run_app()


def test_framework_requirements_relock_upper_but_rebuild_only_changed_locks(built: Stack) -> None:
    app_lock = built.root / "requirements/app-hello/pylock.app-hello.toml"
    before = app_lock.read_bytes()
    built.framework_requirements = ["idna", "six"]
    built.write()
    run = built.build()
    # the app relocks against the new framework pins, but its own lock is unchanged,
    # so it is neither reinstalled nor rewired
    assert run.ran == FRAMEWORK | {"lock:app-hello"}
    assert app_lock.read_bytes() == before


def test_framework_pin_shared_with_app_reinstalls_app(built: Stack) -> None:
    built.framework_requirements = ["idna", "attrs"]
    built.write()
    run = built.build()
    assert run.ran == FRAMEWORK | APP  # attrs moves down to the framework
    app_site = built.build_dir / "app-hello/lib/python3.11/site-packages"
    assert not list(app_site.glob("attrs-*.dist-info"))
    assert "framework-web" in built.run_app().split("attrs from")[1]


def test_versioned_lower_layer_rewires_upper_without_reinstall(stack: Stack) -> None:
    stack.versioned = True
    stack.write()
    stack.build()
    config = stack.build_dir / "app-hello/share/venv/metadata/venvstacks_layer.json"
    assert "../framework-web@1/" in json.loads(config.read_text())["pylib_dirs"][0]
    stack.framework_requirements = ["idna", "six"]
    stack.write()
    run = stack.build()
    assert run.ran == FRAMEWORK | {"lock:app-hello", "build:app-hello"}
    assert "../framework-web@2/" in json.loads(config.read_text())["pylib_dirs"][0]


def test_versioned_app_gets_a_new_version_when_its_modules_change(stack: Stack) -> None:
    stack.app_versioned = True
    stack.write()
    stack.build()
    files = stack.root / "requirements/app-hello"
    meta, lock = files / "pylock.app-hello.meta.json", files / "pylock.app-hello.toml"
    assert json.loads(meta.read_text())["lock_version"] == 1
    locked = lock.read_bytes()
    stack.greeting = "changed greeting"
    stack.write()
    show = json.loads(stack.venvstacks("show", str(stack.spec), "--json").out)
    assert show["applications"][0]["has_valid_lock"] is False  # locking would bump its version
    run = stack.build()
    # As in the existing venvstacks: new app code is a new deployed version (app-hello@2),
    # but its packages did not change, so uv does not run and nothing is reinstalled.
    assert run.ran == {"lock:app-hello", "build:app-hello"}
    assert "app-hello is now @2" in run.out + run.err
    assert json.loads(meta.read_text())["lock_version"] == 2
    assert lock.read_bytes() == locked
    assert stack.build().ran == set()
    show = json.loads(stack.venvstacks("show", str(stack.spec), "--json").out)
    assert [app["install_target"] for app in show["applications"]] == ["app-hello@2"]
    assert show["applications"][0]["has_valid_lock"] is True


def test_runtime_python_version_rebuilds_everything_above(built: Stack) -> None:
    if not local_cpython("3.12"):
        pytest.skip("no local CPython 3.12 to switch to")
    built.python = "cpython@3.12"
    built.write()
    run = built.build()
    assert run.ran == RUNTIME | FRAMEWORK | APP
    assert "python3.12" in built.run_app()


def test_deleted_build_folder_rebuilds_only_that_layer(built: Stack) -> None:
    shutil.rmtree(built.build_dir / "app-hello")
    assert built.build().ran == {"install:app-hello", "build:app-hello"}
    shutil.rmtree(built.build_dir / "framework-web")
    assert built.build().ran == {"install:framework-web", "build:framework-web"}
    assert "hello from the app layer" in built.run_app()


def test_parallel_build_gives_the_same_result(stack: Stack) -> None:
    run = stack.build("--jobs", "4")
    assert run.ran == RUNTIME | FRAMEWORK | APP
    assert "idna from" in stack.run_app()
    assert stack.build("--jobs", "4").ran == set()


def _doit(stack: Stack, *args: str) -> str:
    import subprocess
    import sys
    from pathlib import Path

    dodo = Path(__file__).parents[1] / "dodo.py"
    proc = subprocess.run(
        [sys.executable, "-m", "doit", *args[:1], "-f", str(dodo), *args[1:], f"stack={stack.spec}"],
        env=stack.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout


def test_doit_info_forget_and_clean(built: Stack) -> None:
    assert "up-to-date" in _doit(built, "info", "build:app-hello")
    _doit(built, "forget", "build:app-hello")
    assert built.build().ran == {"build:app-hello"}
    _doit(built, "clean", "install:app-hello")
    assert not (built.build_dir / "app-hello").exists()
    assert built.build().ran == {"install:app-hello", "build:app-hello"}
    assert "hello from the app layer" in built.run_app()


def test_a_plain_doit_no_op_writes_nothing_to_the_state_database(built: Stack) -> None:
    """Nothing to do is read, not written: no task, and no sqlite transaction either."""
    db = built.build_dir / DOIT_DB
    _doit(built, "run")
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    out = _doit(built, "run")
    assert not any(line.startswith(".  ") for line in out.splitlines())
    assert "-- build:app-hello" in out.splitlines()
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before


def test_plain_doit_builds_one_app_and_what_it_needs(stack: Stack) -> None:
    out = _doit(stack, "run", "build:app-hello")
    ran = {line[3:].strip() for line in out.splitlines() if line.startswith(".  ")}
    assert ran == RUNTIME | FRAMEWORK | APP
    assert "idna from" in stack.run_app()
    assert not any(line.startswith(".  ") for line in _doit(stack, "run").splitlines())
