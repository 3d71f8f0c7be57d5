"""A layer's export or publish metadata (`__venvstacks__/env_metadata/<layer>.json`) and the
stack's `venvstacks.json`, which gathers them.

`engine/outputs.py` computes the common fields, `publish.py` adds the archive's, and the
summary, deploy, verify and `verify --rebuild` read them back; `venvstacks.json` is also
deploy's trust anchor, so every field's type is checked before it is used (a wrong one is one
line naming the file, the layer and the field). Each field's meaning: docs/publishing.md.
Fields this version does not know (the existing venvstacks', a newer version's) are kept as
they are and written back unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from venvstacks.fsutil import dump_json, is_sha256_hex, read_json_object
from venvstacks.jsondoc import DocumentError, Fields
from venvstacks.stack.kinds import LayerKind

_FIX = "the metadata is damaged or was edited"


@dataclass(frozen=True)
class SupportModule:
    name: str
    hash: str


@dataclass(frozen=True)
class LayerMetadata:
    install_target: str  # its deployed folder name (`app-x@2`)
    layer_name: str | None = None  # its build name
    requirements_hash: str | None = None
    lock_version: int | None = None
    locked_at: str | None = None
    runtime_layer: str | None = None
    python_implementation: str | None = None
    bound_to_implementation: bool | None = None
    runtime_source: str | None = None
    runtime_portable: bool | None = None  # False: packed from a local CPython
    linux_target: str | None = None
    macosx_target: str | None = None
    required_layers: tuple[str, ...] | None = None  # install targets, C3 order (not runtimes)
    app_launch_module: str | None = None
    app_launch_module_hash: str | None = None
    app_support_modules: tuple[SupportModule, ...] | None = None
    # Publishing adds these (an export has none of them).
    target_platform: str | None = None
    archive_format: str | None = None
    bytecode_included: bool | None = None  # True: `publish --bytecode` (ship/bytecode.py); else unset
    archive_build: int | None = None
    archive_name: str | None = None
    archive_size: int | None = None
    archive_hashes: Mapping[str, str] | None = None
    files_manifest_sha256: str | None = None
    sbom_sha256: str | None = None  # of `<archive>.cdx.json` (or an export's SBOM) beside it
    extra: Mapping[str, Any] = field(default_factory=dict)  # fields not named above

    @property
    def archive_sha256(self) -> str | None:
        return None if self.archive_hashes is None else self.archive_hashes.get("sha256")

    @property
    def needs(self) -> list[str]:
        """Install targets of the layers this one runs on (runtime first)."""
        deps = list(self.required_layers or ())
        runtime = self.runtime_layer
        if runtime and runtime != self.install_target:
            deps.insert(0, runtime)
        return deps

    def without_archive(self) -> LayerMetadata:
        """The fields that describe the layer's inputs, not one archive build of it."""
        return replace(
            self,
            archive_build=None,
            archive_name=None,
            archive_size=None,
            archive_hashes=None,
            files_manifest_sha256=None,
            sbom_sha256=None,
        )

    def to_json(self) -> dict[str, Any]:
        """The fields set, as written (a field left unset is left out)."""
        data: dict[str, Any] = dict(self.extra)
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or value is None:
                continue
            if f.name == "app_support_modules":
                value = [{"name": m.name, "hash": m.hash} for m in value]
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            data[f.name] = value
        return data

    def text(self) -> str:
        return dump_json(self.to_json())

    @classmethod
    def from_json(cls, data: Any, path: Path, position: str | None = None) -> LayerMetadata:
        """`position`: where the layer sits in `venvstacks.json`, named when it has no name."""
        named = data.get("layer_name") if isinstance(data, Mapping) else None
        f = Fields.of(data, path, named if isinstance(named, str) else position, _FIX)
        hashes = f.text_map("archive_hashes")
        known = {each.name for each in fields(cls)} - {"extra"}
        return cls(
            install_target=f.text("install_target"),
            layer_name=f.opt_text("layer_name"),
            requirements_hash=f.opt_text("requirements_hash"),
            lock_version=f.integer("lock_version"),
            locked_at=f.opt_text("locked_at"),
            runtime_layer=f.opt_text("runtime_layer"),
            python_implementation=f.opt_text("python_implementation"),
            bound_to_implementation=f.flag("bound_to_implementation"),
            runtime_source=f.opt_text("runtime_source"),
            runtime_portable=f.flag("runtime_portable"),
            linux_target=f.opt_text("linux_target"),
            macosx_target=f.opt_text("macosx_target"),
            required_layers=f.texts("required_layers"),
            app_launch_module=f.opt_text("app_launch_module"),
            app_launch_module_hash=f.opt_text("app_launch_module_hash"),
            app_support_modules=_support_modules(f),
            target_platform=f.opt_text("target_platform"),
            archive_format=f.opt_text("archive_format"),
            bytecode_included=f.flag("bytecode_included"),
            archive_build=f.integer("archive_build"),
            archive_name=f.opt_text("archive_name"),
            archive_size=f.integer("archive_size"),
            archive_hashes=hashes,
            files_manifest_sha256=f.opt_text("files_manifest_sha256"),
            sbom_sha256=f.opt_text("sbom_sha256"),
            extra={k: v for k, v in f.data.items() if k not in known},
        )

    @classmethod
    def read(cls, path: Path) -> LayerMetadata | None:
        """A metadata file; None when there is none, it is no JSON object or a field is of
        the wrong type: for our own output folder, where that only means "write it again"."""
        data = read_json_object(path)
        try:
            return cls.from_json(data, path) if data else None
        except DocumentError:
            return None

    def check_deployable(self, path: Path, position: str) -> None:
        """What deploy needs: an archive with a sha256, a size that is not negative."""

        def bad(field: str, message: str) -> DocumentError:
            return DocumentError(path, self.layer_name or position, field, message, _FIX)

        if self.archive_name is None:
            raise bad("archive_name", "is missing")
        if self.archive_hashes is None:
            raise bad("archive_hashes", "is missing, so the layer has no sha256")
        sha = self.archive_sha256
        if sha is None or not is_sha256_hex(sha):
            raise bad("archive_hashes", f"has no sha256 of 64 lowercase hex digits ({sha!r})")
        if (self.archive_size or 0) < 0:
            raise bad("archive_size", "must not be negative")


def _support_modules(f: Fields) -> tuple[SupportModule, ...] | None:
    value = f.data.get("app_support_modules")
    if value is None:
        return None
    if not isinstance(value, list):
        raise f.fail("app_support_modules", "must be a list")
    modules = []
    for index, item in enumerate(value):
        entry = Fields.of(item, f.path, f.layer, f.fix, within=f"app_support_modules[{index}]")
        modules.append(SupportModule(entry.text("name"), entry.text("hash")))
    return tuple(modules)


@dataclass(frozen=True)
class StackMetadata:
    """`venvstacks.json`: every exported or published layer's metadata, by kind, lower layers first."""

    layers: Mapping[LayerKind, tuple[LayerMetadata, ...]]

    def to_json(self) -> dict[str, Any]:
        return {
            "layers": {kind.value: [m.to_json() for m in self.layers.get(kind, ())] for kind in LayerKind}
        }

    def text(self) -> str:
        return dump_json(self.to_json())

    @classmethod
    def from_json(cls, data: Any, path: Path) -> StackMetadata:
        groups = Fields.of(data, path, fix=_FIX).mapping("layers")
        if groups is None:
            raise Fields.of(data, path, fix=_FIX).fail("layers", "is missing")
        layers: dict[LayerKind, tuple[LayerMetadata, ...]] = {}
        for kind in LayerKind:
            entries = Fields.of(groups, path, fix=_FIX, within="layers").data.get(kind.value) or []
            if not isinstance(entries, list):
                raise Fields(groups, path, fix=_FIX, within="layers").fail(kind.value, "must be a list")
            layers[kind] = tuple(
                LayerMetadata.from_json(meta, path, f"{kind.value}[{index}]")
                for index, meta in enumerate(entries)
            )
        return cls(layers)
