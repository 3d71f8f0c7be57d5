"""Shared helpers of the benchmark scripts: running and timing commands, and what a run prints
about itself (the commit, the load). The stack folders they build: ``stacks.py``.

Everything here measures; nothing asserts on time.  ``$CACHE/runtimes`` (in the bench cache,
outside the checkout, one per checkout; ``cachedir.py``) is the runtime cache of every bench
run (``VENVSTACKS_RUNTIME_CACHE``), so results do not depend on the user's cache.

Every subprocess gets ``UV_PYTHON_DOWNLOADS=never`` and ``VENVSTACKS_RUNTIME_SOURCE=local``
(no GitHub here: runtimes are packed from local CPythons), and
``VENVSTACKS_ALLOW_LOCAL_RUNTIME=1`` so that ``publish`` archives layers on them.
"""

from __future__ import annotations

import io
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cachedir import CACHE_DIR, CACHE_VAR, ROOT

VENV_DIR = ROOT / ".venv"
VENV_PYTHON = VENV_DIR / "bin" / "python"
VENVSTACKS = VENV_DIR / "bin" / "venvstacks"
DOIT = VENV_DIR / "bin" / "doit"
DODO = ROOT / "dodo.py"
RUNTIME_CACHE = CACHE_DIR / "runtimes"

BENCH_ENV = {
    "UV_PYTHON_DOWNLOADS": "never",
    "VENVSTACKS_RUNTIME_SOURCE": "local",
    "VENVSTACKS_RUNTIME_CACHE": str(RUNTIME_CACHE),
    # Those local runtimes are not portable; publishing them is what the benchmarks time.
    "VENVSTACKS_ALLOW_LOCAL_RUNTIME": "1",
}

#: Only for our own commands (`run`): an editable install's modules are compiled on every
#: start when PYTHONDONTWRITEBYTECODE is set (as in some agent or CI shells), which a pip
#: install (0.7.0's venv included) never does; a pycache in the bench cache keeps them
#: compiled without writing into the repo.  Build outputs are unaffected: archives and
#: exports leave .pyc files out and postinstall runs with `-I`.
PYCACHE_ENV = {"PYTHONPYCACHEPREFIX": str(CACHE_DIR / "pycache")}


class BenchError(RuntimeError):
    """A benchmark step failed; the message is meant to be printed as it is."""


# --- interpreter -------------------------------------------------------------------------


def ensure_project_python() -> None:
    """Re-exec this script with the project's ``.venv/bin/python`` unless already there.

    The scripts import ``venvstacks`` and ``upstream`` (``bench/``), and time the ``.venv``'s
    own ``venvstacks`` and ``doit`` commands.  Also puts the ``BENCH_ENV`` variables into
    ``os.environ`` so that in-process calls (``venvstacks.runtimes.cache``) see the bench cache.
    """
    os.environ.update(BENCH_ENV)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # progress shows up when redirected to a file
    if not VENV_PYTHON.exists():
        sys.exit(f"no {VENV_PYTHON}: run `python3 {ROOT / 'dev.py'} test` (or create it) first")
    if Path(sys.prefix).resolve() != VENV_DIR.resolve():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), *sys.argv])


# --- running and timing -------------------------------------------------------------------


@dataclass
class Result:
    seconds: float
    output: str
    code: int
    cpu: float = 0.0  # user + system seconds of the command and its children

    @property
    def tasks_run(self) -> list[str]:
        """Tasks our reporter started (lines ``.  <task>``), in order."""
        return [line[3:].strip() for line in self.output.splitlines() if line.startswith(".  ")]


def run(
    cmd: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    pycache_prefix: bool = True,
) -> Result:
    """Run *cmd*, stdout and stderr merged; the time is ``perf_counter`` around the subprocess.

    *pycache_prefix*: with the bench's ``PYCACHE_ENV`` (off for an install that holds its own
    bytecode, as pip's does).
    """
    full_env = {**os.environ, **BENCH_ENV, **(PYCACHE_ENV if pycache_prefix else {}), **(env or {})}
    full_env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not pycache_prefix:
        full_env.pop("PYTHONPYCACHEPREFIX", None)
    cpu0, t0 = children_cpu(), time.perf_counter()
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=full_env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )
    return Result(time.perf_counter() - t0, proc.stdout, proc.returncode, children_cpu() - cpu0)


def children_cpu() -> float:
    """User + system CPU seconds of this process's finished (waited-for) children so far.

    Unlike wall time it hardly depends on what else the shared machine is doing, so
    wall / CPU shows how much of a command's parallelism it actually got.
    """
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_ok(
    cmd: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    pycache_prefix: bool = True,
) -> Result:
    result = run(cmd, cwd=cwd, env=env, pycache_prefix=pycache_prefix)
    if result.code != 0:
        raise BenchError(
            f"`{' '.join(map(str, cmd))}` exited {result.code}: {last_error_line(result.output)}"
        )
    return result


def last_error_line(output: str) -> str:
    """The most telling line of a failed command's output (the last error-looking one)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if not lines:
        return "no output"
    for line in reversed(lines):
        if "Error" in line or line.startswith(("error", "FAILED", "ERROR")):
            return line[:400]
    return lines[-1][:400]


@dataclass
class Samples:
    """Repeated measurements of one thing, in seconds."""

    values: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # CPU seconds of the same runs, if taken

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu) if self.cpu else 0.0

    def summary(self) -> str:
        cpu = f"; CPU median {self.cpu_median:.1f} s" if self.cpu else ""
        if len(self.values) == 1:
            return f"{self.values[0]:.3f} s (n=1{cpu})"
        return (
            f"median {self.median:.3f} s (min {min(self.values):.3f}, max {max(self.values):.3f},"
            f" n={len(self.values)}{cpu})"
        )


def repeat(n: int, once: Callable[[], float]) -> Samples:
    samples = Samples()
    for _ in range(n):
        samples.values.append(once())
    return samples


def ratio(a: float, b: float) -> str:
    """a / b with three significant digits (0.0157x, 1.72x)."""
    return f"{a / b:.3g}x" if b > 0 else "n/a"


def goal(text: str, met: bool) -> str:
    return f"goal {text}: {'met' if met else 'NOT met'}"


def code_version() -> str:
    """The commit being measured, and how many files of ``venvstacks/`` differ from it."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True, capture_output=True)
    status = subprocess.run(
        ["git", "status", "--porcelain", "--", "venvstacks", "dodo.py"],
        cwd=ROOT,
        text=True,
        capture_output=True,
    )
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    dirty = len(status.stdout.splitlines())
    return f"commit {head.stdout.strip()}" + (
        f" + {dirty} uncommitted file(s) in venvstacks/, dodo.py" if dirty else ""
    )


def bytecode_line() -> str:
    was = (
        " (PYTHONDONTWRITEBYTECODE is set here: removed for them)"
        if os.environ.get("PYTHONDONTWRITEBYTECODE")
        else ""
    )
    return (
        f"the editable install's commands cache bytecode in {rel(CACHE_DIR / 'pycache')}{was};"
        " a pip install has its own (pip compiles what it installs)"
    )


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {one:.2f} {five:.2f} {fifteen:.2f}"


def rel(path: Path) -> str:
    """*path* shortened: relative to the checkout, or ``$CACHE/...`` in the bench cache."""
    for base, name in ((CACHE_DIR, "$CACHE"), (ROOT, "")):
        if path.is_relative_to(base):
            inside = path.relative_to(base)
            return f"{name}/{inside}" if name else str(inside)
    return str(path)


def cache_line() -> str:
    return f"bench cache ($CACHE, outside the checkout; {CACHE_VAR} moves it): {CACHE_DIR}"


def one_line(exc: BaseException) -> str:
    text = str(exc)
    first = text.splitlines()[0] if text else type(exc).__name__
    detail = last_error_line(text)
    return first if detail == first else f"{first} ... {detail}"
