"""Which part of the build engine a `venvstacks` command imports, seen from a fresh
interpreter: the commands that run no doit graph (deploy, verify, init, docs) start without
doit and without the stack commands' workflow (venvstacks/cli.py says why)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence

PROBE = """
import json, sys
from venvstacks.cli import main
status = [main(argv) for argv in json.loads(sys.argv[1])]
watched = tuple(json.loads(sys.argv[2]))
loaded = sorted(m for m in sys.modules if m.startswith(watched) or f"{m}." in watched)
print(json.dumps([status, loaded]))
"""


#: Modules of doit, the engine and the stack commands' workflow (a prefix ending in "." is
#: also the package of that name).
ENGINE = ("doit.", "venvstacks.engine", "venvstacks.cli_workflow")


def run_in_fresh_interpreter(
    *argvs: Sequence[str], watched: Sequence[str] = ENGINE
) -> tuple[list[int], list[str]]:
    """`venvstacks.cli.main(argv)` for each argv, in that order, in one new process: the
    exit status of each, and every module named by a prefix in ``watched`` (doit's and the
    engine's) loaded by the end."""
    given = json.dumps([list(argv) for argv in argvs])
    cmd = [sys.executable, "-c", PROBE, given, json.dumps(list(watched))]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    status, loaded = json.loads(proc.stdout.splitlines()[-1])
    return status, loaded
