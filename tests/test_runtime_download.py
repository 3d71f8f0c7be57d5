"""Runtimes downloaded through a python-build-standalone mirror: download then cache hit, a
wrong sha256 refused, download failures, the `auto` policy falling back to a local interpreter,
and versions that exist nowhere. No network is used: the mirror is an HTTP server on 127.0.0.1
and pbs-installer's download table is faked (or consulted offline)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pbs_installer
import pytest
from pbs_installer import PythonVersion

from tests.support.runtime_checks import Log, cache_contents, probe
from tests.support.runtime_fixtures import Mirror, RuntimeArchive
from venvstacks.errors import VenvStacksError
from venvstacks.runtimes import local as runtime_local
from venvstacks.runtimes.cache import ensure_runtime
from venvstacks.runtimes.options import RuntimeOptions
from venvstacks.runtimes.record import CacheEntry
from venvstacks.runtimes.sources import PBS_RELEASE_BASES

DATE = "20991231"
PBS_NAME = "cpython-{version}+{date}-x86_64-unknown-linux-gnu-install_only.tar.gz"


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
    assert runtime.record.origin == url.replace("+", "%2B")
    assert runtime.record.to_json() == {
        "request": "cpython@3.11",
        "implementation": "cpython",
        "version": local_runtime_archive.version,
        "source": "download",
        "origin": runtime.record.origin,
        "archive_sha256": local_runtime_archive.sha256,
        # The served archive was made from a local interpreter, and it says so inside.
        "portable": False,
    }
    assert log == [f"cpython@3.11: downloading {runtime.record.origin}"]
    assert runtime.archive.read_bytes() == local_runtime_archive.path.read_bytes()
    assert probe(runtime.python_dir)["prefix"] == str(runtime.python_dir)
    assert str(tmp_path) not in json.dumps(runtime.record.to_json())

    served = len(runtime_mirror.requests)
    again = ensure_runtime("cpython@3.11", opts, log)
    assert again == runtime
    assert len(runtime_mirror.requests) == served
    assert len(log) == 1

    # A downloaded runtime never satisfies the `local` policy.
    local = ensure_runtime("cpython@3.11", RuntimeOptions(cache_dir=tmp_path / "cache", policy="local"), log)
    assert local.record.source == "local" and len(no_local_packing) == 1
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
    local_runtime: CacheEntry,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    fake_table(monkeypatch, "3.11.7", "1" * 64, date="19990101")
    opts = RuntimeOptions(cache_dir=tmp_path / "cache", policy="auto", mirror=runtime_mirror.url)
    log = Log()
    runtime = ensure_runtime("cpython@3.11", opts, log)
    assert (runtime.record.source, runtime.record.portable, runtime.record.version) == (
        "local",
        False,
        local_runtime.record.version,
    )
    assert runtime.record.origin == local_runtime.record.origin
    fallback = [line for line in log if "falling back" in line]
    assert len(fallback) == 1
    assert "HTTP 404" in fallback[0] and runtime.record.origin in fallback[0]
    # The cache comes first: the next run neither downloads nor says anything.
    served, said = len(runtime_mirror.requests), len(log)
    assert ensure_runtime("cpython@3.11", opts, log) == runtime
    assert (len(runtime_mirror.requests), len(log)) == (served, said)
    assert len(no_local_packing) == 1


def test_unknown_exact_version_lists_what_exists(local_runtime: CacheEntry, tmp_path: Path) -> None:
    for policy in ("auto", "local"):
        opts = RuntimeOptions(cache_dir=tmp_path / "cache", policy=policy)
        with pytest.raises(VenvStacksError) as err:
            ensure_runtime("cpython@3.11.99", opts, Log())
        message = str(err.value)
        assert message.startswith("runtime cpython@3.11.99: no source could provide it (")
        assert "\n" not in message
        local = message.split("local: ")[1]
        assert local.startswith("no local CPython 3.11.99 found (") and local_runtime.record.version in local
        assert ("download: the table has no 3.11.99, only 3.11." in message) == (policy == "auto")
        assert cache_contents(tmp_path / "cache") == []


def test_the_real_table_is_consulted_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is fetched for a version missing from pbs-installer's table."""
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "no-uv-pythons"))
    opts = RuntimeOptions(cache_dir=tmp_path / "cache", policy="download")
    with pytest.raises(VenvStacksError, match=r"download: the table has no 3\.2\.x, only .*3\.11") as err:
        ensure_runtime("cpython@3.2", opts, Log())
    assert "local:" not in str(err.value)


def test_each_source_says_why_it_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runtime_mirror: Mirror
) -> None:
    """A download that fails and no local CPython: the error gives both reasons, not a table."""
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "no-uv-pythons"))
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    opts = RuntimeOptions(cache_dir=tmp_path / "cache", policy="auto", mirror=runtime_mirror.url + "/empty")
    with pytest.raises(VenvStacksError) as err:
        ensure_runtime("cpython@3.12", opts, Log())
    message = str(err.value)
    assert message.startswith("runtime cpython@3.12: no source could provide it (download: ")
    assert f"(download: could not download {runtime_mirror.url}/empty/" in message and "HTTP 404" in message
    assert runtime_mirror.requests  # the mirror was asked
    assert message.endswith("; local: no local CPython 3.12 found (uv-managed or pyenv; found none))")
