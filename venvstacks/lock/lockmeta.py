"""A lock's metadata (`pylock.<layer>.meta.json`) and its adopted inputs (`pylock.<layer>.inputs.json`).

`lock:` writes the metadata beside each pylock; validity (`validity.py`), versioning
(`locking.py`) and the export and publish metadata (`engine/outputs.py`) read it. The same
file may come from the existing venvstacks (`by_existing_tool`), which records fewer
inputs (see `upstream.py`); such a file is read, never written. docs/doit.md says what
each input covers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from venvstacks.fsutil import dump_json, read_json_object
from venvstacks.jsondoc import Fields

_FIX = "delete it and lock the layer again"


@dataclass(frozen=True)
class InputHashes:
    """What a lock records of its inputs; equal hashes mean uv would resolve the same."""

    lock_input_hash: str | None = None  # the layer's requirements
    other_inputs_hash: str | None = None  # every other lock input (uvconfig.lock_inputs)
    constraints_hash: str | None = None  # the lower layers' pins (ours only)

    @classmethod
    def read(cls, f: Fields) -> InputHashes:
        return cls(
            f.opt_text("lock_input_hash"), f.opt_text("other_inputs_hash"), f.opt_text("constraints_hash")
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "lock_input_hash": self.lock_input_hash,
            "other_inputs_hash": self.other_inputs_hash,
            "constraints_hash": self.constraints_hash,
        }


@dataclass(frozen=True)
class LockMetadata:
    layer_name: str | None = None
    requirements_hash: str | None = None  # of the pylock as locked: an edit shows
    inputs: InputHashes = field(default_factory=InputHashes)
    other_inputs: dict[str, str] | None = None  # each other input's own hash, to name a change
    version_inputs_hash: str | None = None  # what gives a versioned layer its next version
    lock_version: int | None = None  # None: not recorded (the existing tool's unversioned locks)
    locked_at: str | None = None  # ISO 8601, UTC: the archives' file times
    # The exact X.Y.Z a marker of the lock depends on (None: none does); `full_version_recorded`
    # False for a lock made before it was recorded, which is then redone.
    python_full_version: str | None = None
    full_version_recorded: bool = True

    @classmethod
    def from_json(cls, data: Any, path: Path) -> LockMetadata:
        f = Fields.of(data, path, fix=_FIX)
        return cls(
            layer_name=f.opt_text("layer_name"),
            requirements_hash=f.opt_text("requirements_hash"),
            inputs=InputHashes.read(f),
            other_inputs=f.text_map("other_inputs"),
            version_inputs_hash=f.opt_text("version_inputs_hash"),
            lock_version=f.integer("lock_version"),
            locked_at=f.opt_text("locked_at"),
            python_full_version=f.opt_text("python_full_version"),
            full_version_recorded=f.has("python_full_version"),
        )

    @classmethod
    def read(cls, path: Path) -> LockMetadata | None:
        """The metadata beside a lock; None when there is none, or it is no JSON object (a
        damaged file means no lock was recorded: the next `lock:` writes it again)."""
        data = read_json_object(path)
        return cls.from_json(data, path) if data else None

    @property
    def by_existing_tool(self) -> bool:
        """Written by the existing venvstacks: it records no lower layers' pins."""
        return self.inputs.constraints_hash is None and self.inputs.lock_input_hash is not None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "layer_name": self.layer_name,
            "requirements_hash": self.requirements_hash,
            **self.inputs.to_json(),
            "other_inputs": self.other_inputs,
            "version_inputs_hash": self.version_inputs_hash,
            "lock_version": self.lock_version,
            "locked_at": self.locked_at,
        }
        if self.full_version_recorded:
            data["python_full_version"] = self.python_full_version
        return data

    def text(self) -> str:
        return dump_json(self.to_json())


@dataclass(frozen=True)
class AdoptedInputs:
    """Our input hashes, recorded beside a valid lock of the existing venvstacks (its own
    files untouched), so a change it never recorded relocks it (see `validity.adopt`)."""

    requirements_hash: str | None  # of the lock they were recorded for
    inputs: InputHashes
    other_inputs: dict[str, str] | None

    @classmethod
    def from_json(cls, data: Any, path: Path) -> AdoptedInputs:
        f = Fields.of(data, path, fix=_FIX)
        return cls(f.opt_text("requirements_hash"), InputHashes.read(f), f.text_map("other_inputs"))

    @classmethod
    def read(cls, path: Path) -> AdoptedInputs | None:
        data = read_json_object(path)
        return cls.from_json(data, path) if data else None

    def to_json(self) -> dict[str, Any]:
        return {
            "requirements_hash": self.requirements_hash,
            **self.inputs.to_json(),
            "other_inputs": self.other_inputs,
        }

    def text(self) -> str:
        return dump_json(self.to_json())
