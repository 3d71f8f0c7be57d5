"""Publishing: archive time and size per format, against the existing venvstacks 0.7.0.

Run from the repo root: ``python3 bench/publish.py [--quick] [--skip-upstream] [--repeats N]``
(it re-executes itself with ``.venv/bin/python``).  It builds ``stacks/sample`` in
``$CACHE/sample-copy`` if needed, then for each format (tar.xz, tar.gz, tar.zst, zip)
times ``venvstacks publish <copy> --format F --output-dir <fresh dir> --force -j 2``
(cold: a fresh output folder every time) and prints:

* the median publish time per format (wall, and the CPU time of the command and its children:
  on this shared 2-core machine wall / CPU shows how much parallelism a run really got),
  and the archive size of every layer and in total;
* whether two publishes into two fresh folders gave byte-identical archives (sha256);
* for tar.xz, 0.7.0 publishing the same stack (``lock``, ``build``, then timed
  ``publish --output-dir <fresh dir> --force``), with ratios ours/theirs for time and size.
  Ours and 0.7.0's tar.xz publishes alternate (ours, theirs, ours, ...), so both sides see
  the same machine load.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import (
    VENVSTACKS,
    BenchError,
    Samples,
    bytecode_line,
    children_cpu,
    code_version,
    ensure_project_python,
    goal,
    last_error_line,
    load_line,
    one_line,
    rel,
    run,
    run_ok,
)
from cachedir import CACHE_DIR
from upstream import Upstream, UpstreamError

from stacks import build_ours, prepare_upstream, sample_copy

FORMATS = ("tar.xz", "tar.gz", "tar.zst", "zip")
OUT_DIR = CACHE_DIR / "publish"


@dataclass
class Archive:
    name: str
    size: int
    sha256: str


@dataclass
class Published:
    """Repeated cold publishes of one stack in one format."""

    times: Samples = field(default_factory=Samples)
    runs: list[dict[str, Archive]] = field(default_factory=list)  # layer -> archive, per run
    notes: list[str] = field(default_factory=list)

    @property
    def archives(self) -> dict[str, Archive]:
        return self.runs[0] if self.runs else {}

    @property
    def total(self) -> int:
        return sum(a.size for a in self.archives.values())

    def reproducibility(self) -> str:
        if len(self.runs) < 2:
            return "not checked (one publish)"
        first, second = self.runs[0], self.runs[1]
        if first.keys() != second.keys():
            return f"different layer sets: {sorted(first)} vs {sorted(second)}"
        differ = sorted(layer for layer in first if first[layer].sha256 != second[layer].sha256)
        if differ:
            return f"different: {len(differ)} of {len(first)} archives differ ({', '.join(differ)})"
        return f"identical: all {len(first)} archives have the same sha256"


def read_archives(out: Path) -> dict[str, Archive]:
    """layer -> archive, from ``__venvstacks__/env_metadata/*.json`` (ours and 0.7.0 alike)."""
    found: dict[str, Archive] = {}
    for meta_file in sorted((out / "__venvstacks__" / "env_metadata").glob("*.json")):
        meta = json.loads(meta_file.read_text())
        path = out / str(meta["archive_name"])
        if not path.is_file():
            raise BenchError(f"{rel(meta_file)} names {path.name}, which is missing")
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        found[str(meta["layer_name"])] = Archive(path.name, path.stat().st_size, digest.hexdigest())
    if not found:
        raise BenchError(f"no archives described in {rel(out)}/__venvstacks__/env_metadata")
    return found


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


class Publisher:
    """Our cold publishes; ``--force`` is dropped (once, with a note) if it fails."""

    def __init__(self, stack_dir: Path, built: list[str]) -> None:
        self.stack_dir = stack_dir
        self.built = built
        self.use_force = True

    def publish(self, fmt: str, n: int) -> Published:
        result = Published()
        for i in range(n):
            self.publish_once(fmt, i, result)
        return result

    def publish_once(self, fmt: str, i: int, result: Published) -> None:
        # Anything else the graph wants (a relock after a code change, say) runs here, untimed.
        run_ok([VENVSTACKS, "build", self.stack_dir])
        out = fresh(OUT_DIR / f"ours-{fmt}-{i}")
        cmd: list[str | Path] = [
            VENVSTACKS,
            "publish",
            self.stack_dir,
            "--format",
            fmt,
            "--output-dir",
            out,
        ]
        proc = run([*cmd, "--force", "-j", "2"] if self.use_force else [*cmd, "-j", "2"])
        if proc.code != 0 and self.use_force:
            result.notes.append(
                f"--force failed ({last_error_line(proc.output)}); timing without it from now on"
                " (a fresh output folder is cold anyway)"
            )
            self.use_force = False
            fresh(out)
            proc = run([*cmd, "-j", "2"])
        if proc.code != 0:
            raise BenchError(f"venvstacks publish --format {fmt} failed: {last_error_line(proc.output)}")
        other = [t for t in proc.tasks_run if not t.startswith("publish:")]
        published = [t for t in proc.tasks_run if t.startswith("publish:")]
        if other or len(published) != len(self.built):
            result.notes.append(
                f"run {i + 1}: {len(published)} publish tasks for {len(self.built)} built layers;"
                f" other tasks: {', '.join(other) or 'none'}"
            )
        result.times.values.append(proc.seconds)
        result.times.cpu.append(proc.cpu)
        result.runs.append(read_archives(out))


class UpstreamPublisher:
    """0.7.0's cold publishes of the same stack, after its own (untimed) lock and build."""

    def __init__(self, up: Upstream, stack_dir: Path) -> None:
        self.up = up
        self.work = CACHE_DIR / "upstream-publish-sample"
        self.stack = prepare_upstream(stack_dir, self.work)
        self.stack.seed(up)
        t_lock = up.run("lock", "venvstacks.toml", cwd=self.work, env=self.stack.env)
        t_build = up.run("build", "venvstacks.toml", cwd=self.work, env=self.stack.env)
        times = f"{t_lock:.2f} s, {t_build:.2f} s in {rel(self.work)}"
        row("upstream 0.7.0: lock, build (not timed below)", times)

    def publish_once(self, i: int, result: Published) -> None:
        out = f"_artifacts-{i}"
        fresh(self.work / out)
        cpu0 = children_cpu()
        args = ("publish", "venvstacks.toml", "--output-dir", out, "--force")
        secs = self.up.run(*args, cwd=self.work, env=self.stack.env)
        result.times.values.append(secs)
        result.times.cpu.append(children_cpu() - cpu0)
        result.runs.append(read_archives(self.work / out))


def row(label: str, text: str) -> None:
    print(f"  {label:<46} {text}")


def mb(size: int) -> str:
    return f"{size / 1e6:.3f}"


def size_table(columns: dict[str, Published]) -> None:
    layers = sorted({layer for p in columns.values() for layer in p.archives})
    width = max(len(x) for x in [*layers, "layer (MB)"])
    print("  " + f"{'layer (MB)':<{width}}" + "".join(f" {c:>16}" for c in columns))
    for layer in layers:
        cells = [mb(p.archives[layer].size) if layer in p.archives else "-" for p in columns.values()]
        print("  " + f"{layer:<{width}}" + "".join(f" {c:>16}" for c in cells))
    print("  " + f"{'total':<{width}}" + "".join(f" {mb(p.total):>16}" for p in columns.values()))


def start_upstream(stack_dir: Path) -> UpstreamPublisher | None:
    try:
        up = Upstream()
        up.ensure_installed()
        return UpstreamPublisher(up, stack_dir)
    except (UpstreamError, BenchError, OSError, ValueError) as exc:
        print(f"  upstream 0.7.0: could not build this stack: {one_line(exc)}")
        return None


def publish_xz_side_by_side(
    publisher: Publisher, upstream: UpstreamPublisher | None, n: int, n_up: int
) -> tuple[dict[str, Published], Published | None]:
    """Ours and 0.7.0's tar.xz publishes take turns, so a change in the machine's load
    (other sessions share it) hits both sides alike."""
    ours, theirs = Published(), Published() if upstream else None
    for i in range(n):
        publisher.publish_once("tar.xz", i, ours)
        if upstream and theirs is not None and i < n_up:
            try:
                upstream.publish_once(i, theirs)
            except (UpstreamError, BenchError, OSError, ValueError) as exc:
                print(f"  upstream 0.7.0: could not publish this stack: {one_line(exc)}")
                upstream, theirs = None, None
    report("ours: publish --format tar.xz -j 2", ours)
    if theirs is not None:
        row("upstream 0.7.0: publish (tar.xz)", theirs.times.summary())
    return {"tar.xz": ours}, theirs


def report(label: str, published: Published) -> None:
    row(label, published.times.summary())
    for note in published.notes:
        row("", f"note: {note}")


def main(argv: list[str] | None = None) -> int:
    ensure_project_python()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--skip-upstream", action="store_true", help="do not run venvstacks 0.7.0")
    ap.add_argument("--repeats", type=int, help="publishes per format (default 3, --quick 2; at least 2)")
    ap.add_argument("--upstream-repeats", type=int, help="0.7.0 tar.xz publishes (default: as many as ours)")
    args = ap.parse_args(argv)
    n = max(2, args.repeats or (2 if args.quick else 3))
    n_up = args.upstream_repeats or n

    print(f"bench/publish.py: {load_line()}; medians of {n} cold publishes per format")
    print(f"code: {code_version()}; {bytecode_line()}")
    try:
        stack_dir = sample_copy()
        built, cold = build_ours(stack_dir)
        layers = sorted(p.name for p in (stack_dir / "_build").iterdir() if p.is_dir() and p.name[0] != ".")
        print(f"\nstack sample: {rel(stack_dir)} ({len(layers)} layers built here)")
        row(
            "build first: venvstacks build <stack> -j 2",
            f"{built.seconds:.2f} s ({'cold' if cold else 'already built'}; not part of the times below)",
        )
        upstream = None if args.skip_upstream else start_upstream(stack_dir)
        publisher = Publisher(stack_dir, layers)
        ours, theirs = publish_xz_side_by_side(publisher, upstream, n, n_up)
        for fmt in FORMATS[1:]:
            try:
                ours[fmt] = publisher.publish(fmt, n)
            except BenchError as exc:
                row(f"ours: publish --format {fmt} -j 2", f"failed: {exc}")
                continue
            report(f"ours: publish --format {fmt} -j 2", ours[fmt])
    except BenchError as exc:
        print(f"error: {exc}")
        return 1

    print("\narchive sizes (MB = 10^6 bytes)")
    columns = {f"ours {fmt}": p for fmt, p in ours.items()}
    if theirs is not None:
        columns["0.7.0 tar.xz"] = theirs
    size_table(columns)

    print("\nreproducibility (two cold publishes into two fresh folders, sha256 of each archive)")
    for name, published in columns.items():
        row(name, published.reproducibility())

    if theirs is not None and "tar.xz" in ours:
        xz = ours["tar.xz"]
        t_ratio = xz.times.median / theirs.times.median
        s_ratio = xz.total / theirs.total
        print("\nours/theirs (tar.xz)")
        row(
            "publish time",
            f"{xz.times.median:.2f} s / {theirs.times.median:.2f} s = {t_ratio:.3f}x"
            f" (ours is {1 / t_ratio:.2f}x as fast)",
        )
        row(
            "publish CPU time (user + system)",
            f"{xz.times.cpu_median:.1f} s / {theirs.times.cpu_median:.1f} s"
            f" = {xz.times.cpu_median / theirs.times.cpu_median:.3f}x",
        )
        row("total archive size", f"{mb(xz.total)} MB / {mb(theirs.total)} MB = {s_ratio:.3f}x")
        bigger = sorted(
            layer
            for layer, a in xz.archives.items()
            if layer in theirs.archives and a.size > theirs.archives[layer].size
        )
        row("layers whose archive is larger than 0.7.0's", ", ".join(bigger) or "none")
        print(f"  {goal('tar.xz publish at least 2x faster than 0.7.0', t_ratio <= 0.5)}")
        print(f"  {goal('tar.xz archives no larger than 0.7.0 (total)', s_ratio <= 1.0)}")
    print(f"\nload at the end: {load_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
