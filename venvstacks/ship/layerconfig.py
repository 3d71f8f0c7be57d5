"""Reading a layer's `share/venv/metadata/venvstacks_layer.json` (written at build time by
`layers/linking.py`): exporting, deploying and verifying all read it, none of them needs the
others' code for it."""

from __future__ import annotations

from pathlib import Path

from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import load_json_text, read_bounded_text
from venvstacks.layout import LAYER_CONFIG


def read_layer_config(layer_dir: Path, name: str | None = None) -> dict[str, object]:
    """``name``: the layer's name for messages, when ``layer_dir`` is a temporary folder."""
    path = layer_dir / LAYER_CONFIG
    shown = f"{name}/{LAYER_CONFIG}" if name else str(path)
    try:
        # Bounded: in a deploy the file comes from a downloaded archive.
        data = load_json_text(read_bounded_text(path))
    except FileNotFoundError:
        raise VenvStacksError(f"{shown}: missing; is {name or layer_dir} a built layer?") from None
    except (OSError, ValueError) as exc:
        raise VenvStacksError(f"{shown}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise VenvStacksError(f"{shown}: expected a JSON object")
    return data
