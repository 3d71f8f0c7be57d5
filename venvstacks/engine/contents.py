"""What a built layer holds, as its SBOM describes it (ship/sbom.py): gathered from the build
folder, the layer's lock and lock metadata, its lower layers' lock metadata and the runtime
record. Used by `publish:` and `export:` (the SBOM) and by `venvstacks licenses`."""

from __future__ import annotations

from pathlib import Path

from venvstacks.layerconfig import read_layer_config
from venvstacks.layout import lock_files
from venvstacks.lock import locking
from venvstacks.lock.lockmeta import LockMetadata
from venvstacks.lock.pylockdoc import Pylock
from venvstacks.runtimes.record import RuntimeRecord
from venvstacks.ship import sbom
from venvstacks.ship.distinfo import installed_distributions
from venvstacks.ship.publish import SbomWriter
from venvstacks.stack.graph import lower_layers
from venvstacks.stack.kinds import LayerKind
from venvstacks.stack.model import LayerSpec, StackSpec


def layer_ref(stack: StackSpec, layer: LayerSpec) -> sbom.LayerRef:
    meta = LockMetadata.read(lock_files(stack, layer).meta) or LockMetadata()
    return sbom.LayerRef(
        install_target=locking.deployed_name(stack, layer),
        kind=layer.kind,
        lock_version=1 if meta.lock_version is None else meta.lock_version,
        requirements_hash=str(meta.requirements_hash),
    )


def layer_contents(
    stack: StackSpec,
    layer: LayerSpec,
    env_dir: Path,
    runtime: RuntimeRecord,
    archive_sha256: str | None = None,
) -> sbom.LayerContents:
    site_dir = read_layer_config(env_dir).site_dir
    files = lock_files(stack, layer)
    meta = LockMetadata.read(files.meta) or LockMetadata()
    installed = installed_distributions(env_dir, site_dir)
    return sbom.LayerContents(
        layer=layer_ref(stack, layer),
        layer_name=layer.env_name,
        locked_at=str(meta.locked_at),
        packages=sbom.packages(installed, Pylock.read(files.pylock)),
        runtime=runtime_component(runtime) if layer.kind is LayerKind.RUNTIME else None,
        lowers=tuple(layer_ref(stack, lower) for lower in lower_layers(stack, layer)),
        archive_sha256=archive_sha256,
    )


def runtime_component(record: RuntimeRecord) -> sbom.Runtime:
    """A runtime layer's CPython, from what `runtime:` recorded."""
    # A download or an explicit archive is a python-build-standalone archive, named by its file.
    build = None if record.source == "local" else record.origin.rstrip("/").rsplit("/", 1)[-1]
    return sbom.Runtime(record.version, record.source, build or None, record.archive_sha256)


def sbom_writer(stack: StackSpec, layer: LayerSpec, env_dir: Path, runtime: RuntimeRecord) -> SbomWriter:
    """The SBOM of the layer's archive, given that archive's sha256 (what publish.py calls)."""

    def write(archive_sha256: str) -> str:
        return sbom.sbom_text(layer_contents(stack, layer, env_dir, runtime, archive_sha256))

    return write
