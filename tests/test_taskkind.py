"""Task kinds as data: names made and read back, the run's operation order, group docs, forcing."""

from __future__ import annotations

import pytest

from venvstacks.engine.taskkind import DEFAULT_KINDS, Force, TaskKind, TaskName


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ("build:app-hello", TaskName(TaskKind.BUILD, "app-hello")),
        ("runtime:cpython-3.11", TaskName(TaskKind.RUNTIME, "cpython-3.11")),
        ("publish:win_amd64/app-hello", TaskName(TaskKind.PUBLISH, "app-hello", "win_amd64")),
    ],
)
def test_a_task_name_reads_back_into_what_made_it(task: str, expected: TaskName) -> None:
    assert TaskName.parse(task) == expected
    assert str(expected) == task
    assert expected.kind.task(expected.layer, expected.platform) == task


@pytest.mark.parametrize("task", ["build", "lock", "clean:app-hello", "nonsense"])
def test_group_tasks_and_foreign_tasks_are_no_layer_task(task: str) -> None:
    assert TaskName.parse(task) is None


def test_the_kinds_come_in_the_order_a_layer_goes_through_them() -> None:
    by_order = sorted(TaskKind, key=lambda kind: kind.order)
    assert [kind.prefix for kind in by_order] == ["runtime", "lock", "install", "build", "export", "publish"]
    assert [kind.prefix for kind in DEFAULT_KINDS] == ["lock", "build"]
    # what --show-only lists: install is part of build, runtime: of neither
    assert {kind.prefix: getattr(kind.operation, "prefix", None) for kind in TaskKind} == {
        "runtime": None,
        "lock": "lock",
        "install": "build",
        "build": "build",
        "export": "export",
        "publish": "publish",
    }


def test_what_forces_each_kind_to_rerun() -> None:
    assert {kind.prefix for kind in TaskKind if kind.forced_by is Force.OUTPUTS} == {"export", "publish"}
    assert {kind.prefix for kind in TaskKind if kind.forced_by is Force.RELOCK} == {"lock"}
    assert {kind.prefix for kind in TaskKind if kind.is_output} == {"export", "publish"}
