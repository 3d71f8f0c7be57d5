"""What of a stack folder ``verify --rebuild`` copies into its scratch folder, and the copy.

Only what building and publishing the stack reads: the stack file, ``venvstacks.uv.toml``,
the committed locks (``requirements/``), every launch and support module (as
``venvstacks.stack.modfiles`` defines their files, also those outside the stack folder),
local package folders named by the uv settings, and the ``.gitignore`` files from the
repository root down to each module. Build, export and publish
outputs, whatever their names (``--build-dir _b2``), are never copied: a folder holding
one of ``layout.OUTPUT_MARKERS`` is skipped wherever it is.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from venvstacks.errors import VenvStacksError
from venvstacks.layout import LOCKS_DIR, OUTPUT_MARKERS
from venvstacks.lock.uvconfig import anchored
from venvstacks.stack.model import StackSpec
from venvstacks.stack.modfiles import copy_module, ignore_root
from venvstacks.stack.spec import UV_SETTINGS_FILE, load_stack

SIDE_FILES = (UV_SETTINGS_FILE, ".gitignore")


def is_output_folder(folder: Path) -> bool:
    """A build, export or publish folder (or a layer's folder inside one)."""
    return any(os.path.lexists(folder / marker) for marker in OUTPUT_MARKERS)


def copy_stack(stack_file: Path, dest: Path) -> tuple[Path, list[str]]:
    """Copy what ``stack_file`` (absolute) needs into ``dest`` (new).

    Returns the copy's stack file and the copied paths, sorted, relative to ``dest``. The
    stack folder keeps its place relative to modules outside it (``../shared/util.py``) and
    to the ``.gitignore`` files from the repository root down, so ``dest`` mirrors the
    folder holding all of them.
    """
    stack = load_stack(stack_file)
    root = stack.root
    modules = sorted({m for layer in stack.layers for m in layer.modules})
    chains = {m: _gitignore_chain(m, root) for m in modules}
    base = Path(os.path.commonpath([root, *modules, *(c[0] for c in chains.values() if c)]))
    home = dest / root.relative_to(base)
    home.mkdir(parents=True)
    copied = [stack_file.name]
    shutil.copy2(stack_file, home / stack_file.name)
    for name in SIDE_FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, home / name)
            copied.append(name)
    for folder in [root / LOCKS_DIR, *_local_package_folders(stack)]:
        if folder.is_dir() and not is_output_folder(folder):
            rel = folder.relative_to(root)
            _copy_tree(folder, home / rel)
            copied.append(rel.as_posix())
    for module in modules:
        for gitignore in chains[module]:
            target = dest / gitignore.relative_to(base)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(gitignore, target)
        target = dest / module.relative_to(base)
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_module(module, root, target)
        copied.append(os.path.relpath(module, root))
    return home / stack_file.name, sorted(Path(c).as_posix() for c in copied)


def _gitignore_chain(module: Path, root: Path) -> list[Path]:
    """The .gitignore files above `module` that decide what it holds (see modfiles)."""
    folder = module if module.is_dir() else module.parent
    top = ignore_root(folder, root)
    rel = folder.relative_to(top) if folder.is_relative_to(top) else Path()
    folders = [top.joinpath(*rel.parts[:i]) for i in range(len(rel.parts) + 1)]
    return [f / ".gitignore" for f in folders if (f / ".gitignore").is_file() and f != module]


def _copy_tree(folder: Path, dest: Path) -> None:
    try:
        shutil.copytree(folder, dest, symlinks=True, ignore=_outputs)
    except shutil.Error as exc:  # copytree gathers (source, target, reason) for every failure
        source, _, reason = exc.args[0][0]
        where = "" if str(source) in str(reason) else f"{source}: "
        raise VenvStacksError(f"{where}{reason}; the rebuild cannot copy it (remove or move it)") from exc


def _outputs(folder: str, names: list[str]) -> list[str]:
    return [n for n in names if is_output_folder(Path(folder, n))]


def _local_package_folders(stack: StackSpec) -> Iterator[Path]:
    """Folders inside the stack folder that the uv settings name as find-links or indexes."""
    settings = anchored(dict(stack.uv_config), stack.root)
    locations = [*settings.get("find-links", []), *settings.get("extra-index-url", [])]
    locations += [settings.get("index-url"), *(i.get("url") for i in settings.get("index", []))]
    for location in locations:
        if not isinstance(location, str) or "://" in location:
            continue
        path = Path(location)
        if path.is_dir() and path.is_relative_to(stack.root) and path != stack.root:
            yield path
