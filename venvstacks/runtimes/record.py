"""The one record of a runtime: what `runtime:` resolved a request to, and where the cache
keeps it.

`runtime:<rt>` resolves its request once (cache.ensure_runtime) and writes a
`RuntimeRecord` to the build folder; `lock:`, `install:`, `build:`, `export:`, `publish:`
and `show` read that record and never resolve again. The record holds no path, so moving
the runtime cache changes nothing that depends on it; where the runtime lies unpacked
follows from the record and the cache folder (`unpacked_in`), and is checked on its own.

A cache entry's `runtime.json` is the same record plus its archive's file name. This module
reads JSON only (no network or packing code): `runtime:`'s up-to-date check calls it on
every run, including a no-op one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from venvstacks.fsutil import dump_json, is_sha256_hex, read_json_object
from venvstacks.platforms import host_platform

ENTRY_FILE = "runtime.json"  # in a cache entry: its record, the proof the entry is complete
ENTRY_PYTHON = "python"  # in a cache entry: the unpacked install_only tree


@dataclass(frozen=True)
class RuntimeRecord:
    """What `runtime:` resolved a runtime request to: the exact CPython, where it came from, its hash."""

    request: str  # as written in the stack file, e.g. "cpython@3.11"
    implementation: str
    version: str  # the exact X.Y.Z it resolved to
    source: str  # "download" | "archive" | "local"
    origin: str  # the URL or local path it came from
    archive_sha256: str
    # False when packed from a local interpreter; a record that does not say counts as not
    # portable, so nothing is published as portable on a guess.
    portable: bool = False
    # The platform it runs on (platforms.PLATFORMS); records and entries written before
    # runtimes named one were all this machine's.
    platform: str = field(default_factory=lambda: host_platform().name)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuntimeRecord | None:
        """The record `data` holds (keys it does not know are ignored), or None if it holds none."""
        data = {"platform": host_platform().name, **data}
        values: dict[str, Any] = {}
        for f in fields(cls):  # annotations are strings here (`from __future__ import annotations`)
            value = data.get(f.name)
            if f.type == "bool":  # a flag counts as set only when it says so
                values[f.name] = value is True
            elif isinstance(value, str) and value:
                values[f.name] = value
            else:
                return None
        record = cls(**values)
        return record if is_sha256_hex(record.archive_sha256) else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        # Named for other platforms only: this machine's records read as they always have.
        if self.platform == host_platform().name:
            del data["platform"]
        return data

    @property
    def entry_name(self) -> str:
        """The cache entry folder holding it (one definition for the writer and the readers)."""
        return f"{self.implementation}-{self.version}-{self.source}-{self.archive_sha256[:12]}"

    def same_runtime(self, other: RuntimeRecord) -> bool:
        """The same bytes from the same place, whichever request asked for them."""
        return replace(other, request=self.request) == self


def read_record(path: Path) -> RuntimeRecord | None:
    """The record in a file, or None when it is missing or damaged (nothing recorded)."""
    return RuntimeRecord.from_json(read_json_object(path))


def record_text(record: RuntimeRecord) -> str:
    return dump_json(record.to_json())


@dataclass(frozen=True)
class CacheEntry:
    """`<cache>/<entry_name>/{<archive>, python/, runtime.json}`; the record's request is the
    one it was first fetched for (`for_request` gives it to another request)."""

    folder: Path
    record: RuntimeRecord
    archive_name: str

    @property
    def python_dir(self) -> Path:
        return self.folder / ENTRY_PYTHON

    @property
    def archive(self) -> Path:
        return self.folder / self.archive_name

    def for_request(self, request: str) -> CacheEntry:
        return replace(self, record=replace(self.record, request=request))

    def to_json(self) -> dict[str, Any]:
        return {**self.record.to_json(), "archive": self.archive_name}

    @classmethod
    def read(cls, folder: Path) -> CacheEntry | None:
        """The entry in folder if it is intact and complete, else None (it gets refetched)."""
        meta = read_json_object(folder / ENTRY_FILE)
        archive = meta.get("archive")
        # Entries written before records named no request: the record is the same without.
        record = RuntimeRecord.from_json({"request": "?", **meta})
        if record is None or not isinstance(archive, str) or not archive:
            return None
        if not (folder / ENTRY_PYTHON).is_dir():
            return None
        return cls(folder, record, archive)


def unpacked_in(cache_dir: Path, record: RuntimeRecord) -> CacheEntry | None:
    """The cache entry holding exactly the recorded runtime, or None if the cache lacks it."""
    entry = CacheEntry.read(cache_dir / record.entry_name)
    if entry is None or not record.same_runtime(entry.record):
        return None
    return entry.for_request(record.request)
