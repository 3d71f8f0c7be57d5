"""External tools: the one helper every subprocess goes through, and finding our uv."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
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
) -> str:
    """Run a command, capture its output, raise CommandError on failure.

    With `-v` the output is also shown as it comes, each line indented by `   | `.
    """
    args = [str(c) for c in cmd]
    if _verbose[0] and args[0] == uv_bin():
        # uv is always called with --quiet (its messages are noise in a failure's last
        # lines); -v asks for them, so leave it out here, in the one place uv runs through.
        args = [a for a in args if a != "--quiet"]
    try:
        with subprocess.Popen(
            args,
            cwd=cwd,
            env=tool_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as proc:
            assert proc.stdout is not None
            lines = []
            for line in proc.stdout:
                lines.append(line)
                if _verbose[0]:
                    print(f"   | {line}", end="", file=sys.stderr, flush=True)
            returncode = proc.wait()
    except OSError as exc:
        raise CommandError(what, args, -1, str(exc)) from None
    output = "".join(lines)
    if returncode != 0:
        raise CommandError(what, args, returncode, output)
    return output


@functools.cache
def uv_bin() -> str:
    """The uv executable installed with this package (never a different one on PATH).

    Cached, and first called on the main thread: uv's lookup goes through sysconfig, whose
    first-time initialisation is not thread-safe (parallel tasks saw EXE as None).
    """
    from uv import find_uv_bin

    return str(find_uv_bin())
