"""Deploy where users wait: ``venvstacks deploy --help`` and a no-op redeploy.

Run from the repo root: ``python3 bench/deploystart.py [--repeats N]`` (it re-executes itself
with ``.venv/bin/python``). It publishes the three-layer stack (``$CACHE/deploy-three``, as
``bench/deploy.py`` does; untimed, a no-op when nothing changed), deploys it once into
``$CACHE/deploystart-target`` (untimed), then times, taking turns, with the pip install of
this checkout (what users run; ``userinstall.py``), the editable ``.venv`` and, with
``--also VENV``, the venvstacks installed in VENV (say, a pip install of an older commit):

* the baseline, ``<venv>/bin/python -c "import tarfile, lzma, json, hashlib"``: a Python
  start that loads what unpacking and checking archives needs;
* ``venvstacks deploy --help``;
* a no-op redeploy, ``venvstacks deploy <artifacts> <target>``, every layer current: it
  checks every deployed file against its layer's manifest; and the same with ``--no-check``
  (the deploy record trusted);
* ``venvstacks verify <target>``;
* the least a check reads: ``<venv>/bin/python -c`` hashing (sha256) every regular file of
  the target outside ``__pycache__`` (what the manifests list), in one thread;

and prints the medians and each one's ratio to the baseline (the no-op redeploy and verify
also to the hashing floor).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from benchlib import (
    VENV_PYTHON,
    BenchError,
    Samples,
    bytecode_line,
    code_version,
    ensure_project_python,
    load_line,
    rel,
    run_ok,
)
from cachedir import CACHE_DIR
from deploy import publish
from userinstall import EDITABLE, Install, user_install

from stacks import three_layer_stack

TARGET = CACHE_DIR / "deploystart-target"
BASELINE = "import tarfile, lzma, json, hashlib"
# Every regular file outside __pycache__ read and hashed, as a check must (one thread).
HASH_ALL = """
import hashlib, os, sys
for folder, dirs, files in os.walk(sys.argv[1]):
    dirs[:] = [d for d in dirs if d != "__pycache__"]
    for name in files:
        path = os.path.join(folder, name)
        if not os.path.islink(path):
            with open(path, "rb") as f:
                hashlib.file_digest(f, "sha256")
"""


def take_turns(
    installs: list[Install], commands: dict[str, Callable[[Install], list[str | Path]]], n: int
) -> dict[str, list[Samples]]:
    """Each command of each install n times, taking turns, after one untimed run of each."""
    samples = {name: [Samples() for _ in installs] for name in commands}
    for repeat in range(n + 1):
        for name, command in commands.items():
            for install, taken in zip(installs, samples[name], strict=True):
                result = run_ok(command(install), pycache_prefix=install.pycache_prefix)
                if repeat:
                    taken.values.append(result.seconds)
    return samples


def main(argv: list[str] | None = None) -> int:
    ensure_project_python()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--repeats", type=int, default=15, help="runs of each command (default 15)")
    ap.add_argument(
        "--also",
        metavar="VENV",
        type=Path,
        help="also time the venvstacks installed in VENV (e.g. a pip install of an older commit)",
    )
    args = ap.parse_args(argv)
    n = max(1, args.repeats)
    print(f"bench/deploystart.py: {load_line()}; medians of {n} runs, taking turns")
    print(f"code: {code_version()}; {bytecode_line()}")
    try:
        installs = [*_user_install(), EDITABLE]
        if args.also:
            installs.append(Install("--also", args.also.absolute(), pycache_prefix=False))
        artifacts = publish(three_layer_stack())
        shutil.rmtree(TARGET, ignore_errors=True)
        run_ok([EDITABLE.venvstacks, "deploy", artifacts, TARGET, "-q"])  # untimed: the first deploy
        commands: dict[str, Callable[[Install], list[str | Path]]] = {
            f'python -c "{BASELINE}"': lambda i: [i.python, "-c", BASELINE],
            "venvstacks deploy --help": lambda i: [i.venvstacks, "deploy", "--help"],
            "no-op redeploy (venvstacks deploy A T)": lambda i: [i.venvstacks, "deploy", artifacts, TARGET],
            "no-op redeploy --no-check": lambda i: [i.venvstacks, "deploy", "--no-check", artifacts, TARGET],
            "venvstacks verify T": lambda i: [i.venvstacks, "verify", TARGET],
            "hashing every file of T (python -c)": lambda i: [i.python, "-c", HASH_ALL, TARGET],
        }
        samples = take_turns(installs, commands, n)
    except BenchError as exc:
        print(f"error: {exc}")
        return 1
    print(f"three-layer stack: {rel(artifacts)} deployed in {rel(TARGET)}")
    names = list(commands)
    base, floor = samples[names[0]], samples[names[-1]]
    for i, install in enumerate(installs):
        print(f"\n{install.label} ({rel(install.venv)}):")
        for name in names:
            taken = samples[name][i]
            times = taken.median / base[i].median
            line = f"  {name:<48} {taken.median * 1000:7.1f} ms  {times:5.2f}x baseline"
            if name.startswith(("no-op redeploy (", "venvstacks verify")):
                line += f", {taken.median / floor[i].median:.2f}x hashing"
            print(line)
    print(f"\nload at the end: {load_line()}")
    return 0


def _user_install() -> list[Install]:
    """The pip install of this checkout, or none (said why) when it cannot be made."""
    try:
        return [user_install(VENV_PYTHON)[0]]
    except BenchError as exc:  # e.g. no package index for the wheel's build backend
        print(f"note: no pip install of this checkout, the editable install only: {exc}")
        return []


if __name__ == "__main__":
    sys.exit(main())
