"""Where each `[tool.uv]` setting goes (pure data): every key uv 0.13 accepts is listed once.

A setting either changes what a lock resolves to (a lock input), or only how uv reaches
the network (given to locking and installing, never a reason to relock), or only how
installing works, or is applied by venvstacks itself (`index`, `sources`, `environments`,
`required-environments`), or has no effect on a venvstacks build and is ignored with one
warning line saying why. No key stops a stack, as none stops the existing venvstacks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from venvstacks.errors import SpecError
from venvstacks.lazy import lazy_modules
from venvstacks.stack.fields import did_you_mean

if TYPE_CHECKING:
    from packaging import markers
else:
    # Only a stack that sets uv's `environments` needs the marker parser.
    (markers,) = lazy_modules("packaging.markers")

# Change the resolution: written to the uv.toml of `uv pip compile` and part of the lock inputs.
RESOLUTION = frozenset({
    "index-url",
    "extra-index-url",
    "no-index",
    "find-links",
    "index-strategy",
    "resolution",
    "prerelease",
    "prerelease-package",
    "fork-strategy",
    "dependency-metadata",
    "exclude-newer",
    "exclude-newer-package",
    "constraint-dependencies",
    "override-dependencies",
    "exclude-dependencies",
    "no-build",
    "no-build-package",
    "torch-backend",
    "no-sources",
    "no-sources-package",
    "upgrade",
    "upgrade-package",
})  # fmt: skip

# How uv talks to indexes and its cache: given to both `uv pip compile` and `uv pip sync`.
NETWORK = frozenset({
    "required-version",
    "system-certs",
    "native-tls",
    "offline",
    "no-cache",
    "cache-dir",
    "preview",
    "preview-features",
    "concurrent-downloads",
    "keyring-provider",
    "http-proxy",
    "https-proxy",
    "no-proxy",
    "allow-insecure-host",
})  # fmt: skip

# How `uv pip sync` puts files in place.
INSTALL = frozenset({"link-mode", "reinstall", "reinstall-package", "concurrent-installs"})

# Read by venvstacks: `index` is each layer's index list, `sources` stack-wide package_indexes.
MAPPED = frozenset({"index", "sources"})

# Marker lists that `uv pip compile` (which venvstacks locks with) does not take: venvstacks
# applies them itself to each layer's platforms (venvstacks.lock.locking), as lock inputs.
ENVIRONMENTS = ("environments", "required-environments")

_WHEELS_ONLY = (
    "venvstacks installs wheels only (as the existing venvstacks), so build settings have no effect"
)
_RUNTIMES = (
    "venvstacks provides the Python runtimes itself; uv never chooses or downloads one "
    "(`venvstacks docs runtimes`)"
)
_PROJECT = "a uv project setting; a layer is not a uv project"
_NO_PYC = "layers never ship .pyc files: deploy byte-compiles on the target"
_PUBLISH = "venvstacks publishes archives, not packages"

# Accepted, as the existing venvstacks accepts them, but with no effect here: one warning each.
IGNORED: dict[str, str] = {
    "no-binary": _WHEELS_ONLY,
    "no-binary-package": _WHEELS_ONLY,
    "config-settings": _WHEELS_ONLY,
    "config-settings-package": _WHEELS_ONLY,
    "no-build-isolation": _WHEELS_ONLY,
    "no-build-isolation-package": _WHEELS_ONLY,
    "extra-build-dependencies": _WHEELS_ONLY,
    "extra-build-variables": _WHEELS_ONLY,
    "require-build-hashes": _WHEELS_ONLY,
    "build-constraint-dependencies": _WHEELS_ONLY,
    "concurrent-builds": _WHEELS_ONLY,
    "python-preference": _RUNTIMES,
    "python-downloads": _RUNTIMES,
    "python-install-mirror": _RUNTIMES,
    "pypy-install-mirror": _RUNTIMES,
    "graalpy-install-mirror": _RUNTIMES,
    "pyodide-install-mirror": _RUNTIMES,
    "python-downloads-json-url": _RUNTIMES,
    "compile-bytecode": _NO_PYC,
    "minimum-libc-version": "each layer's linux_target says which glibc it is for",
    "pip": "it applies to uv's pip interface only, which the existing venvstacks does not use "
    "for locking; put resolver settings directly in [tool.uv]",
    "publish-url": _PUBLISH,
    "trusted-publishing": _PUBLISH,
    "check-url": _PUBLISH,
    "add-bounds": _PROJECT,
    "audit": _PROJECT,
    "cache-keys": _PROJECT,
    "conflicts": _PROJECT,
    "workspace": _PROJECT,
    "managed": _PROJECT,
    "package": _PROJECT,
    "default-groups": _PROJECT,
    "dependency-groups": _PROJECT,
    "dev-dependencies": _PROJECT,
    "build-backend": _PROJECT,
}


def ignored(key: str) -> str | None:
    """Why `key` has no effect on a venvstacks build, or None if it is used."""
    if key in RESOLUTION or key in NETWORK or key in INSTALL or key in MAPPED or key in ENVIRONMENTS:
        return None
    return IGNORED.get(key, "not a uv setting venvstacks knows (uv 0.13)")


def check_settings(path: Path, settings: Mapping[str, Any], prefix: str, warn: Callable[[str], None]) -> None:
    """Warn, in one line naming it, about a setting that has no effect here, and refuse one
    that venvstacks applies but cannot read; `prefix` is how the file spells the table
    (`tool.uv.` in a stack file, nothing in venvstacks.uv.toml)."""
    for key in settings:
        reason = ignored(key)
        if reason is not None:
            hint = did_you_mean(key, KNOWN) if key not in IGNORED else ""
            warn(f"{path.name}: field '{prefix}{key}' is ignored{hint}: {reason}")
    for key in ENVIRONMENTS:
        environment_markers(path, settings, key, prefix)
    sources = settings.get("sources", {})
    if not isinstance(sources, Mapping):
        raise SpecError(path, None, prefix + "sources", "must be a table")
    names = _index_names(path, settings.get("index", []), prefix)
    for dist, source in sources.items():
        index = source.get("index") if isinstance(source, Mapping) else None
        if (
            not isinstance(source, Mapping)
            or set(source) != {"index"}
            or not isinstance(index, str)
            or index not in names
        ):
            raise SpecError(
                path,
                None,
                f"{prefix}sources.{dist}",
                'cannot apply: only { index = "NAME" } naming a [[tool.uv.index]] can '
                "(other sources would need a build from source)",
            )


def environment_markers(
    path: Path, settings: Mapping[str, Any], key: str, prefix: str = "tool.uv."
) -> tuple[markers.Marker, ...]:
    """`environments` or `required-environments`: a list of PEP 508 markers (uv also takes
    a single string)."""
    value = settings.get(key, [])
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise SpecError(
            path, None, prefix + key, "must be a list of marker strings, like [\"sys_platform == 'linux'\"]"
        )
    try:
        return tuple(markers.Marker(v) for v in values)
    except markers.InvalidMarker as exc:
        raise SpecError(
            path, None, prefix + key, f"not a valid marker ({str(exc).splitlines()[0]})"
        ) from None


def _index_names(path: Path, indexes: Any, prefix: str) -> set[str]:
    """The names of the [[tool.uv.index]] tables, each checked to be a string."""
    if not isinstance(indexes, list) or not all(isinstance(i, Mapping) for i in indexes):
        raise SpecError(path, None, prefix + "index", "must be an array of tables ([[tool.uv.index]])")
    for index in indexes:
        if not isinstance(index.get("name", ""), str):
            raise SpecError(
                path, None, prefix + "index", f"index name {index['name']!r} must be a string; quote it"
            )
    return {str(i["name"]) for i in indexes if "name" in i}


def stack_sources(settings: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """`[tool.uv.sources]` as stack-wide package_indexes: (distribution, index name)."""
    return tuple(sorted((dist, str(src["index"])) for dist, src in settings.get("sources", {}).items()))


KNOWN = RESOLUTION | NETWORK | INSTALL | MAPPED | set(ENVIRONMENTS) | set(IGNORED)
