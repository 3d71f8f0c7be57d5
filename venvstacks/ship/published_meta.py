"""Reading published metadata (`load_published`) before deploy trusts any of it.

`venvstacks.json` is the deploy trust anchor: its sha256s decide which archives are
unpacked. It is read through its typed classes (`layermeta.py`), so a field of the wrong
type (`archive_size: "58994"`, a list for a name) is one line naming the file, the layer and
the field, instead of surfacing later as a confusing comparison or a traceback; on top of
that, every layer must name an archive with a well-formed sha256, and every name that
becomes a path must be a plain name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import load_json_text, read_bounded_text
from venvstacks.layout import METADATA_DIR, STACK_METADATA
from venvstacks.ship.layermeta import LayerMetadata, StackMetadata
from venvstacks.stack.kinds import LayerKind


@dataclass(frozen=True)
class PublishedLayer:
    kind: LayerKind
    metadata: LayerMetadata
    archive: Path

    @property
    def install_target(self) -> str:
        return self.metadata.install_target

    @property
    def needs(self) -> list[str]:
        """Install targets of the layers this one runs on (runtime first)."""
        return self.metadata.needs


def load_published(published: Path) -> list[PublishedLayer]:
    """Read a stack's published metadata; ``published`` is the output folder or the file."""
    meta_file = _find_stack_metadata(published)
    stack = read_published(meta_file)
    archive_dir = meta_file.parent
    if archive_dir.name == METADATA_DIR:
        archive_dir = archive_dir.parent
    layers = [
        PublishedLayer(kind, meta, archive_dir / str(meta.archive_name))
        for kind in LayerKind
        for meta in stack.layers[kind]
    ]
    for layer in layers:
        # These become paths below the target folder: a hostile "../x" must not.
        for name in (layer.install_target, str(layer.metadata.archive_name), *layer.needs):
            if not is_plain_name(name):
                raise VenvStacksError(f"{meta_file}: {name!r} is not a plain layer or file name")
    return layers


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


def is_plain_name(name: str) -> bool:
    """A single path component that is neither hidden (our staging names) nor special."""
    return bool(name) and not name.startswith(".") and not any(c in name for c in "/\\\0")


def _find_stack_metadata(published: Path) -> Path:
    if published.is_file():
        return published
    folder = published / METADATA_DIR if (published / METADATA_DIR).is_dir() else published
    if (folder / f"{STACK_METADATA}.json").is_file():
        return folder / f"{STACK_METADATA}.json"
    tagged = sorted(folder.glob(f"{STACK_METADATA}-*.json"))
    if len(tagged) == 1:
        return tagged[0]
    if tagged:
        names = ", ".join(p.name for p in tagged)
        raise VenvStacksError(f"{folder}: several platforms ({names}); pass one file instead")
    raise VenvStacksError(
        f"{published}: no {METADATA_DIR}/venvstacks.json found; pass the folder `venvstacks publish` "
        "wrote (_artifacts beside the stack file, unless --output-dir named another)"
    )
