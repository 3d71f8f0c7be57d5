"""External tools: the one helper every subprocess goes through, and finding our uv."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

from venvstacks.errors import CommandError, VenvStacksError
from venvstacks.lazy import lazy_modules

# uv's own locator, first asked when uv is run.
if TYPE_CHECKING:
    import uv
else:
    (uv,) = lazy_modules("uv")

UV_HTTP_TIMEOUT = "30"
POSTINSTALL_TIMEOUT = 600.0  # seconds; VENVSTACKS_POSTINSTALL_TIMEOUT overrides it


def tool_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for external tools: uv must never fetch a Python by itself."""
    env = dict(os.environ)
    env["UV_PYTHON_DOWNLOADS"] = "never"
    # uv's own read timeout, made explicit (docs/cli.md): an index that stops answering
    # fails a lock after this many seconds per request (and uv's few retries).
    env.setdefault("UV_HTTP_TIMEOUT", UV_HTTP_TIMEOUT)
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    if extra:
        env.update(extra)
    return env


_verbose = [os.environ.get("VENVSTACKS_VERBOSE", "") not in ("", "0")]


def set_verbose(on: bool) -> None:
    """`-v`: the tools' own output is shown as it comes (it is otherwise captured)."""
    _verbose[0] = on


def run(
    what: str,
    cmd: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    timeout_hint: str = "",
    progress: Callable[[str], bool] | None = None,
) -> str:
    """Run a command, capture its output, raise CommandError on failure.

    With `-v` the output is also shown as it comes, each line indented by `   | `.
    `progress` sees each line as it comes; a line it returns True for is a progress report,
    left out of the output returned (and of a failure's message). With
    `timeout`, a command still running after that many seconds is stopped with every process
    it started, and reported in one line (`timeout_hint` says how to give it longer).
    """
    args = [str(c) for c in cmd]
    if _verbose[0] and args[0] == uv_bin():
        # uv is always called with --quiet (its messages are noise in a failure's last
        # lines); -v asks for them, so leave it out here, in the one place uv runs through.
        args = [a for a in args if a != "--quiet"]
    lines: list[str] = []
    check_stopping()  # a stopping run starts nothing new (a worker thread may not know yet)
    try:
        with _Child(args, cwd, tool_env(env)) as proc:
            # A thread reads the output, so the wait below can time out meanwhile.
            reader = threading.Thread(target=_collect, args=(proc, lines, progress), daemon=True)
            reader.start()
            try:
                returncode = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                stop_group(proc, grace=0)
                reader.join(timeout=5)
                assert timeout is not None  # only a wait with a timeout expires
                raise timed_out(what, timeout, timeout_hint) from None
            reader.join()
    except OSError as exc:
        raise CommandError(what, args, -1, str(exc)) from None
    check_stopping()  # killed by stop_children(): that is the reason, not its exit status
    output = "".join(lines)
    if returncode != 0:
        raise CommandError(what, args, returncode, output)
    return output


def _collect(proc: subprocess.Popen[str], lines: list[str], progress: Callable[[str], bool] | None) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if progress is None or not progress(line.strip()):
            lines.append(line)
        if _verbose[0]:
            print(f"   | {line}", end="", file=sys.stderr, flush=True)


@functools.cache
def uv_bin() -> str:
    """The uv executable installed with this package (never a different one on PATH).

    Cached, and first called on the main thread: uv's lookup goes through sysconfig, whose
    first-time initialisation is not thread-safe (parallel tasks saw EXE as None).
    """
    return str(uv.find_uv_bin())


def last_words(errors: IO[bytes]) -> str | None:
    """The last non-blank line a child wrote to `errors` (its stderr, a file), if any."""
    errors.seek(0)
    said = [line for line in errors.read().decode("utf-8", "replace").splitlines() if line.strip()]
    return said[-1].strip() if said else None


#: Said after a postinstall (or its byte-compiling) ran out of time.
POSTINSTALL_TIMEOUT_HINT = "; VENVSTACKS_POSTINSTALL_TIMEOUT gives it longer"


def timed_out(what: str, timeout: float, hint: str = "") -> VenvStacksError:
    """The error for a step stopped after `timeout` seconds (`hint`: what gives it longer)."""
    return VenvStacksError(f"{what} did not finish within {timeout:g} s and was stopped{hint}")


def postinstall_timeout() -> float:
    """How long a layer's postinstall.py may run (it rewrites a few small files)."""
    text = os.environ.get("VENVSTACKS_POSTINSTALL_TIMEOUT", "").strip()
    if not text:
        return POSTINSTALL_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise VenvStacksError(f"VENVSTACKS_POSTINSTALL_TIMEOUT={text!r} is not a number of seconds > 0")
    return value


def run_postinstall_script(what: str, cmd: Sequence[str | Path]) -> str:
    """Run a postinstall.py: one that never returns must not hang deploy or export."""
    limit = postinstall_timeout()
    return run(what, cmd, timeout=limit, timeout_hint=POSTINSTALL_TIMEOUT_HINT)


# --- stopping: SIGTERM and SIGHUP are Ctrl-C ----------------------------------------------
#
# Every tool runs in its own process group, so one signal reaches it and whatever it started
# (uv's workers, postinstall's compile workers). A Ctrl-C on a terminal no longer reaches
# them by itself: whoever catches the interrupt calls stop_children(), as for SIGTERM.


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: the run unwinds as on Ctrl-C and exits with 128 + signo."""

    def __init__(self, signo: int) -> None:
        super().__init__(signo)
        self.signo = signo

    @property
    def exit_status(self) -> int:
        return 128 + self.signo


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
STOP_GRACE = 5.0  # seconds a stopped tool gets to exit on SIGTERM before SIGKILL

_children: set[subprocess.Popen[str]] = set()
_children_lock = threading.Lock()
_stopping: list[BaseException] = []  # the interrupt that stops this run, once there is one
_cleanups: list[Callable[[], None]] = []


def exit_status(interrupt: KeyboardInterrupt) -> int:
    """128 + the signal's number: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP."""
    return interrupt.exit_status if isinstance(interrupt, Stopped) else 128 + signal.SIGINT


def stop_on_signals() -> None:
    """Make SIGTERM and SIGHUP raise `Stopped` in the main thread, as SIGINT raises
    KeyboardInterrupt. Later signals while stopping are ignored: cleanup must not be cut."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signo in (signal.SIGINT, *STOP_SIGNALS):
        signal.signal(signo, _on_signal)


def _on_signal(signo: int, frame: FrameType | None) -> None:
    if _stopping:
        return
    interrupt = KeyboardInterrupt() if signo == signal.SIGINT else Stopped(signo)
    _stopping.append(interrupt)
    raise interrupt


def check_stopping() -> None:
    """Raise the run's interrupt in any thread once the run is stopping (long loops call it)."""
    if _stopping:
        raise _stopping[0]


def on_stop(cleanup: Callable[[], None]) -> None:
    """Register what stop_children() runs after the tools are gone (temporary files)."""
    _cleanups.append(cleanup)


def stop_children() -> None:
    """Stop every running tool with its whole process group, wait for them, then run the
    registered cleanups. Idempotent; the build-folder lock is released only after it."""
    if not _stopping:
        _stopping.append(KeyboardInterrupt())
    with _children_lock:
        running = list(_children)
    for proc in running:
        _signal_group(proc, signal.SIGTERM)
    for proc in running:
        stop_group(proc, grace=STOP_GRACE)
    for cleanup in _cleanups:
        cleanup()


def stop_group(proc: subprocess.Popen[Any], grace: float) -> None:
    """End ``proc`` and every process of its group: SIGTERM, ``grace`` seconds, SIGKILL.

    The group is killed again once ``proc`` has exited: its own children (compile workers)
    may outlive it otherwise, owned by no one.
    """
    if grace > 0:
        _signal_group(proc, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    _signal_group(proc, signal.SIGKILL)
    proc.wait()
    _signal_group(proc, signal.SIGKILL)


def _signal_group(proc: subprocess.Popen[Any], signo: int) -> None:
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signo)
        elif signo != signal.SIGTERM:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already


class _Child(subprocess.Popen[str]):
    """A tool in its own process group, known to stop_children() while it runs; stopped with
    its group if this thread is interrupted while waiting for it."""

    def __init__(self, args: list[str], cwd: Path | None, env: Mapping[str, str]) -> None:
        super().__init__(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,  # in its own group, reading the terminal would stop it
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            process_group=0 if os.name == "posix" else None,
        )
        with _children_lock:
            _children.add(self)

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        try:
            if isinstance(value, BaseException) and not isinstance(value, Exception):
                stop_group(self, grace=STOP_GRACE)  # Ctrl-C, SIGTERM: not left running
            super().__exit__(kind, value, tb)  # type: ignore[arg-type]
        finally:
            with _children_lock:
                _children.discard(self)
