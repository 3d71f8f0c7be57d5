"""Writing reproducible archives (the reading side is unpack.py).

``write_archive(path, entries, fmt, epoch=lock_time, progress=cb)`` writes the
:class:`ArchiveEntry` items (a file, folder or symlink on disk, and its name in the archive)
sorted by name, with every mtime set to ``epoch``, owners 0/"", and modes 0o755 (folders,
executables) or 0o644. Compressors are pinned: gzip level 6 without name or mtime in its
header, in fixed 4 MiB blocks compressed in parallel as concatenated gzip members; xz preset
6 in fixed 32 MiB blocks compressed in parallel (both in blockstream.py); zstd level 10 in
multi-threaded mode (the same bytes for any worker count >= 1, unlike single-threaded mode);
zip members with a fixed ``date_time``, Unix ``external_attr``, no extra fields. The file is
written beside ``path`` and renamed into place last.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import zstandard

from venvstacks.archive.blockstream import GZIP_BLOCK_SIZE, gzip_writer, xz_writer
from venvstacks.archive.formats import ArchiveEntry, ArchiveFormat, normal_mode
from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import deleted_if_left, remove_stale_temporaries, sha256_file, temporary_file
from venvstacks.platforms import cores
from venvstacks.tools import check_stopping

Progress = Callable[[int, int], None]
"""Called with (bytes of file content done, total bytes of file content)."""

_CHUNK = 1 << 20
_GZIP_LEVEL = 6
_ZSTD_LEVEL = 10
_ZIP_EPOCH_MIN = 315532800  # 1980-01-01: the earliest time a zip member can carry


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
    gzip_level: int = _GZIP_LEVEL,
) -> ArchiveInfo:
    """Write a reproducible archive of ``entries`` to ``path``; return its size and sha256.

    ``gzip_level`` only matters for tar.gz: runtime archives packed from a local interpreter
    never leave the machine and use 1, for speed.
    """
    members = sorted(entries)
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise VenvStacksError(f"{path.name}: duplicate archive member names")
    sizes = [os.lstat(m.source) for m in members]
    total = sum(st.st_size for st in sizes if stat.S_ISREG(st.st_mode))
    # xz takes a while after the last file is read: count the blocks it has finished instead.
    report = _Progress(total, progress, count_reads=fmt is not ArchiveFormat.TAR_XZ)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    check_stopping()  # a thread still going after Ctrl-C or SIGTERM starts no new archive
    # Named and registered before it exists: a Ctrl-C landing just after the file is made
    # (mkstemp's own return was such a gap) still finds it to delete.
    with deleted_if_left(temporary_file(path.parent, path.name)) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw:
            if fmt is ArchiveFormat.ZIP:
                _write_zip(raw, members, epoch, report)
            else:
                with _compressor(raw, fmt, report, gzip_level) as stream:
                    _write_tar(stream, members, epoch, report)
        _readable_by_all(tmp)
        os.replace(tmp, path)
    return ArchiveInfo(path, path.stat().st_size, sha256_file(path))


def _readable_by_all(path: Path) -> None:
    # Created 0600; a published archive is meant to be shared. (Reading the umask
    # would mean setting it, which is process-wide and unsafe with parallel publishing.)
    path.chmod(0o644)


@contextlib.contextmanager
def _compressor(raw: IO[bytes], fmt: ArchiveFormat, report: _Progress, gzip_level: int) -> Iterator[Any]:
    if fmt is ArchiveFormat.TAR_GZ:
        with gzip_writer(raw, gzip_level, GZIP_BLOCK_SIZE) as gz:
            yield gz
    elif fmt is ArchiveFormat.TAR_XZ:
        with xz_writer(raw, on_output=report.compressed) as xz:
            yield xz
    else:
        cctx = zstandard.ZstdCompressor(level=_ZSTD_LEVEL, threads=cores(), write_checksum=True)
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
                info.mode = normal_mode(st.st_mode)
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
                info.external_attr = (stat.S_IFREG | normal_mode(st.st_mode)) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                info.file_size = st.st_size
                with m.source.open("rb") as src, zf.open(info, "w") as dst:
                    for block in iter(lambda: src.read(_CHUNK), b""):
                        dst.write(block)
                        report.add(len(block))
            else:
                raise VenvStacksError(f"{m.source}: cannot archive a special file")


class _Progress:
    def __init__(self, total: int, callback: Progress | None, *, count_reads: bool = True) -> None:
        self.total, self.done, self.callback = total, 0, callback
        self.count_reads = count_reads
        if callback:
            callback(0, total)

    def add(self, n: int) -> None:
        check_stopping()  # the archive's thread stops at its next read once the run stops
        self.done += n
        if self.callback and n and self.count_reads:
            self.callback(self.done, self.total)

    def compressed(self, stream_bytes: int) -> None:
        # The tar stream is a little longer than the file contents (headers, padding).
        if self.callback:
            self.callback(min(stream_bytes, self.total), self.total)

    def reader(self, f: IO[bytes]) -> Any:
        """A file tarfile can pull a member's bytes from while we count them."""
        progress = self

        class Reader:
            def read(self, n: int = -1) -> bytes:
                data = f.read(n)
                progress.add(len(data))
                return data

        return Reader()
