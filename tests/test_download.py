"""Downloads end: an overall deadline, a per-read timeout and retries, against 127.0.0.1 servers.

The trickling server sends one byte at a time with pauses shorter than the read timeout, for
far longer than the deadline: only the deadline can end that download.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from venvstacks.errors import VenvStacksError
from venvstacks.runtimes.download import DownloadError, download

BODY = b"runtime archive bytes" * 100
Handler = Callable[[http.server.BaseHTTPRequestHandler, int], None]


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], tuple[str, list[str]]]]:
    servers: list[http.server.ThreadingHTTPServer] = []
    stop = threading.Event()

    def start(respond: Handler) -> tuple[str, list[str]]:
        seen: list[str] = []

        class Handle(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                respond(self, len(seen))

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handle)
        server.daemon_threads = True
        servers.append(server)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}/file.tar.gz", seen

    yield start
    stop.set()
    for server in servers:
        server.shutdown()
        server.server_close()


def _limits(monkeypatch: pytest.MonkeyPatch, *, read_timeout: float, deadline: float, retries: int) -> None:
    """The limits as users set them (docs/runtimes.md), read by every download."""
    monkeypatch.setenv("VENVSTACKS_DOWNLOAD_TIMEOUT", str(read_timeout))
    monkeypatch.setenv("VENVSTACKS_DOWNLOAD_DEADLINE", str(deadline))
    monkeypatch.setenv("VENVSTACKS_DOWNLOAD_RETRIES", str(retries))


def _send(handler: http.server.BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def test_a_mirror_sending_a_byte_at_a_time_fails_at_the_deadline(
    serve: Callable[[Handler], tuple[str, list[str]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gave_up = threading.Event()

    def trickle(handler: http.server.BaseHTTPRequestHandler, _: int) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        try:
            for _ in range(100_000):  # ~100 minutes at this pace, unless the client gives up
                handler.wfile.write(b"x")
                handler.wfile.flush()
                if gave_up.wait(0.05):
                    return
        except OSError:
            return

    url, seen = serve(trickle)
    _limits(monkeypatch, read_timeout=5, deadline=0.5, retries=3)
    try:
        with pytest.raises(DownloadError, match=r"not finished within the 0\.5 s deadline"):
            download(url, tmp_path / "file.tar.gz")
    finally:
        gave_up.set()
    assert seen == ["/file.tar.gz"]  # a deadline is final: no retry


def test_passing_server_errors_are_retried(
    serve: Callable[[Handler], tuple[str, list[str]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def flaky(handler: http.server.BaseHTTPRequestHandler, count: int) -> None:
        _send(handler, 503 if count == 1 else 200, b"busy" if count == 1 else BODY)

    url, seen = serve(flaky)
    _limits(monkeypatch, read_timeout=5, deadline=30, retries=2)
    sha = download(url, tmp_path / "file.tar.gz")
    assert sha == hashlib.sha256(BODY).hexdigest()
    assert (tmp_path / "file.tar.gz").read_bytes() == BODY
    assert len(seen) == 2


def test_retries_are_bounded_and_said(
    serve: Callable[[Handler], tuple[str, list[str]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, seen = serve(lambda handler, _: _send(handler, 502, b"bad gateway"))
    _limits(monkeypatch, read_timeout=5, deadline=30, retries=1)
    with pytest.raises(DownloadError, match=r"HTTP 502 .* \(after 2 attempts\)"):
        download(url, tmp_path / "f")
    assert len(seen) == 2


def test_not_found_is_not_retried(
    serve: Callable[[Handler], tuple[str, list[str]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, seen = serve(lambda handler, _: _send(handler, 404, b"no"))
    _limits(monkeypatch, read_timeout=5, deadline=30, retries=3)
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(url, tmp_path / "f")
    assert len(seen) == 1


def test_a_full_disk_names_the_folder_and_is_not_retried(
    serve: Callable[[Handler], tuple[str, list[str]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, seen = serve(lambda handler, _: _send(handler, 200, BODY))
    _limits(monkeypatch, read_timeout=5, deadline=30, retries=3)

    class Full:
        def __init__(self, *args: object) -> None:
            pass

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *args: object) -> None:
            pass

        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "open", lambda self, mode="r": Full())
    with pytest.raises(DownloadError, match=f"cannot write to {tmp_path}: No space left on device"):
        download(url, tmp_path / "f")
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [("VENVSTACKS_DOWNLOAD_DEADLINE", "soon"), ("VENVSTACKS_DOWNLOAD_TIMEOUT", "0")],
)
def test_bad_limits_in_the_environment_are_one_line(
    name: str,
    value: str,
    serve: Callable[[Handler], tuple[str, list[str]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, seen = serve(lambda handler, _: _send(handler, 200, BODY))
    monkeypatch.setenv(name, value)
    with pytest.raises(VenvStacksError, match=f"{name}={value!r} is not a number of seconds > 0"):
        download(url, tmp_path / "f")
    assert seen == []  # refused before asking anyone


@pytest.mark.parametrize("mirror", ["not a url", "ftp://mirror.example/pbs", "http://"])
def test_a_runtime_mirror_that_is_not_a_url_is_one_line(
    mirror: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.spec_files import RUNTIME, write_stack
    from venvstacks.cli import main

    path = write_stack(tmp_path, RUNTIME, {})
    assert main(["lock", str(path), "--runtime-mirror", mirror]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"error: runtime mirror {mirror!r} is not an http://, https:// or file:// URL "
        "(--runtime-mirror / VENVSTACKS_RUNTIME_MIRROR)"
    ]
    assert not (tmp_path / "requirements").exists()
