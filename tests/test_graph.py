"""The layer graph: C3 ordering of frameworks, and `--include` selection."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from venvstacks.stack.graph import LinearizationError, c3_linearize, derived_layers, lower_layers, select
from venvstacks.stack.model import StackSpec
from venvstacks.stack.spec import parse_stack

# --- c3_linearize --------------------------------------------------------------------------


def test_single_framework() -> None:
    assert c3_linearize("app", ["a"], {"a": []}) == ["a"]


def test_declared_order_is_kept_for_independent_frameworks() -> None:
    declared: dict[str, list[str]] = {"a": [], "b": [], "c": []}
    assert c3_linearize("app", ["c", "a", "b"], declared) == ["c", "a", "b"]


def test_diamond() -> None:
    declared = {"base": [], "left": ["base"], "right": ["base"]}
    assert c3_linearize("app", ["left", "right"], declared) == ["left", "right", "base"]
    assert c3_linearize("app", ["right", "left"], declared) == ["right", "left", "base"]


def test_chain_pulls_in_indirect_frameworks() -> None:
    declared = {"a": [], "b": ["a"], "c": ["b"]}
    assert c3_linearize("app", ["c"], declared) == ["c", "b", "a"]


def test_listing_a_lower_framework_after_an_upper_one_is_fine() -> None:
    declared = {"a": [], "b": ["a"]}
    assert c3_linearize("app", ["b", "a"], declared) == ["b", "a"]


def test_conflict_lower_framework_listed_first() -> None:
    # b says "b before a"; the app says "a before b"
    declared = {"a": [], "b": ["a"]}
    with pytest.raises(LinearizationError) as info:
        c3_linearize("app-x", ["a", "b"], declared)
    message = str(info.value)
    assert "no consistent sys.path order for app-x" in message
    assert "linearization failed at: a, b" in message


def test_conflict_between_two_frameworks_orders() -> None:
    declared = {"a": [], "b": [], "x": ["a", "b"], "y": ["b", "a"]}
    with pytest.raises(LinearizationError, match="linearization failed"):
        c3_linearize("app", ["x", "y"], declared)


def test_result_excludes_the_layer_itself() -> None:
    assert "app" not in c3_linearize("app", ["a"], {"a": []})


def _python_mro(bases: Sequence[str], declared: Mapping[str, Sequence[str]]) -> list[str] | None:
    """What Python itself computes for the same graph (None when it refuses)."""
    classes: dict[str, type] = {}

    def make(name: str) -> type:
        if name not in classes:
            parents = tuple(make(b) for b in declared[name]) or (object,)
            classes[name] = type(name, parents, {})
        return classes[name]

    try:
        top = type("Top", tuple(make(b) for b in bases), {})
    except TypeError:
        return None
    return [c.__name__ for c in top.__mro__[1:] if c is not object]


def _random_dag(rng: random.Random, size: int) -> dict[str, list[str]]:
    names = [f"f{i}" for i in range(size)]
    return {
        name: rng.sample(names[:i], rng.randint(0, min(i, 3))) if i else [] for i, name in enumerate(names)
    }


@pytest.mark.parametrize("seed", range(40))
def test_agrees_with_python_mro(seed: int) -> None:
    rng = random.Random(seed)
    declared = _random_dag(rng, rng.randint(2, 7))
    bases = rng.sample(sorted(declared), rng.randint(1, min(3, len(declared))))
    expected = _python_mro(bases, declared)
    if expected is None:
        with pytest.raises(LinearizationError):
            c3_linearize("app", bases, declared)
    else:
        assert c3_linearize("app", bases, declared) == expected


# --- select, lower_layers, derived_layers -----------------------------------------------------


def _stack(tmp_path: Path) -> StackSpec:
    (tmp_path / "launch.py").write_text("")
    rt: dict[str, Any] = {"requirements": []}
    fw: dict[str, Any] = {"requirements": []}
    app: dict[str, Any] = {"requirements": [], "launch_module": "launch.py"}
    data = {
        "runtimes": [
            {"name": "cpython-3.11", "python_implementation": "cpython@3.11", **rt},
            {"name": "cpython-3.12", "python_implementation": "cpython@3.12", **rt},
        ],
        "frameworks": [
            {"name": "base", "runtime": "cpython-3.11", **fw},
            {"name": "left", "frameworks": ["base"], **fw},
            {"name": "right", "frameworks": ["base"], **fw},
            {"name": "other", "runtime": "cpython-3.12", **fw},
        ],
        "applications": [
            {"name": "diamond", "frameworks": ["left", "right"], **app},
            {"name": "plain", "runtime": "cpython-3.11", **app},
            {"name": "other-app", "frameworks": ["other"], **app},
        ],
    }
    return parse_stack(tmp_path / "venvstacks.toml", data, warn=lambda message: None)


def _names(layers: Sequence[Any]) -> list[str]:
    return [layer.env_name for layer in layers]


ALL = [
    "cpython-3.11",
    "cpython-3.12",
    "framework-base",
    "framework-left",
    "framework-right",
    "framework-other",
    "app-diamond",
    "app-plain",
    "app-other-app",
]


def test_select_without_patterns_is_everything(tmp_path: Path) -> None:
    chosen, unmatched = select(_stack(tmp_path), [])
    assert _names(chosen) == ALL
    assert unmatched == []


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        (["framework-*"], ["framework-base", "framework-left", "framework-right", "framework-other"]),
        (["app-diamond"], ["app-diamond"]),
        (["cpython-3.1?"], ["cpython-3.11", "cpython-3.12"]),
        (["*other*"], ["framework-other", "app-other-app"]),
        # stack order, not pattern order; a layer matched twice appears once
        (
            ["app-*", "cpython-3.11", "app-plain"],
            ["cpython-3.11", "app-diamond", "app-plain", "app-other-app"],
        ),
        (["framework-[lr]*"], ["framework-left", "framework-right"]),
    ],
)
def test_select_patterns(tmp_path: Path, patterns: list[str], expected: list[str]) -> None:
    chosen, unmatched = select(_stack(tmp_path), patterns)
    assert _names(chosen) == expected
    assert unmatched == []


def test_select_is_case_sensitive_and_needs_build_names(tmp_path: Path) -> None:
    chosen, unmatched = select(_stack(tmp_path), ["APP-*", "diamond", "app-plain"])
    assert _names(chosen) == ["app-plain"]
    assert unmatched == ["APP-*", "diamond"]


def test_lower_layers_are_in_sys_path_order(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    assert _names(lower_layers(stack, stack.layer("app-diamond"))) == [
        "framework-left",
        "framework-right",
        "framework-base",
        "cpython-3.11",
    ]
    assert _names(lower_layers(stack, stack.layer("app-plain"))) == ["cpython-3.11"]
    assert lower_layers(stack, stack.layer("cpython-3.11")) == []


def test_derived_layers(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    assert _names(derived_layers(stack, stack.layer("framework-base"))) == [
        "framework-left",
        "framework-right",
        "app-diamond",
    ]
    assert _names(derived_layers(stack, stack.layer("cpython-3.12"))) == ["framework-other", "app-other-app"]
    assert derived_layers(stack, stack.layer("app-plain")) == []
