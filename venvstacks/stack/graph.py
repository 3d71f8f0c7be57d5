"""The layer dependency graph: C3 linearization and `--include` selection (pure functions)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence

from venvstacks.stack.model import LayerSpec, StackSpec


class LinearizationError(ValueError):
    pass


def c3_linearize(
    layer: str,
    bases: Sequence[str],
    declared: Mapping[str, Sequence[str]],
    known: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """Order a layer's frameworks for sys.path the way Python orders base classes (MRO).

    `declared` maps each known framework to the frameworks it lists itself; `known` may
    give frameworks' orders already computed (their own `lower`), which are reused. The
    result excludes `layer` itself; nearer frameworks come first.

    Each framework is linearized once and without recursion, and merging is linear in the
    lengths merged, so a long chain or a dense graph of frameworks stays polynomial.
    """
    orders: dict[str, list[str]] = {}
    for base in bases:
        _linearize_into(orders, base, declared, known or {})
    return _merge([orders[b] for b in bases] + [list(bases)], layer)


def _agrees_with_first(seqs: list[list[str]]) -> bool:
    """Every sequence lists a subset of the first one's names, in the first one's order.

    Then C3 gives the first sequence unchanged; checking this is one dict lookup per name,
    far cheaper than merging, and it is the usual case (a framework listing the
    frameworks below the one it lists first).
    """
    position = {name: i for i, name in enumerate(seqs[0])}
    for seq in seqs[1:]:
        last = -1
        for name in seq:
            here = position.get(name, -1)
            if here <= last:
                return False
            last = here
    return True


def _linearize_into(
    orders: dict[str, list[str]],
    start: str,
    declared: Mapping[str, Sequence[str]],
    known: Mapping[str, Sequence[str]],
) -> None:
    """Fill `orders` for `start` and everything below it, lowest first (no recursion)."""
    stack = [start]
    expanding: set[str] = set()  # waiting for their parents: meeting one again is a cycle
    while stack:
        name = stack[-1]
        if name in known and name not in orders:
            orders[name] = [name, *known[name]]
        if name in orders:
            stack.pop()
            continue
        parents = list(declared.get(name, ()))
        missing = [p for p in parents if p not in orders]
        if missing:
            if name in expanding or any(p in expanding for p in missing):
                raise LinearizationError(f"frameworks list each other in a cycle at {name}")
            expanding.add(name)
            stack.extend(reversed(missing))
            continue
        expanding.discard(name)
        orders[name] = [name, *_merge([orders[p] for p in parents] + [parents], name)]
        stack.pop()


def _merge(sequences: list[list[str]], owner: str) -> list[str]:
    """C3 merge in time linear in the total length (times the number of sequences).

    A head may be taken when no sequence holds it in its tail: `in_tails` counts, for each
    name, the sequences holding it past their current head.
    """
    seqs = [seq for seq in sequences if seq]
    if not seqs:
        return []
    if _agrees_with_first(seqs):
        return list(seqs[0])
    starts = [0] * len(seqs)
    in_tails: dict[str, int] = {}
    for seq in seqs:
        for name in seq[1:]:
            in_tails[name] = in_tails.get(name, 0) + 1
    result: list[str] = []
    while True:
        head = None
        exhausted = True
        for i, seq in enumerate(seqs):
            if starts[i] < len(seq):
                exhausted = False
                if not in_tails.get(seq[starts[i]]):
                    head = seq[starts[i]]
                    break
        if exhausted:
            return result
        if head is None:
            heads = ", ".join(sorted({s[p] for s, p in zip(seqs, starts, strict=True) if p < len(s)}))
            raise LinearizationError(
                f"no consistent sys.path order for {owner} (linearization failed at: {heads})"
            )
        result.append(head)
        for i, seq in enumerate(seqs):
            pos = starts[i]
            if pos < len(seq) and seq[pos] == head:
                starts[i] = pos = pos + 1
                if pos < len(seq):
                    in_tails[seq[pos]] -= 1  # the new head has left this tail


def lower_layers(stack: StackSpec, layer: LayerSpec) -> list[LayerSpec]:
    """Every layer below `layer`, in sys.path order: frameworks (C3), then the runtime."""
    names = [*layer.lower, *([layer.runtime] if layer.runtime else [])]
    return [stack.layer(name) for name in names]


def derived_layers(stack: StackSpec, layer: LayerSpec) -> list[LayerSpec]:
    """Every layer that has `layer` below it, in stack file order."""
    return list(stack.uppers.get(layer.env_name, ()))


def select(stack: StackSpec, patterns: Iterable[str]) -> tuple[list[LayerSpec], list[str]]:
    """Layers whose build name matches any fnmatch pattern; also the patterns that matched nothing."""
    patterns = list(patterns)
    if not patterns:
        return list(stack.layers), []
    chosen = [
        layer for layer in stack.layers if any(fnmatch.fnmatchcase(layer.env_name, p) for p in patterns)
    ]
    unmatched = [
        p for p in patterns if not any(fnmatch.fnmatchcase(layer.env_name, p) for layer in stack.layers)
    ]
    return chosen, unmatched
