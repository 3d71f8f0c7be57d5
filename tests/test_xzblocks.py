"""Reading .xz files stream by stream on every core, and any other .xz in a child process
(the system's xz, else this Python's lzma) or, with neither, the plain way in-process."""

from __future__ import annotations

import lzma
import os
import random
import shutil
from pathlib import Path

import pytest

from tests.support.procs import ends
from venvstacks.archive import xzblocks
from venvstacks.archive.blockstream import xz_writer
from venvstacks.archive.xzblocks import ParallelXzReader, open_xz, split_streams
from venvstacks.archive.xzchild import ChildXzReader, decoder_command, python_command, xz_command

BLOCK = 64 * 1024


def data(size: int = 5 * BLOCK + 123) -> bytes:
    rng = random.Random(15)
    words = [rng.randbytes(rng.randint(1, 12)) for _ in range(500)]
    return b"".join(rng.choice(words) for _ in range(size // 6))[:size]


def ours(path: Path, content: bytes) -> Path:
    with path.open("wb") as raw, xz_writer(raw, block_size=BLOCK) as xz:
        xz.write(content)
    return path


@pytest.fixture(params=["xz", "python", "in-process"])
def decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which way a one-stream file is decoded (see ``READER``)."""
    command: tuple[str, ...] | None = None
    if request.param == "xz":
        xz = shutil.which("xz")
        if xz is None:
            pytest.skip("no xz on PATH")
        command = xz_command(xz)
    elif request.param == "python":
        command = python_command()
    monkeypatch.setattr(xzblocks, "decoder_command", lambda: command)
    return str(request.param)


READER = {"xz": "ChildXzReader", "python": "ChildXzReader", "in-process": "LZMAFile"}


def read_all(path: Path, step: int = 10_000) -> tuple[str, bytes]:
    with open_xz(path) as stream:
        parts = list(iter(lambda: stream.read(step), b""))
        return type(stream).__name__, b"".join(parts)


def test_our_archives_are_cut_into_streams_and_read_in_parallel(tmp_path: Path) -> None:
    content = data()
    path = ours(tmp_path / "a.xz", content)
    streams = split_streams(path)
    assert [s.uncompressed for s in streams] == [BLOCK] * 5 + [123]
    assert streams[0].offset == 0 and sum(s.size for s in streams) == path.stat().st_size
    assert read_all(path) == ("ParallelXzReader", content)
    assert read_all(path, step=BLOCK + 1)[1] == content


def read_pieces(path: Path) -> tuple[str, bytes]:
    """As the unpacker reads: each decoded piece handed on whole (read_piece)."""
    with open_xz(path) as stream:
        assert isinstance(stream, (ParallelXzReader, ChildXzReader))
        return type(stream).__name__, b"".join(bytes(p) for p in iter(stream.read_piece, b""))


def test_pieces_are_the_decoded_bytes_in_order(tmp_path: Path) -> None:
    content = data()
    assert read_pieces(ours(tmp_path / "many.xz", content)) == ("ParallelXzReader", content)
    one = tmp_path / "one.xz"
    one.write_bytes(lzma.compress(content))
    if decoder_command() is not None:
        assert read_pieces(one) == ("ChildXzReader", content)


def test_stream_padding_between_streams_is_skipped(tmp_path: Path) -> None:
    first, second = data(BLOCK), data(BLOCK // 2)
    path = tmp_path / "padded.xz"
    path.write_bytes(lzma.compress(first) + b"\0" * 8 + lzma.compress(second) + b"\0" * 4)
    assert len(split_streams(path)) == 2
    assert read_all(path) == ("ParallelXzReader", first + second)


def test_one_stream_is_read_in_a_child_process_else_the_plain_way(tmp_path: Path, decoder: str) -> None:
    content = data()
    path = tmp_path / "one.xz"
    path.write_bytes(lzma.compress(content))
    assert read_all(path) == (READER[decoder], content)


def test_an_open_file_is_read_from_its_start_wherever_it_stands(tmp_path: Path, decoder: str) -> None:
    """As deploy hands over an archive it has just hashed: the child reads through the very
    descriptor, from byte 0."""
    content = data()
    path = tmp_path / "one.xz"
    path.write_bytes(lzma.compress(content))
    with path.open("rb") as f:
        f.read()  # at its end, as after hashing
        with open_xz(f) as stream:
            assert type(stream).__name__ == READER[decoder]
            assert stream.read() == content


def test_a_truncated_stream_is_an_lzma_error(tmp_path: Path, decoder: str) -> None:
    path = tmp_path / "cut.xz"
    whole = lzma.compress(data())
    path.write_bytes(whole[: len(whole) // 2])
    # LZMAFile ends with EOFError, which the unpacker counts as damage as well.
    with pytest.raises((lzma.LZMAError, EOFError)):
        read_all(path)


@pytest.mark.parametrize("decoder", ["xz", "python"], indirect=True)
def test_closing_early_stops_the_child(tmp_path: Path, decoder: str) -> None:
    path = tmp_path / "big.xz"
    path.write_bytes(lzma.compress(data(40 * BLOCK)))  # more than a pipe holds
    reader = open_xz(path)
    assert isinstance(reader, ChildXzReader)
    assert len(reader.read(100)) == 100
    reader.close()
    assert ends(reader.pid), "the decoding child was left running"
    with pytest.raises(ValueError):
        reader.read(1)


def test_a_damaged_stream_is_an_lzma_error(tmp_path: Path) -> None:
    path = ours(tmp_path / "bad.xz", data())
    third = split_streams(path)[2]
    raw = bytearray(path.read_bytes())
    raw[third.offset + third.size // 2] ^= 0xFF  # inside the compressed block
    path.write_bytes(bytes(raw))
    assert isinstance(open_xz(path), ParallelXzReader)  # the indexes are intact
    with pytest.raises(lzma.LZMAError):
        read_all(path)


def test_a_damaged_index_falls_back_to_reading_the_one_stream_way(tmp_path: Path, decoder: str) -> None:
    path = ours(tmp_path / "bad.xz", data())
    raw = bytearray(path.read_bytes())
    raw[-20] ^= 0xFF  # a size in the last stream's index: its CRC no longer matches
    path.write_bytes(bytes(raw))
    with pytest.raises(Exception, match="bad xz index"):
        split_streams(path)
    if decoder == "xz":
        # The system's xz refuses the damaged stream (deploy checks every archive's sha256
        # first, so no damaged archive gets this far)...
        with pytest.raises(lzma.LZMAError, match=r"^xz: Compressed data is corrupt$"):
            read_all(path)
        return
    # ...where Python's lzma, in a child or here, drops a bad trailing stream silently.
    with lzma.LZMAFile(path) as plain:
        assert read_all(path) == (READER[decoder], plain.read())


def test_a_file_that_is_not_xz_is_an_lzma_error(tmp_path: Path, decoder: str) -> None:
    path = tmp_path / "noise.xz"
    path.write_bytes(os.urandom(10_000))
    with pytest.raises(lzma.LZMAError):
        read_all(path)


def test_closing_early_waits_for_the_streams_under_way(tmp_path: Path) -> None:
    path = ours(tmp_path / "a.xz", data(20 * BLOCK))
    reader = open_xz(path)
    assert isinstance(reader, ParallelXzReader)
    assert len(reader.read(100)) == 100
    reader.close()
    assert reader.closed
    with pytest.raises(ValueError):
        reader.read(1)
