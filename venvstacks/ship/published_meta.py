"""Reading published metadata (`load_published`), its types checked before deploy trusts any of it.

`venvstacks.json` is the deploy trust anchor: its sha256s decide which archives are
unpacked. A field of the wrong type (`archive_size: "58994"`, a list for a name) is reported
in one line naming the file, the layer and the field, instead of surfacing later as a
confusing comparison or a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import is_sha256_hex, load_json_text, read_bounded_text
from venvstacks.layout import METADATA_DIR, STACK_METADATA
from venvstacks.stack.kinds import LayerKind

_REQUIRED = ("install_target", "archive_name", "archive_hashes")
_TYPES: dict[str, type] = {
    "layer_name": str,
    "install_target": str,
    "archive_name": str,
    "archive_size": int,
    "archive_hashes": dict,
    "runtime_layer": str,
    "required_layers": list,
    "app_launch_module": str,
    "lock_version": int,
}
_TYPE_NAMES = {str: "a string", int: "an integer", dict: "an object", list: "a list"}


def check_layer_metadata(meta_file: Path, position: str, meta: Any) -> None:
    """Raise a one-line VenvStacksError unless `meta` has the fields deploy uses, well typed."""
    if not isinstance(meta, dict):
        raise _bad(meta_file, position, None, f"must be an object, not {_json_type(meta)}")
    layer_name = meta.get("layer_name")
    name = layer_name if isinstance(layer_name, str) else position
    for field in _REQUIRED:
        if field not in meta:
            why = "is missing, so the layer has no sha256" if field == "archive_hashes" else "is missing"
            raise _bad(meta_file, name, field, why)
    for field, expected in _TYPES.items():
        value = meta.get(field)
        if value is None and field not in _REQUIRED:
            continue
        # JSON true/false load as bool, which Python counts as an int: not a size.
        if not isinstance(value, expected) or isinstance(value, bool):
            raise _bad(
                meta_file,
                name,
                field,
                f"must be {_TYPE_NAMES[expected]}, not {value!r} ({_json_type(value)})",
            )
    _check_details(meta_file, name, meta)


def _check_details(meta_file: Path, name: str, meta: Mapping[str, Any]) -> None:
    sha = meta["archive_hashes"].get("sha256")
    if not isinstance(sha, str) or not is_sha256_hex(sha):
        raise _bad(meta_file, name, "archive_hashes", f"has no sha256 of 64 lowercase hex digits ({sha!r})")
    if not all(isinstance(dep, str) for dep in meta.get("required_layers") or []):
        raise _bad(meta_file, name, "required_layers", "every entry must be a string")
    if meta.get("archive_size", 0) < 0:
        raise _bad(meta_file, name, "archive_size", "must not be negative")


def _bad(meta_file: Path, layer: str, field: str | None, message: str) -> VenvStacksError:
    where = f"layer {layer!r}" + (f": field {field!r}" if field else "")
    return VenvStacksError(f"{meta_file}: {where}: {message}; the metadata is damaged or was edited")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return {str: "a string", list: "a list", dict: "an object", type(None): "null"}.get(type(value), "?")


@dataclass(frozen=True)
class PublishedLayer:
    kind: LayerKind
    metadata: Mapping[str, Any]
    archive: Path

    @property
    def install_target(self) -> str:
        return str(self.metadata["install_target"])

    @property
    def needs(self) -> list[str]:
        """Install targets of the layers this one runs on (runtime first)."""
        deps = [str(d) for d in self.metadata.get("required_layers") or []]
        runtime = self.metadata.get("runtime_layer")
        if runtime and runtime != self.install_target:
            deps.insert(0, str(runtime))
        return deps


def load_published(published: Path) -> list[PublishedLayer]:
    """Read a stack's published metadata; ``published`` is the output folder or the file."""
    meta_file = _find_stack_metadata(published)
    try:
        data = load_json_text(read_bounded_text(meta_file))
        groups = data["layers"]
        archive_dir = meta_file.parent
        if archive_dir.name == METADATA_DIR:
            archive_dir = archive_dir.parent
        for kind in LayerKind:
            for index, meta in enumerate(groups.get(kind.value, [])):
                check_layer_metadata(meta_file, f"{kind.value}[{index}]", meta)
        layers = [
            PublishedLayer(kind, meta, archive_dir / str(meta["archive_name"]))
            for kind in LayerKind
            for meta in groups.get(kind.value, [])
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise VenvStacksError(f"{meta_file}: not valid venvstacks metadata ({exc})") from None
    for layer in layers:
        # These become paths below the target folder: a hostile "../x" must not.
        for name in (layer.install_target, str(layer.metadata["archive_name"]), *layer.needs):
            if not is_plain_name(name):
                raise VenvStacksError(f"{meta_file}: {name!r} is not a plain layer or file name")
    return layers


def is_plain_name(name: str) -> bool:
    """A single path component that is neither hidden (our staging names) nor special."""
    return bool(name) and not name.startswith(".") and not any(c in name for c in "/\\\0")


def _find_stack_metadata(published: Path) -> Path:
    if published.is_file():
        return published
    folder = published / METADATA_DIR if (published / METADATA_DIR).is_dir() else published
    if (folder / f"{STACK_METADATA}.json").is_file():
        return folder / f"{STACK_METADATA}.json"
    tagged = sorted(folder.glob(f"{STACK_METADATA}-*.json"))
    if len(tagged) == 1:
        return tagged[0]
    if tagged:
        names = ", ".join(p.name for p in tagged)
        raise VenvStacksError(f"{folder}: several platforms ({names}); pass one file instead")
    raise VenvStacksError(
        f"{published}: no {METADATA_DIR}/venvstacks.json found; pass the folder `venvstacks publish` "
        "wrote (_artifacts beside the stack file, unless --output-dir named another)"
    )
