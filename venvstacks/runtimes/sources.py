"""Where a runtime archive can come from: an explicit archive, or pbs-installer's download table.

Every source answers the same two questions (see `RuntimeSource`): which archive would you
give for this request (`find`, cheap and offline), and write it here (`fetch`, the effect).
The cache in `cache.py` decides which source to ask, checks the sha256 and keeps the result;
local interpreters live in `local.py`. Every archive, whatever its source, is unpacked
by `unpack_install_only` below, which refuses members that would land outside `python/`.
"""

from __future__ import annotations

import re
import shutil
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, cast
from urllib.parse import unquote, urlsplit

from packaging.version import InvalidVersion, Version

from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import is_sha256_hex, sha256_file
from venvstacks.lazy import lazy_modules
from venvstacks.platforms import Platform

# The safe extractor, when a runtime archive is unpacked; the downloader (ssl, http) and
# pbs-installer's table, when a runtime is fetched: a build finding its runtimes in the
# cache loads none of them.
if TYPE_CHECKING:
    import pbs_installer

    from venvstacks.archive import unpack
    from venvstacks.runtimes import download as downloader
else:
    unpack, downloader, pbs_installer = lazy_modules(
        "venvstacks.archive.unpack", "venvstacks.runtimes.download", "pbs_installer"
    )

# Release bases in pbs-installer's table; a mirror replaces them, keeping `<date>/<file>`.
PBS_RELEASE_BASES = (
    "https://github.com/astral-sh/python-build-standalone/releases/download",
    "https://github.com/indygreg/python-build-standalone/releases/download",
)
_PBS_NAME_VERSION = re.compile(r"^cpython-(\d+\.\d+\.\d+)[+-]")


class FetchError(VenvStacksError):
    """The archive could not be obtained (network, HTTP status, missing file).

    Policy `auto` falls back to a local interpreter on this error, and only on this one.
    """


class ChecksumError(VenvStacksError):
    """The archive's sha256 is not the expected one: refused, never a reason to fall back."""


@dataclass(frozen=True)
class Candidate:
    """One archive a source can provide, described before anything is fetched."""

    implementation: str
    version: str  # what the source believes it holds; the cache checks it after unpacking
    source: str  # "download" | "archive" | "local"
    origin: str  # URL or local path
    sha256: str | None  # expected archive hash; None when the archive is made here
    file_name: str  # the archive's name in the cache
    portable: bool


class RuntimeSource(Protocol):
    def find(self, implementation: str, version_request: str) -> Candidate | None:
        """The archive this source would provide, or None. Cheap: no network, no copying."""
        ...

    def available(self, implementation: str) -> list[str]:
        """Every version this source could provide (for "not available" messages)."""
        ...

    def fetch(self, candidate: Candidate, dest_archive: Path) -> str:
        """Write the archive to dest_archive and return its sha256. Raises FetchError."""
        ...


def version_matches(version: str, version_request: str) -> bool:
    """`3.11` takes any 3.11.z; `3.11.7` takes exactly that."""
    return version == version_request or version.startswith(version_request + ".")


def version_key(version: str) -> Version:
    try:
        return Version(version)
    except InvalidVersion:
        return Version("0")


def parse_archive_location(value: str, what: str) -> tuple[str, str]:
    """Split `PATH_OR_URL#sha256=HEX` into its location and lower-case hex digest."""
    location, sep, digest = value.rpartition("#sha256=")
    digest = digest.strip().lower()
    if not sep or not location or not is_sha256_hex(digest):
        raise VenvStacksError(
            f"{what}: {value!r} is not PATH_OR_URL#sha256=HEX (64 hex digits after '#sha256=')"
        )
    return location, digest


def is_url(location: str) -> bool:
    return urlsplit(location).scheme in ("http", "https", "file")


def download(url: str, dest: Path) -> str:
    """Stream url into dest (see `venvstacks.runtimes.download`); FetchError for anything the network does."""
    try:
        return downloader.download(url, dest)
    except downloader.DownloadError as exc:
        raise FetchError(str(exc)) from None


def copy_hashing(src: Path, dest: Path) -> str:
    """Copy a local archive into the cache; the sha256 of the copy (what is unpacked)."""
    try:
        shutil.copyfile(src, dest)
    except FileNotFoundError:
        raise FetchError(f"archive {src} does not exist") from None
    except OSError as exc:
        raise FetchError(f"could not read archive {src}: {exc}") from None
    return sha256_file(dest)


class ArchiveSource:
    """Archives named explicitly per request (`--runtime-archive REQ=LOC#sha256=HEX`)."""

    def __init__(self, archives: dict[tuple[str, str], tuple[str, str]]) -> None:
        # (implementation, version request) -> (location, sha256), for one platform
        self.archives = archives

    def find(self, implementation: str, version_request: str) -> Candidate | None:
        entry = self.archives.get((implementation, version_request))
        if entry is None:
            return None
        location, sha256 = entry
        if not is_url(location):
            location = str(Path(location).expanduser().resolve())
        name = unquote(location.rstrip("/").rsplit("/", 1)[-1]) or "runtime.tar.gz"
        # The real version is read from the unpacked headers; the name is only a first guess.
        named = _PBS_NAME_VERSION.match(name)
        version = named.group(1) if named else version_request
        return Candidate(implementation, version, "archive", location, sha256, name, True)

    def available(self, implementation: str) -> list[str]:
        return sorted((v for (impl, v) in self.archives if impl == implementation), key=version_key)

    def fetch(self, candidate: Candidate, dest_archive: Path) -> str:
        if is_url(candidate.origin):
            return download(candidate.origin, dest_archive)
        return copy_hashing(Path(candidate.origin), dest_archive)


_TABLE_LOCK = threading.Lock()
# Minor versions to ask the table about when listing what it has (public API only).
_LISTED_MINORS = range(8, 20)


def _lookup(request: str, implementation: str, platform: Platform) -> tuple[str, str, str | None] | None:
    """(X.Y.Z, url, sha256) of pbs-installer's best match for the platform, or None.

    The first lookup loads its table (it costs ~70 ms), quietly: the table is read with a
    deprecated importlib.resources call whose warning says nothing a venvstacks user can act
    on. Lookups hold a lock, so the filter change stays away from other threads' lookups.
    """
    with _TABLE_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            found, (url, sha256) = pbs_installer.get_download_link(
                request,
                arch=platform.arch,
                platform=platform.family,
                implementation=cast(Literal["cpython", "pypy"], implementation),
                build_dir=False,
            )
        except ValueError:
            return None
    return f"{found.major}.{found.minor}.{found.micro}", url, sha256


def _install_only(request: str, implementation: str, platform: Platform) -> tuple[str, str, str, str] | None:
    """(X.Y.Z, url, sha256, file name) of the best install_only archive, or None."""
    found = _lookup(request, implementation, platform)
    if found is None:
        return None
    version, url, sha256 = found
    name = unquote(url.rsplit("/", 1)[-1])
    # The table falls back to full builds (`python/install/...`, often .tar.zst) when no
    # install_only archive exists; those have another layout, so they do not count.
    if sha256 is None or "install_only" not in name or not name.endswith(".tar.gz"):
        return None
    return version, url, sha256.lower(), name


class DownloadSource:
    """python-build-standalone `install_only` archives listed in pbs-installer's table
    (for one platform and architecture, as pbs-installer names them)."""

    def __init__(self, mirror: str | None, platform: Platform):
        self.mirror = mirror.rstrip("/") if mirror else None
        self.platform = platform

    def find(self, implementation: str, version_request: str) -> Candidate | None:
        found = _install_only(version_request, implementation, self.platform)
        if found is None:
            return None
        version, url, sha256, name = found
        return Candidate(implementation, version, "download", self.mirrored(url), sha256, name, True)

    def mirrored(self, url: str) -> str:
        if self.mirror is None:
            return url
        for base in PBS_RELEASE_BASES:
            if url.startswith(base + "/"):
                return self.mirror + url[len(base) :]
        raise VenvStacksError(
            f"cannot use runtime mirror {self.mirror}: {url} is not a python-build-standalone release URL"
        )

    def available(self, implementation: str) -> list[str]:
        """The newest version of each minor series the table has an install_only archive for."""
        found = (_install_only(f"3.{minor}", implementation, self.platform) for minor in _LISTED_MINORS)
        return sorted((f[0] for f in found if f is not None), key=version_key)

    def fetch(self, candidate: Candidate, dest_archive: Path) -> str:
        return download(candidate.origin, dest_archive)


def unpack_install_only(archive: Path, dest: Path, what: str) -> None:
    """Unpack an install_only archive into dest/python, refusing members that escape it.

    `what` names the archive in error messages ("runtime cpython@3.11: archive URL"). The
    checks are those of every archive we unpack (`venvstacks.archive.unpack`).
    """
    try:
        staging = unpack.unpack_to_staging(archive, dest, "python")
    except VenvStacksError as exc:
        raise VenvStacksError(f"{what}: {exc}") from None
    if not any(staging.iterdir()):
        staging.rmdir()
        raise VenvStacksError(f"{what} is empty")
    staging.rename(dest / "python")


def read_version(python_dir: Path) -> str | None:
    """The exact CPython version, from the headers (no need to run anything, so it works
    for any platform's runtime): `include/pythonX.Y/patchlevel.h`, on Windows `include/`."""
    headers = [*python_dir.glob("include/python3*/patchlevel.h"), *python_dir.glob("include/patchlevel.h")]
    for header in sorted(headers):
        m = re.search(r'#define\s+PY_VERSION\s+"([^"+]+)', header.read_text("utf-8", "replace"))
        if m:
            return m.group(1)
    return None
