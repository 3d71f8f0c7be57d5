"""This machine's platform, in the two spellings the outputs use.

`host_platform` is one of the stack file's `platforms` values (`linux_x86_64`,
`macosx_arm64`, `win_amd64`, ...): it decides which layers can be built here.
`platform_tag` is what `sysconfig` calls this machine, as upstream writes it into archive
names and `target_platform` (it carries the macOS version, `macosx_14_0_arm64`); on Linux
and Windows both spellings agree.

Also the machine's facts every stage uses: its cores, and the X.Y of a Python version
that names `lib/pythonX.Y` folders and `pythonX.Y` links.
"""

from __future__ import annotations

import os
import platform
import sys
import sysconfig

# Every platform a stack file's `platforms` may name, in upstream's order.
ALL_PLATFORMS = (
    "win_amd64",
    "win_arm64",
    "linux_x86_64",
    "linux_aarch64",
    "macosx_arm64",
    "macosx_x86_64",
)
_ARCH = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}


def host_platform() -> str:
    """The stack file's name for this machine's platform."""
    machine = platform.machine().lower()
    arch = _ARCH.get(machine, machine)
    if sys.platform == "darwin":
        return "macosx_arm64" if arch == "aarch64" else "macosx_x86_64"
    if sys.platform == "win32":
        return "win_arm64" if arch == "aarch64" else "win_amd64"
    return f"linux_{arch}"


def platform_tag() -> str:
    """This machine's platform tag as upstream spells it, e.g. ``linux_x86_64``."""
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


def cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def major_minor(version: str) -> str:
    """`X.Y` of a Python version `X.Y[.Z]`: what `lib/pythonX.Y` and `bin/pythonX.Y` are named by."""
    return ".".join(version.split(".")[:2])
