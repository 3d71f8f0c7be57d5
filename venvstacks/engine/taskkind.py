"""The kinds of task a layer gets, and their names: `<kind>:<layer>`, or `<kind>:<platform>/<layer>`
for a layer cross-built for another platform (docs/doit.md, docs/platforms.md).

Every place that makes a task name, reads one back, orders the operations of a run, documents
a task group or forces tasks to rerun asks `TaskKind`, so a kind is spelled once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Force(Enum):
    """What on the command line makes a kind's tasks rerun although their inputs did not change."""

    OUTPUTS = "--force"  # export and publish write their outputs again
    RELOCK = "--upgrade, --upgrade-package or --reset-lock"  # uv must be asked again


class TaskKind(Enum):
    """One kind of task, in the order a layer goes through them (the CLI orders its operations so)."""

    RUNTIME = ("runtime", "fetch every runtime into the runtime cache", None)
    LOCK = ("lock", "lock every layer (only layers whose inputs changed run uv)", Force.RELOCK)
    INSTALL = ("install", "create every layer environment and install its packages", None)
    BUILD = ("build", "build every layer for this machine, or the platforms named (the default)", None)
    EXPORT = ("export", "export every built layer to the export folder", Force.OUTPUTS)
    PUBLISH = ("publish", "publish every built layer as an archive", Force.OUTPUTS)

    def __init__(self, prefix: str, doc: str, forced_by: Force | None) -> None:
        self.prefix = prefix  # the group task's name and its subtasks' prefix
        self.doc = doc  # the group task's doc line (`doit list`)
        self.forced_by = forced_by

    @property
    def order(self) -> int:
        return list(TaskKind).index(self)

    @property
    def is_output(self) -> bool:
        """Whether its tasks write a layer to an output folder (export, publish)."""
        return self in (TaskKind.EXPORT, TaskKind.PUBLISH)

    @property
    def operation(self) -> TaskKind | None:
        """The operation a task of this kind is part of, as `--show-only` lists it: install is
        part of build; `runtime:` fetches what a runtime layer's lock and build need, part of
        neither."""
        return {TaskKind.RUNTIME: None, TaskKind.INSTALL: TaskKind.BUILD}.get(self, self)

    def task(self, layer: str, platform: str | None = None) -> str:
        """The name of this kind's task for a layer (`build:app-x`)."""
        return str(TaskName(self, layer, platform))

    @classmethod
    def of(cls, prefix: str) -> TaskKind:
        """The kind whose tasks start with `prefix` (ValueError if none)."""
        for kind in cls:
            if kind.prefix == prefix:
                return kind
        raise ValueError(f"no task kind {prefix!r}")


def subtask_name(layer: str, platform: str | None = None) -> str:
    """A layer's doit subtask name: its build name, or for a cross-build `<platform>/<layer>`."""
    return f"{platform}/{layer}" if platform else layer


DEFAULT_KINDS = (TaskKind.LOCK, TaskKind.BUILD)
"""What a plain `doit` runs."""


@dataclass(frozen=True)
class TaskName:
    """A layer's task: its kind, the layer's build name and, for a cross-build, the platform."""

    kind: TaskKind
    layer: str
    platform: str | None = None  # None: this machine

    def __str__(self) -> str:
        return f"{self.kind.prefix}:{subtask_name(self.layer, self.platform)}"

    @classmethod
    def parse(cls, task: str) -> TaskName | None:
        """A task name read back; None for a group task (`build`) or a task not of ours."""
        prefix, sep, rest = task.partition(":")
        if not sep:
            return None
        try:
            kind = TaskKind.of(prefix)
        except ValueError:
            return None
        platform, slash, layer = rest.rpartition("/")
        return cls(kind, layer, platform if slash else None)
