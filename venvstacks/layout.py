"""Where everything lives: build-state manifests, lock files, output folders (no effects).

Kept free of heavy imports on purpose: the task graph is created from these paths on every
run, including the no-op run whose cost users feel most.
"""

from __future__ import annotations

import fnmatch
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from venvstacks.stack.spec import LayerSpec, StackSpec

if TYPE_CHECKING:
    from venvstacks.ship.publish import PublishOptions

# Inside each layer folder: bookkeeping that never ships, and the deployable layer config.
STATE_DIR = Path("share/venv/metadata/build-state")
INSTALLED = STATE_DIR / "installed.json"  # target of install:<layer>
ENV_IDENTITY = STATE_DIR / "env.json"
LINKED = STATE_DIR / "built.json"  # target of build:<layer>
LAYER_CONFIG = Path("share/venv/metadata/venvstacks_layer.json")
DYNLIB_DIR = Path("share/venv/dynlib")  # links to the layer's shared libraries (Linux, macOS)
DYNLIB_MANIFEST = STATE_DIR / "dynlib.json"  # those links; upper layers' build: depends on it
DEPLOYED_WRAPPER = STATE_DIR / "python.deployed"  # bin/python as exported and published

METADATA_DIR = "__venvstacks__"
ARCHIVE_FORMATS = ("tar.xz", "tar.gz", "tar.zst", "zip")


@dataclass(frozen=True)
class LockFiles:
    requirements_in: Path
    pylock: Path
    meta: Path
    summary: Path


def lock_files(stack: StackSpec, layer: LayerSpec) -> LockFiles:
    folder = stack.requirements_dir(layer)
    stem = layer.lock_stem
    return LockFiles(
        requirements_in=folder / f"requirements-{stem}.in",
        pylock=folder / f"pylock.{stem}.toml",
        meta=folder / f"pylock.{stem}.meta.json",
        summary=folder / f"packages-{layer.env_name}.txt",
    )


@dataclass(frozen=True)
class LockOptions:
    upgrade: bool = False  # let every pin move
    upgrade_packages: tuple[str, ...] = ()  # let these pins move
    index: bool = True  # False: resolve from local wheels only
    local_wheels: tuple[Path, ...] = ()
    reset: tuple[str, ...] = ()  # fnmatch patterns: these layers lock afresh, keeping no pins

    def resets(self, layer: LayerSpec) -> bool:
        return any(fnmatch.fnmatchcase(layer.env_name, pattern) for pattern in self.reset)


def default_platform() -> str:
    """This machine's platform tag as upstream spells it, e.g. ``linux_x86_64``."""
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


@dataclass(frozen=True)
class OutputOptions:
    export_dir: Path
    publish_dir: Path
    archive_format: str = "tar.xz"
    tag_outputs: bool = False
    force: bool = False
    target_platform: str = field(default_factory=default_platform)

    def publish_options(self, dry_run: bool = False) -> PublishOptions:
        from venvstacks.ship.archives import ArchiveFormat
        from venvstacks.ship.publish import PublishOptions

        return PublishOptions(
            output_dir=self.publish_dir,
            target_platform=self.target_platform,
            archive_format=ArchiveFormat(self.archive_format),
            tag_outputs=self.tag_outputs,
            force=self.force,
            dry_run=dry_run,
        )

    def tagged_suffix(self) -> str:
        return f"-{self.target_platform}" if self.tag_outputs else ""

    def export_metadata(self, layer: LayerSpec) -> Path:
        return self.export_dir / METADATA_DIR / "env_metadata" / f"{layer.env_name}.json"

    def publish_metadata(self, layer: LayerSpec) -> Path:
        name = f"{layer.env_name}{self.tagged_suffix()}.json"
        return self.publish_dir / METADATA_DIR / "env_metadata" / name
