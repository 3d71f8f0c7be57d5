"""The commands that read a stack: a short workflow over the stack's doit graph.

Each command is a list of steps, run in order by `execute`, each taking the last one's
result:

    show:       load -> select_layers -> show
    prune:      load -> prune
    licenses:   load -> select_layers -> licenses (with --from-dir: licenses alone)
    lock, build, local-export, publish:
                load -> select_layers -> plan_tasks -> show_plan -> dry_run -> prepare -> run_tasks

`load` (cli_settings.py) turns the stack file and the options into one `Settings`.
Planning is pure, so `--show-only` and `--json` print exactly what a run would do. A step
ends the run early by returning the exit status. cli.py loads this module only for these
commands: the doit engine it imports is what `deploy`, `verify`, `init` and `docs` never need.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from venvstacks.cli_parsers import StackCommand
from venvstacks.cli_prune import mention_leftovers, prune
from venvstacks.cli_settings import SHOW_LISTS, load
from venvstacks.cli_show import Invocation, Plan, print_show, show
from venvstacks.cli_stackoptions import LicensesCommand, OperationCommand
from venvstacks.engine.closure import layer_operations, task_closure
from venvstacks.engine.rundoit import check_ok, default_jobs, hold_build_lock, run_doit, stop_and_release
from venvstacks.engine.settings import Settings
from venvstacks.engine.taskkind import Force, TaskKind, TaskName, subtask_name
from venvstacks.engine.tasks import task_graph
from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import dump_json
from venvstacks.layout import BUILT
from venvstacks.lazy import lazy_modules
from venvstacks.stack.graph import derived_layers, lower_layers, select
from venvstacks.stack.kinds import did_you_mean
from venvstacks.tools import set_verbose

# What only some commands run, loaded when one of them does.
if TYPE_CHECKING:
    from venvstacks import cli_licenses
    from venvstacks.engine import actions, outputs
else:
    cli_licenses, actions, outputs = lazy_modules(
        "venvstacks.cli_licenses", "venvstacks.engine.actions", "venvstacks.engine.outputs"
    )

Step = Callable[[Any, Any], Any]
"""Takes the previous step's result and the command; an int result is the exit status."""


def run_stack_command(command: StackCommand) -> int:
    """Run a command that reads a stack; on Ctrl-C (or SIGTERM, SIGHUP), stop every tool it
    started and release its build folders before the interrupt goes on to cli.main."""
    try:
        if isinstance(command, LicensesCommand):
            return licenses_cmd(command)
        if isinstance(command, OperationCommand):
            return execute(command, OPERATION_STEPS)
        return execute(command, PRUNE_STEPS if command.command == "prune" else SHOW_STEPS)
    except KeyboardInterrupt:
        stop_and_release()
        raise


def execute(command: StackCommand, steps: Sequence[Step]) -> int:
    result: Any = None
    for step in steps:
        result = step(result, command)
        if isinstance(result, int):
            return result
    raise AssertionError("the last step gives the exit status")


# --- workflow steps ------------------------------------------------------------------------


def select_layers(settings: Settings, cmd: StackCommand) -> Invocation:
    chosen, unmatched = select(settings.stack, cmd.include)
    for pattern in unmatched:
        hint = did_you_mean(pattern, (layer.env_name for layer in settings.stack.layers))
        message = f"--include {pattern!r} matches no layer{hint or SHOW_LISTS}"
        if not cmd.allow_missing:
            raise VenvStacksError(message)
        print(f"warning: {message}", file=sys.stderr)
    return Invocation(cmd, settings, tuple(chosen))


def plan_tasks(inv: Invocation, cmd: OperationCommand) -> Plan:
    """Which operation each layer gets (upstream's selection rules), and the doit tasks."""
    stack = inv.settings.stack
    if cmd.command == "build":
        main_ops = [TaskKind.BUILD if cmd.build else TaskKind.LOCK]
        main_ops += [TaskKind.PUBLISH] if cmd.publish else []
    else:
        main_ops = [_COMMAND_KIND[cmd.command]]
    outputs_op = [op for op in main_ops if op.is_output]
    ops: dict[str, list[TaskKind]] = {layer.env_name: list(main_ops) for layer in inv.selected}
    # --include-dependencies / --no-include-dependencies overrides the *-dependencies flags.
    deps = cmd.include_dependencies
    publish_deps = cmd.publish_dependencies if deps is None else deps
    for layer in inv.selected:
        if publish_deps:
            for lower in lower_layers(stack, layer):
                ops.setdefault(lower.env_name, []).extend(outputs_op)
        for upper in derived_layers(stack, layer):
            wanted = [TaskKind.LOCK] if cmd.command == "lock" else []  # upstream relocks derived layers
            wanted += [TaskKind.BUILD] if cmd.build_derived else []
            wanted += outputs_op if cmd.publish_derived else []
            if wanted:
                ops.setdefault(upper.env_name, []).extend(wanted)
    ordered = {
        layer.env_name: sorted(set(ops[layer.env_name]), key=lambda kind: kind.order)
        for layer in stack.layers
        if layer.env_name in ops
    }
    tasks = tuple(_task_names(inv.settings, ordered))
    # What the run does: the tasks asked for and all that doit runs before them.
    graph = task_graph(inv.settings)
    listing = layer_operations(inv.settings, task_closure(graph, tasks))
    return Plan(inv, listing, tasks, ordered, graph)


_COMMAND_KIND = {"lock": TaskKind.LOCK, "local-export": TaskKind.EXPORT, "publish": TaskKind.PUBLISH}


def _task_names(settings: Settings, ops: dict[str, list[TaskKind]]) -> list[str]:
    tasks: list[str] = []
    for name, layer_ops in ops.items():
        layer = settings.stack.layer(name)
        if not layer.enabled:
            print(f"skipping {name}: disabled (platforms = [])", file=sys.stderr)
            continue
        lock = TaskKind.LOCK.task(name)
        if TaskKind.LOCK in layer_ops:
            tasks.append(lock)
        for build in settings.builds():
            if build.platform.name not in layer.platforms:
                # Locks cover every platform; builds only the platforms asked for.
                print(f"locking only {name}: not built for {build.platform.name}", file=sys.stderr)
                tasks += [] if lock in tasks else [lock]
                continue
            tasks += [build.task(op, name) for op in layer_ops if op is not TaskKind.LOCK]
    return tasks


def show_plan(plan: Plan, cmd: OperationCommand) -> Plan | int:
    """`--show`, `--show-only` and `--json` print the plan; the last two stop there."""
    if cmd.json or cmd.show or cmd.show_only:
        print_show(plan.inv, plan)
        if cmd.show_only or (cmd.json and not cmd.show):
            return 0
    return plan


def prepare(plan: Plan, cmd: OperationCommand) -> Plan:
    """Effects that come before the run: all under the build folder's lock."""
    settings = plan.inv.settings
    hold_build_lock(settings.build_dir)
    if cmd.clean:
        for name in plan.requested:
            for build in settings.builds():
                shutil.rmtree(build.env_dir(settings.stack.layer(name)), ignore_errors=True)
    forced: list[str] = []
    if cmd.force:
        forced += [t for t in plan.tasks if _forced_by(t) is Force.OUTPUTS]
    lock = settings.lock
    if lock.upgrade or lock.upgrade_packages or lock.reset:
        # Asking for newer versions must reach uv even when no input changed: every requested
        # layer's lock, also of a layer only built (a build locks first).
        layers = [settings.stack.layer(name) for name in plan.requested]
        forced += [TaskKind.LOCK.task(layer.env_name) for layer in layers if layer.enabled]
    if forced:
        check_ok(run_doit(settings, ["forget", *forced], plan.graph))
    return plan


def _forced_by(task: str) -> Force | None:
    name = TaskName.parse(task)
    return None if name is None else name.kind.forced_by


def run_tasks(plan: Plan, cmd: OperationCommand) -> int:
    if not plan.tasks:
        print("nothing to do: no selected layer applies here", file=sys.stderr)
        return 0
    options = ["-n", str(cmd.jobs or default_jobs())]
    if cmd.verbose:
        set_verbose(True)
        options += ["-v", "2"]
    if cmd.quiet:
        options += ["--reporter", "error-only"]
    check_ok(run_doit(plan.inv.settings, [*options, *plan.tasks], plan.graph))
    return 0


def dry_run(plan: Plan, cmd: OperationCommand) -> Plan | int:
    """`--dry-run`: the metadata that exporting or publishing would write, and stop."""
    if not cmd.dry_run:
        return plan
    builds = {
        (None if build.is_host else build.platform.name, layer.env_name): (build, layer)
        for build in plan.inv.settings.builds()
        for layer in build.stack.layers
    }
    result = []
    for task in plan.tasks:
        parsed = TaskName.parse(task)
        if parsed is None or not parsed.kind.is_output:
            continue
        op, name = parsed.kind, subtask_name(parsed.layer, parsed.platform)
        settings, layer = builds[parsed.platform, parsed.layer]
        if not (settings.env_dir(layer) / BUILT).exists():
            raise VenvStacksError(f"{name} is not built yet; run `venvstacks build` first")
        record = actions.runtime_record(settings, layer)
        if op is TaskKind.PUBLISH:
            result.append(
                outputs.dry_run(settings.stack, layer, settings.env_dir(layer), settings.output, record)
            )
        else:
            result.append(outputs.layer_metadata(settings.stack, layer, record))
    print(dump_json([meta.to_json() for meta in result]), end="")
    return 0


def licenses_cmd(cmd: LicensesCommand) -> int:
    if cmd.from_dir is not None:  # published SBOMs say everything: no stack file needed
        return cli_licenses.licenses(None, cmd)
    return execute(cmd, (load, select_layers, cli_licenses.licenses))


SHOW_STEPS: tuple[Step, ...] = (load, mention_leftovers, select_layers, show)
OPERATION_STEPS: tuple[Step, ...] = (
    load,
    mention_leftovers,
    select_layers,
    plan_tasks,
    show_plan,
    dry_run,
    prepare,
    run_tasks,
)
PRUNE_STEPS: tuple[Step, ...] = (load, prune)
