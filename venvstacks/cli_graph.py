"""`venvstacks show --graph mermaid|dot`: the layer graph, ready for a README or Graphviz.

Nodes are the selected layers and every layer they use, labelled with their deployed names
(`NAME@N` for versioned layers), grouped by kind. Each layer has an edge to every layer it
uses, numbered in `sys.path` order (its frameworks as its `frameworks` list orders them, then
its runtime).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from venvstacks.lazy import lazy_modules
from venvstacks.stack.graph import lower_layers
from venvstacks.stack.kinds import LayerKind
from venvstacks.stack.model import LayerSpec, StackSpec

# The deployed names, read from the lock metadata when a graph is drawn.
if TYPE_CHECKING:
    from venvstacks.lock import validity
else:
    (validity,) = lazy_modules("venvstacks.lock.validity")


@dataclass(frozen=True)
class Graph:
    nodes: dict[LayerKind, list[tuple[str, str]]]  # kind -> (build name, deployed name), stack order
    edges: list[tuple[str, str, int]]  # (user, used, place in sys.path from 1), build names


def layer_graph(stack: StackSpec, selected: Sequence[LayerSpec]) -> Graph:
    shown = {layer.env_name for layer in selected}
    for layer in selected:
        shown.update(low.env_name for low in lower_layers(stack, layer))
    layers = [layer for layer in stack.layers if layer.env_name in shown]
    nodes: dict[LayerKind, list[tuple[str, str]]] = {kind: [] for kind in LayerKind}
    edges = []
    locks = validity.Locks(stack)
    for layer in layers:
        nodes[layer.kind].append((layer.env_name, locks.of(layer).deployed_name))
        used = lower_layers(stack, layer) if layer.kind is not LayerKind.RUNTIME else []
        edges += [(layer.env_name, low.env_name, place) for place, low in enumerate(used, 1)]
    return Graph(nodes, edges)


def mermaid(graph: Graph) -> str:
    ids = _mermaid_ids([name for kind in LayerKind for name, _ in graph.nodes[kind]])
    lines = ["flowchart TD"]
    for kind in reversed(LayerKind):  # applications on top, runtimes at the bottom
        if graph.nodes[kind]:
            lines.append(f"    subgraph {kind.value}")
            lines += [f'        {ids[name]}["{label}"]' for name, label in graph.nodes[kind]]
            lines.append("    end")
    lines += [f"    {ids[user]} -->|{place}| {ids[used]}" for user, used, place in graph.edges]
    return "\n".join(lines)


def dot(graph: Graph) -> str:
    lines = ["digraph stack {", "    node [shape=box];"]
    for kind in reversed(LayerKind):
        if graph.nodes[kind]:
            lines.append(f'    subgraph "cluster_{kind.value}" {{')
            lines.append(f'        label="{kind.value}";')
            lines += [f'        "{name}" [label="{label}"];' for name, label in graph.nodes[kind]]
            lines.append("    }")
    lines += [f'    "{user}" -> "{used}" [label="{place}"];' for user, used, place in graph.edges]
    lines.append("}")
    return "\n".join(lines)


def _mermaid_ids(names: Sequence[str]) -> dict[str, str]:
    """Node ids of letters, digits and underscores (safe everywhere in Mermaid), one per layer:
    `cpython-3.11` is `cpython_3_11`; a second name spelt the same gets a number."""
    ids: dict[str, str] = {}
    for name in names:
        base = candidate = re.sub(r"\W", "_", name)
        count = 1
        while candidate in ids.values():
            count += 1
            candidate = f"{base}_{count}"
        ids[name] = candidate
    return ids


RENDERERS = {"mermaid": mermaid, "dot": dot}
