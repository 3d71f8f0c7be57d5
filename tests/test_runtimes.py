"""Runtime sources: request parsing, the cache, downloads via a mirror, explicit archives,
local interpreters (and proof that their copies run relocated). No network is used: the
"download" tests are served by an HTTP server on 127.0.0.1."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pbs_installer
import pytest
from pbs_installer import PythonVersion

from tests.support.runtime_fixtures import Mirror, RuntimeArchive
from venvstacks import runtime_local
from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import sha256_file
from venvstacks.runtime_local import LocalSource
from venvstacks.runtime_pack import LOCAL_MARKER, ParallelGzip, find_patchelf, pack_prefix
from venvstacks.runtime_sources import PBS_RELEASE_BASES, unpack_install_only
from venvstacks.runtimes import (
    Runtime,
    RuntimeOptions,
    ensure_runtime,
    install_runtime,
    parse_archive_entry,
    parse_request,
)

DATE = "20991231"
PBS_NAME = "cpython-{version}+{date}-x86_64-unknown-linux-gnu-install_only.tar.gz"
PROBE = (
    "import json, sys, ssl, sqlite3, ctypes, zlib, decimal; print(json.dumps({"
    "'prefix': sys.prefix, 'version': '%d.%d.%d' % sys.version_info[:3], "
    "'libpython': sorted({l.split()[-1] for l in open('/proc/self/maps') if 'libpython' in l})}))"
)


class Log(list[str]):
    def __call__(self, line: str) -> None:
        self.append(line)


def probe(python_dir: Path) -> dict[str, Any]:
    """Run a runtime's python3 with an empty environment (no PATH, no PYTHONHOME...)."""
    out = subprocess.run(
        ["env", "-i", str(python_dir / "bin" / "python3"), "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def fake_table(monkeypatch: pytest.MonkeyPatch, version: str, sha256: str, date: str = DATE) -> list[str]:
    """Make pbs-installer's table list one GitHub archive for `version`; returns requests seen."""
    major, minor, micro = (int(p) for p in version.split("."))
    entry = PythonVersion("cpython", major, minor, micro)
    name = PBS_NAME.format(version=version, date=date).replace("+", "%2B")
    url = f"{PBS_RELEASE_BASES[0]}/{date}/{name}"
    asked: list[str] = []

    def get_download_link(request: str, **kwargs: Any) -> tuple[PythonVersion, tuple[str, str]]:
        asked.append(request)
        assert kwargs["build_dir"] is False and kwargs["implementation"] == "cpython"
        if not entry.matches(request, "cpython"):
            raise ValueError(f"Could not find a version matching version={request!r}")
        return entry, (url, sha256)

    monkeypatch.setattr(pbs_installer, "get_download_link", get_download_link)
    return asked


def cache_contents(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.name != ".locks") if cache.exists() else []


def publish(mirror: Mirror, archive: RuntimeArchive) -> str:
    return mirror.publish(archive.path, DATE, PBS_NAME.format(version=archive.version, date=DATE))


@pytest.fixture
def no_local_packing(monkeypatch: pytest.MonkeyPatch, local_runtime_archive: RuntimeArchive) -> list[Path]:
    """Packing a local interpreter is tested on its own; elsewhere reuse the session's archive."""
    packed: list[Path] = []

    def pack(prefix: Path, version: str, dest: Path, **_: Any) -> None:
        packed.append(prefix)
        shutil.copyfile(local_runtime_archive.path, dest)

    monkeypatch.setattr(runtime_local, "pack_prefix", pack)
    return packed


# -- requests and options ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "expected"),
    [("cpython@3.11", ("cpython", "3.11")), ("cpython@3.12.1", ("cpython", "3.12.1"))],
)
def test_parse_request(request_: str, expected: tuple[str, str]) -> None:
    assert parse_request(request_) == expected


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ("3.11", "is not IMPLEMENTATION@X.Y"),
        ("cpython@3", "is not IMPLEMENTATION@X.Y"),
        ("cpython@3.11.x", "is not IMPLEMENTATION@X.Y"),
        ("cpython-3.11", "is not IMPLEMENTATION@X.Y"),
        ("cpython@3.11.7.1", "is not IMPLEMENTATION@X.Y"),
        ("pypy@3.10", "not supported yet"),
        ("jython@2.7", "unknown implementation 'jython'"),
    ],
)
def test_bad_requests(request_: str, message: str) -> None:
    with pytest.raises(VenvStacksError, match=message) as err:
        parse_request(request_)
    assert "\n" not in str(err.value)


def test_options_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    sha = "ab" * 32
    monkeypatch.setenv("VENVSTACKS_RUNTIME_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("VENVSTACKS_RUNTIME_SOURCE", "download")
    monkeypatch.setenv("VENVSTACKS_RUNTIME_MIRROR", "http://127.0.0.1:1/pbs")
    monkeypatch.setenv(
        "VENVSTACKS_RUNTIME_ARCHIVES",
        f"cpython@3.11=/a/x.tar.gz#sha256={sha}; cpython@3.12.1=https://h/y.tar.gz#sha256={sha}",
    )
    opts = RuntimeOptions.from_env()
    assert opts.cache_dir == tmp_path / "c"
    assert opts.policy == "download"
    assert opts.mirror == "http://127.0.0.1:1/pbs"
    assert opts.archives == {
        "cpython@3.11": f"/a/x.tar.gz#sha256={sha}",
        "cpython@3.12.1": f"https://h/y.tar.gz#sha256={sha}",
    }
    # Overrides win, None means "not given", explicit archives merge per request.
    opts = RuntimeOptions.from_env(
        policy="local", mirror=None, archives={"cpython@3.11": f"/b.tar.gz#sha256={sha}"}
    )
    assert (opts.policy, opts.mirror) == ("local", "http://127.0.0.1:1/pbs")
    assert opts.archives["cpython@3.11"] == f"/b.tar.gz#sha256={sha}"
    assert "cpython@3.12.1" in opts.archives


def test_options_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("CACHE", "SOURCE", "MIRROR", "ARCHIVES"):
        monkeypatch.delenv(f"VENVSTACKS_RUNTIME_{name}", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    opts = RuntimeOptions.from_env()
    assert opts == RuntimeOptions(cache_dir=tmp_path / "venvstacks" / "runtimes")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert RuntimeOptions.from_env().cache_dir == Path.home() / ".cache/venvstacks/runtimes"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"VENVSTACKS_RUNTIME_SOURCE": "github"}, "not one of auto, download, local"),
        ({"VENVSTACKS_RUNTIME_ARCHIVES": "cpython@3.11"}, "write it as REQ=PATH_OR_URL"),
        ({"VENVSTACKS_RUNTIME_ARCHIVES": "cpython@3.11=/x.tar.gz"}, "is not PATH_OR_URL#sha256"),
        ({"VENVSTACKS_RUNTIME_ARCHIVES": "cpython@3.11=/x#sha256=12"}, "64 hex digits"),
        ({"VENVSTACKS_RUNTIME_ARCHIVES": f"py3=/x#sha256={'0' * 64}"}, "is not IMPLEMENTATION"),
    ],
)
def test_bad_options(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(VenvStacksError, match=message):
        RuntimeOptions.from_env()


def test_parse_archive_entry() -> None:
    sha = "0" * 64
    assert parse_archive_entry(f"cpython@3.11=https://x/a=b.tar.gz#sha256={sha}") == (
        "cpython@3.11",
        f"https://x/a=b.tar.gz#sha256={sha}",
    )


# -- local interpreters ----------------------------------------------------------------------


def test_session_runtime_is_relocated(local_runtime: Runtime, tmp_path: Path) -> None:
    assert (local_runtime.source, local_runtime.portable) == ("local", False)
    dest = tmp_path / "somewhere" / "else"
    install_runtime(local_runtime, dest)
    assert not list(dest.rglob("__pycache__")) and not list(dest.rglob("*.pyc"))
    seen = probe(dest)
    assert seen["prefix"] == str(dest)
    assert seen["version"] == local_runtime.version
    # Loaded from the copy: not the original install, not a system libpython.
    assert seen["libpython"] == [str(p) for p in sorted((dest / "lib").glob("libpython3.*.so.1.0"))]
    xy = ".".join(local_runtime.version.split(".")[:2])
    stdlib = dest / "lib" / f"python{xy}"
    assert stdlib.joinpath("site-packages").is_dir()
    assert list(stdlib.joinpath("site-packages").iterdir()) == []
    assert not stdlib.joinpath("test").exists()
    assert (dest / "bin" / "python3").is_symlink()
    assert all(p.name.startswith(("python", "pydoc", "idle", "2to3")) for p in (dest / "bin").iterdir())
    assert json.loads((dest / LOCAL_MARKER).read_text())["version"] == local_runtime.version


def test_local_copy_runs_with_the_original_hidden(
    local_runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pyenv-style install (shared libpython, absolute RUNPATH) at a prefix we can hide.

    It is rebuilt from the session runtime and given an absolute RUNPATH naming its own
    prefix, as pyenv's --enable-shared builds have; after packing, that prefix is removed.
    """
    if not seen_shared(local_runtime):
        pytest.skip("the local CPython has no shared libpython")
    patchelf = find_patchelf()
    prefix = tmp_path / "pyenv" / "versions" / local_runtime.version
    install_runtime(local_runtime, prefix)
    exe = prefix / "bin" / f"python{local_runtime.version.rsplit('.', 1)[0]}"
    subprocess.run([patchelf, "--set-rpath", str(prefix / "lib"), str(exe)], check=True)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "no-uv-pythons"))
    log = Log()
    opts = RuntimeOptions(cache_dir=tmp_path / "cache", policy="local")
    runtime = ensure_runtime(f"cpython@{local_runtime.version}", opts, log)
    assert (runtime.origin, runtime.source, runtime.portable) == (str(prefix), "local", False)
    assert log == [f"cpython@{runtime.version}: packaging the local CPython {runtime.version} at {prefix}"]

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
    pack_prefix(prefix, runtime.version, again, relocate=True, marker=_marker(prefix, runtime))
    assert again.read_bytes() == runtime.archive.read_bytes()


def seen_shared(runtime: Runtime) -> bool:
    return any((runtime.python_dir / "lib").glob("libpython3*.so*"))


def _marker(prefix: Path, runtime: Runtime) -> dict[str, str]:
    return {"made_from": str(prefix), "kind": "pyenv", "version": runtime.version}


def test_uv_managed_pythons_come_first(
    local_runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uv_dir = tmp_path / "uv"
    prefix = uv_dir / f"cpython-{local_runtime.version}-linux-x86_64-gnu"
    install_runtime(local_runtime, prefix)
    (uv_dir / ".lock").touch()
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(uv_dir))
    found = LocalSource().find("cpython", local_runtime.version)
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


# -- downloads through a mirror ------------------------------------------------------------


def test_download_from_mirror_then_cache_hit(
    runtime_mirror: Mirror,
    local_runtime_archive: RuntimeArchive,
    no_local_packing: list[Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    url = publish(runtime_mirror, local_runtime_archive)
    asked = fake_table(monkeypatch, local_runtime_archive.version, local_runtime_archive.sha256)
    opts = RuntimeOptions(cache_dir=tmp_path / "cache", policy="download", mirror=runtime_mirror.url + "/")
    log = Log()
    runtime = ensure_runtime("cpython@3.11", opts, log)
    assert asked == ["3.11"]
    assert runtime.origin == url.replace("+", "%2B")
    assert runtime.identity() == {
        "request": "cpython@3.11",
        "implementation": "cpython",
        "version": local_runtime_archive.version,
        "source": "download",
        "origin": runtime.origin,
        "archive_sha256": local_runtime_archive.sha256,
        # The served archive was made from a local interpreter, and it says so inside.
        "portable": False,
    }
    assert log == [f"cpython@3.11: downloading {runtime.origin}"]
    assert runtime.archive.read_bytes() == local_runtime_archive.path.read_bytes()
    assert probe(runtime.python_dir)["prefix"] == str(runtime.python_dir)
    assert str(tmp_path) not in json.dumps(runtime.identity())

    served = len(runtime_mirror.requests)
    again = ensure_runtime("cpython@3.11", opts, log)
    assert again == runtime
    assert len(runtime_mirror.requests) == served
    assert len(log) == 1

    # A downloaded runtime never satisfies the `local` policy.
    local = ensure_runtime("cpython@3.11", RuntimeOptions(cache_dir=tmp_path / "cache", policy="local"), log)
    assert local.source == "local" and len(no_local_packing) == 1
    assert len(cache_contents(tmp_path / "cache")) == 2


def test_wrong_sha256_is_refused_and_leaves_nothing(
    runtime_mirror: Mirror,
    local_runtime_archive: RuntimeArchive,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    publish(runtime_mirror, local_runtime_archive)
    fake_table(monkeypatch, local_runtime_archive.version, "0" * 64)
    for policy in ("download", "auto"):  # auto must not fall back on a bad archive
        opts = RuntimeOptions(cache_dir=tmp_path / "cache", policy=policy, mirror=runtime_mirror.url)
        with pytest.raises(VenvStacksError) as err:
            ensure_runtime("cpython@3.11", opts, Log())
        message = str(err.value)
        assert f"expected {'0' * 64}, got {local_runtime_archive.sha256}" in message
        assert "\n" not in message
        assert cache_contents(tmp_path / "cache") == []


def test_download_failure_with_download_policy(
    runtime_mirror: Mirror, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_table(monkeypatch, "3.11.7", "1" * 64, date="19990101")  # not on the mirror: 404
    opts = RuntimeOptions(cache_dir=tmp_path / "cache", policy="download", mirror=runtime_mirror.url)
    with pytest.raises(
        VenvStacksError, match=r"could not download http://127\.0\.0\.1:\d+/19990101/.*HTTP 404"
    ):
        ensure_runtime("cpython@3.11", opts, Log())
    assert cache_contents(tmp_path / "cache") == []


def test_auto_falls_back_to_local_in_one_line(
    runtime_mirror: Mirror,
    no_local_packing: list[Path],
    local_runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    fake_table(monkeypatch, "3.11.7", "1" * 64, date="19990101")
    opts = RuntimeOptions(cache_dir=tmp_path / "cache", policy="auto", mirror=runtime_mirror.url)
    log = Log()
    runtime = ensure_runtime("cpython@3.11", opts, log)
    assert (runtime.source, runtime.portable, runtime.version) == ("local", False, local_runtime.version)
    assert runtime.origin == local_runtime.origin
    fallback = [line for line in log if "falling back" in line]
    assert len(fallback) == 1
    assert "HTTP 404" in fallback[0] and runtime.origin in fallback[0]
    # The cache comes first: the next run neither downloads nor says anything.
    served, said = len(runtime_mirror.requests), len(log)
    assert ensure_runtime("cpython@3.11", opts, log) == runtime
    assert (len(runtime_mirror.requests), len(log)) == (served, said)
    assert len(no_local_packing) == 1


def test_unknown_exact_version_lists_what_exists(local_runtime: Runtime, tmp_path: Path) -> None:
    for policy in ("auto", "local"):
        opts = RuntimeOptions(cache_dir=tmp_path / "cache", policy=policy)
        with pytest.raises(VenvStacksError) as err:
            ensure_runtime("cpython@3.11.99", opts, Log())
        message = str(err.value)
        assert message.startswith("runtime cpython@3.11.99 is not available (")
        assert "\n" not in message
        assert local_runtime.version in message.split("local interpreters:")[1]
        assert ("download table: 3.11." in message) == (policy == "auto")
        assert cache_contents(tmp_path / "cache") == []


def test_the_real_table_is_consulted_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is fetched for a version missing from pbs-installer's table."""
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "no-uv-pythons"))
    opts = RuntimeOptions(cache_dir=tmp_path / "cache", policy="download")
    with pytest.raises(VenvStacksError, match=r"download table: no 3\.2\.x, only .*3\.11") as err:
        ensure_runtime("cpython@3.2", opts, Log())
    assert "local interpreters" not in str(err.value)


# -- explicit archives -------------------------------------------------------------------------


def test_explicit_archive_path(local_runtime_archive: RuntimeArchive, tmp_path: Path) -> None:
    opts = RuntimeOptions(
        cache_dir=tmp_path / "cache",
        policy="download",
        archives={"cpython@3.11": local_runtime_archive.location},
    )
    log = Log()
    runtime = ensure_runtime("cpython@3.11", opts, log)
    assert (runtime.source, runtime.origin) == ("archive", str(local_runtime_archive.path))
    assert (runtime.version, runtime.archive_sha256) == (
        local_runtime_archive.version,
        local_runtime_archive.sha256,
    )
    assert runtime.portable is False  # the archive was made from a local interpreter
    assert ensure_runtime("cpython@3.11", opts, log) == runtime
    assert log == []


def test_explicit_archive_url_and_checks(
    runtime_mirror: Mirror, local_runtime_archive: RuntimeArchive, tmp_path: Path
) -> None:
    url = runtime_mirror.publish(local_runtime_archive.path, "explicit", "my-python.tar.gz")
    sha = local_runtime_archive.sha256
    runtime = ensure_runtime(
        f"cpython@{local_runtime_archive.version}",
        RuntimeOptions(
            cache_dir=tmp_path / "cache",
            archives={f"cpython@{local_runtime_archive.version}": f"{url}#sha256={sha}"},
        ),
        Log(),
    )
    assert (runtime.source, runtime.origin) == ("archive", url)

    wrong = RuntimeOptions(cache_dir=tmp_path / "c2", archives={"cpython@3.11": f"{url}#sha256={'2' * 64}"})
    with pytest.raises(VenvStacksError, match=f"expected {'2' * 64}, got {sha}"):
        ensure_runtime("cpython@3.11", wrong, Log())
    assert cache_contents(tmp_path / "c2") == []


def test_explicit_archive_must_hold_the_requested_version(tmp_path: Path) -> None:
    def build(tar: tarfile.TarFile) -> None:
        _add(tar, "python/include/python3.11/patchlevel.h", data=b'#define PY_VERSION "3.11.7"\n')

    archive = _tar(tmp_path / "cpython-3.11.7.tar.gz", build)
    for request, problem in [("cpython@3.12", "not cpython 3.12"), ("cpython@3.11.8", "not cpython 3.11.8")]:
        opts = RuntimeOptions(
            cache_dir=tmp_path / "cache", archives={request: f"{archive}#sha256={sha256_file(archive)}"}
        )
        with pytest.raises(VenvStacksError, match=f"holds cpython 3.11.7, {problem}"):
            ensure_runtime(request, opts, Log())
        assert cache_contents(tmp_path / "cache") == []


def test_missing_explicit_archive(tmp_path: Path) -> None:
    opts = RuntimeOptions(
        cache_dir=tmp_path / "cache",
        policy="download",
        archives={"cpython@3.11": f"{tmp_path / 'nope.tar.gz'}#sha256={'3' * 64}"},
    )
    with pytest.raises(VenvStacksError, match=r"nope\.tar\.gz does not exist"):
        ensure_runtime("cpython@3.11", opts, Log())


# -- archives, the cache and installing ------------------------------------------------------


def _tar(path: Path, build: Callable[[tarfile.TarFile], None]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        build(tar)
    return path


def _add(
    tar: tarfile.TarFile, name: str, *, link: str | None = None, hard: bool = False, data: bytes = b"hi"
) -> None:
    info = tarfile.TarInfo(name)
    if link is not None:
        info.type, info.linkname = (tarfile.LNKTYPE if hard else tarfile.SYMTYPE), link
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(
    ("name", "link", "hard", "problem"),
    [
        ("python/../evil", None, False, "absolute path or '..'"),
        ("/python/evil", None, False, "absolute path or '..'"),
        ("other/file", None, False, "outside the top-level python/ folder"),
        ("python/lib/x", "/etc/passwd", False, "link to an absolute path"),
        ("python/lib/x", "../../outside", False, "link out of the python/ folder"),
        ("python/lib/x", "python/../../etc/passwd", True, "link out of the python/ folder"),
    ],
)
def test_unsafe_members_are_refused(
    tmp_path: Path, name: str, link: str | None, hard: bool, problem: str
) -> None:
    def build(tar: tarfile.TarFile) -> None:
        _add(tar, "python/bin/python3")
        _add(tar, name, link=link, hard=hard)

    archive = _tar(tmp_path / "evil.tar.gz", build)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(VenvStacksError, match=f"refusing member .*{problem}"):
        unpack_install_only(archive, dest, "evil.tar.gz")
    assert not (tmp_path / "evil").exists() and not (tmp_path / "outside").exists()


def test_safe_links_are_kept(tmp_path: Path) -> None:
    def build(tar: tarfile.TarFile) -> None:
        _add(tar, "python/bin/python3.11")
        _add(tar, "python/bin/python3", link="python3.11")
        _add(tar, "python/bin/python", link="python/bin/python3.11", hard=True)

    dest = tmp_path / "dest"
    dest.mkdir()
    unpack_install_only(_tar(tmp_path / "ok.tar.gz", build), dest, "ok")
    assert os.readlink(dest / "python/bin/python3") == "python3.11"
    assert (dest / "python/bin/python").read_text() == "hi"


def test_bad_explicit_archive_leaves_nothing(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "evil.tar.gz", lambda tar: _add(tar, "python/../evil"))
    opts = RuntimeOptions(
        cache_dir=tmp_path / "cache",
        policy="download",
        archives={"cpython@3.11": f"{archive}#sha256={sha256_file(archive)}"},
    )
    with pytest.raises(VenvStacksError, match="refusing member"):
        ensure_runtime("cpython@3.11", opts, Log())
    assert cache_contents(tmp_path / "cache") == []


def test_stale_temporaries_are_swept(runtime_cache: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(runtime_cache, cache, symlinks=True)
    (cache / ".tmp-cpython-3.11-killed").mkdir()
    (cache / ".tmp-cpython-3.12-busy").mkdir()  # another series: not ours to judge
    ensure_runtime("cpython@3.11", RuntimeOptions(cache_dir=cache, policy="local"), Log())
    assert not (cache / ".tmp-cpython-3.11-killed").exists()
    assert (cache / ".tmp-cpython-3.12-busy").exists()


def test_install_runtime(local_runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "layer"
    install_runtime(local_runtime, dest)
    assert (dest / "bin" / "python3").is_symlink()
    assert oct(dest.stat().st_mode & 0o777) == oct(local_runtime.python_dir.stat().st_mode & 0o777)
    with pytest.raises(VenvStacksError, match="already exists"):
        install_runtime(local_runtime, dest)

    def killed(src: Path, dst: Path, **kwargs: Any) -> None:
        (Path(dst) / "bin").mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "copytree", killed)
    with pytest.raises(KeyboardInterrupt):
        install_runtime(local_runtime, tmp_path / "interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer"]


def test_parallel_gzip_is_plain_and_reproducible() -> None:
    data = os.urandom(1000) * 700  # ~700 kB: several members with a small chunk

    def compress() -> bytes:
        out = io.BytesIO()
        with ParallelGzip(out, 1, chunk=64 * 1024) as gz:
            for i in range(0, len(data), 10_000):
                gz.write(data[i : i + 10_000])
        return out.getvalue()

    first = compress()
    assert first == compress()
    assert gzip.decompress(first) == data
    empty = io.BytesIO()
    with ParallelGzip(empty, 1):
        pass
    assert gzip.decompress(empty.getvalue()) == b""
