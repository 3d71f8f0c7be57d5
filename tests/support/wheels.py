"""Tiny wheels made on the spot, and PEP 503 simple indexes serving them on 127.0.0.1 that
log every request, so tests can say which index uv asked for which project."""

from __future__ import annotations

import base64
import hashlib
import http.server
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest


def make_wheel(folder: Path, name: str, version: str, tag: str = "py3-none-any", body: str = "") -> Path:
    """Write a minimal valid wheel whose module `<name>` says where it came from."""
    dist = name.replace("-", "_")
    return write_wheel(folder, name, version, tag, {f"{dist}.py": f"VERSION = {version!r}\n{body}".encode()})


def write_wheel(folder: Path, name: str, version: str, tag: str, files: Mapping[str, bytes]) -> Path:
    """Write a valid wheel holding `files` (paths inside site-packages) plus its metadata."""
    dist = name.replace("-", "_")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dist}-{version}-{tag}.whl"
    info = f"{dist}-{version}.dist-info"
    purelib = "true" if tag.endswith("-any") else "false"
    contents = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: venvstacks-tests\nRoot-Is-Purelib: {purelib}\nTag: {tag}\n"
        ).encode(),
    }
    record = [f"{n},sha256={_digest(data)},{len(data)}" for n, data in contents.items()]
    contents[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in contents.items():
            entry = zipfile.ZipInfo(n, date_time=(2020, 1, 1, 0, 0, 0))
            entry.external_attr = 0o755 << 16 if n.endswith(".so") or ".so." in n else 0o644 << 16
            zf.writestr(entry, data)
    return path


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


@dataclass
class SimpleIndex:
    root: Path  # holds the wheels
    url: str  # .../simple
    requests: list[str] = field(default_factory=list)  # paths asked for, in order

    def add(self, name: str, version: str, tag: str = "py3-none-any", body: str = "") -> Path:
        return make_wheel(self.root, name, version, tag, body)

    @property
    def host(self) -> str:
        """`http://127.0.0.1:PORT`: the start of every URL this index hands out."""
        return self.url.rsplit("/", 1)[0]

    def asked(self, project: str) -> int:
        """How many times the project's page was requested."""
        wanted = project.lower().replace("_", "-")
        return sum(1 for path in self.requests if _project_of(path) == wanted)


def _project_of(path: str) -> str | None:
    parts = [p for p in path.split("/") if p]
    return parts[1].lower().replace("_", "-") if len(parts) == 2 and parts[0] == "simple" else None


class _Handler(http.server.SimpleHTTPRequestHandler):
    wheels: Path
    log: list[str]

    def do_GET(self) -> None:
        self.log.append(self.path)
        parts = [p for p in self.path.split("/") if p]
        if len(parts) == 2 and parts[0] == "simple":
            project = parts[1].lower().replace("_", "-")
            links = [
                f'<a href="/files/{w.name}#sha256={hashlib.sha256(w.read_bytes()).hexdigest()}">{w.name}</a>'
                for w in sorted(self.wheels.glob("*.whl"))
                if w.name.split("-")[0].lower().replace("_", "-") == project
            ]
            body = ("<html><body>" + "".join(links) + "</body></html>").encode()
            self._send(200 if links else 404, body, "text/html")
        elif len(parts) == 2 and parts[0] == "files" and (self.wheels / parts[1]).is_file():
            self._send(200, (self.wheels / parts[1]).read_bytes(), "application/octet-stream")
        else:
            self._send(404, b"not found", "text/plain")

    def _send(self, code: int, body: bytes, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serve_index(wheels: Path) -> Iterator[SimpleIndex]:
    """A simple index for the wheels in `wheels`, on a free port of 127.0.0.1."""
    wheels.mkdir(parents=True, exist_ok=True)
    log: list[str] = []
    handler = type("Handler", (_Handler,), {"wheels": wheels, "log": log})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield SimpleIndex(wheels, f"http://127.0.0.1:{server.server_address[1]}/simple", log)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def simple_index(tmp_path: Path) -> Iterator[SimpleIndex]:
    with serve_index(tmp_path / "index-wheels") as index:
        yield index


@pytest.fixture
def index_server(tmp_path: Path) -> Iterator[Callable[[str], SimpleIndex]]:
    """Starts more indexes on demand: `index_server("private")`."""
    with ExitStack() as servers:
        yield lambda name: servers.enter_context(serve_index(tmp_path / f"index-{name}"))
