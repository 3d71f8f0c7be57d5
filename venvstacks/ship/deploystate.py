"""A deploy folder's state, `.venvstacks-deploy.json`: what each deployed layer was deployed
from, and where the folder was then.

`deploy` reads it to skip layers whose archive is unchanged and to notice a moved folder
(their `postinstall.py` reruns), and rewrites it after each layer; `verify` reads the file
manifest hashes it recorded (docs/deployment.md). A damaged state only means nothing was
recorded: every layer is deployed afresh.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from venvstacks.fsutil import dump_json, read_json_object, write_atomic
from venvstacks.jsondoc import DocumentError, Fields

STATE_FILE = ".venvstacks-deploy.json"


@dataclass(frozen=True)
class DeployedLayer:
    sha256: str  # of the archive it was unpacked from
    layer_name: str | None = None
    files_manifest_sha256: str | None = None  # the published anchor verify checks against

    def to_json(self) -> dict[str, Any]:
        data = {"layer_name": self.layer_name, "sha256": self.sha256}
        return {**data, "files_manifest_sha256": self.files_manifest_sha256}


@dataclass(frozen=True)
class DeployState:
    path: str | None = None  # the folder as it was when last deployed into
    published: str | None = None  # the publish folder deployed from (what verify says to redeploy from)
    layers: Mapping[str, DeployedLayer] = field(default_factory=dict)  # by install target

    def with_layer(self, target: str, layer: DeployedLayer) -> DeployState:
        return replace(self, layers={**self.layers, target: layer})

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"layers": {t: la.to_json() for t, la in self.layers.items()}}
        if self.path is not None:
            data["path"] = self.path
        if self.published is not None:
            data["published"] = self.published
        return data

    @classmethod
    def from_json(cls, data: Any, path: Path) -> DeployState:
        f = Fields.of(data, path)
        layers = {}
        for target, entry in (f.mapping("layers") or {}).items():
            e = Fields.of(entry, path, within=f"layers.{target}")
            layers[target] = DeployedLayer(
                e.text("sha256"), e.opt_text("layer_name"), e.opt_text("files_manifest_sha256")
            )
        return cls(f.opt_text("path"), f.opt_text("published"), layers)

    @classmethod
    def read(cls, folder: Path) -> DeployState:
        """The folder's state; an empty one when there is none or it cannot be read."""
        path = folder / STATE_FILE
        data = read_json_object(path)
        try:
            return cls.from_json(data, path)
        except DocumentError:
            return cls()

    def write(self, folder: Path) -> None:
        write_atomic(folder / STATE_FILE, dump_json(self.to_json()))
