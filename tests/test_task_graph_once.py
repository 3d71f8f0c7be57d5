"""`venvstacks build` makes its task list once: the plan it prints and the tasks doit runs
are the same dicts (before, each creator ran once for the plan and again for doit)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import venvstacks.cli_workflow
from tests.support.spec_files import RUNTIME, app, framework, write_stack
from venvstacks.cli import main
from venvstacks.engine import rundoit, tasks
from venvstacks.engine.settings import Settings
from venvstacks.engine.taskkind import TaskKind
from venvstacks.engine.tasks import TaskDict, TaskGraph


def test_the_plan_and_doit_share_one_task_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stack = RUNTIME + framework("web") + app("hello", 'frameworks = ["web"]')
    spec = write_stack(tmp_path, stack, {"launch.py": ""})
    made: Counter[TaskKind] = Counter()
    for kind, creator in list(tasks.CREATORS.items()):

        def counted(settings: Settings, kind: TaskKind = kind, creator: Any = creator) -> Iterator[TaskDict]:
            made[kind] += 1
            yield from creator(settings)

        monkeypatch.setitem(tasks.CREATORS, kind, counted)
    given: list[tuple[list[str | None], list[str | None]]] = []

    def run_doit(settings: Settings, argv: list[str], graph: TaskGraph) -> int:
        # What doit would load: every task of the namespace's creators, against the graph.
        ns = rundoit.namespace(settings, graph)
        loaded = [t["name"] for key, c in ns.items() if key.startswith("task_") for t in c()]
        planned = [name for kind in TaskKind for name in (None, *(t["name"] for t in graph[kind]))]
        given.append((loaded, planned))
        return 0

    monkeypatch.setattr(venvstacks.cli_workflow, "run_doit", run_doit)
    assert main(["build", str(spec), "-q"]) == 0
    assert made == dict.fromkeys(TaskKind, 1)
    [(loaded, planned)] = given
    assert loaded == planned  # a group task per kind (None), then the graph's own tasks
    assert "app-hello" in loaded


def test_the_cli_loader_gives_doit_what_its_own_loader_would(tmp_path: Path) -> None:
    """StackLoader skips doit's source-line sort of the creators: same tasks, same order,
    same dependencies as doit's loader of the namespace."""
    from doit.cmd_base import ModuleTaskLoader

    from venvstacks.runtimes.options import RuntimeOptions
    from venvstacks.stack.spec import load_stack

    stack = RUNTIME + framework("web") + app("hello", 'frameworks = ["web"]')
    spec = write_stack(tmp_path, stack, {"launch.py": ""})
    settings = Settings(load_stack(spec), tmp_path / "_build", RuntimeOptions(cache_dir=tmp_path / "c"))
    graph = tasks.task_graph(settings)

    def loaded(loader: Any) -> list[tuple[str, list[str], list[str], bool]]:
        loader.setup({})
        config = loader.load_doit_config()
        assert config["dep_file"] == str(settings.doit_db) and config["backend"] == "sqlite3"
        run = SimpleNamespace(execute_tasks=True)  # what doit's loader reads of its command
        found = loader.load_tasks(run, [])
        return [(t.name, t.task_dep, sorted(t.file_dep), t.has_subtask) for t in found]

    ours = loaded(rundoit.StackLoader(rundoit.namespace(settings, graph)))
    assert ours == loaded(ModuleTaskLoader(rundoit.namespace(settings, graph)))
    assert [name for name, *_ in ours][:3] == ["runtime", "runtime:cpython-3.11", "lock"]
