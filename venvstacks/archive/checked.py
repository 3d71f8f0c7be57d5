"""An archive hashed from an open file that stays open, so the unpacker reads exactly the
bytes that were checked: another file renamed into its place meanwhile is never read, and a
write to the file itself shows afterwards in its size or modification time (not its change
time: that moves too when another file is renamed over it, which leaves these bytes alone).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


def _fingerprint(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_size, st.st_mtime_ns


@dataclass(frozen=True)
class CheckedArchive:
    path: Path
    file: BinaryIO  # open; the caller closes it (it is a context manager)
    size: int
    sha256: str
    fingerprint: tuple[int, int]  # size and modification time when it was hashed

    def __enter__(self) -> CheckedArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()

    def unchanged(self) -> bool:
        """Nothing was written to the file since it was hashed, as far as its size and
        modification time tell (a same-size write within the file system's clock tick does
        not show)."""
        return _fingerprint(self.file.fileno()) == self.fingerprint


def open_checked(path: Path) -> CheckedArchive:
    """Open path and hash it; compare `size` and `sha256` with what they should be."""
    f = path.open("rb")
    try:
        fingerprint = _fingerprint(f.fileno())  # before hashing: a write during it shows too
        sha256 = hashlib.file_digest(f, "sha256").hexdigest()
        f.seek(0)
    except BaseException:
        f.close()
        raise
    return CheckedArchive(path, f, fingerprint[0], sha256, fingerprint)
