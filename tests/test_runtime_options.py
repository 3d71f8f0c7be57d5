"""Runtime requests and options: parsing `cpython@X.Y[.Z]` requests, `RuntimeOptions` from the
VENVSTACKS_RUNTIME_* environment variables (and the overrides given on the command line), and
entries naming explicit runtime archives."""

from __future__ import annotations

from pathlib import Path

import pytest

from venvstacks.errors import VenvStacksError
from venvstacks.runtimes.options import RuntimeOptions, parse_archive_entry, parse_request


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
        ({"VENVSTACKS_RUNTIME_ARCHIVES": "cpython@3.11"}, r"write it as \[PLATFORM:\]REQ=PATH_OR_URL"),
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
