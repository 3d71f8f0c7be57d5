"""Big stacks load and plan correctly (timing lives in bench/planning.py, never here).

Framework ordering used to be exponential (30 frameworks each listing the two before it
took 26 s) and recursive (a chain of 1,200 ended in a RecursionError).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.spec_files import RUNTIME
from venvstacks.cli import main
from venvstacks.stack.graph import derived_layers, lower_layers
from venvstacks.stack.model import StackSpec
from venvstacks.stack.spec import load_stack


def _framework(name: str, lists: list[str]) -> str:
    listed = ", ".join(f'"{n}"' for n in lists)
    deps = f"frameworks = [{listed}]" if lists else 'runtime = "cpython-3.11"'
    return f'\n[[frameworks]]\nname = "{name}"\n{deps}\nrequirements = []\n'


def _load(tmp_path: Path, parts: list[str]) -> StackSpec:
    path = tmp_path / "venvstacks.toml"
    path.write_text(RUNTIME + "".join(parts))
    return load_stack(path)


def _python_mro(count: int, parents: dict[int, list[int]]) -> list[str]:
    classes: list[type] = []
    for i in range(count):
        classes.append(type(f"f{i}", tuple(classes[p] for p in parents[i]) or (object,), {}))
    return [f"framework-{c.__name__}" for c in classes[-1].__mro__[1:] if c is not object]


def test_thirty_frameworks_each_listing_the_two_before(tmp_path: Path) -> None:
    parents = {i: [p for p in (i - 1, i - 2) if p >= 0] for i in range(30)}
    stack = _load(tmp_path, [_framework(f"f{i}", [f"f{p}" for p in parents[i]]) for i in range(30)])
    assert list(stack.layer("framework-f29").lower) == _python_mro(30, parents)


def test_a_chain_of_1200_frameworks_loads(tmp_path: Path) -> None:
    names = [f"f{i}" for i in range(1200)]
    stack = _load(tmp_path, [_framework(n, names[i - 1 : i]) for i, n in enumerate(names)])
    assert list(stack.layer("framework-f1199").lower) == [f"framework-f{i}" for i in range(1198, -1, -1)]


def test_a_thousand_layers_plan_like_a_few(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 40 frameworks in a diamond-rich graph, 960 apps on them: derived and lower layers
    # from the indexes must be what a plain scan of every layer gives.
    parents = {i: list(dict.fromkeys(p for p in (i - 1, i // 2) if 0 <= p < i)) for i in range(40)}
    parts = [_framework(f"f{i}", [f"f{p}" for p in parents[i]]) for i in range(40)]
    parts += [
        f'\n[[applications]]\nname = "a{i}"\nframeworks = ["f{39 - i % 40}"]\n'
        'launch_module = "launch.py"\nrequirements = []\n'
        for i in range(960)
    ]
    (tmp_path / "launch.py").write_text("")
    stack = _load(tmp_path, parts)
    assert len(stack.layers) == 1001
    for layer in stack.layers[::97]:
        scanned = [other for other in stack.layers if layer in lower_layers(stack, other)]
        assert derived_layers(stack, layer) == scanned
    assert main(["lock", "--show-only", "--json", str(stack.path)]) == 0
    assert capsys.readouterr().out.count('"name": "app-a') == 960
