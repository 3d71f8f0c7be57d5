"""Hand-written uv pylock data for the pylock tests (test_pylock_*.py).

Targets for each platform, builders for wheels, packages and whole locks in the shape uv
writes them, and readers for what `postprocess` kept.
"""

from __future__ import annotations

import hashlib
from typing import Any

from venvstacks.stack.targets import Target

LINUX = Target("linux_x86_64", "3.11")
LINUX_ARM = Target("linux_aarch64", "3.11")
MAC_ARM = Target("macosx_arm64", "3.11")
MAC_X86 = Target("macosx_x86_64", "3.11")
WIN = Target("win_amd64", "3.11")
WIN_ARM = Target("win_arm64", "3.11")
EVERYWHERE = [WIN, WIN_ARM, LINUX, LINUX_ARM, MAC_ARM, MAC_X86]


def wheel(filename: str) -> dict[str, Any]:
    digest = hashlib.sha256(filename.encode()).hexdigest()
    return {
        "url": f"https://files.example/packages/{filename}",
        "upload-time": "2025-01-01T00:00:00Z",
        "size": 1234,
        "hashes": {"sha256": digest},
    }


def pure(name: str, version: str = "1.0", marker: str | None = None) -> dict[str, Any]:
    """A package with one universal wheel (and an sdist, as uv records it)."""
    pkg: dict[str, Any] = {
        "name": name,
        "version": version,
        "index": "https://pypi.org/simple",
        "sdist": {"url": f"https://files.example/{name}-{version}.tar.gz", "hashes": {"sha256": "00"}},
        "wheels": [wheel(f"{name.replace('-', '_')}-{version}-py3-none-any.whl")],
    }
    if marker:
        pkg["marker"] = marker
    return pkg


def binary(name: str, version: str, *tags: str, marker: str | None = None) -> dict[str, Any]:
    pkg: dict[str, Any] = {
        "name": name,
        "version": version,
        "index": "https://pypi.org/simple",
        "wheels": [wheel(f"{name}-{version}-{tag}.whl") for tag in tags],
    }
    if marker:
        pkg["marker"] = marker
    return pkg


def lock(*packages: dict[str, Any]) -> dict[str, Any]:
    return {
        "lock-version": "1.0",
        "created-by": "uv",
        "requires-python": ">=3.11",
        "packages": list(packages),
    }


def names(result: dict[str, Any]) -> list[str]:
    return [p["name"] for p in result["packages"]]


def by_name(result: dict[str, Any], name: str) -> dict[str, Any]:
    (pkg,) = [p for p in result["packages"] if p["name"] == name]
    return dict(pkg)
