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
from venvstacks.ship.compileworker import READY, WORKER, Watchdog, read_answer, request
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
        early: _EarlyStart | None = None,
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
        self._early = early  # how to start a worker before python is there; None once one failed
        self._python_ready = early is None  # python can run (a runtime's: unpacked)
        self._want = 0  # workers asked for
        self._lost = 0  # early workers that never ran
        self._closed = False

    def submit(self, files: Sequence[str], job: Job, missing_only: bool) -> None:
        """Queue ``files`` of ``job`` in chunks."""
        chunks = [list(files[i : i + CHUNK]) for i in range(0, len(files), CHUNK)]
        job.add_chunks(len(chunks))
        for chunk in chunks:
            data = request(chunk, missing_only=missing_only, early=job.early)
            self.requests.put(_Request(data, len(chunk), job))
            self.chunks += 1

    def grow(self, workers: int) -> None:
        """Have ``workers`` workers, each known to close() as soon as it runs (an interrupt
        may come while the others start)."""
        with self._lock:
            self._want = max(self._want, workers)
            if not self._python_ready and self._early is None:
                return  # the early start failed: wait for python (python_ready)
            while len(self._workers) - self._lost < self._want and self.broken is None and not self._closed:
                early = not self._python_ready
                try:
                    self._workers.append(self._start_worker(early))
                except OSError as exc:
                    self.broken = VenvStacksError(f"byte-compiling with {self.python} failed: {exc}")
                    self.fail(self.broken)
                    return
                args = (*self._workers[-1], early)
                thread = threading.Thread(target=self._serve, args=args, name="compile", daemon=True)
                self._threads.append(thread)
                thread.start()

    def python_ready(self, python: str) -> None:
        """``python`` (the runtime's, unpacked) runs from now on: workers started from now on
        run it, as for any layer."""
        with self._lock:
            self.python = python
            self._python_ready = True
            self.grow(self._want)

    def _early_failed(self, req: _Request) -> None:
        """An early worker ended before it ran (what it needs was not unpacked yet): not an
        error; its request waits for a worker started once python is ready."""
        with self._lock:
            self._early = None
            self._lost += 1
            self.requests.put(req)
            self.grow(self._want)

    def _start_worker(self, early: bool) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
        # Its stderr, read after a failure; closed with the worker in close().
        errors = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            if early and self._early is not None:
                return self._popen(errors, [self._early.python, *self._early.flags], self._early.env), errors
            return self._popen(errors, [self.python, "-X", "utf8", "-I", "-S", "-B"], tool_env()), errors
        except BaseException:
            errors.close()
            raise

    @staticmethod
    def _popen(errors: IO[bytes], python: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        # -S: no site (nothing of it is needed). -B: no pyc of its own start-up is written
        # into the layer (it may be stopped and the layer removed at any time).
        return subprocess.Popen(
            [*python, "-c", WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=env,
            # Its own group, as every tool: a Ctrl-C reaches deploy, which stops it.
            process_group=0 if os.name == "posix" else None,
        )

    def _serve(self, proc: subprocess.Popen[bytes], errors: IO[bytes], early: bool) -> None:
        ready = False  # read with the first request, under its time limit
        while (req := self.requests.get()) is not None:
            if self.broken is not None:
                req.job.fail(self.broken)
                continue
            with self._slots:
                out_of_time = self._watchdog.arm(proc, req.job.time_left(self._limit))
                try:
                    ready = ready or _started(proc)
                    answer = _ask(proc, req.data) if ready else None
                finally:
                    self._watchdog.disarm(proc)
            if out_of_time.is_set():
                self.fail(_out_of_time(req.job, self._limit), req.job)
            elif early and not ready:
                self._early_failed(req)
                return
            elif answer is None:
                self.fail(self._died(proc, errors), req.job)
            else:
                later = req.job.sent_back(answer)
                if later:
                    self.submit(later, req.job, missing_only=False)
                self._progress.add(done=req.files - len(answer))
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


@dataclass(frozen=True)
class _EarlyStart:
    """How a runtime's worker starts while the runtime unpacks (:meth:`CompilePools.early`)."""

    python: str  # the interpreter binary itself (the usual bin/python3 is a symlink, made last)
    flags: tuple[str, ...]
    env: dict[str, str]


def _started(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the worker says it runs (False: it ended first)."""
    assert proc.stdout is not None
    try:
        return proc.stdout.readline() == READY
    except OSError:
        return False


def _ask(proc: subprocess.Popen[bytes], data: bytes) -> list[str] | None:
    """Send one request; the answer (None: the worker ended first)."""
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(data)
        proc.stdin.flush()
        return read_answer(proc.stdout)
    except OSError:
        return None


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
        self._early: list[_Pool] = []  # started early, not (yet) known by their python
        self._progress = Progress()
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
        job = Job(layer)
        with self._lock:
            pool = self._pools.get(str(python))
            if pool is None:
                pool = _Pool(str(python), self._slots, self._progress, self._limit)
                self._pools[str(python)] = pool
        # No more workers than chunks so far: a few files (a --bytecode layer's) take one
        # Python start, not one per core.
        self._submit(pool, files, job, missing_only)
        job.seal()
        if pool.broken is not None:
            job.fail(pool.broken)
        return job.done

    def early(self, python: Path, home: Path, *, layer: str) -> EarlyJob:
        """A job for the files of ``layer``, a runtime still unpacking into ``home``, whose
        interpreter binary ``python`` (and what its start-up reads) is unpacked: workers
        start now with ``PYTHONHOME=home`` (its ``sys.prefix`` cannot be found yet: the
        landmark, ``os.py``, may still be missing) and no other ``PYTHON*`` variable (as
        ``-I`` would, which ignores PYTHONHOME too). A worker that cannot start yet is no
        error: its files wait for :meth:`EarlyJob.finish`."""
        env = {k: v for k, v in tool_env().items() if not k.startswith("PYTHON")}
        env["PYTHONHOME"] = str(home)
        start = _EarlyStart(str(python), ("-X", "utf8", "-s", "-S", "-B"), env)
        pool = _Pool(str(python), self._slots, self._progress, self._limit, early=start)
        with self._lock:
            if self._closed:
                raise VenvStacksError("byte-compiling was stopped")
            self._early.append(pool)
        return EarlyJob(self, pool, Job(layer, early=True))

    def _submit(self, pool: _Pool, files: Sequence[str], job: Job, missing_only: bool) -> None:
        self._progress.add(files=len(files))
        with self._lock:
            if self._closed:
                raise VenvStacksError("byte-compiling was stopped")
            pool.submit(files, job, missing_only)
            if files:
                pool.grow(min(self._workers, pool.chunks))

    def progress(self) -> str:
        """How far the compiling has got, for a progress line."""
        return f"{self._progress.done} of {self._progress.files} files compiled"

    def close(self, *, abandon: bool = False) -> None:
        """Stop every worker: after their queued work, or (``abandon``) at once."""
        with self._lock:
            self._closed = True
            pools = list({id(p): p for p in [*self._early, *self._pools.values()]}.values())
        for pool in pools:
            if abandon:
                pool.fail(VenvStacksError("byte-compiling was stopped"))
            pool.close(abandon)


@dataclass(frozen=True)
class EarlyJob:
    """A runtime's compiling, started while it unpacks (:meth:`CompilePools.early`)."""

    pools: CompilePools
    pool: _Pool
    job: Job

    def add(self, files: Sequence[str]) -> None:
        """Compile ``files`` too (early requests: see :mod:`compileworker`)."""
        self.pools._submit(self.pool, files, self.job, missing_only=False)

    def finish(self, python: Path, files: Sequence[str], missing_only: bool) -> Future[None]:
        """The runtime is unpacked and ``python`` (the path any layer's files name it by)
        runs: compile ``files`` and what early requests sent back; the future is done once
        every file of the job is. Later layers naming ``python`` share these workers."""
        with self.pools._lock:
            self.pools._pools.setdefault(str(python), self.pool)
        self.pool.python_ready(str(python))
        later = self.job.end_early()
        self.pools._submit(self.pool, later, self.job, missing_only=False)
        self.pools._submit(self.pool, files, self.job, missing_only)
        self.job.seal()
        if self.pool.broken is not None:
            self.job.fail(self.pool.broken)
        return self.job.done

    def drain(self) -> None:
        """Compile nothing more: what is queued is dropped, the chunks under way end."""
        self.pool.fail(VenvStacksError("byte-compiling was stopped"))
        self.pool.close(abandon=False)

    def abandon(self) -> None:
        """Stop its workers now (its layer is being removed)."""
        self.pool.fail(VenvStacksError("byte-compiling was stopped"))
        self.pool.close(abandon=True)
