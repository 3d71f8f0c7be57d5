"""What the compile pools count: each layer's job (its chunks, its time limit) and the
progress of all of them."""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field


@dataclass
class Progress:
    files: int = 0
    done: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, files: int = 0, done: int = 0) -> None:
        with self.lock:
            self.files += files
            self.done += done


@dataclass
class Job:
    """One layer's files, sent in chunks; done once every chunk is and no more will come."""

    layer: str  # the install target whose files these are, for messages
    chunks_left: int = 0
    sealed: bool = False  # no more files will be added
    done: Future[None] = field(default_factory=Future)
    lock: threading.Lock = field(default_factory=threading.Lock)
    started: float | None = None  # time.monotonic() when its first chunk reached a worker

    def time_left(self, limit: float) -> float:
        """Seconds left of ``limit``, whose clock starts at the first call."""
        now = time.monotonic()
        with self.lock:
            if self.started is None:
                self.started = now
            return max(0.0, self.started + limit - now)

    def add_chunks(self, count: int) -> None:
        with self.lock:
            self.chunks_left += count

    def chunk_done(self) -> None:
        with self.lock:
            self.chunks_left -= 1
        self._settle()

    def seal(self) -> None:
        with self.lock:
            self.sealed = True
        self._settle()

    def _settle(self) -> None:
        with self.lock:
            finished = self.sealed and self.chunks_left == 0
        if finished and not self.done.done():
            with contextlib.suppress(Exception):  # failed meanwhile: its error stays
                self.done.set_result(None)

    def fail(self, error: BaseException) -> None:
        with self.lock, contextlib.suppress(Exception):
            if not self.done.done():
                self.done.set_exception(error)
