"""Just enough of the ELF format to tell a shared library and read its soname.

The dynamic loader finds libraries by soname (`DT_SONAME`), which may differ from the file
name (`libfoo.so.1.2.3` says `libfoo.so.1`). Reading it ourselves keeps the build free of
binutils. Only the program headers are used: they are what the loader itself reads, and
stripped libraries may have no section headers at all.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_MAGIC = b"\x7fELF"
_ET_DYN = 3
_PT_LOAD = 1
_PT_DYNAMIC = 2
_DT_NULL = 0
_DT_STRTAB = 5
_DT_SONAME = 14


@dataclass(frozen=True)
class _Format:
    """Struct layouts of one ELF class (32/64-bit) and byte order."""

    end: str  # "<" or ">"
    wide: bool  # 64-bit

    def unpack(self, fmt: str, data: bytes, offset: int = 0) -> tuple[int, ...]:
        return struct.unpack_from(self.end + fmt, data, offset)

    @property
    def word(self) -> str:
        return "Q" if self.wide else "I"


@dataclass(frozen=True)
class _Segment:
    kind: int
    offset: int
    vaddr: int
    filesz: int


def shared_library_soname(path: Path) -> str | None:
    """None if `path` is not an ELF shared object; else its soname ("" when it has none).

    Malformed files count as "not a shared library": the loader could not use them either.
    """
    try:
        with path.open("rb") as f:
            return _read_soname(f)
    except (OSError, struct.error, ValueError, UnicodeDecodeError):
        return None


def _read_soname(f: BinaryIO) -> str | None:
    ident = f.read(16)
    if len(ident) < 16 or ident[:4] != _MAGIC or ident[4] not in (1, 2) or ident[5] not in (1, 2):
        return None
    fmt = _Format(end="<" if ident[5] == 1 else ">", wide=ident[4] == 2)
    header = f.read(48 if fmt.wide else 36)
    (e_type,) = fmt.unpack("H", header)
    if e_type != _ET_DYN:
        return None
    # e_phoff sits after e_type, e_machine, e_version and e_entry.
    phoff_at = 16 if fmt.wide else 12
    (phoff,) = fmt.unpack(fmt.word, header, phoff_at)
    phentsize, phnum = fmt.unpack("HH", header, 38 if fmt.wide else 26)
    segments = [_segment(f, fmt, phoff + i * phentsize) for i in range(phnum)]
    dynamic = next((s for s in segments if s.kind == _PT_DYNAMIC), None)
    if dynamic is None:
        return None  # a position-independent executable, not a library
    entries = _dynamic_entries(f, fmt, dynamic)
    if _DT_SONAME not in entries or _DT_STRTAB not in entries:
        return ""
    strtab = _file_offset(segments, entries[_DT_STRTAB])
    f.seek(strtab + entries[_DT_SONAME])
    raw = f.read(4096)
    if b"\0" not in raw:
        raise ValueError("unterminated soname")
    return raw.split(b"\0", 1)[0].decode()


def _segment(f: BinaryIO, fmt: _Format, at: int) -> _Segment:
    f.seek(at)
    if fmt.wide:
        kind, _flags, offset, vaddr, _paddr, filesz = fmt.unpack("IIQQQQ", f.read(40))
    else:
        kind, offset, vaddr, _paddr, filesz = fmt.unpack("IIIII", f.read(20))
    return _Segment(kind, offset, vaddr, filesz)


def _dynamic_entries(f: BinaryIO, fmt: _Format, dynamic: _Segment) -> dict[int, int]:
    f.seek(dynamic.offset)
    data = f.read(dynamic.filesz)
    size = 16 if fmt.wide else 8
    entries: dict[int, int] = {}
    for at in range(0, len(data) - size + 1, size):
        tag, value = fmt.unpack(fmt.word * 2, data, at)
        if tag == _DT_NULL:
            break
        entries.setdefault(tag, value)
    return entries


def _file_offset(segments: list[_Segment], vaddr: int) -> int:
    """Where the loaded address `vaddr` comes from in the file."""
    for s in segments:
        if s.kind == _PT_LOAD and s.vaddr <= vaddr < s.vaddr + s.filesz:
            return vaddr - s.vaddr + s.offset
    raise ValueError("string table outside the loaded segments")
