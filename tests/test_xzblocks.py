"""Reading .xz files stream by stream on every core, and the plain way for any other .xz."""

from __future__ import annotations

import lzma
import os
import random
from pathlib import Path

import pytest

from venvstacks.archive.blockstream import xz_writer
from venvstacks.archive.xzblocks import ParallelXzReader, open_xz, split_streams

BLOCK = 64 * 1024


def data(size: int = 5 * BLOCK + 123) -> bytes:
    rng = random.Random(15)
    words = [rng.randbytes(rng.randint(1, 12)) for _ in range(500)]
    return b"".join(rng.choice(words) for _ in range(size // 6))[:size]


def ours(path: Path, content: bytes) -> Path:
    with path.open("wb") as raw, xz_writer(raw, block_size=BLOCK) as xz:
        xz.write(content)
    return path


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


def test_stream_padding_between_streams_is_skipped(tmp_path: Path) -> None:
    first, second = data(BLOCK), data(BLOCK // 2)
    path = tmp_path / "padded.xz"
    path.write_bytes(lzma.compress(first) + b"\0" * 8 + lzma.compress(second) + b"\0" * 4)
    assert len(split_streams(path)) == 2
    assert read_all(path) == ("ParallelXzReader", first + second)


def test_one_stream_of_many_blocks_is_read_the_plain_way(tmp_path: Path) -> None:
    content = data()
    path = tmp_path / "one.xz"
    path.write_bytes(lzma.compress(content))
    assert read_all(path) == ("LZMAFile", content)


def test_a_damaged_stream_is_an_lzma_error(tmp_path: Path) -> None:
    path = ours(tmp_path / "bad.xz", data())
    third = split_streams(path)[2]
    raw = bytearray(path.read_bytes())
    raw[third.offset + third.size // 2] ^= 0xFF  # inside the compressed block
    path.write_bytes(bytes(raw))
    assert isinstance(open_xz(path), ParallelXzReader)  # the indexes are intact
    with pytest.raises(lzma.LZMAError):
        read_all(path)


def test_a_damaged_index_falls_back_to_reading_the_plain_way(tmp_path: Path) -> None:
    path = ours(tmp_path / "bad.xz", data())
    raw = bytearray(path.read_bytes())
    raw[-20] ^= 0xFF  # a size in the last stream's index: its CRC no longer matches
    path.write_bytes(bytes(raw))
    with pytest.raises(Exception, match="bad xz index"):
        split_streams(path)
    # As before this reader existed: Python's lzma drops a bad trailing stream silently
    # (deploy checks every archive's sha256 first, so no damaged archive gets this far).
    with lzma.LZMAFile(path) as plain:
        assert read_all(path) == ("LZMAFile", plain.read())


def test_a_file_that_is_not_xz_is_an_lzma_error(tmp_path: Path) -> None:
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
