"""Small files written atomically (locks, metadata, build state) leave no temporary file
behind: not when the run is stopped while a task thread is inside the write (doit's task
threads die with the interpreter, unwinding nothing), and not after a writer was killed."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from venvstacks import fsutil, tools
from venvstacks.ship.publish import write_stack_metadata


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*.tmp"))


def test_stopping_the_run_removes_a_write_still_in_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inside, release = threading.Event(), threading.Event()
    real_replace = os.replace

    def stuck_replace(src: str | Path, dst: str | Path) -> None:
        inside.set()  # the marker: the text is written, the rename not done
        release.wait(timeout=60)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", stuck_replace)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            fsutil.write_atomic(tmp_path / "venvstacks.json", "{}\n")
        except BaseException as exc:  # the rename finds its file gone
            errors.append(exc)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    assert inside.wait(timeout=60)
    assert len(_temporaries(tmp_path)) == 1
    # What a Ctrl-C or SIGTERM runs before the process ends; only this one of the stop's
    # clean-ups (the encoders' one stops every later archive of this test process).
    assert fsutil._remove_unfinished in tools._cleanups
    fsutil._remove_unfinished()
    assert _temporaries(tmp_path) == []
    release.set()
    writer.join(timeout=60)
    assert not (tmp_path / "venvstacks.json").exists() and len(errors) == 1


def test_a_killed_writers_metadata_leftover_is_removed_by_the_next_publish(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    folder = tmp_path / "__venvstacks__"
    folder.mkdir()
    stale = folder / f".venvstacks.json.pid{dead.pid}.0a1b2c3d.tmp"
    running = folder / f".venvstacks.json.pid{os.getpid()}.0a1b2c3d.tmp"  # a writer still at it
    stale.write_text("{")
    running.write_text("{")
    path = write_stack_metadata(tmp_path, [])
    assert path.parent == folder and path.is_file()
    assert _temporaries(folder) == [running.name]
