"""The engine without running anything: task dicts and their dependencies, lock versions and
validity, the layer config, and where outputs go. No subprocess, no doit run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.spec_files import RUNTIME, app, framework, write_stack
from venvstacks.engine import actions
from venvstacks.engine.outputs import ProgressLine, publish_options
from venvstacks.engine.progress import EVERY, FIRST_AFTER, Heartbeat
from venvstacks.engine.settings import Settings
from venvstacks.engine.tasks import CREATORS, TaskDict
from venvstacks.layerconfig import LayerConfig
from venvstacks.layers.linking import LinkPlan, Peer
from venvstacks.layout import BUILT, DYNLIB_MANIFEST, INSTALLED, OutputOptions, lock_files
from venvstacks.lock import locking, validity
from venvstacks.lock.lockmeta import InputHashes
from venvstacks.lock.pylockdoc import LockedPackage, Pylock
from venvstacks.platforms import PLATFORMS, host_platform
from venvstacks.runtimes.options import RuntimeOptions
from venvstacks.stack.model import StackSpec
from venvstacks.stack.spec import load_stack

ELSEWHERE = "win_arm64" if host_platform().name != "win_arm64" else "linux_aarch64"
MAC = "macosx_arm64" if host_platform().name != "macosx_arm64" else "macosx_x86_64"
MAC13, MAC14 = (MAC.replace("macosx_", f"macosx_{v}_0_") for v in (13, 14))


def _stack(tmp_path: Path, extra: str = "") -> StackSpec:
    toml = (
        RUNTIME
        + framework("fw", extra="versioned = true")
        + app("hello", deps='frameworks = ["fw"]', extra='launch_module = "hello.py"')
        + extra
    )
    return load_stack(write_stack(tmp_path, toml, {"hello.py": "print('hi')\n"}))


def _settings(stack: StackSpec, **outputs: Any) -> Settings:
    out = OutputOptions(stack.root / "_export", stack.root / "_artifacts", **outputs)
    return Settings(stack, stack.root / "_build", RuntimeOptions(cache_dir=stack.root / "cache"), outputs=out)


def _tasks(settings: Settings) -> dict[str, TaskDict]:
    return {kind.task(t["name"]): t for kind, make in CREATORS.items() for t in make(settings)}


def test_each_layer_gets_its_tasks_with_the_layers_below_as_dependencies(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    settings = _settings(stack)
    tasks = _tasks(settings)
    layers = ["cpython-3.11", "framework-fw", "app-hello"]
    assert set(tasks) == {"runtime:cpython-3.11"} | {
        f"{kind}:{layer}" for kind in ("lock", "install", "build", "export", "publish") for layer in layers
    }
    fw, hello = stack.layer("framework-fw"), stack.layer("app-hello")
    # the app locks against the pins of every layer below it, and relocks when its module
    # changes only because it is versioned (this one is not)
    assert tasks["lock:app-hello"]["file_dep"] == [
        lock_files(stack, fw).pylock,
        lock_files(stack, stack.layer("cpython-3.11")).pylock,
        settings.runtime_state(hello),  # the runtime's exact version enters its markers
    ]
    assert tasks["lock:framework-fw"]["task_dep"] == ["runtime:cpython-3.11"]
    assert tasks["install:app-hello"]["task_dep"] == ["install:cpython-3.11"]
    assert tasks["install:app-hello"]["targets"] == [settings.env_dir(hello) / INSTALLED]
    # build waits for the lower builds and wakes up on a versioned lower layer's new version
    build = tasks["build:app-hello"]
    assert build["task_dep"] == ["build:framework-fw", "build:cpython-3.11"]
    assert lock_files(stack, fw).meta in build["file_dep"]
    assert stack.root / "hello.py" in build["file_dep"]
    # ...and on a lower layer's changed library set, which it also publishes for those above
    assert settings.env_dir(fw) / DYNLIB_MANIFEST in build["file_dep"]
    assert build["targets"] == [settings.env_dir(hello) / BUILT, settings.env_dir(hello) / DYNLIB_MANIFEST]
    # every step is the typed function itself, with the layer's name
    assert tasks["install:app-hello"]["actions"][0][1][:3:2] == [actions.install, "app-hello"]
    assert tasks["publish:app-hello"]["actions"][0][1][0] is actions.publish


def test_layers_for_other_platforms_are_locked_but_not_built(tmp_path: Path) -> None:
    extra = app("away", extra=f'launch_module = "hello.py"\nplatforms = ["{ELSEWHERE}"]')
    tasks = _tasks(_settings(_stack(tmp_path, extra)))
    assert "lock:app-away" in tasks
    assert not {f"{kind}:app-away" for kind in ("install", "build", "export", "publish")} & set(tasks)


def test_publish_targets_are_the_metadata_files_the_writer_writes(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    settings = _settings(stack, tag_outputs=True, target_platform="linux_x86_64")
    tasks = _tasks(settings)
    target = stack.root / "_artifacts/__venvstacks__/env_metadata/app-hello-linux_x86_64.json"
    assert tasks["publish:app-hello"]["targets"] == [target]
    assert (
        publish_options(settings.output, stack.layer("app-hello")).layer_metadata_path("app-hello") == target
    )
    export = stack.root / "_export/__venvstacks__/env_metadata/app-hello.json"
    assert tasks["export:app-hello"]["targets"] == [export]


def _write_meta(stack: StackSpec, name: str, requirements_hash: str) -> int:
    layer = stack.layer(name)
    files = lock_files(stack, layer)
    files.meta.parent.mkdir(parents=True, exist_ok=True)
    locked = Pylock(packages=(LockedPackage("idna", requirements_hash),))
    inputs = InputHashes("sha256:x", "sha256:x", "sha256:x")
    return locking._write_meta(validity.Locks(stack).of(layer), locked, inputs, None)


def test_versioned_layers_get_a_new_version_only_when_their_packages_change(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    assert _deployed_name(stack, "framework-fw") == "framework-fw@1"  # no lock yet
    assert _write_meta(stack, "framework-fw", "1.0") == 1
    assert _write_meta(stack, "framework-fw", "1.0") == 1
    assert _write_meta(stack, "framework-fw", "2.0") == 2
    assert _deployed_name(stack, "framework-fw") == "framework-fw@2"
    # an unversioned layer stays at 1 and keeps its build name
    assert _write_meta(stack, "app-hello", "1.0") == 1
    assert _write_meta(stack, "app-hello", "2.0") == 1
    assert _deployed_name(stack, "app-hello") == "app-hello"


def _deployed_name(stack: StackSpec, name: str) -> str:
    return validity.Locks(stack).of(stack.layer(name)).deployed_name  # the lock files read afresh


def test_a_lock_is_valid_only_for_the_inputs_it_was_made_from(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    runtime = stack.layer("cpython-3.11")
    files = lock_files(stack, runtime)
    assert not validity.lock_is_valid(validity.Locks(stack), runtime)  # nothing locked yet
    files.pylock.parent.mkdir(parents=True, exist_ok=True)
    files.pylock.write_text('lock-version = "1.0"\ncreated-by = "test"\npackages = []\n')
    inputs = validity.input_hashes(stack, runtime, [])
    locking._write_meta(validity.Locks(stack).of(runtime), Pylock.read(files.pylock), inputs, None)
    locks = validity.Locks(stack)
    assert validity.lock_is_valid(locks, runtime) and validity.lock_is_current(locks, runtime)
    files.pylock.write_text(
        'lock-version = "1.0"\ncreated-by = "test"\npackages = [{name = "x", version = "1", '
        'wheels = [{url = "https://x.invalid/x-1-py3-none-any.whl", hashes = {sha256 = "00"}}]}]\n'
    )
    assert not validity.lock_is_valid(validity.Locks(stack), runtime)  # edited by hand: not what was recorded


@pytest.mark.parametrize("versioned", [False, True])
def test_layer_config_points_at_the_deployed_names_below(tmp_path: Path, versioned: bool) -> None:
    stack = _stack(tmp_path)
    hello = stack.layer("app-hello")
    fw_name = "framework-fw@3" if versioned else "framework-fw"
    plan = LinkPlan(
        hello,
        tmp_path / "_build/app-hello",
        "3.11.9",
        Peer(tmp_path / "_build/cpython-3.11", "cpython-3.11"),
        (Peer(tmp_path / "_build/framework-fw", fw_name),),
        stack.root,
        PLATFORMS["linux_x86_64"],
    )
    site = "lib/python3.11/site-packages"
    assert plan.layer_config().to_json() == {
        "python": "bin/python",
        "base_python": "../cpython-3.11/bin/python3",
        "pylib_dirs": [f"../{fw_name}/{site}", f"../cpython-3.11/{site}"],
        "py_version": "3.11.9",
        "site_dir": site,
        "dynlib_dirs": [f"../{fw_name}/share/venv/dynlib", "../cpython-3.11/share/venv/dynlib"],
        "launch_module": "hello",
    }
    custom = plan.sitecustomize()
    assert custom is not None
    assert custom.index("framework-fw/lib") < custom.index("cpython-3.11/lib")  # frameworks first
    # what is written is plain JSON, and reads back as written
    written = tmp_path / "venvstacks_layer.json"
    written.write_text(plan.layer_config().text())
    assert LayerConfig.from_json(json.loads(written.read_text()), written) == plan.layer_config()


def test_heartbeat_says_how_far_a_long_task_is_every_few_seconds() -> None:
    beat = Heartbeat(write=lambda _: None)
    beat.started("publish:cpython-3.11", now=100.0)
    beat.started("lock:app-x", now=100.0)
    assert beat.tick(100.0 + FIRST_AFTER - 0.1) == []  # short steps stay silent
    ProgressLine("cpython-3.11")("cpython-3.11", 0, 33_000_000)
    assert beat.tick(100.0 + FIRST_AFTER) == [
        "   publish:cpython-3.11: archiving 33 MB (2s)",
        "   lock:app-x: still running (2s)",
    ]
    beat.finished("lock:app-x")
    ProgressLine("cpython-3.11")("cpython-3.11", 16_500_000, 33_000_000)
    assert beat.tick(100.0 + FIRST_AFTER + EVERY - 0.1) == []
    assert beat.tick(100.0 + FIRST_AFTER + EVERY) == ["   publish:cpython-3.11: 50% of 33 MB archived (7s)"]
    beat.finished("publish:cpython-3.11")
    assert beat.tick(1000.0) == []
    beat.close()


def test_other_platforms_tasks_folders_and_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--platform` a macOS (not this machine's): tasks of its own, its own build and output
    folders; a layer naming its own macosx_target is published as that target, in the run's
    files."""
    monkeypatch.delenv("MACOSX_DEPLOYMENT_TARGET", raising=False)
    extra = app("mac14", extra='launch_module = "hello.py"\nmacosx_target = "14.0"')
    stack = _stack(tmp_path, extra)
    run = dataclasses.replace(_settings(stack, tag_outputs=True), platforms=(MAC,))
    tasks = _tasks(run)
    mac = run.builds()[0]
    assert tasks[f"build:{MAC}/app-hello"]["task_dep"] == [
        f"build:{MAC}/framework-fw",
        f"build:{MAC}/cpython-3.11",
    ]
    assert mac.env_dir(stack.layer("app-hello")) == stack.root / f"_build/{MAC}/app-hello"
    assert "install:app-hello" not in tasks and "runtime:cpython-3.11" in tasks  # locking runs here
    target = stack.root / f"_artifacts/{MAC}/__venvstacks__/env_metadata/app-mac14-{MAC13}.json"
    assert tasks[f"publish:{MAC}/app-mac14"]["targets"] == [target]
    options = publish_options(mac.output, stack.layer("app-mac14"))
    assert (options.layer_target_platform, options.layer_metadata_path("app-mac14")) == (
        MAC14,
        target,
    )
    assert publish_options(mac.output, stack.layer("app-hello")).layer_target_platform == MAC13
    assert mac.output.format == "tar.xz" and run.builds()[0].output.publish_dir.name == MAC
