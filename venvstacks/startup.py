"""The start of a venvstacks process: imported first by the `venvstacks` command and by
`venvstacks.dodo` (plain doit), for its one effect, below.

Python's cyclic garbage collector runs a young collection every 700 new objects, and
every tenth of those walks again all that survived before. While venvstacks and doit load,
that is dozens of collections over objects (modules, classes, functions) that live as
long as the process: about 5 ms of CPU of a 0.1 s no-op run, measured. So these processes
collect less often, as mypy does for the same reason: every 100,000 new objects, the
older generations after 50 of those each. A long build still collects; a garbage cycle
waits longer before it is freed (a few MB at most).
"""

from __future__ import annotations

import gc

#: The collector's thresholds in a venvstacks process (see the module's docstring).
GC_THRESHOLDS = (100_000, 50, 50)


def collect_less_often() -> None:
    """Raise the collector's thresholds to GC_THRESHOLDS, never lower them (the embedding
    program may have set higher ones)."""
    current = gc.get_threshold()
    gc.set_threshold(*(max(a, b) for a, b in zip(current, GC_THRESHOLDS, strict=True)))


collect_less_often()
