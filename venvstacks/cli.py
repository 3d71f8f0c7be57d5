"""The `venvstacks` command: a short workflow over the stack's doit graph.

    load the stack -> select layers -> plan their tasks -> (show) -> run through doit

Each step takes the last one's result; planning is pure, so `--show-only` and `--json`
print exactly what a run would do.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvstacks.cli_options import build_parser
from venvstacks.engine.rundoit import check_ok, hold_build_lock, run_doit, stack_path
from venvstacks.engine.tasks import Settings, buildable
from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import check_folder_path
from venvstacks.layout import LINKED, LockOptions, OutputOptions
from venvstacks.runtimes.options import RuntimeOptions
from venvstacks.stack.graph import derived_layers, lower_layers, select
from venvstacks.stack.spec import LayerKind, LayerSpec, load_stack
from venvstacks.stack.targets import host_platform


@dataclass(frozen=True)
class Invocation:
    args: argparse.Namespace
    settings: Settings
    selected: tuple[LayerSpec, ...]


@dataclass(frozen=True)
class Plan:
    inv: Invocation
    operations: dict[str, list[str]]  # layer build name -> operations, in stack order
    tasks: tuple[str, ...]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser({"show": show, "deploy": deploy_cmd, **dict.fromkeys(OPERATIONS, execute)})
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        if args.command == "deploy":
            return deploy_cmd(args)
        return int(args.handler(select_layers(load(args))))
    except VenvStacksError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished layers are recorded; rerun to continue", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `venvstacks show --json | head`
        sys.stderr.close()
        return 1


# --- workflow steps ------------------------------------------------------------------------


def load(args: argparse.Namespace) -> tuple[argparse.Namespace, Settings]:
    stack = load_stack(stack_path(args.spec_path))
    root = stack.root

    def rel(value: str) -> Path:
        # As upstream: relative paths are relative to the stack file's folder.
        return (root / Path(value).expanduser()).resolve()

    runtimes = RuntimeOptions.from_env(
        cache_dir=rel(args.runtime_cache) if args.runtime_cache else None,
        policy=args.runtime_source,
        mirror=args.runtime_mirror,
        archives=_archives(args.runtime_archive) or None,
    )
    for folder in getattr(args, "local_wheels", None) or ():
        if not rel(folder).is_dir():
            raise VenvStacksError(f"--local-wheels {folder!r}: {rel(folder)} is not a folder")
    lock = LockOptions(
        upgrade=getattr(args, "upgrade", False),
        upgrade_packages=tuple(getattr(args, "upgrade_package", None) or ()),
        index=getattr(args, "index", True),
        local_wheels=tuple(rel(d) for d in getattr(args, "local_wheels", None) or ()),
        reset=tuple(getattr(args, "reset_lock", None) or ()),
    )
    output_dir = getattr(args, "output_dir", None)
    out = OutputOptions(
        export_dir=rel(output_dir or "_export") if args.command == "local-export" else root / "_export",
        publish_dir=rel(output_dir or "_artifacts")
        if args.command != "local-export"
        else root / "_artifacts",
        archive_format=getattr(args, "format", "tar.xz"),
        tag_outputs=getattr(args, "tag_outputs", False),
        force=getattr(args, "force", False),
    )
    check_folder_path(rel(args.build_dir), "--build-dir")
    if output_dir:
        check_folder_path(rel(output_dir), "--output-dir")
    return args, Settings(stack, rel(args.build_dir), runtimes, lock, out)


def select_layers(loaded: tuple[argparse.Namespace, Settings]) -> Invocation:
    args, settings = loaded
    chosen, unmatched = select(settings.stack, args.include or ())
    for pattern in unmatched:
        message = f"--include {pattern!r} matches no layer; `venvstacks show` lists them"
        if not args.allow_missing:
            raise VenvStacksError(message)
        print(f"warning: {message}", file=sys.stderr)
    return Invocation(args, settings, tuple(chosen))


def execute(inv: Invocation) -> int:
    plan = plan_tasks(inv)
    args = inv.args
    if args.json or args.show or args.show_only:
        show(inv, plan)
        if args.show_only or (args.json and not args.show):
            return 0
    if getattr(args, "dry_run", False):
        return dry_run(plan)
    prepare(plan)
    return run_tasks(plan)


OPERATIONS = ("lock", "build", "local-export", "publish")


def plan_tasks(inv: Invocation) -> Plan:
    """Which operation each layer gets (upstream's selection rules), and the doit tasks."""
    args, stack = inv.args, inv.settings.stack
    if args.command == "build":
        main_ops = ["build" if args.build else "lock"] + (["publish"] if args.publish else [])
    else:
        main_ops = [{"lock": "lock", "local-export": "export", "publish": "publish"}[args.command]]
    outputs_op = [op for op in main_ops if op in ("export", "publish")]
    ops: dict[str, list[str]] = {layer.env_name: list(main_ops) for layer in inv.selected}
    # --include-dependencies / --no-include-dependencies overrides the *-dependencies flags.
    deps = getattr(args, "include_dependencies", None)
    publish_deps = getattr(args, "publish_dependencies", False) if deps is None else deps
    for layer in inv.selected:
        if publish_deps:
            for lower in lower_layers(stack, layer):
                ops.setdefault(lower.env_name, []).extend(outputs_op)
        for upper in derived_layers(stack, layer):
            wanted = ["lock"] if args.command == "lock" else []  # upstream relocks derived layers
            wanted += ["build"] if getattr(args, "build_derived", False) else []
            wanted += outputs_op if getattr(args, "publish_derived", False) else []
            if wanted:
                ops.setdefault(upper.env_name, []).extend(wanted)
    ordered = {
        layer.env_name: sorted(set(ops[layer.env_name]), key=_OP_ORDER.index)
        for layer in stack.layers
        if layer.env_name in ops
    }
    return Plan(inv, ordered, tuple(_task_names(inv.settings, ordered)))


_OP_ORDER = ["lock", "build", "export", "publish"]


def _task_names(settings: Settings, ops: dict[str, list[str]]) -> list[str]:
    host = {layer.env_name for layer in buildable(settings)}
    tasks = []
    for name, layer_ops in ops.items():
        layer = settings.stack.layer(name)
        if not layer.enabled:
            print(f"skipping {name}: disabled (platforms = [])", file=sys.stderr)
            continue
        if name not in host:
            # Locks cover every platform; builds only this machine's.
            print(f"locking only {name}: not built for {host_platform()}", file=sys.stderr)
            tasks.append(f"lock:{name}")
            continue
        tasks += [f"{op}:{name}" for op in layer_ops]
    return tasks


def prepare(plan: Plan) -> None:
    """Effects that come before the run: all under the build folder's lock."""
    settings, args = plan.inv.settings, plan.inv.args
    hold_build_lock(settings.build_dir)
    if getattr(args, "clean", False):
        for name in plan.operations:
            shutil.rmtree(settings.build_dir / name, ignore_errors=True)
    forced: list[str] = []
    if getattr(args, "force", False):
        forced += [t for t in plan.tasks if t.startswith(("export:", "publish:"))]
    lock = settings.lock
    if lock.upgrade or lock.upgrade_packages or lock.reset:
        # Asking for newer versions must reach uv even when no input changed.
        forced += [f"lock:{name}" for name in plan.operations if f"lock:{name}" in _all_lock_tasks(settings)]
    if forced:
        check_ok(run_doit(settings, ["forget", *forced]))


def _all_lock_tasks(settings: Settings) -> set[str]:
    return {f"lock:{layer.env_name}" for layer in settings.stack.layers if layer.enabled}


def run_tasks(plan: Plan) -> int:
    args = plan.inv.args
    if not plan.tasks:
        print("nothing to do: no selected layer applies here", file=sys.stderr)
        return 0
    options = ["-n", str(args.jobs)] if args.jobs > 1 else []
    if args.verbose:
        options += ["-v", "2"]
    if args.quiet:
        options += ["--reporter", "error-only"]
    check_ok(run_doit(plan.inv.settings, [*options, *plan.tasks]))
    return 0


def dry_run(plan: Plan) -> int:
    from venvstacks.engine import outputs
    from venvstacks.engine.actions import runtime_identity

    settings = plan.inv.settings
    result = []
    for task in plan.tasks:
        op, _, name = task.partition(":")
        if op not in ("export", "publish"):
            continue
        layer = settings.stack.layer(name)
        if not (settings.env_dir(layer) / LINKED).exists():
            raise VenvStacksError(f"{name} is not built yet; run `venvstacks build` first")
        identity = runtime_identity(settings, layer)
        if op == "publish":
            result.append(
                outputs.dry_run(settings.stack, layer, settings.env_dir(layer), settings.output, identity)
            )
        else:
            result.append(outputs.layer_metadata(settings.stack, layer, identity))
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def deploy_cmd(args: argparse.Namespace) -> int:
    from venvstacks.ship import deploy

    result = deploy.deploy(Path(args.published), Path(args.target), include=args.include or (), log=_say)
    for app in result.apps:  # on stdout, with the summary: what a script running deploy wants
        print(f"Run {app.layer_name} with: {app}")
    print(
        f"deployed {len(result.deployed)} layer(s), {len(result.unchanged)} unchanged, "
        f"into {result.target_dir}"
    )
    return 0


def _say(message: str) -> None:
    print(message, file=sys.stderr)


# --- show ------------------------------------------------------------------------------------


def show(inv: Invocation, plan: Plan | None = None) -> int:
    data = show_data(inv, plan)
    print(json.dumps(data, indent=2) if inv.args.json else show_text(data))
    return 0


def show_data(inv: Invocation, plan: Plan | None = None) -> dict[str, Any]:
    from venvstacks.lock import locking

    stack = inv.settings.stack
    data: dict[str, Any] = {
        "spec_name": str(stack.path),
        "runtimes": [],
        "frameworks": [],
        "applications": [],
    }
    host = buildable(inv.settings)
    layers = inv.selected if plan is None else [stack.layer(name) for name in plan.operations]
    for layer in layers:
        if plan is not None:
            operations = plan.operations[layer.env_name]
        else:
            operations = ["lock", "build"] if layer in host else (["lock"] if layer.enabled else [])
        entry: dict[str, Any] = {
            "name": layer.env_name,
            "install_target": locking.deployed_name(stack, layer),
            "has_valid_lock": locking.lock_is_current(stack, layer, inv.settings.lock),
            "selected_operations": operations,
        }
        if layer.kind is not LayerKind.RUNTIME:
            entry["dependencies"] = [lower.env_name for lower in lower_layers(stack, layer)]
        data[layer.kind.value].append(entry)
    return data


def show_text(data: dict[str, Any]) -> str:
    lines = [data["spec_name"]]
    for kind in ("runtimes", "frameworks", "applications"):
        if not data[kind]:
            continue
        lines.append(f"+-- {kind.capitalize()}")
        for entry in data[kind]:
            mark = "" if entry["has_valid_lock"] else "*"
            name = entry["name"]
            if entry["install_target"] != name:
                name += f" -> {entry['install_target']}"
            ops = ", ".join(entry["selected_operations"]) or "disabled"
            lines.append(f"|   +-- {mark}{name}  [{ops}]")
            lines += [f"|   |   +-- {dep}" for dep in entry.get("dependencies", [])]
    lines.append("(* = no valid lock yet; [..] = what would run here)")
    return "\n".join(lines)


def _archives(values: Sequence[str] | None) -> dict[str, str]:
    archives = {}
    for value in values or ():
        request, sep, location = value.partition("=")
        if not sep or "#sha256=" not in location:
            raise VenvStacksError(
                f"--runtime-archive {value!r}: write it as cpython@X.Y.Z=PATH_OR_URL#sha256=HEX"
            )
        archives[request] = location
    return archives
