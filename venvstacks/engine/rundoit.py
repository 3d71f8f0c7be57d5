"""Running the task graph through doit: its configuration, our reporter, the build-folder lock.

Both `dodo.py` (plain `doit`) and the `venvstacks` CLI go through `namespace()`, so they
see exactly the same tasks and state database.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from doit import plugin as doit_plugin
from doit.cmd_base import TaskLoader2
from doit.exceptions import TaskFailed
from doit.loader import generate_tasks
from doit.reporter import ConsoleReporter

from venvstacks.console import say
from venvstacks.engine.actions import new_run
from venvstacks.engine.progress import Heartbeat
from venvstacks.engine.settings import Settings
from venvstacks.engine.summary import summary_lines
from venvstacks.engine.taskkind import DEFAULT_KINDS, TaskKind
from venvstacks.engine.tasks import CREATORS, TaskDict, TaskGraph
from venvstacks.errors import VenvStacksError, os_error_line
from venvstacks.fsutil import lock_exclusively
from venvstacks.layout import BUILD_LOCK, STACK_FILE, VERDICTS
from venvstacks.lazy import lazy_modules
from venvstacks.platforms import cores
from venvstacks.stack import verdicts
from venvstacks.stack.model import StackSpec
from venvstacks.stack.spec import load_stack
from venvstacks.tools import stop_children, uv_bin

# Loaded on first use: doit's runner for a run only (a dodo file's namespace needs none of it).
if TYPE_CHECKING:
    from doit import doit_cmd
else:
    (doit_cmd,) = lazy_modules("doit.doit_cmd")


def doit_config(settings: Settings) -> dict[str, Any]:
    return {
        # sqlite3: dbm's flavour differs between Python builds and is unsafe across processes.
        "backend": "sqlite3",
        "dep_file": str(settings.doit_db),
        "minversion": "0.37.0",
        # threads: our actions wait on subprocesses, and closures cannot pickle for spawn.
        "par_type": "thread",
        # Independent layers need no flag to go side by side (-n 1: serial); see default_jobs.
        "num_process": default_jobs(),
        # A class per stack: doit makes the reporter itself, and the summary needs the settings.
        "reporter": type("StackReporter", (ProgressReporter,), {"settings": settings}),
        "default_tasks": [kind.prefix for kind in DEFAULT_KINDS],
        "check_file_uptodate": "md5",
        "subtasks": True,  # `doit list` shows every layer task, not just the groups
    }


def default_jobs() -> int:
    """How many tasks run at once unless told (plain doit as the CLI): one per core, plus two.
    Locking waits on the package index and installing on uv and the disk, so with only one
    task per core a lock waited for two installs it does not need (the sample's cold build
    took 6.0-7.4 s with 2 tasks on 2 cores, 3.6-5.8 s with 4, in bench runs by hand)."""
    return cores() + 2


def namespace(settings: Settings, graph: TaskGraph | None = None) -> dict[str, Any]:
    """A dodo-module namespace: DOIT_CONFIG plus one `task_<kind>` creator per kind, giving
    the tasks of `graph` if the caller has made them already (the CLI, for its plan)."""
    settings.build_dir.mkdir(parents=True, exist_ok=True)
    check_state_db(settings.doit_db)
    uv_bin()  # resolve once on the main thread, before tasks run in threads
    new_run()
    ns: dict[str, Any] = {"DOIT_CONFIG": doit_config(settings)}
    for kind, creator in CREATORS.items():
        made = None if graph is None else graph[kind]
        tasks = functools.partial(creator, settings) if made is None else functools.partial(_copies, made)
        ns[f"task_{kind.prefix}"] = _creator(kind, tasks)
    return ns


def _copies(made: list[TaskDict]) -> Iterator[TaskDict]:
    """The tasks made already, each as a copy: doit rewrites the dicts it is given (their names)."""
    return ({**task} for task in made)


def _creator(kind: TaskKind, tasks: Callable[[], Iterator[TaskDict]]) -> Callable[[], Iterator[TaskDict]]:
    """The dodo creator of the tasks of one kind: its group task, then ``tasks()``."""

    def task_creator() -> Iterator[TaskDict]:
        # The group task (`doit build`) has nothing of its own to do: up to date, so doit
        # does not record it as run, and a no-op writes nothing to its state database (a
        # write is an sqlite transaction and its fsyncs: 2-15 ms of a 0.1 s run).
        yield {"name": None, "doc": kind.doc, "uptodate": [True]}
        yield from tasks()

    task_creator.__doc__ = kind.doc
    return task_creator


def run_doit(settings: Settings, argv: Sequence[str], graph: TaskGraph | None = None) -> int:
    """Run doit with our tasks (those of `graph`, if made already); returns doit's exit code."""
    hold_build_lock(settings.build_dir)
    main = doit_cmd.DoitMain(StackLoader(namespace(settings, graph)), config_filenames=())
    with _no_plugins():
        return int(main.run(list(argv)) or 0)  # some commands (forget) return None


class StackLoader(TaskLoader2):  # type: ignore[misc]
    """doit's task loader for the `venvstacks` command: the namespace's tasks, kind by kind.

    What doit's own loader of a namespace does, less finding each creator's line in its
    source file to sort them by (inspect reads and tokenizes this file for it: 2 ms of a
    0.1 s no-op); they come in `CREATORS` order, which that sort keeps (one line for all).
    """

    def __init__(self, ns: dict[str, Any]) -> None:
        super().__init__()
        self.ns = ns

    def load_doit_config(self) -> dict[str, Any]:
        return dict(self.ns["DOIT_CONFIG"])

    def load_tasks(self, cmd: Any, pos_args: list[str]) -> list[Any]:
        return [
            task
            for kind in CREATORS
            for task in generate_tasks(kind.prefix, self.ns[f"task_{kind.prefix}"](), kind.doc)
        ]


@contextlib.contextmanager
def _no_plugins() -> Iterator[None]:
    """doit without its plugins for the `venvstacks` command: it runs doit's own `run` and
    `forget` with our loader, reporter and backend, so scanning every installed package's
    entry points for more (3 ms of a 0.1 s no-op) finds nothing it would use. Plain doit
    keeps them."""
    saved = doit_plugin.entry_points_impl
    doit_plugin.entry_points_impl = lambda: lambda group: ()
    try:
        yield
    finally:
        doit_plugin.entry_points_impl = saved


# sqlite cannot open a database (and its journal beside it) past ~512 bytes of path.
MAX_DB_PATH_BYTES = 480
_SQLITE_HEADER = b"SQLite format 3\x00"


def check_state_db(db: Path) -> None:
    """Make doit's state database usable: damaged state is deleted, with one warning.

    The database only records what doit has already done (docs/doit.md: deleting it is
    safe; everything is checked again on the next run), so a broken one is not worth an
    error. A path sqlite cannot open is reported in one line.
    """
    if len(os.fsencode(db)) > MAX_DB_PATH_BYTES:
        raise VenvStacksError(
            f"build folder {db.parent} is too long a path for doit's sqlite state database "
            f"({len(os.fsencode(db))} bytes, at most {MAX_DB_PATH_BYTES}); choose a shorter --build-dir"
        )
    problem = _db_problem(db)
    if problem is None:
        return
    say(f"warning: {db}: {problem}; deleted it (doit checks every task again)")
    if db.is_dir() and not db.is_symlink():
        shutil.rmtree(db)
    else:
        db.unlink()


def _db_problem(db: Path) -> str | None:
    if not os.path.lexists(db):
        return None
    if db.is_symlink() or not db.is_file():
        return "is not a regular file"
    with db.open("rb") as f:
        header = f.read(len(_SQLITE_HEADER))
    if header and header != _SQLITE_HEADER:
        return "is not an sqlite database"
    try:
        # Read-write (we hold the build lock): a journal left by a killed run is rolled back
        # by sqlite itself instead of making the database look damaged.
        with contextlib.closing(sqlite3.connect(db)) as conn:
            if conn.execute("PRAGMA quick_check").fetchone() != ("ok",):
                return "is damaged"
    except sqlite3.DatabaseError as exc:
        return f"is damaged ({exc})"
    return None


_held: dict[Path, Callable[[], None]] = {}  # build folder -> the release of its lock


def hold_build_lock(build_dir: Path) -> None:
    """Serialise invocations on one build folder; held until this process exits."""
    build_dir = build_dir.resolve()
    if build_dir in _held:
        return
    owner_file = build_dir / f"{BUILD_LOCK}.owner"

    def waiting() -> None:
        owner = owner_file.read_text().strip() if owner_file.exists() else "another process"
        say(f"waiting for {build_dir} (in use by {owner})")

    try:
        build_dir.mkdir(parents=True, exist_ok=True)
        release = lock_exclusively(build_dir / BUILD_LOCK, waiting)
        owner_file.write_text(f"pid {os.getpid()}: {' '.join(sys.argv)}\n")
    except OSError as exc:
        # A read-only or full build folder: nothing can be recorded there.
        raise VenvStacksError(f"cannot use the build folder: {os_error_line(exc)}") from None
    if not _held:
        # Registered first, so it runs last: the objects a run leaves are freed with their
        # modules when the interpreter ends, without the cyclic collector scanning them all
        # once more (20-40 ms of a 0.2 s no-op here, more for big stacks).
        atexit.register(gc.freeze)
        atexit.register(stop_and_release)
    _held[build_dir] = release


def stop_and_release() -> None:
    """End of a run, interrupted or not: stop every tool still running and remove temporary
    files, and only then release the build folders, so a waiting run finds nothing under way."""
    stop_children()
    while _held:
        _held.popitem()[1]()


class ProgressReporter(ConsoleReporter):  # type: ignore[misc]
    """One line when a task starts, one when it ends with its time; `--` for up to date;
    progress lines for long tasks (progress.py); a summary when the run succeeds."""

    settings: Settings

    def __init__(self, outstream: TextIO, options: dict[str, Any]) -> None:
        super().__init__(outstream, options)
        self._started: dict[str, float] = {}
        self._ran: dict[str, bool] = {}  # task -> whether it ran (False: up to date)
        self._failed = False
        self._heartbeat = Heartbeat()

    def execute_task(self, task: Any) -> None:
        if task.actions:
            self._started[task.name] = time.perf_counter()
            self._heartbeat.started(task.name)
            self.write(f".  {task.name}\n")

    def add_success(self, task: Any) -> None:
        self._heartbeat.finished(task.name)
        start = self._started.pop(task.name, None)
        if start is not None:
            self._ran[task.name] = True
            self.write(f"ok {task.name} ({time.perf_counter() - start:.1f}s)\n")

    def add_failure(self, task: Any, fail: Any) -> None:
        self._failed = True
        self._heartbeat.finished(task.name)
        self._started.pop(task.name, None)
        if isinstance(fail, TaskFailed):
            # Our actions fail with a one-line message meant for the user: no traceback.
            self.write(f"FAILED {task.name}: {fail.message}\n")
        else:
            super().add_failure(task, fail)

    def skip_uptodate(self, task: Any) -> None:
        if task.actions:
            self._ran[task.name] = False
            self.write(f"-- {task.name}\n")

    def complete_run(self) -> None:
        self._heartbeat.close()
        super().complete_run()
        # doit reports the end of a run from a `finally:`, so Ctrl-C (or a bug's exception)
        # on its way out also ends here: such a run did not succeed, and gets no summary.
        cut_short = sys.exc_info()[1] is not None
        if not (cut_short or self._failed or self.failures or self.runtime_errors) and self._ran:
            for line in summary_lines(self.settings, self._ran):
                self.write(f"{line}\n")


def check_ok(code: int) -> None:
    if code != 0:
        raise VenvStacksError(f"the build stopped (doit exit code {code}); see the messages above")


def load_stack_for(path: Path, build_dir: Path) -> StackSpec:
    """The stack file at `path`, loaded for a run on `build_dir`: what the `.gitignore` files
    decided about its module folders, and which requirements are valid, is kept there, so
    that a run where they did not change decides nothing again (and loads neither pathspec
    nor packaging's parser)."""
    verdicts.remember_in(build_dir / VERDICTS)
    return load_stack(path)


def stack_path(value: str | None) -> Path:
    path = Path(value or STACK_FILE).expanduser()
    return path / STACK_FILE if path.is_dir() else path
