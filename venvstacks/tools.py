"""External tools: the one helper every subprocess goes through, and finding our uv."""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from venvstacks.errors import CommandError


def tool_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for external tools: uv must never fetch a Python by itself."""
    env = dict(os.environ)
    env["UV_PYTHON_DOWNLOADS"] = "never"
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
) -> str:
    """Run a command, capture its output, raise CommandError on failure."""
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
        )
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
