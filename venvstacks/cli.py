"""The `venvstacks` command: a short workflow over the stack's doit graph.

The command line becomes one typed command object (cli_options.py); each command is then a
list of steps, run in order by `execute`, each taking the last one's result:

    show:       load -> select_layers -> show
    lock, build, local-export, publish:
                load -> select_layers -> plan_tasks -> show_plan -> dry_run -> prepare -> run_tasks

`load` (cli_settings.py) turns the stack file and the options into one `Settings`.
Planning is pure, so `--show-only` and `--json` print exactly what a run would do. A step
ends the run early by returning the exit status.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from venvstacks import cli_docs
from venvstacks.cli_options import (
    DeployCommand,
    DocsCommand,
    InitCommand,
    LicensesCommand,
    OperationCommand,
    StackCommand,
    VerifyCommand,
    parse_command,
)
from venvstacks.cli_prune import mention_leftovers, prune
from venvstacks.cli_settings import SHOW_LISTS, load
from venvstacks.cli_show import Invocation, Plan, print_show, show
from venvstacks.console import INTERRUPTED, say
from venvstacks.engine.closure import layer_operations, task_closure
from venvstacks.engine.rundoit import (
    check_ok,
    default_jobs,
    hold_build_lock,
    run_doit,
    stack_path,
    stop_and_release,
)
from venvstacks.engine.settings import Settings
from venvstacks.engine.taskkind import Force, TaskKind, TaskName, subtask_name
from venvstacks.errors import USER_ERRNOS, VenvStacksError, os_error_line
from venvstacks.fsutil import dump_json
from venvstacks.layout import BUILT, allow_local_runtime_default
from venvstacks.lazy import lazy_modules
from venvstacks.stack.graph import derived_layers, lower_layers, select
from venvstacks.stack.kinds import did_you_mean
from venvstacks.tools import exit_status, set_verbose, stop_on_signals

# What only some commands run, loaded when one of them does (start-up stays small).
if TYPE_CHECKING:
    from venvstacks import cli_licenses, starter
    from venvstacks.engine import actions, outputs
    from venvstacks.ship import deploy, rebuild, verify
else:
    cli_licenses, starter, actions, outputs, deploy, rebuild, verify = lazy_modules(
        "venvstacks.cli_licenses",
        "venvstacks.starter",
        "venvstacks.engine.actions",
        "venvstacks.engine.outputs",
        "venvstacks.ship.deploy",
        "venvstacks.ship.rebuild",
        "venvstacks.ship.verify",
    )

Step = Callable[[Any, Any], Any]
"""Takes the previous step's result and the command; an int result is the exit status."""


def main(argv: Sequence[str] | None = None) -> int:
    command = parse_command(argv)
    if command is None:
        return 2
    stop_on_signals()  # SIGTERM and SIGHUP (CI cancels, `timeout`, `kill`) as Ctrl-C
    try:
        if isinstance(command, DeployCommand):
            return deploy_cmd(command)
        if isinstance(command, VerifyCommand):
            return verify_cmd(command)
        if isinstance(command, InitCommand):
            return init_cmd(command)
        if isinstance(command, DocsCommand):
            return cli_docs.docs_cmd(command)
        if isinstance(command, LicensesCommand):
            return licenses_cmd(command)
        if isinstance(command, OperationCommand):
            return execute(command, OPERATION_STEPS)
        return execute(command, PRUNE_STEPS if command.command == "prune" else SHOW_STEPS)
    except VenvStacksError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as interrupt:  # Ctrl-C, SIGTERM, SIGHUP
        stop_and_release()
        say(INTERRUPTED)
        return exit_status(interrupt)
    except BrokenPipeError:  # e.g. `venvstacks show --json | head`
        sys.stderr.close()
        return 1
    except OSError as exc:
        if exc.errno not in USER_ERRNOS:
            raise
        print(f"error: {os_error_line(exc)}", file=sys.stderr)
        return 1


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
    listing = layer_operations(inv.settings, task_closure(inv.settings, tasks))
    return Plan(inv, listing, tasks, ordered)


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
        check_ok(run_doit(settings, ["forget", *forced]))
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
    check_ok(run_doit(plan.inv.settings, [*options, *plan.tasks]))
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


def deploy_cmd(cmd: DeployCommand) -> int:
    if cmd.verbose:
        set_verbose(True)  # each postinstall.py's output, as it comes
    log = say if not cmd.quiet else lambda _: None
    result = deploy.deploy(
        Path(cmd.published), Path(cmd.target), include=cmd.include, log=log, jobs=cmd.jobs, check=cmd.check
    )
    for app in result.apps:  # on stdout, with the summary: what a script running deploy wants
        print(f"run {app.layer_name} with: {app}")
    repaired = f" ({len(result.repaired)} repaired)" if result.repaired else ""
    print(
        f"deployed {len(result.deployed)} layer(s){repaired}, {len(result.unchanged)} unchanged, "
        f"into {result.target_dir}"
    )
    return 0


def verify_cmd(cmd: VerifyCommand) -> int:
    """One line per layer on stdout; exit status 1 if any layer differs."""
    lines: list[str]
    if cmd.rebuild:
        allow = cmd.allow_local_runtime
        if allow is None and allow_local_runtime_default():
            allow = True
        rebuilt = rebuild.verify_rebuild(Path(cmd.folder), stack_path(cmd.stack), allow)
        lines = [r.line() for r in rebuilt if not (cmd.quiet and r.reproduced)]
        ok = all(r.reproduced for r in rebuilt)
    else:
        published = Path(cmd.published) if cmd.published else None
        reports = verify.verify_deployed(Path(cmd.folder), published)
        shown = None if cmd.verbose else verify.SHOWN
        lines = [r.line(shown) for r in reports if not (cmd.quiet and r.ok)]
        ok = all(r.ok for r in reports)
        if not ok:
            lines.append(verify.repair_hint(Path(cmd.folder).absolute(), published))
    if lines:
        print("\n".join(lines))
    return 0 if ok else 1


def licenses_cmd(cmd: LicensesCommand) -> int:
    if cmd.from_dir is not None:  # published SBOMs say everything: no stack file needed
        return cli_licenses.licenses(None, cmd)
    return execute(cmd, (load, select_layers, cli_licenses.licenses))


def init_cmd(cmd: InitCommand) -> int:
    folder = Path(cmd.folder).expanduser().resolve()
    written = starter.init_folder(folder, cmd.python)
    if cmd.quiet:
        return 0
    for path in written if cmd.verbose else ():
        print(f"wrote {path}")
    print(f"wrote {', '.join(p.name for p in written)} in {folder}")
    if len(written) == 1:  # only dodo.py, beside the user's own stack file
        print("next: `doit` there builds its venvstacks.toml (`doit list` shows the tasks)")
    else:
        # From the layer folder: `python -m hello` in the stack folder imports the source
        # hello.py lying there, not the built copy, and edits would seem to need no build.
        print(
            "next: `doit` there (or `venvstacks build`), then `(cd _build/app-hello && bin/python -m hello)`"
        )
    return 0


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
