"""Pure transformations of PEP 751 lock data: target-platform filtering, marking packages
that lower layers provide, wheel coverage checks and content hashes."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.markers import Marker
from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

# Upstream's marker for "installed by a lower layer": never true, so installers skip it.
FROM_LOWER_LAYER = "sys_platform == 'from_lower_layer'"

_PLATFORM_ENV = {
    "linux_x86_64": ("linux", "Linux", "x86_64", "posix"),
    "linux_aarch64": ("linux", "Linux", "aarch64", "posix"),
    "macosx_arm64": ("darwin", "Darwin", "arm64", "posix"),
    "macosx_x86_64": ("darwin", "Darwin", "x86_64", "posix"),
    "win_amd64": ("win32", "Windows", "AMD64", "nt"),
    "win_arm64": ("win32", "Windows", "ARM64", "nt"),
}
_MANYLINUX_ALIASES = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


@dataclass(frozen=True)
class Target:
    """One platform a layer is locked for, with its resolver-relevant limits."""

    platform: str
    py_version: str  # X.Y
    glibc: tuple[int, int] = (2, 28)
    macos: tuple[int, int] = (13, 0)

    def marker_env(self) -> dict[str, str]:
        sys_platform, system, machine, os_name = _PLATFORM_ENV[self.platform]
        return {
            "sys_platform": sys_platform,
            "platform_system": system,
            "platform_machine": machine,
            "os_name": os_name,
            "python_version": self.py_version,
            "python_full_version": self.py_version + ".0",
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "implementation_version": self.py_version + ".0",
            "platform_release": "",
            "platform_version": "",
            "extra": "",
        }

    def applies(self, marker: str | None) -> bool:
        return marker is None or Marker(marker).evaluate(self.marker_env())

    def accepts(self, tag: Tag) -> bool:
        return self._python_ok(tag) and self._platform_ok(tag.platform)

    def _python_ok(self, tag: Tag) -> bool:
        major, minor = (int(p) for p in self.py_version.split("."))
        interp, abi = tag.interpreter, tag.abi
        if interp.startswith("py"):
            return interp in ("py3", f"py{major}", f"py{major}{minor}")
        if not interp.startswith("cp"):
            return False
        version = int(interp[3:] or 0) if interp[2:3] == str(major) else -1
        if abi == "abi3":
            return interp[2:3] == str(major) and version <= minor
        return version == minor and abi in (f"cp{major}{minor}", "none", f"cp{major}{minor}m")

    def _platform_ok(self, platform: str) -> bool:
        if platform == "any":
            return True
        if self.platform.startswith("win_"):
            return platform == self.platform
        arch = _PLATFORM_ENV[self.platform][2]
        if self.platform.startswith("linux_"):
            return _manylinux_ok(platform, arch, self.glibc)
        return _macos_ok(platform, arch, self.macos)


def _manylinux_ok(platform: str, arch: str, glibc: tuple[int, int]) -> bool:
    for alias, version in _MANYLINUX_ALIASES.items():
        if platform == f"{alias}_{arch}":
            return version <= glibc
    if not platform.startswith("manylinux_") or not platform.endswith("_" + arch):
        return False
    parts = platform[len("manylinux_") : -len(arch) - 1].split("_")
    return len(parts) == 2 and (int(parts[0]), int(parts[1])) <= glibc


def _macos_ok(platform: str, arch: str, macos: tuple[int, int]) -> bool:
    parts = platform.split("_")
    if len(parts) < 4 or parts[0] != "macosx":
        return False
    wheel_arch = "_".join(parts[3:])
    arches = {arch, "universal2"} if arch == "arm64" else {arch, "universal2", "intel", "universal"}
    return wheel_arch in arches and (int(parts[1]), int(parts[2])) <= macos


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


def postprocess(raw: Mapping[str, Any], targets: Sequence[Target], shared: Iterable[str]) -> dict[str, Any]:
    """Fit uv's universal lock to the layer: drop packages no target needs, simplify markers
    true everywhere, mark lower-layer packages, keep wheels only, and check wheel coverage."""
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
        _check_coverage(entry, used_by, targets)
        packages.append(_ordered(entry))
    packages.sort(key=lambda p: canonicalize_name(p["name"]))
    result = {k: v for k, v in raw.items() if k != "packages"}
    result["requires-python"] = f"=={targets[0].py_version}.*"
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
    tags: list[Tag] = []
    for wheel in entry.get("wheels", []):
        name = wheel.get("name") or str(wheel.get("url") or wheel.get("path", "")).rsplit("/", 1)[-1]
        try:
            tags.extend(parse_wheel_filename(name.replace("%2B", "+"))[3])
        except InvalidWheelFilename:
            continue
    return tags


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
