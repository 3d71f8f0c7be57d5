"""Where a layer's CPython comes from: the runtime cache, a download, or this machine.

One verb, `ensure_runtime`, returns the cache entry holding a runtime (its record, see
record.py) in a persistent cache outside the build folder; only `runtime:` calls it.
Whatever the source (see sources.py and local.py), the cache keeps the same two things per
runtime: the sha256-checked `install_only` archive and an unpacked copy of it. The cache is
consulted first, so a runtime, once there, is what later builds get (stable doit manifests,
no network on reruns).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, cast

from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import copy_tree, dump_json
from venvstacks.lazy import lazy_modules
from venvstacks.platforms import Platform, host_platform, major_minor
from venvstacks.runtimes.options import RuntimeOptions, archive_key, parse_request
from venvstacks.runtimes.record import ENTRY_FILE, ENTRY_PYTHON, CacheEntry, RuntimeRecord
from venvstacks.runtimes.sources import (
    ArchiveSource,
    Candidate,
    ChecksumError,
    DownloadSource,
    FetchError,
    RuntimeSource,
    parse_archive_location,
    read_version,
    unpack_install_only,
    version_key,
    version_matches,
)

# Loaded only to fetch a runtime (a build finding it in the cache loads neither).
if TYPE_CHECKING:
    import filelock

    from venvstacks.runtimes import local, pack
else:
    filelock, local, pack = lazy_modules("filelock", "venvstacks.runtimes.local", "venvstacks.runtimes.pack")

# Cached runtimes a policy may reuse: a runtime made from a local interpreter never
# satisfies `download`, a downloaded one never satisfies `local`.
_CACHE_SOURCES: dict[str, frozenset[str]] = {
    "download": frozenset({"download", "archive"}),
    "local": frozenset({"local"}),
    "auto": frozenset({"download", "archive", "local"}),
}


def ensure_runtime(
    request: str,
    options: RuntimeOptions,
    log: Callable[[str], None] = print,
    platform: Platform | None = None,
) -> CacheEntry:
    """The runtime for `request` on `platform` (default: this machine's): from the cache,
    else fetched per `options.policy`. Only this machine's may come from a local CPython."""
    impl, version_request = parse_request(request)
    platform = platform or host_platform()
    foreign = platform.name != host_platform().name
    explicit = _explicit_archives(options, platform) if options.policy != "local" or foreign else None
    cache = RuntimeCache(options.cache_dir, platform.name)
    with cache.locked(impl, version_request, log):
        wanted = explicit.find(impl, version_request) if explicit else None
        if wanted is not None:
            # An explicit archive pins the exact bytes: only that archive may satisfy it.
            hit = cache.find_sha256(impl, version_request, cast(str, wanted.sha256))
        else:
            hit = cache.find(impl, version_request, _CACHE_SOURCES["download" if foreign else options.policy])
        if hit is not None:
            return hit.for_request(request)

        failed: list[str] = []  # why each source tried could not provide it, in order
        reason = ""
        if options.policy != "local" or foreign:
            remote: RuntimeSource = DownloadSource(options.mirror, platform)
            candidate: Candidate | None
            if explicit is not None and wanted is not None:
                remote, candidate = explicit, wanted
            else:
                candidate = remote.find(impl, version_request)
            if candidate is None:
                reason = f"pbs-installer's download table has {_has(remote, impl, version_request)}"
                failed.append(f"download: the table has {_has(remote, impl, version_request)}")
                if options.policy == "download" or foreign:
                    raise _no_source(_for(request, platform), failed)
            else:
                try:
                    if candidate.source == "download":
                        log(f"{_for(request, platform)}: downloading {candidate.origin}")
                    return cache.add(candidate, remote, request)
                except FetchError as exc:
                    if foreign:
                        raise FetchError(
                            f"runtime {_for(request, platform)}: {exc} (--runtime-mirror or "
                            f"--runtime-archive '{platform.name}:{request}=LOC#sha256=HEX' "
                            "can name another place)"
                        ) from None
                    if options.policy == "download":
                        raise FetchError(
                            f"runtime {request}: {exc} (--runtime-mirror or --runtime-archive can "
                            "name another place; --runtime-source auto falls back to a local CPython)"
                        ) from None
                    reason = str(exc)
                    failed.append(f"download: {exc}")

        local_source = local.LocalSource()
        found = local_source.find(impl, version_request)
        if found is None:
            found_here = _has(local_source, impl, version_request, found_only=True)
            failed.append(
                f"local: no local {_NAMES.get(impl, impl)} {version_request} found "
                f"(uv-managed or pyenv; found {found_here})"
            )
            raise _no_source(request, failed)
        what = f"the local CPython {found.version} at {found.origin}"
        if options.policy == "auto":
            # The one line that says why this build is not portable.
            log(f"{request}: {reason}; falling back to {what} (portable only to machines like this one)")
        else:
            log(f"{request}: packaging {what}")
        return cache.add(found, local_source, request)


def install_runtime(runtime: CacheEntry, dest: Path) -> None:
    """Copy the unpacked runtime to dest, which appears only once the copy is complete."""
    if dest.exists() or dest.is_symlink():
        raise VenvStacksError(f"cannot install {runtime.record.request} into {dest}: it already exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        # copytree also gives tmp the source folder's mode (mkdtemp makes it 0700).
        copy_tree(runtime.python_dir, tmp, shown_as=dest, share=_stdlib_file)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _stdlib_file(relative: Path) -> bool:
    """Files of a runtime's standard library (``lib/pythonX.Y/``, not ``site-packages``):
    a layer shares them with the cache as hard links, since nothing writes them in place
    (uv installs into site-packages; our own writes and Python's .pyc writes replace files
    by rename). Everything else is copied, so nothing written in a build folder can ever
    reach the cache."""
    parts = relative.parts
    in_stdlib = len(parts) >= 3 and parts[0] == "lib" and parts[1].startswith("python")
    return in_stdlib and parts[2] != "site-packages"


def _explicit_archives(options: RuntimeOptions, platform: Platform) -> ArchiveSource:
    """The archives named for this platform (`PLATFORM:REQ`; a bare REQ is this machine's)."""
    archives = {}
    for request, value in options.archives.items():
        named, impl, version = archive_key(request)
        if (named or host_platform().name) == platform.name:
            archives[impl, version] = parse_archive_location(value, f"runtime archive for {request}")
    return ArchiveSource(archives)


def _for(request: str, platform: Platform) -> str:
    return request if platform.name == host_platform().name else f"{request} for {platform.name}"


_NAMES = {"cpython": "CPython"}


def _has(source: RuntimeSource, impl: str, version_request: str, found_only: bool = False) -> str:
    """What a source offers near a request: `3.11.1, ..., 3.11.17` or `no 3.5.x, only 3.8, 3.9`."""
    series = major_minor(version_request)
    versions = source.available(impl)
    same = [v for v in versions if version_matches(v, series)]
    if not versions:
        return "none" if found_only else f"no {impl} at all"
    if found_only:
        return ", ".join(versions)
    if same:
        return f"no {version_request}, only {', '.join(same)}"
    others = sorted({major_minor(v) for v in versions}, key=version_key)
    return f"no {series}.x, only {', '.join(others)}"


def _no_source(request: str, failed: list[str]) -> VenvStacksError:
    return VenvStacksError(f"runtime {request}: no source could provide it ({'; '.join(failed)})")


class RuntimeCache:
    """A folder of cache entries (record.CacheEntry), one per runtime archive.

    An entry is assembled in a `.tmp-*` folder beside it and renamed into place whole, so a
    half-made entry is never seen; `runtime.json` is its proof of completeness.
    """

    def __init__(self, root: Path, platform: str) -> None:
        self.root = root
        self.platform = platform  # the platform whose entries this cache sees

    @contextmanager
    def locked(self, impl: str, version_request: str, log: Callable[[str], None]) -> Iterator[None]:
        series = major_minor(version_request)
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        # One lock per X.Y: a cpython@3.11 and a cpython@3.11.7 request may resolve to the
        # same entry, while 3.11 and 3.12 can be fetched side by side.
        lock = filelock.FileLock(locks / f"{impl}-{series}.lock")
        try:
            lock.acquire(timeout=0.2)
        except filelock.Timeout:
            log(f"waiting for another process fetching {impl} {series} into {self.root}")
            lock.acquire()
        try:
            # Whoever left these behind was killed while holding this same lock.
            for stale in self.root.glob(f".tmp-{impl}-{series}-*"):
                shutil.rmtree(stale, ignore_errors=True)
            yield
        finally:
            lock.release()

    def entries(self) -> Iterator[CacheEntry]:
        if not self.root.is_dir():
            return
        for meta_file in sorted(self.root.glob(f"[!.]*/{ENTRY_FILE}")):
            entry = CacheEntry.read(meta_file.parent)
            # A damaged entry is as good as missing: it gets refetched.
            if entry is not None and entry.record.platform == self.platform:
                yield entry

    def find(self, impl: str, version_request: str, sources: frozenset[str]) -> CacheEntry | None:
        matches = [
            e
            for e in self.entries()
            if e.record.implementation == impl
            and e.record.source in sources
            and version_matches(e.record.version, version_request)
        ]
        # Prefer what runs anywhere, then the newest patch release.
        matches.sort(key=lambda e: (e.record.portable, version_key(e.record.version)))
        return matches[-1] if matches else None

    def find_sha256(self, impl: str, version_request: str, sha256: str) -> CacheEntry | None:
        for e in self.entries():
            r = e.record
            same = r.archive_sha256 == sha256 and r.implementation == impl
            if same and version_matches(r.version, version_request):
                return e
        return None

    def add(self, candidate: Candidate, source: RuntimeSource, request: str) -> CacheEntry:
        """Fetch, check, unpack and file a candidate; nothing stays behind on failure."""
        impl, version_request = parse_request(request)
        what = f"runtime {request}: archive {candidate.origin}"
        series = major_minor(version_request)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{impl}-{series}-", dir=self.root))
        try:
            tmp.chmod(0o755)  # mkdtemp's 0700 would hide the cache from other accounts
            archive = tmp / candidate.file_name
            actual = source.fetch(candidate, archive)
            if candidate.sha256 is not None and actual != candidate.sha256:
                raise ChecksumError(
                    f"{what} has the wrong sha256: expected {candidate.sha256}, got {actual}; refusing it"
                )
            unpack_install_only(archive, tmp, what)
            version = read_version(tmp / ENTRY_PYTHON) or candidate.version
            if not version_matches(version, version_request):
                raise VenvStacksError(f"{what} holds {impl} {version}, not {impl} {version_request}")
            record = RuntimeRecord(
                request=request,
                implementation=impl,
                version=version,
                source=candidate.source,
                origin=candidate.origin,
                archive_sha256=actual,
                portable=candidate.portable and not (tmp / ENTRY_PYTHON / pack.LOCAL_MARKER).exists(),
                platform=self.platform,
            )
            final = self.root / record.entry_name
            entry = CacheEntry(final, record, candidate.file_name)
            (tmp / ENTRY_FILE).write_text(dump_json(entry.to_json()), encoding="utf-8")
            existing = CacheEntry.read(final)
            if existing is not None and existing.record.same_runtime(record):
                shutil.rmtree(tmp)  # the same bytes, already filed under another request
                return existing.for_request(request)
            # An incomplete or damaged leftover, if any: replaced by the fresh copy.
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            return entry
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
