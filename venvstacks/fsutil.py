"""Small filesystem helpers: atomic writes and content hashes."""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from venvstacks.errors import VenvStacksError
from venvstacks.lazy import lazy_modules
from venvstacks.tools import on_stop

if sys.platform != "win32":
    import fcntl
# Loaded on first use: filelock where flock is missing.
if TYPE_CHECKING:
    import filelock
else:
    (filelock,) = lazy_modules("filelock")


def is_bytecode(name: str) -> bool:
    """A `__pycache__` folder or a `.pyc` file: never copied, hashed or shipped (postinstall
    byte-compiles on the target)."""
    return name == "__pycache__" or name.endswith(".pyc")


def write_if_changed(path: Path, text: str) -> bool:
    """Write text atomically, but only when it differs; returns whether it was written.

    Leaving an unchanged file untouched keeps its mtime, so doit's checksum check stays
    cheap and nothing above it wakes up.
    """
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except FileNotFoundError:
        pass
    write_atomic(path, text)
    return True


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside the target and rename it into place last."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with deleted_if_left(temporary_file(path.parent, path.name)) as tmp:
        # 0644: these files (locks, metadata) are meant to be read by all.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # whatever the umask
        os.replace(tmp, path)


# Files being written (archives, metadata, manifests). A Ctrl-C or SIGTERM reaches the main
# thread only; when doit runs tasks in its (daemon) threads, the interpreter exits without
# letting them clean up, so do it for them: when the run stops (before the build folder is
# released), and at exit.
_unfinished: set[Path] = set()


@atexit.register
def _remove_unfinished() -> None:
    for tmp in list(_unfinished):
        tmp.unlink(missing_ok=True)


on_stop(_remove_unfinished)


def temporary_file(folder: Path, stem: str) -> Path:
    """A name for a temporary file in ``folder``: hidden, with the writer's pid in it, so a
    later run can tell a killed writer's leftover from one still being written."""
    return folder / f".{stem}.pid{os.getpid()}.{secrets.token_hex(4)}.tmp"


@contextlib.contextmanager
def deleted_if_left(tmp: Path) -> Iterator[Path]:
    """A temporary file, named and registered before it exists (a Ctrl-C landing just after
    it is made still finds it): deleted on leaving unless renamed away meanwhile, and when
    the run stops or at exit if the thread writing it never unwinds (see `_unfinished`)."""
    _unfinished.add(tmp)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)
        _unfinished.discard(tmp)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files (half-written archives, manifests, metadata) whose writer is
    gone (killed mid-publish); returns them."""
    removed = []
    for tmp in folder.glob(".*.pid*.tmp"):
        pid_part = tmp.name.rsplit(".pid", 1)[1].split(".", 1)[0]
        if not pid_part.isdigit() or _alive(int(pid_part)):
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except OSError:
        return False
    return True


# Stack files, uv settings and metadata are small; anything bigger is a mistake or an attack.
MAX_TEXT_BYTES = 16 * 1024 * 1024


class UnsafeFileError(ValueError):
    """A file that must not be read: not a regular file, or too big. One-line reason."""


def read_bounded_text(path: Path, limit: int = MAX_TEXT_BYTES) -> str:
    """A small UTF-8 file's text; FIFOs, devices and sockets (or links to them) are refused
    before a byte is read, and so is a file over `limit` bytes.

    Raises FileNotFoundError, IsADirectoryError, other OSErrors, UnicodeDecodeError or
    UnsafeFileError.
    """
    # O_NONBLOCK: opening a FIFO with no writer must not wait forever.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(21, "Is a directory", str(path))
        if not stat.S_ISREG(mode):
            raise UnsafeFileError("is a FIFO, socket or device, not a file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise UnsafeFileError(f"is over {limit} bytes, too big to be what it should be")
    return data.decode("utf-8")


def load_json_text(text: str) -> Any:
    """json.loads, with absurd nesting as a ValueError (json's own is a RecursionError)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_json_object(path: Path) -> dict[str, Any]:
    """A small JSON file holding an object, or {} when it is missing, unreadable, not JSON or
    not an object: for the metadata and state files that only ever mean "nothing recorded"."""
    try:
        data = load_json_text(read_bounded_text(path))
    except (OSError, ValueError):  # UnsafeFileError and UnicodeDecodeError are ValueErrors
        return {}
    return data if isinstance(data, dict) else {}


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def is_sha256_hex(text: str) -> bool:
    """A sha256 as venvstacks writes and expects one: 64 lowercase hex digits."""
    return _SHA256_HEX.fullmatch(text) is not None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def replace_dir(new: Path, dest: Path) -> None:
    """Move folder ``new`` to ``dest``; an existing ``dest`` is swapped out, then deleted.

    Two renames (no atomic exchange in the stdlib): ``dest`` is missing only between them,
    and a failure of the second puts the old folder back.
    """
    if not os.path.lexists(dest):
        os.rename(new, dest)
        return
    old = dest.with_name(f".{dest.name}.old-{secrets.token_hex(4)}")
    os.rename(dest, old)
    try:
        os.rename(new, dest)
    except BaseException:
        os.rename(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)


class _CopyStopped(Exception):
    """A file copytree could not copy: raised past copytree, which would note it and go on."""

    def __init__(self, error: OSError, source: str) -> None:
        super().__init__(error)
        self.error, self.source = error, source


# str() of an OSError, which is all shutil.Error keeps of one: "[Errno 28] No space left on device: 'x'"
_OS_ERROR_TEXT = re.compile(r"\[Errno (\d+)\] ([^:]+)")


def copy_tree(src: Path, dest: Path, shown_as: Path, share: Callable[[Path], bool] | None = None) -> None:
    """Copy the folder src into dest (links kept as links, modes and times copied, dest may
    exist), stopping at the first failure with one OSError naming `shown_as`, the folder the
    user knows.

    shutil.copytree alone tries every other file after a failure and then raises one
    shutil.Error listing them all: on a full disk, every file of the tree.

    A file whose path relative to src `share` accepts becomes a hard link to src's (a copy
    where a link cannot be made: another file system, a link limit). A hard link is the same
    file, mode included: share only files that nothing writes in place or chmods on either side.
    """

    def copy_or_stop(source: str, target: str) -> object:
        if share is not None and share(Path(source).relative_to(src)):
            try:
                os.link(source, target)
                return target
            except OSError:
                pass
        try:
            return shutil.copy2(source, target)
        except OSError as exc:
            raise _CopyStopped(exc, source) from exc

    try:
        shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True, copy_function=copy_or_stop)
    except _CopyStopped as stop:
        if stop.error.filename == stop.source:
            raise stop.error from None  # reading failed, not writing: about src, not dest
        raise OSError(stop.error.errno, stop.error.strerror, str(shown_as)) from None
    except shutil.Error as exc:  # a folder or link copytree could not make (listed as text)
        _, _, reason = exc.args[0][0]
        parsed = _OS_ERROR_TEXT.match(reason)
        if parsed is None:
            raise VenvStacksError(f"{shown_as}: cannot copy {src} there: {reason}") from None
        raise OSError(int(parsed[1]), parsed[2], str(shown_as)) from None


def check_folder_path(path: Path, what: str) -> None:
    """Refuse, in one line, a folder path that cannot be made: it, or a parent, is a file."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            if not candidate.is_dir():
                problem = f"{candidate} exists and is not a folder"
                raise VenvStacksError(f"{what} {path}: {problem}; choose another path")
            return


def make_folder(path: Path, what: str) -> None:
    """Create a folder the user named, or refuse in one line.

    A symlink to a missing folder gets that folder made, as a build folder does (Path.mkdir
    would stop at the link with "File exists").
    """
    check_folder_path(path, what)
    try:
        Path(os.path.realpath(path)).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise VenvStacksError(f"{what} {path}: cannot create it ({reason}); choose another path") from None


def lock_exclusively(path: Path, waiting: Callable[[], None] = lambda: None) -> Callable[[], None]:
    """Take the lock file's exclusive lock (waiting for it), calling `waiting` first if it is
    held; returns its release. On POSIX this is the flock that filelock's FileLock takes (so
    the two exclude each other), without importing filelock: a tenth of a no-op run's time,
    and of a no-op deploy's."""
    if sys.platform == "win32":
        lock = filelock.FileLock(str(path))
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            waiting()
            lock.acquire()
        return lambda: lock.release()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waiting()
            fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return lambda: os.close(fd)  # closing the descriptor releases the lock
