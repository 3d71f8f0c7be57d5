"""Local export and publishing as steps of the task graph.

Computes each layer's common metadata (upstream's field names) from its lock metadata, its
runtime and its modules, and hands the layer to `export.py` or `publish.py`. Each step reads
the documents it needs once (`contents.BuiltLayer`: the lock files, the layer's config; the
runtime record comes from `actions.py`) and hands the parsed objects on. The stack-wide
`venvstacks.json` is regenerated from the per-layer files after every layer (the other
layers' files, written by other tasks, are read; this layer's metadata is handed on), so it
always describes exactly what the output folder holds.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from venvstacks.archive.formats import ArchiveFormat
from venvstacks.engine import contents, progress
from venvstacks.fsutil import sha256_bytes, write_if_changed
from venvstacks.layout import OutputOptions, export_sbom_file
from venvstacks.lock.lockmeta import LockMetadata
from venvstacks.lock.validity import Locks
from venvstacks.platforms import PLATFORMS, host_platform
from venvstacks.runtimes.record import RuntimeRecord
from venvstacks.ship import export, publish, sbom
from venvstacks.ship.layermeta import LayerMetadata, SupportModule
from venvstacks.stack.kinds import LayerKind
from venvstacks.stack.model import LayerSpec, StackSpec
from venvstacks.stack.modfiles import module_hash, module_name
from venvstacks.stack.targets import layer_target, macos_of


def layer_metadata(
    stack: StackSpec, layer: LayerSpec, runtime: RuntimeRecord, locks: Locks | None = None
) -> LayerMetadata:
    """The fields shared by exported and published layers (for the runtime's platform), from
    the step's `locks` (read afresh without them)."""
    locks = locks or Locks(stack)
    platform = PLATFORMS[runtime.platform]
    locked = locks.of(layer)
    meta = locked.meta or LockMetadata()
    lowers = locks.lowers(layer)
    runtime_layer = lowers[-1] if lowers else locked
    launch = layer.launch_module
    # The glibc or macOS version the installed wheels were chosen for.
    target = layer_target(layer, platform.name, runtime.version)
    return LayerMetadata(
        layer_name=layer.env_name,
        install_target=locked.deployed_name,
        requirements_hash=meta.requirements_hash,
        lock_version=locked.lock_version,
        locked_at=meta.locked_at,
        runtime_layer=runtime_layer.deployed_name,
        python_implementation=f"{runtime.implementation}@{runtime.version}",
        # POSIX venvs link to the runtime's python, so only runtimes are bound to it; Windows
        # venvs hold a copy of its launcher.
        bound_to_implementation=layer.kind is LayerKind.RUNTIME or platform.bound_to_runtime,
        # Our additions: where the runtime came from, and whether it runs elsewhere.
        runtime_source=runtime.source,
        runtime_portable=runtime.portable,
        linux_target=target.linux_target,
        macosx_target=target.macosx_target,
        required_layers=None
        if layer.kind is LayerKind.RUNTIME
        else tuple(lower.deployed_name for lower in lowers[:-1]),
        app_launch_module=None if launch is None else module_name(launch),
        app_launch_module_hash=None if launch is None else module_hash(launch, stack.root),
        app_support_modules=None
        if launch is None
        else tuple(SupportModule(module_name(m), module_hash(m, stack.root)) for m in layer.support_modules),
    )


def export_one(
    stack: StackSpec, layer: LayerSpec, env_dir: Path, options: OutputOptions, runtime: RuntimeRecord
) -> None:
    locks = Locks(stack)
    metadata = layer_metadata(stack, layer, runtime, locks)
    target = options.export_metadata(layer)
    target.unlink(missing_ok=True)  # the layer is not exported until this is back
    built = contents.BuiltLayer.read(stack, layer, env_dir, runtime, locks)
    # Another system's layer is only copied: its postinstall.py runs on that system.
    native = runtime.platform == host_platform().name
    top = metadata.install_target
    export.export_layer(env_dir, options.export_dir, top, built.config, postinstall=native)
    text = sbom.sbom_text(contents.layer_contents(built))
    write_if_changed(export_sbom_file(options.export_dir, top), text)
    metadata = replace(metadata, sbom_sha256=sha256_bytes(text.encode()))
    write_if_changed(target, metadata.text())
    publish.write_stack_metadata(options.export_dir, _kinds_and_names(stack), written=metadata)


def publish_one(
    stack: StackSpec,
    layer: LayerSpec,
    env_dir: Path,
    options: OutputOptions,
    runtime: RuntimeRecord,
) -> None:
    built = contents.BuiltLayer.read(stack, layer, env_dir, runtime)
    metadata = layer_metadata(stack, layer, runtime, built.locks)
    to_publish = publish.LayerToPublish(env_dir, metadata, built.config, contents.sbom_writer(built))
    publish_opts = publish_options(options, layer)
    result = publish.publish_layer(to_publish, publish_opts, progress=ProgressLine(layer.env_name))
    publish.write_stack_metadata(
        publish_opts.output_dir, _kinds_and_names(stack), publish_opts.suffix, written=result.metadata
    )


def dry_run(
    stack: StackSpec, layer: LayerSpec, env_dir: Path, options: OutputOptions, runtime: RuntimeRecord
) -> LayerMetadata:
    built = contents.BuiltLayer.read(stack, layer, env_dir, runtime)
    to_publish = publish.LayerToPublish(
        env_dir, layer_metadata(stack, layer, runtime, built.locks), built.config
    )
    return publish.publish_layer(to_publish, publish_options(options, layer, dry_run=True)).metadata


def publish_options(
    options: OutputOptions, layer: LayerSpec, dry_run: bool = False
) -> publish.PublishOptions:
    """What the publisher is told: the doit target (`options.publish_metadata`) and the file
    the publisher writes (`PublishOptions.layer_metadata_path`) are named by one layout function.
    A macOS layer's `target_platform` names its own deployment target (`macosx_target`)."""
    platform = options.platform
    return publish.PublishOptions(
        layer_platform=platform.tag(macos_of(layer)) if platform.is_macos else None,
        output_dir=options.publish_dir,
        target_platform=options.target_platform,
        archive_format=ArchiveFormat(options.format),
        tag_outputs=options.tag_outputs,
        force=options.force,
        dry_run=dry_run,
        bytecode=options.bytecode,
    )


class ProgressLine:
    """Leaves a note of how far an archive has got; the heartbeat prints it (progress.py)."""

    def __init__(self, layer: str) -> None:
        self.layer = layer

    def __call__(self, _name: str, done: int, total: int) -> None:
        size = f"{total / 1e6:.0f} MB"
        # xz counts the input compressed so far, in 1 MiB steps of its 32 MiB blocks.
        text = f"{done * 100 // total}% of {size} archived" if done and total else f"archiving {size}"
        progress.note(self.layer, text)


def _kinds_and_names(stack: StackSpec) -> list[tuple[LayerKind, str]]:
    return [(layer.kind, layer.env_name) for layer in stack.layers]
