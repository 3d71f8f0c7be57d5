"""Which files of a built layer ship (``layer_entries``), and the local export of a layer.

``layer_entries`` is the one definition of a layer's shipped tree, so an export and an
archive always hold the same files: it leaves out what only makes sense on the build machine
(build paths, byte code, build state, links leaving the layer) and adds ``postinstall.py``.
``export_layer`` copies those entries (hard links where it can) into a hidden folder beside
the destination, runs ``postinstall.py`` there and only then renames it into place, so an
interrupted export never looks done. What is left out and why, hard links, and the order in
which layers must be exported: docs/export.md.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
import tempfile
from pathlib import Path

from venvstacks.archive.formats import ArchiveEntry
from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import is_bytecode, make_folder, replace_dir
from venvstacks.layerconfig import LayerConfig
from venvstacks.layout import DEPLOYED_WRAPPER, POSTINSTALL, STATE_DIR
from venvstacks.tools import run_postinstall_script

POSTINSTALL_SCRIPT = Path(__file__).parents[1] / "_injected" / POSTINSTALL


def layer_entries(layer_dir: Path, top: str, config: LayerConfig) -> list[ArchiveEntry]:
    """The files, folders and symlinks of the built layer that ship, named ``top/...``
    (``config``: the layer's ``venvstacks_layer.json``, as the caller read it)."""
    site_dir, python = config.site_dir, config.python
    skipped = {"pyvenv.cfg", POSTINSTALL, f"{site_dir}/sitecustomize.py", STATE_DIR.as_posix()}
    root = os.path.abspath(layer_dir)
    entries = [
        ArchiveEntry(top, layer_dir),
        ArchiveEntry(f"{top}/{POSTINSTALL}", POSTINSTALL_SCRIPT),
    ]
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        keep_dirs = []
        for name in sorted(dirnames + filenames):
            rel = prefix + name
            path = os.path.join(dirpath, name)
            if _excluded(rel, name, skipped):
                continue
            if os.path.islink(path):
                target = _link_inside(path, root)
                if target is not None:
                    entries.append(ArchiveEntry(f"{top}/{rel}", Path(path), target))
            elif os.path.isdir(path):
                keep_dirs.append(name)
                entries.append(ArchiveEntry(f"{top}/{rel}", Path(path)))
            elif rel == python and (layer_dir / DEPLOYED_WRAPPER).is_file():
                entries.append(ArchiveEntry(f"{top}/{rel}", layer_dir / DEPLOYED_WRAPPER))
            elif os.path.isfile(path):
                entries.append(ArchiveEntry(f"{top}/{rel}", Path(path)))
            else:
                raise VenvStacksError(f"{path}: sockets, fifos and devices cannot ship")
        dirnames[:] = keep_dirs  # symlinked and excluded folders are not walked
    return sorted(entries)


def _excluded(rel: str, name: str, skipped: set[str]) -> bool:
    return rel in skipped or is_bytecode(name) or ("/" not in rel and name.startswith("."))


def _link_inside(link: str, root: str) -> str | None:
    """The link's target, made relative, if it stays inside root; None if it leaves."""
    target = os.readlink(link)
    here = os.path.dirname(link)
    resolved = os.path.normpath(os.path.join(here, target))
    if os.path.commonpath([root, resolved]) != root:
        return None
    return os.path.relpath(resolved, here) if os.path.isabs(target) else target


def export_layer(
    layer_dir: Path, export_dir: Path, install_target: str, config: LayerConfig, postinstall: bool = True
) -> Path:
    """Export the built layer to ``export_dir/install_target`` and run its postinstall
    (unless told not to: a layer cross-built for another system runs it there)."""
    entries = layer_entries(layer_dir, install_target, config)
    make_folder(export_dir, "export folder")
    staging = Path(tempfile.mkdtemp(prefix=f".{install_target}.partial-", dir=export_dir))
    try:
        staging.chmod(0o755)  # mkdtemp's 0o700 would otherwise become the layer's mode
        materialise(entries, install_target, staging)
        # Staging is a sibling of the destination, so the peer paths postinstall writes
        # ("../cpython-3.11/...") already hold their final values.
        script = staging / POSTINSTALL
        if postinstall:
            run_postinstall_script(
                f"postinstall of {install_target}", [sys.executable, "-X", "utf8", "-I", script]
            )
        replace_dir(staging, export_dir / install_target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return export_dir / install_target


def materialise(entries: list[ArchiveEntry], top: str, dest: Path) -> None:
    """Recreate entries named ``top/...`` below ``dest``, hard-linking files if possible.

    Symlinks come last: where the filesystem refuses them (FAT, some network mounts), what
    they point at is copied instead, as the existing venvstacks does, from what was already
    exported (so nothing left out of the layer comes back through a link)."""
    can_link = True
    links = []
    for entry in sorted(entries):
        rel = entry.name.removeprefix(top).lstrip("/")
        path = dest / rel
        if entry.link_target is not None:
            links.append((entry.link_target, path))
        elif entry.source.is_dir():
            path.mkdir(exist_ok=True)
        else:
            if can_link:
                try:
                    os.link(entry.source, path)
                    continue
                except OSError as exc:
                    # Another filesystem, or one without hard links: copy from now on.
                    if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                        raise
                    can_link = False
            shutil.copy2(entry.source, path)
    can_symlink = True
    for target, path in links:
        if can_symlink:
            try:
                os.symlink(target, path)
                continue
            except OSError as exc:
                if exc.errno not in _NO_SYMLINKS:
                    raise
                can_symlink = False
        _copy_link_target(path.parent / target, path, dest)


# What creating a symlink fails with where the filesystem has none.
_NO_SYMLINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS)


def _copy_link_target(target: Path, path: Path, dest: Path) -> None:
    """Put a copy of the exported `target` (inside `dest`: `layer_entries` keeps only links
    staying inside the layer) where a link to it was refused."""
    if not os.path.lexists(target):
        return  # it points at something that does not ship: the link would dangle too
    if target.is_dir():
        shutil.copytree(target, path, copy_function=shutil.copy2)
    else:
        shutil.copy2(target, path)
