"""Deploying: ``venvstacks deploy`` against the existing venvstacks' documented recipe.

Run from the repo root: ``python3 bench/deploy.py [--quick] [--repeats N]`` (it re-executes
itself with ``.venv/bin/python``). For two published stacks, the three-layer stack of the
tests (runtime cpython@3.11, framework ``web`` with idna, app ``hello`` with attrs; in
``$CACHE/deploy-three``) and the sample (``$CACHE/sample-copy``), each published
as tar.xz with ``venvstacks publish -j 2`` first if needed (untimed), it times into fresh
target folders, taking turns (recipe, ours, recipe, ...) so both see the same machine load:

* the recipe: ``tar -xJf`` of each archive, then each layer's ``postinstall.py`` run by its
  base Python (runtime first, then frameworks, then apps), one after another;
* the same recipe with the ``postinstall.py`` of commit 22727ac (before this work: it
  byte-compiled in one process), put in place of each layer's script after unpacking: the
  recipe as the issue measured it;
* ours: ``venvstacks deploy <artifacts> <target>``;

and prints the medians (wall, and CPU of the command and its children), the ratio
recipe/ours (goals: at least 1.5x against the one-process recipe, at least 1x
against the recipe with our parallel postinstall.py) and, on the last deployed sample, the time of
``venvstacks verify <target>``. For each stack it then measures the work any deploy must do
(CPU of ``tar -xJf`` of every archive, and of byte-compiling every layer in one process) and
prints the best ratio recipe/ours that work allows on idle cores.

With ``--bytecode`` it also publishes each stack with ``venvstacks publish --bytecode`` into
``_artifacts-bytecode`` (untimed) and prints, per stack: the archive sizes with and without
bytecode; the one-process recipe (on the archives without bytecode, as users deploy them
today) against ``venvstacks deploy`` of each, taking turns (goal from issue 24: at least 3x
faster than that recipe on the sample, with bytecode); and the first-import time of each app
right after a fresh deploy of each (``bin/python -c "import <launch module>"``, the app's
first run), with and without.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchlib import (
    VENVSTACKS,
    BenchError,
    Samples,
    children_cpu,
    code_version,
    ensure_project_python,
    goal,
    load_line,
    rel,
    run_ok,
)
from cachedir import CACHE_DIR, ROOT

from stacks import sample_copy, three_layer_stack

BASELINE = "22727ac"  # the last commit before parallel deploy
TARGETS = CACHE_DIR / "deploy-targets"
KINDS = ("runtimes", "frameworks", "applications")


def publish(stack_dir: Path, bytecode: bool = False) -> Path:
    """``venvstacks publish <stack> -j 2`` (a no-op when nothing changed); the artifacts folder.
    ``bytecode``: with ``--bytecode``, into ``_artifacts-bytecode``."""
    out = stack_dir / ("_artifacts-bytecode" if bytecode else "_artifacts")
    extra: list[str | Path] = ["--bytecode", "--output-dir", out] if bytecode else []
    result = run_ok([VENVSTACKS, "publish", stack_dir, "-j", "2", *extra])
    print(f"  publish {rel(stack_dir)}{' --bytecode' if bytecode else ''}: {result.seconds:.1f} s (untimed)")
    return out


def layers_in_order(artifacts: Path) -> list[tuple[str, Path]]:
    """(install target, archive) of every published layer: runtimes, frameworks, apps."""
    meta = json.loads((artifacts / "__venvstacks__" / "venvstacks.json").read_text())
    return [
        (str(layer["install_target"]), artifacts / str(layer["archive_name"]))
        for kind in KINDS
        for layer in meta["layers"][kind]
    ]


def timed(once: Callable[..., object], *args: object) -> tuple[float, float]:
    """Wall and CPU (user + system of finished children) seconds of one call."""
    cpu0, t0 = children_cpu(), time.perf_counter()
    once(*args)
    return time.perf_counter() - t0, children_cpu() - cpu0


def recipe(artifacts: Path, target: Path, postinstall: str | None = None) -> None:
    """The recipe; ``postinstall`` replaces each layer's script after unpacking, if given."""
    layers = layers_in_order(artifacts)
    untar_all(layers, target)
    for name, _ in layers:
        layer = target / name
        if postinstall is not None:
            (layer / "postinstall.py").write_text(postinstall)
        run_plain([base_python(layer), layer / "postinstall.py"])


def untar_all(layers: list[tuple[str, Path]], target: Path) -> None:
    for _, archive in layers:
        run_plain(["tar", "-C", target, "-xJf", archive])


def base_python(layer: Path) -> str:
    config = json.loads((layer / "share/venv/metadata/venvstacks_layer.json").read_text())
    return os.path.normpath(layer / str(config["base_python"]))


def serial_postinstall() -> str:
    """postinstall.py as of BASELINE, which byte-compiled in one process (the issue's recipe)."""
    cmd = ["git", "show", f"{BASELINE}:venvstacks/_injected/postinstall.py"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(cmd)}: {proc.stderr.strip()}")
    return proc.stdout


def run_plain(cmd: list[str | Path]) -> None:
    """Run a recipe step as a user's shell would: without the bench's PYTHONPYCACHEPREFIX,
    which would send postinstall's .pyc files to a shared cache, found there on the next
    run, and so skip the byte-compiling (our deploy runs postinstall with -I, which ignores it)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPYCACHEPREFIX", "PYTHONDONTWRITEBYTECODE")}
    proc = subprocess.run(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    if proc.returncode != 0:
        raise BenchError(
            f"{' '.join(map(str, cmd))} failed ({proc.returncode}): {proc.stdout.strip()[-300:]}"
        )


def ours(artifacts: Path, target: Path) -> None:
    run_ok([VENVSTACKS, "deploy", artifacts, target])


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def take_turns(runs: dict[str, Callable[[Path], None]], n: int) -> tuple[dict[str, Samples], Path]:
    """Each run n times into a fresh target, taking turns; the samples and the target, which
    holds the last run's deploy."""
    sides = {name: Samples() for name in runs}
    target = TARGETS / "target"  # one path for every side: the same path lengths
    for _ in range(n):
        for name, how in runs.items():
            fresh(target)
            wall, cpu = timed(how, target)
            sides[name].values.append(wall)
            sides[name].cpu.append(cpu)
    return sides, target


def compare(label: str, artifacts: Path, n: int) -> Path:
    old = serial_postinstall()
    runs: dict[str, Callable[[Path], None]] = {
        "recipe": lambda target: recipe(artifacts, target),
        "recipe, old postinstall": lambda target: recipe(artifacts, target, old),
        "ours": lambda target: ours(artifacts, target),
    }
    sides, target = take_turns(runs, n)
    layers = len(layers_in_order(artifacts))
    print(f"\nstack {label}: {layers} layers, {rel(artifacts)}")
    print(f"  recipe (tar -xJf each, then each postinstall.py):  {sides['recipe'].summary()}")
    print(f"  the same with {BASELINE}'s postinstall.py (one compile process): ", end="")
    print(sides["recipe, old postinstall"].summary())
    print(f"  ours (venvstacks deploy):                          {sides['ours'].summary()}")
    # Issue 24: at least 1.5x faster than the one-process recipe (tar -xJf + each layer's
    # postinstall.py compiling in one process), never slower than tar + our own postinstall.
    for name, want in (("recipe, old postinstall", 1.5), ("recipe", 1.0)):
        speedup = sides[name].median / sides["ours"].median
        print(f"  {name} / ours: {speedup:.2f}x; {goal(f'at least {want}x', speedup >= want)}")
    return target  # holds our last deploy


def verify_time(target: Path, n: int) -> None:
    times = Samples()
    for _ in range(n):
        wall, cpu = timed(lambda: run_ok([VENVSTACKS, "verify", target]))
        times.values.append(wall)
        times.cpu.append(cpu)
    print(f"  venvstacks verify {rel(target)}: {times.summary()}")


# postinstall's byte-compiling, in one process: its CPU time is then all counted (the
# workers of compileall's pool may run under a forkserver that is never waited for).
SERIAL_COMPILE = "import compileall, sys; compileall.compile_dir(sys.argv[1], quiet=2, maxlevels=999)"


def work_floor(artifacts: Path, n: int) -> None:
    """What any deploy must spend: the CPU time of unpacking (``tar -xJf``) and of
    byte-compiling (one process) every layer, and the best ratio it allows. With idle cores
    the recipe needs at least unpack + compile / cores (tar is one stream), the one-process
    recipe unpack + compile, and any deploy that does the same work at least
    (unpack + compile) / cores."""
    unpack, compile_ = Samples(), Samples()
    target = TARGETS / "target"
    for _ in range(n):
        fresh(target)
        layers = layers_in_order(artifacts)
        unpack.cpu.append(timed(untar_all, layers, target)[1])
        libs = [target / name for name, _ in layers if (target / name / "lib").is_dir()]
        compile_.cpu.append(
            sum(timed(run_plain, [base_python(la), "-I", "-c", SERIAL_COMPILE, la / "lib"])[1] for la in libs)
        )
    cores = os.cpu_count() or 1
    u, c = unpack.cpu_median, compile_.cpu_median
    best = (u + c / cores) / ((u + c) / cores)
    print(f"  work: unpack (tar -xJf) CPU {u:.2f} s, byte-compile (one process) CPU {c:.2f} s")
    print(f"  best recipe / ours with {cores} idle cores and the same work: {best:.2f}x")
    # The one-process recipe does all of it on one core, one step after another.
    print(f"  best one-process recipe / ours with {cores} idle cores: {cores:.2f}x (the work on every core)")
    if cores > 1:
        need = (u + c) / 1.5
        print(
            f"  for 1.5x against it ours must take under {need:.2f} s: the work over {cores} cores"
            f" is {(u + c) / cores:.2f} s, so {need - (u + c) / cores:.2f} s are left for start-up,"
            " the unpacking that no compile can overlap and the machine's other work"
        )


def archive_sizes(label: str, plain: Path, bytecode: Path) -> None:
    """The archives' sizes, layer by layer and in all, without and with bytecode."""
    with_pyc = dict(layers_in_order(bytecode))
    total = [0, 0]
    print(f"\nstack {label}: archive sizes, without / with bytecode")
    for name, archive in layers_in_order(plain):
        sizes = archive.stat().st_size, with_pyc[name].stat().st_size
        total = [total[0] + sizes[0], total[1] + sizes[1]]
        print(f"  {name}: {sizes[0] / 1e6:.1f} MB / {sizes[1] / 1e6:.1f} MB ({sizes[1] / sizes[0]:.2f}x)")
    print(f"  all: {total[0] / 1e6:.1f} MB / {total[1] / 1e6:.1f} MB ({total[1] / total[0]:.2f}x)")


def compare_bytecode(label: str, plain: Path, bytecode: Path, n: int) -> None:
    """The one-process recipe on today's archives against our deploy of each kind."""
    old = serial_postinstall()
    runs: dict[str, Callable[[Path], None]] = {
        "recipe, old postinstall": lambda target: recipe(plain, target, old),
        "ours": lambda target: ours(plain, target),
        "ours, bytecode": lambda target: ours(bytecode, target),
        "recipe, bytecode": lambda target: recipe(bytecode, target),
    }
    sides, _ = take_turns(runs, n)
    print(f"\nstack {label}: deploy with and without bytecode")
    print(f"  recipe with {BASELINE}'s postinstall.py, archives without bytecode: ", end="")
    print(sides["recipe, old postinstall"].summary())
    print(f"  ours, archives without bytecode:        {sides['ours'].summary()}")
    print(f"  ours, archives with bytecode:           {sides['ours, bytecode'].summary()}")
    print(f"  recipe (our postinstall.py), bytecode:  {sides['recipe, bytecode'].summary()}")
    base = sides["recipe, old postinstall"].median
    for name, want in (("ours", 1.5), ("ours, bytecode", 3.0)):
        speedup = base / sides[name].median
        print(f"  one-process recipe / {name}: {speedup:.2f}x; {goal(f'at least {want}x', speedup >= want)}")


def first_imports(label: str, plain: Path, bytecode: Path, n: int) -> None:
    """Each app's first import right after a fresh ``venvstacks deploy``, without and with
    bytecode (run as a user's launcher would: none of the bench's pycache variables)."""
    apps = _apps(plain)
    times: dict[tuple[str, bool], Samples] = {(app, pyc): Samples() for app in apps for pyc in (False, True)}
    target = TARGETS / "target"
    for _ in range(n):
        for pyc, artifacts in ((False, plain), (True, bytecode)):
            fresh(target)
            ours(artifacts, target)
            for app, module in apps.items():
                python = target / app / "bin" / "python"
                wall, _ = timed(run_plain, [python, "-c", f"import {module}"])
                times[(app, pyc)].values.append(wall)
    print(f"\nstack {label}: first import of each app right after deploy, without / with bytecode")
    for app, module in apps.items():
        without, with_pyc = times[(app, False)].median, times[(app, True)].median
        print(f"  {app} (import {module}): {without:.3f} s / {with_pyc:.3f} s")


def _apps(artifacts: Path) -> dict[str, str]:
    meta = json.loads((artifacts / "__venvstacks__" / "venvstacks.json").read_text())
    return {
        str(app["install_target"]): str(app["app_launch_module"]) for app in meta["layers"]["applications"]
    }


def with_bytecode(n: int) -> None:
    for label, stack_dir in (("three-layer", three_layer_stack()), ("sample", sample_copy())):
        plain, bytecode = publish(stack_dir), publish(stack_dir, bytecode=True)
        archive_sizes(label, plain, bytecode)
        compare_bytecode(label, plain, bytecode, n)
        first_imports(label, plain, bytecode, n)


def main(argv: list[str] | None = None) -> int:
    ensure_project_python()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="2 runs of each side instead of 5")
    ap.add_argument("--repeats", type=int, help="runs of each side (default 5, --quick 2)")
    ap.add_argument(
        "--bytecode",
        action="store_true",
        help="only compare archives published with and without --bytecode (sizes, deploy, first import)",
    )
    args = ap.parse_args(argv)
    n = max(1, args.repeats or (2 if args.quick else 5))
    print(f"bench/deploy.py: {load_line()}; medians of {n} runs per side, taking turns")
    print(f"code: {code_version()}")
    print("(the machine may be shared: compare the two sides of one run, not runs of different times)")
    try:
        if args.bytecode:
            with_bytecode(n)
            print(f"\nload at the end: {load_line()}")
            return 0
        three = publish(three_layer_stack())
        sample = publish(sample_copy())
        compare("three-layer (cpython-3.11, web: idna, hello: attrs)", three, n)
        work_floor(three, n)
        target = compare("sample (stacks/sample)", sample, n)
        verify_time(target, n)
        work_floor(sample, n)
    except BenchError as exc:
        print(f"error: {exc}")
        return 1
    print(f"\nload at the end: {load_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
