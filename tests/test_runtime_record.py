"""One runtime record: `runtime:` resolves a runtime once and writes it down; every later step
reads that record, and `runtime:` reruns when the runtime cache no longer holds it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from doit.exceptions import TaskFailed

from tests.support.spec_files import RUNTIME
from tests.support.stacks import Stack
from tests.support.wheels import SimpleIndex
from venvstacks.engine import actions
from venvstacks.engine.settings import Settings
from venvstacks.engine.tasks import act
from venvstacks.layout import INSTALLED
from venvstacks.runtimes.options import RuntimeOptions
from venvstacks.runtimes.record import RuntimeRecord, read_record, unpacked_in
from venvstacks.stack.spec import load_stack

RECORD = {
    "request": "cpython@3.11",
    "implementation": "cpython",
    "version": "3.11.7",
    "source": "local",
    "origin": "/opt/python",
    "archive_sha256": "a" * 64,
    "portable": False,
}


def test_a_record_reads_back_as_written() -> None:
    record = RuntimeRecord.from_json(RECORD)
    assert record is not None and record.to_json() == RECORD


@pytest.mark.parametrize("portable", [None, "yes", 1])
def test_a_record_that_does_not_say_portable_counts_as_not_portable(portable: object) -> None:
    data = {k: v for k, v in RECORD.items() if k != "portable"}
    if portable is not None:
        data["portable"] = portable
    record = RuntimeRecord.from_json(data)
    assert record is not None and record.portable is False


@pytest.mark.parametrize(
    "damage", [{"version": 3.11}, {"archive_sha256": "abc"}, {"request": ""}, {"origin": None}]
)
def test_a_damaged_record_is_no_record(damage: dict[str, object]) -> None:
    assert RuntimeRecord.from_json({**RECORD, **damage}) is None


def _settings(tmp_path: Path, record: dict[str, object]) -> Settings:
    (tmp_path / "venvstacks.toml").write_text(RUNTIME)
    options = RuntimeOptions(cache_dir=tmp_path / "cache")
    settings = Settings(load_stack(tmp_path / "venvstacks.toml"), tmp_path / "_build", options)
    state = settings.runtime_state(settings.stack.layer("cpython-3.11"))
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps(record))
    return settings


def test_publish_refuses_a_runtime_whose_record_does_not_say_portable(tmp_path: Path) -> None:
    settings = _settings(tmp_path, {k: v for k, v in RECORD.items() if k != "portable"})
    failure = act(actions.publish, settings, "cpython-3.11")
    assert isinstance(failure, TaskFailed)
    assert str(failure.message).startswith(
        "refusing to publish: cpython-3.11 was packed from the local CPython at /opt/python"
    )
    record = RuntimeRecord.from_json(RECORD)
    assert record is not None
    cached = settings.runtimes.cache_dir / record.entry_name
    assert "--runtime-source download (python-build-standalone's CPython; add --runtime-mirror URL" in (
        failure.message
    )
    assert f"or delete the cached local one ({cached})" in failure.message
    assert not (tmp_path / "_artifacts").exists()


def test_show_marks_a_runtime_whose_record_does_not_say_portable(tmp_path: Path) -> None:
    settings = _settings(tmp_path, {k: v for k, v in RECORD.items() if k != "portable"})
    run = subprocess.run(
        [sys.executable, "-m", "venvstacks", "show", "--json", str(settings.stack.path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(run.stdout)["runtimes"][0]["local_runtime"] is True


def test_a_step_without_a_record_says_which_task_writes_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path, {"not": "a record"})
    failure = act(actions.build, settings, "cpython-3.11")
    assert isinstance(failure, TaskFailed)
    assert "no runtime record for cpython-3.11; `venvstacks build` (or `doit runtime:cpython-3.11`)" in str(
        failure.message
    )


def test_runtime_is_not_done_while_the_cache_lacks_what_it_recorded(tmp_path: Path) -> None:
    settings = _settings(tmp_path, RECORD)
    assert actions.runtime_in_cache(settings, "cpython-3.11") is False


# -- end to end ------------------------------------------------------------------------------


@pytest.fixture
def own_cache_stack(tmp_path: Path, runtime_cache: Path, package_index: SimpleIndex) -> Stack:
    """The three-layer stack on a runtime cache of its own (a copy of the session's), built."""
    cache = tmp_path / "runtime-cache"
    shutil.copytree(runtime_cache, cache, symlinks=True, ignore=shutil.ignore_patterns(".locks"))
    stack = Stack(tmp_path / "stack", cache, package_index.url).write()
    stack.build()
    return stack


def _record(stack: Stack) -> RuntimeRecord:
    record = read_record(stack.build_dir / ".runtimes" / "cpython-3.11.json")
    assert record is not None
    return record


@pytest.mark.slow
def test_a_deleted_runtime_cache_is_refetched_by_runtime_and_layers_use_the_record(
    own_cache_stack: Stack,
) -> None:
    stack = own_cache_stack
    before = _record(stack)
    shutil.rmtree(stack.runtime_cache)
    shutil.rmtree(stack.build_dir / "cpython-3.11")  # the runtime layer must be unpacked again

    run = stack.build()
    record = _record(stack)
    assert record.same_runtime(before)  # the same local CPython, packed again the same way
    # runtime: fetched it again (nobody else resolves a runtime); an unchanged record
    # relocks and reinstalls nothing but the runtime layer whose folder went.
    assert run.ran == {"runtime:cpython-3.11", "install:cpython-3.11", "build:cpython-3.11"}
    assert unpacked_in(stack.runtime_cache, record) is not None
    for layer in ("cpython-3.11", "framework-web", "app-hello"):
        installed = json.loads((stack.build_dir / layer / INSTALLED).read_text())
        assert installed["runtime"] == record.to_json(), layer
    python = stack.build_dir / "app-hello" / "bin" / "python"
    ask = ["env", "-i", str(python), "-c", "import platform; print(platform.python_version())"]
    assert subprocess.run(ask, capture_output=True, text=True, check=True).stdout.strip() == record.version

    metadata = json.loads(stack.venvstacks("publish", str(stack.spec), "--dry-run").out)
    assert {layer["python_implementation"] for layer in metadata} == {f"cpython@{record.version}"}
    assert {layer["runtime_portable"] for layer in metadata} == {record.portable}


@pytest.mark.slow
def test_a_moved_runtime_cache_relocks_nothing(own_cache_stack: Stack, tmp_path: Path) -> None:
    stack = own_cache_stack
    moved = tmp_path / "moved-cache"
    stack.runtime_cache.rename(moved)
    stack.runtime_cache = moved
    assert stack.build().ran == set()  # the same runtime, found where it now lies

    stack.runtime_cache = tmp_path / "empty-cache"  # --runtime-cache changed: fetched into it
    run = stack.build()
    assert "runtime:cpython-3.11" in run.ran
    assert not any(task.startswith("lock:") for task in run.ran)
    assert unpacked_in(stack.runtime_cache, _record(stack)) is not None
