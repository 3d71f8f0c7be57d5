"""Byte-compiling every deployed layer in one set of worker processes per Python.

``postinstall.py`` byte-compiles its layer's ``lib/`` with ``compileall`` and a process pool
of its own, started only once that layer's turn comes. Deploy instead keeps one pool of
long-lived workers per base Python (pycs must come from the layer's own CPython X.Y): each
layer's files go to it in small chunks as soon as the layer is unpacked, so both cores stay
busy to the end and the runtime's standard library no longer holds up the layers above it.

Each worker runs ``python -X utf8 -I -S -B`` (as deploy runs ``postinstall.py``, without
``site``) and writes, for every file, the pyc ``compileall.compile_file(path, quiet=2)``
writes (:mod:`compileworker`), which is what ``compileall.compile_dir`` calls for each file
it lists (:func:`compileworker.library_sources` lists the same files). ``missing_only`` compiles only files
without a pyc for that Python, as a ``--bytecode`` layer's ``postinstall.py`` does.

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
import os
import queue
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from venvstacks.errors import VenvStacksError
from venvstacks.ship.compilejobs import Job, Progress
from venvstacks.ship.compileworker import DONE, READY, WORKER, Watchdog, request
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


@dataclass(frozen=True)
class _Request:
    data: bytes  # compileworker.request()
    files: int
    job: Job


class _Pool:
    """``workers`` processes of one Python, each fed by a thread of this process."""

    def __init__(
        self,
        python: str,
        slots: threading.Semaphore,
        progress: Progress,
        limit: float,
    ) -> None:
        self.python = python
        self._limit = limit
        self._progress = progress
        self.requests: queue.Queue[_Request | None] = queue.Queue()
        self.broken: VenvStacksError | None = None
        self._slots = slots
        self._watchdog = Watchdog()
        self._workers: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []
        self._threads: list[threading.Thread] = []
        self.chunks = 0  # submitted so far
        self._lock = threading.RLock()
        self._closed = False

    def submit(
        self, files: Sequence[str], job: Job, missing_only: bool, shown_as: tuple[str, str] | None
    ) -> None:
        """Queue ``files`` of ``job`` in chunks (``request``'s ``shown_as``)."""
        chunks = [list(files[i : i + CHUNK]) for i in range(0, len(files), CHUNK)]
        job.add_chunks(len(chunks))
        for chunk in chunks:
            data = request(chunk, missing_only=missing_only, shown_as=shown_as)
            self.requests.put(_Request(data, len(chunk), job))
            self.chunks += 1

    def grow(self, workers: int) -> None:
        """Have ``workers`` workers, each known to close() as soon as it runs (an interrupt
        may come while the others start)."""
        with self._lock:
            while len(self._workers) < workers and self.broken is None and not self._closed:
                try:
                    self._workers.append(self._start_worker())
                except OSError as exc:
                    self.broken = VenvStacksError(f"byte-compiling with {self.python} failed: {exc}")
                    self.fail(self.broken)
                    return
                thread = threading.Thread(
                    target=self._serve, args=self._workers[-1], name="compile", daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def _start_worker(self) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
        # Its stderr, read after a failure; closed with the worker in close().
        errors = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            return self._popen(errors), errors
        except BaseException:
            errors.close()
            raise

    def _popen(self, errors: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            # -S: no site (nothing of it is needed). -B: no pyc of its own start-up is written
            # into the layer (it may be stopped and the layer removed at any time).
            [self.python, "-X", "utf8", "-I", "-S", "-B", "-c", WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=tool_env(),
            # Its own group, as every tool: a Ctrl-C reaches deploy, which stops it.
            process_group=0 if os.name == "posix" else None,
        )

    def _serve(self, proc: subprocess.Popen[bytes], errors: IO[bytes]) -> None:
        ready = False  # read with the first request, under its time limit
        while (req := self.requests.get()) is not None:
            if self.broken is not None:
                req.job.fail(self.broken)
                continue
            with self._slots:
                out_of_time = self._watchdog.arm(proc, req.job.time_left(self._limit))
                try:
                    ready = ready or _started(proc)
                    answered = ready and _ask(proc, req.data)
                finally:
                    self._watchdog.disarm(proc)
            if out_of_time.is_set():
                self.fail(_out_of_time(req.job, self._limit), req.job)
            elif not answered:
                self.fail(self._died(proc, errors), req.job)
            else:
                self._progress.add(done=req.files)
                req.job.chunk_done()

    def _died(self, proc: subprocess.Popen[bytes], errors: IO[bytes]) -> VenvStacksError:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=STOP_GRACE)  # its exit status, once its pipes are closed
        why = last_words(errors) or f"exit status {proc.poll()}"
        return VenvStacksError(f"byte-compiling with {self.python} failed: {why}")

    def fail(self, error: VenvStacksError, job: Job | None = None) -> None:
        """Fail ``job`` and every queued one: nothing more is done here."""
        self.broken = self.broken or error
        if job is not None:
            job.fail(self.broken)
        while True:
            try:
                req = self.requests.get_nowait()
            except queue.Empty:
                return
            if req is None:
                self.requests.put(None)  # for the thread it was meant for
                return
            req.job.fail(self.broken)

    def close(self, abandon: bool) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if abandon:  # stopped mid-chunk: a pyc is written to a temporary name, then renamed
            for proc, _ in self._workers:
                stop_group(proc, grace=0)
        for _ in self._threads:
            self.requests.put(None)  # after what is queued
        for thread in self._threads:
            thread.join()
        self._watchdog.close()
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


def _started(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the worker says it runs (False: it ended first)."""
    assert proc.stdout is not None
    try:
        return proc.stdout.readline() == READY
    except OSError:
        return False


def _ask(proc: subprocess.Popen[bytes], data: bytes) -> bool:
    """Send one request; whether the worker answered (False: it ended first)."""
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(data)
        proc.stdin.flush()
        return proc.stdout.readline() == DONE
    except OSError:
        return False


def _out_of_time(job: Job, limit: float) -> VenvStacksError:
    return timed_out(f"postinstall of {job.layer} (byte-compiling)", limit, POSTINSTALL_TIMEOUT_HINT)


class CompilePools:
    """Pools of compile workers, one per Python, sharing ``slots`` running chunks; each
    layer's compiling may take ``limit`` seconds (:func:`tools.postinstall_timeout`)."""

    def __init__(self, workers: int, slots: int | None = None, limit: float = POSTINSTALL_TIMEOUT) -> None:
        self._workers = max(1, workers)
        self._limit = limit
        self._slots = threading.Semaphore(slots or self._workers)
        self._pools: dict[str, _Pool] = {}
        self._progress = Progress()
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> CompilePools:
        return self

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        # After an error or an interrupt, queued work is abandoned: the workers are stopped.
        self.close(abandon=value is not None)

    def compile(
        self,
        python: Path,
        files: Sequence[str],
        *,
        layer: str,
        missing_only: bool = False,
        shown_as: tuple[Path, Path] | None = None,
    ) -> Future[None]:
        """Compile ``files`` (of ``layer``, for messages) with ``python``; the future is
        done once all of them are. ``shown_as``: (``staging``, ``final``): files below the
        folder ``staging`` are compiled under their names below ``final``, where they will
        be imported from."""
        job = Job(layer)
        names = (os.path.join(shown_as[0], ""), os.path.join(shown_as[1], "")) if shown_as else None
        self._progress.add(files=len(files))
        with self._lock:
            if self._closed:
                raise VenvStacksError("byte-compiling was stopped")
            pool = self._pools.get(str(python))
            if pool is None:
                pool = _Pool(str(python), self._slots, self._progress, self._limit)
                self._pools[str(python)] = pool
            pool.submit(files, job, missing_only, names)
            if files:
                # No more workers than chunks so far: a few files (a --bytecode layer's)
                # take one Python start, not one per core.
                pool.grow(min(self._workers, pool.chunks))
        job.seal()
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
