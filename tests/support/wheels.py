"""Tiny wheels made on the spot, and PEP 503 simple indexes serving them on 127.0.0.1 that
log every request, so tests can say which index uv asked for which project.

`package_index` is the index of the whole session: stacks built by the core tests resolve
against it (never the real index), and a test can hold back one file to catch a build at a
known step: the request for it is the marker that the build got there.
"""

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


def make_wheel(
    folder: Path,
    name: str,
    version: str,
    tag: str = "py3-none-any",
    body: str = "",
    package: bool = False,
    scripts: dict[str, str] | None = None,
    metadata: str = "",
) -> Path:
    """Write a minimal valid wheel whose module `<name>` (a package if asked) says where it
    came from. `scripts`: console scripts, name -> function of the module (`body` defines it);
    `metadata`: more METADATA lines, such as `License-Expression: MIT\n`."""
    dist = name.replace("-", "_")
    module = f"{dist}/__init__.py" if package else f"{dist}.py"
    files = {module: f"VERSION = {version!r}\n{body}".encode()}
    if scripts:
        lines = "".join(f"{script} = {dist}:{func}\n" for script, func in scripts.items())
        files[f"{dist}-{version}.dist-info/entry_points.txt"] = f"[console_scripts]\n{lines}".encode()
    return write_wheel(folder, name, version, tag, files, metadata)


def write_wheel(
    folder: Path, name: str, version: str, tag: str, files: Mapping[str, bytes], metadata: str = ""
) -> Path:
    """Write a valid wheel holding `files` (paths inside site-packages) plus its metadata."""
    dist = name.replace("-", "_")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dist}-{version}-{tag}.whl"
    info = f"{dist}-{version}.dist-info"
    purelib = "true" if tag.endswith("-any") else "false"
    meta_version = "2.4" if metadata else "2.1"  # 2.4: License-Expression, License-File
    core = f"Metadata-Version: {meta_version}\nName: {name}\nVersion: {version}\n{metadata}"
    contents = {
        **files,
        f"{info}/METADATA": core.encode(),
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
    held: dict[str, threading.Event] = field(default_factory=dict)  # file name -> its release
    changed: threading.Condition = field(default_factory=threading.Condition)  # a request came

    def add(
        self, name: str, version: str, tag: str = "py3-none-any", body: str = "", metadata: str = ""
    ) -> Path:
        return make_wheel(self.root, name, version, tag, body, metadata=metadata)

    @property
    def host(self) -> str:
        """`http://127.0.0.1:PORT`: the start of every URL this index hands out."""
        return self.url.rsplit("/", 1)[0]

    def asked(self, project: str) -> int:
        """How many times the project's page was requested."""
        wanted = project.lower().replace("_", "-")
        return sum(1 for path in self.requests if _project_of(path) == wanted)

    def hold(self, file_name: str) -> threading.Event:
        """Keep ``file_name`` back until the event returned is set (or 120 s have passed);
        `wait_for_request` then waits for a request made from now on."""
        release = threading.Event()
        with self.changed:
            self.held[file_name] = release
            self.requests[:] = [p for p in self.requests if not p.endswith("/" + file_name)]
        return release

    def wait_for_request(self, file_name: str, timeout: float = 120) -> bool:
        """Whether something asked for ``file_name`` within ``timeout`` seconds."""
        with self.changed:
            return self.changed.wait_for(
                lambda: any(p.endswith("/" + file_name) for p in self.requests), timeout
            )


def _project_of(path: str) -> str | None:
    parts = [p for p in path.split("/") if p]
    return parts[1].lower().replace("_", "-") if len(parts) == 2 and parts[0] == "simple" else None


class _Handler(http.server.SimpleHTTPRequestHandler):
    index: SimpleIndex

    def do_GET(self) -> None:
        index = self.index
        with index.changed:
            index.requests.append(self.path)
            index.changed.notify_all()
        parts = [p for p in self.path.split("/") if p]
        if len(parts) == 2 and parts[0] == "simple":
            project = parts[1].lower().replace("_", "-")
            links = [self._link(w) for w in sorted(index.root.glob("*.whl")) if _project(w) == project]
            body = ("<html><body>" + "".join(links) + "</body></html>").encode()
            self._send(200 if links else 404, body, "text/html")
        elif len(parts) == 2 and parts[0] == "files":
            release = index.held.get(parts[1])
            if release is not None:
                release.wait(120)
            wheel = index.root / parts[1].removesuffix(".metadata")
            if not wheel.is_file():
                self._send(404, b"not found", "text/plain")
            elif parts[1].endswith(".metadata"):
                self._send(200, _metadata(wheel), "text/plain")
            else:
                self._send(200, wheel.read_bytes(), "application/octet-stream")
        else:
            self._send(404, b"not found", "text/plain")

    def _link(self, wheel: Path) -> str:
        # PEP 714 core metadata: resolving reads it instead of downloading the wheel, so a
        # wheel is only fetched when it is installed.
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        meta = hashlib.sha256(_metadata(wheel)).hexdigest()
        href = f"/files/{wheel.name}#sha256={digest}"
        return f'<a href="{href}" data-core-metadata="sha256={meta}">{wheel.name}</a>'

    def _send(self, code: int, body: bytes, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _project(wheel: Path) -> str:
    return wheel.name.split("-")[0].lower().replace("_", "-")


def _metadata(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return zf.read(name)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a held request must not keep the server from shutting down


@contextmanager
def serve_index(wheels: Path) -> Iterator[SimpleIndex]:
    """A simple index for the wheels in `wheels`, on a free port of 127.0.0.1."""
    wheels.mkdir(parents=True, exist_ok=True)
    index = SimpleIndex(wheels, "")
    server = _Server(("127.0.0.1", 0), type("Handler", (_Handler,), {"index": index}))
    index.url = f"http://127.0.0.1:{server.server_address[1]}/simple"
    # A short poll: shutdown() waits for the serving loop to look (0.5 s by default, per test).
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield index
    finally:
        for release in index.held.values():
            release.set()
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


# What the stacks of the core tests install: tiny packages named like the real ones.
CORE_WHEELS = (("attrs", "25.3.0"), ("attrs", "26.1.0"), ("idna", "3.10"), ("six", "1.17.0"))


@pytest.fixture(scope="session")
def package_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleIndex]:
    wheels = tmp_path_factory.mktemp("package-index")
    for name, version in CORE_WHEELS:
        make_wheel(wheels, name, version, package=True)
    with serve_index(wheels) as index:
        yield index
