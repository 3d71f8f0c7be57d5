"""Byte-compiling every deployed layer in one set of worker processes per Python.

``postinstall.py`` byte-compiles its layer's ``lib/`` with ``compileall`` and a process pool
of its own, started only once that layer's turn comes. Deploy instead keeps one pool of
long-lived workers per base Python (pycs must come from the layer's own CPython X.Y): each
layer's files go to it in small chunks as soon as the layer is unpacked, so both cores stay
busy to the end and the runtime's standard library no longer holds up the layers above it.

Each worker runs ``python -X utf8 -I`` (as deploy runs ``postinstall.py``) and calls
``compileall.compile_file(path, quiet=2)`` on every file, which is what
``compileall.compile_dir`` calls for each file it lists (:func:`library_sources` lists the
same files): the pycs are the same (invalidation mode and optimisation level are the
interpreter's defaults in both). ``missing_only`` compiles only files without a pyc for that
Python, as a ``--bytecode`` layer's ``postinstall.py`` does.

At most ``slots`` chunks compile at once over all pools (one per core), whatever the number
of Pythons. :meth:`CompilePools.close` stops every worker: after an error or Ctrl-C,
whatever is still queued is abandoned and the jobs waiting for it fail.

A layer's compiling gets the time its ``postinstall.py`` would get
(``VENVSTACKS_POSTINSTALL_TIMEOUT``), counted from when its first files reach a worker (not
while it waits behind other layers): a worker still busy with it then is stopped, and its
pool fails, as a ``postinstall.py`` out of time fails its layer.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from venvstacks.errors import VenvStacksError
from venvstacks.tools import (
    POSTINSTALL_TIMEOUT,
    POSTINSTALL_TIMEOUT_HINT,
    STOP_GRACE,
    last_words,
    stop_group,
    timed_out,
    tool_env,
)

CHUNK = 16  # files per request: small enough to share the last files of a layer out

# Run by each worker (any Python >= 3.8, standard library only): one JSON line per chunk
# on stdin, one line back when it is done. Anything compile() prints (warnings) goes to
# stderr, never into the answers.
_WORKER = """
import compileall, importlib.util, json, os, sys
answers = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
for line in sys.stdin:
    request = json.loads(line)
    for path in request["files"]:
        if request["missing_only"] and os.path.exists(importlib.util.cache_from_source(path)):
            continue
        compileall.compile_file(path, quiet=2)
    answers.write("done\\n")
    answers.flush()
"""


def library_sources(lib_dir: Path) -> list[str]:
    """The ``.py`` files ``compileall.compile_dir(lib_dir)`` compiles, in its order: every
    name below ``lib_dir`` except ``__pycache__``, into folders but not through folder
    symlinks."""
    found: list[str] = []
    _walk(str(lib_dir), found)
    return found


def _walk(folder: str, found: list[str]) -> None:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return  # compileall skips a folder it cannot list
    for entry in entries:
        if entry.name == "__pycache__":
            continue
        if not entry.is_dir():
            if entry.name.endswith(".py"):
                found.append(entry.path)
        elif not entry.is_symlink():
            _walk(entry.path, found)


@dataclass
class _Progress:
    files: int = 0
    done: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, files: int = 0, done: int = 0) -> None:
        with self.lock:
            self.files += files
            self.done += done


@dataclass
class _Job:
    chunks_left: int
    layer: str  # the install target whose files these are, for messages
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

    def chunk_done(self) -> None:
        with self.lock:
            self.chunks_left -= 1
            finished = self.chunks_left == 0
        if finished and not self.done.done():
            self.done.set_result(None)

    def fail(self, error: BaseException) -> None:
        with self.lock:
            if not self.done.done():
                self.done.set_exception(error)


_Request = tuple[str, int, _Job]  # a JSON line, its number of files, and its job


class _Pool:
    """``workers`` processes of one Python, each fed by a thread of this process."""

    def __init__(self, python: str, slots: threading.Semaphore, progress: _Progress, limit: float) -> None:
        self.python = python
        self._limit = limit
        self._progress = progress
        self.requests: queue.Queue[_Request | None] = queue.Queue()
        self.broken: VenvStacksError | None = None
        self._slots = slots
        self._workers: list[tuple[subprocess.Popen[str], IO[bytes]]] = []
        self._threads: list[threading.Thread] = []
        self.chunks = 0  # submitted so far

    def grow(self, workers: int) -> None:
        """Have ``workers`` workers, each known to close() as soon as it runs (an interrupt
        may come while the others start)."""
        while len(self._workers) < workers and self.broken is None:
            try:
                self._workers.append(self._start_worker())
            except OSError as exc:
                self.broken = VenvStacksError(f"byte-compiling with {self.python} failed: {exc}")
                self.fail(self.broken)
                return
            thread = threading.Thread(target=self._serve, args=self._workers[-1], name="compile", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _start_worker(self) -> tuple[subprocess.Popen[str], IO[bytes]]:
        # Its stderr, read after a failure; closed with the worker in close().
        errors = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            return self._popen(errors), errors
        except BaseException:
            errors.close()
            raise

    def _popen(self, errors: IO[bytes]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            # -B: importing its own modules writes no pyc into the layer (it may be stopped
            # and the layer removed at any time); every pyc comes from compile_file.
            [self.python, "-X", "utf8", "-I", "-B", "-c", _WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=tool_env(),
            text=True,
            # Its own group, as every tool: a Ctrl-C reaches deploy, which stops it.
            process_group=0 if os.name == "posix" else None,
        )

    def _serve(self, proc: subprocess.Popen[str], errors: IO[bytes]) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        while (request := self.requests.get()) is not None:
            line, count, job = request
            if self.broken is not None:
                job.fail(self.broken)
                continue
            with self._slots:
                out_of_time = threading.Event()
                timer = threading.Timer(job.time_left(self._limit), _stop_worker, (proc, out_of_time))
                timer.start()
                try:
                    proc.stdin.write(line)
                    proc.stdin.flush()
                    answer = proc.stdout.readline()
                except OSError:
                    answer = ""
                finally:
                    timer.cancel()
                    timer.join()
            if out_of_time.is_set():
                self.fail(_out_of_time(job, self._limit), job)
                continue
            if answer == "done\n":
                self._progress.add(done=count)
                job.chunk_done()
                continue
            why = last_words(errors) or f"exit status {proc.poll()}"
            self.fail(VenvStacksError(f"byte-compiling with {self.python} failed: {why}"), job)

    def fail(self, error: VenvStacksError, job: _Job | None = None) -> None:
        """Fail ``job`` and every queued one: nothing more is done here."""
        self.broken = self.broken or error
        if job is not None:
            job.fail(self.broken)
        while True:
            try:
                request = self.requests.get_nowait()
            except queue.Empty:
                return
            if request is None:
                self.requests.put(None)  # for the thread it was meant for
                return
            request[2].fail(self.broken)

    def close(self, abandon: bool) -> None:
        if abandon:  # stopped mid-chunk: a pyc is written to a temporary name, then renamed
            for proc, _ in self._workers:
                stop_group(proc, grace=0)
        for _ in self._threads:
            self.requests.put(None)  # after what is queued
        for thread in self._threads:
            thread.join()
        for proc, errors in self._workers:
            with contextlib.suppress(OSError):  # a worker that died leaves a broken pipe
                if proc.stdin is not None:
                    proc.stdin.close()  # a worker ends when its requests do
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=STOP_GRACE)
            stop_group(proc, grace=0)
            if proc.stdout is not None:
                proc.stdout.close()
            errors.close()


def _stop_worker(proc: subprocess.Popen[str], out_of_time: threading.Event) -> None:
    out_of_time.set()  # before the worker ends: the thread reading its answer must know why
    stop_group(proc, grace=0)


def _out_of_time(job: _Job, limit: float) -> VenvStacksError:
    return timed_out(f"postinstall of {job.layer} (byte-compiling)", limit, POSTINSTALL_TIMEOUT_HINT)


class CompilePools:
    """Pools of compile workers, one per Python, sharing ``slots`` running chunks; each
    layer's compiling may take ``limit`` seconds (:func:`tools.postinstall_timeout`)."""

    def __init__(self, workers: int, slots: int | None = None, limit: float = POSTINSTALL_TIMEOUT) -> None:
        self._workers = max(1, workers)
        self._limit = limit
        self._slots = threading.Semaphore(slots or self._workers)
        self._pools: dict[str, _Pool] = {}
        self._progress = _Progress()
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> CompilePools:
        return self

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        # After an error or an interrupt, queued work is abandoned: the workers are stopped.
        self.close(abandon=value is not None)

    def compile(
        self, python: Path, files: Sequence[str], *, layer: str, missing_only: bool = False
    ) -> Future[None]:
        """Compile ``files`` (of ``layer``, for messages) with ``python``; the future is
        done once all of them are."""
        job = _Job(chunks_left=(len(files) + CHUNK - 1) // CHUNK, layer=layer)
        if not files:
            job.done.set_result(None)
            return job.done
        self._progress.add(files=len(files))
        with self._lock:
            if self._closed:
                raise VenvStacksError("byte-compiling was stopped")
            pool = self._pools.get(str(python))
            if pool is None:
                pool = _Pool(str(python), self._slots, self._progress, self._limit)
                self._pools[str(python)] = pool
            for chunk in _chunks(files):
                line = json.dumps({"files": chunk, "missing_only": missing_only}) + "\n"
                pool.requests.put((line, len(chunk), job))
                pool.chunks += 1
            # No more workers than chunks so far: a few files (a --bytecode layer's) take
            # one Python start, not one per core.
            pool.grow(min(self._workers, pool.chunks))
        if pool.broken is not None:
            job.fail(pool.broken)
        return job.done

    def progress(self) -> str:
        """How far the compiling has got, for a progress line."""
        return f"{self._progress.done} of {self._progress.files} files compiled"

    def close(self, *, abandon: bool = False) -> None:
        """Stop every worker: after their queued work, or (``abandon``) at once."""
        with self._lock:
            self._closed = True
            pools = list(self._pools.values())
        for pool in pools:
            if abandon:
                pool.fail(VenvStacksError("byte-compiling was stopped"))
            pool.close(abandon)


def _chunks(files: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(files), CHUNK):
        yield list(files[start : start + CHUNK])
