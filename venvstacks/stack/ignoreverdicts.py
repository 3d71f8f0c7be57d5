"""What `.gitignore` rules decided about module entries, remembered between runs.

Listing a module folder (`modfiles.module_files`) asks, for each entry, whether the
`.gitignore` files from its ignore root down to its folder ignore it. Answering needs
pathspec (its import and the patterns' regexes are a good part of a no-op run's time),
yet the answer is a pure function of the entry's path relative to the ignore root, whether
it is a folder, and the text of each `.gitignore` on the way (or its absence). So each
answer is kept under exactly that key: an edited, added or removed `.gitignore` changes the
key, and a new entry has no answer yet, so both are decided afresh. The listing itself is
always walked and checked again; only the verdicts are remembered.

The CLI and `dodo.py` keep them in the build folder (`remember_in`), read once and written
(atomically, only if something new was decided) when the process ends. Without that,
nothing is remembered and every verdict is decided by pathspec, as before.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import threading
from pathlib import Path

from venvstacks.fsutil import read_json_object, write_atomic

# Verdicts kept at most; beyond that the oldest go first (this run's are written last).
MAX_VERDICTS = 20_000
_VERSION = 1


def text_digest(text: str | None) -> str:
    """How a `.gitignore` (None: there is none) appears in a key."""
    return "-" if text is None else hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]


def key(rel: str, is_dir: bool, digests: list[str]) -> str:
    """An entry (posix path relative to the ignore root) with the `.gitignore` digests of
    every folder from that root down to its own folder, shallowest first."""
    return f"{rel}{'/' if is_dir else ''}\0{','.join(digests)}"


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
