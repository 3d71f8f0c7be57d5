"""Runtimes made from local interpreters (uv-managed or pyenv): which ones are found and which
are skipped, and proof that their packed copies run relocated, even with the original install
hidden, and pack to the same bytes twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.runtime_checks import Log, probe
from venvstacks.runtimes.cache import ensure_runtime, install_runtime
from venvstacks.runtimes.local import LocalSource
from venvstacks.runtimes.options import RuntimeOptions
from venvstacks.runtimes.pack import LOCAL_MARKER, find_patchelf, pack_prefix
from venvstacks.runtimes.record import CacheEntry


def test_session_runtime_is_relocated(local_runtime: CacheEntry, tmp_path: Path) -> None:
    assert (local_runtime.record.source, local_runtime.record.portable) == ("local", False)
    dest = tmp_path / "somewhere" / "else"
    install_runtime(local_runtime, dest)
    assert not list(dest.rglob("__pycache__")) and not list(dest.rglob("*.pyc"))
    seen = probe(dest)
    assert seen["prefix"] == str(dest)
    assert seen["version"] == local_runtime.record.version
    # Loaded from the copy: not the original install, not a system libpython.
    assert seen["libpython"] == [str(p) for p in sorted((dest / "lib").glob("libpython3.*.so.1.0"))]
    xy = ".".join(local_runtime.record.version.split(".")[:2])
    stdlib = dest / "lib" / f"python{xy}"
    assert stdlib.joinpath("site-packages").is_dir()
    assert list(stdlib.joinpath("site-packages").iterdir()) == []
    assert not stdlib.joinpath("test").exists()
    assert (dest / "bin" / "python3").is_symlink()
    assert all(p.name.startswith(("python", "pydoc", "idle", "2to3")) for p in (dest / "bin").iterdir())
    assert json.loads((dest / LOCAL_MARKER).read_text())["version"] == local_runtime.record.version


def test_local_copy_runs_with_the_original_hidden(
    local_runtime: CacheEntry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pyenv-style install (shared libpython, absolute RUNPATH) at a prefix we can hide.

    It is rebuilt from the session runtime and given an absolute RUNPATH naming its own
    prefix, as pyenv's --enable-shared builds have; after packing, that prefix is removed.
    """
    if not seen_shared(local_runtime):
        pytest.skip("the local CPython has no shared libpython")
    patchelf = find_patchelf()
    prefix = tmp_path / "pyenv" / "versions" / local_runtime.record.version
    install_runtime(local_runtime, prefix)
    exe = prefix / "bin" / f"python{local_runtime.record.version.rsplit('.', 1)[0]}"
    subprocess.run([patchelf, "--set-rpath", str(prefix / "lib"), str(exe)], check=True)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "no-uv-pythons"))
    log = Log()
    opts = RuntimeOptions(cache_dir=tmp_path / "cache", policy="local")
    runtime = ensure_runtime(f"cpython@{local_runtime.record.version}", opts, log)
    assert (runtime.record.origin, runtime.record.source, runtime.record.portable) == (
        str(prefix),
        "local",
        False,
    )
    assert log == [
        f"cpython@{runtime.record.version}: packaging the local CPython {runtime.record.version} at {prefix}"
    ]

    prefix.rename(tmp_path / "hidden")
    seen = probe(runtime.python_dir)
    assert seen["prefix"] == str(runtime.python_dir)
    assert seen["libpython"] == [
        str(p) for p in sorted((runtime.python_dir / "lib").glob("libpython3.*.so.1.0"))
    ]
    rpath = subprocess.run(
        [patchelf, "--print-rpath", str(runtime.python_dir / "bin" / exe.name)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert rpath == "$ORIGIN/../lib"

    # Packing the same install again gives the same bytes (stable sha256, stable manifests).
    (tmp_path / "hidden").rename(prefix)
    again = tmp_path / "again.tar.gz"
    pack_prefix(prefix, runtime.record.version, again, relocate=True, marker=_marker(prefix, runtime))
    assert again.read_bytes() == runtime.archive.read_bytes()


def seen_shared(runtime: CacheEntry) -> bool:
    return any((runtime.python_dir / "lib").glob("libpython3*.so*"))


def _marker(prefix: Path, runtime: CacheEntry) -> dict[str, str]:
    return {"made_from": str(prefix), "kind": "pyenv", "version": runtime.record.version}


def test_uv_managed_pythons_come_first(
    local_runtime: CacheEntry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uv_dir = tmp_path / "uv"
    prefix = uv_dir / f"cpython-{local_runtime.record.version}-linux-x86_64-gnu"
    install_runtime(local_runtime, prefix)
    (uv_dir / ".lock").touch()
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(uv_dir))
    found = LocalSource().find("cpython", local_runtime.record.version)
    assert found is not None and found.origin == str(prefix)


def test_not_real_builds_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A version folder whose python3 is something else (a system python, a venv, a shim)."""
    root = tmp_path / "pyenv"
    for name in ("3.11.98", "3.11-dev", "pypy3.10-7.3.12"):
        (root / "versions" / name / "bin").mkdir(parents=True)
        # Debian's python3 when there is one: a real CPython, but not at this prefix.
        target = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
        (root / "versions" / name / "bin" / "python3").symlink_to(target)
    monkeypatch.setenv("PYENV_ROOT", str(root))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "no-uv-pythons"))
    source = LocalSource()
    assert source.find("cpython", "3.11.98") is None
    assert source.available("cpython") == []


def test_second_local_version(tmp_path: Path) -> None:
    source = LocalSource()
    other = [v for v in source.available("cpython") if not v.startswith("3.11.")]
    if not other:
        pytest.skip("only one local CPython series here")
    series = other[-1].rsplit(".", 1)[0]
    found = source.find("cpython", series)
    assert found is not None and found.version == other[-1]
