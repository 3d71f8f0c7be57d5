"""Block-parallel compression: plain xz and gzip out, the same bytes whatever the threads."""

from __future__ import annotations

import gzip
import io
import lzma
import os
import threading
import time
from collections.abc import Callable
from typing import IO

import pytest

from venvstacks.archive.blockstream import _STEP, BlockWriter, gzip_writer, shared_pool, xz_filters, xz_writer

DATA = b"".join(i.to_bytes(4, "little") * 50 for i in range(20000))  # ~4 MB, compressible
BLOCK = 64 * 1024


def _write_in_pieces(writer: BlockWriter, data: bytes, piece: int = 10_000) -> None:
    with writer:
        for i in range(0, len(data), piece):
            writer.write(data[i : i + piece])


def test_xz_is_the_same_for_any_thread_count_and_reads_back_whole() -> None:
    outputs = []
    for workers in (1, 3, None):  # None: the process-wide pool
        raw = io.BytesIO()
        _write_in_pieces(xz_writer(raw, workers=workers, block_size=BLOCK), DATA)
        outputs.append(raw.getvalue())
    assert outputs[0] == outputs[1] == outputs[2]
    assert lzma.decompress(outputs[0]) == DATA  # concatenated streams read as one file
    # The format is fixed: one xz stream per block, each what lzma.compress makes of it.
    chain = xz_filters()
    blocks = [DATA[i : i + BLOCK] for i in range(0, len(DATA), BLOCK)]
    expected = b"".join(lzma.compress(b, lzma.FORMAT_XZ, lzma.CHECK_CRC64, filters=chain) for b in blocks)
    assert outputs[0] == expected


def test_progress_counts_input_as_each_step_of_a_block_is_compressed() -> None:
    seen: list[int] = []
    raw = io.BytesIO()
    data = DATA[: 3 * _STEP + 1000]  # one block of four steps: the figure moves inside it
    _write_in_pieces(xz_writer(raw, block_size=4 * _STEP, on_output=seen.append), data)
    assert seen == [_STEP, 2 * _STEP, 3 * _STEP, len(data)]


def test_gzip_members_are_plain_and_reproducible() -> None:
    data = os.urandom(1000) * 700
    first, second = io.BytesIO(), io.BytesIO()
    _write_in_pieces(gzip_writer(first, 1, BLOCK), data)
    _write_in_pieces(gzip_writer(second, 1, BLOCK, workers=2), data)
    assert first.getvalue() == second.getvalue()
    assert gzip.decompress(first.getvalue()) == data
    assert first.getvalue()[4:8] == b"\0\0\0\0"  # no time in the header


@pytest.mark.parametrize("make", [xz_writer, lambda raw: gzip_writer(raw, 6, BLOCK)])
def test_nothing_written_is_an_empty_but_valid_file(make: Callable[[IO[bytes]], BlockWriter]) -> None:
    raw = io.BytesIO()
    with make(raw):
        pass
    data = raw.getvalue()
    assert (lzma.decompress(data) if data.startswith(b"\xfd7zXZ") else gzip.decompress(data)) == b""


class _SlowEncoder:
    """Counts the input it is given, slowly, so an abort can catch it mid-block."""

    fed = 0
    lock = threading.Lock()

    def compress(self, data: bytes) -> bytes:
        time.sleep(0.01)
        with self.lock:
            _SlowEncoder.fed += len(data)
        return data

    def flush(self) -> bytes:
        return b""


def test_an_exception_stops_the_blocks_being_compressed() -> None:
    _SlowEncoder.fed = 0
    raw = io.BytesIO()
    block = 8 << 20  # 8 steps of 1 MiB each, 10 ms apiece
    with pytest.raises(KeyboardInterrupt), BlockWriter(raw, _SlowEncoder, block, workers=2) as writer:
        writer.write(b"x" * (block * 2 + 100))  # two blocks running, a third being filled
        raise KeyboardInterrupt
    fed_at_exit = _SlowEncoder.fed
    # The writer's own workers end once its blocks are done; joined, no encoder can still run.
    for worker in [t for t in threading.enumerate() if t.name.startswith("compress-own-")]:
        worker.join(timeout=30)
        assert not worker.is_alive()
    assert _SlowEncoder.fed == fed_at_exit  # nothing was still running after the with block
    assert fed_at_exit < block * 2  # the abort cut the work short
    assert raw.getvalue() == b""  # and nothing half-done reached the output


def test_writers_share_one_pool_sized_to_the_cores() -> None:
    pool = shared_pool()
    assert shared_pool() is pool
    assert pool.max_workers == len(os.sched_getaffinity(0))


class _Stop(BaseException):
    """Stands for KeyboardInterrupt (which, escaping a test, would stop pytest itself)."""


class _FailingOutput(io.BytesIO):
    def write(self, data: object) -> int:
        raise _Stop  # as if Ctrl-C came while a finished block was awaited


def test_an_interrupt_while_closing_stops_the_last_blocks_too() -> None:
    _SlowEncoder.fed = 0
    block = 8 << 20
    writer = BlockWriter(_FailingOutput(), _SlowEncoder, block, workers=2)
    writer.write(b"x" * (block * 3 - 1))  # two blocks running; the third goes in at close()
    with pytest.raises(_Stop):
        writer.close()
    assert _SlowEncoder.fed < block * 3 - 1  # the third block was not encoded to its end


def test_writes_after_an_interrupt_are_dropped_without_waiting() -> None:
    _SlowEncoder.fed = 0
    block = 8 << 20
    writer = BlockWriter(_FailingOutput(), _SlowEncoder, block, workers=2)
    with pytest.raises(_Stop):
        writer.write(b"x" * (block * 3))  # the third block waits for the first: interrupted
    # tarfile, leaving its `with` block on that exception, still flushes its buffer into us.
    writer.write(b"x" * (block * 2))
    writer.close()
    assert _SlowEncoder.fed < block * 3
