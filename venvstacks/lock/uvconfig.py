"""What uv is told when locking a layer (pure): the resolver project and its settings.

The layer becomes a throwaway `pyproject.toml` so that uv honours `[tool.uv.sources]`:
that is how `package_indexes` pin a distribution to a named index, which `uv pip`'s
command-line options cannot express.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from venvstacks.stack.spec import LayerSpec, StackSpec

# [tool.uv] settings that mean the same to `uv pip compile` (the rest are project-only).
PASSTHROUGH = (
    "index",
    "exclude-newer",
    "index-strategy",
    "find-links",
    "no-index",
    "prerelease",
    "resolution",
    "index-url",
    "extra-index-url",
)


def resolver_project(stack: StackSpec, layer: LayerSpec, py_version: str) -> dict[str, Any]:
    """The pyproject.toml uv resolves the layer from."""
    tool_uv: dict[str, Any] = {}
    indexes = layer_indexes(stack, layer)
    if indexes:
        tool_uv["index"] = indexes
    if layer.package_indexes:
        tool_uv["sources"] = {dist: {"index": index} for dist, index in layer.package_indexes}
    project = {
        "name": "venvstacks-layer-" + layer.env_name.replace("@", "-").replace(".", "-"),
        "version": "0",
        "requires-python": f"=={py_version}.*",
        "dependencies": list(layer.requirements),
    }
    return {"project": project, "tool": {"uv": tool_uv}} if tool_uv else {"project": project}


def layer_indexes(stack: StackSpec, layer: LayerSpec) -> list[dict[str, Any]]:
    """The named indexes, with the layer's priority indexes first and no longer explicit."""
    indexes = [dict(i) for i in stack.uv_config.get("index", []) if isinstance(i, Mapping)]
    first = [i for name in layer.priority_indexes for i in indexes if i.get("name") == name]
    for index in first:
        index.pop("explicit", None)
    return first + [i for i in indexes if i not in first]


def uv_settings(
    stack: StackSpec, layer: LayerSpec, index: bool, local_wheels: tuple[Path, ...]
) -> dict[str, Any]:
    """The uv.toml for the run: the stack's resolver settings plus command-line choices."""
    settings = {k: stack.uv_config[k] for k in PASSTHROUGH if k in stack.uv_config}
    settings.pop("index", None)  # named indexes travel in the resolver project
    if "UV_EXCLUDE_NEWER" in os.environ:
        settings["exclude-newer"] = os.environ["UV_EXCLUDE_NEWER"]
    if not index:
        settings["no-index"] = True
    if local_wheels:
        settings["find-links"] = [*settings.get("find-links", []), *(str(p) for p in local_wheels)]
    return settings
