"""The effects behind each task: what `lock:`, `install:`, `build:`, `export:`, `publish:` do.

Each step is a `Step`: it takes the frozen `Settings` and a layer's build name. `tasks.py`
puts the functions themselves in its task dicts, so this module is imported whenever the
graph is made, including on a no-op run: each step imports the code it drives (uv, the
compressors, the runtime downloader) only when it runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from venvstacks.console import say
from venvstacks.engine.settings import Settings
from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import dump_json, write_if_changed
from venvstacks.layout import lock_files
from venvstacks.lock import uvconfig
from venvstacks.platforms import host_platform
from venvstacks.stack.kinds import LayerKind
from venvstacks.stack.spec import LayerSpec
from venvstacks.stack.targets import layer_target

if TYPE_CHECKING:
    from venvstacks.layers.linking import LinkPlan
    from venvstacks.runtimes.cache import Runtime


def log(message: str) -> None:
    # stderr: doit captures task stdout at the default verbosity, and these lines matter.
    say(f"   {message}")


def runtime_for(settings: Settings, layer: LayerSpec) -> Runtime:
    """The runtime a layer runs on, for the platform the settings build."""
    from venvstacks.runtimes.cache import ensure_runtime

    request = settings.runtime_layer(layer).python_implementation
    return ensure_runtime(request, settings.runtimes, log, settings.platform)


def fetch_runtime(settings: Settings, name: str) -> None:
    layer = settings.stack.layer(name)
    write_if_changed(settings.runtime_state(layer), dump_json(runtime_for(settings, layer).identity()))


def lock(settings: Settings, name: str) -> None:
    from venvstacks.lock import locking

    layer = settings.stack.layer(name)
    runtime = runtime_for(settings, layer)
    python = runtime.python_dir / host_platform().runtime_python
    locking.lock_layer(settings.stack, layer, python, runtime.version, settings.lock, log)


def install(settings: Settings, name: str) -> None:
    from venvstacks.layers import envs

    layer = settings.stack.layer(name)
    runtime = runtime_for(settings, layer)
    pylock = lock_files(settings.stack, layer).pylock
    target = layer_target(layer, settings.platform.name, runtime.version)
    how = envs.Install(target, uvconfig.install_settings(settings.stack), _cross_python(settings, layer))
    if layer.kind is LayerKind.RUNTIME:
        envs.install_runtime_layer(runtime, settings.env_dir(layer), pylock, how, log)
    else:
        runtime_dir = settings.env_dir(settings.runtime_layer(layer))
        envs.install_venv_layer(runtime, runtime_dir, settings.env_dir(layer), pylock, how, log)


def _cross_python(settings: Settings, layer: LayerSpec) -> Path | None:
    """When cross-building, this machine's runtime of the same request: uv runs it in
    place of the target's (told the target's platform and version)."""
    if settings.is_host:
        return None
    return runtime_for(settings.host(), layer).python_dir / host_platform().runtime_python


def link(settings: Settings, name: str) -> None:
    from venvstacks.errors import SpecError
    from venvstacks.layers import linking
    from venvstacks.layers.dynlib import AmbiguousLibrary

    layer = settings.stack.layer(name)
    try:
        linking.link_layer(link_plan(settings, layer))
    except AmbiguousLibrary as exc:
        raise SpecError(settings.stack.path, layer.name, "dynlib_exclude", str(exc)) from None


def export(settings: Settings, name: str) -> None:
    from venvstacks.engine import outputs

    layer = settings.stack.layer(name)
    identity = runtime_identity(settings, layer)
    outputs.export_one(settings.stack, layer, settings.env_dir(layer), settings.output, identity)


def publish(settings: Settings, name: str) -> None:
    from venvstacks.engine import outputs

    layer = settings.stack.layer(name)
    identity = runtime_identity(settings, layer)
    if not identity.get("portable", True):
        runtime = settings.runtime_layer(layer).env_name
        on = "" if runtime == name else f" runs on {runtime}, which"
        what = (
            f"{name}{on} was packed from the local CPython at {identity['origin']} "
            "and runs on machines like this one only"
        )
        if not settings.output.allow_local_runtime:
            raise VenvStacksError(
                f"refusing to publish: {what}; pass --allow-local-runtime (plain doit: "
                "VENVSTACKS_ALLOW_LOCAL_RUNTIME=1) to publish it anyway, or let the runtime be "
                "downloaded (docs/runtimes.md)"
            )
        log(f"warning: publishing anyway (--allow-local-runtime): {what}")
    outputs.publish_one(settings.stack, layer, settings.env_dir(layer), settings.output, identity)


def runtime_identity(settings: Settings, layer: LayerSpec) -> dict[str, Any]:
    """What `runtime:<rt>` recorded about the runtime a layer runs on."""
    return dict(json.loads(settings.runtime_state(layer).read_text()))


def link_plan(settings: Settings, layer: LayerSpec) -> LinkPlan:
    from venvstacks.layers import linking
    from venvstacks.lock import locking

    version = runtime_identity(settings, layer)["version"]

    def peer(lower: LayerSpec) -> linking.Peer:
        return linking.Peer(settings.env_dir(lower), locking.deployed_name(settings.stack, lower))

    runtime = None if layer.runtime is None else peer(settings.runtime_layer(layer))
    frameworks = tuple(peer(settings.stack.layer(n)) for n in layer.lower)
    root = settings.stack.root
    return linking.LinkPlan(
        layer, settings.env_dir(layer), version, runtime, frameworks, root, settings.platform
    )
