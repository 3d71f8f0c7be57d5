"""Where everything lives: build-state manifests, lock files, output folders (no effects).

Kept free of heavy imports on purpose: the task graph is created from these paths on every
run, including the no-op run whose cost users feel most.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from venvstacks.platforms import Platform, host_platform, platform_tag
from venvstacks.stack.model import LayerSpec, StackSpec
from venvstacks.stack.targets import default_macos

# Inside each layer folder: bookkeeping that never ships and the deployable layer config.
# (Its interpreter, site-packages and shared-library folder differ by platform: see
# platforms.Platform.)
STATE_DIR = Path("share/venv/metadata/build-state")
INSTALLED = STATE_DIR / "installed.json"  # target of install:<layer>
INSTALLED_DEPS = STATE_DIR / "dependencies.json"  # what its packages depend on (lock/depmeta.py)
ENV_IDENTITY = STATE_DIR / "env.json"
BUILT = STATE_DIR / "built.json"  # target of build:<layer>
LAYER_CONFIG = Path("share/venv/metadata/venvstacks_layer.json")
DYNLIB_MANIFEST = STATE_DIR / "dynlib.json"  # its shared-library links; upper layers' build: depends on it
DEPLOYED_WRAPPER = STATE_DIR / "python.deployed"  # bin/python as exported and published
MODULES_STATE = STATE_DIR / "modules.json"  # an app's module names, to remove ones dropped

FILES_MANIFEST = Path("share/venv/metadata/venvstacks_files.json")  # every archived file (manifest.py)
POSTINSTALL = "postinstall.py"  # at the top of every exported, published and deployed layer
# The scripts shipped as a layer's postinstall.py: the usual one and, with publish --bytecode,
# the one that runs the usual one (shipped then as USUAL_POSTINSTALL) leaving shipped pycs alone.
POSTINSTALL_SCRIPT = Path(__file__).parent / "_injected" / POSTINSTALL
POSTINSTALL_BYTECODE = Path(__file__).parent / "_injected" / "postinstall_bytecode.py"
USUAL_POSTINSTALL = "share/venv/metadata/venvstacks_postinstall.py"

# In an export or publish folder: per-layer metadata files and the stack's venvstacks.json.
METADATA_DIR = "__venvstacks__"
STACK_METADATA = "venvstacks"  # venvstacks.json, or venvstacks-<platform>.json with --tag-outputs

STACK_FILE = "venvstacks.toml"  # what a stack folder's stack file is called
# Beside the stack file: its lock folder and, by default, the build and output folders.
LOCKS_DIR = "requirements"
DEFAULT_BUILD_DIR = "_build"
DEFAULT_EXPORT_DIR = "_export"
DEFAULT_PUBLISH_DIR = "_artifacts"
RUNTIME_STATE_DIR = ".runtimes"  # in a build folder: what each runtime: task recorded

# At the top of a build folder: doit's state DB and the lock serialising invocations on it.
DOIT_DB = ".venvstacks-doit.sqlite3"
BUILD_LOCK = ".venvstacks.lock"
# Decisions remembered between runs (stack/verdicts.py); named when it held only what the
# .gitignore rules decided, kept so that build folders keep theirs.
VERDICTS = ".venvstacks-gitignore.json"
# A folder holding any of these is a build, export or publish output, never a stack input.
OUTPUT_MARKERS = (DOIT_DB, BUILD_LOCK, METADATA_DIR)


def layer_metadata_file(output_dir: Path, layer_name: str, suffix: str = "") -> Path:
    """A layer's metadata in an export or publish folder (the target of export:/publish:)."""
    return output_dir / METADATA_DIR / "env_metadata" / f"{layer_name}{suffix}.json"


def sbom_name(archive_name: str) -> str:
    """A published layer's CycloneDX SBOM, beside its archive (ship/sbom.py)."""
    return f"{archive_name}.cdx.json"


def export_sbom_file(export_dir: Path, install_target: str) -> Path:
    """An exported layer's SBOM: inside the layer, beside its other metadata."""
    return export_dir / install_target / LAYER_CONFIG.parent / sbom_name(install_target)


def stack_metadata_file(output_dir: Path, suffix: str = "") -> Path:
    """The stack's ``venvstacks.json``, gathered from the layer metadata files beside it."""
    return output_dir / METADATA_DIR / f"{STACK_METADATA}{suffix}.json"


def tag_suffix(target_platform: str, tag_outputs: bool) -> str:
    """What ``--tag-outputs`` adds to metadata file names."""
    return f"-{target_platform}" if tag_outputs else ""


@dataclass(frozen=True)
class LockFiles:
    """Where a layer's lock lives: its requirements input, its pylock file and the lock metadata."""

    requirements_in: Path
    pylock: Path
    meta: Path
    summary: Path
    adopted: Path  # our input hashes beside a lock the existing venvstacks made (lock/validity.py)


def requirements_dir(root: Path, env_name: str) -> Path:
    """Where a layer's lock files live, next to the stack file (committed by users)."""
    return root / LOCKS_DIR / env_name


def lock_files(stack: StackSpec, layer: LayerSpec) -> LockFiles:
    return _lock_files(stack.root, layer.env_name, layer.lock_stem)


@functools.lru_cache(maxsize=1 << 16)
def _lock_files(root: Path, env_name: str, stem: str) -> LockFiles:
    # Cached: planning asks for the lock files of every lower layer of every layer.
    folder = requirements_dir(root, env_name)
    return LockFiles(
        requirements_in=folder / f"requirements-{stem}.in",
        pylock=folder / f"pylock.{stem}.toml",
        meta=folder / f"pylock.{stem}.meta.json",
        summary=folder / f"packages-{env_name}.txt",
        adopted=folder / f"pylock.{stem}.inputs.json",
    )


def allow_local_runtime_default() -> bool:
    """`VENVSTACKS_ALLOW_LOCAL_RUNTIME=1`: plain doit's way to say --allow-local-runtime."""
    return os.environ.get("VENVSTACKS_ALLOW_LOCAL_RUNTIME", "") not in ("", "0")


def bytecode_default() -> bool:
    """`VENVSTACKS_BYTECODE=1`: plain doit's way to say --bytecode."""
    return os.environ.get("VENVSTACKS_BYTECODE", "") not in ("", "0")


@dataclass(frozen=True)
class OutputOptions:
    """Where exports and published archives go, and how archives are made and named."""

    export_dir: Path
    publish_dir: Path
    archive_format: str | None = None  # --format; None: the platform's default (`format`)
    tag_outputs: bool = False
    force: bool = False
    target_platform: str = field(default_factory=platform_tag)
    # Publish layers whose runtime was packed from a local CPython (not portable).
    allow_local_runtime: bool = field(default_factory=lambda: allow_local_runtime_default())
    # Ship reproducible pycs in the archives (ship/bytecode.py).
    bytecode: bool = field(default_factory=lambda: bytecode_default())
    platform: Platform = field(default_factory=host_platform)

    @property
    def format(self) -> str:
        """The archive format: `--format`, else the platform's (zip for Windows, else tar.xz)."""
        return self.archive_format or self.platform.default_format

    def for_platform(self, platform: Platform) -> OutputOptions:
        """Where another platform's layers go: `<output-dir>/<platform>/`, tagged as that
        platform (macOS: with the deployment target named by `$MACOSX_DEPLOYMENT_TARGET`,
        else 13.0, as the layers are installed for)."""
        return replace(
            self,
            export_dir=self.export_dir / platform.name,
            publish_dir=self.publish_dir / platform.name,
            target_platform=platform.tag(default_macos()),
            platform=platform,
        )

    def export_metadata(self, layer: LayerSpec) -> Path:
        return layer_metadata_file(self.export_dir, layer.env_name)

    def publish_metadata(self, layer: LayerSpec) -> Path:
        suffix = tag_suffix(self.target_platform, self.tag_outputs)
        return layer_metadata_file(self.publish_dir, layer.env_name, suffix)
