"""Our tar header parser (archive/tarstream.py) reads members as tarfile does, and the
unpacker built on it writes the same trees: long names and links (GNU and pax), pax mtimes,
ustar prefixes, links, empty and large files; cut or damaged archives are refused with
nothing left; what it leaves to tarfile (global pax headers, sparse files) still unpacks."""

from __future__ import annotations

import gzip
import io
import os
import random
import shutil
import stat
import subprocess
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.layers import tree
from venvstacks.archive.tarstream import BLOCK, TarDamaged, TarStream, Unusual
from venvstacks.archive.unpack import unpack_to_staging
from venvstacks.errors import VenvStacksError

FORMATS = {"gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT, "ustar": tarfile.USTAR_FORMAT}
LONG = "top/" + "a_long_folder_name_" * 4 + "/" + "and_a_long_file_name_" * 4 + ".py"
LONG_TARGET = "lib/" + "target_" * 30  # dangling until deployed: allowed
BIG = 3 * (1 << 20) + 12345  # more than one decoded piece (1 MiB) and not a block multiple


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


# (name, type, data or link target, mode, mtime)
Spec = tuple[str, bytes, bytes | str, int, float]


def make_tar(members: list[Spec], fmt: int = tarfile.PAX_FORMAT, **options: object) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt, **options) as tf:  # type: ignore[call-overload]
        for name, kind, content, mode, mtime in members:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = kind, mode, mtime
            if isinstance(content, str):
                info.linkname = content
                tf.addfile(info)
            else:
                info.size = len(content)
                tf.addfile(info, io.BytesIO(content))
    return out.getvalue()


def sample(fmt: int) -> list[Spec]:
    """A layer with every member kind our archives hold, names long enough for each
    format's long-name scheme (ustar: its prefix field)."""
    ustar = fmt == tarfile.USTAR_FORMAT
    members: list[Spec] = [
        ("top", tarfile.DIRTYPE, b"", 0o755, 0),
        ("top/empty", tarfile.REGTYPE, b"", 0o644, 1_700_000_000),
        ("top/big.bin", tarfile.REGTYPE, payload(BIG), 0o755, 1_700_000_001),
        ("top/\u00e9t\u00e9.txt", tarfile.REGTYPE, b"non-ascii name\n", 0o600, 1_600_000_000),
        ("top/" + "d" * 90 + "/" + "f" * 60, tarfile.REGTYPE, b"ustar prefix\n", 0o644, 1),
        ("top/lib", tarfile.DIRTYPE, b"", 0o755, 0),
        ("top/lib64", tarfile.SYMTYPE, "lib", 0o777, 0),
        ("top/hard", tarfile.LNKTYPE, "top/empty", 0o644, 0),
    ]
    if not ustar:  # names and targets over the ustar limits
        members += [
            (LONG, tarfile.REGTYPE, b"long name\n", 0o644, 1_700_000_002),
            ("top/longlink", tarfile.SYMTYPE, LONG_TARGET, 0o777, 0),
            ("top/" + "x" * 120 + "/", tarfile.DIRTYPE, b"", 0o755, 0),
        ]
    return members


def pieces(data: bytes, size: int) -> Callable[[], bytes]:
    """Hands ``data`` on ``size`` bytes at a time, as a decoder does."""
    chunks = iter([data[i : i + size] for i in range(0, len(data), size)] + [b""])
    return lambda: next(chunks, b"")


def members_of(data: bytes, piece: int, tmp: Path) -> list[tuple[str, bytes, int, int, int, str, bytes]]:
    """What our parser reads: each member's fields and the bytes it writes for a file."""
    found = []
    tar = TarStream(pieces(data, piece))
    for h in tar.members():
        content = b""
        if h.type in (b"0", b"\0", b"7"):
            out = tmp / "content"
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                tar.write_to(fd)
            finally:
                os.close(fd)
            content = out.read_bytes()
        found.append((h.name, h.type, h.mode, h.size, h.mtime, h.linkname, content))
    return found


def members_by_tarfile(data: bytes) -> list[tuple[str, bytes, int, int, int, str, bytes]]:
    found = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tf:
        for ti in tf:
            stream = tf.extractfile(ti) if ti.isreg() else None
            content = stream.read() if stream is not None else b""
            found.append((ti.name, ti.type, ti.mode, ti.size, int(ti.mtime), ti.linkname, content))
    return found


@pytest.mark.parametrize("piece", [1, 511, 4096, 1 << 20])
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_members_are_read_as_tarfile_reads_them(tmp_path: Path, fmt: str, piece: int) -> None:
    data = make_tar(sample(FORMATS[fmt]), FORMATS[fmt])
    ours = members_of(data, piece, tmp_path)
    assert ours == members_by_tarfile(data)
    assert len(ours) == len(sample(FORMATS[fmt]))


def test_pax_mtime_fractions_and_gnu_long_names_after_pax(tmp_path: Path) -> None:
    """A pax mtime is a float (its fraction dropped); of two extension headers before one
    member, the first wins, as in tarfile."""
    data = make_tar([("top/f", tarfile.REGTYPE, b"x", 0o644, 1_700_000_000.75)])
    assert members_of(data, 4096, tmp_path)[0][4] == 1_700_000_000
    gnu = make_tar([(LONG, tarfile.REGTYPE, b"x", 0o644, 5)], tarfile.GNU_FORMAT)
    pax_then_gnu = _pax_record_header("path", "top/pax-name") + gnu
    assert [m[0] for m in members_of(pax_then_gnu, 4096, tmp_path)] == ["top/pax-name"]
    assert [m[0] for m in members_by_tarfile(pax_then_gnu)] == ["top/pax-name"]


def _pax_record_header(key: str, value: str) -> bytes:
    """A lone pax extended header (type x) with one record, as the start of an archive."""
    record = f" {key}={value}\n".encode()
    length = len(record) + len(str(len(record)))
    length += len(str(length)) - len(str(len(record)))
    body = str(length).encode() + record
    info = tarfile.TarInfo("././@PaxHeader")
    info.type, info.size = tarfile.XHDTYPE, len(body)
    header = info.tobuf(tarfile.USTAR_FORMAT)
    return header + body + bytes(-len(body) % BLOCK)


TAR_DATA = st.lists(
    st.tuples(
        st.sampled_from(["top/a", "top/b/c", "top/" + "n" * 150, "top/\u00e9", "top/d/"]),
        st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE]),
        st.binary(max_size=1500),
        st.sampled_from([0o644, 0o755, 0o4777, 0]),
        st.floats(min_value=0, max_value=2**33, allow_nan=False),
    ),
    max_size=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(members=TAR_DATA, fmt=st.sampled_from(sorted(FORMATS)), piece=st.sampled_from([1, 100, 512, 5000]))
def test_any_archive_tarfile_writes_is_read_the_same(
    tmp_path: Path, members: list[tuple[str, bytes, bytes, int, float]], fmt: str, piece: int
) -> None:
    specs: list[Spec] = []
    for name, kind, content, mode, mtime in members:
        if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
            specs.append((name, kind, content.hex()[:200], mode, mtime))
        else:  # a folder has no data (tarfile would read data written after one as a header)
            specs.append((name, kind, content if kind == tarfile.REGTYPE else b"", mode, mtime))
    try:
        data = make_tar(specs, FORMATS[fmt])
    except ValueError:  # a name or number this format cannot hold
        return
    assert members_of(data, piece, tmp_path) == members_by_tarfile(data)


# --- through the unpacker: the trees written -----------------------------------------


def unpack(archive: Path, tmp_path: Path) -> Path:
    return unpack_to_staging(archive, tmp_path / "target", "top")


def gz(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data, mtime=0))
    return path


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_member_kind_lands_as_written(tmp_path: Path, fmt: str) -> None:
    specs = sample(FORMATS[fmt])
    staging = unpack(gz(tmp_path / "a.tar.gz", make_tar(specs, FORMATS[fmt])), tmp_path)
    assert (staging / "big.bin").read_bytes() == payload(BIG)
    assert (staging / "empty").read_bytes() == b""
    assert os.readlink(staging / "lib64") == "lib"
    assert (staging / "hard").stat().st_ino == (staging / "empty").stat().st_ino
    for name, kind, _, mode, mtime in specs:
        if kind != tarfile.REGTYPE:
            continue
        st_ = (staging / name.removeprefix("top/")).stat()
        assert stat.S_IMODE(st_.st_mode) == mode & 0o755 | 0o600
        assert st_.st_mtime == int(mtime)
    if fmt != "ustar":
        assert (staging / LONG.removeprefix("top/")).read_bytes() == b"long name\n"
        assert os.readlink(staging / "longlink") == LONG_TARGET
        assert (staging / ("x" * 120)).is_dir()
    parents = 1 if fmt == "ustar" else 2  # the folders of the long names: no member of their own
    assert len(tree(staging)) == len(specs) - 1 + parents


def test_an_old_style_folder_and_a_contiguous_file(tmp_path: Path) -> None:
    """V7 tar marked folders by a trailing slash on a plain file; type 7 is a file."""
    data = make_tar(
        [
            ("top", tarfile.DIRTYPE, b"", 0o755, 0),
            ("top/old/", tarfile.AREGTYPE, b"", 0o755, 0),
            ("top/cont", tarfile.CONTTYPE, b"contiguous", 0o644, 0),
        ],
        tarfile.GNU_FORMAT,
    )
    staging = unpack(gz(tmp_path / "a.tar.gz", data), tmp_path)
    assert tree(staging) == {"cont": tree(staging)["cont"], "old": "dir"}
    assert (staging / "cont").read_bytes() == b"contiguous"


def refused(archive: Path, tmp_path: Path, match: str) -> None:
    with pytest.raises(VenvStacksError, match=match) as err:
        unpack(archive, tmp_path)
    assert str(err.value).startswith(f"refusing to unpack {archive.name}: damaged or truncated")
    assert os.listdir(tmp_path / "target") == []


def good_archive() -> bytes:
    return make_tar(
        [
            ("top", tarfile.DIRTYPE, b"", 0o755, 0),
            ("top/a", tarfile.REGTYPE, payload(3000), 0o644, 0),
            ("top/b", tarfile.REGTYPE, b"b", 0o644, 0),
        ]
    )


@pytest.mark.parametrize(
    ("cut", "why"),
    [(512 + 512 + 1000, "unexpected end of data"), (512 + 512 + 3072 + 100, "truncated header")],
)
def test_a_tar_cut_short_is_refused(tmp_path: Path, cut: int, why: str) -> None:
    """Cut in a file's data, or in the next header (the compression itself intact)."""
    refused(gz(tmp_path / "cut.tar.gz", good_archive()[:cut]), tmp_path, why)


@pytest.mark.parametrize("where", [0, 512 + 512 + 3072])
def test_a_header_with_a_bad_checksum_is_refused(tmp_path: Path, where: int) -> None:
    """The first header, or one past it (tarfile would quietly stop there: a layer cut short)."""
    data = bytearray(good_archive())
    data[where + 10] ^= 0x01  # a byte of the name: the stored checksum no longer matches
    refused(gz(tmp_path / "bad.tar.gz", bytes(data)), tmp_path, "bad checksum")


def test_an_extension_header_with_no_member_after_it_is_refused(tmp_path: Path) -> None:
    top = tarfile.TarInfo("top")
    top.type = tarfile.DIRTYPE
    data = top.tobuf(tarfile.USTAR_FORMAT) + _pax_record_header("path", "top/x") + bytes(1024)
    refused(gz(tmp_path / "dangling.tar.gz", data), tmp_path, "end of file header")


def test_a_huge_extension_header_is_refused_unread() -> None:
    info = tarfile.TarInfo("././@LongLink")
    info.type, info.size = tarfile.GNUTYPE_LONGNAME, 1 << 32
    tar = TarStream(pieces(info.tobuf(tarfile.USTAR_FORMAT), 512))
    with pytest.raises(TarDamaged, match="extension header"):
        next(tar.members())


@pytest.mark.parametrize("kind", [tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE])
def test_an_extension_header_of_negative_size_is_refused(kind: bytes) -> None:
    """A base-256 size can be negative: read as such, it moved the reader back onto the
    same header, for ever (a thread, so that a regression fails instead of hanging)."""
    info = tarfile.TarInfo("././@LongLink")
    info.type, info.size = kind, -512
    tar = TarStream(pieces(info.tobuf(tarfile.GNU_FORMAT) + bytes(1024), 512))
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            next(tar.members())
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=30)
    assert outcome, "the reader never came back"
    assert isinstance(outcome[0], TarDamaged) and "extension header of -512 bytes" in str(outcome[0])


def test_an_empty_tar_and_an_all_zero_one() -> None:
    with pytest.raises(TarDamaged, match="empty file"):
        next(TarStream(pieces(b"", 512)).members())
    assert list(TarStream(pieces(bytes(1024), 512)).members()) == []


def test_a_global_pax_header_is_left_to_tarfile(tmp_path: Path) -> None:
    """tarfile applies a global header's records to every member after it."""
    specs: list[Spec] = [("top", tarfile.DIRTYPE, b"", 0o755, 0), ("top/f", tarfile.REGTYPE, b"f", 0o644, 0)]
    data = make_tar(specs, pax_headers={"mtime": "1234567890"})
    with pytest.raises(Unusual):
        list(TarStream(pieces(data, 4096)).members())
    staging = unpack(gz(tmp_path / "g.tar.gz", data), tmp_path)
    assert (staging / "f").read_bytes() == b"f"
    assert (staging / "f").stat().st_mtime == 1234567890


@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar makes the sparse archive")
def test_a_sparse_file_is_left_to_tarfile(tmp_path: Path) -> None:
    src = tmp_path / "src" / "top"
    src.mkdir(parents=True)
    with (src / "holes").open("wb") as f:
        f.write(b"start")
        f.seek(1 << 20)
        f.write(b"end")
    archive = tmp_path / "sparse.tar"
    subprocess.run(["tar", "-C", src.parent, "--sparse", "-cf", archive, "top"], check=True)
    data = archive.read_bytes()
    assert b"GNU.sparse" in data or data[512 + 156 : 512 + 157] == b"S", "not a sparse archive"
    staging = unpack(gz(tmp_path / "sparse.tar.gz", data), tmp_path)
    assert (staging / "holes").read_bytes() == (src / "holes").read_bytes()
