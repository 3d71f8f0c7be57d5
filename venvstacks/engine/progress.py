"""Saying what a long step is doing: the notes steps leave, and a heartbeat that prints them.

A running task stays silent for its first ~2 s; after that, every ~5 s, one line on stderr
says how long it has run and the last note its step left (`47% of 33 MB archived`), or
that it is still running. Steps leave notes with `note(layer, text)` from any thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from venvstacks.console import EVERY, FIRST_AFTER, say
from venvstacks.engine.taskkind import TaskName

__all__ = ["EVERY", "FIRST_AFTER", "Heartbeat", "note"]

_lock = threading.Lock()
_notes: dict[str, str] = {}  # layer build name -> the latest note of its running step


def note(layer: str, text: str) -> None:
    with _lock:
        _notes[layer] = text


def _take_note(layer: str) -> str | None:
    with _lock:
        return _notes.get(layer)


def _drop_note(layer: str) -> None:
    with _lock:
        _notes.pop(layer, None)


def _layer_of(task: str) -> str:
    name = TaskName.parse(task)
    return task if name is None else name.layer


@dataclass
class _Running:
    """A long task: when it started and when its next progress line is due."""

    started: float
    next_line: float


class Heartbeat:
    """Tracks running tasks; `tick(now)` returns the lines due (the thread prints them)."""

    def __init__(self, write: Callable[[str], None] | None = None) -> None:
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._write = write or say
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def started(self, task: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._running[task] = _Running(now, now + FIRST_AFTER)
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat, name="venvstacks-heartbeat", daemon=True)
            self._thread.start()

    def finished(self, task: str) -> None:
        with self._lock:
            self._running.pop(task, None)
        _drop_note(_layer_of(task))

    def tick(self, now: float) -> list[str]:
        lines = []
        with self._lock:
            for task, run in self._running.items():
                if now < run.next_line:
                    continue
                run.next_line = now + EVERY
                what = _take_note(_layer_of(task)) or "still running"
                lines.append(f"   {task}: {what} ({now - run.started:.0f}s)")
        return lines

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(0.5):
            for line in self.tick(time.monotonic()):
                self._write(line)
