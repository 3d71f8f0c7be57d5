"""The effects behind each task: what `lock:`, `install:`, `build:`, `export:`, `publish:` do.

Each step is a `Step`: it takes the frozen `Settings` and a layer's build name. `tasks.py`
puts the functions themselves in its task dicts, so this module is imported whenever the
graph is made, including on a no-op run: the code each step drives (uv, the compressors,
the runtime downloader) is declared below, once, and loaded when a step first uses it.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from venvstacks.console import say
from venvstacks.engine import progress
from venvstacks.engine.settings import Settings
from venvstacks.errors import SpecError, VenvStacksError
from venvstacks.fsutil import write_if_changed
from venvstacks.layout import lock_files
from venvstacks.lazy import lazy_modules
from venvstacks.lock import uvconfig
from venvstacks.platforms import host_platform
from venvstacks.runtimes.record import RuntimeRecord, read_record, record_text, unpacked_in
from venvstacks.stack.kinds import LayerKind
from venvstacks.stack.model import LayerSpec
from venvstacks.stack.targets import layer_target

if TYPE_CHECKING:
    from venvstacks.engine import outputs
    from venvstacks.layers import dynlib, envs, linking
    from venvstacks.lock import locking, validity
    from venvstacks.runtimes import cache
    from venvstacks.runtimes.record import CacheEntry
else:
    outputs, dynlib, envs, linking, locking, validity, cache = lazy_modules(
        "venvstacks.engine.outputs",
        "venvstacks.layers.dynlib",
        "venvstacks.layers.envs",
        "venvstacks.layers.linking",
        "venvstacks.lock.locking",
        "venvstacks.lock.validity",
        "venvstacks.runtimes.cache",
    )


def log(message: str) -> None:
    # stderr: doit captures task stdout at the default verbosity, and these lines matter.
    say(f"   {message}")


def fetch_runtime(settings: Settings, name: str) -> None:
    """`runtime:`, the one step that resolves a runtime: it writes the record all others read."""
    layer = settings.stack.layer(name)
    entry = cache.ensure_runtime(layer.python_implementation, settings.runtimes, log, settings.platform)
    write_if_changed(settings.runtime_state(layer), record_text(entry.record))


def runtime_in_cache(settings: Settings, name: str) -> bool:
    """`runtime:` is done only while the runtime cache in use still holds what it recorded
    (the cache may have been deleted, moved, or `--runtime-cache` changed since)."""
    record = read_record(settings.runtime_state(settings.stack.layer(name)))
    return record is not None and unpacked_in(settings.runtimes.cache_dir, record) is not None


def runtime_record(settings: Settings, layer: LayerSpec) -> RuntimeRecord:
    """What `runtime:<rt>` recorded about the runtime a layer runs on. Each step reads it
    once and hands it on: it crosses a task boundary, so it comes from the file that task
    wrote (tasks may run in other processes, or in another run)."""
    path = settings.runtime_state(layer)
    record = read_record(path)
    if record is None:
        name = settings.runtime_layer(layer).env_name
        raise VenvStacksError(
            f"{path}: no runtime record for {name}; `venvstacks build` (or `doit runtime:{name}`) writes it"
        )
    return record


def unpacked_runtime(settings: Settings, layer: LayerSpec, record: RuntimeRecord) -> CacheEntry:
    """Where the runtime cache holds the recorded runtime unpacked (never resolved again)."""
    entry = unpacked_in(settings.runtimes.cache_dir, record)
    if entry is None:
        name = settings.runtime_layer(layer).env_name
        raise VenvStacksError(
            f"the runtime cache {settings.runtimes.cache_dir} no longer holds {record.implementation} "
            f"{record.version}, which runtime:{name} recorded; run again and runtime:{name} fetches it"
        )
    return entry


def lock(settings: Settings, name: str) -> None:
    layer = settings.stack.layer(name)
    runtime = unpacked_runtime(settings, layer, runtime_record(settings, layer))
    python = runtime.python_dir / host_platform().runtime_python
    # Where lower layers may be built (this machine's folder first, then this run's other
    # platforms): their records of what their packages depend on spare uv asking the index.
    built = dict.fromkeys([settings.host().platform_dir, *(s.platform_dir for s in settings.builds())])
    version = runtime.record.version
    locking.lock_layer(settings.stack, layer, python, version, settings.lock, log, tuple(built))


def install(settings: Settings, name: str) -> None:
    layer = settings.stack.layer(name)
    record = runtime_record(settings, layer)
    pylock = lock_files(settings.stack, layer).pylock
    target = layer_target(layer, settings.platform.name, record.version)
    report = functools.partial(progress.note, name)  # the heartbeat prints the latest
    how = envs.Install(
        target, uvconfig.install_settings(settings.stack), _cross_python(settings, layer), report
    )
    if layer.kind is LayerKind.RUNTIME:
        envs.install_runtime_layer(
            unpacked_runtime(settings, layer, record), settings.env_dir(layer), pylock, how, log
        )
    else:
        runtime_dir = settings.env_dir(settings.runtime_layer(layer))
        envs.install_venv_layer(record, runtime_dir, settings.env_dir(layer), pylock, how, log)


def _cross_python(settings: Settings, layer: LayerSpec) -> Path | None:
    """When cross-building, this machine's runtime of the same request: uv runs it in
    place of the target's (told the target's platform and version)."""
    if settings.is_host:
        return None
    host = settings.host()
    return (
        unpacked_runtime(host, layer, runtime_record(host, layer)).python_dir / host_platform().runtime_python
    )


def build(settings: Settings, name: str) -> None:
    """`build:`, wiring an installed layer to the layers below it (layers/linking.py)."""
    layer = settings.stack.layer(name)
    try:
        linking.link_layer(link_plan(settings, layer))
    except dynlib.AmbiguousLibrary as exc:
        raise SpecError(settings.stack.path, layer.env_name, "dynlib_exclude", str(exc)) from None


def export(settings: Settings, name: str) -> None:
    layer = settings.stack.layer(name)
    record = runtime_record(settings, layer)
    outputs.export_one(settings.stack, layer, settings.env_dir(layer), settings.output, record)


def publish(settings: Settings, name: str) -> None:
    layer = settings.stack.layer(name)
    record = runtime_record(settings, layer)
    if not record.portable:
        runtime = settings.runtime_layer(layer).env_name
        on = "" if runtime == name else f" runs on {runtime}, which"
        what = f"{name}{on} was packed from the local CPython at {record.origin}"
        if not settings.output.allow_local_runtime:
            raise VenvStacksError(
                f"refusing to publish: {what}, {LOCAL_ONLY}; {portable_ways(settings, record)}"
            )
        if warn_once(runtime):
            log(
                f"warning: publishing anyway (--allow-local-runtime): {runtime} was packed from the "
                f"local CPython at {record.origin}; every layer published on it {LOCAL_ONLY}"
            )
    outputs.publish_one(settings.stack, layer, settings.env_dir(layer), settings.output, record)


LOCAL_ONLY = "runs on machines like this one only"


def portable_ways(settings: Settings, record: RuntimeRecord) -> str:
    """What to run for a portable runtime instead of a local one (publish's refusal)."""
    cached = settings.runtimes.cache_dir / record.entry_name
    return (
        f"for a portable runtime, run again with --runtime-source download (python-build-standalone's "
        f"CPython; add --runtime-mirror URL where GitHub cannot be reached) or --runtime-archive "
        f"{record.request}=PATH_OR_URL#sha256=HEX, or delete the cached local one ({cached}) so "
        "the default source downloads again; or publish it as it is with --allow-local-runtime "
        "(plain doit: the VENVSTACKS_RUNTIME_* and VENVSTACKS_ALLOW_LOCAL_RUNTIME=1 variables); "
        "`venvstacks docs runtimes` tells more"
    )


_warned: set[str] = set()  # runtimes whose --allow-local-runtime warning this run gave
_warned_lock = threading.Lock()


def new_run() -> None:
    """A run starts (the graph is made for it): its warnings are given afresh."""
    with _warned_lock:
        _warned.clear()


def warn_once(key: str) -> bool:
    """Whether this run has not warned about ``key`` yet (parallel tasks ask at once)."""
    with _warned_lock:
        first = key not in _warned
        _warned.add(key)
    return first


def link_plan(settings: Settings, layer: LayerSpec) -> linking.LinkPlan:
    version = runtime_record(settings, layer).version
    locks = validity.Locks(settings.stack)  # lower layers' lock metadata: their deployed names

    def peer(lower: LayerSpec) -> linking.Peer:
        return linking.Peer(settings.env_dir(lower), locks.of(lower).deployed_name)

    runtime = None if layer.runtime is None else peer(settings.runtime_layer(layer))
    frameworks = tuple(peer(settings.stack.layer(n)) for n in layer.lower)
    root = settings.stack.root
    return linking.LinkPlan(
        layer, settings.env_dir(layer), version, runtime, frameworks, root, settings.platform
    )
