"""Errors a user can cause, and the one helper every subprocess goes through."""

from __future__ import annotations

import errno
import functools
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

UV_HTTP_TIMEOUT = "30"
POSTINSTALL_TIMEOUT = 600.0  # seconds; VENVSTACKS_POSTINSTALL_TIMEOUT overrides it


class VenvStacksError(Exception):
    """An error with a one-line message meant for the user (no traceback is shown)."""

    exit_code = 1


class SpecError(VenvStacksError):
    """The stack file is invalid. Names the file, the layer and the field at fault."""

    exit_code = 2

    def __init__(self, path: Path, layer: str | None, field: str | None, message: str) -> None:
        where = [path.name]
        if layer:
            where.append(f"layer {layer!r}")
        if field:
            where.append(f"field {field!r}")
        super().__init__(f"{': '.join(where)}: {message}")
        self.path = path
        self.layer = layer
        self.field = field


class CommandError(VenvStacksError):
    """An external tool failed; carries the command, its exit code and its own message."""

    def __init__(self, what: str, cmd: Sequence[str], returncode: int, output: str) -> None:
        tail = _last_meaningful_lines(output)
        super().__init__(f"{what} failed (exit {returncode}): {tail}")
        self.cmd = list(cmd)
        self.returncode = returncode
        self.output = output


def _last_meaningful_lines(output: str, limit: int = 6) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    # uv prints the real cause on its last lines; earlier ones are progress noise.
    return " | ".join(lines[-limit:]) if lines else "(no output)"


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


# OS errors a user's machine causes (not bugs): reported in one line naming the path.
USER_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG}
)
_HINTS = {
    errno.ENOSPC: "free some space there and run again (nothing half-written is kept)",
    errno.EDQUOT: "free some space there and run again (nothing half-written is kept)",
    errno.EROFS: "make it writable or choose another folder",
    errno.EACCES: "check its permissions or choose another folder",
    errno.EPERM: "check its permissions or choose another folder",
    errno.ENAMETOOLONG: "choose a shorter folder path",
}


def os_error_line(exc: OSError) -> str:
    """One line for an OSError a user can fix: the path, the reason, what to do."""
    where = exc.filename if exc.filename is not None else "a file"
    hint = _HINTS.get(exc.errno or 0, "")
    return f"{where}: {exc.strerror or exc}" + (f"; {hint}" if hint else "")
