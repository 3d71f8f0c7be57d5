"""Every task a run of some tasks touches, and the operations that makes for each layer (pure).

doit runs a task's `task_dep` and the tasks producing its `file_dep` first, so asking for
`publish:app-x` also locks and builds app-x, its lower layers and its runtime.
`--show-only` and `--json` list what follows from that closure, computed from the same
task dicts doit is given, so the listing is the run.
"""

from __future__ import annotations

from collections.abc import Iterable

from venvstacks.engine.settings import Settings
from venvstacks.engine.tasks import CREATORS, TaskDict

# The operation each kind of task is part of, by the existing venvstacks' names
# (`runtime:` fetches what the runtime layer's lock and build need: part of neither listing).
OPERATION_OF_TASK = {
    "lock": "lock",
    "install": "build",
    "build": "build",
    "export": "export",
    "publish": "publish",
}
OPERATIONS = ("lock", "build", "export", "publish")


def task_closure(settings: Settings, requested: Iterable[str]) -> set[str]:
    """The requested tasks and every task doit runs (or finds up to date) before them."""
    tasks: dict[str, TaskDict] = {
        f"{kind}:{task['name']}": task for kind, creator in CREATORS.items() for task in creator(settings)
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


def layer_operations(settings: Settings, tasks: Iterable[str]) -> dict[str, list[str]]:
    """Layer build name -> its operations in `tasks`, in stack order and operation order."""
    ops: dict[str, set[str]] = {}
    for task in tasks:
        kind, _, name = task.partition(":")
        name = name.rpartition("/")[2]  # another platform's task: `build:win_amd64/app-x`
        if kind in OPERATION_OF_TASK:
            ops.setdefault(name, set()).add(OPERATION_OF_TASK[kind])
    return {
        layer.env_name: [op for op in OPERATIONS if op in ops[layer.env_name]]
        for layer in settings.stack.layers
        if layer.env_name in ops
    }
