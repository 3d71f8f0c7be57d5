"""The safe extractor: every archive we unpack goes through it (published layers on deploy,
runtime archives into the runtime cache).

``unpack_to_staging(archive, dest_parent, top)`` unpacks an archive whose members all live
under ``top/`` into a hidden folder beside ``dest_parent/top`` (what was under ``top/`` lands
directly in it), for the caller to finish (postinstall) and move with ``fsutil.replace_dir``
or a rename. The format comes from the file name, else from its first bytes. Absolute
names, ``..``, links leaving ``top/``, devices and fifos are refused with one
:class:`VenvStacksError` line, and nothing is written outside the staging folder: symlinks
are created last, so no write can pass through one, and are then checked again with
``realpath``.

Tar members are read by our own parser (tarstream.py), each file's bytes written with
``os.write`` straight from the decoded pieces; an archive with a header kind it leaves to
Python's ``tarfile`` (sparse files, global pax headers) is unpacked again with ``tarfile``.
Every regular file, whatever the format, is written and finished in :func:`_write_file`.
"""

from __future__ import annotations

import calendar
import contextlib
import functools
import gzip
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

import zstandard

from venvstacks.archive import tarstream
from venvstacks.archive.checked import CheckedArchive
from venvstacks.archive.formats import ArchiveFormat
from venvstacks.archive.tarstream import TarDamaged, TarStream, Unusual, write_all
from venvstacks.archive.xzblocks import open_xz
from venvstacks.errors import VenvStacksError

_CHUNK = 1 << 20


class Stopped(Exception):
    """Unpacking was abandoned because another step of the same deploy failed."""


class _Refused(Exception):
    """Why an archive is refused; reported as one VenvStacksError line naming it."""


# gzip's own error for bytes that are not gzip is an OSError, not a zlib.error.
_DAMAGED = (
    *(TarDamaged, tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile),
    *(lzma.LZMAError, zlib.error, EOFError),
)


@dataclass(frozen=True)
class _Member:
    rel: str  # path below the top folder ("" is the top folder itself)
    kind: str  # "dir", "file", "symlink", "hardlink"
    mode: int = 0o755
    mtime: int = 0
    link: str = ""  # symlink target, or (hardlink) the rel of the file it shares


def unpack_to_staging(
    archive: Path,
    dest_parent: Path,
    top: str,
    *,
    stop: threading.Event | None = None,
    checked: CheckedArchive | None = None,
) -> Path:
    """Unpack ``archive`` (all members under ``top/``) into a new folder beside
    ``dest_parent/top`` and return that folder. The caller moves it into place with
    :func:`replace_dir`, or deletes it. Once ``stop`` is set, unpacking ends (between two
    members) with :class:`Stopped` and the folder is removed.

    ``checked``: the archive as its sha256 was checked, still open: exactly those bytes are
    unpacked, and the folder is refused if the file was written to since."""
    dest_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{top}.partial-", dir=dest_parent))
    try:
        staging.chmod(0o755)  # mkdtemp's 0o700 would otherwise become the layer's mode
        with contextlib.ExitStack() as owned:
            raw = checked.file if checked is not None else owned.enter_context(archive.open("rb"))
            _unpack(archive.name, raw, _format_of(archive.name, raw), staging, top, stop or threading.Event())
        if checked is not None and not checked.unchanged():
            raise _Refused("it changed after its sha256 was checked; run again to check it anew")
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        reason = str(exc) if isinstance(exc, _Refused) else f"damaged or truncated ({exc})"
        if isinstance(exc, (_Refused, *_DAMAGED, zstandard.ZstdError)):
            raise VenvStacksError(f"refusing to unpack {archive.name}: {reason}") from None
        raise
    return staging


# How each format's files begin: runtime archives are named by their origin, not by us.
_MAGIC = {
    ArchiveFormat.TAR_GZ: b"\x1f\x8b",
    ArchiveFormat.TAR_XZ: b"\xfd7zXZ\x00",
    ArchiveFormat.TAR_ZST: b"\x28\xb5\x2f\xfd",
    ArchiveFormat.ZIP: b"PK\x03\x04",
}


def _format_of(name: str, raw: BinaryIO) -> ArchiveFormat:
    """The format its name ends with, else the one its first bytes show."""
    try:
        return ArchiveFormat.from_name(name)
    except VenvStacksError:
        head = os.pread(raw.fileno(), 8, 0)
        for fmt, magic in _MAGIC.items():
            if head.startswith(magic):
                return fmt
        raise


def _unpack(
    name: str, raw: BinaryIO, fmt: ArchiveFormat, staging: Path, top: str, stop: threading.Event
) -> None:
    seen: dict[str, _Member] = {}
    links: list[_Member] = []
    reader = _read_zip(raw, top) if fmt is ArchiveFormat.ZIP else _read_tar(raw, fmt, top)
    try:
        with contextlib.closing(reader):  # stopped or refused: its decoder (a process) ends now
            _write_members(name, reader, staging, top, stop, seen, links)
    except Unusual:  # a header kind only tarfile reads: start again with it
        _empty(staging)
        seen.clear()
        links.clear()
        with contextlib.closing(_read_tarfile(raw, fmt, top)) as reader:
            _write_members(name, reader, staging, top, stop, seen, links)
    _check_links(links, seen, top)
    # Links go last: until now no symlink existed below staging, so no write could have
    # been redirected through one.
    for m in sorted(links, key=lambda m: m.kind != "hardlink"):
        target = staging / m.rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if m.kind == "hardlink":
            os.link(staging / m.link, target, follow_symlinks=False)
        else:
            os.symlink(m.link, target)
    root = os.path.realpath(staging)
    for m in links:  # now with the real links on disk, chains included
        if m.kind == "symlink" and not _inside(os.path.realpath(staging / m.rel), root):
            raise _Refused(f"symlink {top}/{m.rel} points outside {top}/")


def _write_members(
    name: str,
    reader: _Read,
    staging: Path,
    top: str,
    stop: threading.Event,
    seen: dict[str, _Member],
    links: list[_Member],
) -> None:
    """Write every directory and file of ``reader``; note each member in ``seen`` and the
    links, written later, in ``links``."""
    # Paths as strings: a Path per member cost more than the rest of the loop.
    root = os.fspath(staging)
    made = {root}  # folders known to exist (no symlink exists below staging yet)
    for member, data in reader:
        if stop.is_set():
            raise Stopped(f"unpacking {name} was stopped")
        if member.rel in seen:
            raise _Refused(f"duplicate member {top}/{member.rel}")
        seen[member.rel] = member
        if member.rel == "" and member.kind != "dir":
            raise _Refused(f"the top member {top} is a {member.kind}, not a folder")
        target = f"{root}/{member.rel}" if member.rel else root
        try:
            if member.kind == "dir":
                os.makedirs(target, mode=0o755, exist_ok=True)
                made.add(target)
            elif member.kind == "file":
                parent = target.rpartition("/")[0]
                if parent not in made:  # one mkdir per folder, not one per file
                    os.makedirs(parent, exist_ok=True)
                    made.add(parent)
                _write_file(target, data, member)
            else:
                links.append(member)
        except OSError as exc:  # e.g. a file below another file: never a real layer
            raise _Refused(f"cannot write {top}/{member.rel} ({exc.strerror})") from None


def _empty(folder: Path) -> None:
    for entry in os.scandir(folder):  # no symlink exists below it yet: links come last
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def _check_links(links: list[_Member], seen: dict[str, _Member], top: str) -> None:
    symlinks = {m.rel for m in links if m.kind == "symlink"}
    for rel in seen:
        slash = rel.find("/")
        while slash != -1:  # each folder above it
            if rel[:slash] in symlinks:
                raise _Refused(f"member {top}/{rel} lies below a symlink")
            slash = rel.find("/", slash + 1)
    for m in links:
        if m.kind == "hardlink":
            if m.link not in seen or seen[m.link].kind != "file":
                raise _Refused(f"hard link {top}/{m.rel} points outside {top}/ or not to a file")
        # A named fake root: normpath("/..") would quietly give "/" back.
        elif posixpath.isabs(m.link) or not _inside(
            posixpath.normpath(posixpath.join("/top", posixpath.dirname(m.rel), m.link)), "/top"
        ):
            raise _Refused(f"symlink {top}/{m.rel} points outside {top}/")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _write_file(target: str, data: _Data | None, member: _Member) -> None:
    # O_EXCL: the name is new (duplicates were refused), so an existing entry means trouble.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        if data is not None:
            data(fd)  # unbuffered: nothing is written after the times are set
        os.fchmod(fd, member.mode)
        os.utime(fd, (member.mtime, member.mtime))
    finally:
        os.close(fd)


def _member_rel(name: str, top: str) -> str:
    if name.startswith("/") or "\\" in name or "\0" in name:
        raise _Refused(f"member {name!r} has an absolute or invalid path")
    parts = name.rstrip("/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise _Refused(f"member {name!r} has '..', '.' or empty path parts")
    if parts[0] != top:
        raise _Refused(f"member {name!r} lies outside the expected folder {top}/")
    return "/".join(parts[1:])


_Data = Callable[[int], None]
"""Writes a file member's bytes to the open file descriptor it is given."""
_Read = Generator[tuple[_Member, _Data | None], None, None]
MAX_LINK_TARGET = 4096  # bytes: PATH_MAX on Linux, more than macOS allows
_SPECIAL = "is a device, fifo or other special file"


@contextlib.contextmanager
def _decoded(archive: Path | BinaryIO, fmt: ArchiveFormat) -> Iterator[Any]:
    """The archive (a path, or an open file read from its start) decompressed: a stream of
    its tar bytes, read once."""
    with contextlib.ExitStack() as stack:
        raw = stack.enter_context(archive.open("rb")) if isinstance(archive, Path) else archive
        raw.seek(0)
        if fmt is ArchiveFormat.TAR_GZ:
            yield stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
        elif fmt is ArchiveFormat.TAR_XZ:
            yield stack.enter_context(open_xz(raw))  # our blocks decode in parallel
        else:
            yield stack.enter_context(zstandard.ZstdDecompressor().stream_reader(raw, closefd=False))


@contextlib.contextmanager
def open_tar(archive: Path | BinaryIO, fmt: ArchiveFormat) -> Iterator[tarfile.TarFile]:
    """The archive (a path, or an open file read from its start) as a tar stream (members
    in order, read once), whatever its compression."""
    with _decoded(archive, fmt) as stream, tarfile.open(fileobj=stream, mode="r|") as tf:
        yield tf


def _read_tar(raw: BinaryIO, fmt: ArchiveFormat, top: str) -> _Read:
    """The members as our own parser reads them (tarstream.py), each file's bytes written
    straight from the decoded pieces; :class:`Unusual` for what only tarfile reads."""
    with _decoded(raw, fmt) as stream:
        tar = TarStream(tarstream.pieces_of(stream))
        for h in tar.members():
            rel = _member_rel(h.name, top)
            if h.type in tarstream.REGULAR:
                yield _Member(rel, "file", h.mode & 0o755 | 0o600, h.mtime), tar.write_to
            elif h.type == tarstream.DIR:
                yield _Member(rel, "dir"), None
            elif h.type == tarstream.SYMLINK:
                yield _Member(rel, "symlink", link=h.linkname), None
            elif h.type == tarstream.HARDLINK:
                yield _Member(rel, "hardlink", link=_member_rel(h.linkname, top)), None
            else:
                raise _Refused(f"member {h.name!r} {_SPECIAL}")


def _read_tarfile(raw: BinaryIO, fmt: ArchiveFormat, top: str) -> _Read:
    """The members as Python's tarfile reads them: for the header kinds tarstream.py leaves
    to it (sparse files, global pax headers)."""
    with open_tar(raw, fmt) as tf:
        for ti in tf:
            rel = _member_rel(ti.name, top)
            if ti.isreg():
                member = _Member(rel, "file", ti.mode & 0o755 | 0o600, int(ti.mtime))
                yield member, functools.partial(_copy_to, tf.extractfile(ti))
            elif ti.isdir():
                yield _Member(rel, "dir"), None
            elif ti.issym():
                yield _Member(rel, "symlink", link=ti.linkname), None
            elif ti.islnk():
                yield _Member(rel, "hardlink", link=_member_rel(ti.linkname, top)), None
            else:
                raise _Refused(f"member {ti.name!r} {_SPECIAL}")


def _read_zip(raw: BinaryIO, top: str) -> _Read:
    with zipfile.ZipFile(raw) as zf:
        for info in zf.infolist():
            rel = _member_rel(info.filename, top)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                yield _Member(rel, "symlink", link=_zip_link_target(zf, info)), None
            elif info.is_dir() or stat.S_ISDIR(mode):
                yield _Member(rel, "dir"), None
            elif stat.S_ISREG(mode) or stat.S_IFMT(mode) == 0:
                mtime = calendar.timegm((*info.date_time, 0, 0, -1))
                file_mode = (mode & 0o755 | 0o600) if mode else 0o644
                with zf.open(info) as data:
                    yield _Member(rel, "file", file_mode, mtime), functools.partial(_copy_to, data)
            else:
                raise _Refused(f"member {info.filename!r} {_SPECIAL}")


def _copy_to(data: IO[bytes] | None, fd: int) -> None:
    if data is not None:  # tarfile gives None for a file it cannot read
        while chunk := data.read(_CHUNK):
            write_all(fd, chunk)


def _zip_link_target(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    """A zip symlink's target is its member's content: read no more of it than a path can be
    (its declared size could be a lie, and deflate turns a few KiB into gigabytes)."""
    with zf.open(info) as data:
        target = data.read(MAX_LINK_TARGET + 1)
    if len(target) > MAX_LINK_TARGET:
        raise _Refused(f"symlink {info.filename} has a target over {MAX_LINK_TARGET} bytes")
    return os.fsdecode(target)  # bytes as they are, as tarfile keeps them (surrogateescape)
