"""Reading published metadata before deploy trusts any of it.

`venvstacks.json` is the deploy trust anchor: its sha256s decide which archives are
unpacked. It is read through its typed classes (`layermeta.py`), so a field of the wrong
type (`archive_size: "58994"`, a list for a name) is one line naming the file, the layer and
the field, instead of surfacing later as a confusing comparison or a traceback; on top of
that, every layer must name an archive with a well-formed sha256.
"""

from __future__ import annotations

from pathlib import Path

from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import load_json_text, read_bounded_text
from venvstacks.ship.layermeta import StackMetadata


def read_published(meta_file: Path) -> StackMetadata:
    """The stack metadata in `meta_file`, each layer checked for what deploy needs."""
    try:
        data = load_json_text(read_bounded_text(meta_file))
    except (OSError, ValueError) as exc:
        raise VenvStacksError(f"{meta_file}: not valid venvstacks metadata ({exc})") from None
    stack = StackMetadata.from_json(data, meta_file)
    for kind, layers in stack.layers.items():
        for index, layer in enumerate(layers):
            layer.check_deployable(meta_file, f"{kind.value}[{index}]")
    return stack
