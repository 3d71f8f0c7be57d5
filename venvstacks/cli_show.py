"""What `venvstacks show` prints (and `--show`, `--json` before a run): the selected layers,
their deployed names, lock status, dependencies and the operations a run would do."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from venvstacks.cli_parsers import StackCommand
from venvstacks.cli_stackoptions import OperationCommand, ShowCommand
from venvstacks.engine.settings import Settings
from venvstacks.engine.taskkind import TaskKind
from venvstacks.engine.tasks import TaskGraph, buildable
from venvstacks.lazy import lazy_modules
from venvstacks.runtimes.record import read_record
from venvstacks.stack.graph import lower_layers
from venvstacks.stack.kinds import LayerKind
from venvstacks.stack.model import LayerSpec

# Locks and the graph drawing, for what shows them only.
if TYPE_CHECKING:
    from venvstacks import cli_graph
    from venvstacks.lock import validity
else:
    cli_graph, validity = lazy_modules("venvstacks.cli_graph", "venvstacks.lock.validity")


@dataclass(frozen=True)
class Invocation:
    """A stack command as run: its options, the settings loaded from them, the selected layers."""

    command: StackCommand
    settings: Settings
    selected: tuple[LayerSpec, ...]


@dataclass(frozen=True)
class Plan:
    """What a lock, build, export or publish command will do, before doit runs it."""

    inv: Invocation
    operations: dict[str, list[TaskKind]]  # layer build name -> what the run does to it, in stack order
    tasks: tuple[str, ...]  # the tasks asked of doit (which runs what they need first)
    requested: dict[str, list[TaskKind]]  # layer build name -> the operations the command asked for
    graph: TaskGraph  # every task, made once: the plan is read from it and doit runs it

    @property
    def command(self) -> OperationCommand:
        assert isinstance(self.inv.command, OperationCommand)
        return self.inv.command


# --- printing ------------------------------------------------------------------------------------


def show(inv: Invocation, cmd: StackCommand) -> int:
    if isinstance(cmd, ShowCommand) and cmd.graph is not None:
        print(cli_graph.RENDERERS[cmd.graph](cli_graph.layer_graph(inv.settings.stack, inv.selected)))
        return 0
    print_show(inv)
    return 0


def print_show(inv: Invocation, plan: Plan | None = None) -> None:
    data = show_data(inv, plan)
    if inv.command.json:
        print(json.dumps(_upstream_names(data), indent=2))
        return
    cmd = inv.command
    requirements = {la.env_name: la.requirements for la in inv.settings.stack.layers} if cmd.verbose else {}
    print(show_text(data, requirements, legend=not cmd.quiet))


def _upstream_names(data: dict[str, Any]) -> dict[str, Any]:
    """As the existing venvstacks names them in `selected_operations`: a local export is its
    `publish` step (it has no operation of its own)."""
    for kind in LayerKind:
        for entry in data[kind.value]:
            ops = entry["selected_operations"]
            entry["selected_operations"] = list(
                dict.fromkeys("publish" if op == "export" else op for op in ops)
            )
    return data


def show_data(inv: Invocation, plan: Plan | None = None) -> dict[str, Any]:
    stack = inv.settings.stack
    data: dict[str, Any] = {
        "spec_name": str(stack.path),
        **{kind.value: [] for kind in LayerKind},
    }
    host = {layer.env_name for layer in buildable(inv.settings)}
    layers = inv.selected if plan is None else [stack.layer(name) for name in plan.operations]
    locks = validity.Locks(stack)  # every layer's lock files read once, however many ask
    for layer in layers:
        if plan is not None:
            operations = plan.operations[layer.env_name]
        elif layer.env_name in host:
            operations = [TaskKind.LOCK, TaskKind.BUILD]
        else:
            operations = [TaskKind.LOCK] if layer.enabled else []
        entry: dict[str, Any] = {
            "name": layer.env_name,
            "install_target": locks.of(layer).deployed_name,
            "has_valid_lock": validity.lock_is_current(locks, layer),
            "selected_operations": [kind.prefix for kind in operations],
        }
        if _on_local_runtime(inv.settings, layer):
            entry["local_runtime"] = True
        if layer.kind is not LayerKind.RUNTIME:
            entry["dependencies"] = [lower.env_name for lower in lower_layers(stack, layer)]
        data[layer.kind.value].append(entry)
    return data


def show_text(
    data: dict[str, Any], requirements: dict[str, tuple[str, ...]] | None = None, legend: bool = True
) -> str:
    """The tree `show` prints; with `requirements` (-v), each layer's own under it."""
    lines = [data["spec_name"]]
    for kind in (k.value for k in LayerKind):
        if not data[kind]:
            continue
        lines.append(f"+-- {kind.capitalize()}")
        for entry in data[kind]:
            mark = "" if entry["has_valid_lock"] else "*"
            name = entry["name"]
            if entry["install_target"] != name:
                name += f" -> {entry['install_target']}"
            ops = ", ".join(entry["selected_operations"]) or "disabled"
            local = "  (local runtime)" if entry.get("local_runtime") else ""
            lines.append(f"|   +-- {mark}{name}  [{ops}]{local}")
            lines += [f"|   |   +-- {dep}" for dep in entry.get("dependencies", [])]
            lines += [f"|   |   requires {req}" for req in (requirements or {}).get(entry["name"], ())]
    if not legend:
        return "\n".join(lines)
    lines.append("(* = no valid lock yet; [..] = this machine's steps, run only where out of date)")
    if any(e.get("local_runtime") for kind in (k.value for k in LayerKind) for e in data[kind]):
        lines.append("(local runtime = packed from a CPython here: publish needs --allow-local-runtime)")
    return "\n".join(lines)


def _on_local_runtime(settings: Settings, layer: LayerSpec) -> bool:
    """Whether the layer's runtime, as last fetched, was packed from a local CPython."""
    # Not fetched yet: nothing recorded, nothing to say.
    record = read_record(settings.runtime_state(layer))
    return record is not None and not record.portable
