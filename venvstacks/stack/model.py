"""The stack's data model: the immutable specs `venvstacks.toml` is parsed into.

Apart from the parser (`spec`, `fields`, `naming`) so that every module reading a stack
imports these types without importing the parser, and `stack/` has no import cycle.
The fields are those of the stack file (docs/stack-file.md), resolved and checked.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvstacks.stack.kinds import LayerKind


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a stack file (runtime, framework or application), checked and resolved."""

    kind: LayerKind
    name: str  # as written in the stack file
    env_name: str  # build name: cpython-3.11, framework-x, app-y
    requirements: tuple[str, ...]
    platforms: tuple[str, ...]  # resolved; empty means the layer is disabled
    versioned: bool
    linux_target: str
    macosx_target: str | None
    dynlib_exclude: tuple[str, ...]
    package_indexes: tuple[tuple[str, str], ...]  # own + inherited from lower layers
    priority_indexes: tuple[str, ...]
    index_overrides: tuple[tuple[str, str], ...]
    python_implementation: str  # the runtime's request, e.g. cpython@3.11
    runtime: str | None  # env name of the runtime layer (None for runtimes)
    frameworks: tuple[str, ...]  # declared framework env names
    lower: tuple[str, ...]  # framework env names in sys.path (C3) order
    launch_module: Path | None = None
    support_modules: tuple[Path, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.platforms)

    @property
    def modules(self) -> tuple[Path, ...]:
        """An application's launch module, then its support modules (none for other kinds)."""
        return () if self.launch_module is None else (self.launch_module, *self.support_modules)

    @property
    def lock_stem(self) -> str:
        # uv insists on pylock.<name>.toml with no dots in <name>
        return self.env_name.replace(".", "_")


@dataclass(frozen=True)
class StackSpec:
    """A stack file, loaded: its layers in build order and its `[tool.uv]` settings."""

    path: Path
    layers: tuple[LayerSpec, ...]  # runtimes, frameworks, applications: lower layers first
    uv_config: Mapping[str, Any]

    @functools.cached_property
    def root(self) -> Path:
        return self.path.parent

    @functools.cached_property
    def _by_name(self) -> dict[str, LayerSpec]:
        # Planning looks layers up by name for every lower layer of every layer: keep it O(1).
        return {layer.env_name: layer for layer in self.layers}

    def layer(self, env_name: str) -> LayerSpec:
        return self._by_name[env_name]

    @functools.cached_property
    def uppers(self) -> dict[str, list[LayerSpec]]:
        """Build name -> the layers that have it below them (see `graph.derived_layers`)."""
        index: dict[str, list[LayerSpec]] = {}
        for layer in self.layers:  # one pass: planning asks for every layer's uppers
            for lower in (*layer.lower, *([layer.runtime] if layer.runtime else [])):
                index.setdefault(lower, []).append(layer)
        return index
