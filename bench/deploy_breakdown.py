"""Where a deploy's time goes, one step and one layer at a time.

Run from the repo root: ``python3 bench/deploy_breakdown.py [--repeats N] [--timeline-only]``
(it re-executes itself with ``.venv/bin/python``), after ``bench/deploy.py`` has published the three-layer
stack and the sample (or it publishes them, untimed). For every layer archive, in deploy
order, it prints the medians of:

* ``sha256``: hashing the archive before unpacking (``archive.checked.open_checked``);
* ``ours``: our safe unpacker (``archive.unpack.unpack_to_staging``) in this process, wall
  and CPU (it runs in a thread per layer in a deploy, so its CPU is what a core pays);
* ``tarfile``: Python's ``tarfile`` extracting the same archive (``filter="tar"``);
* ``GNU tar``: ``tar -xJf`` of it;
* ``postinstall``: the layer's ``postinstall.py`` run by its base Python in the unpacked
  layer (sitecustomize, pyvenv.cfg and byte-compiling: a process pool per layer);
* ``rename``: moving the finished staging folder into place (``fsutil.replace_dir``).

and, per stack, the start-up of a Python with a process pool (what each postinstall pays
before compiling), and the critical path of a deploy that runs each layer's postinstall.py
once the layers below it are in place: unpacking the runtime and running its postinstall
(its stdlib compile) come before any upper layer's postinstall.

Then, for ``venvstacks deploy`` as it is (each layer's byte-compiling in one shared pool of
workers per runtime, the rest of postinstall in-process), the timeline of one real deploy
(``ship.deploy.deploy`` in this process, medians of the runs): when each layer's unpack
ends, when its files went to the pool (its in-process postinstall done), when the pools
ran dry and when the last layer was in place, with the CPU time of the whole deploy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib import Samples, ensure_project_python, load_line, rel
from cachedir import CACHE_DIR
from deploy import base_python, layers_in_order, publish

from stacks import sample_copy, three_layer_stack

WORK = CACHE_DIR / "deploy-breakdown"
POOL_START = (
    "from concurrent.futures import ProcessPoolExecutor as P\nwith P(2) as p: list(p.map(abs, [1, 2]))"
)


def clock(step: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds (this process and its waited-for children) of one call."""
    t0, c0 = time.perf_counter(), _cpu()
    step()
    return time.perf_counter() - t0, _cpu() - c0


def _cpu() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


KEYS = ("sha256", "ours", "tarfile", "GNU tar", "postinstall", "rename")


def measure_layer(name: str, archive: Path, n: int) -> dict[str, Samples]:
    got = {k: Samples() for k in KEYS}
    for _ in range(n):
        for key, (wall, cpu) in one_run(name, archive).items():
            got[key].values.append(wall)
            got[key].cpu.append(cpu)
    deployed = WORK / "deployed" / name
    shutil.rmtree(deployed, ignore_errors=True)
    deployed.parent.mkdir(parents=True, exist_ok=True)
    os.rename(WORK / "ours" / name, deployed)
    return got


def one_run(name: str, archive: Path) -> dict[str, tuple[float, float]]:
    from venvstacks.archive.checked import open_checked
    from venvstacks.archive.unpack import unpack_to_staging
    from venvstacks.fsutil import replace_dir

    times = {"sha256": clock(lambda: open_checked(archive).file.close())}
    untar: list[str | Path] = ["tar", "-C", fresh(WORK / "tar"), "-xJf", archive]
    times["GNU tar"] = clock(lambda: subprocess.run(untar, check=True))
    times["tarfile"] = clock(lambda: _tarfile_extract(archive, fresh(WORK / "tarfile")))
    target = fresh(WORK / "ours")
    staging: list[Path] = []
    times["ours"] = clock(lambda: staging.append(unpack_to_staging(archive, target, name)))
    # An upper layer's postinstall runs its runtime's Python, found beside it: the layers
    # deployed so far are linked in.
    for lower in (WORK / "deployed").glob("*"):
        (target / lower.name).symlink_to(lower)
    times["postinstall"] = clock(lambda: _postinstall(staging[0]))
    times["rename"] = clock(lambda: replace_dir(staging[0], target / name))
    return times


def _tarfile_extract(archive: Path, dest: Path) -> None:
    with tarfile.open(archive, "r:*") as tf:
        tf.extractall(dest, filter="tar")


def _postinstall(layer: Path) -> None:
    # As deploy runs it (ship.deploy.run_postinstall), on the unpacked staging folder.
    runner = base_python(layer)
    subprocess.run([runner, "-X", "utf8", "-I", layer / "postinstall.py"], check=True, capture_output=True)


def breakdown(label: str, artifacts: Path, n: int) -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    print(f"\nstack {label}: {rel(artifacts)}; wall s (CPU s), medians of {n}")
    keys = KEYS
    print(f"  {'layer':<24} {'MB':>6}" + "".join(f" {k:>15}" for k in keys))
    totals = dict.fromkeys(keys, 0.0)
    cpu_totals = dict.fromkeys(keys, 0.0)
    critical = 0.0
    for name, archive in layers_in_order(artifacts):
        got = measure_layer(name, archive, n)
        cells = "".join(f" {got[k].median:>7.2f} ({got[k].cpu_median:>4.1f})" for k in keys)
        print(f"  {name:<24} {archive.stat().st_size / 1e6:>6.1f}{cells}")
        for k in keys:
            totals[k] += got[k].median
            cpu_totals[k] += got[k].cpu_median
        if name.startswith("cpython"):
            critical = max(critical, got["sha256"].median + got["ours"].median + got["postinstall"].median)
    cells = "".join(f" {totals[k]:>7.2f} ({cpu_totals[k]:>4.1f})" for k in keys)
    print(f"  {'all layers':<31}{cells}")
    start = Samples()
    for _ in range(n):
        start.values.append(
            clock(lambda: subprocess.run([sys.executable, "-I", "-c", POOL_START], check=True))[0]
        )
    print(f"  a Python starting a 2-process pool (each postinstall pays it): {start.summary()}")
    print(
        f"  critical path before any upper layer's postinstall: the slowest runtime's sha256 +"
        f" unpack + postinstall = {critical:.2f} s"
    )
    timeline(artifacts, n)


def timeline(artifacts: Path, n: int) -> None:
    """One real deploy, step by step: seconds from its start (medians of n runs)."""
    from venvstacks.ship import deploy as deploy_module

    marks: dict[str, Samples] = {}
    total = Samples()
    for _ in range(n):
        got = _one_deploy(deploy_module, artifacts)
        for what, at in got.items():
            marks.setdefault(what, Samples()).values.append(at)
        total.values.append(got["in place"])
        total.cpu.append(got["cpu"])
    print("  venvstacks deploy's timeline (s from its start, medians):")
    for what, samples in marks.items():
        if what != "cpu":
            print(f"    {what:<56} {samples.median:6.2f}")
    print(f"  venvstacks deploy in this process: {total.summary()}")


def _one_deploy(deploy_module: Any, artifacts: Path) -> dict[str, float]:
    got: dict[str, float] = {}
    t0, c0 = time.perf_counter(), _cpu()

    def mark(what: str) -> None:
        got[what] = time.perf_counter() - t0

    def wrap(name: str, before: Callable[..., str] | None, after: Callable[..., str]) -> None:
        real = getattr(deploy_module, name)

        def step(*args: Any, **kw: Any) -> Any:
            if before is not None:
                mark(before(*args))
            result = real(*args, **kw)
            mark(after(*args))
            return result

        setattr(deploy_module, name, step)

    saved = {name: getattr(deploy_module, name) for name in ("_unpack_layer", "stage", "wait")}
    wrap("_unpack_layer", None, lambda layer, *_: f"{layer.install_target}: unpacked")
    wrap("stage", None, lambda staging, name, *_: f"{name}: postinstall done, files to the pool")
    wrap("wait", lambda *_: "all unpacked and staged", lambda *_: "every file compiled")
    try:
        deploy_module.deploy(artifacts, fresh(WORK / "timeline"), log=lambda _: None)
    finally:
        for name, real in saved.items():
            setattr(deploy_module, name, real)
    mark("in place")
    got["cpu"] = _cpu() - c0  # the compile workers are waited for: their CPU is counted
    return got


def main(argv: list[str] | None = None) -> int:
    ensure_project_python()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each step (default 3)")
    ap.add_argument("--timeline-only", action="store_true", help="only venvstacks deploy's timeline")
    args = ap.parse_args(argv)
    print(f"bench/deploy_breakdown.py: {load_line()}")
    if args.timeline_only:
        for label, stack in (("three-layer", three_layer_stack()), ("sample", sample_copy())):
            artifacts = publish(stack)
            print(f"\nstack {label}: {rel(artifacts)}")
            timeline(artifacts, args.repeats)
        print(f"\nload at the end: {load_line()}")
        return 0
    breakdown("three-layer", publish(three_layer_stack()), args.repeats)
    breakdown("sample", publish(sample_copy()), args.repeats)
    shutil.rmtree(WORK, ignore_errors=True)
    print(f"\nload at the end: {load_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
