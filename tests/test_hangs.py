"""Nothing hangs forever: a postinstall.py that never returns, an index that never answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import ends
from tests.support.spec_files import RUNTIME, framework
from venvstacks.errors import VenvStacksError
from venvstacks.layout import LAYER_CONFIG
from venvstacks.ship.finish import run_postinstall


def test_a_postinstall_that_never_returns_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layer = tmp_path / "app-x"
    layer.mkdir()
    marker = tmp_path / "pid"
    (layer / "postinstall.py").write_text(
        f"import os, pathlib, time\npathlib.Path({str(marker)!r}).write_text(str(os.getpid()))\n"
        "while True:\n    time.sleep(60)\n"
    )
    # A layer config naming no base Python: deploy runs postinstall.py with its own Python.
    (layer / LAYER_CONFIG).parent.mkdir(parents=True)
    (layer / LAYER_CONFIG).write_text('{"python": "bin/python", "py_version": "3.11.9", "site_dir": "lib"}')
    monkeypatch.setenv("VENVSTACKS_POSTINSTALL_TIMEOUT", "1")
    with pytest.raises(VenvStacksError) as info:
        run_postinstall(layer)
    assert str(info.value) == (
        "postinstall of app-x did not finish within 1 s and was stopped; "
        "VENVSTACKS_POSTINSTALL_TIMEOUT gives it longer"
    )
    pid = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped, not left running


def test_a_postinstall_out_of_time_is_stopped_with_its_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As compileall's worker processes: a child of postinstall.py goes with it."""
    layer = tmp_path / "app-x"
    (layer / LAYER_CONFIG).parent.mkdir(parents=True)
    (layer / LAYER_CONFIG).write_text('{"python": "bin/python", "py_version": "3.11.9", "site_dir": "lib"}')
    marker = tmp_path / "worker-pid"
    worker = "import time\nwhile True:\n    time.sleep(60)\n"
    (layer / "postinstall.py").write_text(
        "import pathlib, subprocess, sys, time\n"
        f"worker = subprocess.Popen([sys.executable, '-c', {worker!r}])\n"
        f"pathlib.Path({str(marker)!r}).write_text(str(worker.pid))\n"
        "while True:\n    time.sleep(60)\n"
    )
    monkeypatch.setenv("VENVSTACKS_POSTINSTALL_TIMEOUT", "2")
    with pytest.raises(VenvStacksError, match="did not finish within 2 s"):
        run_postinstall(layer)
    assert ends(int(marker.read_text())), "the postinstall's worker was left running"


@pytest.fixture
def silent_index() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not done.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/simple"
    done.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


@pytest.mark.slow  # runs the venvstacks command in a subprocess
def test_an_index_that_never_answers_fails_the_lock_in_one_line(
    silent_index: str, runtime_cache: Path, tmp_path: Path
) -> None:
    toml = RUNTIME.replace("requirements = []", 'requirements = ["idna"]')
    toml += framework("fw") + f'\n[tool.uv]\nindex-url = "{silent_index}"\n'
    path = tmp_path / "venvstacks.toml"
    path.write_text(toml)
    env = dict(
        os.environ,
        VENVSTACKS_RUNTIME_CACHE=str(runtime_cache),
        VENVSTACKS_RUNTIME_SOURCE="local",
        UV_HTTP_TIMEOUT="1",
        UV_HTTP_RETRIES="0",
        UV_NO_CACHE="1",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "venvstacks", "lock", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,  # far beyond the bound; only reached if it hangs
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    failed = [line for line in proc.stdout.splitlines() if line.startswith("FAILED lock:cpython-3.11")]
    assert len(failed) == 1, proc.stdout
    assert f"Failed to fetch: {silent_index}/idna/" in failed[0] and "timed out" in failed[0]
    assert not (tmp_path / "requirements" / "cpython-3.11" / "pylock.cpython-3_11.toml").exists()
