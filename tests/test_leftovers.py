"""Leftovers of a killed publish are removed at the next run; a live writer's are not."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from venvstacks.archive.formats import ArchiveEntry, ArchiveFormat
from venvstacks.archive.writer import write_archive

WRITER = """
import sys
from pathlib import Path
from venvstacks.archive.formats import ArchiveEntry, ArchiveFormat
from venvstacks.archive.writer import write_archive
src = Path(sys.argv[1])
write_archive(Path(sys.argv[2]), [ArchiveEntry("layer", src), ArchiveEntry("layer/big", src / "big")],
              ArchiveFormat.TAR_XZ, epoch=0)
"""


def _wait_for_tmp(folder: Path, proc: subprocess.Popen[bytes]) -> list[Path]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(folder.glob(".*.tmp"))
        if found:
            return found
        time.sleep(0.01)
    raise AssertionError("the writer never started its archive")


def test_a_sigkilled_publish_leaves_a_tmp_that_the_next_publish_removes(tmp_path: Path) -> None:
    src = tmp_path / "layer"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(64 * 1024 * 1024))  # xz takes seconds over this
    out = tmp_path / "published"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(src), str(out / "layer.tar.xz")])
    killed = _wait_for_tmp(out, writer)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert all(p.exists() for p in killed)  # SIGKILL: nothing cleaned up

    live = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    busy = out / f".other.tar.xz.pid{live.pid}.abcd.tmp"  # another process still writing
    busy.write_bytes(b"partial")
    try:
        (src / "big").write_bytes(b"small now")
        write_archive(out / "next.tar.xz", [ArchiveEntry("layer", src)], ArchiveFormat.TAR_XZ, epoch=0)
        assert not any(p.exists() for p in killed)
        assert busy.exists()
        assert sorted(p.name for p in out.iterdir()) == [busy.name, "next.tar.xz"]
    finally:
        live.communicate(b"")
