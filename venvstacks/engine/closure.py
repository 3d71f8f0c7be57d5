"""Every task a run of some tasks touches, and the operations that makes for each layer (pure).

doit runs a task's `task_dep` and the tasks producing its `file_dep` first, so asking for
`publish:app-x` also locks and builds app-x, its lower layers and its runtime.
`--show-only` and `--json` list what follows from that closure, computed from the very
task dicts doit is then given (`tasks.task_graph`, made once), so the listing is the run.
"""

from __future__ import annotations

from collections.abc import Iterable

from venvstacks.engine.settings import Settings
from venvstacks.engine.taskkind import TaskKind, TaskName
from venvstacks.engine.tasks import TaskDict, TaskGraph


def task_closure(graph: TaskGraph, requested: Iterable[str]) -> set[str]:
    """The requested tasks and every task doit runs (or finds up to date) before them."""
    tasks: dict[str, TaskDict] = {
        kind.task(task["name"]): task for kind, dicts in graph.items() for task in dicts
    }
    producer = {str(target): name for name, task in tasks.items() for target in task.get("targets", [])}
    seen: set[str] = set()
    todo = list(requested)
    while todo:
        name = todo.pop()
        if name in seen or name not in tasks:
            continue
        seen.add(name)
        task = tasks[name]
        todo += task.get("task_dep", [])
        todo += [producer[str(f)] for f in task.get("file_dep", []) if str(f) in producer]
    return seen


def layer_operations(settings: Settings, tasks: Iterable[str]) -> dict[str, list[TaskKind]]:
    """Layer build name -> its operations in `tasks`, in stack order and operation order."""
    ops: dict[str, set[TaskKind]] = {}
    for task in tasks:
        name = TaskName.parse(task)
        if name is not None and name.kind.operation is not None:
            ops.setdefault(name.layer, set()).add(name.kind.operation)
    return {
        layer.env_name: sorted(ops[layer.env_name], key=lambda kind: kind.order)
        for layer in settings.stack.layers
        if layer.env_name in ops
    }
