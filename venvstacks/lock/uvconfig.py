"""What uv is told (pure): the resolver project and settings for locking a layer, the
settings for installing it, and the lock inputs computed from them.

The layer becomes a throwaway `pyproject.toml` so that uv honours `[tool.uv.sources]`:
that is how `package_indexes` pin a distribution to a named index, which `uv pip`'s
command-line options cannot express. The named indexes go in both files: `uv pip compile`
resolves only against the indexes of its settings file (it ignores a requirements project's
own `[[tool.uv.index]]`), while `[tool.uv.sources]` may only name indexes the project declares.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvstacks.stack import uvkeys
from venvstacks.stack.graph import lower_layers
from venvstacks.stack.model import LayerSpec, StackSpec
from venvstacks.stack.targets import Target, glibc_of, macos_of, target_text


@dataclass(frozen=True)
class LockOptions:
    """What the command line asks of locking: pins that may move, layers locked afresh, and
    package sources."""

    upgrade: bool = False  # let every pin move
    upgrade_packages: tuple[str, ...] = ()  # let these pins move
    index: bool = True  # False: resolve from local wheels only
    local_wheels: tuple[Path, ...] = ()
    reset: tuple[str, ...] = ()  # fnmatch patterns: these layers lock afresh, keeping no pins

    def resets(self, layer: LayerSpec) -> bool:
        return any(fnmatch.fnmatchcase(layer.env_name, pattern) for pattern in self.reset)


def resolver_project(stack: StackSpec, layer: LayerSpec, py_version: str) -> dict[str, Any]:
    """The pyproject.toml uv resolves the layer from."""
    tool_uv: dict[str, Any] = {}
    indexes = layer_indexes(stack, layer)
    if indexes:
        tool_uv["index"] = indexes
    # The stack's [tool.uv.sources] hold for every layer, unless its package_indexes say otherwise.
    sources = dict(uvkeys.stack_sources(stack.uv_config)) | dict(layer.package_indexes)
    if sources:
        tool_uv["sources"] = {dist: {"index": index} for dist, index in sorted(sources.items())}
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
    """The uv.toml of `uv pip compile`: the stack's resolver and network settings, the
    layer's indexes, and the command line's choices."""
    config = stack.uv_config
    settings = {k: config[k] for k in sorted(uvkeys.RESOLUTION | uvkeys.NETWORK) if k in config}
    indexes = layer_indexes(stack, layer)
    if indexes:
        settings["index"] = indexes  # in the layer's priority order
    if "UV_EXCLUDE_NEWER" in os.environ:
        settings["exclude-newer"] = os.environ["UV_EXCLUDE_NEWER"]
    if not index:
        settings["no-index"] = True
    if local_wheels:
        settings["find-links"] = [*settings.get("find-links", []), *(str(p) for p in local_wheels)]
    return settings


def install_settings(stack: StackSpec) -> dict[str, Any]:
    """The uv.toml of `uv pip sync`: how to download the locked wheels and put them in place."""
    config = stack.uv_config
    settings = {k: config[k] for k in sorted(uvkeys.NETWORK | uvkeys.INSTALL) if k in config}
    return anchored(settings, stack.root)


def lock_inputs(stack: StackSpec, layer: LayerSpec) -> dict[str, Any]:
    """Everything of the stack that decides a layer's lock, besides the lower layers' pins
    and the runtime's exact version. The doit `lock:` task reruns when this changes, and the
    lock metadata's other_inputs_hash is its hash: one function, so the two can never
    disagree. The command line's package sources (`--local-wheels`, `--index`/`--no-index`)
    are left out, as in the existing venvstacks: they say where packages come from, not what
    is locked, so a lock made with them stays valid without them (and `publish` after
    `build --local-wheels DIR` never relocks); the stack's own sources do count."""
    settings = uv_settings(stack, layer, index=True, local_wheels=())
    project = resolver_project(stack, layer, "X.Y")  # the version is the runtime's, hashed apart
    inputs = {
        "python": layer.python_implementation,
        "targets": [target_text(p, glibc_of(layer), macos_of(layer)) for p in layer.platforms],
        "lower": [lower.env_name for lower in lower_layers(stack, layer)],
        "versioned": layer.versioned,
        "project": project,
        # environments only when set, so that locks made before they were read stay valid
        "uv": {k: v for k, v in settings.items() if k not in uvkeys.NETWORK}
        | {k: stack.uv_config[k] for k in uvkeys.ENVIRONMENTS if k in stack.uv_config},
    }
    # Plain JSON (a TOML date becomes its text), as doit's config_changed needs.
    return dict(json.loads(json.dumps(inputs, sort_keys=True, default=str)))


def anchored(settings: dict[str, Any], root: Path) -> dict[str, Any]:
    """`settings` with relative `find-links`, index and cache paths made absolute from `root`
    (the stack file's folder): uv reads them relative to the generated file's temporary folder."""

    def anchor(location: Any) -> Any:
        if not isinstance(location, str) or "://" in location or Path(location).is_absolute():
            return location
        return str((root / location).resolve())

    result = dict(settings)
    for key in ("find-links", "extra-index-url"):
        if isinstance(result.get(key), list):
            result[key] = [anchor(item) for item in result[key]]
    for key in ("index-url", "cache-dir"):
        if key in result:
            result[key] = anchor(result[key])
    if isinstance(result.get("index"), list):
        result["index"] = [
            {**i, "url": anchor(i.get("url"))} if isinstance(i, dict) else i for i in result["index"]
        ]
    return result


def environment_targets(stack: StackSpec, targets: Sequence[Target]) -> list[Target]:
    """The targets whose wheels a lock must cover: with `[tool.uv] environments` (which `uv
    pip compile` does not take), those some environment admits, plus those that
    `required-environments` name; without, all. This is what the existing venvstacks gets
    from passing them to `uv lock`: resolution need not succeed outside the environments."""
    environments = uvkeys.environment_markers(stack.path, stack.uv_config, "environments")
    if not environments:
        return list(targets)
    required = uvkeys.environment_markers(stack.path, stack.uv_config, "required-environments")
    return [t for t in targets if any(m.evaluate(t.marker_env()) for m in (*environments, *required))]
