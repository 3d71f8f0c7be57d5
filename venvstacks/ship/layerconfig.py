"""Reading a layer's `share/venv/metadata/venvstacks_layer.json` (written at build time by
`layers/linking.py`): exporting, deploying and verifying all read it, none of them needs the
others' code for it."""

from __future__ import annotations

from pathlib import Path

from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import load_json_text, read_bounded_text
from venvstacks.layout import LAYER_CONFIG


def read_layer_config(layer_dir: Path) -> dict[str, object]:
    path = layer_dir / LAYER_CONFIG
    try:
        # Bounded: in a deploy the file comes from a downloaded archive.
        data = load_json_text(read_bounded_text(path))
    except FileNotFoundError:
        raise VenvStacksError(f"{path}: missing; is {layer_dir} a built layer?") from None
    except (OSError, ValueError) as exc:
        raise VenvStacksError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise VenvStacksError(f"{path}: expected a JSON object")
    return data
