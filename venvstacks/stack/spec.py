"""Parse and validate a `venvstacks.toml` into immutable layer specs.

Every field the existing venvstacks accepts is accepted here with the same meaning. All
validation happens up front, so a bad stack file fails before anything is locked or built,
with one line naming the file, the layer and the field.

This module reads the top level of the file and [tool.uv], and knows which fields each kind
of layer has; the rules for each field's value live in `venvstacks.stack.fields`, the specs
it builds in `venvstacks.stack.model`.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from venvstacks.errors import SpecError
from venvstacks.fsutil import UnsafeFileError, read_bounded_text
from venvstacks.stack import fields, modulefields, naming, uvkeys
from venvstacks.stack.kinds import LayerKind
from venvstacks.stack.model import LayerSpec, StackSpec

UV_SETTINGS_FILE = "venvstacks.uv.toml"  # [tool.uv] settings beside it, read only without [tool.uv]

COMMON_FIELDS = {
    "name": str,
    "requirements": list,
    "platforms": list,
    "versioned": bool,
    "linux_target": str,
    "macosx_target": str,
    "dynlib_exclude": list,
    "package_indexes": dict,
    "priority_indexes": list,
    "index_overrides": dict,
}
KIND_FIELDS: dict[LayerKind, dict[str, type]] = {
    LayerKind.RUNTIME: {"python_implementation": str, "fully_versioned_name": str},
    LayerKind.FRAMEWORK: {"runtime": str, "frameworks": list},
    LayerKind.APPLICATION: {
        "runtime": str,
        "frameworks": list,
        "launch_module": str,
        "support_modules": list,
    },
}
DEPRECATED = {"build_requirements": "it is ignored; remove it"}
TOP_LEVEL = {*(kind.value for kind in LayerKind), "tool"}


def load_stack(path: Path, warn: Callable[[str], None] | None = None) -> StackSpec:
    """Read, parse and validate a stack file."""
    given = path.expanduser().absolute()
    path = given.resolve()
    try:
        # Read through the path as given, so errors name it rather than a link's target.
        data = _read_toml(given)
    except FileNotFoundError:
        hint = "pass the path to a venvstacks.toml, or write a starter stack with `venvstacks init`"
        raise SpecError(path, None, None, f"stack file not found ({path.absolute()}); {hint}") from None
    return parse_stack(path, data, warn or _stderr_warning)


def _read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's contents; every way it can be unreadable is a SpecError but not-found."""
    try:
        text = read_bounded_text(path)
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise SpecError(path, None, None, "is a folder; pass the path to a venvstacks.toml") from None
    except UnsafeFileError as exc:
        raise SpecError(path, None, None, f"{exc}; make it a regular file") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SpecError(
            path, None, None, f"cannot be read ({reason}); check the path and permissions"
        ) from None
    except UnicodeDecodeError:
        raise SpecError(path, None, None, "is not UTF-8 text; save it as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(path, None, None, f"not valid TOML ({exc}); fix the syntax") from None
    except RecursionError:
        raise SpecError(path, None, None, "is nested too deeply to be a stack file; flatten it") from None


def _stderr_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def parse_stack(path: Path, data: Mapping[str, Any], warn: Callable[[str], None]) -> StackSpec:
    unknown = sorted(set(data) - TOP_LEVEL)
    if unknown:
        raise SpecError(
            path,
            None,
            unknown[0],
            "unknown top-level key"
            + fields.did_you_mean(unknown[0], TOP_LEVEL)
            + "; expected [[runtimes]], [[frameworks]], [[applications]] or [tool.uv]",
        )
    uv_config = _uv_config(path, data, warn)
    parser = _Parser(path, uv_config, warn, _framework_names(data))
    for kind in LayerKind:
        tables = data.get(kind.value, [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise SpecError(path, None, kind.value, f"must be an array of tables ([[{kind.value}]])")
        for index, table in enumerate(tables):
            parser.add(kind, index, table)
    if not any(layer.kind is LayerKind.RUNTIME for layer in parser.layers):
        raise SpecError(path, None, "runtimes", "the stack defines no runtime; add a [[runtimes]] table")
    naming.check_unique_outputs(path, parser.layers)
    return StackSpec(path=path, layers=tuple(parser.layers), uv_config=uv_config)


def _framework_names(data: Mapping[str, Any]) -> set[Any]:
    """Every [[frameworks]] name in the file, read ahead so errors can spot forward references."""
    frameworks = data.get(LayerKind.FRAMEWORK.value)
    if not isinstance(frameworks, list):
        return set()
    # Only strings: a wrong type (a list, a table) is reported later, naming its layer.
    return {t["name"] for t in frameworks if isinstance(t, dict) and isinstance(t.get("name"), str)}


def _uv_config(path: Path, data: Mapping[str, Any], warn: Callable[[str], None]) -> dict[str, Any]:
    tool = data.get("tool", {})
    if not isinstance(tool, dict):
        raise SpecError(path, None, "tool", "must be a table")
    inline = tool.get("uv")
    if inline is not None:
        if not isinstance(inline, dict):
            raise SpecError(path, None, "tool.uv", "must be a table")
        uvkeys.check_settings(path, inline, "tool.uv.", warn)
        return dict(inline)
    # As upstream: a venvstacks.uv.toml beside the stack file is used only without [tool.uv].
    side_file = path.parent / UV_SETTINGS_FILE
    if side_file.exists():
        settings = _read_toml(side_file)
        uvkeys.check_settings(side_file, settings, "", warn)
        return settings
    return {}


class _Parser:
    """Turns layer tables into LayerSpecs, in file order: a layer may only use layers above it."""

    def __init__(
        self,
        path: Path,
        uv_config: Mapping[str, Any],
        warn: Callable[[str], None],
        framework_names: set[Any],
    ) -> None:
        self.path = path
        self.warn = warn
        self.framework_names = framework_names
        self.layers: list[LayerSpec] = []
        self.defined: dict[LayerKind, dict[str, LayerSpec]] = {kind: {} for kind in LayerKind}
        indexes = uv_config.get("index", [])
        if not isinstance(indexes, list) or not all(isinstance(i, dict) for i in indexes):
            raise SpecError(path, None, "tool.uv.index", "must be an array of tables ([[tool.uv.index]])")
        self.index_names = {i.get("name") for i in indexes}

    def fail(self, layer: str | None, field: str | None, message: str) -> SpecError:
        return SpecError(self.path, layer, field, message)

    def add(self, kind: LayerKind, index: int, table: dict[str, Any]) -> None:
        # Errors name the layer as every other message does (its build name) once it has one.
        raw_name = table.get("name")
        label = kind.prefix + raw_name if isinstance(raw_name, str) and raw_name else f"{kind.value}[{index}]"
        checked = self._check_fields(kind, label, table)
        unnamed = fields.LayerTable(self.path, label, checked)
        name = naming.layer_name(unnamed, is_runtime=kind is LayerKind.RUNTIME)
        env_name = kind.prefix + name
        if name in self.defined[kind]:
            raise self.fail(
                env_name,
                "name",
                f"duplicate {kind.singular} name; layer names must be unique, rename one of them",
            )
        layer = self._build(kind, name, fields.LayerTable(self.path, env_name, checked))
        self.layers.append(layer)
        self.defined[kind][name] = layer

    def _check_fields(self, kind: LayerKind, label: str, table: dict[str, Any]) -> dict[str, Any]:
        """The table's fields once each is known for this kind and of the right TOML type."""
        allowed = {**COMMON_FIELDS, **KIND_FIELDS[kind]}
        checked: dict[str, Any] = {}
        for key, value in table.items():
            if key in DEPRECATED:
                self.warn(
                    f"{self.path.name}: layer {label!r}: field {key!r} is deprecated: {DEPRECATED[key]}"
                )
                continue
            self._check_field(kind, label, allowed, key, value)
            checked[key] = value
        self._rename_fully_versioned_name(label, checked)
        return checked

    def _check_field(
        self, kind: LayerKind, label: str, allowed: Mapping[str, type], key: str, value: Any
    ) -> None:
        if key not in allowed:
            owners = [k.value for k in LayerKind if key in KIND_FIELDS[k]]
            if owners:
                only = " or ".join(f"[[{o}]]" for o in owners)
                raise self.fail(label, key, f"is only valid for {only}; remove it from this layer")
            expected = ", ".join(sorted(allowed))
            raise self.fail(
                label,
                key,
                f"unknown field for [[{kind.value}]]{fields.did_you_mean(key, allowed)}; "
                f"expected one of: {expected}",
            )
        expected_type = allowed[key]
        if not isinstance(value, expected_type):
            raise self.fail(
                label,
                key,
                f"must be a {_type_name(expected_type)}, not {_type_name(type(value))}; "
                f"write it like {key} = {_EXAMPLES[expected_type]}",
            )

    def _rename_fully_versioned_name(self, label: str, checked: dict[str, Any]) -> None:
        if "fully_versioned_name" not in checked:
            return
        if "python_implementation" in checked:
            # As upstream: two spellings of one field is a mistake, not a preference.
            raise self.fail(
                label,
                "fully_versioned_name",
                "is the deprecated spelling of 'python_implementation', which is also set; remove it",
            )
        self.warn(
            f"{self.path.name}: layer {label!r}: field 'fully_versioned_name' is deprecated: "
            "rename it to 'python_implementation'"
        )
        checked["python_implementation"] = checked.pop("fully_versioned_name")

    def _build(self, kind: LayerKind, name: str, t: fields.LayerTable) -> LayerSpec:
        # The order of these calls is the order errors are reported in; keep it.
        requirements = fields.requirements(t)
        if kind is LayerKind.RUNTIME:
            deps = fields.Dependencies()
            implementation = fields.python_implementation(t)
        else:
            frameworks = self.defined[LayerKind.FRAMEWORK]
            runtimes = self.defined[LayerKind.RUNTIME]
            deps = fields.dependencies(t, runtimes, frameworks, self.framework_names)
            # Frameworks and applications run on their runtime's Python.
            implementation = deps.runtime.python_implementation  # type: ignore[union-attr]
        launch, support = modulefields.modules(t) if kind is LayerKind.APPLICATION else (None, ())
        below = deps.below
        return LayerSpec(
            kind=kind,
            name=name,
            env_name=t.layer,
            requirements=requirements,
            # Each lower layer's platforms are already within those below it.
            platforms=fields.platforms(t, deps.direct),
            versioned=bool(t.fields.get("versioned", False)),
            linux_target=fields.linux_target(t),
            macosx_target=fields.macosx_target(t),
            dynlib_exclude=fields.strings(t, "dynlib_exclude"),
            package_indexes=fields.package_indexes(t, below, self.index_names),
            priority_indexes=fields.priority_indexes(t, self.index_names),
            index_overrides=fields.index_overrides(t, self.index_names),
            python_implementation=implementation,
            runtime=deps.runtime.env_name if deps.runtime else None,
            frameworks=deps.frameworks,
            lower=tuple(spec.env_name for spec in deps.lower),
            launch_module=launch,
            support_modules=support,
        )


_EXAMPLES: dict[type, str] = {
    str: '"..."',
    list: '["..."]',
    dict: '{ key = "value" }',
    bool: "true",
}


def _type_name(t: type) -> str:
    return {
        str: "string",
        list: "list",
        dict: "table",
        bool: "boolean",
        int: "integer",
        float: "number",
    }.get(t, t.__name__)
