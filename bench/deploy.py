"""Deploying: ``venvstacks deploy`` against the existing venvstacks' documented recipe.

Run from the repo root: ``python3 bench/deploy.py [--quick] [--repeats N]`` (it re-executes
itself with ``.venv/bin/python``). For two published stacks, the three-layer stack of the
tests (runtime cpython@3.11, framework ``web`` with idna, app ``hello`` with attrs; in
``bench/.cache/deploy-three``) and the sample (``bench/.cache/sample-copy``), each published
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
    CACHE_DIR,
    ROOT,
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
    sample_copy,
    three_layer_stack,
)

BASELINE = "22727ac"  # the last commit before parallel deploy
TARGETS = CACHE_DIR / "deploy-targets"
KINDS = ("runtimes", "frameworks", "applications")


def publish(stack_dir: Path) -> Path:
    """``venvstacks publish <stack> -j 2`` (a no-op when nothing changed); the artifacts folder."""
    result = run_ok([VENVSTACKS, "publish", stack_dir, "-j", "2"])
    print(f"  publish {rel(stack_dir)}: {result.seconds:.1f} s (untimed preparation)")
    return stack_dir / "_artifacts"


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


def compare(label: str, artifacts: Path, n: int) -> Path:
    old = serial_postinstall()
    runs: dict[str, Callable[[Path], None]] = {
        "recipe": lambda target: recipe(artifacts, target),
        "recipe, old postinstall": lambda target: recipe(artifacts, target, old),
        "ours": lambda target: ours(artifacts, target),
    }
    sides = {name: Samples() for name in runs}
    target = TARGETS / "target"  # one path for every side: the same path lengths
    for _ in range(n):
        for name, how in runs.items():
            fresh(target)
            wall, cpu = timed(how, target)
            sides[name].values.append(wall)
            sides[name].cpu.append(cpu)
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
    the recipe needs at least unpack + compile / cores (tar is one stream), and any deploy
    that does the same work at least (unpack + compile) / cores."""
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


def main(argv: list[str] | None = None) -> int:
    ensure_project_python()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="2 runs of each side instead of 5")
    ap.add_argument("--repeats", type=int, help="runs of each side (default 5, --quick 2)")
    args = ap.parse_args(argv)
    n = max(1, args.repeats or (2 if args.quick else 5))
    print(f"bench/deploy.py: {load_line()}; medians of {n} runs per side, taking turns")
    print(f"code: {code_version()}")
    print("(the machine may be shared: compare the two sides of one run, not runs of different times)")
    try:
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
