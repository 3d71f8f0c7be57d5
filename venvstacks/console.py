"""Notes on stderr that stay one line each when several threads write at once."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType

from venvstacks.tools import Stopped

# What Ctrl-C leaves on stderr, from the command and from plain doit alike.
INTERRUPTED = "interrupted: finished layers are recorded; rerun to continue"

# A long step stays silent for its first FIRST_AFTER seconds, then says how it is getting on
# every EVERY seconds: doit's tasks (engine/progress.py) and deploy's layers alike.
FIRST_AFTER = 2.0
EVERY = 5.0


def say(line: str) -> None:
    """Write `line` and its newline to stderr in one call.

    `print(line, file=sys.stderr)` writes the text and the newline separately, and stderr
    passes each write straight to the file: two threads (parallel tasks, or deploy unpacking
    layers side by side) then produced `...from a.tar.xzDeploying b from b.tar.xz`.
    """
    sys.stderr.write(f"{line}\n")
    sys.stderr.flush()


def interrupt_in_one_line(stop: Callable[[], None]) -> None:
    """Make an uncaught KeyboardInterrupt (Ctrl-C, or SIGTERM/SIGHUP as `Stopped`) call
    `stop` and print INTERRUPTED instead of its traceback.

    For plain `doit`, where the interrupt leaves doit's own `main()` (the command catches it
    itself). doit has recorded the finished tasks by then, so only the traceback goes: Python
    still exits as killed by the signal (status 128 + its number in a shell).
    """
    if not isinstance(sys.excepthook, _OneLineInterrupt):
        sys.excepthook = _OneLineInterrupt(sys.excepthook, stop)


ExceptHook = Callable[[type[BaseException], BaseException, TracebackType | None], object]


class _OneLineInterrupt:
    """A `sys.excepthook`: INTERRUPTED for KeyboardInterrupt, the previous hook for the rest."""

    def __init__(self, previous: ExceptHook, stop: Callable[[], None]) -> None:
        self.previous = previous
        self.stop = stop

    def __call__(self, kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if not issubclass(kind, KeyboardInterrupt):
            self.previous(kind, value, tb)
            return
        self.stop()
        say(INTERRUPTED)
        if isinstance(value, Stopped):
            # Python dies of SIGINT itself after an uncaught Ctrl-C; die of this one likewise.
            sys.stdout.flush()
            signal.signal(value.signo, signal.SIG_DFL)
            os.kill(os.getpid(), value.signo)


class Ticker:
    """While its `with` block runs: after FIRST_AFTER s, and then every EVERY s, one line
    `   <what()> (<seconds>s)` through ``write``. For one long step of its own (deploying a
    layer); doit's tasks share one heartbeat instead (engine/progress.py)."""

    def __init__(self, what: Callable[[], str], write: Callable[[str], None] = say) -> None:
        self._what, self._write = what, write
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="venvstacks-ticker", daemon=True)

    def __enter__(self) -> Ticker:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _tick(self) -> None:
        wait = FIRST_AFTER
        while not self._done.wait(wait):
            self._write(f"   {self._what()} ({time.monotonic() - self._started:.0f}s)")
            wait = EVERY
