"""One compile worker: the files it is given (:func:`library_sources`), the script it runs,
how requests and answers travel, its watchdog.

The worker (:data:`WORKER`) runs in the layer's own Python, any CPython 3.8 or newer, and
imports nothing but modules every CPython has loaded before any code runs (built in or
frozen: ``sys``, ``_imp``, ``_io``, ``_frozen_importlib_external`` and the ``posix``/``nt``
module it holds): no ``compileall``, no ``site`` (``-S``), so it starts in a few
milliseconds and needs nothing of the standard library but what the interpreter's own
start-up reads. For each file it writes exactly the pyc
``compileall.compile_file(path, quiet=2)`` writes, through the same functions
(``py_compile.compile`` calls these very ``importlib._bootstrap_external`` helpers):

* a source that is not a regular file (after symlinks) is skipped;
* a pyc that exists is left alone when it is a symlink or not a regular file (py_compile
  refuses those), or when its first 12 bytes are the magic number, flags 0 and the source's
  mtime (compile_file's up-to-date check); ``missing_only``: any pyc there is left alone;
* the source is compiled as ``compile(source, path, "exec", dont_inherit=True)``, ``path``
  being the name the file will have once its layer is in place (``request``'s
  ``shown_as``: what ``compile_file(path)`` run there would name it); one that
  fails to compile (syntax, null bytes, encoding...) leaves no pyc and no error;
* ``__pycache__`` is made with mode 0o777 (less the umask), as ``os.makedirs`` does;
* the pyc is checked-hash when ``SOURCE_DATE_EPOCH`` is set and not empty, else
  timestamp-based (py_compile's default), with the source's mode plus owner write
  (``_calc_mode``), written to a temporary name and renamed (``_write_atomic``).

Warnings of ``compile()`` go to stderr: the answers have a pipe of their own.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from venvstacks.tools import stop_group

#: The first line a worker writes once it runs: a worker that dies before it did never ran.
READY = b"ready\n"

# Python 3.8 syntax and built-in modules only (see the module's docstring).
WORKER = r"""
import sys, _imp, _io
b = sys.modules["_frozen_importlib_external"]
o = b._os
env = o.environ  # bytes keys on posix, str on Windows
HASHED = bool(env.get(b"SOURCE_DATE_EPOCH") or env.get("SOURCE_DATE_EPOCH"))
FS = (sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())


def regular(st):
    return st.st_mode & 0o170000 == 0o100000


def one(path, missing_only, shown):
    try:
        st = o.stat(path)
    except (OSError, ValueError):
        return
    if not regular(st):
        return
    cfile = b.cache_from_source(path)
    try:
        cst = o.lstat(cfile)
    except OSError:
        cst = None
    if cst is not None:
        if missing_only or not regular(cst):
            return
        expect = b.MAGIC_NUMBER + bytes(4) + (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
        try:
            with _io.FileIO(cfile, "r") as f:
                head = f.read(12)
        except OSError:
            head = b""
        if head == expect:
            return
    try:
        with _io.FileIO(path, "r") as f:
            data = f.readall()
    except OSError:
        return
    try:
        code = compile(data, shown, "exec", dont_inherit=True)
    except Exception:
        return
    try:
        try:
            o.mkdir(b._path_split(cfile)[0], 0o777)
        except FileExistsError:
            pass
        if HASHED:
            pyc = b._code_to_hash_pyc(code, _imp.source_hash(b._RAW_MAGIC_NUMBER, data), True)
        else:
            st = o.stat(path)
            pyc = b._code_to_timestamp_pyc(code, st.st_mtime, st.st_size)
        b._write_atomic(cfile, pyc, b._calc_mode(path))
    except OSError:
        pass


requests = sys.stdin.buffer
answers = _io.open(o.dup(1), "wb")
o.dup2(2, 1)
answers.write(b"ready\n")
answers.flush()
while True:
    head = requests.readline()
    if not head:
        break
    flags, size = head.split()
    paths = requests.read(int(size)).decode(*FS).split("\0")
    here = there = ""
    if b"d" in flags:  # compiled where it is, named as where it will be
        here, there = paths[:2]
        paths = paths[2:]
    for path in paths:
        shown = there + path[len(here) :] if here and path.startswith(here) else path
        one(path, b"m" in flags, shown)
    answers.write(b"done\n")
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


#: A worker's answer once every file of a request is done.
DONE = b"done\n"


def request(files: Sequence[str], *, missing_only: bool, shown_as: tuple[str, str] | None = None) -> bytes:
    """A request for ``files``: a line of flags and size, then the NUL-separated paths.

    ``shown_as``: (``here``, ``there``), both ending in a separator: each file below
    ``here`` is compiled under its name below ``there`` (its code objects' ``co_filename``,
    as ``py_compile``'s ``dfile``): a layer compiled in its staging folder gets the pycs it
    would get compiled in place."""
    names = [*shown_as, *files] if shown_as else files
    body = b"\0".join(os.fsencode(f) for f in names)
    flags = b"c" + (b"m" if missing_only else b"") + (b"d" if shown_as else b"")
    return flags + b" %d\n" % len(body) + body


@dataclass
class Watchdog:
    """Stops a worker whose request runs past its deadline: one thread for all the workers
    of a pool (started with the first request), not a timer per request."""

    _due: dict[int, tuple[float, subprocess.Popen[bytes], threading.Event]] = field(default_factory=dict)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _thread: threading.Thread | None = None
    _closed: bool = False

    def arm(self, proc: subprocess.Popen[bytes], seconds: float) -> threading.Event:
        """Watch ``proc`` for ``seconds``; the event is set (before the worker is stopped)
        if it runs out of time before :meth:`disarm`."""
        out_of_time = threading.Event()
        with self._cond:
            self._due[proc.pid] = (time.monotonic() + seconds, proc, out_of_time)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="compile-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()
        return out_of_time

    def disarm(self, proc: subprocess.Popen[bytes]) -> None:
        with self._cond:
            self._due.pop(proc.pid, None)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _watch(self) -> None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                late = [pid for pid, (due, _, _) in self._due.items() if due <= now]
                for pid in late:
                    _, proc, out_of_time = self._due.pop(pid)
                    # Set before the worker ends: the thread reading its answer must know why.
                    out_of_time.set()
                    stop_group(proc, grace=0)
                wait = min((due for due, _, _ in self._due.values()), default=now + 3600) - now
                self._cond.wait(timeout=max(wait, 0))
