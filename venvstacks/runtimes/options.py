"""Runtime options and request parsing: light enough to import on every run.

`cache.py` does the fetching; this module holds what the CLI, `dodo.py` and the task
graph need before any runtime is touched, so a no-op build imports no HTTP or archive code.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast, get_args
from urllib.parse import urlsplit

from venvstacks.errors import VenvStacksError
from venvstacks.lazy import lazy_modules
from venvstacks.platforms import ALL_PLATFORMS

# The downloaders' module (pbs-installer's tables), for an explicit archive's check only.
if TYPE_CHECKING:
    from venvstacks.runtimes import sources
else:
    (sources,) = lazy_modules("venvstacks.runtimes.sources")

Policy = Literal["auto", "download", "local"]
POLICIES: tuple[str, ...] = get_args(Policy)
ARCHIVES_ENV_SEPARATOR = ";"

_REQUEST = re.compile(r"(?P<impl>[a-z]+)@(?P<version>[0-9]+\.[0-9]+(?:\.[0-9]+)?)")


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("VENVSTACKS_RUNTIME_CACHE"):
        return Path(env["VENVSTACKS_RUNTIME_CACHE"]).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "venvstacks" / "runtimes"


def parse_archive_entry(text: str) -> tuple[str, str]:
    """`cpython@3.11.7=PATH_OR_URL#sha256=HEX` -> ("cpython@3.11.7", "PATH_OR_URL#sha256=HEX");
    the request may name a platform first: `win_amd64:cpython@3.11=...`."""
    request, sep, location = text.strip().partition("=")
    if not sep:
        raise VenvStacksError(f"runtime archive {text!r}: write it as [PLATFORM:]REQ=PATH_OR_URL#sha256=HEX")
    archive_key(request.strip())
    _check_location(location.strip(), f"runtime archive for {request.strip()}")
    return request.strip(), location.strip()


@dataclass(frozen=True)
class RuntimeOptions:
    """Where runtimes come from (source policy, mirror, explicit archives) and where they are cached."""

    cache_dir: Path
    policy: Policy = "auto"
    mirror: str | None = None  # replaces the python-build-standalone release download base
    archives: Mapping[str, str] = field(default_factory=dict)  # request -> LOC#sha256=HEX

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise VenvStacksError(
                f"runtime source {self.policy!r} is not one of {', '.join(POLICIES)} "
                "(--runtime-source / VENVSTACKS_RUNTIME_SOURCE)"
            )
        if self.mirror is not None:
            _check_mirror(self.mirror)
        for request, location in self.archives.items():
            archive_key(request)
            _check_location(location, f"runtime archive for {request}")

    @classmethod
    def from_env(cls, **overrides: Any) -> RuntimeOptions:
        """Options from VENVSTACKS_RUNTIME_* variables; overrides that are not None win.

        Explicit archives are merged: those given as overrides replace the environment's
        entry for the same request and keep the others.
        """
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown runtime options: {', '.join(sorted(unknown))}")
        env = os.environ
        archives: dict[str, str] = {}
        for item in env.get("VENVSTACKS_RUNTIME_ARCHIVES", "").split(ARCHIVES_ENV_SEPARATOR):
            if item.strip():
                request, location = parse_archive_entry(item)
                archives[request] = location
        archives.update(overrides.get("archives") or {})
        policy = overrides.get("policy") or env.get("VENVSTACKS_RUNTIME_SOURCE") or "auto"
        mirror = overrides.get("mirror") or env.get("VENVSTACKS_RUNTIME_MIRROR") or None
        cache_dir = overrides.get("cache_dir") or default_cache_dir(env)
        return cls(
            cache_dir=Path(cache_dir).expanduser(),
            policy=cast(Policy, policy.strip()),
            mirror=mirror,
            archives=archives,
        )


def archive_key(key: str) -> tuple[str | None, str, str]:
    """`[PLATFORM:]impl@X.Y[.Z]` -> (platform name or None for this machine's, impl, version)."""
    platform, sep, request = key.strip().rpartition(":")
    if sep and platform not in ALL_PLATFORMS:
        raise VenvStacksError(
            f"runtime archive {key!r}: unknown platform {platform!r}; choose from {', '.join(ALL_PLATFORMS)}"
        )
    return (platform or None, *parse_request(request))


def parse_request(request: str) -> tuple[str, str]:
    """`cpython@3.11` -> ("cpython", "3.11"); `cpython@3.11.7` -> ("cpython", "3.11.7")."""
    m = _REQUEST.fullmatch(request.strip())
    if m is None:
        raise VenvStacksError(
            f"runtime request {request!r} is not IMPLEMENTATION@X.Y or IMPLEMENTATION@X.Y.Z "
            "(for example cpython@3.11)"
        )
    impl, version = m.group("impl"), m.group("version")
    if impl == "pypy":
        raise VenvStacksError(f"runtime request {request!r}: PyPy runtimes are not supported yet")
    if impl != "cpython":
        raise VenvStacksError(f"runtime request {request!r}: unknown implementation {impl!r} (use cpython)")
    return impl, version


def _check_location(location: str, what: str) -> None:
    sources.parse_archive_location(location, what)


def _check_mirror(mirror: str) -> None:
    parts = urlsplit(mirror)
    if parts.scheme not in ("http", "https", "file") or not (parts.netloc or parts.scheme == "file"):
        raise VenvStacksError(
            f"runtime mirror {mirror!r} is not an http://, https:// or file:// URL "
            "(--runtime-mirror / VENVSTACKS_RUNTIME_MIRROR)"
        )
