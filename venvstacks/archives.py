"""Reproducible layer archives, and the safe extractor that deploy uses.

``write_archive(path, entries, fmt, epoch=lock_time, progress=cb)`` writes the
:class:`ArchiveEntry` items (a file, folder or symlink on disk, and its name in the archive)
sorted by name, with every mtime set to ``epoch``, owners 0/"", and modes 0o755 (folders,
executables) or 0o644. Compressors are pinned: gzip level 6 without name or mtime in its
header; xz preset 6 in fixed 32 MiB blocks compressed in parallel (xzblocks.py); zstd level 10 in
multi-threaded mode (the same bytes for any worker count >= 1, unlike single-threaded mode);
zip members with a fixed ``date_time``, Unix ``external_attr``, no extra fields. The file is
written beside ``path`` and renamed into place last.

``unpack_to_staging(archive, dest_parent, top)`` unpacks an archive whose members all live
under ``top/`` into a hidden folder beside ``dest_parent/top`` (what was under ``top/`` lands
directly in it), for the caller to finish (postinstall) and move with ``replace_dir``;
``extract_archive`` does both. Absolute names, ``..``, links leaving ``top/``, devices and
fifos are refused with one :class:`VenvStacksError` line, and nothing is written outside
the staging folder: symlinks are created last, so no write can pass through one, and are
then checked again with ``realpath``.
"""

from __future__ import annotations

import calendar
import contextlib
import enum
import gzip
import lzma
import os
import posixpath
import secrets
import shutil
import stat
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import zstandard

from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import sha256_file
from venvstacks.xzblocks import ParallelXZWriter

Progress = Callable[[int, int], None]
"""Called with (bytes of file content done, total bytes of file content)."""

_CHUNK = 1 << 20
_GZIP_LEVEL = 6
_ZSTD_LEVEL = 10
_ZIP_EPOCH_MIN = 315532800  # 1980-01-01: the earliest time a zip member can carry


class ArchiveFormat(enum.StrEnum):
    TAR_XZ = "tar.xz"
    TAR_GZ = "tar.gz"
    TAR_ZST = "tar.zst"
    ZIP = "zip"

    @property
    def suffix(self) -> str:
        return "." + self.value

    @classmethod
    def from_name(cls, name: str) -> ArchiveFormat:
        """The format an archive file name ends with."""
        for fmt in cls:
            if name.endswith(fmt.suffix):
                return fmt
        known = ", ".join(f.suffix for f in cls)
        raise VenvStacksError(f"{name}: unknown archive format (expected one of {known})")


@dataclass(frozen=True, order=True)
class ArchiveEntry:
    """One member: ``name`` (POSIX, relative) in the archive, read from ``source`` on disk.

    ``link_target`` overrides what a symlink at ``source`` points to (export and publish use
    it to turn absolute links inside a layer into relative ones).
    """

    name: str
    source: Path
    link_target: str | None = None


@dataclass(frozen=True)
class ArchiveInfo:
    path: Path
    size: int
    sha256: str


# --- writing -------------------------------------------------------------------------


def write_archive(
    path: Path,
    entries: Iterable[ArchiveEntry],
    fmt: ArchiveFormat,
    *,
    epoch: int,
    progress: Progress | None = None,
) -> ArchiveInfo:
    """Write a reproducible archive of ``entries`` to ``path``; return its size and sha256."""
    members = sorted(entries)
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise VenvStacksError(f"{path.name}: duplicate archive member names")
    sizes = [os.lstat(m.source) for m in members]
    report = _Progress(sum(st.st_size for st in sizes if stat.S_ISREG(st.st_mode)), progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            if fmt is ArchiveFormat.ZIP:
                _write_zip(raw, members, epoch, report)
            else:
                with _compressor(raw, fmt) as stream:
                    _write_tar(stream, members, epoch, report)
        _readable_by_all(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ArchiveInfo(path, path.stat().st_size, sha256_file(path))


def _readable_by_all(path: Path) -> None:
    # mkstemp creates 0600; a published archive is meant to be shared. (Reading the umask
    # would mean setting it, which is process-wide and unsafe with parallel publishing.)
    path.chmod(0o644)


def _normal_mode(st_mode: int) -> int:
    # Keep only "is it executable": umask and checkout modes must not reach the bytes.
    if stat.S_ISDIR(st_mode) or st_mode & stat.S_IXUSR:
        return 0o755
    return 0o644


@contextlib.contextmanager
def _compressor(raw: IO[bytes], fmt: ArchiveFormat) -> Iterator[Any]:
    if fmt is ArchiveFormat.TAR_GZ:
        # filename="" and mtime=0 keep the output name and the clock out of the header.
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=_GZIP_LEVEL, mtime=0)
        with gz:
            yield gz
    elif fmt is ArchiveFormat.TAR_XZ:
        with ParallelXZWriter(raw) as xz:
            yield xz
    else:
        cores = max(1, os.cpu_count() or 1)
        cctx = zstandard.ZstdCompressor(level=_ZSTD_LEVEL, threads=cores, write_checksum=True)
        with cctx.stream_writer(raw, closefd=False) as zw:
            yield zw


def _write_tar(stream: IO[bytes], members: list[ArchiveEntry], epoch: int, report: _Progress) -> None:
    # Stream mode ("w|") counts its own offset from zero, so the end-of-archive padding
    # cannot depend on what the compressor's tell() reports.
    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for m in members:
            st = os.lstat(m.source)
            info = tarfile.TarInfo(m.name)
            info.mtime = epoch
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if stat.S_ISLNK(st.st_mode):
                info.type = tarfile.SYMTYPE
                info.linkname = m.link_target or os.readlink(m.source)
                info.mode = 0o777
                tf.addfile(info)
            elif stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tf.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                info.size = st.st_size
                info.mode = _normal_mode(st.st_mode)
                with m.source.open("rb") as f:
                    tf.addfile(info, report.reader(f))
            else:
                raise VenvStacksError(f"{m.source}: cannot archive a special file")


def _write_zip(raw: IO[bytes], members: list[ArchiveEntry], epoch: int, report: _Progress) -> None:
    date_time = time.gmtime(max(epoch, _ZIP_EPOCH_MIN))[:6]
    with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for m in members:
            st = os.lstat(m.source)
            is_dir = stat.S_ISDIR(st.st_mode)
            info = zipfile.ZipInfo(m.name + "/" if is_dir else m.name, date_time)
            info.create_system = 3  # Unix, whatever machine wrote it
            if stat.S_ISLNK(st.st_mode):
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                info.compress_type = zipfile.ZIP_STORED
                zf.writestr(info, (m.link_target or os.readlink(m.source)).encode())
            elif is_dir:
                info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
                zf.writestr(info, b"")
            elif stat.S_ISREG(st.st_mode):
                info.external_attr = (stat.S_IFREG | _normal_mode(st.st_mode)) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                info.file_size = st.st_size
                with m.source.open("rb") as src, zf.open(info, "w") as dst:
                    for block in iter(lambda: src.read(_CHUNK), b""):
                        dst.write(block)
                        report.add(len(block))
            else:
                raise VenvStacksError(f"{m.source}: cannot archive a special file")


class _Progress:
    def __init__(self, total: int, callback: Progress | None) -> None:
        self.total, self.done, self.callback = total, 0, callback
        if callback:
            callback(0, total)

    def add(self, n: int) -> None:
        self.done += n
        if self.callback and n:
            self.callback(self.done, self.total)

    def reader(self, f: IO[bytes]) -> Any:
        """A file tarfile can pull a member's bytes from while we count them."""
        progress = self

        class Reader:
            def read(self, n: int = -1) -> bytes:
                data = f.read(n)
                progress.add(len(data))
                return data

        return Reader()


# --- reading -------------------------------------------------------------------------


class _Refused(Exception):
    """Why an archive is refused; reported as one VenvStacksError line naming it."""


_DAMAGED = (tarfile.TarError, zipfile.BadZipFile, lzma.LZMAError, zlib.error, EOFError)


@dataclass(frozen=True)
class _Member:
    rel: str  # path below the top folder ("" is the top folder itself)
    kind: str  # "dir", "file", "symlink", "hardlink"
    mode: int = 0o755
    mtime: int = 0
    link: str = ""  # symlink target, or (hardlink) the rel of the file it shares


def unpack_to_staging(archive: Path, dest_parent: Path, top: str) -> Path:
    """Unpack ``archive`` (all members under ``top/``) into a new folder beside
    ``dest_parent/top`` and return that folder. The caller moves it into place with
    :func:`replace_dir`, or deletes it."""
    fmt = ArchiveFormat.from_name(archive.name)
    dest_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{top}.partial-", dir=dest_parent))
    try:
        staging.chmod(0o755)  # mkdtemp's 0o700 would otherwise become the layer's mode
        _unpack(archive, fmt, staging, top)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        reason = str(exc) if isinstance(exc, _Refused) else f"damaged or truncated ({exc})"
        if isinstance(exc, (_Refused, *_DAMAGED, zstandard.ZstdError)):
            raise VenvStacksError(f"refusing to unpack {archive.name}: {reason}") from None
        raise
    return staging


def extract_archive(archive: Path, dest_parent: Path, top: str) -> Path:
    """Unpack safely and move the result to ``dest_parent/top`` (replacing what was there)."""
    staging = unpack_to_staging(archive, dest_parent, top)
    replace_dir(staging, dest_parent / top)
    return dest_parent / top


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


def _unpack(archive: Path, fmt: ArchiveFormat, staging: Path, top: str) -> None:
    seen: dict[str, _Member] = {}
    links: list[_Member] = []
    reader = _read_zip(archive, top) if fmt is ArchiveFormat.ZIP else _read_tar(archive, fmt, top)
    for member, data in reader:
        if member.rel in seen:
            raise _Refused(f"duplicate member {top}/{member.rel}")
        seen[member.rel] = member
        target = staging / member.rel if member.rel else staging
        try:
            if member.kind == "dir":
                target.mkdir(mode=0o755, parents=True, exist_ok=True)
            elif member.kind == "file":
                target.parent.mkdir(parents=True, exist_ok=True)
                _write_file(target, data, member)
            else:
                links.append(member)
        except OSError as exc:  # e.g. a file below another file: never a real layer
            raise _Refused(f"cannot write {top}/{member.rel} ({exc.strerror})") from None
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


def _check_links(links: list[_Member], seen: dict[str, _Member], top: str) -> None:
    symlinks = {m.rel for m in links if m.kind == "symlink"}
    for rel in seen:
        parts = rel.split("/")
        if any("/".join(parts[:i]) in symlinks for i in range(1, len(parts))):
            raise _Refused(f"member {top}/{rel} lies below a symlink")
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


def _write_file(target: Path, data: IO[bytes] | None, member: _Member) -> None:
    # O_EXCL: the name is new (duplicates were refused), so an existing entry means trouble.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        if data is not None:
            shutil.copyfileobj(data, out, _CHUNK)
    os.chmod(target, member.mode)
    os.utime(target, (member.mtime, member.mtime))


def _member_rel(name: str, top: str) -> str:
    if name.startswith("/") or "\\" in name or "\0" in name:
        raise _Refused(f"member {name!r} has an absolute or invalid path")
    parts = name.rstrip("/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise _Refused(f"member {name!r} has '..', '.' or empty path parts")
    if parts[0] != top:
        raise _Refused(f"member {name!r} lies outside the expected folder {top}/")
    return "/".join(parts[1:])


_Read = Iterator[tuple[_Member, IO[bytes] | None]]
_SPECIAL = "is a device, fifo or other special file"


def _read_tar(archive: Path, fmt: ArchiveFormat, top: str) -> _Read:
    with archive.open("rb") as raw, contextlib.ExitStack() as stack:
        stream: Any
        if fmt is ArchiveFormat.TAR_GZ:
            stream = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
        elif fmt is ArchiveFormat.TAR_XZ:
            stream = stack.enter_context(lzma.LZMAFile(raw, "rb"))
        else:
            reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=False)
            stream = stack.enter_context(reader)
        tf = stack.enter_context(tarfile.open(fileobj=stream, mode="r|"))
        for ti in tf:
            rel = _member_rel(ti.name, top)
            if ti.isreg():
                member = _Member(rel, "file", ti.mode & 0o755 | 0o600, int(ti.mtime))
                yield member, tf.extractfile(ti)
            elif ti.isdir():
                yield _Member(rel, "dir"), None
            elif ti.issym():
                yield _Member(rel, "symlink", link=ti.linkname), None
            elif ti.islnk():
                yield _Member(rel, "hardlink", link=_member_rel(ti.linkname, top)), None
            else:
                raise _Refused(f"member {ti.name!r} {_SPECIAL}")


def _read_zip(archive: Path, top: str) -> _Read:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            rel = _member_rel(info.filename, top)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                yield _Member(rel, "symlink", link=zf.read(info).decode()), None
            elif info.is_dir() or stat.S_ISDIR(mode):
                yield _Member(rel, "dir"), None
            elif stat.S_ISREG(mode) or stat.S_IFMT(mode) == 0:
                mtime = calendar.timegm((*info.date_time, 0, 0, -1))
                file_mode = (mode & 0o755 | 0o600) if mode else 0o644
                with zf.open(info) as data:
                    yield _Member(rel, "file", file_mode, mtime), data
            else:
                raise _Refused(f"member {info.filename!r} {_SPECIAL}")
