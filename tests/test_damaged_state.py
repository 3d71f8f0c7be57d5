"""Damaged caches and state are repaired, not fatal: a broken runtime.json in the runtime
cache is discarded and refetched; a broken doit state database is deleted with one warning."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import cast

import pytest
from doit.exceptions import TaskFailed

from tests.support.runtime_checks import Log
from tests.support.runtime_fixtures import Mirror, RuntimeArchive
from tests.support.spec_files import RUNTIME
from tests.test_runtime_download import fake_table, publish
from venvstacks.engine.rundoit import check_state_db, hold_build_lock
from venvstacks.engine.settings import Settings
from venvstacks.engine.tasks import act
from venvstacks.errors import VenvStacksError
from venvstacks.platforms import host_platform
from venvstacks.runtimes.cache import ensure_runtime
from venvstacks.runtimes.options import RuntimeOptions
from venvstacks.stack.spec import load_stack


def test_a_damaged_runtime_json_is_discarded_and_refetched(
    runtime_mirror: Mirror,
    local_runtime_archive: RuntimeArchive,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    publish(runtime_mirror, local_runtime_archive)
    fake_table(monkeypatch, local_runtime_archive.version, local_runtime_archive.sha256)
    opts = RuntimeOptions(cache_dir=tmp_path / "cache", policy="download", mirror=runtime_mirror.url)
    first = ensure_runtime("cpython@3.11", opts, Log())
    entry = first.python_dir.parent / "runtime.json"
    # One cache, damaged three ways in turn (each fetch costs ~0.5 s).
    for damage in ("not json", '{"implementation": "cpython"}', "[]"):
        entry.write_text(damage)
        served = len(runtime_mirror.requests)
        again = ensure_runtime("cpython@3.11", opts, Log())
        assert len(runtime_mirror.requests) == served + 1, damage  # fetched again
        assert again == first, damage
        assert '"archive_sha256"' in entry.read_text(), damage  # the entry is whole again
        assert ensure_runtime("cpython@3.11", opts, Log()) == first
        assert len(runtime_mirror.requests) == served + 1, damage  # and a cache hit from then on


def _lock_stack(tmp_path: Path, runtime_cache: Path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "stack" / "venvstacks.toml"
    path.parent.mkdir()
    path.write_text(RUNTIME)
    env = dict(os.environ, VENVSTACKS_RUNTIME_CACHE=str(runtime_cache), VENVSTACKS_RUNTIME_SOURCE="local")
    return path, env


def _venvstacks(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "venvstacks", *args], env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.slow  # runs the venvstacks command in subprocesses
@pytest.mark.parametrize("damage", ["garbage", "truncated", "folder"])
def test_a_damaged_state_database_is_deleted_with_one_warning(
    tmp_path: Path, runtime_cache: Path, damage: str
) -> None:
    path, env = _lock_stack(tmp_path, runtime_cache)
    assert _venvstacks(env, "lock", str(path)).returncode == 0
    db = path.parent / "_build" / ".venvstacks-doit.sqlite3"
    if damage == "garbage":
        db.write_bytes(b"\x00garbage" * 100)
    elif damage == "truncated":
        db.write_bytes(db.read_bytes()[:200])
    else:
        db.unlink()
        db.mkdir()
        (db / "x").write_text("")
    run = _venvstacks(env, "lock", str(path))
    assert run.returncode == 0, run.stdout + run.stderr
    warnings = [line for line in run.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(db) in warnings[0] and "deleted it" in warnings[0]
    assert "Traceback" not in run.stdout + run.stderr
    again = _venvstacks(env, "lock", str(path))
    assert again.returncode == 0 and "warning" not in again.stderr
    assert "-- lock:cpython-3.11" in again.stdout  # the fresh database recorded the run


def test_a_sound_state_database_is_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "state.sqlite3"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("create table t (x)")
        conn.commit()
    check_state_db(db)
    assert db.exists()
    assert capsys.readouterr().err == ""  # nothing to warn about


def test_a_build_folder_too_long_for_sqlite_is_one_line(tmp_path: Path) -> None:
    db = tmp_path.joinpath(*["d" * 60] * 8) / ".venvstacks-doit.sqlite3"
    with pytest.raises(VenvStacksError, match="too long a path for doit's sqlite state database"):
        check_state_db(db)


def test_a_full_disk_fails_the_task_in_one_line_naming_the_folder() -> None:
    def full(settings: Settings, name: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "/srv/build/app-x")

    failure = act(full, cast(Settings, None), "app-x")
    assert isinstance(failure, TaskFailed)
    assert str(failure.message) == (
        "/srv/build/app-x: No space left on device; free some space there and run again "
        "(nothing half-written is kept)"
    )


def test_a_read_only_build_folder_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def read_only(self: Path, *args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(VenvStacksError) as info:
        hold_build_lock(tmp_path / "build")
    assert str(info.value) == (
        f"cannot use the build folder: {tmp_path / 'build'}: Read-only file system; "
        "make it writable or choose another folder"
    )


@pytest.mark.slow  # runs the venvstacks command in subprocesses
@pytest.mark.parametrize("damage", ["not = [toml", "= no key", 'lock-version = "1.0"\npackages = "x"\n'])
def test_show_marks_a_damaged_pylock_as_needing_a_lock(
    tmp_path: Path, runtime_cache: Path, damage: str
) -> None:
    path, env = _lock_stack(tmp_path, runtime_cache)
    assert _venvstacks(env, "lock", str(path)).returncode == 0
    pylock = path.parent / "requirements" / "cpython-3.11" / "pylock.cpython-3_11.toml"
    shown = json.loads(_venvstacks(env, "show", "--json", str(path)).stdout)
    assert shown["runtimes"][0]["has_valid_lock"] is True
    pylock.write_text(damage)
    run = _venvstacks(env, "show", "--json", str(path))
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["runtimes"][0]["has_valid_lock"] is False


@pytest.mark.slow  # runs the venvstacks command in subprocesses
def test_a_bad_tool_uv_value_names_the_stack_file_not_a_temporary_file(
    tmp_path: Path, runtime_cache: Path
) -> None:
    path, env = _lock_stack(tmp_path, runtime_cache)
    path.write_text(RUNTIME + "\n[tool.uv]\nresolution = 5\n")
    run = _venvstacks(env, "lock", str(path))
    assert run.returncode == 1
    failed = [line for line in run.stdout.splitlines() if line.startswith("FAILED lock:")]
    assert len(failed) == 1, run.stdout
    assert "Failed to parse: the [tool.uv] settings of venvstacks.toml" in failed[0]
    assert "venvstacks-lock-" not in run.stdout + run.stderr


def test_a_build_step_that_hits_a_full_disk_is_redone_when_space_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from venvstacks.layers import linking
    from venvstacks.layout import BUILT

    root = tmp_path / "stack"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__main__.py").write_text("print('hi')\n")
    (root / "venvstacks.toml").write_text(
        RUNTIME + '\n[[applications]]\nname = "demo"\nruntime = "cpython-3.11"\n'
        'launch_module = "pkg"\nrequirements = []\n'
    )
    stack = load_stack(root / "venvstacks.toml")
    env = tmp_path / "_build" / "app-demo"
    runtime = linking.Peer(tmp_path / "_build" / "cpython-3.11", "cpython-3.11")
    plan = linking.LinkPlan(stack.layer("app-demo"), env, "3.11.9", runtime, (), root, host_platform())

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(env))

    monkeypatch.setattr(linking, "copy_module", full)
    with pytest.raises(OSError):
        linking.link_layer(plan)
    assert not (env / BUILT).exists()  # the step does not look done: doit reruns it
    monkeypatch.undo()
    linking.link_layer(plan)
    assert (env / BUILT).exists()
    assert (env / plan.site_dir / "pkg" / "__main__.py").read_text() == "print('hi')\n"
