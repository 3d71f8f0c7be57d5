"""Where users wait: our builds against the newest existing release, side by side, as ratios.

Run from the repo root: ``python3 bench/compare.py [--quick] [--repeats N] [--skip-0.7]
[--stacks three,sample] [--publish-sample]`` (it re-executes itself with ``.venv/bin/python``).

For the three-layer stack (runtime cpython@3.11, framework ``web`` with idna, app ``hello``
with attrs) and the sample, each tool builds its own copy of the stack in
``$CACHE/compare-<stack>-<tool>``, taking turns (ours, 0.8.0b2, 0.7.0, ours, ...) so
that every side sees the same load. Scenarios, each timed as the user would wait for it:

* cold build: no locks, no build folder: ours ``venvstacks build <stack>`` (default options;
  its runtime cache is warm), theirs the runtime unpacked into ``<build>/cpython@X.Y.Z/``
  (counted for 0.8.0b2, not for 0.7.0, as the issue's table does), ``lock``, ``build``;
* no-op build: ``build`` again, nothing changed (median of a few);
* one app's requirement changed: ``six`` added to one app; ours ``build``, theirs
  ``build --lock-if-needed`` (then the stack file and locks restored and rebuilt, untimed);
* rebuild from locks into an empty build folder (a CI build): the build folder deleted, the
  locks kept; ours ``build``, theirs re-seeded (counted as above) and ``build``;
* publish tar.xz into a fresh folder (three-layer stack only, unless ``--publish-sample``).

It prints each figure (median, min, max), the ratio theirs / ours per scenario (how many
times faster we are), the goals of issue 24, and where our builds' time went by task kind
(the sum of our reporter's ``ok <kind>:<layer> (N.Ns)`` times; tasks overlap when run at once).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import (
    VENVSTACKS,
    BenchError,
    Result,
    Samples,
    code_version,
    ensure_project_python,
    goal,
    load_line,
    one_line,
    rel,
    run_ok,
)
from cachedir import CACHE_DIR
from upstream import NEWEST_VERSION, Upstream, UpstreamError

from stacks import PRODUCT_DIRS, change_and_back, prepare_upstream, sample_copy, sync_tree, three_layer_stack

SCENARIOS = ("cold", "noop", "changed", "rebuild", "publish")
TITLES = {
    "cold": "cold build (lock + build)",
    "noop": "no-op build",
    "changed": "one app's requirement changed",
    "rebuild": "rebuild from locks into an empty build folder",
    "publish": "publish tar.xz",
}
#: Issue 24's goals against 0.8.0b2: (stack, scenario) -> at least this many times faster.
GOALS = {
    ("three", "cold"): 2.5,
    ("sample", "cold"): 2.5,
    ("three", "rebuild"): 2.5,
    ("sample", "rebuild"): 2.5,
    ("sample", "changed"): 3.0,
}
CHANGED_APP = {"three": "hello", "sample": "sklearn-import"}
_TASK_TIME = re.compile(r"^ok (\w+):\S+ \((\d+(?:\.\d+)?)s\)$", re.M)


@dataclass
class Side:
    """One tool's copy of one stack, and its measurements."""

    name: str
    work: Path
    times: dict[str, Samples] = field(default_factory=dict)
    kinds: dict[str, dict[str, float]] = field(default_factory=dict)  # scenario -> kind -> s

    def add(self, scenario: str, seconds: float) -> None:
        self.times.setdefault(scenario, Samples()).values.append(seconds)


def task_kinds(output: str) -> dict[str, float]:
    kinds: dict[str, float] = {}
    for kind, secs in _TASK_TIME.findall(output):
        kinds[kind] = kinds.get(kind, 0.0) + float(secs)
    return kinds


class Ours:
    def __init__(self, source: Path, work: Path) -> None:
        self.side = Side("ours", work)
        self.source = source

    def build(self) -> Result:
        return run_ok([VENVSTACKS, "build", self.side.work])

    def noop(self) -> float:
        return self.build().seconds

    def cold(self) -> float:
        shutil.rmtree(self.side.work, ignore_errors=True)
        sync_tree(self.source, self.side.work, skip=PRODUCT_DIRS | {"requirements"})
        return self.timed("cold", self.build)

    def rebuild(self) -> float:
        shutil.rmtree(self.side.work / "_build")
        return self.timed("rebuild", self.build)

    def changed(self, app: str) -> float:
        return change_and_back(self.side.work, app, lambda: self.timed("changed", self.build), self.build)

    def publish(self) -> float:
        out = fresh(self.side.work / "_bench_artifacts")
        cmd: list[str | Path] = [
            VENVSTACKS,
            "publish",
            self.side.work,
            "--format",
            "tar.xz",
            "--output-dir",
            out,
            "--force",
        ]
        return run_ok(cmd).seconds

    def timed(self, scenario: str, once: Callable[[], Result]) -> float:
        result = once()
        self.side.kinds[scenario] = task_kinds(result.output)
        return result.seconds


class Theirs:
    def __init__(self, up: Upstream, source: Path, work: Path, count_seed: bool) -> None:
        self.up = up
        self.side = Side(up.version, work)
        self.source = source
        self.count_seed = count_seed
        self.stack = prepare_upstream(source, work)

    def run(self, *args: str) -> float:
        return self.up.run(*args, cwd=self.side.work, env=self.stack.env)

    def seed(self) -> float:
        start = time.perf_counter()
        self.stack.seed(self.up)
        return time.perf_counter() - start if self.count_seed else 0.0

    def cold(self) -> float:
        self.stack = prepare_upstream(self.source, self.side.work)  # no locks, no build folder
        return self.seed() + self.run("lock", "venvstacks.toml") + self.run("build", "venvstacks.toml")

    def rebuild(self) -> float:
        shutil.rmtree(self.side.work / "_build")
        return self.seed() + self.run("build", "venvstacks.toml")

    def noop(self) -> float:
        return self.run("build", "venvstacks.toml")

    def changed(self, app: str) -> float:
        relock = lambda: self.run("build", "--lock-if-needed", "venvstacks.toml")  # noqa: E731
        return change_and_back(self.side.work, app, relock, relock)

    def publish(self) -> float:
        out = fresh(self.side.work / "_bench_artifacts")
        return self.run("publish", "venvstacks.toml", "--force", "--output-dir", str(out))


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def one_round(side: Ours | Theirs, stack: str, noops: int, publish: bool) -> None:
    """Every scenario once (no-op *noops* times) on one side; a failure skips the rest."""
    s = side.side
    s.add("cold", side.cold())
    for _ in range(noops):
        s.add("noop", side.noop())
    s.add("changed", side.changed(CHANGED_APP[stack]))
    s.add("rebuild", side.rebuild())
    if publish:
        s.add("publish", side.publish())


def report(stack: str, sides: list[Side]) -> None:
    ours = sides[0]
    print(f"\n{stack} stack: medians (min-max) in seconds; theirs / ours = how many times faster ours is")
    header = f"  {'scenario':<48} {'ours':>16}" + "".join(f" {s.name:>16} {'ratio':>7}" for s in sides[1:])
    print(header)
    for scenario in SCENARIOS:
        if scenario not in ours.times:
            continue
        line = f"  {TITLES[scenario]:<48} {cell(ours.times[scenario]):>16}"
        for s in sides[1:]:
            theirs = s.times.get(scenario)
            r = f"{theirs.median / ours.times[scenario].median:.2f}x" if theirs else "n/a"
            line += f" {cell(theirs) if theirs else 'failed':>16} {r:>7}"
        print(line)
    newest = next((s for s in sides if s.name == NEWEST_VERSION), None)
    for (goal_stack, scenario), want in GOALS.items():
        if goal_stack == stack and newest and scenario in newest.times and scenario in ours.times:
            got = newest.times[scenario].median / ours.times[scenario].median
            print(f"  {goal(f'{TITLES[scenario]} >= {want}x vs {NEWEST_VERSION}', got >= want)} ({got:.2f}x)")
    print("  where our time went (sum of task times by kind, last run of each scenario):")
    for scenario, kinds in ours.kinds.items():
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
        print(f"    {TITLES[scenario]:<46} {parts or 'no task ran'}")


def cell(samples: Samples) -> str:
    v = samples.values
    return f"{samples.median:.2f}" + (f" ({min(v):.2f}-{max(v):.2f})" if len(v) > 1 else "")


def main(argv: list[str] | None = None) -> int:
    ensure_project_python()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="one round per stack (default 3)")
    ap.add_argument("--repeats", type=int, help="rounds per stack")
    ap.add_argument("--skip-0.7", dest="skip_07", action="store_true", help="do not run 0.7.0")
    ap.add_argument("--stacks", default="three,sample", help="comma-separated: three, sample")
    ap.add_argument("--publish-sample", action="store_true", help="also time publishing the sample")
    args = ap.parse_args(argv)
    rounds = args.repeats or (1 if args.quick else 3)
    print(f"bench/compare.py: {load_line()}; {rounds} round(s) per stack, sides taking turns")
    print(f"code: {code_version()}")
    versions = [NEWEST_VERSION] + ([] if args.skip_07 else ["0.7.0"])
    try:
        ups = [Upstream(version=v) for v in versions]
        for up in ups:
            up.ensure_installed()
        for stack in args.stacks.split(","):
            source = three_layer_stack() if stack == "three" else sample_copy()
            compare_stack(stack, source, ups, rounds, stack == "three" or args.publish_sample)
    except (BenchError, UpstreamError) as exc:
        print(f"error: {one_line(exc)}")
        return 1
    print(f"\nload at the end: {load_line()}")
    return 0


def compare_stack(stack: str, source: Path, ups: list[Upstream], rounds: int, publish: bool) -> None:
    ours = Ours(source, CACHE_DIR / f"compare-{stack}-ours")
    if not (source / "_build" / ".runtimes").is_dir():
        run_ok([VENVSTACKS, "build", source])  # the exact runtime versions theirs must use
    sides: list[Ours | Theirs] = [ours]
    for up in ups:
        work = CACHE_DIR / f"compare-{stack}-{up.version}"
        sides.append(Theirs(up, source, work, count_seed=up.version == NEWEST_VERSION))
    failed: set[str] = set()
    for i in range(rounds):
        for side in sides:
            if side.side.name in failed:
                continue
            try:
                one_round(side, stack, 3, publish)
            except (BenchError, UpstreamError, OSError) as exc:
                print(f"  {side.side.name} on {stack}: could not run: {one_line(exc)}")
                failed.add(side.side.name)
        print(f"  ({stack}: round {i + 1} of {rounds} done; {load_line()})")
    report(stack, [s.side for s in sides])
    print(f"  work folders: {', '.join(rel(s.side.work) for s in sides)}")


if __name__ == "__main__":
    sys.exit(main())
