"""Reproducible archive writing, and the extractor refusing hostile archives."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.layers import tree
from venvstacks.archive import writer
from venvstacks.archive.formats import ArchiveEntry, ArchiveFormat
from venvstacks.archive.unpack import unpack_to_staging
from venvstacks.archive.writer import write_archive
from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import replace_dir


def extract_archive(archive: Path, dest_parent: Path, top: str) -> Path:
    """Unpack and move into place, as deploy does."""
    replace_dir(unpack_to_staging(archive, dest_parent, top), dest_parent / top)
    return dest_parent / top


EPOCH = 1735787045
ALL_FORMATS = list(ArchiveFormat)


def make_source(root: Path, *, umask_mode: int, mtime: float, reverse: bool) -> Path:
    """The same tree, created in a different order with different modes and times."""
    top = root / "layer"
    files = {
        "bin/tool": b"#!/bin/sh\necho hi\n",
        "lib/pkg/__init__.py": b"VALUE = 1\n",
        "lib/pkg/data.bin": bytes(range(256)) * 300,
        "lib/pkg/\u00e9t\u00e9.txt": b"non-ascii name\n",
        "lib/" + "long_name_" * 12 + ".py": b"# a name longer than 100 bytes\n",
    }
    for rel, data in sorted(files.items(), reverse=reverse):
        path = top / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(umask_mode & (0o777 if rel == "bin/tool" else 0o666))
    (top / "empty").mkdir()
    os.symlink("lib", top / "lib64")
    for path in [top, *top.rglob("*")]:
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return top


def entries_for(top: Path) -> list[ArchiveEntry]:
    found = [ArchiveEntry("layer", top)]
    found += [ArchiveEntry("layer/" + p.relative_to(top).as_posix(), p) for p in top.rglob("*")]
    return found


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_same_tree_gives_identical_bytes(tmp_path: Path, fmt: ArchiveFormat) -> None:
    a = make_source(tmp_path / "a", umask_mode=0o755, mtime=time.time(), reverse=False)
    b = make_source(tmp_path / "b", umask_mode=0o700, mtime=EPOCH - 86400 * 400, reverse=True)
    out_a = write_archive(tmp_path / f"a{fmt.suffix}", entries_for(a), fmt, epoch=EPOCH)
    out_b = write_archive(tmp_path / f"b{fmt.suffix}", reversed(entries_for(b)), fmt, epoch=EPOCH)
    assert out_a.sha256 == out_b.sha256
    assert out_a.size == (tmp_path / f"a{fmt.suffix}").stat().st_size
    assert hashlib.sha256(out_a.path.read_bytes()).hexdigest() == out_a.sha256


def test_tar_members_are_normalised(tmp_path: Path) -> None:
    src = make_source(tmp_path, umask_mode=0o700, mtime=time.time(), reverse=True)
    info = write_archive(tmp_path / "x.tar.gz", entries_for(src), ArchiveFormat.TAR_GZ, epoch=EPOCH)
    with tarfile.open(info.path) as tf:
        members = tf.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) and names[0] == "layer"
    for m in members:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (EPOCH, 0, 0, "", "")
        assert isinstance(m.mtime, int)
    modes = {m.name: (m.type, m.mode) for m in members}
    assert modes["layer/bin/tool"] == (tarfile.REGTYPE, 0o755)
    assert modes["layer/lib/pkg/data.bin"] == (tarfile.REGTYPE, 0o644)
    assert modes["layer/empty"] == (tarfile.DIRTYPE, 0o755)
    assert modes["layer/lib64"][0] == tarfile.SYMTYPE
    raw = info.path.read_bytes()
    assert raw[3] & 0x08 == 0, "gzip header must not name a file"
    assert raw[4:8] == b"\0\0\0\0", "gzip header must not carry a time"


def test_zip_members_are_normalised(tmp_path: Path) -> None:
    src = make_source(tmp_path, umask_mode=0o700, mtime=time.time(), reverse=True)
    info = write_archive(tmp_path / "x.zip", entries_for(src), ArchiveFormat.ZIP, epoch=EPOCH)
    with zipfile.ZipFile(info.path) as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    for i in infos:
        assert i.date_time[:5] == time.gmtime(EPOCH)[:5]  # zip keeps even seconds only
        assert i.create_system == 3 and i.extra == b""
    modes = {i.filename: i.external_attr >> 16 for i in infos}
    assert modes["layer/bin/tool"] == stat.S_IFREG | 0o755
    assert modes["layer/lib/pkg/data.bin"] == stat.S_IFREG | 0o644
    assert modes["layer/empty/"] == stat.S_IFDIR | 0o755
    assert stat.S_ISLNK(modes["layer/lib64"])


def test_zstd_output_does_not_depend_on_core_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_source(tmp_path, umask_mode=0o755, mtime=time.time(), reverse=False)
    digests = set()
    for cores in (1, 3):
        monkeypatch.setattr(writer, "cores", lambda c=cores: c)
        out = tmp_path / f"{cores}.tar.zst"
        digests.add(write_archive(out, entries_for(src), ArchiveFormat.TAR_ZST, epoch=EPOCH).sha256)
    assert len(digests) == 1


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_progress_reports_file_bytes(tmp_path: Path, fmt: ArchiveFormat) -> None:
    src = make_source(tmp_path, umask_mode=0o755, mtime=time.time(), reverse=False)
    calls: list[tuple[int, int]] = []
    out = tmp_path / f"x{fmt.suffix}"
    write_archive(out, entries_for(src), fmt, epoch=EPOCH, progress=lambda d, t: calls.append((d, t)))
    total = sum(p.stat().st_size for p in src.rglob("*") if p.is_file() and not p.is_symlink())
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_round_trip(tmp_path: Path, fmt: ArchiveFormat) -> None:
    src = make_source(tmp_path / "src", umask_mode=0o755, mtime=time.time(), reverse=False)
    out = write_archive(tmp_path / f"x{fmt.suffix}", entries_for(src), fmt, epoch=EPOCH).path
    dest = extract_archive(out, tmp_path / "target", "layer")
    assert tree(dest) == tree(src)
    assert os.access(dest / "bin" / "tool", os.X_OK)
    assert not os.access(dest / "lib" / "pkg" / "data.bin", os.X_OK)
    mtime = int((dest / "lib" / "pkg" / "data.bin").stat().st_mtime)
    assert EPOCH - mtime in ((0, 1) if fmt is ArchiveFormat.ZIP else (0,))  # zip: 2 s steps
    assert os.listdir(tmp_path / "target") == ["layer"]


def test_writer_refuses_special_files(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    entries = [ArchiveEntry("layer/fifo", tmp_path / "fifo")]
    with pytest.raises(VenvStacksError, match="special file"):
        write_archive(tmp_path / "x.tar.gz", entries, ArchiveFormat.TAR_GZ, epoch=EPOCH)
    assert not list(tmp_path.glob("*.tar.gz")) and not list(tmp_path.glob(".*tmp"))


def test_replace_dir_swaps_an_existing_folder(tmp_path: Path) -> None:
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "old").write_text("old")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "fresh").write_text("new")
    replace_dir(tmp_path / "new", tmp_path / "dest")
    assert os.listdir(tmp_path) == ["dest"]
    assert os.listdir(tmp_path / "dest") == ["fresh"]


# --- hostile archives --------------------------------------------------------------------


def _tar(*members: tuple[str, bytes, str]) -> Callable[[Path], None]:
    """(name, type, content-or-link) triples -> a function writing a .tar.gz."""

    def write(path: Path) -> None:
        with tarfile.open(path, "w:gz") as tf:
            for name, kind, payload in members:
                ti = tarfile.TarInfo(name)
                ti.type = kind
                if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                    ti.linkname = payload
                    tf.addfile(ti)
                elif kind == tarfile.REGTYPE:
                    ti.size = len(payload)
                    tf.addfile(ti, io.BytesIO(payload.encode()))
                else:
                    tf.addfile(ti)

    return write


def _zip(*members: tuple[str, int, str]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with zipfile.ZipFile(path, "w") as zf:
            for name, mode, payload in members:
                info = zipfile.ZipInfo(name)
                info.external_attr = mode << 16
                zf.writestr(info, payload)

    return write


REG, DIR, SYM, LNK = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
OK_TOP = ("top", DIR, "")
OUT = "points outside top/"
HOSTILE: dict[str, tuple[Callable[[Path], None], str]] = {
    "traversal": (_tar(OK_TOP, ("top/../evil", REG, "x")), "'..'"),
    "leading-dotdot": (_tar(("../evil", REG, "x")), "'..'"),
    "absolute": (_tar(OK_TOP, ("/tmp/venvstacks-evil", REG, "x")), "absolute"),
    "outside-top": (_tar(OK_TOP, ("other/evil", REG, "x")), "outside the expected folder"),
    "symlink-absolute": (_tar(OK_TOP, ("top/link", SYM, "/etc")), OUT),
    "symlink-out": (_tar(OK_TOP, ("top/link", SYM, "../outside")), OUT),
    "symlink-dotdot-deep": (_tar(OK_TOP, ("top/a", DIR, ""), ("top/a/l", SYM, "../../..")), OUT),
    "symlink-chain-out": (_tar(OK_TOP, ("top/a", SYM, "."), ("top/b", SYM, "a/../outside")), OUT),
    "write-through-symlink": (
        _tar(OK_TOP, ("top/d", SYM, "."), ("top/d/evil", REG, "x")),
        "lies below a symlink",
    ),
    "hardlink-out": (_tar(OK_TOP, ("top/h", LNK, "../outside/secret")), "'..'"),
    "hardlink-absolute": (_tar(OK_TOP, ("top/h", LNK, "/etc/passwd")), "absolute"),
    "hardlink-to-symlink": (
        _tar(OK_TOP, ("top/s", SYM, "x"), ("top/h", LNK, "top/s")),
        "not to a file",
    ),
    "device": (_tar(OK_TOP, ("top/dev", tarfile.CHRTYPE, "")), "device"),
    "fifo": (_tar(OK_TOP, ("top/fifo", tarfile.FIFOTYPE, "")), "fifo"),
    "duplicate": (_tar(OK_TOP, ("top/f", REG, "a"), ("top/f", REG, "b")), "duplicate"),
    "file-below-file": (_tar(OK_TOP, ("top/f", REG, "a"), ("top/f/g", REG, "b")), "cannot write"),
    "zip-traversal": (_zip(("top/../evil", stat.S_IFREG | 0o644, "x")), "'..'"),
    "zip-absolute": (_zip(("/tmp/venvstacks-evil", stat.S_IFREG | 0o644, "x")), "absolute"),
    "zip-symlink-out": (
        _zip(("top/", stat.S_IFDIR | 0o755, ""), ("top/l", stat.S_IFLNK | 0o777, "/etc")),
        OUT,
    ),
    "zip-device": (_zip(("top/dev", stat.S_IFCHR | 0o644, "")), "device"),
}


def _snapshot(root: Path, skip: Path) -> dict[str, str]:
    return {k: v for k, v in tree(root).items() if not (root / k).is_relative_to(skip)}


def _assert_refused(archive: Path, tmp_path: Path, match: str, top: str = "top") -> None:
    target = tmp_path / "target"
    target.mkdir(exist_ok=True)
    before = _snapshot(tmp_path, target)
    with pytest.raises(VenvStacksError, match=match) as err:
        extract_archive(archive, target, top)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"refusing to unpack {archive.name}")
    assert _snapshot(tmp_path, target) == before
    assert os.listdir(target) == []  # no staging folder left, no layer
    assert not os.path.lexists("/tmp/venvstacks-evil")


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_is_refused(tmp_path: Path, case: str) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("secret")
    suffix = ".zip" if case.startswith("zip-") else ".tar.gz"
    archive = tmp_path / f"{case}{suffix}"
    write, reason = HOSTILE[case]
    write(archive)
    _assert_refused(archive, tmp_path, reason)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_truncated_archive_is_refused(tmp_path: Path, fmt: ArchiveFormat) -> None:
    src = make_source(tmp_path / "src", umask_mode=0o755, mtime=time.time(), reverse=False)
    out = write_archive(tmp_path / f"x{fmt.suffix}", entries_for(src), fmt, epoch=EPOCH).path
    data = out.read_bytes()
    out.write_bytes(data[: len(data) // 2])
    # Its own top folder: the members before the cut are unpacked (from xz in a child
    # process they come before its verdict), then the cut is found and all goes.
    _assert_refused(out, tmp_path, "damaged or truncated", top="layer")


def test_safe_links_inside_the_layer_are_kept(tmp_path: Path) -> None:
    archive = tmp_path / "ok.tar.gz"
    _tar(
        OK_TOP,
        ("top/lib", DIR, ""),
        ("top/lib/f", REG, "data"),
        ("top/lib64", SYM, "lib"),
        ("top/bin", DIR, ""),
        ("top/bin/python3", SYM, "python"),  # dangling until postinstall: allowed
        ("top/bin/up", SYM, "../lib/f"),
        ("top/hard", LNK, "top/lib/f"),
    )(archive)
    dest = extract_archive(archive, tmp_path / "target", "top")
    assert (dest / "lib64" / "f").read_text() == "data"
    assert (dest / "bin" / "up").read_text() == "data"
    assert (dest / "hard").stat().st_ino == (dest / "lib" / "f").stat().st_ino
    assert os.readlink(dest / "bin" / "python3") == "python"
