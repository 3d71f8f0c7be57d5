"""What the packages a layer installed depend on, recorded so that locking a layer above it
need not ask the package index again.

`install:` writes `dependencies.json` into the layer's build state (`layout.INSTALLED_DEPS`,
never shipped), atomically, after every install: the requirements hash of the lock it
installed from, and for each package of that lock it installed, the dependency fields of its
installed `METADATA` (Requires-Dist, Requires-Python, Provides-Extra), in the shape of uv's
`dependency-metadata` setting. `lock:` hands uv those entries for the pins of its lower
layers, from every record made from the lower layer's current lock: uv then resolves from
them instead of fetching each package's metadata (it still reads the index pages, which say
which versions and wheels there are). A record made from another lock is ignored, and so is
any package the record lacks; the user's own `[tool.uv] dependency-metadata` entries win.

This assumes what uv's universal resolution assumes already: every wheel of one version of a
package declares the same dependencies, so the metadata of the wheel installed here (or for
a cross-built platform) stands for all of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.message import Message
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from venvstacks.distinfo import dist_infos
from venvstacks.fsutil import dump_json, write_atomic
from venvstacks.jsondoc import DocumentError, Fields, read_document
from venvstacks.layout import INSTALLED_DEPS
from venvstacks.lock import pylock
from venvstacks.lock.pylockdoc import Pylock

if TYPE_CHECKING:
    from venvstacks.lock.validity import LockedLayer


_EXTRA = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")  # a valid extra name


@dataclass(frozen=True)
class PackageDeps:
    """One installed package's dependency metadata: an entry of uv's `dependency-metadata`."""

    name: str  # canonical
    version: str  # as the lock pins it
    requires_dist: tuple[str, ...] = ()
    requires_python: str | None = None
    provides_extra: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "version": self.version}
        entry["requires-dist"] = list(self.requires_dist)
        if self.requires_python is not None:
            entry["requires-python"] = self.requires_python
        return {**entry, "provides-extra": list(self.provides_extra)}

    def is_strict(self) -> bool:
        """Whether uv takes it: its settings must follow the standards to the letter, where
        it reads an index's metadata leniently (a package it does not take is left to it)."""
        try:
            for requirement in self.requires_dist:
                Requirement(requirement)
            SpecifierSet(self.requires_python or "")
        except (InvalidRequirement, InvalidSpecifier):
            return False
        return all(_EXTRA.fullmatch(extra) for extra in self.provides_extra)

    @classmethod
    def from_json(cls, f: Fields) -> PackageDeps:
        return cls(
            f.text("name"),
            f.text("version"),
            f.texts("requires-dist") or (),
            f.opt_text("requires-python"),
            f.texts("provides-extra") or (),
        )


@dataclass(frozen=True)
class InstalledDeps:
    """`dependencies.json`: what the packages installed from one lock depend on."""

    requirements_hash: str  # of the lock installed from (`pylock.requirements_hash`)
    packages: tuple[PackageDeps, ...]

    def text(self) -> str:
        packages = [p.to_json() for p in self.packages]
        return dump_json({"requirements_hash": self.requirements_hash, "packages": packages})

    @classmethod
    def read(cls, path: Path) -> InstalledDeps | None:
        """The record at `path`; None when there is none or it cannot be read (uv then asks
        the index, as it would without it)."""
        try:
            data = read_document(path)
            if data is None:
                return None
            f = Fields.of(data, path)
            packages = (PackageDeps.from_json(p) for p in f.tables("packages") or ())
            return cls(f.text("requirements_hash"), tuple(p for p in packages if p.is_strict()))
        except (DocumentError, OSError):
            return None


def record_installed(layer_dir: Path, site_dir: PurePosixPath, lock: Pylock, requirements_hash: str) -> None:
    """Write the layer's record of the packages of `lock` (whose `pylock.requirements_hash`
    is given) installed in `layer_dir/site_dir`."""
    record = InstalledDeps(requirements_hash, installed_deps(layer_dir / site_dir, lock))
    write_atomic(layer_dir / INSTALLED_DEPS, record.text())


def installed_deps(site: Path, lock: Pylock) -> tuple[PackageDeps, ...]:
    """The dependency metadata of each of the lock's own pins installed in `site`, by name
    (a pin its markers leave out here is not installed, and not recorded)."""
    pins = lock.pins
    found = []
    for info in dist_infos(site):
        name = canonicalize_name(info.path.name.partition("-")[0])
        deps = from_metadata(info.metadata, pins[name][0]) if name in pins else None
        if deps is not None:
            found.append(deps)
    return tuple(sorted(found, key=lambda d: d.name))


def from_metadata(fields: Message, pinned: str) -> PackageDeps | None:
    """The dependency fields of a `METADATA` file's headers, if it is of version `pinned`
    (else None)."""
    name, version = fields.get("Name"), fields.get("Version")
    if name is None or version is None or not _same_version(version, pinned):
        return None
    deps = PackageDeps(
        canonicalize_name(name),
        pinned,
        tuple(_unfolded(r) for r in fields.get_all("Requires-Dist", ())),
        None if fields.get("Requires-Python") is None else _unfolded(fields["Requires-Python"]),
        tuple(_unfolded(e) for e in fields.get_all("Provides-Extra", ())),
    )
    return deps if deps.is_strict() else None


def _unfolded(value: str) -> str:
    return " ".join(value.split())


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def lower_layers_deps(lowers: Sequence[LockedLayer], build_dirs: Sequence[Path]) -> list[PackageDeps]:
    """The recorded metadata of the lower layers' pins, from the records in `build_dirs`
    (folders holding built layers) made from each lower layer's lock as it is now."""
    found: dict[str, PackageDeps] = {}
    for lower in lowers:
        pins = lower.pylock.pins
        if not pins:
            continue
        current = pylock.requirements_hash(lower.pylock)
        for build_dir in build_dirs:
            record = InstalledDeps.read(build_dir / lower.layer.env_name / INSTALLED_DEPS)
            if record is None or record.requirements_hash != current:
                continue
            for deps in record.packages:
                if pins.get(deps.name, ("",))[0] == deps.version:
                    found.setdefault(deps.name, deps)
    return [found[name] for name in sorted(found)]


def with_dependency_metadata(settings: Mapping[str, Any], known: Iterable[PackageDeps]) -> dict[str, Any]:
    """uv's settings with `known` added to `dependency-metadata`, after the user's own
    entries: a package the user describes keeps the user's entries only."""
    own = settings.get("dependency-metadata")
    own = list(own) if isinstance(own, list) else []
    described = {_entry_name(entry) for entry in own}
    added = [deps.to_json() for deps in known if deps.name not in described]
    if not added:
        return dict(settings)
    return {**settings, "dependency-metadata": [*own, *added]}


def _entry_name(entry: Any) -> str | None:
    name = entry.get("name") if isinstance(entry, Mapping) else None
    return canonicalize_name(name) if isinstance(name, str) else None
