"""Publishing: one reproducible archive per layer, plus ``__venvstacks__/`` metadata.

The caller describes each layer with a :class:`LayerToPublish`: its build folder, its kind
(``"runtime"``, ``"framework"`` or ``"application"``) and the *common* metadata fields it
computed from the lock and the stack (``layer_name``, ``install_target``,
``requirements_hash``, ``lock_version``, ``locked_at``, ``runtime_layer``,
``python_implementation``, ``bound_to_implementation``, and for upper layers
``required_layers``, for apps ``app_launch_module``, ``app_launch_module_hash`` and
``app_support_modules``; extra fields such as ``runtime_source`` pass through). This module
adds the archive fields ``archive_build``, ``archive_name``, ``target_platform``,
``archive_size``, ``archive_hashes`` (``{"sha256": ...}``) and our own ``archive_format``.

Entry points::

    result = publish_layer(layer, options, progress=cb)       # one layer
    results = publish_layers(layers, options, jobs=4)          # several, then venvstacks.json
    path = write_stack_metadata(options, results)              # venvstacks.json on its own

``publish_layer`` skips the archive when the metadata computed from the inputs equals the
previous ``env_metadata`` file and the archive still exists (archive bytes are never
re-hashed for that check), unless ``options.force``. ``archive_build`` starts at 1 for each
``lock_version`` and goes up by one on every forced or changed rebuild; a missing archive
whose inputs are unchanged is rebuilt under its old number (the bytes are the same). With
``options.dry_run`` nothing is written and the metadata that would be written is returned
(a layer that would be rebuilt has no ``archive_size``/``archive_hashes`` yet).
``publish_layers`` compresses independent layers on a thread pool (the compressors release
the GIL); every output byte is the same as in a serial run.
"""

from __future__ import annotations

import json
import sysconfig
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import dump_json, write_if_changed
from venvstacks.ship.archives import ArchiveFormat, write_archive
from venvstacks.ship.export import layer_entries

LayerKind = Literal["runtime", "framework", "application"]
Status = Literal["built", "unchanged", "would-build", "would-skip"]
METADATA_DIR = "__venvstacks__"
STACK_KEYS: dict[LayerKind, str] = {
    "runtime": "runtimes",
    "framework": "frameworks",
    "application": "applications",
}
REQUIRED_FIELDS = (
    "layer_name",
    "install_target",
    "requirements_hash",
    "lock_version",
    "locked_at",
    "runtime_layer",
    "python_implementation",
    "bound_to_implementation",
)
# Fields describing one archive build rather than the layer's inputs.
ARCHIVE_BUILD_FIELDS = ("archive_build", "archive_name", "archive_size", "archive_hashes")

LayerProgress = Callable[[str, int, int], None]
"""Called with (layer_name, bytes done, bytes total) while an archive is written."""


def default_platform() -> str:
    """This machine's platform tag as upstream spells it, e.g. ``linux_x86_64``."""
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


@dataclass(frozen=True)
class PublishOptions:
    output_dir: Path
    target_platform: str = field(default_factory=default_platform)
    archive_format: ArchiveFormat = ArchiveFormat.TAR_XZ
    tag_outputs: bool = False
    force: bool = False
    dry_run: bool = False

    @property
    def metadata_dir(self) -> Path:
        return self.output_dir / METADATA_DIR

    def tagged(self, name: str) -> str:
        return f"{name}-{self.target_platform}" if self.tag_outputs else name

    def layer_metadata_path(self, layer_name: str) -> Path:
        return self.metadata_dir / "env_metadata" / f"{self.tagged(layer_name)}.json"

    def stack_metadata_path(self) -> Path:
        return self.metadata_dir / f"{self.tagged('venvstacks')}.json"


@dataclass(frozen=True)
class LayerToPublish:
    layer_dir: Path
    kind: LayerKind
    metadata: Mapping[str, Any]

    @property
    def layer_name(self) -> str:
        return str(self.metadata["layer_name"])


@dataclass(frozen=True)
class PublishResult:
    layer_name: str
    kind: LayerKind
    metadata: dict[str, Any]
    archive_path: Path
    status: Status


# --- planning (pure) -------------------------------------------------------------------


@dataclass(frozen=True)
class LayerPlan:
    metadata: dict[str, Any]  # without archive_size/archive_hashes when rebuild is True
    rebuild: bool


def plan_layer(
    layer: LayerToPublish,
    options: PublishOptions,
    previous: Mapping[str, Any] | None,
    archive_exists: Callable[[str], bool],
) -> LayerPlan:
    """Decide the layer's archive metadata and whether the archive must be (re)built."""
    missing = [f for f in REQUIRED_FIELDS if f not in layer.metadata]
    if missing:
        raise VenvStacksError(f"layer {layer.metadata.get('layer_name')!r}: missing {missing}")
    inputs = dict(layer.metadata)
    inputs["target_platform"] = options.target_platform
    inputs["archive_format"] = str(options.archive_format)
    build = 1
    if previous is not None and previous.get("lock_version") == inputs["lock_version"]:
        last = int(previous.get("archive_build", 0))
        kept = {k: v for k, v in previous.items() if k not in ARCHIVE_BUILD_FIELDS}
        if kept == inputs and last > 0 and not options.force:
            if archive_exists(str(previous.get("archive_name"))):
                return LayerPlan(dict(previous), rebuild=False)
            build = last  # same inputs give the same bytes: a lost archive keeps its number
        else:
            build = last + 1
    name = str(inputs["install_target"])
    if options.tag_outputs:
        name = f"{name}-{options.target_platform}-{build}"
    inputs["archive_build"] = build
    inputs["archive_name"] = name + options.archive_format.suffix
    return LayerPlan(inputs, rebuild=True)


def lock_epoch(locked_at: str) -> int:
    """Whole seconds since the Unix epoch of an ISO 8601 time (UTC if no zone given)."""
    try:
        when = datetime.fromisoformat(locked_at)
    except (TypeError, ValueError):
        raise VenvStacksError(f"locked_at {locked_at!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def stack_metadata(results: Sequence[PublishResult]) -> dict[str, Any]:
    """The ``venvstacks.json`` content: layer metadata grouped by kind, in the given order."""
    layers: dict[str, list[dict[str, Any]]] = {key: [] for key in STACK_KEYS.values()}
    for result in results:
        layers[STACK_KEYS[result.kind]].append(result.metadata)
    return {"layers": layers}


# --- effects -----------------------------------------------------------------------------


def publish_layer(
    layer: LayerToPublish,
    options: PublishOptions,
    *,
    progress: LayerProgress | None = None,
) -> PublishResult:
    """Archive one layer (unless unchanged) and write its ``env_metadata`` file."""
    meta_path = options.layer_metadata_path(layer.layer_name)
    previous = _read_previous(meta_path)
    plan = plan_layer(layer, options, previous, lambda n: (options.output_dir / n).is_file())
    metadata = plan.metadata
    archive_path = options.output_dir / str(metadata["archive_name"])
    if options.dry_run:
        planned: Status = "would-build" if plan.rebuild else "would-skip"
        return PublishResult(layer.layer_name, layer.kind, metadata, archive_path, planned)
    if plan.rebuild:
        report = None
        if progress is not None:
            name = layer.layer_name
            report = lambda done, total: progress(name, done, total)  # noqa: E731
        info = write_archive(
            archive_path,
            layer_entries(layer.layer_dir, str(metadata["install_target"])),
            options.archive_format,
            epoch=lock_epoch(str(metadata["locked_at"])),
            progress=report,
        )
        metadata = {**metadata, "archive_size": info.size, "archive_hashes": {"sha256": info.sha256}}
    # Written after the archive: a crash in between leaves old metadata, which no longer
    # matches, so the next run rebuilds instead of trusting a half-made archive.
    write_if_changed(meta_path, dump_json(metadata))
    status: Status = "built" if plan.rebuild else "unchanged"
    return PublishResult(layer.layer_name, layer.kind, metadata, archive_path, status)


def publish_layers(
    layers: Sequence[LayerToPublish],
    options: PublishOptions,
    *,
    jobs: int | None = None,
    progress: LayerProgress | None = None,
) -> list[PublishResult]:
    """Publish layers concurrently, then write ``venvstacks.json`` (unless dry-run).

    Results come back in the order given; that order is also the order in
    ``venvstacks.json``, so pass layers in dependency order.
    """
    names = [layer.layer_name for layer in layers]
    if len(set(names)) != len(names):
        raise VenvStacksError("publish: the same layer was given twice")
    with ThreadPoolExecutor(max_workers=jobs or None) as pool:
        futures = [pool.submit(publish_layer, lay, options, progress=progress) for lay in layers]
        results = [f.result() for f in futures]
    if not options.dry_run:
        write_stack_metadata(options, results)
    return results


def write_stack_metadata(options: PublishOptions, results: Sequence[PublishResult]) -> Path:
    path = options.stack_metadata_path()
    write_if_changed(path, dump_json(stack_metadata(results)))
    return path


def _read_previous(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # unreadable old metadata only means "rebuild"
    return data if isinstance(data, dict) else None
