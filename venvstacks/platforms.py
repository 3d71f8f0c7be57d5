"""The six platforms a stack may name, every fact that differs between them, and this machine.

`Platform` is the one place where Windows, macOS and Linux differ: marker values, uv's
`--python-platform` name, python-build-standalone's names, where a layer keeps its scripts,
interpreter, site-packages and shared libraries, how upper layers find those libraries,
the default archive format, and whether a layer is bound to its runtime's exact build.
The host is just one value (`host_platform()`); building for another platform is the same
code with another value. Nothing here looks at the running machine except `host_platform`,
`platform_tag` and `cores`.

`platform_tag` is what `sysconfig` calls this machine, as upstream writes it into archive
names and `target_platform` (it carries the macOS version, `macosx_14_0_arm64`); on Linux
and Windows it agrees with the platform name. `Platform.tag` is the same spelling for any
platform, from the macOS deployment target rather than the build machine.
"""

from __future__ import annotations

import functools
import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Literal

from venvstacks.lazy import lazy_modules

# Only where os.uname is missing (Windows): importing it compiles a dozen regular
# expressions, a tenth of the imports of a no-op run of our own.
if TYPE_CHECKING:
    import platform
else:
    (platform,) = lazy_modules("platform")

Family = Literal["linux", "macos", "windows"]


@dataclass(frozen=True)
class Platform:
    """One of the six platforms a layer can be built for, and every fact that differs by it."""

    name: str  # as a stack file's `platforms` spells it
    family: Family  # also python-build-standalone's (pbs-installer's) platform name
    arch: str  # pbs-installer's architecture name
    platform_machine: str  # the marker value

    # --- requirement markers and uv ---------------------------------------------------

    @property
    def sys_platform(self) -> str:
        return {"linux": "linux", "macos": "darwin", "windows": "win32"}[self.family]

    @property
    def platform_system(self) -> str:
        return {"linux": "Linux", "macos": "Darwin", "windows": "Windows"}[self.family]

    @property
    def os_name(self) -> str:
        return "nt" if self.is_windows else "posix"

    @property
    def uv_name(self) -> str:
        """uv's `--python-platform` name (Linux gets its glibc appended, macOS its version by env var)."""
        vendor = {"linux": "manylinux", "macos": "apple-darwin", "windows": "pc-windows-msvc"}[self.family]
        return f"{self.arch}-{vendor}"

    @property
    def is_windows(self) -> bool:
        return self.family == "windows"

    @property
    def is_macos(self) -> bool:
        return self.family == "macos"

    @property
    def is_linux(self) -> bool:
        return self.family == "linux"

    # --- a layer's layout ------------------------------------------------------------

    @property
    def scripts_dir(self) -> PurePosixPath:
        return PurePosixPath("Scripts" if self.is_windows else "bin")

    @property
    def python_name(self) -> str:
        """The interpreter's file name in a venv layer's scripts folder."""
        return "python.exe" if self.is_windows else "python"

    @property
    def runtime_python(self) -> PurePosixPath:
        """A runtime layer's interpreter (python-build-standalone's layout)."""
        return PurePosixPath("python.exe" if self.is_windows else "bin/python3")

    @property
    def layer_python(self) -> PurePosixPath:
        """A framework or app layer's interpreter (a venv's)."""
        return self.scripts_dir / self.python_name

    def stdlib_dir(self, py_version: str) -> PurePosixPath:
        return PurePosixPath("Lib" if self.is_windows else f"lib/python{major_minor(py_version)}")

    def site_packages(self, py_version: str) -> PurePosixPath:
        """A layer's site-packages folder, relative to the layer, for Python `X.Y[.Z]`."""
        return self.stdlib_dir(py_version) / "site-packages"

    # --- shared libraries across layers ------------------------------------------------

    @property
    def dynlib_dir(self) -> PurePosixPath:
        """Where a layer's shared libraries are found by the layers above it."""
        return PurePosixPath("Library/bin" if self.is_windows else "share/venv/dynlib")

    @property
    def dynlib_mechanism(self) -> Literal["LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "add_dll_directory"]:
        """How upper layers reach those folders: a variable the `bin/python` script sets, or
        `os.add_dll_directory` calls in the generated `sitecustomize.py` (Windows)."""
        if self.is_windows:
            return "add_dll_directory"
        return "DYLD_LIBRARY_PATH" if self.is_macos else "LD_LIBRARY_PATH"

    @property
    def wrapper_shell(self) -> str | None:
        """The shell of the `bin/python` script (None: Windows has no script)."""
        return None if self.is_windows else ("/bin/zsh" if self.is_macos else "/bin/bash")

    @property
    def library_suffixes(self) -> tuple[str, ...]:
        """File name endings of shared libraries (Linux also matches versioned `.so.N`)."""
        return {"linux": (".so",), "macos": (".dylib", ".so"), "windows": (".dll",)}[self.family]

    def extension_suffixes(self, py_version: str) -> tuple[str, ...]:
        """CPython's `importlib.machinery.EXTENSION_SUFFIXES` there (what makes a file a module)."""
        nodot = major_minor(py_version).replace(".", "")
        if self.is_windows:
            return (f".cp{nodot}-{self.name}.pyd", ".pyd")
        own = "darwin" if self.is_macos else f"{self.arch}-linux-gnu"
        return (f".cpython-{nodot}-{own}.so", ".abi3.so", ".so")

    # --- publishing --------------------------------------------------------------------

    @property
    def default_format(self) -> str:
        """The archive format of its layers unless `--format` names one (as upstream)."""
        return "zip" if self.is_windows else "tar.xz"

    @property
    def bound_to_runtime(self) -> bool:
        """Whether every layer is bound to its runtime's exact build: on Windows a venv
        holds a copy of the runtime's `python.exe`; elsewhere only the runtime is."""
        return self.is_windows

    def tag(self, macos: tuple[int, int]) -> str:
        """`target_platform` as upstream writes it: macOS carries its deployment target."""
        if self.is_macos:
            return f"macosx_{macos[0]}_{macos[1]}_{self.platform_machine}"
        return self.name


PLATFORMS: dict[str, Platform] = {
    p.name: p
    for p in (
        Platform("win_amd64", "windows", "x86_64", "AMD64"),
        Platform("win_arm64", "windows", "aarch64", "ARM64"),
        Platform("linux_x86_64", "linux", "x86_64", "x86_64"),
        Platform("linux_aarch64", "linux", "aarch64", "aarch64"),
        Platform("macosx_arm64", "macos", "aarch64", "arm64"),
        Platform("macosx_x86_64", "macos", "x86_64", "x86_64"),
    )
}
# Every platform a stack file's `platforms` may name, in upstream's order.
ALL_PLATFORMS = tuple(PLATFORMS)
_ARCH = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}


def platform_of_tag(tag: str) -> Platform | None:
    """The platform a `target_platform` names (`macosx_14_0_arm64` -> macosx_arm64), if known."""
    if tag in PLATFORMS:
        return PLATFORMS[tag]
    for p in PLATFORMS.values():
        if p.is_macos and tag.startswith("macosx_") and tag.endswith("_" + p.platform_machine):
            return p
    return None


def host_platform() -> Platform:
    """This machine's platform."""
    machine = _machine()
    arch = _ARCH.get(machine, machine)
    if sys.platform == "darwin":
        return PLATFORMS["macosx_arm64" if arch == "aarch64" else "macosx_x86_64"]
    if sys.platform == "win32":
        return PLATFORMS["win_arm64" if arch == "aarch64" else "win_amd64"]
    return PLATFORMS.get(f"linux_{arch}") or Platform(f"linux_{arch}", "linux", arch, arch)


@functools.cache
def _machine() -> str:
    """This machine's architecture, lower case, as platform.machine() says it (asked once: a
    build asks for this machine's platform hundreds of times)."""
    return (os.uname().machine if hasattr(os, "uname") else platform.machine()).lower()


def platform_tag() -> str:
    """This machine's platform tag as upstream spells it, e.g. ``linux_x86_64``."""
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


def cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def major_minor(version: str) -> str:
    """`X.Y` of a Python version `X.Y[.Z]`: what `lib/pythonX.Y` and `bin/pythonX.Y` are named by."""
    return ".".join(version.split(".")[:2])
