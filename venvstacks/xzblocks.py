"""Parallel, reproducible xz: fixed-size blocks compressed on a thread pool.

Python's lzma encoder is single-threaded. Cutting the tar stream into fixed-size blocks and
compressing each as its own xz stream (concatenated streams are a valid .xz file, read by
`xz`, `tar` and Python's `lzma`) uses every core, and the bytes depend only on the block
size and the filters, never on the number of workers. On x86-64 the BCJ x86 filter goes
first: layers are mostly machine code (.so files), which it makes noticeably smaller,
more than paying for the dictionary restarted at each block.
"""

from __future__ import annotations

import io
import lzma
import os
import platform
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any

BLOCK_SIZE = 32 * 1024 * 1024
PRESET = 6


def filters(machine: str | None = None) -> list[dict[str, Any]]:
    machine = (machine or platform.machine()).lower()
    chain: list[dict[str, Any]] = []
    if machine in ("x86_64", "amd64", "i386", "i686"):
        chain.append({"id": lzma.FILTER_X86})
    chain.append({"id": lzma.FILTER_LZMA2, "preset": PRESET})
    return chain


def _compress(block: bytes, chain: list[dict[str, Any]]) -> bytes:
    return lzma.compress(block, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, filters=chain)


class ParallelXZWriter(io.RawIOBase):
    """A write-only stream: what is written comes out xz-compressed into `raw`, in order."""

    def __init__(self, raw: IO[bytes], workers: int | None = None, block_size: int = BLOCK_SIZE) -> None:
        super().__init__()
        self._raw = raw
        self._block_size = block_size
        self._workers = max(1, workers or os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="xz")
        self._pending: deque[Future[bytes]] = deque()
        self._buffer = bytearray()
        self._filters = filters()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._buffer += view
        while len(self._buffer) >= self._block_size:
            self._submit(bytes(self._buffer[: self._block_size]))
            del self._buffer[: self._block_size]
        return len(view)

    def _submit(self, block: bytes) -> None:
        self._pending.append(self._pool.submit(_compress, block, self._filters))
        # Bound memory: at most one block waiting per worker, plus the one being filled.
        while len(self._pending) > self._workers:
            self._raw.write(self._pending.popleft().result())

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._buffer or not self._pending:
                self._submit(bytes(self._buffer))
                self._buffer.clear()
            while self._pending:
                self._raw.write(self._pending.popleft().result())
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            super().close()
