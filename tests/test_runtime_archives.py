"""Runtime archives: explicit ones (`--runtime-archive`, by path or by URL) and what happens to
any archive: unpacking refuses unsafe members, a bad archive leaves nothing in the cache, stale
temporaries are swept, `install_runtime` copies a runtime into a layer, and the packer's gzip is
plain and reproducible. No network is used: URLs are served by an HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import errno
import io
import os
import re
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from doit.exceptions import TaskFailed

from tests.support.runtime_checks import Log, cache_contents
from tests.support.runtime_fixtures import Mirror, RuntimeArchive
from venvstacks.engine.settings import Settings
from venvstacks.engine.tasks import act
from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import sha256_file
from venvstacks.runtimes.cache import ensure_runtime, install_runtime
from venvstacks.runtimes.options import RuntimeOptions
from venvstacks.runtimes.record import CacheEntry
from venvstacks.runtimes.sources import unpack_install_only

# -- explicit archives -------------------------------------------------------------------------


def test_explicit_archive_path(local_runtime_archive: RuntimeArchive, tmp_path: Path) -> None:
    opts = RuntimeOptions(
        cache_dir=tmp_path / "cache",
        policy="download",
        archives={"cpython@3.11": local_runtime_archive.location},
    )
    log = Log()
    runtime = ensure_runtime("cpython@3.11", opts, log)
    assert (runtime.record.source, runtime.record.origin) == ("archive", str(local_runtime_archive.path))
    assert (runtime.record.version, runtime.record.archive_sha256) == (
        local_runtime_archive.version,
        local_runtime_archive.sha256,
    )
    assert runtime.record.portable is False  # the archive was made from a local interpreter
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
    assert (runtime.record.source, runtime.record.origin) == ("archive", url)

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
        ("python/../evil", None, False, "has '..'"),
        ("/python/evil", None, False, "has an absolute or invalid path"),
        ("other/file", None, False, "lies outside the expected folder python/"),
        ("python/lib/x", "/etc/passwd", False, "symlink python/lib/x points outside python/"),
        ("python/lib/x", "../../outside", False, "symlink python/lib/x points outside python/"),
        ("python/lib/x", "python/../../etc/passwd", True, "has '..'"),
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
    with pytest.raises(VenvStacksError, match=f"refusing to unpack evil.tar.gz: .*{re.escape(problem)}"):
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
    with pytest.raises(VenvStacksError, match="refusing to unpack"):
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


def test_install_runtime(local_runtime: CacheEntry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "layer"
    install_runtime(local_runtime, dest)
    assert (dest / "bin" / "python3").is_symlink()
    assert oct(dest.stat().st_mode & 0o777) == oct(local_runtime.python_dir.stat().st_mode & 0o777)
    with pytest.raises(VenvStacksError, match="already exists"):
        install_runtime(local_runtime, dest)
    _check_shared_with_cache(local_runtime.python_dir, dest)

    def killed(src: Path, dst: Path, **kwargs: Any) -> None:
        (Path(dst) / "bin").mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "copytree", killed)
    with pytest.raises(KeyboardInterrupt):
        install_runtime(local_runtime, tmp_path / "interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer"]


FULL_DISK_HINT = "free some space there and run again (nothing half-written is kept)"


def _act_line(step: Callable[[], None]) -> str:
    """What a task running `step` fails with, as doit prints it (a traceback fails the test)."""
    failure = act(lambda settings, name: step(), cast(Settings, None), "cpython-3.11")
    assert isinstance(failure, TaskFailed)
    return str(failure.message)


def test_a_full_disk_while_installing_a_runtime_is_one_line_naming_the_folder(
    local_runtime: CacheEntry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, copied = shutil.copyfile, list[str]()

    def fills_up(src: str, dst: str, **kwargs: Any) -> str:
        if len(copied) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")  # as sendfile says it: no path
        copied.append(dst)
        return real(src, dst, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", fills_up)
    dest = tmp_path / "_build" / "cpython-3.11"
    line = _act_line(lambda: install_runtime(local_runtime, dest))
    assert line == f"{dest}: No space left on device; {FULL_DISK_HINT}"
    assert len(copied) == 3  # it stopped there, instead of trying (and listing) every other file
    assert list(dest.parent.iterdir()) == []


def test_a_folder_that_cannot_be_made_while_installing_a_runtime_is_one_line(
    local_runtime: CacheEntry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.makedirs

    def full(name: str, *args: Any, **kwargs: Any) -> None:
        if not os.path.isdir(name):
            raise OSError(errno.ENOSPC, "No space left on device", name)
        real(name, *args, **kwargs)

    monkeypatch.setattr(os, "makedirs", full)
    dest = tmp_path / "_build" / "cpython-3.11"
    line = _act_line(lambda: install_runtime(local_runtime, dest))
    assert line == f"{dest}: No space left on device; {FULL_DISK_HINT}"
    assert list(dest.parent.iterdir()) == []


def _check_shared_with_cache(cached: Path, layer: Path) -> None:
    """The standard library is hard-linked from the cache; nothing else is, so what a build
    writes into the layer's bin/, lib/libpython* or site-packages never reaches the cache."""
    shared: set[Path] = set()
    copied: set[Path] = set()
    for path in layer.rglob("*"):
        if path.is_file() and not path.is_symlink():
            rel = path.relative_to(layer)
            same = os.path.samefile(path, cached / rel)
            (shared if same else copied).add(rel)
            assert path.stat().st_mode == (cached / rel).stat().st_mode, rel
    xy = next(p.name for p in (layer / "lib").iterdir() if p.name.startswith("python3."))
    assert Path("lib", xy, "os.py") in shared
    assert all(p.parts[:2] == ("lib", xy) and p.parts[2] != "site-packages" for p in shared)
    assert copied and all(p.parts[:2] != ("lib", xy) or p.parts[2] == "site-packages" for p in copied)
    some_copied = layer / sorted(copied)[0]
    before = (cached / some_copied.relative_to(layer)).read_bytes()
    some_copied.write_bytes(b"written in the build folder")
    assert (cached / some_copied.relative_to(layer)).read_bytes() == before
