"""Parse and validate a `venvstacks.toml` into immutable layer specs.

Every field the existing venvstacks accepts is accepted here with the same meaning. All
validation happens up front, so a bad stack file fails before anything is locked or built,
with one line naming the file, the layer and the field.
"""

from __future__ import annotations

import difflib
import re
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from venvstacks.errors import SpecError
from venvstacks.graph import LinearizationError, c3_linearize

ALL_PLATFORMS = (
    "win_amd64",
    "win_arm64",
    "linux_x86_64",
    "linux_aarch64",
    "macosx_arm64",
    "macosx_x86_64",
)
DEFAULT_LINUX_TARGET = "glibc@2.28"


class LayerKind(Enum):
    RUNTIME = "runtimes"
    FRAMEWORK = "frameworks"
    APPLICATION = "applications"

    @property
    def prefix(self) -> str:
        return {"runtimes": "", "frameworks": "framework-", "applications": "app-"}[self.value]


@dataclass(frozen=True)
class LayerSpec:
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
    def launch_module_name(self) -> str | None:
        return module_name(self.launch_module) if self.launch_module else None

    @property
    def lock_stem(self) -> str:
        # uv insists on pylock.<name>.toml with no dots in <name>
        return self.env_name.replace(".", "_")


@dataclass(frozen=True)
class StackSpec:
    path: Path
    layers: tuple[LayerSpec, ...]  # runtimes, frameworks, applications: lower layers first
    uv_config: Mapping[str, Any]

    @property
    def root(self) -> Path:
        return self.path.parent

    def layer(self, env_name: str) -> LayerSpec:
        for layer in self.layers:
            if layer.env_name == env_name:
                return layer
        raise KeyError(env_name)

    def requirements_dir(self, layer: LayerSpec) -> Path:
        return self.root / "requirements" / layer.env_name


def module_name(path: Path) -> str:
    return path.stem if path.is_file() else path.name


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
TOP_LEVEL = {"runtimes", "frameworks", "applications", "tool"}
_REQUEST_RE = re.compile(r"^(cpython|pypy)@(\d+)\.(\d+)(\.\d+)?$")
_LINUX_TARGET_RE = re.compile(r"^glibc(@(\d+)\.(\d+))?$")
_MACOS_TARGET_RE = re.compile(r"^\d+(\.\d+)?$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")


def load_stack(path: Path, warn: Callable[[str], None] | None = None) -> StackSpec:
    """Read, parse and validate a stack file."""
    path = path.expanduser().resolve()
    try:
        data = _read_toml(path)
    except FileNotFoundError:
        raise SpecError(
            path, None, None, "stack file not found; pass the path to a venvstacks.toml"
        ) from None
    return parse_stack(path, data, warn or _stderr_warning)


def _read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's contents; every way it can be unreadable is a SpecError but not-found."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise SpecError(path, None, None, "is a folder; pass the path to a venvstacks.toml") from None
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
            + _did_you_mean(unknown[0], TOP_LEVEL)
            + "; expected [[runtimes]], [[frameworks]], [[applications]] or [tool.uv]",
        )
    uv_config = _uv_config(path, data)
    parser = _Parser(path, uv_config, warn)
    frameworks = data.get(LayerKind.FRAMEWORK.value)
    if isinstance(frameworks, list):
        parser.framework_names = {t.get("name") for t in frameworks if isinstance(t, dict)}
    for kind in LayerKind:
        tables = data.get(kind.value, [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise SpecError(path, None, kind.value, f"must be an array of tables ([[{kind.value}]])")
        for index, table in enumerate(tables):
            parser.add(kind, index, table)
    if not any(layer.kind is LayerKind.RUNTIME for layer in parser.layers):
        raise SpecError(path, None, "runtimes", "the stack defines no runtime; add a [[runtimes]] table")
    return StackSpec(path=path, layers=tuple(parser.layers), uv_config=uv_config)


def _uv_config(path: Path, data: Mapping[str, Any]) -> dict[str, Any]:
    tool = data.get("tool", {})
    if not isinstance(tool, dict):
        raise SpecError(path, None, "tool", "must be a table")
    inline = tool.get("uv")
    if inline is not None:
        if not isinstance(inline, dict):
            raise SpecError(path, None, "tool.uv", "must be a table")
        return dict(inline)
    # As upstream: a venvstacks.uv.toml beside the stack file is used only without [tool.uv].
    side_file = path.parent / "venvstacks.uv.toml"
    if side_file.exists():
        return _read_toml(side_file)
    return {}


class _Parser:
    def __init__(self, path: Path, uv_config: Mapping[str, Any], warn: Callable[[str], None]) -> None:
        self.path = path
        self.warn = warn
        self.layers: list[LayerSpec] = []
        self.by_name: dict[tuple[LayerKind, str], LayerSpec] = {}
        self.framework_names: set[Any] = set()  # every [[frameworks]] name in the file
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
        fields = self._check_fields(kind, label, table)
        name = self._name(kind, label, fields)
        env_name = kind.prefix + name
        if (kind, name) in self.by_name:
            raise self.fail(
                env_name,
                "name",
                f"duplicate {kind.value[:-1]} name; layer names must be unique, rename one of them",
            )
        layer = self._build(kind, name, env_name, fields)
        self.layers.append(layer)
        self.by_name[(kind, name)] = layer

    def _check_fields(self, kind: LayerKind, label: str, table: dict[str, Any]) -> dict[str, Any]:
        allowed = {**COMMON_FIELDS, **KIND_FIELDS[kind]}
        fields: dict[str, Any] = {}
        for key, value in table.items():
            if key in DEPRECATED:
                self.warn(
                    f"{self.path.name}: layer {label!r}: field {key!r} is deprecated: {DEPRECATED[key]}"
                )
                continue
            if key not in allowed:
                owners = [k.value for k in LayerKind if key in KIND_FIELDS[k]]
                if owners:
                    only = " or ".join(f"[[{o}]]" for o in owners)
                    raise self.fail(label, key, f"is only valid for {only}; remove it from this layer")
                expected = ", ".join(sorted(allowed))
                raise self.fail(
                    label,
                    key,
                    f"unknown field for [[{kind.value}]]{_did_you_mean(key, allowed)}; "
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
            fields[key] = value
        if "fully_versioned_name" in fields and "python_implementation" in fields:
            # As upstream: two spellings of one field is a mistake, not a preference.
            raise self.fail(
                label,
                "fully_versioned_name",
                "is the deprecated spelling of 'python_implementation', which is also set; remove it",
            )
        if "fully_versioned_name" in fields:
            self.warn(
                f"{self.path.name}: layer {label!r}: field 'fully_versioned_name' is deprecated: "
                "rename it to 'python_implementation'"
            )
            fields.setdefault("python_implementation", fields.pop("fully_versioned_name"))
        return fields

    def _name(self, kind: LayerKind, label: str, fields: dict[str, Any]) -> str:
        name = fields.get("name")
        if not name:
            raise self.fail(label, "name", "missing; every layer needs a name")
        if not _NAME_RE.match(name):
            raise self.fail(
                label,
                "name",
                "use letters, digits and . _ - @ + only, starting with a letter or digit",
            )
        if kind is LayerKind.RUNTIME and name.startswith(("framework-", "app-")):
            raise self.fail(name, "name", "runtime names may not start with 'framework-' or 'app-'")
        return str(name)

    def _build(self, kind: LayerKind, name: str, env_name: str, f: dict[str, Any]) -> LayerSpec:
        if "requirements" not in f:
            raise self.fail(env_name, "requirements", "missing; list the layer's requirements (may be [])")
        requirements = self._requirements(env_name, f["requirements"])
        runtime, frameworks, lower = self._dependencies(kind, env_name, f)
        base = self.by_name[(LayerKind.RUNTIME, runtime)] if runtime else None
        lower_layers = [self.layer_by_env(n) for n in lower] + ([base] if base else [])
        impl = self._implementation(env_name, f) if kind is LayerKind.RUNTIME else base.python_implementation  # type: ignore[union-attr]
        launch, support = self._modules(kind, env_name, f)
        return LayerSpec(
            kind=kind,
            name=name,
            env_name=env_name,
            requirements=requirements,
            platforms=self._platforms(env_name, f, lower_layers),
            versioned=bool(f.get("versioned", False)),
            linux_target=self._linux_target(env_name, f),
            macosx_target=self._macosx_target(env_name, f),
            dynlib_exclude=self._strings(env_name, "dynlib_exclude", f.get("dynlib_exclude", [])),
            package_indexes=self._package_indexes(env_name, f, lower_layers),
            priority_indexes=self._priority_indexes(env_name, f),
            index_overrides=self._index_overrides(env_name, f),
            python_implementation=impl,
            runtime=base.env_name if base else None,
            frameworks=frameworks,
            lower=lower,
            launch_module=launch,
            support_modules=support,
        )

    def layer_by_env(self, env_name: str) -> LayerSpec:
        return next(layer for layer in self.layers if layer.env_name == env_name)

    def _strings(self, layer: str, field: str, values: list[Any]) -> tuple[str, ...]:
        for value in values:
            if not isinstance(value, str):
                raise self.fail(layer, field, f"every entry must be a string, got {value!r}; quote it")
        return tuple(values)

    def _requirements(self, layer: str, values: list[Any]) -> tuple[str, ...]:
        for value in self._strings(layer, "requirements", values):
            try:
                Requirement(value)
            except InvalidRequirement as exc:
                first = str(exc).splitlines()[0]
                raise self.fail(
                    layer,
                    "requirements",
                    f"invalid requirement {value!r} ({first}); use PEP 508 syntax",
                ) from None
        return tuple(values)

    def _implementation(self, layer: str, f: dict[str, Any]) -> str:
        request = f.get("python_implementation")
        if not request:
            raise self.fail(
                layer,
                "python_implementation",
                'missing; write e.g. "cpython@3.11" or "cpython@3.11.9"',
            )
        match = _REQUEST_RE.match(request)
        if not match:
            raise self.fail(
                layer,
                "python_implementation",
                f"{request!r} is not of the form cpython@X.Y or cpython@X.Y.Z",
            )
        if match.group(1) == "pypy":
            raise self.fail(
                layer,
                "python_implementation",
                "PyPy runtimes are not supported yet; use cpython@X.Y",
            )
        return str(request)

    def _dependencies(
        self, kind: LayerKind, layer: str, f: dict[str, Any]
    ) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
        if kind is LayerKind.RUNTIME:
            return None, (), ()
        has_runtime, has_frameworks = "runtime" in f, "frameworks" in f
        if has_runtime == has_frameworks:
            raise self.fail(layer, "runtime", "give exactly one of 'runtime' or 'frameworks'")
        if has_runtime:
            runtime = f["runtime"]
            if (LayerKind.RUNTIME, runtime) not in self.by_name:
                raise self.fail(
                    layer,
                    "runtime",
                    f"unknown runtime {runtime!r}; define it in a [[runtimes]] table first",
                )
            return runtime, (), ()
        names = self._strings(layer, "frameworks", f["frameworks"])
        if not names:
            raise self.fail(layer, "frameworks", "must list at least one framework (or use 'runtime')")
        repeated = sorted({fw for fw in names if names.count(fw) > 1})
        if repeated:
            raise self.fail(
                layer, "frameworks", f"framework {repeated[0]!r} is listed more than once; list it once"
            )
        declared: list[LayerSpec] = []
        for fw in names:
            spec = self.by_name.get((LayerKind.FRAMEWORK, fw))
            if spec is None:
                raise self.fail(layer, "frameworks", self._unknown_framework(layer, fw))
            declared.append(spec)
        runtimes = {d.runtime for d in declared}
        if len(runtimes) > 1:
            raise self.fail(
                layer,
                "frameworks",
                f"frameworks use different runtimes ({', '.join(sorted(map(str, runtimes)))}); "
                "a layer can only have one runtime",
            )
        try:
            order = c3_linearize(
                layer,
                [d.env_name for d in declared],
                {s.env_name: s.frameworks for s in self.layers},
            )
        except LinearizationError as exc:
            raise self.fail(
                layer, "frameworks", f"{exc}; reorder the frameworks lists so they agree"
            ) from None
        runtime_env = declared[0].runtime
        runtime_name = self.layer_by_env(str(runtime_env)).name
        return runtime_name, tuple(d.env_name for d in declared), tuple(order)

    def _unknown_framework(self, layer: str, fw: str) -> str:
        rule = "frameworks must be defined above the layers that use them"
        if layer == LayerKind.FRAMEWORK.prefix + fw:
            return f"unknown framework {fw!r}: a framework cannot list itself; {rule}"
        if fw in self.framework_names:
            # Upstream reports this as plain "unknown framework"; saying where it is helps more.
            return f"unknown framework {fw!r} (it is defined further down); {rule}: move its table up"
        bare = fw.removeprefix(LayerKind.FRAMEWORK.prefix)
        if bare != fw and bare in self.framework_names:
            return f"unknown framework {fw!r} (did you mean {bare!r}?); list frameworks without the prefix"
        return f"unknown framework {fw!r}; {rule}"

    def _platforms(self, layer: str, f: dict[str, Any], lower: list[LayerSpec]) -> tuple[str, ...]:
        available = set(ALL_PLATFORMS)
        for spec in lower:
            available &= set(spec.platforms)
        if "platforms" not in f:
            return tuple(p for p in ALL_PLATFORMS if p in available)
        wanted = self._strings(layer, "platforms", f["platforms"])
        for platform in wanted:
            if platform not in ALL_PLATFORMS:
                raise self.fail(
                    layer,
                    "platforms",
                    f"unknown platform {platform!r}; choose from {', '.join(ALL_PLATFORMS)}",
                )
            if platform not in available:
                raise self.fail(
                    layer,
                    "platforms",
                    f"{platform!r} is not built by every lower layer; "
                    f"lower layers share: {', '.join(sorted(available)) or 'none'}",
                )
        return tuple(dict.fromkeys(wanted))

    def _linux_target(self, layer: str, f: dict[str, Any]) -> str:
        target = f.get("linux_target", DEFAULT_LINUX_TARGET)
        match = _LINUX_TARGET_RE.match(target)
        if not match:
            raise self.fail(
                layer,
                "linux_target",
                f"{target!r} is not 'glibc' or 'glibc@X.Y' (musl is not supported)",
            )
        if match.group(1) and (int(match.group(2)), int(match.group(3))) < (2, 17):
            raise self.fail(
                layer,
                "linux_target",
                f"{target!r} is older than glibc 2.17, the oldest manylinux target",
            )
        return str(target) if match.group(1) else DEFAULT_LINUX_TARGET

    def _macosx_target(self, layer: str, f: dict[str, Any]) -> str | None:
        target = f.get("macosx_target")
        if target is not None and not _MACOS_TARGET_RE.match(target):
            raise self.fail(layer, "macosx_target", f"{target!r} is not a macOS version like '13.0'")
        return target

    def _package_indexes(
        self, layer: str, f: dict[str, Any], lower: list[LayerSpec]
    ) -> tuple[tuple[str, str], ...]:
        merged: dict[str, str] = {}
        overrides = dict(self._index_overrides(layer, f))
        for spec in reversed(lower):
            for dist, index in spec.package_indexes:
                seen = merged.get(dist)
                if seen is not None and seen != index:
                    # Two lower layers pin one distribution to different indexes: only
                    # acceptable when index_overrides says which index wins.
                    winner = overrides.get(seen) if overrides.get(seen) == index else overrides.get(index)
                    if winner not in (seen, index):
                        raise self.fail(
                            layer,
                            "package_indexes",
                            f"lower layers take {dist!r} from different indexes ({seen!r} and {index!r}); "
                            f"declare the winner with index_overrides = {{ {seen} = {index!r} }}",
                        )
                    index = winner
                merged[dist] = index
        for dist, index in f.get("package_indexes", {}).items():
            if not isinstance(index, str) or index not in self.index_names:
                raise self.fail(
                    layer,
                    "package_indexes",
                    f"{dist!r} names unknown index {index!r}; "
                    "define it as a [[tool.uv.index]] with that name",
                )
            merged[dist] = index
        return tuple(sorted(merged.items()))

    def _priority_indexes(self, layer: str, f: dict[str, Any]) -> tuple[str, ...]:
        names = self._strings(layer, "priority_indexes", f.get("priority_indexes", []))
        for name in names:
            if name not in self.index_names:
                raise self.fail(
                    layer,
                    "priority_indexes",
                    f"unknown index {name!r}; define it as a [[tool.uv.index]] with that name",
                )
        return names

    def _index_overrides(self, layer: str, f: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        overrides = f.get("index_overrides", {})
        for key, value in overrides.items():
            if not isinstance(value, str) or value not in self.index_names:
                raise self.fail(
                    layer,
                    "index_overrides",
                    f"{key!r} names unknown index {value!r}; define it as a [[tool.uv.index]]",
                )
        return tuple(sorted(overrides.items()))

    def _modules(
        self, kind: LayerKind, layer: str, f: dict[str, Any]
    ) -> tuple[Path | None, tuple[Path, ...]]:
        if kind is not LayerKind.APPLICATION:
            return None, ()
        if "launch_module" not in f:
            raise self.fail(
                layer,
                "launch_module",
                "missing; applications need a launch module (a .py file or package folder)",
            )
        launch = self._module_path(layer, "launch_module", f["launch_module"])
        support = tuple(
            self._module_path(layer, "support_modules", s)
            for s in self._strings(layer, "support_modules", f.get("support_modules", []))
        )
        seen = {module_name(launch): "launch_module"}
        for path in support:
            name = module_name(path)
            if name in seen:
                raise self.fail(
                    layer,
                    "support_modules",
                    f"module name {name!r} is used twice (also by {seen[name]}); module names must be unique",
                )
            seen[name] = "support_modules"
        return launch, support

    def _module_path(self, layer: str, field: str, value: str) -> Path:
        path = (self.path.parent / value).resolve()
        if not path.exists():
            raise self.fail(
                layer,
                field,
                f"{value!r} does not exist (paths are relative to the stack file's folder)",
            )
        if path.is_file() and path.suffix != ".py":
            raise self.fail(layer, field, f"{value!r} is neither a .py file nor a package folder")
        if path.is_dir() and not (path / "__init__.py").exists() and not (path / "__main__.py").exists():
            raise self.fail(layer, field, f"{value!r} is a folder without __init__.py or __main__.py")
        return path


def _did_you_mean(key: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


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
