"""What a run leaves behind, said at its end: layers built or up to date and where, how to
run each app, each published archive (size, sha256) and each exported folder."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from venvstacks.engine.settings import Settings
from venvstacks.engine.taskkind import TaskKind, TaskName
from venvstacks.layout import METADATA_DIR
from venvstacks.lazy import lazy_modules
from venvstacks.runtimes.record import read_record
from venvstacks.stack.kinds import LayerKind
from venvstacks.stack.model import LayerSpec
from venvstacks.stack.modfiles import module_name

if TYPE_CHECKING:
    from venvstacks.ship import layermeta
else:
    # Only exports and publishes are told from their metadata; a no-op build reads none.
    (layermeta,) = lazy_modules("venvstacks.ship.layermeta")


def summary_lines(settings: Settings, ran: dict[str, bool]) -> list[str]:
    """`ran`: each task the run saw -> whether it ran (False: it was up to date)."""
    lines = []
    for build in settings.builds():
        layers = {layer.env_name: layer for layer in build.stack.layers}
        platform = None if build.is_host else build.platform.name
        by_kind: dict[TaskKind, list[tuple[LayerSpec, bool]]] = {}
        for task, did_run in ran.items():
            name = TaskName.parse(task)
            if name is not None and name.platform == platform and name.layer in layers:
                by_kind.setdefault(name.kind, []).append((layers[name.layer], did_run))
        if by_kind and not build.is_host:
            lines.append(f"for {build.platform.name} (cross-built):")
        exported = bool(by_kind.get(TaskKind.EXPORT))  # then the apps to run are the exported ones
        lines += _built(build, by_kind.get(TaskKind.BUILD, []), with_apps=not exported)
        lines += _exported(build, by_kind.get(TaskKind.EXPORT, []))
        lines += _published(build, by_kind.get(TaskKind.PUBLISH, []))
        lines += _local_runtimes(build, [layer for pairs in by_kind.values() for layer, _ in pairs])
    return lines


def _local_runtimes(settings: Settings, layers: list[LayerSpec]) -> list[str]:
    """Which runtimes of the run came from a CPython on this machine, said once at its end."""
    lines = []
    for name in sorted({settings.runtime_layer(layer).env_name for layer in layers}):
        record = read_record(settings.runtime_state(settings.stack.layer(name)))
        if record is not None and not record.portable:
            lines.append(
                f"local runtime: {name} is the local CPython at {record.origin}, packed here: it and the "
                "layers on it run on machines like this one only (`venvstacks docs runtimes`: portable ones)"
            )
    return lines


def _built(settings: Settings, built: list[tuple[LayerSpec, bool]], with_apps: bool) -> list[str]:
    if not built:
        return []
    width = max(len(layer.env_name) for layer, _ in built)
    lines = []
    for layer, did_run in built:
        state = "built" if did_run else "up to date"
        lines.append(f"{state:<10}  {layer.env_name:<{width}}  {settings.env_dir(layer)}")
    if with_apps and settings.is_host:
        lines += [_run_line(settings, layer, settings.env_dir(layer)) for layer, _ in built if _is_app(layer)]
    return lines


def _exported(settings: Settings, exported: list[tuple[LayerSpec, bool]]) -> list[str]:
    if not exported:
        return []
    out = settings.output
    lines = [f"exported to {out.export_dir}:"]
    apps = []
    for layer, did_run in exported:
        meta = layermeta.LayerMetadata.read(out.export_metadata(layer))
        folder = out.export_dir / (layer.env_name if meta is None else meta.install_target)
        lines.append(f"  {folder}{'' if did_run else '  (up to date)'}")
        if _is_app(layer) and settings.is_host:
            apps.append(_run_line(settings, layer, folder))
    return lines + apps


def _published(settings: Settings, published: list[tuple[LayerSpec, bool]]) -> list[str]:
    if not published:
        return []
    out = settings.output
    rows = []
    # Read from the files the tasks wrote: a task may have run in another process, or in an
    # earlier run (up to date), so its result is not in memory here.
    for layer, did_run in published:
        meta = layermeta.LayerMetadata.read(out.publish_metadata(layer))
        meta = meta or layermeta.LayerMetadata(layer.env_name)
        size = _size(meta.archive_size or 0)
        rows.append((meta.archive_name or layer.env_name, size, meta.archive_sha256 or "?", did_run))
    # Columns, so the sizes and hashes line up under each other.
    names = max(len(row[0]) for row in rows)
    sizes = max(len(row[1]) for row in rows)
    lines = [
        f"published to {out.publish_dir} (metadata in {out.publish_dir / METADATA_DIR}; "
        "each archive's SBOM beside it as <archive>.cdx.json):"
    ]
    for name, size, sha256, did_run in rows:
        lines.append(
            f"  {name:<{names}}  {size:>{sizes}}  sha256:{sha256}" + ("" if did_run else "  (up to date)")
        )
    return lines


def _is_app(layer: LayerSpec) -> bool:
    return layer.kind is LayerKind.APPLICATION and layer.launch_module is not None


def _run_line(settings: Settings, layer: LayerSpec, folder: Path) -> str:
    assert layer.launch_module is not None
    argv = [str(folder / settings.platform.layer_python), "-m", module_name(layer.launch_module)]
    return f"run {layer.env_name} with: {shlex.join(argv)}"


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} bytes"
    return f"{n / 1e3:.1f} kB" if n < 1_000_000 else f"{n / 1e6:.1f} MB"
