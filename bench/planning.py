"""How planning time grows with the number of layers: stack loading (C3), `show`, lock planning.

    .venv/bin/python bench/planning.py [LAYERS ...]   (default: 250 500 1000)

For each size and graph shape it writes a stack file into a temp folder (no locks, nothing
built), then times in-process: loading it (`load_stack`, where C3 runs), `venvstacks show`,
`venvstacks lock --show-only` (loading, choosing layers and operations, showing them) and
creating the doit tasks of `venvstacks lock` (what every run does before doit starts).
Prints seconds; never asserts. Shapes:

  chain    each framework lists the one before it (depth = size)
  two      each framework lists the two before it (the case that was exponential)
  wide     every framework sits on the runtime; one app lists 20 of them
  apps     50 frameworks on the runtime, the rest are apps each listing up to 3 of them
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from venvstacks.cli import main
from venvstacks.engine.settings import Settings
from venvstacks.engine.taskkind import TaskKind
from venvstacks.engine.tasks import CREATORS
from venvstacks.runtimes.options import RuntimeOptions
from venvstacks.stack.spec import load_stack

RUNTIME = '[[runtimes]]\nname = "cpython-3.11"\npython_implementation = "cpython@3.11"\nrequirements = []\n'


def _framework(name: str, lists: list[str]) -> str:
    deps = f"frameworks = {lists!r}".replace("'", '"') if lists else 'runtime = "cpython-3.11"'
    return f'\n[[frameworks]]\nname = "{name}"\n{deps}\nrequirements = []\n'


def _app(name: str, lists: list[str]) -> str:
    deps = f"frameworks = {lists!r}".replace("'", '"')
    return f'\n[[applications]]\nname = "{name}"\n{deps}\nlaunch_module = "launch.py"\nrequirements = []\n'


def stack_text(shape: str, size: int) -> str:
    names = [f"f{i}" for i in range(size)]
    parts = [RUNTIME]
    if shape == "chain":
        parts += [_framework(n, names[i - 1 : i]) for i, n in enumerate(names)]
    elif shape == "two":
        parts += [_framework(n, list(reversed(names[max(0, i - 2) : i]))) for i, n in enumerate(names)]
    elif shape == "wide":
        parts += [_framework(n, []) for n in names[:-1]]
        parts.append(_app("top", names[:20]))
    else:  # apps
        fws = names[:50]
        parts += [_framework(n, []) for n in fws]
        parts += [
            _app(f"a{i}", [fws[i % 50], fws[(i * 7) % 50], fws[(i * 13) % 50]]) for i in range(size - 50)
        ]
    return "".join(parts)


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        action()
    return time.perf_counter() - start


def measure(shape: str, size: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "launch.py").write_text("")
        path = root / "venvstacks.toml"
        text = stack_text(shape, size)
        if shape == "apps":
            # Three picks can repeat a framework; list each once.
            text = "\n".join(_dedupe_line(line) for line in text.splitlines())
        path.write_text(text)
        figures = {"load": timed(lambda: load_stack(path))}
        figures["show"] = timed(lambda: main(["show", str(path)]))
        figures["lock plan"] = timed(lambda: main(["lock", "--show-only", str(path)]))
        stack = load_stack(path)
        settings = Settings(stack, root / "_build", RuntimeOptions(cache_dir=root / "cache"))
        kinds = (TaskKind.RUNTIME, TaskKind.LOCK)
        figures["lock tasks"] = timed(lambda: [list(CREATORS[k](settings)) for k in kinds])
        return figures


def _dedupe_line(line: str) -> str:
    if not line.startswith("frameworks = ["):
        return line
    names = list(dict.fromkeys(line[len("frameworks = [") : -1].split(", ")))
    return "frameworks = [" + ", ".join(names) + "]"


def main_bench(sizes: list[int]) -> None:
    print(f"{'shape':<6} {'layers':>6} {'load s':>8} {'show s':>8} {'lock plan s':>12} {'lock tasks s':>13}")
    for size in sizes:
        for shape in ("chain", "two", "wide", "apps"):
            f = measure(shape, size)
            print(
                f"{shape:<6} {size:>6} {f['load']:>8.3f} {f['show']:>8.3f} {f['lock plan']:>12.3f} "
                f"{f['lock tasks']:>13.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main_bench([int(a) for a in sys.argv[1:]] or [250, 500, 1000])
