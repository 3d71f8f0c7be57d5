"""What every task of a build shares: the stack, the build folder and the options (frozen).

Tasks (`tasks.py`) and the steps they run (`actions.py`) both take a `Settings`; it lives
here so that neither of those modules imports the other for it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from venvstacks.engine.taskkind import TaskKind, subtask_name
from venvstacks.errors import VenvStacksError
from venvstacks.layout import (
    DEFAULT_EXPORT_DIR,
    DEFAULT_PUBLISH_DIR,
    DOIT_DB,
    RUNTIME_STATE_DIR,
    OutputOptions,
)
from venvstacks.lock.uvconfig import LockOptions
from venvstacks.platforms import PLATFORMS, Platform, host_platform
from venvstacks.runtimes.options import RuntimeOptions
from venvstacks.stack.kinds import LayerKind
from venvstacks.stack.model import LayerSpec, StackSpec


@dataclass(frozen=True)
class Settings:
    """A run's stack, build folder, options and the platform it builds for."""

    stack: StackSpec
    build_dir: Path
    runtimes: RuntimeOptions
    lock: LockOptions = field(default_factory=LockOptions)
    outputs: OutputOptions | None = None  # default: _export and _artifacts beside the stack
    # Every platform the run builds (`--platform`); none named: this machine's only.
    platforms: tuple[str, ...] = ()
    # The platform these settings build for (one of `platforms`; see `builds`).
    platform: Platform = field(default_factory=host_platform)

    def __post_init__(self) -> None:
        # A module folder holding an output folder would be copied into itself, build after build.
        out = self.output
        modules = tuple((layer.env_name, m) for layer in self.stack.layers for m in layer.modules)
        folders = (("build", self.build_dir), ("export", out.export_dir), ("publish", out.publish_dir))
        _check_outputs_outside_modules(self.stack.path.name, modules, folders)

    @property
    def is_host(self) -> bool:
        """Built natively, in the build folder itself, with today's task names; other
        platforms are cross-built in a folder (and output folders) named after them."""
        return self.platform.name == host_platform().name

    def builds(self) -> list[Settings]:
        """One settings per platform the run builds."""
        if not self.platforms:
            return [replace(self, platform=host_platform())]
        return [replace(self, platform=PLATFORMS[name]) for name in self.platforms]

    def host(self) -> Settings:
        """The settings of this machine's platform: locking always runs here."""
        return replace(self, platform=host_platform())

    def task_name(self, layer_name: str) -> str:
        """A layer's doit subtask name on this platform (`app-x`, `win_amd64/app-x`)."""
        return subtask_name(layer_name, None if self.is_host else self.platform.name)

    def task(self, kind: TaskKind, layer_name: str) -> str:
        """The name of a layer's task of this kind on this platform (`build:win_amd64/app-x`)."""
        return kind.task(layer_name, None if self.is_host else self.platform.name)

    @property
    def platform_dir(self) -> Path:
        return self.build_dir if self.is_host else self.build_dir / self.platform.name

    @property
    def output(self) -> OutputOptions:
        root = self.stack.root
        out = self.outputs or OutputOptions(
            export_dir=root / DEFAULT_EXPORT_DIR, publish_dir=root / DEFAULT_PUBLISH_DIR
        )
        return out if self.is_host else out.for_platform(self.platform)

    def env_dir(self, layer: LayerSpec) -> Path:
        return self.platform_dir / layer.env_name

    def runtime_state(self, layer: LayerSpec) -> Path:
        """The manifest of the runtime a layer runs on (what `runtime:<rt>` produces)."""
        name = layer.env_name if layer.kind is LayerKind.RUNTIME else str(layer.runtime)
        return self.platform_dir / RUNTIME_STATE_DIR / f"{name}.json"

    def runtime_layer(self, layer: LayerSpec) -> LayerSpec:
        return layer if layer.runtime is None else self.stack.layer(layer.runtime)

    @property
    def doit_db(self) -> Path:
        return self.build_dir / DOIT_DB


@functools.lru_cache(maxsize=64)
def _check_outputs_outside_modules(
    stack_name: str, modules: tuple[tuple[str, Path], ...], folders: tuple[tuple[str, Path], ...]
) -> None:
    """Once per stack and folders: a run makes a Settings per platform and per task kind
    (`replace`), and checking every module each time grew with the square of the layers."""
    for env_name, module in modules:
        if not module.is_dir():
            continue
        real = module.resolve()
        for what, folder in folders:
            if folder.resolve().is_relative_to(real):
                raise VenvStacksError(
                    f"{stack_name}: layer {env_name!r}: module {module} holds "
                    f"the {what} folder {folder}; move the {what} folder out of it"
                )


Step = Callable[[Settings, str], None]
"""One step of a layer's build (see `actions.py`), given the settings and the layer's build name."""
