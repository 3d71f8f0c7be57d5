"""Publishing: one reproducible archive per layer, and its ``__venvstacks__`` metadata.

``publish_layer`` archives the files ``export.layer_entries`` ships, plus the layer's file
manifest (``manifest.py``), with the lock time as every member's time, so the same inputs
give the same bytes; it adds the archive fields to the metadata the caller computed and
writes the layer's metadata file last, so a crash never leaves metadata naming an archive
that was not finished. It plans first (``plan_layer``, pure): an unchanged layer whose
archive still exists is not archived again, which is what makes ``--dry-run`` and
incremental publishing one decision. ``write_stack_metadata`` gathers the layer files into
``venvstacks.json``. A layer given an ``sbom`` writer also gets ``<archive name>.cdx.json``
beside its archive (sbom.py) and its sha256 as ``sbom_sha256``; the archive does not change.
With ``options.bytecode`` (``--bytecode``) the archive also carries reproducible pycs of the
layer's library (bytecode.py) and the metadata says ``bytecode_included: true``; without it
the field is absent and the archive is byte-identical to one published before the option.
Each field, ``archive_build``'s rules and the folder layout are in
docs/publishing.md.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from venvstacks.archive.formats import ArchiveEntry, ArchiveFormat
from venvstacks.archive.writer import write_archive
from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import (
    deleted_if_left,
    make_folder,
    remove_stale_temporaries,
    sha256_bytes,
    temporary_file,
    write_if_changed,
)
from venvstacks.jsondoc import read_document
from venvstacks.layerconfig import LayerConfig
from venvstacks.layout import FILES_MANIFEST, layer_metadata_file, sbom_name, stack_metadata_file, tag_suffix
from venvstacks.platforms import platform_tag
from venvstacks.ship.bytecode import bytecode_entries, compiler_for, with_bytecode_postinstall
from venvstacks.ship.export import layer_entries
from venvstacks.ship.layermeta import LayerMetadata, StackMetadata
from venvstacks.ship.manifest import archive_manifest, manifest_sha256, manifest_text
from venvstacks.stack.kinds import LayerKind

Status = Literal["built", "unchanged", "would-build", "would-skip"]
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

_stack_file_lock = threading.Lock()

LayerProgress = Callable[[str, int, int], None]
"""Called with (layer_name, bytes done, bytes total) while an archive is written."""


@dataclass(frozen=True)
class PublishOptions:
    output_dir: Path
    target_platform: str = field(default_factory=platform_tag)
    archive_format: ArchiveFormat = ArchiveFormat.TAR_XZ
    tag_outputs: bool = False
    force: bool = False
    dry_run: bool = False
    bytecode: bool = False  # ship unchecked-hash pycs of the layer's library (bytecode.py)
    # The layer's own target_platform when it is not the run's (a macOS layer names its
    # deployment target); metadata file names keep the run's (`suffix`).
    layer_platform: str | None = None

    @property
    def layer_target_platform(self) -> str:
        return self.layer_platform or self.target_platform

    @property
    def suffix(self) -> str:
        return tag_suffix(self.target_platform, self.tag_outputs)

    def layer_metadata_path(self, layer_name: str) -> Path:
        return layer_metadata_file(self.output_dir, layer_name, self.suffix)


SbomWriter = Callable[[str], str]
"""Given the archive's sha256, the text of the layer's SBOM (see sbom.py)."""


@dataclass(frozen=True)
class LayerToPublish:
    layer_dir: Path
    metadata: LayerMetadata  # the common fields (engine/outputs.layer_metadata)
    config: LayerConfig  # its venvstacks_layer.json, as the caller read it
    sbom: SbomWriter | None = None

    @property
    def layer_name(self) -> str:
        return str(self.metadata.layer_name)


@dataclass(frozen=True)
class PublishResult:
    layer_name: str
    metadata: LayerMetadata
    archive_path: Path
    status: Status


# --- planning (pure) -------------------------------------------------------------------


@dataclass(frozen=True)
class LayerPlan:
    metadata: LayerMetadata  # without archive_size/archive_hashes when rebuild is True
    rebuild: bool


def plan_layer(
    layer: LayerToPublish,
    options: PublishOptions,
    previous: LayerMetadata | None,
    archive_exists: Callable[[str], bool],
) -> LayerPlan:
    """Decide the layer's archive metadata and whether the archive must be (re)built."""
    missing = [f for f in REQUIRED_FIELDS if getattr(layer.metadata, f) is None]
    if missing:
        raise VenvStacksError(f"layer {layer.metadata.layer_name!r}: missing {missing}")
    inputs = replace(
        layer.metadata.without_archive(),
        target_platform=options.layer_target_platform,
        archive_format=str(options.archive_format),
        # None otherwise: default metadata stays as it always was
        bytecode_included=True if options.bytecode else None,
    )
    build = 1
    if previous is not None and previous.lock_version == inputs.lock_version:
        last = previous.archive_build or 0
        if previous.without_archive() == inputs and last > 0 and not options.force:
            if archive_exists(str(previous.archive_name)):
                return LayerPlan(previous, rebuild=False)
            build = last  # same inputs give the same bytes: a lost archive keeps its number
        else:
            build = last + 1
    tag = (options.layer_target_platform, build) if options.tag_outputs else None
    name = archive_name(inputs.install_target, options.archive_format, tag)
    return LayerPlan(replace(inputs, archive_build=build, archive_name=name), rebuild=True)


def archive_name(install_target: str, fmt: ArchiveFormat, tag: tuple[str, int] | None = None) -> str:
    """`NAME.tar.xz`, or with `--tag-outputs` (tag: platform, archive build) `NAME-PLATFORM-BUILD.tar.xz`."""
    name = install_target if tag is None else f"{install_target}-{tag[0]}-{tag[1]}"
    return name + fmt.suffix


def lock_epoch(locked_at: str) -> int:
    """Whole seconds since the Unix epoch of an ISO 8601 time (UTC if no zone given)."""
    try:
        when = datetime.fromisoformat(locked_at)
    except (TypeError, ValueError):
        raise VenvStacksError(f"locked_at {locked_at!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


# --- effects -----------------------------------------------------------------------------


def publish_layer(
    layer: LayerToPublish,
    options: PublishOptions,
    *,
    progress: LayerProgress | None = None,
) -> PublishResult:
    """Archive one layer (unless unchanged) and write its ``env_metadata`` file."""
    meta_path = options.layer_metadata_path(layer.layer_name)
    previous = LayerMetadata.read(meta_path)  # None if unreadable: that only means "rebuild"
    plan = plan_layer(layer, options, previous, lambda n: (options.output_dir / n).is_file())
    metadata = plan.metadata
    archive_path = options.output_dir / str(metadata.archive_name)
    if options.dry_run:
        planned: Status = "would-build" if plan.rebuild else "would-skip"
        return PublishResult(layer.layer_name, metadata, archive_path, planned)
    if plan.rebuild:
        report = None
        if progress is not None:
            name = layer.layer_name
            report = lambda done, total: progress(name, done, total)  # noqa: E731
        top = metadata.install_target
        with _layer_entries(layer, options, top) as entries:
            manifest = manifest_text(archive_manifest(entries, top))
            with _manifest_file(options.output_dir, manifest) as manifest_file:
                info = write_archive(
                    archive_path,
                    [*entries, ArchiveEntry(f"{top}/{FILES_MANIFEST.as_posix()}", manifest_file)],
                    options.archive_format,
                    epoch=lock_epoch(str(metadata.locked_at)),
                    progress=report,
                )
        metadata = replace(
            metadata,
            archive_size=info.size,
            archive_hashes={"sha256": info.sha256},
            files_manifest_sha256=manifest_sha256(manifest),
        )
    if layer.sbom is not None:
        # Rewritten even beside an unchanged archive: a lost or stale SBOM comes back.
        text = layer.sbom(str(metadata.archive_sha256))
        write_if_changed(options.output_dir / sbom_name(str(metadata.archive_name)), text)
        metadata = replace(metadata, sbom_sha256=sha256_bytes(text.encode()))
    # Written after the archive: a crash in between leaves old metadata, which no longer
    # matches, so the next run rebuilds instead of trusting a half-made archive.
    remove_stale_temporaries(meta_path.parent)  # a killed run's half-written metadata
    write_if_changed(meta_path, metadata.text())
    status: Status = "built" if plan.rebuild else "unchanged"
    return PublishResult(layer.layer_name, metadata, archive_path, status)


def write_stack_metadata(
    output_dir: Path,
    layers: Sequence[tuple[LayerKind, str]],
    suffix: str = "",
    written: LayerMetadata | None = None,
) -> Path:
    """Regenerate ``venvstacks.json`` from the layer metadata files in ``output_dir``.

    ``layers`` are (kind, layer name) in dependency order, which is also their order in the
    file; a layer without a metadata file (not exported or published yet) is left out, so
    the file always describes exactly what the folder holds. Export and publish both use it,
    handing on the metadata they just wrote (``written``), which is not read back.
    """
    grouped: dict[LayerKind, list[LayerMetadata]] = {kind: [] for kind in LayerKind}
    with _stack_file_lock:  # parallel layer tasks share the file
        for kind, name in layers:
            if written is not None and name == written.layer_name:
                grouped[kind].append(written)
                continue
            per_layer = layer_metadata_file(output_dir, name, suffix)
            data = read_document(per_layer)
            if data is not None:
                grouped[kind].append(LayerMetadata.from_json(data, per_layer))
        path = stack_metadata_file(output_dir, suffix)
        remove_stale_temporaries(path.parent)
        write_if_changed(path, StackMetadata({k: tuple(v) for k, v in grouped.items()}).text())
    return path


@contextlib.contextmanager
def _manifest_file(folder: Path, text: str) -> Iterator[Path]:
    """``text`` in a hidden file of ``folder`` while the archive is written, then removed."""
    make_folder(folder, "publish folder")
    # Named and registered before it exists, as the archive itself (see write_archive); a
    # killed publish's leftover is removed by the next one, as a half-written archive is.
    with deleted_if_left(temporary_file(folder, "files-manifest")) as path:
        with path.open("x", encoding="utf-8", newline="\n") as f:
            f.write(text)
        yield path


@contextlib.contextmanager
def _layer_entries(layer: LayerToPublish, options: PublishOptions, top: str) -> Iterator[list[ArchiveEntry]]:
    """The layer's shipped entries, with its compiled bytecode if `options.bytecode` (the pycs
    live in a scratch folder until the archive is written)."""
    entries = layer_entries(layer.layer_dir, top, layer.config)
    if not options.bytecode:
        yield entries
        return
    compiler = compiler_for(layer.layer_dir, layer.config, options.target_platform, layer.layer_name)
    with tempfile.TemporaryDirectory(prefix="venvstacks-bytecode-") as scratch:
        pycs = bytecode_entries(entries, top, compiler, Path(scratch))
        yield sorted(with_bytecode_postinstall(entries, top) + pycs)
