"""What renamed or removed layers leave behind: build folders, lock folders, archives.

`find_leftovers` is pure reading: `build` and `show` name what it finds in one note, and
`venvstacks prune` removes it (`remove`). Only what venvstacks itself made counts: a build
folder holding a layer's build state, a lock folder holding lock files, an archive named by
a layer metadata file of the publish folder. Anything else found there is the user's.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from venvstacks.engine.settings import Settings
from venvstacks.layout import LOCKS_DIR, RUNTIME_STATE_DIR, STATE_DIR, layer_metadata_file
from venvstacks.lazy import lazy_modules

if TYPE_CHECKING:
    from venvstacks.ship import layermeta, published_meta
else:
    # Read only where a publish folder holds metadata: most builds never load them.
    layermeta, published_meta = lazy_modules("venvstacks.ship.layermeta", "venvstacks.ship.published_meta")


@dataclass(frozen=True)
class Leftover:
    """A folder a layer no longer in the stack left behind."""

    path: Path
    layer: str  # the build name it belonged to


def find_leftovers(settings: Settings) -> list[Leftover]:
    """Every leftover of a layer that is no longer in the stack, sorted by path."""
    current = {layer.env_name for layer in settings.stack.layers}
    found = [
        *_build_folders(settings.build_dir, current),
        *_lock_folders(settings.stack.root / LOCKS_DIR, current),
        *_published(settings.output.publish_dir, current),
    ]
    return sorted(found, key=lambda item: item.path)


def _build_folders(build_dir: Path, current: set[str]) -> Iterator[Leftover]:
    for folder in _subfolders(build_dir):
        if folder.name not in current and (folder / STATE_DIR).is_dir():
            yield Leftover(folder, folder.name)
    runtimes = build_dir / RUNTIME_STATE_DIR
    for record in sorted(runtimes.glob("*.json")) if runtimes.is_dir() else ():
        if record.stem not in current:
            yield Leftover(record, record.stem)


def _lock_folders(locks_dir: Path, current: set[str]) -> Iterator[Leftover]:
    for folder in _subfolders(locks_dir):
        if folder.name not in current and any(folder.glob("pylock.*.toml")):
            yield Leftover(folder, folder.name)


def _published(publish_dir: Path, current: set[str]) -> Iterator[Leftover]:
    meta_dir = layer_metadata_file(publish_dir, "x").parent
    for meta_file in sorted(meta_dir.glob("*.json")) if meta_dir.is_dir() else ():
        meta = layermeta.LayerMetadata.read(meta_file)
        name = None if meta is None else meta.layer_name
        if meta is None or name is None or name in current:
            continue
        archive = meta.archive_name
        # A plain file name only: the metadata names a file in this folder, nothing else.
        plain = archive is not None and published_meta.is_plain_name(archive)
        if archive is not None and plain and (publish_dir / archive).is_file():
            yield Leftover(publish_dir / archive, name)
        yield Leftover(meta_file, name)


def _subfolders(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
    )


def note(leftovers: Sequence[Leftover], root: Path) -> str:
    """The one line `build` and `show` print when there are leftovers."""
    names = sorted({item.layer for item in leftovers})
    paths = ", ".join(_shown(item.path, root) for item in leftovers)
    return (
        f"note: {len(leftovers)} leftover(s) of layers no longer in the stack ({', '.join(names)}): "
        f"{paths}; `venvstacks prune` removes them"
    )


def remove(leftovers: Sequence[Leftover]) -> None:
    for item in leftovers:
        if item.path.is_dir():
            shutil.rmtree(item.path)
        else:
            item.path.unlink(missing_ok=True)


def _shown(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
