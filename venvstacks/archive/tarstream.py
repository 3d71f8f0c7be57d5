"""Reading a tar stream member by member with little work per member and no extra copies.

Python's ``tarfile`` costs a deploy more than its decoding: several Python calls per header
field, a 10 KiB read loop that joins and slices the decoded bytes, and a buffered file
object per member. :class:`TarStream` parses the headers our layers and runtime archives
use (ustar, GNU long names and long links, pax ``path``/``linkpath``/``size``/``mtime``
records) itself, and writes a member's bytes to a file straight from the decoded pieces
it is handed (:func:`pieces_of`).

It reads members exactly as ``tarfile`` does: the same names (a ustar prefix joined, a V7
folder's trailing slash, long names and pax records overriding the header, the first of
several extension headers winning), the same numbers (octal or base-256, checksums signed
or not), the same end (a zero block, or the end of the stream before a header). Where
tarfile would silently stop at a damaged header past the first (a bad checksum, a bad
number, a cut header), this refuses: a layer cut short there is damaged. Headers it leaves
to tarfile (sparse files, global pax headers, pax ``hdrcharset``) raise :class:`Unusual`;
the caller then reads the whole archive again with tarfile.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

BLOCK = 512
MAX_EXTENSION = 1 << 20  # bytes of one long name or pax header: more is no real archive
_ZEROS = bytes(BLOCK)
_FS_ENCODING = sys.getfilesystemencoding()  # tarfile's default encoding for names
_CHUNK = 1 << 20
_MAX_TIME = 1 << 62  # seconds either side of 1970

REGULAR = (b"0", b"\0", b"7")  # regular file, old regular file, contiguous file
DIR, SYMLINK, HARDLINK = b"5", b"2", b"1"
_LONGNAME, _LONGLINK = b"L", b"K"
_PAX = (b"x", b"X")  # X: Solaris' pax header
_EXTENSIONS = (_LONGNAME, _LONGLINK, *_PAX)
_UNUSUAL = (b"S", b"g")  # GNU sparse file, pax global header
_GNU_TYPES = (_LONGNAME, _LONGLINK, b"S")
_PAX_RECORD = re.compile(rb"(\d+) ([^=]+)=")

Piece = bytes | bytearray | memoryview


class TarDamaged(Exception):
    """The stream is not a well-formed tar; the message is tarfile's for the same fault."""


class Unusual(Exception):
    """A header kind this reader leaves to tarfile."""


@dataclass(frozen=True)
class Header:
    name: str
    type: bytes  # one byte, as in the header (an old-style folder made b"5")
    mode: int
    size: int  # bytes of data that follow (regular files only)
    mtime: int  # seconds; a pax mtime's fraction is dropped, as int(tarinfo.mtime) does
    linkname: str


def pieces_of(stream: Any) -> Callable[[], Piece]:
    """What hands the decoded bytes of ``stream`` on a piece at a time (b"" at the end):
    its own ``read_piece`` (uncopied pieces) where it has one, else ``read``."""
    read_piece: Callable[[], Piece] | None = getattr(stream, "read_piece", None)
    if read_piece is not None:
        return read_piece
    return lambda: stream.read(_CHUNK)


class TarStream:
    """The members of the tar stream whose decoded bytes ``read_piece`` hands on.

    Iterate :meth:`members`; a regular file's data is written with :meth:`write_to` before
    the next member is asked for (what is not written is skipped)."""

    def __init__(self, read_piece: Callable[[], Piece]) -> None:
        self._read_piece = read_piece
        self._piece = memoryview(b"")
        self._pos = 0
        self._data_left = 0  # of the current member's data
        self._padding = 0  # after it, up to the next block

    # --- reading the stream -----------------------------------------------------------

    def _fill(self) -> bool:
        """The next piece, when the current one is used up; False at the end of the stream."""
        while self._pos >= len(self._piece):
            piece = self._read_piece()
            if not piece:
                return False
            self._piece, self._pos = memoryview(piece).cast("B"), 0
        return True

    def _take(self, size: int) -> bytes:
        """Up to ``size`` bytes (fewer only at the end of the stream)."""
        pos, end = self._pos, self._pos + size
        if end <= len(self._piece):  # nearly always: one slice of the piece
            self._pos = end
            return bytes(self._piece[pos:end])
        parts = []
        while size and self._fill():
            part = self._piece[self._pos : self._pos + size]
            parts.append(bytes(part))
            self._pos += len(part)
            size -= len(part)
        return b"".join(parts)

    def _skip(self, size: int) -> None:
        while size:
            if not self._fill():
                raise TarDamaged("unexpected end of data")
            step = min(size, len(self._piece) - self._pos)
            self._pos += step
            size -= step

    def write_to(self, fd: int) -> None:
        """Write the rest of the current member's data to ``fd``."""
        while self._data_left:
            if not self._fill():
                raise TarDamaged("unexpected end of data")
            step = min(self._data_left, len(self._piece) - self._pos)
            view = self._piece[self._pos : self._pos + step]
            write_all(fd, view)
            self._pos += step
            self._data_left -= step

    # --- parsing ----------------------------------------------------------------------

    def members(self) -> Iterator[Header]:
        first = True
        while (member := self._next(first)) is not None:
            first = False
            yield member

    def _next(self, first: bool) -> Header | None:
        self._skip(self._data_left + self._padding)
        self._data_left = self._padding = 0
        overrides: dict[str, Any] = {}  # from extension headers: the first one wins
        gnu_name = False  # the name came from a GNU long name (its own slash rule)
        chained = False  # after an extension header: its member must follow
        while True:
            buf = self._take(BLOCK)
            if len(buf) < BLOCK or buf == _ZEROS:
                if chained or (first and not buf) or (buf and buf != _ZEROS):
                    raise TarDamaged(_end_fault(buf, first=first and not chained))
                return None  # the end: a zero block, or no more data
            header = _parse(buf)
            if header.type in _UNUSUAL:
                raise Unusual
            if header.type not in _EXTENSIONS:
                return self._member(header, overrides, gnu_name)
            # A negative size (base-256 numbers can be) would move the reader back: refused.
            if not 0 <= header.size <= MAX_EXTENSION:
                raise TarDamaged(f"an extension header of {header.size} bytes")
            data = self._take(_blocks(header.size))
            if header.type in _PAX:
                found = _pax_fields(data)
            else:
                found = {"name" if header.type == _LONGNAME else "linkname": _nts(data)}
            for key, value in found.items():
                if key not in overrides:
                    overrides[key] = value
                    gnu_name = gnu_name or (key == "name" and header.type == _LONGNAME)
            chained = True

    def _member(self, header: Header, overrides: dict[str, Any], gnu_name: bool) -> Header:
        if overrides:
            name = overrides.get("name", header.name)
            if gnu_name and header.type == DIR:
                name = name.removesuffix("/")
            header = Header(
                name,
                header.type,
                header.mode,
                overrides.get("size", header.size),
                _seconds(overrides.get("mtime", header.mtime)),
                overrides.get("linkname", header.linkname),
            )
        if header.size < 0:
            raise TarDamaged("invalid header")
        if header.type in REGULAR:
            self._data_left, self._padding = header.size, _blocks(header.size) - header.size
        return header


def write_all(fd: int, data: Piece) -> None:
    view = memoryview(data)
    while view:  # a regular file takes it all unless the disk is full (an OSError)
        view = view[os.write(fd, view) :]


def _end_fault(buf: bytes, *, first: bool) -> str:
    """tarfile's words for a stream ending where a header should be."""
    if not buf:
        return "empty file" if first else "empty header"
    return "end of file header" if buf == _ZEROS else "truncated header"


def _parse(buf: bytes) -> Header:
    unsigned = sum(buf) - sum(buf[148:156]) + 256  # the checksum field counts as spaces
    checksum = _number(buf[148:156])
    if checksum != unsigned and checksum != _signed_sum(buf):
        raise TarDamaged("bad checksum")
    name = _nts(buf[0:100])
    mode, size, mtime = _number(buf[100:108]), _number(buf[124:136]), _number(buf[136:148])
    for start in (108, 116, 329, 337):  # uid, gid, device numbers: tarfile checks them too
        _number(buf[start : start + 8])
    kind = buf[156:157]
    if kind == b"\0" and name.endswith("/"):  # V7: a folder is a file whose name ends in /
        kind = DIR
    if buf[345] and kind not in _GNU_TYPES:  # ustar: the name's first part
        name = _nts(buf[345:500]) + "/" + name
    if kind == DIR:  # tarfile strips them before and after joining: the same
        name = name.rstrip("/")
    return Header(name, kind, mode, size, _seconds(mtime), _nts(buf[157:257]) if buf[157] else "")


def _signed_sum(buf: bytes) -> int:
    # Some old tars (Sun, NeXT) summed signed chars.
    high = sum(1 for i, b in enumerate(buf) if b >= 128 and not 148 <= i < 156)
    return sum(buf) - sum(buf[148:156]) + 256 - 256 * high


def _number(field: bytes) -> int:
    """An octal number, or a base-256 one (first byte 0x80, or 0xff: negative)."""
    if field[0] in (0o200, 0o377):
        n = int.from_bytes(field[1:], "big")
        return n - 256 ** (len(field) - 1) if field[0] == 0o377 else n
    end = field.find(0)
    try:
        text = (field if end < 0 else field[:end]).decode("ascii")
        return int(text.strip() or "0", 8)
    except ValueError:  # UnicodeDecodeError too
        raise TarDamaged("invalid header") from None


def _seconds(mtime: float) -> int:
    if not (math.isfinite(mtime) and abs(mtime) < _MAX_TIME):  # os.utime could not take it
        raise TarDamaged("invalid header")
    return int(mtime)


def _nts(field: bytes) -> str:
    end = field.find(0)
    return (field if end < 0 else field[:end]).decode(_FS_ENCODING, "surrogateescape")


def _blocks(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _pax_fields(data: bytes) -> dict[str, Any]:
    """The fields a pax header sets, as tarfile reads them (a later record wins)."""
    found: dict[str, Any] = {}
    pos = 0
    while (match := _PAX_RECORD.match(data, pos)) is not None:
        length = int(match.group(1))
        if length == 0:
            raise TarDamaged("invalid header")
        value = data[match.end(2) + 1 : match.start(1) + length - 1]
        keyword = match.group(2).decode("utf-8", "surrogateescape")
        if keyword == "hdrcharset" or keyword.startswith("GNU.sparse."):
            raise Unusual
        if keyword == "path":
            found["name"] = _pax_text(value).rstrip("/")
        elif keyword == "linkpath":
            found["linkname"] = _pax_text(value)
        elif keyword == "size":
            found["size"] = _pax_number(int, value)
        elif keyword == "mtime":
            found["mtime"] = _pax_number(float, value)
        pos += length
    return found


def _pax_text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode(_FS_ENCODING, "surrogateescape")


def _pax_number(kind: Callable[[str], int | float], value: bytes) -> int | float:
    try:
        return kind(value.decode("utf-8", "surrogateescape"))
    except ValueError:
        return 0  # as tarfile reads a number it cannot parse
