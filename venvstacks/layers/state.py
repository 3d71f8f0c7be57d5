"""The build-state files of a layer (`share/venv/metadata/build-state/`, never shipped).

`install:` and `build:` write them last, as their doit targets (docs/doit.md): each holds only
what follows from the step's inputs, so an identical rerun writes the same bytes and wakes
nothing above. Only `env.json` and `modules.json` are read back, to decide what a rerun keeps;
a damaged one counts as nothing recorded, so the step redoes its work. `install:` also writes
`dependencies.json`, which `lock:` of the layers above reads (its class: `lock/depmeta.py`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvstacks.fsutil import dump_json, read_bounded_text, read_json_object, write_atomic
from venvstacks.jsondoc import DocumentError, Fields
from venvstacks.layerconfig import LayerConfig
from venvstacks.layout import ENV_IDENTITY, MODULES_STATE
from venvstacks.runtimes.record import RuntimeRecord


@dataclass(frozen=True)
class EnvIdentity:
    """`env.json`: what a layer's environment was made from; another identity remakes it."""

    kind: str  # "runtime": the runtime unpacked; "venv": a venv on it
    runtime: RuntimeRecord
    target: str  # the install target, as `Target.describe` says it
    runtime_dir: str | None = None  # venvs: the runtime layer's folder name

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "runtime": self.runtime.to_json()}
        if self.runtime_dir is not None:
            data["runtime_dir"] = self.runtime_dir
        return {**data, "target": self.target}

    @classmethod
    def from_json(cls, data: Any, path: Path) -> EnvIdentity:
        f = Fields.of(data, path)
        runtime = RuntimeRecord.from_json(f.mapping("runtime") or {})
        if runtime is None:
            raise f.fail("runtime", "is no complete runtime record")
        return cls(f.text("kind"), runtime, f.text("target"), f.opt_text("runtime_dir"))

    @classmethod
    def read(cls, env_dir: Path) -> EnvIdentity | None:
        """What the layer folder recorded; None when nothing (or nothing readable) was."""
        path = env_dir / ENV_IDENTITY
        data = read_json_object(path)
        try:
            return cls.from_json(data, path) if data else None
        except DocumentError:
            return None

    def write(self, env_dir: Path) -> None:
        write_atomic(env_dir / ENV_IDENTITY, dump_json(self.to_json()))


@dataclass(frozen=True)
class Installed:
    """`installed.json`, the target of `install:`: the identity and the packages synced."""

    identity: EnvIdentity
    requirements_hash: str  # of the lock synced to
    packages: tuple[str, ...]  # name==version, sorted

    def text(self) -> str:
        return dump_json(
            {
                **self.identity.to_json(),
                "requirements_hash": self.requirements_hash,
                "packages": list(self.packages),
            }
        )


@dataclass(frozen=True)
class Built:
    """`built.json`, the target of `build:`: the layer config, shared-library links and
    app modules (name -> hash) it was wired with."""

    layer_config: LayerConfig
    dynlib: Mapping[str, str]  # link name -> library path, as in `dynlib.json`
    modules: Mapping[str, str]

    def text(self) -> str:
        data = {"layer_config": self.layer_config.to_json(), "dynlib": dict(self.dynlib)}
        return dump_json({**data, "modules": dict(self.modules)})


def dynlib_text(links: Mapping[str, str]) -> str:
    """`dynlib.json`: a layer's shared-library links, which upper layers' `build:` depends on."""
    return dump_json(dict(links))


def previous_modules(env_dir: Path) -> list[str]:
    """`modules.json`: the app module names last copied in (so dropped ones are removed)."""
    try:
        names = json.loads(read_bounded_text(env_dir / MODULES_STATE))
    except (OSError, ValueError):
        return []
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def modules_text(names: list[str]) -> str:
    return json.dumps(names)
