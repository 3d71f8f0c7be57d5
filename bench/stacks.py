"""The stack folders the benchmarks build, and their upstream copies.

``$CACHE/sample-copy`` (a copy of ``stacks/sample``, so the repo's own ``stacks/sample/_build``
is never touched) and ``$CACHE/deploy-three`` (the tests' three-layer stack), synced so an
unchanged stack stays a no-op; editing a stack and putting it back; what a stack file and a
build folder hold; and a stack rewritten for the existing venvstacks in a work folder of its
own (``$CACHE/upstream-*``, ``upstream.py``). Running and timing: ``benchlib.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from benchlib import RUNTIME_CACHE, VENVSTACKS, BenchError, Result, rel, run_ok
from cachedir import CACHE_DIR, ROOT
from upstream import Upstream, upstream_env_for_stack, upstream_stack_text
from upstream_selftest import SELFTEST_LAUNCH, SELFTEST_STACK

SAMPLE = ROOT / "stacks" / "sample"
SAMPLE_COPY = CACHE_DIR / "sample-copy"
#: The tests' three-layer stack (runtime cpython@3.11, framework web: idna, app hello: attrs).
THREE = CACHE_DIR / "deploy-three"

#: Folders of a stack folder that hold build products, never sources.
PRODUCT_DIRS = frozenset({"_build", "_export", "_artifacts", "_artifacts-bytecode"})

#: Environment for upstream 0.7.0 runs: its pip installs ignore this machine's pip config
#: (extra local indexes, find-links, constraints), as bench/README.md explains.
UPSTREAM_PIP_ENV = {"PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": ""}


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
