"""Layer names: what a name may be, and that no two layers share a folder, archive or deployed name.

A layer's name becomes its build folder, its lock folder and lock file names, its archive
name and (versioned) its deployed name `NAME@N`, on file systems that may ignore case.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from venvstacks.errors import SpecError
from venvstacks.stack.fields import LayerTable
from venvstacks.stack.kinds import LayerKind
from venvstacks.stack.model import LayerSpec

# Matched with fullmatch: `$` would also accept a trailing newline.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]*")
# Room for the longest file made from a name (e.g. "framework-NAME@12-macosx_x86_64-9.tar.zst",
# "pylock.framework-NAME.meta.json") within the usual 255-byte file name limit.
MAX_NAME_LENGTH = 100


def layer_name(t: LayerTable, *, is_runtime: bool) -> str:
    name = t.fields.get("name")
    if not name:
        raise t.fail("name", "missing; every layer needs a name")
    if not isinstance(name, str):
        raise t.fail("name", f'must be a string, not {name!r}; write it like name = "..."')
    if len(name) > MAX_NAME_LENGTH:
        raise t.fail("name", f"is {len(name)} characters long; use at most {MAX_NAME_LENGTH}")
    if not _NAME_RE.fullmatch(name):
        raise t.fail("name", "use letters, digits and . _ - @ + only, starting with a letter or digit")
    # A runtime's build name is its bare name, so it must not pass for another kind's.
    prefixes = tuple(kind.prefix for kind in LayerKind if kind.prefix)
    if is_runtime and name.startswith(prefixes):
        raise t.fail("name", f"runtime names may not start with {' or '.join(map(repr, prefixes))}")
    return str(name)


def deployed_name(env_name: str, lock_version: int | None) -> str:
    """`NAME@N` for a versioned layer at lock version N (None: not versioned, the build name)."""
    return env_name if lock_version is None else f"{env_name}@{lock_version}"


def check_unique_outputs(path: Path, layers: Iterable[LayerSpec]) -> None:
    """Every layer needs its own build folder, lock folder, archive and deployed name.

    Build names are unique by kind prefix, but two more ways lead two layers to one name:
    a layer named like a versioned layer's deployed name (`web@1` beside a versioned `web`),
    and names differing only in case, which are one folder on macOS and Windows.
    """
    layers = list(layers)
    versioned = {layer.env_name.casefold(): layer for layer in layers if layer.versioned}
    seen: dict[str, LayerSpec] = {}
    for layer in layers:
        key = layer.env_name.casefold()
        other = seen.get(key)
        if other is not None:
            raise SpecError(
                path,
                layer.env_name,
                "name",
                f"differs from layer {other.env_name!r} only in case, so both would use one folder "
                "and archive on macOS and Windows; rename one of them",
            )
        seen[key] = layer
        # The reverse of deployed_name: NAME@N, N a number.
        base, at, version = layer.env_name.rpartition("@")
        if at and version.isdigit() and base.casefold() in versioned:
            raise SpecError(
                path,
                layer.env_name,
                "name",
                f"is the name versioned layer {versioned[base.casefold()].env_name!r} deploys and "
                f"publishes as (version {version}); rename one of them",
            )
