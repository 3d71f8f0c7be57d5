"""Downloading a file with a per-read timeout, retries and an overall deadline.

A per-read timeout alone never ends a download from a server that sends one byte every few
seconds, so every download also has a deadline: it fails at most `deadline + read_timeout`
seconds after it started (the last read may wait out its own timeout). Failures that may be
passing (connection refused or reset, a read timeout, HTTP 5xx and 429, a response cut
short) are retried after a short pause, within the deadline. The limits come from the
environment (docs/runtimes.md):

  VENVSTACKS_DOWNLOAD_TIMEOUT    seconds a single read may wait for data (default 60)
  VENVSTACKS_DOWNLOAD_DEADLINE   seconds a whole download may take, retries included (default 1800)
  VENVSTACKS_DOWNLOAD_RETRIES    extra attempts after a failure that may pass (default 3)
"""

from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from venvstacks.errors import VenvStacksError

_CHUNK = 1 << 20
_FIRST_PAUSE = 0.5  # seconds before the first retry; doubles each time


class DownloadError(VenvStacksError):
    """The download failed for good; the message is one line naming the URL."""


class _Passing(Exception):
    """A failure worth another attempt."""


@dataclass(frozen=True)
class DownloadLimits:
    read_timeout: float = 60.0
    deadline: float = 1800.0
    retries: int = 3

    @classmethod
    def from_env(cls) -> DownloadLimits:
        env = os.environ
        return cls(
            read_timeout=_number(env, "VENVSTACKS_DOWNLOAD_TIMEOUT", cls.read_timeout),
            deadline=_number(env, "VENVSTACKS_DOWNLOAD_DEADLINE", cls.deadline),
            retries=int(_number(env, "VENVSTACKS_DOWNLOAD_RETRIES", cls.retries, whole=True)),
        )


def _number(env: Mapping[str, str], name: str, default: float, whole: bool = False) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        value = -1
    if value < 0 or (not whole and value == 0):
        kind = "a whole number >= 0" if whole else "a number of seconds > 0"
        raise VenvStacksError(f"{name}={text!r} is not {kind}")
    return value


def download(url: str, dest: Path) -> str:
    """Stream url into dest, hashing as it goes; returns the sha256. DownloadError on failure.

    The limits come from the environment, read afresh for every download."""
    limits = DownloadLimits.from_env()
    give_up_at = time.monotonic() + limits.deadline
    pause = _FIRST_PAUSE
    for attempt in range(limits.retries + 1):
        try:
            return _download_once(url, dest, limits, give_up_at)
        except _Passing as exc:
            left = give_up_at - time.monotonic()
            if attempt == limits.retries or left <= pause:
                tries = f" (after {attempt + 1} attempts)" if attempt else ""
                raise DownloadError(f"could not download {url}: {exc}{tries}") from None
            time.sleep(pause)
            pause *= 2
    raise AssertionError("unreachable")  # the loop returns or raises


def _write(out: BinaryIO, block: bytes, dest: Path) -> None:
    # A full disk is not a network failure: no retry, and the message names the folder.
    try:
        out.write(block)
    except OSError as exc:
        raise DownloadError(f"cannot write to {dest.parent}: {exc.strerror or exc}") from None


def _download_once(url: str, dest: Path, limits: DownloadLimits, give_up_at: float) -> str:
    h = hashlib.sha256()
    received = 0
    try:
        timeout = min(limits.read_timeout, max(give_up_at - time.monotonic(), 0.001))
        with urllib.request.urlopen(url, timeout=timeout) as resp, dest.open("wb") as out:
            expected = resp.headers.get("Content-Length") if url.startswith("http") else None
            # read1 returns what one read brings, so the deadline is checked between reads
            # even when data trickles in (read(n) would wait for all n bytes).
            read = getattr(resp, "read1", resp.read)
            while block := read(_CHUNK):
                h.update(block)
                _write(out, block, dest)
                received += len(block)
                if time.monotonic() > give_up_at:
                    raise DownloadError(
                        f"could not download {url}: not finished within the {limits.deadline:g} s "
                        f"deadline (got {received} bytes; VENVSTACKS_DOWNLOAD_DEADLINE sets it)"
                    )
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the response open
        if exc.code >= 500 or exc.code == 429:
            raise _Passing(f"HTTP {exc.code} {exc.reason}") from None
        raise DownloadError(f"could not download {url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        if url.startswith("file:"):
            raise DownloadError(f"could not download {url}: {exc.reason}") from None
        raise _Passing(str(exc.reason)) from None
    except TimeoutError:
        raise _Passing(f"no data for {limits.read_timeout:g} s (VENVSTACKS_DOWNLOAD_TIMEOUT)") from None
    except (OSError, http.client.HTTPException) as exc:
        raise _Passing(str(exc) or type(exc).__name__) from None
    # A connection closed early looks like a clean end of stream to urllib.
    if expected is not None and expected.isdigit() and int(expected) != received:
        raise _Passing(f"got {received} of {expected} bytes")
    return h.hexdigest()
