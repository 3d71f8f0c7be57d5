"""Decisions that are a pure function of a key, remembered between runs in the build folder.

Two kinds are kept, each under a key that holds everything its answer depends on, so a key
seen before has the same answer, and anything new is decided afresh:

* what the `.gitignore` files decided about an entry of a module folder (`ignoreverdicts`:
  the entry's path and the text of every `.gitignore` above it); deciding needs pathspec;
* that a requirement string of the stack file is valid PEP 508 (`stack.fields`: the string
  and packaging's version); checking needs packaging's parser.

Loading either (and compiling its patterns) is a good part of a no-op run's time. The CLI
and `dodo.py` keep the verdicts in the build folder (`remember_in`), read once and written
(atomically, only if something new was decided) when the process ends. Without that,
nothing is remembered and every verdict is decided again, as before. Deleting the file is
safe.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import threading
from pathlib import Path

from venvstacks.fsutil import read_json_object, write_atomic

# Verdicts kept at most; beyond that the oldest go first (this run's are written last).
MAX_VERDICTS = 20_000
_VERSION = 1


class Verdicts:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._known: dict[str, bool] = {}
        self._used: dict[str, bool] = {}
        self._added = False
        if path is not None:
            data = read_json_object(path)
            verdicts = data.get("verdicts") if data.get("version") == _VERSION else None
            if isinstance(verdicts, dict):
                self._known = {k: v for k, v in verdicts.items() if isinstance(v, bool)}

    def get(self, entry_key: str) -> bool | None:
        with self._lock:
            verdict = self._known.get(entry_key)
            if verdict is not None:
                self._used[entry_key] = verdict
            return verdict

    def add(self, entry_key: str, verdict: bool) -> None:
        with self._lock:
            self._known[entry_key] = self._used[entry_key] = verdict
            self._added = True

    def save(self) -> None:
        """Write the verdicts if any is new, this run's last, into an existing folder only."""
        with self._lock:
            if self.path is None or not self._added or not self.path.parent.is_dir():
                return
            kept = {k: v for k, v in self._known.items() if k not in self._used} | self._used
            verdicts = dict(list(kept.items())[-MAX_VERDICTS:])
            self._added = False
        # A read-only or full build folder: the verdicts are decided again next time.
        with contextlib.suppress(OSError):
            write_atomic(self.path, json.dumps({"version": _VERSION, "verdicts": verdicts}))


_current = Verdicts()


def current() -> Verdicts:
    return _current


def remember_in(path: Path) -> None:
    """Keep this process's verdicts in `path` (read now, written at exit if any is new)."""
    global _current
    if _current.path == path:
        return
    _current.save()
    _current = Verdicts(path)
    if not _registered:
        _registered.append(True)
        atexit.register(lambda: _current.save())


_registered: list[bool] = []
