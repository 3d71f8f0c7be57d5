"""Pure transformations of PEP 751 locks (`pylockdoc.Pylock`): target-platform filtering,
marking packages that lower layers provide, wheel coverage checks and content hashes."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from venvstacks.lock.pylockdoc import LockedPackage, LockedWheel, Pylock
from venvstacks.stack.targets import Target


def constraint_lines(lower_locks: Iterable[Pylock]) -> list[str]:
    lines = []
    for lock in lower_locks:
        for name, (version, marker) in sorted(lock.pins.items()):
            lines.append(f"{name}=={version}" + (f" ; {marker}" if marker else ""))
    return lines


class CoverageError(ValueError):
    def __init__(self, package: str, platform: str, working: Sequence[str]) -> None:
        self.package, self.platform, self.working = package, platform, list(working)
        super().__init__(package, platform)


def postprocess(
    raw: Pylock,
    targets: Sequence[Target],
    shared: Iterable[str],
    covered: Sequence[Target] | None = None,
) -> Pylock:
    """Fit uv's universal lock to the layer: drop packages no target needs, simplify markers
    true everywhere, mark lower-layer packages, keep wheels only, and check wheel coverage
    for the `covered` targets (default: all)."""
    covered = targets if covered is None else covered
    shared_names = {canonicalize_name(s) for s in shared}
    packages: list[LockedPackage] = []
    for pkg in raw.packages:
        used_by = [t for t in targets if t.applies(pkg.marker)]
        if not used_by:
            continue
        if pkg.key in shared_names:
            packages.append(LockedPackage.from_lower_layer(pkg.name, pkg.version))
            continue
        entry = pkg.without("sdist", "vcs", "directory", "archive", "marker")
        if len(used_by) < len(targets) and pkg.marker:
            entry = replace(entry, marker=pkg.marker, order=(*entry.order, "marker"))
        _check_coverage(entry, [t for t in used_by if t in covered], targets)
        packages.append(_ordered(entry))
    packages.sort(key=lambda p: p.key)
    order = (*(k for k in raw.order if k != "packages"), "requires-python", "packages")
    return replace(
        raw,
        packages=tuple(packages),
        requires_python=f"=={targets[0].py_major_minor}.*",
        order=tuple(dict.fromkeys(order)),
    )


def _ordered(entry: LockedPackage) -> LockedPackage:
    # Keep the familiar name/version/marker first so diffs of lock files read well.
    head = ("name", "version", "marker", "index")
    order = (*(k for k in head if k in entry.order), *(k for k in entry.order if k not in head))
    return replace(entry, order=order)


def _check_coverage(entry: LockedPackage, used_by: Sequence[Target], targets: Sequence[Target]) -> None:
    tags = [tag for wheel in entry.all_wheels for tag in wheel.tags]
    for target in used_by:
        if not any(target.accepts(tag) for tag in tags):
            working = [t.platform for t in targets if t not in used_by or any(t.accepts(g) for g in tags)]
            raise CoverageError(f"{entry.name}=={entry.version}", target.platform, working)


_FULL_VERSION_CLAUSE = re.compile(
    r"(?:python_full_version|implementation_version)\s*(<=|>=|==|!=|~=|<|>|===)\s*['\"]([^'\"]+)['\"]"
)


def needs_full_version(lock: Pylock, py_version: str) -> bool:
    """Whether the lock's markers can decide differently for two patch releases of X.Y.

    uv writes clauses such as `python_full_version < '3.11'`, which are the same for every
    3.11.Z; only a clause comparing with an X.Y.Z of this very X.Y can tell them apart.
    """
    major_minor = tuple(int(p) for p in py_version.split(".")[:2])
    for pkg in lock.packages:
        for op, literal in _FULL_VERSION_CLAUSE.findall(pkg.marker or ""):
            if literal.endswith(".*"):
                continue
            try:
                release = Version(literal).release
            except InvalidVersion:
                return True  # cannot tell: treat as depending on it
            if release[:2] != major_minor:
                continue
            if op in ("<", ">=") and not any(release[2:]):
                continue  # X.Y.0 is the first patch release: same answer for all of them
            return True
    return False


def relative_wheel_paths(lock: Pylock, lock_dir: Path) -> Pylock:
    """Local wheels (file:// URLs from find-links) become paths relative to the lock's folder,
    so a committed lock keeps working wherever the project is checked out."""
    packages = []
    for pkg in lock.packages:
        if pkg.wheels is not None:
            pkg = replace(pkg, wheels=tuple(_relative(wheel, lock_dir) for wheel in pkg.wheels))
        packages.append(pkg)
    return replace(lock, packages=tuple(packages))


def _relative(wheel: LockedWheel, lock_dir: Path) -> LockedWheel:
    if not (wheel.url or "").startswith("file://"):
        return wheel
    local = Path(unquote(urlsplit(wheel.url or "").path))
    path = Path(os.path.relpath(local, lock_dir)).as_posix()
    # Name and path first; a name or path the wheel had beside its URL is kept.
    order = ("name", "path", *(k for k in wheel.order if k not in ("url", "name", "path")))
    return replace(
        wheel,
        name=local.name if wheel.name is None else wheel.name,
        path=path if wheel.path is None else wheel.path,
        url=None,
        order=order,
    )


def requirements_hash(lock: Pylock) -> str:
    """A hash of what gets installed: pins, markers, indexes and wheel hashes."""
    items = []
    for pkg in lock.packages:
        items.append(f"{pkg.key}=={pkg.version}" + (f" ; {pkg.marker}" if pkg.marker else ""))
        for wheel in pkg.all_wheels:
            for alg, digest in sorted((wheel.hashes or {}).items()):
                items.append(f"wheel:{alg}:{digest}")
    return hash_strings(items)


def hash_strings(items: Iterable[str]) -> str:
    return "sha256:" + hashlib.sha256("\n".join(sorted(items)).encode()).hexdigest()
