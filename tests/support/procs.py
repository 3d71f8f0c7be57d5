"""Processes a test started, and whether any of them is left running."""

from __future__ import annotations

import os
import select
from pathlib import Path


def ends(pid: int, within: float = 30) -> bool:
    """Whether process ``pid`` ends within ``within`` seconds: a SIGKILL takes effect a moment
    after it is sent, so wait for the process's own exit (its pidfd becomes readable)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], within)[0])
    finally:
        os.close(fd)


def left_running(sid: int, within: float = 30) -> list[str]:
    """Command lines of the processes of session ``sid`` that do not end within ``within`` s."""
    left = []
    for pid, cmdline in _session(sid).items():
        if not ends(pid, within):
            left.append(cmdline)
    return left


def _session(sid: int) -> dict[int, str]:
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue  # ended meanwhile
        if fields[0] != "Z" and int(fields[3]) == sid:
            found[int(stat.parent.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found
