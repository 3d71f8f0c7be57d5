"""Local export and publishing as steps of the task graph.

Computes each layer's common metadata (upstream's field names) from its lock metadata, its
runtime and its modules, and hands the layer to `export.py` or `publish.py`. The stack-wide
`venvstacks.json` is regenerated from the per-layer files after every layer, so it always
describes exactly what the output folder holds.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from venvstacks.archive.formats import ArchiveFormat
from venvstacks.engine import contents, progress
from venvstacks.fsutil import sha256_bytes, write_if_changed
from venvstacks.layout import OutputOptions, export_sbom_file, lock_files
from venvstacks.lock import locking
from venvstacks.lock.lockmeta import LockMetadata
from venvstacks.platforms import PLATFORMS, host_platform
from venvstacks.runtimes.record import RuntimeRecord
from venvstacks.ship import export, publish, sbom
from venvstacks.ship.layermeta import LayerMetadata, SupportModule
from venvstacks.stack.graph import lower_layers
from venvstacks.stack.kinds import LayerKind
from venvstacks.stack.model import LayerSpec, StackSpec
from venvstacks.stack.modfiles import module_hash, module_name
from venvstacks.stack.targets import layer_target, macos_of


def layer_metadata(stack: StackSpec, layer: LayerSpec, runtime: RuntimeRecord) -> LayerMetadata:
    """The fields shared by exported and published layers (for the runtime's platform)."""
    platform = PLATFORMS[runtime.platform]
    meta = LockMetadata.read(lock_files(stack, layer).meta) or LockMetadata()
    lowers = lower_layers(stack, layer)
    runtime_layer = lowers[-1] if lowers else layer
    launch = layer.launch_module
    # The glibc or macOS version the installed wheels were chosen for.
    target = layer_target(layer, platform.name, runtime.version).metadata()
    return LayerMetadata(
        layer_name=layer.env_name,
        install_target=locking.deployed_name(stack, layer),
        requirements_hash=meta.requirements_hash,
        lock_version=1 if meta.lock_version is None else meta.lock_version,
        locked_at=meta.locked_at,
        runtime_layer=locking.deployed_name(stack, runtime_layer),
        python_implementation=f"{runtime.implementation}@{runtime.version}",
        # POSIX venvs link to the runtime's python, so only runtimes are bound to it; Windows
        # venvs hold a copy of its launcher.
        bound_to_implementation=layer.kind is LayerKind.RUNTIME or platform.bound_to_runtime,
        # Our additions: where the runtime came from, and whether it runs elsewhere.
        runtime_source=runtime.source,
        runtime_portable=runtime.portable,
        linux_target=target.get("linux_target"),
        macosx_target=target.get("macosx_target"),
        required_layers=None
        if layer.kind is LayerKind.RUNTIME
        else tuple(locking.deployed_name(stack, lower) for lower in lowers[:-1]),
        app_launch_module=None if launch is None else module_name(launch),
        app_launch_module_hash=None if launch is None else module_hash(launch, stack.root),
        app_support_modules=None
        if launch is None
        else tuple(SupportModule(module_name(m), module_hash(m, stack.root)) for m in layer.support_modules),
    )


def export_one(
    stack: StackSpec, layer: LayerSpec, env_dir: Path, options: OutputOptions, runtime: RuntimeRecord
) -> None:
    metadata = layer_metadata(stack, layer, runtime)
    target = options.export_metadata(layer)
    target.unlink(missing_ok=True)  # the layer is not exported until this is back
    # Another system's layer is only copied: its postinstall.py runs on that system.
    native = runtime.platform == host_platform().name
    top = metadata.install_target
    export.export_layer(env_dir, options.export_dir, top, postinstall=native)
    text = sbom.sbom_text(contents.layer_contents(stack, layer, env_dir, runtime))
    write_if_changed(export_sbom_file(options.export_dir, top), text)
    metadata = replace(metadata, sbom_sha256=sha256_bytes(text.encode()))
    write_if_changed(target, metadata.text())
    publish.write_stack_metadata(options.export_dir, _kinds_and_names(stack))


def publish_one(
    stack: StackSpec,
    layer: LayerSpec,
    env_dir: Path,
    options: OutputOptions,
    runtime: RuntimeRecord,
) -> None:
    sbom_writer = contents.sbom_writer(stack, layer, env_dir, runtime)
    to_publish = publish.LayerToPublish(env_dir, layer_metadata(stack, layer, runtime), sbom_writer)
    publish_opts = publish_options(options, layer)
    publish.publish_layer(to_publish, publish_opts, progress=ProgressLine(layer.env_name))
    publish.write_stack_metadata(publish_opts.output_dir, _kinds_and_names(stack), publish_opts.suffix)


def dry_run(
    stack: StackSpec, layer: LayerSpec, env_dir: Path, options: OutputOptions, runtime: RuntimeRecord
) -> LayerMetadata:
    to_publish = publish.LayerToPublish(env_dir, layer_metadata(stack, layer, runtime))
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
