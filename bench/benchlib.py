"""Shared helpers of the benchmark scripts (``bench/noop.py``, ``bench/publish.py``).

Everything here measures or prepares; nothing asserts on time.  Paths, in the bench cache
(``$CACHE``: outside the checkout, one per checkout; ``cachedir.py``):

* ``$CACHE/runtimes``     the runtime cache of every bench run (``VENVSTACKS_RUNTIME_CACHE``),
  so results do not depend on the user's cache;
* ``$CACHE/sample-copy``  a copy of ``stacks/sample`` that the benchmarks build, so the
  repo's own ``stacks/sample/_build`` is never touched;
* ``$CACHE/upstream-*``   work folders of the existing venvstacks (see ``upstream.py``).

Every subprocess gets ``UV_PYTHON_DOWNLOADS=never`` and ``VENVSTACKS_RUNTIME_SOURCE=local``
(no GitHub here: runtimes are packed from local CPythons), and
``VENVSTACKS_ALLOW_LOCAL_RUNTIME=1`` so that ``publish`` archives layers on them.
"""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cachedir import CACHE_DIR, CACHE_VAR, ROOT
from upstream import Upstream, upstream_env_for_stack, upstream_stack_text
from upstream_selftest import SELFTEST_LAUNCH, SELFTEST_STACK

VENV_DIR = ROOT / ".venv"
VENV_PYTHON = VENV_DIR / "bin" / "python"
VENVSTACKS = VENV_DIR / "bin" / "venvstacks"
DOIT = VENV_DIR / "bin" / "doit"
DODO = ROOT / "dodo.py"
RUNTIME_CACHE = CACHE_DIR / "runtimes"
SAMPLE = ROOT / "stacks" / "sample"
SAMPLE_COPY = CACHE_DIR / "sample-copy"
#: The tests' three-layer stack (runtime cpython@3.11, framework web: idna, app hello: attrs).
THREE = CACHE_DIR / "deploy-three"

#: Folders of a stack folder that hold build products, never sources.
PRODUCT_DIRS = frozenset({"_build", "_export", "_artifacts", "_artifacts-bytecode"})

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

#: Environment for upstream 0.7.0 runs: its pip installs ignore this machine's pip config
#: (extra local indexes, find-links, constraints), as bench/README.md explains.
UPSTREAM_PIP_ENV = {"PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": ""}


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


# --- stack folders --------------------------------------------------------------------------


def sync_tree(src: Path, dst: Path, skip: Iterable[str] = PRODUCT_DIRS) -> int:
    """Make *dst* hold *src*'s files (except top-level *skip* folders); returns files changed.

    Files whose bytes are already the same are left alone, so a synced copy of an unchanged
    stack stays a no-op for the build.
    """
    skip = set(skip)
    changed = 0
    wanted: set[Path] = set()
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if rel.parts[0] in skip or "__pycache__" in rel.parts or not path.is_file():
            continue
        wanted.add(rel)
        target = dst / rel
        if target.is_file() and target.read_bytes() == path.read_bytes():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        changed += 1
    if dst.is_dir():
        for path in sorted(dst.rglob("*"), reverse=True):
            rel = path.relative_to(dst)
            if rel.parts[0] in skip or "__pycache__" in rel.parts:
                continue
            if path.is_file() and rel not in wanted:
                path.unlink()
                changed += 1
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    return changed


def write_if_changed(path: Path, text: str) -> bool:
    if path.is_file() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return True


def sample_copy() -> Path:
    """``$CACHE/sample-copy``, synced with ``stacks/sample`` (its build folder kept)."""
    # A dodo.py there is the benchmark's own (noop.py's plain doit run), not the stack's.
    changed = sync_tree(SAMPLE, SAMPLE_COPY, skip=PRODUCT_DIRS | {"dodo.py"})
    if changed:
        print(f"  (synced {changed} file(s) of {SAMPLE.relative_to(ROOT)} into {rel(SAMPLE_COPY)})")
    return SAMPLE_COPY


def three_layer_stack() -> Path:
    """``$CACHE/deploy-three``: the three-layer stack (unchanged files are kept)."""
    write_if_changed(THREE / "venvstacks.toml", SELFTEST_STACK)
    write_if_changed(THREE / "launch_modules" / "hello.py", SELFTEST_LAUNCH)
    return THREE


def change_and_back(work: Path, app: str, timed: Callable[[], float], untimed: Callable[[], object]) -> float:
    """Add ``six`` to *app*, time the build, then restore the stack file and locks (untimed)."""
    spec = work / "venvstacks.toml"
    original = spec.read_text()
    locks = snapshot(work / "requirements")
    spec.write_text(add_requirement(original, app, "six"))
    try:
        seconds = timed()
    finally:
        spec.write_text(original)
        restore(work / "requirements", locks)
    untimed()
    return seconds


def rel(path: Path) -> str:
    """*path* shortened: relative to the checkout, or ``$CACHE/...`` in the bench cache."""
    for base, name in ((CACHE_DIR, "$CACHE"), (ROOT, "")):
        if path.is_relative_to(base):
            inside = path.relative_to(base)
            return f"{name}/{inside}" if name else str(inside)
    return str(path)


def cache_line() -> str:
    return f"bench cache ($CACHE, outside the checkout; {CACHE_VAR} moves it): {CACHE_DIR}"


@dataclass(frozen=True)
class StackInfo:
    layers: int
    runtimes: list[str]  # python_implementation of each runtime
    apps: list[str]


def stack_info(stack_dir: Path) -> StackInfo:
    data = tomllib.loads((stack_dir / "venvstacks.toml").read_text())
    runtimes = [
        str(r.get("python_implementation") or r.get("fully_versioned_name")) for r in data["runtimes"]
    ]
    apps = [str(a["name"]) for a in data.get("applications", [])]
    layers = len(runtimes) + len(data.get("frameworks", [])) + len(apps)
    return StackInfo(layers, runtimes, apps)


def build_dir_layers(stack_dir: Path) -> list[str]:
    build = stack_dir / "_build"
    return (
        sorted(p.name for p in build.iterdir() if p.is_dir() and not p.name.startswith("."))
        if build.is_dir()
        else []
    )


def build_ours(stack_dir: Path, jobs: int = 2) -> tuple[Result, bool]:
    """``venvstacks build <stack> -j N``; (result, whether the build folder was empty before)."""
    cold = not build_dir_layers(stack_dir)
    return run_ok([VENVSTACKS, "build", stack_dir, "-j", str(jobs)]), cold


def built_runtime_versions(stack_dir: Path) -> dict[str, str]:
    """``{request: X.Y.Z}`` from the runtime manifests of our build (``_build/.runtimes/*.json``)."""
    versions: dict[str, str] = {}
    for manifest in sorted((stack_dir / "_build" / ".runtimes").glob("*.json")):
        data = json.loads(manifest.read_text())
        versions[str(data["request"])] = str(data["version"])
    return versions


def add_requirement(stack_text: str, app: str, requirement: str) -> str:
    """*stack_text* with *requirement* added to application *app*'s ``requirements``."""
    blocks = stack_text.split("\n[[")
    for i, block in enumerate(blocks):
        if block.startswith("applications]]") and (f'name = "{app}"\n' in block):
            if "requirements = [" not in block:
                break
            blocks[i] = block.replace("requirements = [", f'requirements = ["{requirement}", ', 1)
            new = "\n[[".join(blocks)
            tomllib.loads(new)  # still valid TOML
            return new
    raise BenchError(f"cannot find the requirements of application {app!r} in the stack file")


def snapshot(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else {}


def restore(folder: Path, saved: Mapping[Path, bytes]) -> None:
    for path in list(folder.rglob("*")) if folder.is_dir() else []:
        if path.is_file() and path not in saved:
            path.unlink()
    for path, data in saved.items():
        if not path.is_file() or path.read_bytes() != data:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


# --- upstream 0.7.0 -----------------------------------------------------------------------


def runtime_archive(version: str) -> Path:
    """The archive of ``cpython@<version>`` in the bench runtime cache (made if missing)."""
    from venvstacks.runtimes.cache import ensure_runtime
    from venvstacks.runtimes.options import RuntimeOptions

    options = RuntimeOptions.from_env(policy="local", cache_dir=RUNTIME_CACHE)
    return Path(ensure_runtime(f"cpython@{version}", options, log=lambda _m: None).archive)


@dataclass
class UpstreamStack:
    """A stack prepared for upstream 0.7.0 in its own work folder (rewritten, runtimes seeded)."""

    work: Path
    env: dict[str, str]
    runtimes: dict[str, Path]  # cpython@X.Y.Z -> archive

    def seed(self, up: Upstream) -> None:
        """Unpack the runtimes where 0.7.0 looks for them (before every cold run)."""
        for impl, archive in self.runtimes.items():
            up.seed_runtime(self.work / "_build", impl, archive)


def prepare_upstream(stack_dir: Path, work: Path) -> UpstreamStack:
    """Copy our stack's sources to *work* (a fresh folder) and rewrite it for 0.7.0.

    The exact runtime versions are the ones our build resolved (``_build/.runtimes``), so
    *stack_dir* must have been built by us first.  Our lock files are left out (0.7.0 writes
    its own requirements.txt files).
    """
    versions = built_runtime_versions(stack_dir)
    if not versions:
        raise BenchError(f"{stack_dir} has no runtime manifests: build it with our venvstacks first")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    sync_tree(stack_dir, work, skip=PRODUCT_DIRS | {"requirements"})
    text = (stack_dir / "venvstacks.toml").read_text()
    (work / "venvstacks.toml").write_text(upstream_stack_text(text, versions))
    runtimes = {f"cpython@{v}": runtime_archive(v) for v in versions.values()}
    return UpstreamStack(work, {**upstream_env_for_stack(text), **UPSTREAM_PIP_ENV}, runtimes)


def one_line(exc: BaseException) -> str:
    text = str(exc)
    first = text.splitlines()[0] if text else type(exc).__name__
    detail = last_error_line(text)
    return first if detail == first else f"{first} ... {detail}"
