"""The lock metadata hashes of the existing venvstacks (0.8), recomputed (pure).

A stack switching to this venvstacks brings the locks the existing one made, with their
`pylock.*.meta.json`. Those hashes cover less than ours (no `[tool.uv]` settings, no lower
layers' pins) and are computed differently (strings concatenated, not joined), so they are
recomputed here the existing tool's way: when they all match, the committed lock was made
from the layer's current inputs and is taken as valid as it stands (see
`venvstacks.lock.validity`).

What each hash covers, as the existing venvstacks writes it:

* `lock_input_hash`: the declared requirements, normalised by `packaging`, sorted;
* `requirements_hash`: every locked package as `name==version ; marker from <index>` and
  every wheel as `<file name>:<algorithm>:<hash>`, sorted;
* `other_inputs_hash`: `py_version=X.Y`, `linux_target=...` and `macosx_target=...` when the
  layer is for Linux or macOS, then the runtime's build name and the declared frameworks'
  names (in that order);
* `version_inputs_hash`: `env_name=...`, `is_versioned_layer=...` and, for applications, the
  hash of each launch and support module (only compared for versioned layers).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.version import Version

from venvstacks.fsutil import sha256_file
from venvstacks.lock.pylockdoc import FROM_LOWER_LAYER, LockedWheel, Pylock
from venvstacks.stack.kinds import LayerKind
from venvstacks.stack.model import LayerSpec, StackSpec
from venvstacks.stack.modfiles import ModuleFile, module_files
from venvstacks.stack.targets import DEFAULT_MACOS


def concat_hash(items: Iterable[str]) -> str:
    """The existing venvstacks' `hash_strings`: the strings concatenated, in the order given."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(item.encode())
    return "sha256:" + digest.hexdigest()


def lock_input_hash(layer: LayerSpec) -> str:
    return concat_hash(sorted(str(Requirement(r)) for r in layer.requirements))


def requirements_hash(lock: Pylock) -> str:
    items = []
    for pkg in lock.packages:
        spelled = f"{pkg.name}=={Version(pkg.version)}"
        marker = _marker_text(pkg.marker)
        index = "unspecified index" if pkg.index is None else pkg.index
        items.append(f"{spelled}{f' ; {marker}' if marker else ''} from {index}")
        for wheel in pkg.all_wheels:
            for algorithm, digest in (wheel.hashes or {}).items():
                items.append(f"{_wheel_name(wheel)}:{algorithm}:{digest}")
    return concat_hash(sorted(items))


def other_inputs_hash(stack: StackSpec, layer: LayerSpec) -> str:
    items = [f"py_version={_major_minor(layer.python_implementation)}"]
    if any(p.startswith("linux_") for p in layer.platforms):
        items.append(f"linux_target={layer.linux_target}")
    if any(p.startswith("macosx_") for p in layer.platforms):
        target = layer.macosx_target or os.environ.get("MACOSX_DEPLOYMENT_TARGET", DEFAULT_MACOS)
        items.append(f"macosx_target={target}")
    if layer.runtime is not None:
        items.append(layer.runtime)
    items += [stack.layer(fw).name for fw in layer.frameworks]
    return concat_hash(items)


def version_inputs_hash(stack: StackSpec, layer: LayerSpec) -> str:
    items = [f"env_name={layer.env_name}", f"is_versioned_layer={layer.versioned}"]
    if layer.kind is LayerKind.APPLICATION:
        items += [_module_hash(module, stack.root) for module in layer.modules]
    return concat_hash(items)


def _marker_text(marker: str | None) -> str:
    """A marker as the existing venvstacks hashes it: normalised, without its shared clause."""
    if not marker:
        return ""
    text = str(Marker(marker)).replace('"', "'")
    if text == FROM_LOWER_LAYER:
        return ""
    return (
        text.removeprefix("(").removesuffix(f" and {FROM_LOWER_LAYER}").removesuffix(")")
        if FROM_LOWER_LAYER in text
        else text
    )


def _wheel_name(wheel: LockedWheel) -> str:
    name = wheel.name
    if name is None:
        where = wheel.path or urlsplit(wheel.url or "").path
        name = PurePosixPath(where.replace("\\", "/")).name
    return unquote(name)


def _major_minor(request: str) -> str:
    return ".".join(request.partition("@")[2].split(".")[:2])


def _module_hash(module: Path, root: Path) -> str:
    """The existing venvstacks' `hash_module` over the same files we copy."""
    entries = module_files(module, root)
    if len(entries) == 1 and entries[0].rel == "":
        return concat_hash([module.name, "sha256:" + sha256_file(entries[0].source)])
    # Its folder hash: a walk, folders first-visited in sorted order, each folder's name
    # then each of its files' name and hash.
    digest = hashlib.sha256()
    for folder, files in _walk(module.name, entries):
        digest.update(folder.encode())
        for entry in files:
            digest.update(PurePosixPath(entry.rel).name.encode())
            digest.update(("sha256:" + sha256_file(entry.source)).encode())
    return "sha256/" + digest.hexdigest()


def _walk(top: str, entries: list[ModuleFile]) -> list[tuple[str, list[ModuleFile]]]:
    folders: dict[str, list[ModuleFile]] = {"": []}
    for entry in entries:
        parent = str(PurePosixPath(entry.rel).parent) if "/" in entry.rel else ""
        if entry.is_dir:
            folders.setdefault(entry.rel, [])
        elif entry.link is None or not Path(entry.source).is_dir():
            folders.setdefault(parent, []).append(entry)
    order = sorted(folders, key=lambda rel: PurePosixPath(rel).parts)
    return [(PurePosixPath(rel).name or top, sorted(folders[rel], key=lambda e: e.rel)) for rel in order]
