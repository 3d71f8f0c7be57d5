"""What a built layer holds, as its SBOM describes it (ship/sbom.py): gathered from the build
folder, the layer's lock and lock metadata, its lower layers' lock metadata and the runtime
record. Used by `publish:` and `export:` (the SBOM) and by `venvstacks licenses`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from venvstacks.distinfo import installed_distributions
from venvstacks.layerconfig import LayerConfig, read_layer_config
from venvstacks.lock.validity import LockedLayer, Locks
from venvstacks.runtimes.record import RuntimeRecord
from venvstacks.ship import sbom
from venvstacks.ship.publish import SbomWriter
from venvstacks.stack.kinds import LayerKind
from venvstacks.stack.model import LayerSpec, StackSpec


@dataclass(frozen=True)
class BuiltLayer:
    """A built layer and the documents `export:`, `publish:` and `licenses` read about it,
    each read once and handed on: its lock files and its lower layers' (`locks`, read when
    first asked), its runtime's record (the caller's) and its `venvstacks_layer.json`."""

    stack: StackSpec
    layer: LayerSpec
    env_dir: Path
    runtime: RuntimeRecord
    locks: Locks
    config: LayerConfig

    @classmethod
    def read(
        cls,
        stack: StackSpec,
        layer: LayerSpec,
        env_dir: Path,
        runtime: RuntimeRecord,
        locks: Locks | None = None,
    ) -> BuiltLayer:
        """`locks`: those the caller already read (a command over many layers shares one)."""
        return cls(stack, layer, env_dir, runtime, locks or Locks(stack), read_layer_config(env_dir))

    @property
    def locked(self) -> LockedLayer:
        return self.locks.of(self.layer)


def layer_ref(locked: LockedLayer) -> sbom.LayerRef:
    meta = locked.meta
    return sbom.LayerRef(
        install_target=locked.deployed_name,
        kind=locked.layer.kind,
        lock_version=locked.lock_version,
        requirements_hash=str(None if meta is None else meta.requirements_hash),
    )


def layer_contents(built: BuiltLayer, archive_sha256: str | None = None) -> sbom.LayerContents:
    locked, layer = built.locked, built.layer
    installed = installed_distributions(built.env_dir, built.config.site_dir)
    return sbom.LayerContents(
        layer=layer_ref(locked),
        layer_name=layer.env_name,
        locked_at=str(None if locked.meta is None else locked.meta.locked_at),
        packages=sbom.packages(installed, locked.pylock),
        runtime=runtime_component(built.runtime) if layer.kind is LayerKind.RUNTIME else None,
        lowers=tuple(layer_ref(lower) for lower in built.locks.lowers(layer)),
        archive_sha256=archive_sha256,
    )


def runtime_component(record: RuntimeRecord) -> sbom.Runtime:
    """A runtime layer's CPython, from what `runtime:` recorded."""
    # A download or an explicit archive is a python-build-standalone archive, named by its file.
    build = None if record.source == "local" else record.origin.rstrip("/").rsplit("/", 1)[-1]
    return sbom.Runtime(record.version, record.source, build or None, record.archive_sha256)


def sbom_writer(built: BuiltLayer) -> SbomWriter:
    """The SBOM of the layer's archive, given that archive's sha256 (what publish.py calls)."""

    def write(archive_sha256: str) -> str:
        return sbom.sbom_text(layer_contents(built, archive_sha256))

    return write
