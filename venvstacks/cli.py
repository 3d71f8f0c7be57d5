"""The `venvstacks` command: parse options, then run the stack's doit graph.

Each command is a short workflow of small steps, each taking the last one's result:
load the stack -> select layers -> (show | run their tasks through doit) -> summarise.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvstacks import __version__, deploy, locking, outputs
from venvstacks.archives import ArchiveFormat
from venvstacks.errors import VenvStacksError
from venvstacks.graph import lower_layers, select
from venvstacks.linking import LINKED
from venvstacks.outputs import OutputOptions
from venvstacks.rundoit import check_ok, run_doit, stack_path
from venvstacks.runtimes import RuntimeOptions
from venvstacks.spec import LayerKind, LayerSpec, load_stack
from venvstacks.tasks import Settings, buildable, host_platform, runtime_identity

DESCRIPTION = """\
Build layered Python environments (runtime, frameworks, applications) from a
venvstacks.toml. The build is a doit task graph: only layers whose inputs changed are
relocked, rebuilt and rewired. `doit` in a project with our dodo.py runs the same graph.
"""


@dataclass(frozen=True)
class Invocation:
    args: argparse.Namespace
    settings: Settings
    selected: tuple[LayerSpec, ...]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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


# --- workflow steps ------------------------------------------------------------------------


def load(args: argparse.Namespace) -> tuple[argparse.Namespace, Settings]:
    stack = load_stack(stack_path(args.spec_path))
    build_dir = stack.root / Path(args.build_dir).expanduser()
    runtimes = RuntimeOptions.from_env(
        cache_dir=Path(args.runtime_cache).expanduser() if args.runtime_cache else None,
        policy=args.runtime_source,
        mirror=args.runtime_mirror,
        archives=_archives(args.runtime_archive) or None,
    )
    lock = locking.LockOptions(
        upgrade=getattr(args, "upgrade", False),
        upgrade_packages=tuple(getattr(args, "upgrade_package", None) or ()),
    )
    defaults = {"publish": "_artifacts", "local-export": "_export"}
    output_dir = stack.root / Path(
        getattr(args, "output_dir", None) or defaults.get(args.command, "_artifacts")
    )
    outputs = OutputOptions(
        export_dir=output_dir.resolve() if args.command == "local-export" else stack.root / "_export",
        publish_dir=output_dir.resolve() if args.command == "publish" else stack.root / "_artifacts",
        archive_format=ArchiveFormat(getattr(args, "format", None) or "tar.xz"),
        tag_outputs=getattr(args, "tag_outputs", False),
        force=getattr(args, "force", False),
    )
    settings = Settings(
        stack=stack, build_dir=build_dir.resolve(), runtimes=runtimes, lock=lock, outputs=outputs
    )
    return args, settings


def select_layers(loaded: tuple[argparse.Namespace, Settings]) -> Invocation:
    args, settings = loaded
    chosen, unmatched = select(settings.stack, args.include or ())
    if unmatched:
        raise VenvStacksError(f"--include {unmatched[0]!r} matches no layer; `venvstacks show` lists them")
    return Invocation(args, settings, tuple(chosen))


def show(inv: Invocation) -> int:
    if inv.args.json:
        print(json.dumps(show_data(inv), indent=2))
    else:
        print(show_text(inv))
    return 0


def lock(inv: Invocation) -> int:
    tasks = [f"lock:{layer.env_name}" for layer in inv.selected if layer.enabled]
    return run_tasks(inv, tasks)


def build(inv: Invocation) -> int:
    host = buildable(inv.settings)
    tasks = [f"build:{layer.env_name}" for layer in inv.selected if layer in host]
    for layer in inv.selected:
        if not layer.enabled:
            print(f"skipping {layer.env_name}: disabled (platforms = [])", file=sys.stderr)
        elif layer not in host:
            # Locks cover every platform; builds only this machine's.
            print(f"locking only {layer.env_name}: not built for {host_platform()}", file=sys.stderr)
            tasks.append(f"lock:{layer.env_name}")
    return run_tasks(inv, tasks)


def local_export(inv: Invocation) -> int:
    return run_tasks(inv, [f"export:{layer.env_name}" for layer in _host_layers(inv)])


def publish_cmd(inv: Invocation) -> int:
    layers = _host_layers(inv)
    if inv.args.dry_run:
        return _publish_dry_run(inv, layers)
    tasks = [f"publish:{layer.env_name}" for layer in layers]
    if inv.args.force:
        check_ok(run_doit(inv.settings, ["forget", *tasks]))
    code = run_tasks(inv, tasks)
    print(f"published to {inv.settings.output.publish_dir}", file=sys.stderr)
    return code


def _publish_dry_run(inv: Invocation, layers: list[LayerSpec]) -> int:
    settings = inv.settings
    result = []
    for layer in layers:
        if not (settings.env_dir(layer) / LINKED).exists():
            raise VenvStacksError(f"{layer.env_name} is not built yet; run `venvstacks build` first")
        identity = runtime_identity(settings, layer)
        result.append(
            outputs.dry_run(settings.stack, layer, settings.env_dir(layer), settings.output, identity)
        )
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def _host_layers(inv: Invocation) -> list[LayerSpec]:
    host = buildable(inv.settings)
    return [layer for layer in inv.selected if layer in host]


def deploy_cmd(args: argparse.Namespace) -> int:
    published, target = Path(args.published), Path(args.target)
    result = deploy.deploy(published, target, include=args.include or (), log=_say)
    print(
        f"deployed {len(result.deployed)} layer(s), {len(result.unchanged)} unchanged, "
        f"into {result.target_dir}"
    )
    return 0


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def run_tasks(inv: Invocation, tasks: list[str]) -> int:
    if not tasks:
        print("nothing to do: no selected layer applies here", file=sys.stderr)
        return 0
    options = ["-n", str(inv.args.jobs)] if inv.args.jobs > 1 else []
    if inv.args.verbose:
        options += ["-v", "2"]
    check_ok(run_doit(inv.settings, [*options, *tasks]))
    return 0


# --- show ------------------------------------------------------------------------------------


def show_data(inv: Invocation) -> dict[str, Any]:
    stack = inv.settings.stack
    data: dict[str, Any] = {
        "spec_name": str(stack.path),
        "runtimes": [],
        "frameworks": [],
        "applications": [],
    }
    for layer in inv.selected:
        entry: dict[str, Any] = {
            "name": layer.env_name,
            "install_target": locking.deployed_name(stack, layer),
            "has_valid_lock": locking.lock_is_valid(stack, layer),
            "selected_operations": _operations(inv, layer),
        }
        if layer.kind is not LayerKind.RUNTIME:
            entry["dependencies"] = [lower.env_name for lower in lower_layers(stack, layer)]
        data[layer.kind.value].append(entry)
    return data


def _operations(inv: Invocation, layer: LayerSpec) -> list[str]:
    if not layer.enabled:
        return []
    return ["lock", "build"] if layer in buildable(inv.settings) else ["lock"]


def show_text(inv: Invocation) -> str:
    data = show_data(inv)
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
            note = "" if "build" in entry["selected_operations"] else "  (lock only: not built here)"
            lines.append(f"|   +-- {mark}{name}{note}")
            lines += [f"|   |   +-- {dep}" for dep in entry.get("dependencies", [])]
    lines.append("(* = no valid lock yet)")
    return "\n".join(lines)


# --- the parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="venvstacks", description=DESCRIPTION)
    parser.add_argument("-V", "--version", action="version", version=f"venvstacks {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands = {
        "show": (show, "show the layers of a stack and what they depend on"),
        "lock": (lock, "lock the selected layers (uv runs only where inputs changed)"),
        "build": (build, "lock if needed, then build the selected layers and the layers below them"),
        "local-export": (local_export, "build if needed, then export layers to a folder where they run"),
        "publish": (publish_cmd, "build if needed, then publish layers as reproducible archives"),
    }
    for name, (handler, help_text) in commands.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.set_defaults(handler=handler)
        _common_options(cmd)
        if name == "show":
            cmd.add_argument("--json", action="store_true", help="print the stack as JSON")
        if name in ("local-export", "publish"):
            cmd.add_argument("--output-dir", help="output folder, relative to the stack file's folder")
            cmd.add_argument("--force", action="store_true", help="redo the outputs even if nothing changed")
        if name == "publish":
            cmd.add_argument(
                "--format", choices=[f.value for f in ArchiveFormat], help="archive format (tar.xz)"
            )
            cmd.add_argument(
                "--tag-outputs", action="store_true", help="add the platform and build number to names"
            )
            cmd.add_argument(
                "--dry-run", action="store_true", help="print the metadata that would be written"
            )
        if name in ("lock", "build"):
            cmd.add_argument(
                "--upgrade",
                action="store_true",
                help="let every pin move to the newest allowed version",
            )
            cmd.add_argument(
                "--upgrade-package",
                action="append",
                metavar="NAME",
                help="let this package's pin move (repeatable)",
            )
    dep = sub.add_parser("deploy", help="unpack published layers into a folder and run their postinstall")
    dep.add_argument("published", help="a publish output folder (or its __venvstacks__ metadata file)")
    dep.add_argument("target", help="the folder to deploy into")
    dep.add_argument(
        "--include", action="append", metavar="PATTERN", help="deploy only these layers (and what they need)"
    )
    return parser


def _common_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("spec_path", nargs="?", help="the stack file or its folder (default: ./venvstacks.toml)")
    cmd.add_argument(
        "--build-dir",
        default="_build",
        help="build folder, relative to the stack file's folder (default: _build)",
    )
    cmd.add_argument(
        "--include",
        action="append",
        metavar="PATTERN",
        help="select layers by build name (fnmatch; repeatable)",
    )
    cmd.add_argument(
        "-j", "--jobs", type=int, default=1, help="run up to N independent tasks at once (threads)"
    )
    cmd.add_argument("-v", "--verbose", action="store_true", help="show the output of every task")
    runtime = cmd.add_argument_group("runtimes (see docs/runtimes.md)")
    runtime.add_argument(
        "--runtime-source",
        choices=["auto", "download", "local"],
        help="where runtimes may come from",
    )
    runtime.add_argument(
        "--runtime-mirror",
        metavar="URL",
        help="base URL replacing the python-build-standalone releases",
    )
    runtime.add_argument(
        "--runtime-archive",
        action="append",
        metavar="REQ=LOC#sha256=HEX",
        help="use this archive for a runtime request",
    )
    runtime.add_argument("--runtime-cache", metavar="DIR", help="the runtime cache folder")


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
