"""Interrupted and concurrent builds: nothing half-done ever counts as done."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.stacks import Stack


def _start_build(stack: Stack, command: str = "build", *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "venvstacks", command, str(stack.spec), *args],
        env=stack.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so the signal reaches uv and the copy too
        # A shell running us in the background ignores SIGINT, and children inherit that:
        # give the build the terminal's default so Ctrl-C is really Ctrl-C.
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if condition():
            return True
        time.sleep(0.001)
    return False


def _uv_syncing(layer: str) -> Callable[[], bool]:
    def check() -> bool:
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                args = cmdline.read_bytes().split(b"\0")
            except OSError:
                continue
            if b"sync" in args and any(layer.encode() in a for a in args):
                return True
        return False

    return check


def _kill_during(
    stack: Stack, condition: Callable[[], bool], sig: int = signal.SIGKILL
) -> subprocess.Popen[str]:
    for _attempt in range(5):
        proc = _start_build(stack)
        if _wait_for(condition, proc):
            os.killpg(proc.pid, sig)
            proc.communicate(timeout=60)
            return proc
        proc.communicate(timeout=60)
        pytest.skip("the build finished before the moment to interrupt it could be caught")
    raise AssertionError("unreachable")


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_killed_install_redoes_only_that_layer(stack: Stack) -> None:
    stack.build()
    stack.app_requirements = ["attrs", "idna", "six"]
    stack.write()
    _kill_during(stack, _uv_syncing("app-hello"))
    assert not (stack.build_dir / "app-hello/share/venv/metadata/build-state/installed.json").exists()
    run = stack.build()
    # doit records a run's results when it ends, so a SIGKILL also forgets that the app's
    # lock task had finished: it runs again, finds its lock current and skips uv.
    assert run.ran == {"lock:app-hello", "install:app-hello", "build:app-hello"}
    assert "pylock.app-hello.toml is current" in run.err
    assert "idna from" in stack.run_app()


def test_killed_runtime_unpack_is_not_taken_as_done(stack: Stack) -> None:
    build_dir = stack.build_dir

    def unpacking() -> bool:
        return any(build_dir.glob(".cpython-3.11.tmp-*"))

    _kill_during(stack, unpacking)
    assert not (build_dir / "cpython-3.11/share/venv/metadata/build-state/installed.json").exists()
    run = stack.build()
    assert "install:cpython-3.11" in run.ran
    assert not list(build_dir.glob(".cpython-3.11.tmp-*"))
    assert "idna from" in stack.run_app()


def test_ctrl_c_keeps_finished_layers(stack: Stack) -> None:
    proc = _kill_during(stack, _uv_syncing("framework-web"), signal.SIGINT)
    assert proc.returncode != 0
    run = stack.build()
    assert "install:cpython-3.11" not in run.ran  # finished before the interrupt: recorded
    assert {"install:framework-web", "install:app-hello"} <= run.ran


def test_concurrent_builds_are_serialised(stack: Stack) -> None:
    first = _start_build(stack)
    owner = stack.build_dir / ".venvstacks.lock.owner"
    assert _wait_for(owner.exists, first)
    second = stack.build()
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, out + err
    assert "waiting for" in second.err and "in use by pid" in second.err
    assert second.ran == set()  # the first build did everything


@pytest.mark.parametrize("jobs", ["1", "2"])  # tasks in the main thread, or in doit's threads
def test_ctrl_c_during_publish_stops_soon_and_leaves_no_partial_archive(
    stack: Stack, tmp_path: Path, jobs: str
) -> None:
    stack.build()
    out = tmp_path / "published"
    proc = _start_build(stack, "publish", "--output-dir", str(out), "--jobs", jobs)
    # The runtime layer is ~90 MB of tar: several 32 MiB xz blocks, each ~20 s of CPU here.
    assert _wait_for(lambda: any(out.glob(".cpython-3.11.tar.xz.*.tmp")), proc)
    time.sleep(5)  # blocks are being compressed; a ~90 MB tar is all read by now
    os.killpg(proc.pid, signal.SIGINT)
    interrupted = time.monotonic()
    proc.communicate(timeout=120)
    # Finishing the blocks under way would take their whole compression time; the workers
    # look at the abort flag after every MiB instead.
    assert time.monotonic() - interrupted < 15
    assert proc.returncode != 0
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    assert not (out / "cpython-3.11.tar.xz").exists()
