"""Decoding a one-stream .xz file in a process of its own.

An .xz file that is one stream (a runtime layer of our own under 32 MiB, most archives of
other tools) cannot be cut into parts decoded at the same time (xzblocks.py). Decoded in
this process, it shares one core with the tar parsing and file writing that read it; GNU
tar's ``-J`` instead runs ``xz -d`` beside it, so decoding and writing take a core each.
:class:`ChildXzReader` does the same: the child reads the open archive itself (the very
file that was checked: its descriptor, from the start) and writes the decoded bytes into a
pipe this process reads.

The child is the system's ``xz`` when it is on PATH, else this Python running ``lzma``
(:func:`decoder_command`); with neither (a frozen application), callers decode in-process.
A child that fails (a damaged stream) raises :class:`lzma.LZMAError` with its last words
once its output ends. Closing the reader stops the child, which may not have finished:
tarfile stops reading at the end-of-archive blocks, as it does from ``lzma.LZMAFile``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Any

from venvstacks.tools import last_words, stop_group

if sys.platform == "linux":
    import fcntl

_PIPE_SIZE = 1 << 20  # bytes: fewer switches between the two processes than the default 64 KiB

# This Python's lzma, when no xz is found: stdin is the archive, stdout the pipe.
_PY_DECODER = (
    "import lzma, shutil, sys\n"
    "shutil.copyfileobj(lzma.LZMAFile(sys.stdin.buffer), sys.stdout.buffer, 1 << 20)\n"
)


@functools.cache
def decoder_command() -> tuple[str, ...] | None:
    """The command that decodes xz from stdin to stdout, or None: decode in-process."""
    xz = shutil.which("xz")
    return xz_command(xz) if xz is not None else python_command()


def xz_command(xz: str) -> tuple[str, ...]:
    """The system's xz: faster than Python's lzma, as tar -J runs it."""
    # --no-warn: a warning (an integrity check it cannot verify) is no failure, as for
    # Python's lzma, which decodes such streams without a word.
    return (xz, "--decompress", "--stdout", "--no-warn")


def python_command() -> tuple[str, ...] | None:
    """This Python running its lzma, unless it cannot run a script (a frozen application)."""
    if sys.executable and sys.implementation.name == "cpython" and not getattr(sys, "frozen", False):
        return (sys.executable, "-I", "-S", "-B", "-c", _PY_DECODER)
    return None


def _child_env() -> dict[str, str]:
    # xz reads options from these (threads, memory limits): decode as Python's lzma would.
    return {k: v for k, v in os.environ.items() if k not in ("XZ_OPT", "XZ_DEFAULTS")}


class ChildXzReader(io.RawIOBase):
    """The decoded bytes of the .xz file open at ``fd`` (read from its start; the caller
    keeps ``fd`` open and closes it), decoded by ``command`` in a child process."""

    def __init__(self, fd: int, command: tuple[str, ...]) -> None:
        super().__init__()
        os.lseek(fd, 0, os.SEEK_SET)  # the child reads through this descriptor's offset
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        try:
            self._proc: subprocess.Popen[bytes] = subprocess.Popen(
                command,
                stdin=fd,
                stdout=subprocess.PIPE,
                stderr=self._errors,
                bufsize=0,
                env=_child_env(),
                # Its own group, as every tool: deploy stops it when it stops.
                process_group=0 if os.name == "posix" else None,
            )
        except BaseException:
            self._errors.close()
            raise
        assert isinstance(self._proc.stdout, io.FileIO)  # bufsize=0: unbuffered
        self._out = self._proc.stdout
        if sys.platform == "linux":
            with contextlib.suppress(OSError):  # a lower pipe-max-size: keep the default
                fcntl.fcntl(self._out.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_SIZE)

    @property
    def pid(self) -> int:
        """The decoding child's process id."""
        return self._proc.pid

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.closed:
            raise ValueError("read from a closed xz reader")
        count = self._out.readinto(buffer) or 0  # None only for a non-blocking pipe
        if count == 0 and len(buffer) > 0:
            self._check_exit()
        return count

    def read_piece(self) -> bytes:
        """What the child has written since the last read, up to a pipe's worth, in one
        read (empty at the end of its output)."""
        if self.closed:
            raise ValueError("read from a closed xz reader")
        piece = self._out.read(_PIPE_SIZE) or b""
        if not piece:
            self._check_exit()
        return piece

    def _check_exit(self) -> None:
        """At the end of its output: the child's verdict on the stream."""
        status = self._proc.wait()
        if status != 0:
            said = last_words(self._errors)
            # xz says "xz: (stdin): <why>", a Python "<Error>: <why>": the why is enough.
            why = said.rsplit(": ", 1)[-1].strip() if said else f"exit status {status}"
            raise lzma.LZMAError(f"xz: {why}")

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._proc.poll() is None:
                stop_group(self._proc, grace=0)  # the rest of its output is not wanted
            else:
                self._proc.wait()
        finally:
            self._out.close()
            self._errors.close()
            super().close()
