"""Session fixtures for tests that need a CPython runtime, without any network.

The runtime is made once per session from a CPython installed on this machine (uv-managed or
pyenv), exactly as `--runtime-source local` would; tests that cannot have one are skipped.
Nothing here changes the environment of the test process.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from venvstacks.fsutil import sha256_file
from venvstacks.runtimes.cache import ensure_runtime
from venvstacks.runtimes.local import LocalSource
from venvstacks.runtimes.options import RuntimeOptions
from venvstacks.runtimes.record import CacheEntry

SESSION_REQUEST = "cpython@3.11"


@dataclass(frozen=True)
class RuntimeArchive:
    """An install_only archive on disk, as `--runtime-archive` wants it."""

    path: Path
    sha256: str
    version: str  # the exact CPython version inside, e.g. "3.11.7"

    @property
    def location(self) -> str:
        """`PATH#sha256=HEX`, the value side of `--runtime-archive REQ=...`."""
        return f"{self.path}#sha256={self.sha256}"


@dataclass
class Mirror:
    """A python-build-standalone style mirror served over HTTP on 127.0.0.1."""

    url: str  # base URL: files are at <url>/<release date>/<file name>
    root: Path
    requests: list[str] = field(default_factory=list)  # paths asked for, in order

    def publish(self, archive: Path, date: str, file_name: str) -> str:
        """Serve archive as <url>/<date>/<file_name>; returns its URL."""
        dest = self.root / date / file_name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(archive, dest)
        return f"{self.url}/{date}/{file_name}"


@pytest.fixture(scope="session")
def runtime_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runtime cache folder already holding cpython@3.11, made from a local interpreter.

    Point `RuntimeOptions(cache_dir=...)` or VENVSTACKS_RUNTIME_CACHE at it; with policy
    `local` or `auto`, `cpython@3.11` is then a cache hit. Shared by the whole session: add
    to it if you must, never remove from it.
    """
    if LocalSource().find("cpython", "3.11") is None:
        pytest.skip("no local CPython 3.11 (uv-managed or pyenv) to make a runtime from")
    cache = tmp_path_factory.mktemp("runtime-cache")
    ensure_runtime(SESSION_REQUEST, RuntimeOptions(cache_dir=cache, policy="local"), log=_quiet)
    return cache


@pytest.fixture(scope="session")
def local_runtime(runtime_cache: Path) -> CacheEntry:
    """The `CacheEntry` for cpython@3.11 held in `runtime_cache` (do not modify its files)."""
    return ensure_runtime(
        SESSION_REQUEST, RuntimeOptions(cache_dir=runtime_cache, policy="local"), log=_quiet
    )


@pytest.fixture(scope="session")
def local_runtime_archive(
    local_runtime: CacheEntry, tmp_path_factory: pytest.TempPathFactory
) -> RuntimeArchive:
    """An install_only archive of the local CPython 3.11 (a copy outside the cache)."""
    folder = tmp_path_factory.mktemp("runtime-archive")
    path = folder / local_runtime.archive.name
    shutil.copyfile(local_runtime.archive, path)
    sha256 = sha256_file(path)
    assert sha256 == local_runtime.record.archive_sha256
    return RuntimeArchive(path, sha256, local_runtime.record.version)


@pytest.fixture(scope="session")
def runtime_mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    """An HTTP server on 127.0.0.1 serving a folder; use `publish` to put archives on it."""
    root = tmp_path_factory.mktemp("runtime-mirror")
    seen: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            seen.append(self.path)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="runtime-mirror", daemon=True
    )
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield Mirror(f"http://{host!s}:{port}", root, seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _quiet(_: str) -> None:
    pass
