"""What every task of a build shares: the stack, the build folder and the options (frozen).

Tasks (`tasks.py`) and the steps they run (`actions.py`) both take a `Settings`; it lives
here so that neither of those modules imports the other for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from venvstacks.errors import VenvStacksError
from venvstacks.layout import (
    DEFAULT_EXPORT_DIR,
    DEFAULT_PUBLISH_DIR,
    DOIT_DB,
    RUNTIME_STATE_DIR,
    OutputOptions,
)
from venvstacks.lock.uvconfig import LockOptions
from venvstacks.runtimes.options import RuntimeOptions
from venvstacks.stack.kinds import LayerKind
from venvstacks.stack.model import LayerSpec, StackSpec


@dataclass(frozen=True)
class Settings:
    stack: StackSpec
    build_dir: Path
    runtimes: RuntimeOptions
    lock: LockOptions = field(default_factory=LockOptions)
    outputs: OutputOptions | None = None  # default: _export and _artifacts beside the stack

    def __post_init__(self) -> None:
        # A module folder holding an output folder would be copied into itself, build after build.
        outputs = {
            "build": self.build_dir,
            "export": self.output.export_dir,
            "publish": self.output.publish_dir,
        }
        for layer in self.stack.layers:
            for module in layer.modules:
                if not module.is_dir():
                    continue
                real = module.resolve()
                for what, folder in outputs.items():
                    if folder.resolve().is_relative_to(real):
                        raise VenvStacksError(
                            f"{self.stack.path.name}: layer {layer.env_name!r}: module {module} holds "
                            f"the {what} folder {folder}; move the {what} folder out of it"
                        )

    @property
    def output(self) -> OutputOptions:
        root = self.stack.root
        return self.outputs or OutputOptions(
            export_dir=root / DEFAULT_EXPORT_DIR, publish_dir=root / DEFAULT_PUBLISH_DIR
        )

    def env_dir(self, layer: LayerSpec) -> Path:
        return self.build_dir / layer.env_name

    def runtime_state(self, layer: LayerSpec) -> Path:
        """The manifest of the runtime a layer runs on (what `runtime:<rt>` produces)."""
        name = layer.env_name if layer.kind is LayerKind.RUNTIME else str(layer.runtime)
        return self.build_dir / RUNTIME_STATE_DIR / f"{name}.json"

    def runtime_layer(self, layer: LayerSpec) -> LayerSpec:
        return layer if layer.runtime is None else self.stack.layer(layer.runtime)

    @property
    def doit_db(self) -> Path:
        return self.build_dir / DOIT_DB


Step = Callable[[Settings, str], None]
"""One step of a layer's build (see `actions.py`), given the settings and the layer's build name."""
