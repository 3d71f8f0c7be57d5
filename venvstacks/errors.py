"""Errors a user can cause: each carries a one-line message meant for the user."""

from __future__ import annotations

import errno
from collections.abc import Sequence
from pathlib import Path


class VenvStacksError(Exception):
    """An error with a one-line message meant for the user (no traceback is shown)."""

    exit_code = 1


class SpecError(VenvStacksError):
    """The stack file is invalid. Names the file, the layer and the field at fault."""

    exit_code = 2

    def __init__(self, path: Path, layer: str | None, field: str | None, message: str) -> None:
        super().__init__(f"{located(path.name, layer, field)}: {message}")
        self.path = path
        self.layer = layer
        self.field = field


def located(file: str, layer: str | None, field: str | None) -> str:
    """Where a bad value is, as every message about a file says it: `file: layer 'x': field 'y'`."""
    where = [file]
    if layer:
        where.append(f"layer {layer!r}")
    if field:
        where.append(f"field {field!r}")
    return ": ".join(where)


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
