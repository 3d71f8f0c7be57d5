"""The rules for the value of each field in a layer table of a `venvstacks.toml`.

`venvstacks.stack.spec` checks which fields a table may have and their TOML types; the functions
here check what the values say (a valid requirement, a known platform or index) and resolve
them against the layers defined above; an application's modules, which must exist on disk,
have theirs in `venvstacks.stack.modulefields`. Each raises a `SpecError` naming
the file, the layer and the field. It reads the data model (`venvstacks.stack.model`), never
the parser in `spec` that calls it, so `stack/` has no import cycle.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from venvstacks.errors import SpecError
from venvstacks.lazy import lazy_modules
from venvstacks.platforms import ALL_PLATFORMS
from venvstacks.stack import verdicts
from venvstacks.stack.graph import LinearizationError, c3_linearize
from venvstacks.stack.kinds import LayerKind
from venvstacks.stack.model import LayerSpec

if TYPE_CHECKING:
    import difflib

    import packaging
    from packaging import requirements as pep508
    from packaging import utils as putils
else:
    # Parsing requirements compiles packaging's grammar (about 10-20 ms): bare names need
    # none, and a requirement found valid before is remembered (`verdicts`).
    # difflib only suggests a name for a misspelt key.
    packaging, pep508, putils, difflib = lazy_modules(
        "packaging", "packaging.requirements", "packaging.utils", "difflib"
    )

DEFAULT_LINUX_TARGET = "glibc@2.28"
# A layer's build name is its name behind its kind's prefix (`LayerKind.prefix` reads this),
# so a framework and an application may share a name.
_FRAMEWORK_PREFIX = LayerKind.FRAMEWORK.prefix
# Matched with fullmatch: `$` would also accept a trailing newline. ASCII digits only.
# `python_implementation` (init --python checks its X.Y[.Z] with it too).
REQUEST_RE = re.compile(r"(cpython|pypy)@([0-9]+)\.([0-9]+)(\.[0-9]+)?")
_LINUX_TARGET_RE = re.compile(r"glibc(@([0-9]+)\.([0-9]+))?")
_MACOS_TARGET_RE = re.compile(r"[0-9]+(\.[0-9]+)?")
_DEFINE_INDEX = "define it as a [[tool.uv.index]]"


@dataclass(frozen=True)
class LayerTable:
    """One layer's fields, already type-checked, and what an error about them must name."""

    path: Path  # the stack file; module paths are relative to its folder
    layer: str  # the layer's build name (or its table position while it has no name)
    fields: Mapping[str, Any]

    def fail(self, field: str, message: str) -> SpecError:
        return SpecError(self.path, self.layer, field, message)


@dataclass(frozen=True)
class Dependencies:
    """The layers below a framework or application (a runtime has none)."""

    runtime: LayerSpec | None = None
    frameworks: tuple[str, ...] = ()  # build names, as declared
    lower: tuple[LayerSpec, ...] = ()  # frameworks in sys.path (C3) order

    @property
    def below(self) -> list[LayerSpec]:
        """Every lower layer: the frameworks, then the runtime."""
        return [*self.lower, *([self.runtime] if self.runtime else [])]

    @property
    def direct(self) -> list[LayerSpec]:
        """The layers this one lists itself (each already covers what lies below it)."""
        declared = set(self.frameworks)
        return [*(f for f in self.lower if f.env_name in declared), *([self.runtime] if self.runtime else [])]


def strings(t: LayerTable, field: str) -> tuple[str, ...]:
    """A list field's entries, each of which must be a string (TOML allows mixed arrays)."""
    values = t.fields.get(field, [])
    for value in values:
        if not isinstance(value, str):
            raise t.fail(field, f"every entry must be a string, got {value!r}; quote it")
    return tuple(values)


# A PEP 508 distribution name (packaging's own pattern for it), with nothing else.
_BARE_NAME = re.compile(r"[A-Z0-9](?:[A-Z0-9._-]*[A-Z0-9])?\Z", re.IGNORECASE)


def requirements(t: LayerTable) -> tuple[str, ...]:
    # Required even when empty, so a forgotten list is not silently an empty layer.
    if "requirements" not in t.fields:
        raise t.fail("requirements", "missing; list the layer's requirements (may be [])")
    values = strings(t, "requirements")
    for value in values:
        if _BARE_NAME.match(value):
            continue  # a PEP 508 name alone: valid, and the most common requirement
        remembered = verdicts.current()
        key = requirement_key(value)
        if remembered.get(key):
            continue  # found valid before, by this version of packaging
        try:
            pep508.Requirement(value)
        except pep508.InvalidRequirement as exc:
            first = str(exc).splitlines()[0]
            raise t.fail(
                "requirements", f"invalid requirement {value!r} ({first}); use PEP 508 syntax"
            ) from None
        remembered.add(key, True)
    return values


def requirement_key(value: str) -> str:
    """The verdict key of a requirement found valid: the string with the version of
    packaging that parsed it. Two NULs (and NUL is in no requirement) keep it apart from
    a `.gitignore` verdict's key, which has one."""
    return f"pep508\0{packaging.__version__}\0{value}"


def python_implementation(t: LayerTable) -> str:
    request = t.fields.get("python_implementation")
    if not request:
        raise t.fail("python_implementation", 'missing; write e.g. "cpython@3.11" or "cpython@3.11.9"')
    match = REQUEST_RE.fullmatch(request)
    if not match:
        raise t.fail("python_implementation", f"{request!r} is not of the form cpython@X.Y or cpython@X.Y.Z")
    # Recognised so the message can say it is unsupported rather than malformed.
    if match.group(1) == "pypy":
        raise t.fail("python_implementation", "PyPy runtimes are not supported yet; use cpython@X.Y")
    return str(request)


def dependencies(
    t: LayerTable,
    runtimes: Mapping[str, LayerSpec],
    frameworks: Mapping[str, LayerSpec],
    framework_names: Set[Any],
) -> Dependencies:
    """Resolve 'runtime' or 'frameworks' against the layers defined above this one.

    `runtimes` and `frameworks` map names to the layers defined so far; `framework_names` is
    every framework name in the file, to tell a forward reference from a typo.
    """
    has_runtime, has_frameworks = "runtime" in t.fields, "frameworks" in t.fields
    if has_runtime == has_frameworks:
        raise t.fail("runtime", "give exactly one of 'runtime' or 'frameworks'")
    if has_runtime:
        runtime = runtimes.get(t.fields["runtime"])
        if runtime is None:
            raise t.fail(
                "runtime",
                f"unknown runtime {t.fields['runtime']!r}{did_you_mean(str(t.fields['runtime']), runtimes)}; "
                "define it in a [[runtimes]] table first",
            )
        return Dependencies(runtime)
    declared = _declared_frameworks(t, frameworks, framework_names)
    runtime_envs = {d.runtime for d in declared}
    if len(runtime_envs) > 1:
        raise t.fail(
            "frameworks",
            f"frameworks use different runtimes ({', '.join(sorted(map(str, runtime_envs)))}); "
            "a layer can only have one runtime",
        )
    by_env = {f.env_name: f for f in frameworks.values()}
    try:
        order = c3_linearize(
            t.layer,
            [d.env_name for d in declared],
            {env: f.frameworks for env, f in by_env.items()},
            known={env: f.lower for env, f in by_env.items()},  # computed as each was read
        )
    except LinearizationError as exc:
        raise t.fail("frameworks", f"{exc}; reorder the frameworks lists so they agree") from None
    return Dependencies(
        runtime=next(r for r in runtimes.values() if r.env_name == declared[0].runtime),
        frameworks=tuple(d.env_name for d in declared),
        lower=tuple(by_env[env] for env in order),
    )


def _declared_frameworks(
    t: LayerTable, frameworks: Mapping[str, LayerSpec], framework_names: Set[Any]
) -> list[LayerSpec]:
    names = strings(t, "frameworks")
    if not names:
        raise t.fail("frameworks", "must list at least one framework (or use 'runtime')")
    repeated = sorted({fw for fw in names if names.count(fw) > 1})
    if repeated:
        raise t.fail("frameworks", f"framework {repeated[0]!r} is listed more than once; list it once")
    declared: list[LayerSpec] = []
    for fw in names:
        spec = frameworks.get(fw)
        if spec is None:
            raise t.fail("frameworks", _unknown_framework(t.layer, fw, framework_names))
        declared.append(spec)
    return declared


def did_you_mean(key: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest choice, or nothing when none is close."""
    close = difflib.get_close_matches(key, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_framework(layer: str, fw: str, framework_names: Set[Any]) -> str:
    rule = "frameworks must be defined above the layers that use them"
    if layer == _FRAMEWORK_PREFIX + fw:
        return f"unknown framework {fw!r}: a framework cannot list itself; {rule}"
    if fw in framework_names:
        # Upstream reports this as plain "unknown framework"; saying where it is helps more.
        return f"unknown framework {fw!r} (it is defined further down); {rule}: move its table up"
    bare = fw.removeprefix(_FRAMEWORK_PREFIX)
    if bare != fw and bare in framework_names:
        return f"unknown framework {fw!r} (did you mean {bare!r}?); list frameworks without the prefix"
    return f"unknown framework {fw!r}{did_you_mean(fw, framework_names)}; {rule}"


def platforms(t: LayerTable, lower: Iterable[LayerSpec]) -> tuple[str, ...]:
    """The platforms to build: by default all that every lower layer builds."""
    available = set(ALL_PLATFORMS)
    for spec in lower:
        available &= set(spec.platforms)
    if "platforms" not in t.fields:
        return tuple(p for p in ALL_PLATFORMS if p in available)
    wanted = strings(t, "platforms")
    for platform in wanted:
        if platform not in ALL_PLATFORMS:
            raise t.fail(
                "platforms", f"unknown platform {platform!r}; choose from {', '.join(ALL_PLATFORMS)}"
            )
        if platform not in available:
            raise t.fail(
                "platforms",
                f"{platform!r} is not built by every lower layer; "
                f"lower layers share: {', '.join(sorted(available)) or 'none'}",
            )
    return tuple(dict.fromkeys(wanted))


def linux_target(t: LayerTable) -> str:
    target = t.fields.get("linux_target", DEFAULT_LINUX_TARGET)
    match = _LINUX_TARGET_RE.fullmatch(target)
    if not match:
        raise t.fail("linux_target", f"{target!r} is not 'glibc' or 'glibc@X.Y' (musl is not supported)")
    if match.group(1) and (int(match.group(2)), int(match.group(3))) < (2, 17):
        raise t.fail("linux_target", f"{target!r} is older than glibc 2.17, the oldest manylinux target")
    # A bare "glibc" means the default version.
    return str(target) if match.group(1) else DEFAULT_LINUX_TARGET


def macosx_target(t: LayerTable) -> str | None:
    target = t.fields.get("macosx_target")
    if target is not None and not _MACOS_TARGET_RE.fullmatch(target):
        raise t.fail("macosx_target", f"{target!r} is not a macOS version like '13.0'")
    return target


def package_indexes(
    t: LayerTable, lower: Sequence[LayerSpec], known: Set[Any]
) -> tuple[tuple[str, str], ...]:
    """This layer's distribution-to-index pins, merged over those inherited from lower layers."""
    # Overrides are checked first: a conflict below is settled by them, so they must be valid.
    overrides = dict(index_overrides(t, known))
    merged: dict[str, str] = {}
    for spec in reversed(lower):
        for dist, index in spec.package_indexes:  # canonical names, as stored below
            seen = merged.get(dist)
            if seen is not None and seen != index:
                index = _settle_conflict(t, dist, seen, index, overrides)
            merged[dist] = index
    written = t.fields.get("package_indexes", {})
    _check_indexes(t, "package_indexes", written.items(), known)
    own: dict[str, str] = {}
    for dist, index in written.items():
        name = putils.canonicalize_name(dist)  # as pip and uv: Torch and torch are one distribution
        if name in own:
            raise t.fail(
                "package_indexes", f"{dist!r} and another entry name the same distribution; keep one"
            )
        own[name] = index
        seen = merged.get(name)
        if seen is not None and seen != index and overrides.get(seen) != index:
            raise t.fail(
                "package_indexes",
                f"takes {name!r} from {index!r} while a lower layer takes it from {seen!r}; "
                f"declare the override with index_overrides = {{ {seen} = {index!r} }}",
            )
    merged.update(own)
    return tuple(sorted(merged.items()))


def _settle_conflict(t: LayerTable, dist: str, seen: str, index: str, overrides: Mapping[str, str]) -> str:
    # Two lower layers pin one distribution to different indexes: only acceptable when
    # index_overrides says which index wins.
    winner = overrides.get(seen) if overrides.get(seen) == index else overrides.get(index)
    if winner not in (seen, index):
        raise t.fail(
            "package_indexes",
            f"lower layers take {dist!r} from different indexes ({seen!r} and {index!r}); "
            f"declare the winner with index_overrides = {{ {seen} = {index!r} }}",
        )
    return str(winner)


def priority_indexes(t: LayerTable, known: Set[Any]) -> tuple[str, ...]:
    names = strings(t, "priority_indexes")
    _check_indexes(t, "priority_indexes", ((None, name) for name in names), known)
    return names


def index_overrides(t: LayerTable, known: Set[Any]) -> tuple[tuple[str, str], ...]:
    overrides = t.fields.get("index_overrides", {})
    # This message has always stopped at "[[tool.uv.index]]"; kept as users and tests see it.
    _check_indexes(t, "index_overrides", overrides.items(), known, hint=_DEFINE_INDEX)
    return tuple(sorted(overrides.items()))


def _check_indexes(
    t: LayerTable,
    field: str,
    entries: Iterable[tuple[str | None, object]],
    known: Set[Any],
    hint: str = f"{_DEFINE_INDEX} with that name",
) -> None:
    """Every index named must be a [[tool.uv.index]]; `entries` are (key or None, index name)."""
    for key, index in entries:
        if not isinstance(index, str) or index not in known:
            named = "" if key is None else f"{key!r} names "
            raise t.fail(field, f"{named}unknown index {index!r}; {hint}")
