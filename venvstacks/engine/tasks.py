"""The doit task graph of a stack: the whole build, readable in one sitting.

Per layer, one task of each kind (`taskkind.TaskKind`: runtime, lock, install, build,
export, publish; what each does and when it reruns: docs/doit.md). Task functions return
plain dicts; every action is a module-level function taking a frozen `Settings`, so the
graph also works with doit's process runner where it can. Each target is a small manifest
written last, holding only what follows from the task's inputs: an identical rerun leaves
its dependants asleep.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from doit.exceptions import TaskFailed
from doit.tools import config_changed

from venvstacks import layout
from venvstacks.engine import actions
from venvstacks.engine.settings import Settings, Step
from venvstacks.engine.taskkind import TaskKind
from venvstacks.errors import USER_ERRNOS, VenvStacksError, os_error_line
from venvstacks.layout import lock_files
from venvstacks.lock import uvconfig
from venvstacks.runtimes.options import RuntimeOptions
from venvstacks.stack.graph import lower_layers
from venvstacks.stack.kinds import LayerKind
from venvstacks.stack.model import LayerSpec, StackSpec
from venvstacks.stack.modfiles import module_inputs
from venvstacks.stack.targets import glibc_of, macos_of, target_text

TaskDict = dict[str, Any]


def lockable(settings: Settings) -> list[LayerSpec]:
    return [layer for layer in settings.stack.layers if layer.enabled]


def buildable(settings: Settings) -> list[LayerSpec]:
    """Layers that can be built for the settings' platform (locks cover every platform; builds do not)."""
    return [layer for layer in lockable(settings) if settings.platform.name in layer.platforms]


# --- actions (module level, so they pickle) ---------------------------------------------


def act(step: Step, settings: Settings, name: str) -> TaskFailed | None:
    """Run one step of `actions.py`; a user-caused error becomes a one-line task failure."""
    try:
        step(settings, name)
    except VenvStacksError as exc:
        return TaskFailed(str(exc))
    except OSError as exc:
        if exc.errno not in USER_ERRNOS:
            raise  # a bug: doit shows the traceback
        return TaskFailed(os_error_line(exc))
    return None


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# --- task creators ------------------------------------------------------------------------


def runtime_tasks(settings: Settings) -> Iterator[TaskDict]:
    host = settings.host()
    # This machine's runtimes always: locking runs them, and cross-builds run uv with them.
    wanted = [(host, lockable(host))] + [(s, buildable(s)) for s in settings.builds() if not s.is_host]
    for s, layers in wanted:
        for layer in layers:
            if layer.kind is not LayerKind.RUNTIME:
                continue
            source = {
                "request": layer.python_implementation,
                **_runtime_options_digest(settings.runtimes),
            }
            what = layer.env_name if s.is_host else f"{layer.env_name} on {s.platform.name}"
            yield {
                "name": s.task_name(layer.env_name),
                "doc": f"fetch {layer.python_implementation} for {what} into the runtime cache",
                "actions": [(act, [actions.fetch_runtime, s, layer.env_name])],
                "targets": [s.runtime_state(layer)],
                # The record holds no cache path (moving the cache wakes nothing above), so
                # whether the cache in use still holds the runtime is checked here.
                "uptodate": [config_changed(source), (actions.runtime_in_cache, [s, layer.env_name])],
                "clean": True,
            }


def lock_tasks(settings: Settings) -> Iterator[TaskDict]:
    settings = settings.host()  # one lock per layer, for every platform, made here
    stack = settings.stack
    for layer in lockable(settings):
        files = lock_files(stack, layer)
        lowers = lower_layers(stack, layer)
        yield {
            "name": layer.env_name,
            "doc": f"lock {layer.env_name} with uv ({', '.join(layer.platforms)})",
            "actions": [(act, [actions.lock, settings, layer.env_name])],
            "file_dep": [
                *(lock_files(stack, lower).pylock for lower in lowers),
                *(_module_files(stack, layer) if layer.versioned else []),  # they name its next version
                settings.runtime_state(layer),  # its exact version decides markers
            ],
            "task_dep": [TaskKind.RUNTIME.task(settings.runtime_layer(layer).env_name)],
            "targets": [files.pylock, files.meta],
            "uptodate": [config_changed(_lock_inputs(settings, layer))],
        }


def install_tasks(settings: Settings) -> Iterator[TaskDict]:
    for s in settings.builds():
        for layer in buildable(s):
            yield _install_task(s, layer)


def _install_task(settings: Settings, layer: LayerSpec) -> TaskDict:
    runtime = settings.runtime_layer(layer)
    file_dep = [lock_files(settings.stack, layer).pylock, settings.runtime_state(layer)]
    task_dep = [] if runtime is layer else [settings.task(TaskKind.INSTALL, runtime.env_name)]
    if not settings.is_host:  # uv runs this machine's runtime in place of the target's
        file_dep.append(settings.host().runtime_state(layer))
        task_dep += [
            settings.task(TaskKind.RUNTIME, runtime.env_name),
            TaskKind.RUNTIME.task(runtime.env_name),
        ]
    on = "" if settings.is_host else f" for {settings.platform.name}"
    return {
        "name": settings.task_name(layer.env_name),
        "doc": f"create {layer.env_name}{on} and install its locked packages",
        "actions": [(act, [actions.install, settings, layer.env_name])],
        "file_dep": file_dep,
        "task_dep": task_dep,
        "targets": [settings.env_dir(layer) / layout.INSTALLED],
        # Which of a package's wheels is installed follows the target (same lock or not).
        "uptodate": [
            config_changed(
                {
                    "target": target_text(settings.platform.name, glibc_of(layer), macos_of(layer)),
                    "uv": uvconfig.install_settings(settings.stack),
                }
            )
        ],
        "clean": [(remove_tree, [settings.env_dir(layer)])],  # `doit clean`: the whole layer
    }


def build_tasks(settings: Settings) -> Iterator[TaskDict]:
    for s in settings.builds():
        for layer in buildable(s):
            yield _build_task(s, layer)


def _build_task(settings: Settings, layer: LayerSpec) -> TaskDict:
    stack = settings.stack
    lowers = lower_layers(stack, layer)
    versioned_metas = [lock_files(stack, lower).meta for lower in lowers if lower.versioned]
    return {
        "name": settings.task_name(layer.env_name),
        "doc": f"build {layer.env_name}: wire it to its lower layers"
        + (" and copy its launch modules" if layer.launch_module else ""),
        "actions": [(act, [actions.build, settings, layer.env_name])],
        "file_dep": [
            settings.env_dir(layer) / layout.INSTALLED,
            *versioned_metas,
            # content-compared: a lower layer rebuilt with the same libraries wakes nothing
            *(settings.env_dir(lower) / layout.DYNLIB_MANIFEST for lower in lowers),
            *_module_files(stack, layer),
        ],
        "task_dep": [settings.task(TaskKind.BUILD, lower.env_name) for lower in lowers],
        "targets": [
            settings.env_dir(layer) / layout.BUILT,
            settings.env_dir(layer) / layout.DYNLIB_MANIFEST,
        ],
        "clean": True,
        "uptodate": [config_changed(_build_inputs(settings, layer))],
    }


def export_tasks(settings: Settings) -> Iterator[TaskDict]:
    for s in settings.builds():
        out = s.output
        config = {"export_dir": str(out.export_dir)}
        for layer in buildable(s):
            then = "run its postinstall.py" if s.is_host else "leave its postinstall.py to the target"
            doc = f"export {layer.env_name} to {out.export_dir.name}/ and {then}"
            task = _output_task(s, layer, actions.export, doc, out.export_metadata(layer), config)
            # Lower layers go first: an upper layer is exported beside them.
            lowers = lower_layers(s.stack, layer)
            yield {**task, "task_dep": [s.task(TaskKind.EXPORT, lower.env_name) for lower in lowers]}


def publish_tasks(settings: Settings) -> Iterator[TaskDict]:
    for s in settings.builds():
        out = s.output
        config = {
            "dir": str(out.publish_dir),
            "format": out.format,
            "tag": out.tag_outputs,
            "platform": out.target_platform,
            # Only when on: every existing publish task's inputs stay what they were.
            **({"bytecode": True} if out.bytecode else {}),
        }
        for layer in buildable(s):
            doc = f"publish {layer.env_name} as a {out.format} archive in {out.publish_dir.name}/"
            yield _output_task(s, layer, actions.publish, doc, out.publish_metadata(layer), config)


def _output_task(
    settings: Settings, layer: LayerSpec, step: Step, doc: str, target: Path, config: dict[str, Any]
) -> TaskDict:
    """An export: or publish: task: it reads the built layer and writes one metadata file last."""
    return {
        "name": settings.task_name(layer.env_name),
        "doc": doc,
        "actions": [(act, [step, settings, layer.env_name])],
        "file_dep": _built(settings, layer),
        "targets": [target],
        "clean": True,
        "uptodate": [config_changed(config)],
    }


def _built(settings: Settings, layer: LayerSpec) -> list[Path]:
    """A built layer's outputs, plus its lock metadata (which names its deployed version)."""
    return [settings.env_dir(layer) / layout.BUILT, lock_files(settings.stack, layer).meta]


def _lock_inputs(settings: Settings, layer: LayerSpec) -> dict[str, Any]:
    # --upgrade and --reset-lock force a rerun instead (see cli.prepare); the command
    # line's package sources are no lock input.
    return uvconfig.lock_inputs(settings.stack, layer)


def _build_inputs(settings: Settings, layer: LayerSpec) -> dict[str, Any]:
    return {
        "build_dir": str(settings.build_dir),
        "lower": [lower.env_name for lower in lower_layers(settings.stack, layer)],
        "modules": [str(m) for m in layer.modules],
        "dynlib_exclude": layer.dynlib_exclude,
    }


def _runtime_options_digest(options: RuntimeOptions) -> dict[str, Any]:
    return {
        "policy": options.policy,
        "mirror": options.mirror or "",
        "archives": dict(options.archives),
    }


def _module_files(stack: StackSpec, layer: LayerSpec) -> list[Path]:
    return [path for m in layer.modules for path in module_inputs(m, stack.root)]


TaskGraph = dict[TaskKind, list[TaskDict]]
"""Every task of a stack, by kind: what `plan` lists and doit runs (made once per command)."""


def task_graph(settings: Settings) -> TaskGraph:
    return {kind: list(creator(settings)) for kind, creator in CREATORS.items()}


CREATORS: dict[TaskKind, Callable[[Settings], Iterator[TaskDict]]] = {
    TaskKind.RUNTIME: runtime_tasks,
    TaskKind.LOCK: lock_tasks,
    TaskKind.INSTALL: install_tasks,
    TaskKind.BUILD: build_tasks,
    TaskKind.EXPORT: export_tasks,
    TaskKind.PUBLISH: publish_tasks,
}
