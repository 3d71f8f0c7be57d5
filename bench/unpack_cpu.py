"""CPU time of unpacking each archive of a published stack, one archive at a time: our safe
unpacker against GNU tar, and against another checkout's unpacker.

Run from the repo root: ``python3 bench/unpack_cpu.py [ARTIFACTS] [--against CHECKOUT]
[--repeats N]`` (it re-executes itself with ``.venv/bin/python``). ``ARTIFACTS`` defaults to
the sample's ``--bytecode`` archives (``$CACHE/sample-copy/_artifacts-bytecode``, published
first by ``bench/deploy.py --bytecode``). For each ``*.tar.*`` archive it takes turns, so
every side sees the same load:

* ``GNU tar``: ``tar -xJf`` (``-xzf``, ``--zstd -xf``) into a fresh folder;
* ``ours``: ``archive.unpack.unpack_to_staging`` of this checkout, in a fresh process;
* ``against``: the same function of ``CHECKOUT`` (for example ``/work/main``), if given;

and prints the median CPU seconds of each (the process and its children: user + system, the
decoding threads and any ``xz`` child included) and the ratios. Unpacking files is mostly
kernel time (creating files); the user-space part is where the unpackers differ.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from benchlib import ensure_project_python, load_line, rel
from cachedir import CACHE_DIR, ROOT

from stacks import sample_copy

WORK = CACHE_DIR / "unpack-cpu"
# Runs in a fresh process with the checkout first on sys.path: argv = checkout, archive, target.
UNPACK = (
    "import sys; sys.path.insert(0, sys.argv[1])\n"
    "from pathlib import Path\n"
    "from venvstacks.archive.unpack import unpack_to_staging\n"
    "archive = Path(sys.argv[2])\n"
    "unpack_to_staging(archive, Path(sys.argv[3]), archive.name.split('.tar.')[0])\n"
)
TAR_FLAG = {".tar.xz": "-xJf", ".tar.gz": "-xzf", ".tar.zst": "--zstd -xf"}


def cpu_of(cmd: list[str]) -> float:
    """CPU seconds (user + system) of one command and everything it waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def sides(archive: Path, against: Path | None) -> dict[str, list[str]]:
    suffix = next(s for s in TAR_FLAG if archive.name.endswith(s))
    found = {"GNU tar": ["tar", "-C", str(WORK / "GNU tar"), *TAR_FLAG[suffix].split(), str(archive)]}
    found["ours"] = [sys.executable, "-c", UNPACK, str(ROOT), str(archive), str(WORK / "ours")]
    if against is not None:
        found["against"] = [sys.executable, "-c", UNPACK, str(against), str(archive), str(WORK / "against")]
    return found


def measure(archive: Path, against: Path | None, n: int) -> dict[str, float]:
    runs = sides(archive, against)
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(n):
        for key, cmd in runs.items():
            fresh(WORK / key)
            cpu[key].append(cpu_of(cmd))
    shutil.rmtree(WORK, ignore_errors=True)
    return {k: statistics.median(v) for k, v in cpu.items()}


def row(label: str, got: dict[str, float]) -> str:
    line = f"  {label:<28}" + "".join(f" {v:>9.2f}" for v in got.values())
    line += f"  {got['ours'] / got['GNU tar']:>11.2f}x"
    if "against" in got:
        line += f"  {got['ours'] / got['against']:>12.2f}x"
    return line


def main(argv: list[str] | None = None) -> int:
    ensure_project_python()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("artifacts", nargs="?", type=Path, help="a folder of published archives")
    ap.add_argument("--against", type=Path, help="another checkout whose unpacker to compare")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each side (default 3)")
    args = ap.parse_args(argv)
    artifacts = args.artifacts or sample_copy() / "_artifacts-bytecode"
    archives = sorted(p for p in artifacts.glob("*.tar.*") if any(p.name.endswith(s) for s in TAR_FLAG))
    if not archives:
        print(f"no archives in {rel(artifacts)}: run python3 bench/deploy.py --bytecode first")
        return 1
    print(f"bench/unpack_cpu.py: {load_line()}; CPU s (user + system), medians of {args.repeats}")
    against = f"; against: {args.against}" if args.against else ""
    print(f"archives: {rel(artifacts)}; ours: {ROOT}{against}")
    keys = ["GNU tar", "ours"] + (["against"] if args.against else [])
    ratios = "  ours/GNU tar" + ("  ours/against" if args.against else "")
    print(f"  {'archive':<28}" + "".join(f" {k:>9}" for k in keys) + ratios)
    totals = dict.fromkeys(keys, 0.0)
    for archive in archives:
        got = measure(archive, args.against, args.repeats)
        print(row(archive.name, got), flush=True)
        for k in keys:
            totals[k] += got[k]
    print(row("all", totals))
    print(f"load at the end: {load_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
