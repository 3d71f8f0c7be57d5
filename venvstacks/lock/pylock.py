"""Pure transformations of PEP 751 lock data: target-platform filtering, marking packages
that lower layers provide, wheel coverage checks and content hashes.

The lock stays the TOML tables uv wrote, not `packaging.pylock`'s typed objects: a layer's
lock lists the packages its lower layers provide without any wheel, under the existing
venvstacks' never-true marker `FROM_LOWER_LAYER`, which PEP 751 (and so `Pylock.from_dict`)
rejects ("exactly one of vcs, directory, archive must be set"); and the committed file must
stay byte for byte what uv and the existing tool write, which a round trip through typed
objects does not promise."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from venvstacks.stack.targets import Target

# Upstream's marker for "installed by a lower layer": never true, so installers skip it.
FROM_LOWER_LAYER = "sys_platform == 'from_lower_layer'"


def package_pins(lock: Mapping[str, Any]) -> dict[str, tuple[str, str | None]]:
    """A layer's own pins: canonical name -> (version, marker); lower-layer entries left out."""
    pins: dict[str, tuple[str, str | None]] = {}
    for pkg in lock.get("packages", []):
        if pkg.get("marker") == FROM_LOWER_LAYER:
            continue
        pins[canonicalize_name(pkg["name"])] = (str(pkg["version"]), pkg.get("marker"))
    return pins


def constraint_lines(lower_locks: Iterable[Mapping[str, Any]]) -> list[str]:
    lines = []
    for lock in lower_locks:
        for name, (version, marker) in sorted(package_pins(lock).items()):
            lines.append(f"{name}=={version}" + (f" ; {marker}" if marker else ""))
    return lines


class CoverageError(ValueError):
    def __init__(self, package: str, platform: str, working: Sequence[str]) -> None:
        self.package, self.platform, self.working = package, platform, list(working)
        super().__init__(package, platform)


def postprocess(
    raw: Mapping[str, Any],
    targets: Sequence[Target],
    shared: Iterable[str],
    covered: Sequence[Target] | None = None,
) -> dict[str, Any]:
    """Fit uv's universal lock to the layer: drop packages no target needs, simplify markers
    true everywhere, mark lower-layer packages, keep wheels only, and check wheel coverage
    for the `covered` targets (default: all)."""
    covered = targets if covered is None else covered
    shared_names = {canonicalize_name(s) for s in shared}
    packages: list[dict[str, Any]] = []
    for pkg in raw.get("packages", []):
        marker = pkg.get("marker")
        used_by = [t for t in targets if t.applies(marker)]
        if not used_by:
            continue
        if canonicalize_name(pkg["name"]) in shared_names:
            packages.append({"name": pkg["name"], "version": pkg["version"], "marker": FROM_LOWER_LAYER})
            continue
        entry = {k: v for k, v in pkg.items() if k not in ("sdist", "vcs", "directory", "archive", "marker")}
        if len(used_by) < len(targets) and marker:
            entry["marker"] = marker
        _check_coverage(entry, [t for t in used_by if t in covered], targets)
        packages.append(_ordered(entry))
    packages.sort(key=lambda p: canonicalize_name(p["name"]))
    result = {k: v for k, v in raw.items() if k != "packages"}
    result["requires-python"] = f"=={targets[0].py_major_minor}.*"
    result["packages"] = packages
    return result


def _ordered(entry: dict[str, Any]) -> dict[str, Any]:
    # Keep the familiar name/version/marker first so diffs of lock files read well.
    head = ["name", "version", "marker", "index"]
    return {
        **{k: entry[k] for k in head if k in entry},
        **{k: v for k, v in entry.items() if k not in head},
    }


def _check_coverage(entry: Mapping[str, Any], used_by: Sequence[Target], targets: Sequence[Target]) -> None:
    tags = _wheel_tags(entry)
    for target in used_by:
        if not any(target.accepts(tag) for tag in tags):
            working = [t.platform for t in targets if t not in used_by or any(t.accepts(g) for g in tags)]
            raise CoverageError(f"{entry['name']}=={entry['version']}", target.platform, working)


def _wheel_tags(entry: Mapping[str, Any]) -> list[Tag]:
    return [tag for wheel in entry.get("wheels", []) for tag in wheel_tags(wheel)]


def wheel_tags(wheel: Mapping[str, Any]) -> frozenset[Tag]:
    """The tags of one of a package's wheels in a lock (none if its name is not a wheel's)."""
    try:
        return parse_wheel_filename(wheel_file_name(wheel))[3]
    except InvalidWheelFilename:
        return frozenset()


def wheel_file_name(wheel: Mapping[str, Any]) -> str:
    """Its `name`, else the last part of its URL (without query or fragment) or path, fully
    percent-decoded: a URL may escape any character (`%2B` for the `+` of a local version,
    `%21` for an epoch's `!`), and a wheel's own name has no `%` to be mistaken."""
    if wheel.get("name"):
        where = str(wheel["name"])
    elif wheel.get("url"):
        where = urlsplit(str(wheel["url"])).path
    else:
        where = str(wheel.get("path", ""))
    return unquote(where.rsplit("/", 1)[-1])


_FULL_VERSION_CLAUSE = re.compile(
    r"(?:python_full_version|implementation_version)\s*(<=|>=|==|!=|~=|<|>|===)\s*['\"]([^'\"]+)['\"]"
)


def needs_full_version(lock: Mapping[str, Any], py_version: str) -> bool:
    """Whether the lock's markers can decide differently for two patch releases of X.Y.

    uv writes clauses such as `python_full_version < '3.11'`, which are the same for every
    3.11.Z; only a clause comparing with an X.Y.Z of this very X.Y can tell them apart.
    """
    major_minor = tuple(int(p) for p in py_version.split(".")[:2])
    for pkg in lock.get("packages", []):
        for op, literal in _FULL_VERSION_CLAUSE.findall(str(pkg.get("marker") or "")):
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


def relative_wheel_paths(lock: Mapping[str, Any], lock_dir: Path) -> dict[str, Any]:
    """Local wheels (file:// URLs from find-links) become paths relative to the lock's folder,
    so a committed lock keeps working wherever the project is checked out."""
    packages = []
    for pkg in lock.get("packages", []):
        wheels = []
        for wheel in pkg.get("wheels", []):
            url = str(wheel.get("url", ""))
            if url.startswith("file://"):
                local = Path(unquote(urlsplit(url).path))
                wheel = {k: v for k, v in wheel.items() if k != "url"}
                wheel = {
                    "name": local.name,
                    "path": Path(os.path.relpath(local, lock_dir)).as_posix(),
                    **wheel,
                }
            wheels.append(wheel)
        packages.append({**pkg, "wheels": wheels} if "wheels" in pkg else dict(pkg))
    return {**lock, "packages": packages}


def requirements_hash(lock: Mapping[str, Any]) -> str:
    """A hash of what gets installed: pins, markers, indexes and wheel hashes."""
    items = []
    for pkg in lock.get("packages", []):
        marker = pkg.get("marker")
        items.append(
            f"{canonicalize_name(pkg['name'])}=={pkg['version']}" + (f" ; {marker}" if marker else "")
        )
        for wheel in pkg.get("wheels", []):
            for alg, digest in sorted(wheel.get("hashes", {}).items()):
                items.append(f"wheel:{alg}:{digest}")
    return hash_strings(items)


def hash_strings(items: Iterable[str]) -> str:
    return "sha256:" + hashlib.sha256("\n".join(sorted(items)).encode()).hexdigest()
