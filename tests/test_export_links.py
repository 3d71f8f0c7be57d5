"""Local export where the filesystem refuses symlinks (FAT, some network mounts): what a
link points at is copied instead, as the existing venvstacks does.

On a vfat image where this machine can mount one (root, mkfs.fat, a kernel with vfat);
everywhere, with `os.symlink` refusing as vfat does (EPERM), which is what the code sees.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from venvstacks.archive.formats import ArchiveEntry
from venvstacks.ship.export import materialise


def _layer(tmp_path: Path) -> tuple[Path, list[ArchiveEntry]]:
    """A small built layer: a file and a folder linked from inside it, a link to nothing."""
    src = tmp_path / "src"
    (src / "lib" / "pkg").mkdir(parents=True)
    (src / "lib" / "pkg" / "mod.py").write_text("X = 1\n")
    (src / "bin").mkdir()
    (src / "bin" / "python3.11").write_text("#!interpreter\n")
    names = {
        "top": (src, None),
        "top/bin": (src / "bin", None),
        "top/bin/python3.11": (src / "bin" / "python3.11", None),
        "top/bin/python3": (src / "bin" / "python3", "python3.11"),
        "top/bin/gone": (src / "bin" / "gone", "../not-shipped.txt"),
        "top/lib": (src / "lib", None),
        "top/lib/pkg": (src / "lib" / "pkg", None),
        "top/lib/pkg/mod.py": (src / "lib" / "pkg" / "mod.py", None),
        "top/lib64": (src / "lib64", "lib"),
    }
    return src, [ArchiveEntry(name, source, link) for name, (source, link) in names.items()]


def _listing(dest: Path) -> dict[str, str]:
    found = {}
    for path in sorted(dest.rglob("*")):
        rel = path.relative_to(dest).as_posix()
        found[rel] = "link" if path.is_symlink() else ("dir" if path.is_dir() else path.read_text())
    return found


COPIED = {
    "bin": "dir",
    "bin/python3": "#!interpreter\n",
    "bin/python3.11": "#!interpreter\n",
    "lib": "dir",
    "lib/pkg": "dir",
    "lib/pkg/mod.py": "X = 1\n",
    "lib64": "dir",
    "lib64/pkg": "dir",
    "lib64/pkg/mod.py": "X = 1\n",
}


def test_links_are_kept_where_the_filesystem_allows(tmp_path: Path) -> None:
    _, entries = _layer(tmp_path)
    materialise(entries, "top", tmp_path / "out")
    listing = _listing(tmp_path / "out")
    assert listing["bin/python3"] == listing["lib64"] == listing["bin/gone"] == "link"


def test_refused_links_become_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, entries = _layer(tmp_path)

    def refuse(*_: object, **__: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")  # what vfat answers

    monkeypatch.setattr(os, "symlink", refuse)
    materialise(entries, "top", tmp_path / "out")
    assert _listing(tmp_path / "out") == COPIED


def test_other_link_errors_still_stop_the_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, entries = _layer(tmp_path)

    def full(*_: object, **__: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "symlink", full)
    with pytest.raises(OSError, match="No space left"):
        materialise(entries, "top", tmp_path / "out")


@pytest.fixture
def vfat(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0 or not shutil.which("mkfs.fat"):
        pytest.skip("mounting a vfat image needs root and mkfs.fat (dosfstools)")
    image, mount = tmp_path / "fat.img", tmp_path / "fat"
    with image.open("wb") as f:
        f.truncate(32 << 20)
    subprocess.run(["mkfs.fat", "-F", "16", str(image)], check=True, capture_output=True)
    mount.mkdir()
    done = subprocess.run(["mount", "-o", "loop", str(image), str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"this machine cannot mount a vfat image: {done.stderr.strip().splitlines()[0]}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_export_onto_vfat_copies_what_links_point_at(tmp_path: Path, vfat: Path) -> None:
    _, entries = _layer(tmp_path)
    materialise(entries, "top", vfat / "out")
    assert _listing(vfat / "out") == COPIED
