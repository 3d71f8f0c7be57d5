"""Notes on stderr that stay one line each when several threads write at once."""

from __future__ import annotations

import sys


def say(line: str) -> None:
    """Write `line` and its newline to stderr in one call.

    `print(line, file=sys.stderr)` writes the text and the newline separately, and stderr
    passes each write straight to the file: two threads (parallel tasks, or deploy unpacking
    layers side by side) then produced `...from a.tar.xzDeploying b from b.tar.xz`.
    """
    sys.stderr.write(f"{line}\n")
    sys.stderr.flush()
