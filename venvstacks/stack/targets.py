"""The machines a layer is for (pure): one `Target` per platform, with its limits.

A target answers three questions the same way at lock and at install time: which
requirement markers apply to it (with the runtime's real Python version), which wheel tags
it accepts (by `packaging.tags`, as installers decide), and what uv's `--python-platform`
and `MACOSX_DEPLOYMENT_TARGET` must be so that uv installs the wheels that suit the target
rather than the build machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from venvstacks.lazy import lazy_modules
from venvstacks.platforms import PLATFORMS, Platform, major_minor
from venvstacks.stack.model import LayerSpec

if TYPE_CHECKING:
    from packaging import markers, tags
else:
    # Markers and wheel tags are asked about at lock and install time only, never in a no-op.
    markers, tags = lazy_modules("packaging.markers", "packaging.tags")

# The manylinux names from before PEP 600, by the glibc they stand for.
_LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
DEFAULT_MACOS = "13.0"


@dataclass(frozen=True)
class Target:
    """One platform a layer is for, on one Python version, with its glibc and macOS limits."""

    platform: str
    py_version: str  # X.Y.Z when the runtime is known (X.Y alone is read as X.Y.0)
    glibc: tuple[int, int] = (2, 28)
    macos: tuple[int, int] = (13, 0)

    @property
    def facts(self) -> Platform:
        """Everything else that differs by platform (layout, libraries, archive format)."""
        return PLATFORMS[self.platform]

    @property
    def py_major_minor(self) -> str:
        return major_minor(self.py_version)

    @property
    def py_full_version(self) -> str:
        parts = self.py_version.split(".")
        return ".".join(parts if len(parts) > 2 else [*parts, "0"])

    def marker_env(self) -> dict[str, str]:
        facts = PLATFORMS[self.platform]
        return {
            "sys_platform": facts.sys_platform,
            "platform_system": facts.platform_system,
            "platform_machine": facts.platform_machine,
            "os_name": facts.os_name,
            "python_version": self.py_major_minor,
            "python_full_version": self.py_full_version,
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "implementation_version": self.py_full_version,
            "platform_release": "",
            "platform_version": "",
            "extra": "",
        }

    def applies(self, marker: str | None) -> bool:
        return marker is None or markers.Marker(marker).evaluate(self.marker_env())

    def accepts(self, tag: tags.Tag) -> bool:
        return tag in _supported_tags(self.platform, self.py_major_minor, self.glibc, self.macos)

    @property
    def uv_platform(self) -> str:
        """uv's `--python-platform` value for installing wheels that suit this target."""
        facts = PLATFORMS[self.platform]
        return f"{facts.uv_name}_{self.glibc[0]}_{self.glibc[1]}" if facts.is_linux else facts.uv_name

    @property
    def install_env(self) -> dict[str, str]:
        """Environment variables uv reads for the target (macOS: the oldest version to support)."""
        if PLATFORMS[self.platform].is_macos:
            return {"MACOSX_DEPLOYMENT_TARGET": f"{self.macos[0]}.{self.macos[1]}"}
        return {}

    @property
    def tag(self) -> str:
        """`target_platform` of an archive built for this target (macOS: its deployment target)."""
        return PLATFORMS[self.platform].tag(self.macos)

    def describe(self) -> str:
        return target_text(self.platform, self.glibc, self.macos)

    @property
    def linux_target(self) -> str | None:
        """The glibc a built Linux layer was installed for, as the stack file's field says it."""
        return f"glibc@{self.glibc[0]}.{self.glibc[1]}" if PLATFORMS[self.platform].is_linux else None

    @property
    def macosx_target(self) -> str | None:
        """The macOS a built macOS layer was installed for, as the stack file's field says it."""
        return f"{self.macos[0]}.{self.macos[1]}" if PLATFORMS[self.platform].is_macos else None


def target_text(platform: str, glibc: tuple[int, int], macos: tuple[int, int]) -> str:
    """A target as a stack file says it: `linux_x86_64 glibc@2.17`, `macosx_arm64 13.0`."""
    if PLATFORMS[platform].is_linux:
        return f"{platform} glibc@{glibc[0]}.{glibc[1]}"
    if PLATFORMS[platform].is_macos:
        return f"{platform} {macos[0]}.{macos[1]}"
    return platform


@cache
def _supported_tags(
    platform: str, py_version: str, glibc: tuple[int, int], macos: tuple[int, int]
) -> frozenset[tags.Tag]:
    major, minor = (int(p) for p in py_version.split("."))
    platforms = _platform_tags(platform, glibc, macos)
    # The ABI is given, so the tags never depend on the interpreter running venvstacks.
    found = tags.cpython_tags((major, minor), [f"cp{major}{minor}"], platforms)
    return frozenset([*found, *tags.compatible_tags((major, minor), f"cp{major}{minor}", platforms)])


def _platform_tags(platform: str, glibc: tuple[int, int], macos: tuple[int, int]) -> list[str]:
    arch = PLATFORMS[platform].platform_machine
    if PLATFORMS[platform].is_windows:
        return [platform]
    if PLATFORMS[platform].is_macos:
        return list(tags.mac_platforms(macos, arch))
    names = []
    for minor in range(glibc[1], 4, -1):  # every glibc 2.x the target has, newest first
        names.append(f"manylinux_2_{minor}_{arch}")
        if (2, minor) in _LEGACY_MANYLINUX:
            names.append(f"{_LEGACY_MANYLINUX[(2, minor)]}_{arch}")
    return names


def glibc_of(layer: LayerSpec) -> tuple[int, int]:
    """The layer's `linux_target` as (2, Y) (the spec has already turned `glibc` into glibc@2.28)."""
    major, minor = (int(p) for p in layer.linux_target.partition("@")[2].split(".")[:2])
    return major, minor


def macos_of(layer: LayerSpec) -> tuple[int, int]:
    """The layer's `macosx_target`, else `$MACOSX_DEPLOYMENT_TARGET`, else 13.0 (as upstream)."""
    return _macos_version(layer.macosx_target) if layer.macosx_target else default_macos()


def default_macos() -> tuple[int, int]:
    """The macOS version of layers that name none: `$MACOSX_DEPLOYMENT_TARGET`, else 13.0."""
    return _macos_version(os.environ.get("MACOSX_DEPLOYMENT_TARGET") or DEFAULT_MACOS)


def _macos_version(text: str) -> tuple[int, int]:
    parts = [int(p) for p in text.split(".")]
    return parts[0], (parts[1] if len(parts) > 1 else 0)


def layer_target(layer: LayerSpec, platform: str, py_version: str) -> Target:
    return Target(platform, py_version, glibc_of(layer), macos_of(layer))


def layer_targets(layer: LayerSpec, py_version: str) -> list[Target]:
    """Every platform the layer is locked for."""
    return [layer_target(layer, p, py_version) for p in layer.platforms]
