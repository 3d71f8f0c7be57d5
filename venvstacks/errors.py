"""Errors a user can cause: each carries a one-line message meant for the user."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


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
