"""The doit entry point venvstacks ships: a stack folder's `dodo.py` is the one line

    from venvstacks.dodo import *  # noqa: F403

after which `doit`, `doit list`, `doit build:app-x`, `doit -n 4`, `doit info|forget|clean`
work on `./venvstacks.toml`. doit variables choose another stack or build folder; relative
paths in them are taken from the folder doit works in (the folder of `dodo.py`):

    doit stack=../other/venvstacks.toml build_dir=/tmp/build
    doit platform=win_amd64,macosx_arm64     # cross-build for these platforms (docs/platforms.md)

The build folder defaults to `_build` beside the stack file, as for the `venvstacks`
command, so both share one doit state database. Runtime sources come from the
VENVSTACKS_RUNTIME_* environment variables (docs/runtimes.md).

The stack is loaded when doit first asks for a task creator, not at import time, so a
dodo file can also ask for another default stack: `globals().update(tasks_for("path"))`.
"""

from __future__ import annotations

import fnmatch
import sys
from functools import cache
from pathlib import Path
from typing import Any

from doit import get_var

# First: the collector's start-up settings (startup.py) apply to all that loads after it.
from venvstacks import startup  # noqa: F401
from venvstacks.console import interrupt_in_one_line, say
from venvstacks.engine.rundoit import hold_build_lock, load_stack_for, namespace, stack_path, stop_and_release
from venvstacks.engine.settings import Settings
from venvstacks.engine.taskkind import TaskKind, TaskName
from venvstacks.errors import VenvStacksError
from venvstacks.layout import DEFAULT_BUILD_DIR, STACK_FILE
from venvstacks.platforms import ALL_PLATFORMS
from venvstacks.runtimes.options import RuntimeOptions
from venvstacks.stack.kinds import did_you_mean
from venvstacks.stack.model import StackSpec
from venvstacks.tools import stop_on_signals

# What `from venvstacks.dodo import *` gives a dodo file: doit's configuration and one task
# creator per task kind. The names are fixed; their values come from the stack (__getattr__).
__all__ = ["DOIT_CONFIG", *(f"task_{kind.prefix}" for kind in TaskKind)]  # noqa: F822

DEFAULT_STACK = STACK_FILE


def tasks_for(default_stack: str = DEFAULT_STACK) -> dict[str, Any]:
    """The dodo namespace of the stack named by doit's `stack=` variable, else `default_stack`."""
    return _namespace(default_stack)


@cache
def _namespace(default_stack: str) -> dict[str, Any]:
    try:
        path = stack_path(str(Path(get_var("stack", default_stack)).resolve()))
        build_var = get_var("build_dir")
        # As the CLI's --build-dir default; a path given on doit's command line is the user's own.
        build_dir = Path(build_var).resolve() if build_var else path.parent / DEFAULT_BUILD_DIR
        settings = Settings(
            stack=load_stack_for(path, build_dir),
            build_dir=build_dir,
            runtimes=RuntimeOptions.from_env(),
            platforms=_platforms(get_var("platform", "")),
        )
    except VenvStacksError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    _check_task_names(settings.stack, sys.argv[1:])
    hold_build_lock(settings.build_dir)
    stop_on_signals()  # SIGTERM and SIGHUP (CI cancels, `timeout`, `kill`) as Ctrl-C
    interrupt_in_one_line(stop_and_release)
    return namespace(settings)


def _check_task_names(stack: StackSpec, argv: list[str]) -> None:
    """`doit build:fetch` names a layer as the stack file does: say which task was meant.

    doit itself answers an unknown task with "Invalid parameter"; a dodo file only sees the
    command line, so this looks at its `KIND:NAME` words (where doit takes a task name); a
    task name elsewhere (`doit info`'s, for one) gets doit's own message.
    """
    names = [layer.env_name for layer in stack.layers]
    for word in argv:
        task = TaskName.parse(word)  # a cross-build's task: STEP:PLATFORM/NAME
        if task is None or any(fnmatch.fnmatchcase(n, task.layer) for n in names):
            continue
        hint = did_you_mean(task.layer, names, before=str(TaskName(task.kind, "", task.platform)))
        if hint:
            say(f"error: no task {word}: {task.layer!r} is no layer's build name{hint}")
            raise SystemExit(3)  # doit's status for an error before any task runs


def _platforms(value: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
    for name in names:
        if name not in ALL_PLATFORMS:
            raise VenvStacksError(
                f"platform={value}: unknown platform {name!r}; choose from {', '.join(ALL_PLATFORMS)}"
            )
    return names


def __getattr__(name: str) -> Any:
    if name in __all__:
        return _namespace(DEFAULT_STACK)[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
