"""External tools: the one helper every subprocess goes through, and finding our uv."""

from __future__ import annotations

import functools
import os
import subprocess
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

    With `timeout`, a command still running after that many seconds is killed and reported
    in one line (`timeout_hint` says how to give it longer).
    """
    args = [str(c) for c in cmd]
    try:
        proc = subprocess.run(
            args,
            cwd=cwd,
            env=tool_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise VenvStacksError(
            f"{what} did not finish within {timeout:g} s and was stopped{timeout_hint}"
        ) from None
    except OSError as exc:
        raise CommandError(what, args, -1, str(exc)) from None
    if proc.returncode != 0:
        raise CommandError(what, args, proc.returncode, proc.stdout)
    return proc.stdout


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
