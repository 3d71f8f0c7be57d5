"""The layer dependency graph: C3 linearization and `--include` selection (pure functions)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from venvstacks.stack.spec import LayerSpec, StackSpec


class LinearizationError(ValueError):
    pass


def c3_linearize(layer: str, bases: Sequence[str], declared: Mapping[str, Sequence[str]]) -> list[str]:
    """Order a layer's frameworks for sys.path the way Python orders base classes (MRO).

    `declared` maps each known framework to the frameworks it lists itself. The result
    excludes `layer` itself; nearer frameworks come first.
    """

    def linearization(name: str) -> list[str]:
        return [
            name,
            *_merge(
                [linearization(b) for b in declared.get(name, ())] + [list(declared.get(name, ()))],
                name,
            ),
        ]

    return _merge([linearization(b) for b in bases] + [list(bases)], layer)


def _merge(sequences: list[list[str]], owner: str) -> list[str]:
    result: list[str] = []
    seqs = [list(s) for s in sequences if s]
    while seqs:
        for seq in seqs:
            head = seq[0]
            if not any(head in other[1:] for other in seqs):
                break
        else:
            heads = ", ".join(sorted({s[0] for s in seqs}))
            raise LinearizationError(
                f"no consistent sys.path order for {owner} (linearization failed at: {heads})"
            )
        result.append(head)
        seqs = [s[1:] if s[0] == head else s for s in seqs]
        seqs = [s for s in seqs if s]
    return result


def lower_layers(stack: StackSpec, layer: LayerSpec) -> list[LayerSpec]:
    """Every layer below `layer`, in sys.path order: frameworks (C3), then the runtime."""
    names = [*layer.lower, *([layer.runtime] if layer.runtime else [])]
    return [stack.layer(name) for name in names]


def derived_layers(stack: StackSpec, layer: LayerSpec) -> list[LayerSpec]:
    """Every layer that has `layer` below it."""
    return [other for other in stack.layers if layer in lower_layers(stack, other)]


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
