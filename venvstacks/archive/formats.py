"""What an archive is made of: its format and its members (light: no compressor imported)."""

from __future__ import annotations

import enum
import stat
from dataclasses import dataclass
from pathlib import Path

from venvstacks.errors import VenvStacksError


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


def normal_mode(st_mode: int) -> int:
    # Keep only "is it executable": umask and checkout modes must not reach the bytes.
    if stat.S_ISDIR(st_mode) or st_mode & stat.S_IXUSR:
        return 0o755
    return 0o644
