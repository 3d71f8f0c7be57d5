"""Notes on stderr that stay one line each when several threads write at once."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import TracebackType

# What Ctrl-C leaves on stderr, from the command and from plain doit alike.
INTERRUPTED = "interrupted: finished layers are recorded; rerun to continue"


def say(line: str) -> None:
    """Write `line` and its newline to stderr in one call.

    `print(line, file=sys.stderr)` writes the text and the newline separately, and stderr
    passes each write straight to the file: two threads (parallel tasks, or deploy unpacking
    layers side by side) then produced `...from a.tar.xzDeploying b from b.tar.xz`.
    """
    sys.stderr.write(f"{line}\n")
    sys.stderr.flush()


def interrupt_in_one_line() -> None:
    """Make an uncaught KeyboardInterrupt print INTERRUPTED instead of its traceback.

    For plain `doit`, where Ctrl-C leaves doit's own `main()` (the command catches it
    itself). doit has recorded the finished tasks by then, so only the traceback goes: Python
    still exits as killed by SIGINT (status 130 in a shell).
    """
    if not isinstance(sys.excepthook, _OneLineInterrupt):
        sys.excepthook = _OneLineInterrupt(sys.excepthook)


ExceptHook = Callable[[type[BaseException], BaseException, TracebackType | None], object]


class _OneLineInterrupt:
    """A `sys.excepthook`: INTERRUPTED for KeyboardInterrupt, the previous hook for the rest."""

    def __init__(self, previous: ExceptHook) -> None:
        self.previous = previous

    def __call__(self, kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            say(INTERRUPTED)
        else:
            self.previous(kind, value, tb)
