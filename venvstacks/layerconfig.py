"""A layer's config, `share/venv/metadata/venvstacks_layer.json`: how a deployed layer finds
its interpreter and the layers below it.

Written at build time (`layers/linking.py`); exporting, deploying and verifying read it
(`ship/`), and so does `postinstall.py` on the target machine, with the standard library
only. Every path is relative to the layer folder (docs/deployment.md; the fields are the
existing venvstacks' own).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import dump_json, load_json_text, read_bounded_text
from venvstacks.jsondoc import Fields
from venvstacks.layout import LAYER_CONFIG


@dataclass(frozen=True)
class LayerConfig:
    python: str  # the layer's interpreter
    py_version: str  # X.Y.Z of its runtime
    site_dir: str
    # The Python that runs its postinstall.py: the runtime's; a runtime's own is `python`.
    # None only in a config that names none: the deploying Python runs it then.
    base_python: str | None
    pylib_dirs: tuple[str, ...] = ()  # lower layers' site-packages, C3 order, runtime last
    dynlib_dirs: tuple[str, ...] = ()  # lower layers' shared-library folders
    app: bool = False  # an application layer: `launch_module` is written, even if null
    launch_module: str | None = None

    @property
    def is_runtime(self) -> bool:
        return self.python == self.base_python

    @classmethod
    def from_json(cls, data: Any, path: Path) -> LayerConfig:
        f = Fields.of(data, path, fix="the layer is damaged or was edited; build or deploy it again")
        return cls(
            python=f.text("python"),
            py_version=f.text("py_version"),
            site_dir=f.text("site_dir"),
            base_python=f.opt_text("base_python"),
            pylib_dirs=f.texts("pylib_dirs") or (),
            dynlib_dirs=f.texts("dynlib_dirs") or (),
            app=f.has("launch_module"),
            launch_module=f.opt_text("launch_module"),
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "python": self.python,
            "base_python": self.base_python,
            "pylib_dirs": list(self.pylib_dirs),
            "py_version": self.py_version,
            "site_dir": self.site_dir,
            "dynlib_dirs": list(self.dynlib_dirs),
        }
        if self.app:
            data["launch_module"] = self.launch_module
        return data

    def text(self) -> str:
        return dump_json(self.to_json())


def read_layer_config(layer_dir: Path, name: str | None = None) -> LayerConfig:
    """``name``: the layer's name for messages, when ``layer_dir`` is a temporary folder."""
    path = layer_dir / LAYER_CONFIG
    shown = Path(name) / LAYER_CONFIG if name else path
    try:
        # Bounded: in a deploy the file comes from a downloaded archive.
        data = load_json_text(read_bounded_text(path))
    except FileNotFoundError:
        raise VenvStacksError(f"{shown}: missing; is {name or layer_dir} a built layer?") from None
    except (OSError, ValueError) as exc:
        raise VenvStacksError(f"{shown}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise VenvStacksError(f"{shown}: expected a JSON object")
    return LayerConfig.from_json(data, shown)
