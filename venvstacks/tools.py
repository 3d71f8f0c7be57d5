"""External tools: the one helper every subprocess goes through, and finding our uv."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from venvstacks.errors import CommandError, VenvStacksError

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
) -> str:
    """Run a command, capture its output, raise CommandError on failure.

    With `-v` the output is also shown as it comes, each line indented by `   | `. With
    `timeout`, a command still running after that many seconds is killed and reported in
    one line (`timeout_hint` says how to give it longer).
    """
    args = [str(c) for c in cmd]
    if _verbose[0] and args[0] == uv_bin():
        # uv is always called with --quiet (its messages are noise in a failure's last
        # lines); -v asks for them, so leave it out here, in the one place uv runs through.
        args = [a for a in args if a != "--quiet"]
    lines: list[str] = []
    try:
        with subprocess.Popen(
            args,
            cwd=cwd,
            env=tool_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as proc:
            # A thread reads the output, so the wait below can time out meanwhile.
            reader = threading.Thread(target=_collect, args=(proc, lines), daemon=True)
            reader.start()
            try:
                returncode = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                reader.join(timeout=5)  # a grandchild may hold the pipe open
                raise VenvStacksError(
                    f"{what} did not finish within {timeout:g} s and was stopped{timeout_hint}"
                ) from None
            reader.join()
    except OSError as exc:
        raise CommandError(what, args, -1, str(exc)) from None
    output = "".join(lines)
    if returncode != 0:
        raise CommandError(what, args, returncode, output)
    return output


def _collect(proc: subprocess.Popen[str], lines: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if _verbose[0]:
            print(f"   | {line}", end="", file=sys.stderr, flush=True)


@functools.cache
def uv_bin() -> str:
    """The uv executable installed with this package (never a different one on PATH).

    Cached, and first called on the main thread: uv's lookup goes through sysconfig, whose
    first-time initialisation is not thread-safe (parallel tasks saw EXE as None).
    """
    from uv import find_uv_bin

    return str(find_uv_bin())


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
    return run(what, cmd, timeout=limit, timeout_hint="; VENVSTACKS_POSTINSTALL_TIMEOUT gives it longer")
