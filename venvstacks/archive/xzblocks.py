"""Reading our .xz archives with every core.

Publishing writes an .xz file as a run of independent xz *streams*, one per 32 MiB block
(blockstream.py). Each stream ends with an index saying how long it is, so the whole file can
be cut into its streams from the end, without decompressing anything, and the streams
decompressed at the same time. ``open_xz(path)`` returns a readable stream of the
decompressed bytes, in order, from a few streams decompressed at once on the shared pool,
each handed on in pieces as it is decoded: reading (and writing files) starts a piece after
the first stream does, not once it has ended.

Any other .xz file (one stream, however many blocks; an index that does not parse; a stream
claiming more than :data:`MAX_STREAM` bytes) is decoded in a child process (xzchild.py), or,
where none can run, the plain way with ``lzma.LZMAFile``: the same bytes, on one core. A
damaged stream raises :class:`lzma.LZMAError` every way.
"""

from __future__ import annotations

import contextlib
import io
import lzma
import os
import queue
import struct
import threading
import zlib
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from venvstacks.archive.blockstream import shared_pool
from venvstacks.archive.xzchild import ChildXzReader, decoder_command
from venvstacks.platforms import cores

MAGIC = b"\xfd7zXZ\x00"
FOOTER_MAGIC = b"YZ"
MAX_STREAM = 256 * 1024 * 1024  # uncompressed bytes; bounds the memory of one decoded stream


@dataclass(frozen=True)
class XzStream:
    offset: int  # in the file
    size: int  # compressed, header to footer
    uncompressed: int


class _NotOurs(Exception):
    """The file is not a run of streams we can cut; read it the plain way."""


def open_xz(source: Path | BinaryIO) -> io.RawIOBase | lzma.LZMAFile:
    """The decompressed content of ``source`` (a path, or an open file that stays open and is
    read from its start), streams decoded in parallel when they can be, else one stream in a
    child process (xzchild.py) when there is a decoder to run."""
    with contextlib.ExitStack() as owned:
        f = owned.enter_context(source.open("rb")) if isinstance(source, Path) else source
        try:
            streams = _split(f)
        except (_NotOurs, OSError):
            streams = []
        if len(streams) >= 2:
            return ParallelXzReader(os.dup(f.fileno()), streams)
        command = decoder_command()
        if command is not None:  # one stream: decoded beside us, on another core
            return ChildXzReader(f.fileno(), command)
    if isinstance(source, Path):
        return lzma.LZMAFile(source, "rb")
    source.seek(0)
    return lzma.LZMAFile(source, "rb")


def split_streams(path: Path) -> list[XzStream]:
    """The xz streams of ``path``, first to last, read from their indexes (nothing decoded)."""
    with path.open("rb") as f:
        return _split(f)


def _split(f: IO[bytes]) -> list[XzStream]:
    end = f.seek(0, os.SEEK_END)
    streams: list[XzStream] = []
    while end > 0:
        end = _skip_padding(f, end)
        if end == 0:
            break
        stream = _stream_ending_at(f, end)
        streams.append(stream)
        end = stream.offset
    streams.reverse()
    return streams


def _skip_padding(f: IO[bytes], end: int) -> int:
    # Stream padding: groups of four zero bytes between and after streams.
    while end >= 4:
        f.seek(end - 4)
        if f.read(4) != b"\0\0\0\0":
            break
        end -= 4
    return end


def _stream_ending_at(f: IO[bytes], end: int) -> XzStream:
    if end < 24:
        raise _NotOurs("too short for an xz stream")
    f.seek(end - 12)
    footer = f.read(12)
    crc, backward = struct.unpack("<II", footer[:8])
    if footer[10:] != FOOTER_MAGIC or zlib.crc32(footer[4:10]) != crc:
        raise _NotOurs("no xz stream footer")
    index_size = (backward + 1) * 4
    index_start = end - 12 - index_size
    if index_start < 12:
        raise _NotOurs("index larger than the file")
    f.seek(index_start)
    blocks_size, uncompressed = _parse_index(f.read(index_size))
    start = index_start - blocks_size - 12
    if start < 0:
        raise _NotOurs("blocks larger than the file")
    f.seek(start)
    header = f.read(12)
    if header[:6] != MAGIC or header[6:8] != footer[8:10]:
        raise _NotOurs("no matching xz stream header")
    if uncompressed > MAX_STREAM:
        raise _NotOurs("a stream too large to hold in memory")
    return XzStream(start, end - start, uncompressed)


def _parse_index(index: bytes) -> tuple[int, int]:
    """(total padded size of the blocks, total uncompressed size) from an xz index."""
    if len(index) < 8 or index[0] != 0 or zlib.crc32(index[:-4]) != struct.unpack("<I", index[-4:])[0]:
        raise _NotOurs("bad xz index")
    pos = 1
    count, pos = _varint(index, pos)
    if count > len(index):  # every record takes at least two bytes
        raise _NotOurs("bad xz index record count")
    blocks = uncompressed = 0
    for _ in range(count):
        unpadded, pos = _varint(index, pos)
        size, pos = _varint(index, pos)
        blocks += (unpadded + 3) & ~3
        uncompressed += size
    return blocks, uncompressed


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    for _ in range(9):
        if pos >= len(data) - 4:
            raise _NotOurs("truncated xz index")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos
    raise _NotOurs("xz index number too long")


_PIECE = 1 << 20  # decoded bytes handed on at a time: reading starts before a stream ends

_Piece = bytes | BaseException | None  # None: the stream is done


@dataclass(frozen=True)
class _Decoding:
    """One stream being decoded on the shared pool, its pieces queued as they come."""

    pieces: queue.SimpleQueue[_Piece]
    stop: threading.Event  # set when the reader closes: the decoding ends at its next piece
    done: Future[None]


def _decode(fd: int, stream: XzStream, pieces: queue.SimpleQueue[_Piece], stop: threading.Event) -> None:
    try:
        data = os.pread(fd, stream.size, stream.offset)
        decoder = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        total = 0
        while not decoder.eof and not stop.is_set():
            piece = decoder.decompress(data, max_length=_PIECE)
            data = b""
            total += len(piece)
            if total > stream.uncompressed or (not piece and decoder.needs_input):
                break  # more than its index says, or its input ended early
            pieces.put(piece)
        if not stop.is_set() and (not decoder.eof or total != stream.uncompressed or decoder.unused_data):
            raise lzma.LZMAError(f"xz stream at byte {stream.offset} does not decode to its indexed size")
        pieces.put(None)
    except BaseException as exc:  # handed to the reader, raised there
        pieces.put(exc)


class ParallelXzReader(io.RawIOBase):
    """Reads the decoded streams in order, with up to ``cores() + 1`` decoding at once; each
    stream's bytes are read as they are decoded, in pieces of 1 MiB."""

    def __init__(self, fd: int, streams: list[XzStream]) -> None:
        """``fd``: the open .xz file, which the reader closes (pass it a duplicate to keep one)."""
        super().__init__()
        self._fd = fd
        self._todo = deque(streams)
        self._window = cores() + 1
        self._ahead: deque[_Decoding] = deque()
        self._current = memoryview(b"")
        self._fill()

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        pool = shared_pool()
        while self._todo and len(self._ahead) < self._window:
            pieces: queue.SimpleQueue[_Piece] = queue.SimpleQueue()
            stop = threading.Event()
            done = pool.submit(_decode, self._fd, self._todo.popleft(), pieces, stop)
            self._ahead.append(_Decoding(pieces, stop, done))

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(1 << 20), b""))
        self._wait_for_bytes()
        chunk = bytes(self._current[:size])
        self._current = self._current[size:]
        return chunk

    def read_piece(self) -> memoryview:
        """The decoded bytes of the current piece not read yet, uncopied (empty at the end)."""
        self._wait_for_bytes()
        piece, self._current = self._current, memoryview(b"")
        return piece

    def _wait_for_bytes(self) -> None:
        if self.closed:
            raise ValueError("read from a closed xz reader")
        while not self._current and self._ahead:
            piece = self._ahead[0].pieces.get()
            if piece is None:  # that stream is done: start the next one
                self._ahead.popleft()
                self._fill()
            elif isinstance(piece, BaseException):
                raise piece
            else:
                self._current = memoryview(piece)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self.closed:
            return
        self._todo.clear()
        for decoding in self._ahead:
            decoding.stop.set()
            decoding.done.cancel()
        for decoding in self._ahead:
            if not decoding.done.cancelled():
                decoding.done.exception()  # wait: no worker may still read our fd once it is closed
        self._ahead.clear()
        os.close(self._fd)
        super().close()
