"""Parallel deploy leaves exactly what a one-layer-at-a-time deploy and the by-hand recipe leave."""

from __future__ import annotations

import functools
import hashlib
import io
import marshal
import os
import re
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.layers import (
    RUNTIME,
    SampleStack,
    publish_all,
    republish_app_archive,
    run_app,
    sample_stack,
)
from venvstacks.archive import writer
from venvstacks.archive.blockstream import xz_writer
from venvstacks.archive.formats import ArchiveFormat
from venvstacks.archive.xzblocks import split_streams
from venvstacks.errors import VenvStacksError
from venvstacks.ship import finish
from venvstacks.ship.deploy import deploy
from venvstacks.ship.deploystate import STATE_FILE
from venvstacks.ship.publish import PublishOptions

ORDER = (RUNTIME, "framework-fw@2", "app-hello")


@pytest.fixture(scope="module")
def published_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("parallel")
    stack: SampleStack = sample_stack(tmp_path_factory, root / "_build")
    with pytest.MonkeyPatch.context() as patch:
        # Small blocks, so even these small layers are archives of many xz streams.
        patch.setattr(writer, "xz_writer", functools.partial(xz_writer, block_size=64 * 1024))
        publish_all(stack.layers(), PublishOptions(root / "published", "linux_x86_64", ArchiveFormat.TAR_XZ))
    return root / "published"


@pytest.fixture
def published(published_once: Path, tmp_path: Path) -> Path:
    """A copy for a test to change (publishing xz is most of the setup)."""
    return shutil.copytree(published_once, tmp_path / "published")


def snapshot(root: Path, staging_named: bool = False) -> dict[str, tuple[str, object]]:
    """Every path below root: (mode, content hash or link target), deploy bookkeeping left out.

    ``staging_named``: a pyc's ``co_filename`` naming a layer's staging folder counts as
    naming the layer's folder (a postinstall.py run by itself compiles where it runs)."""
    found: dict[str, tuple[str, object]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(STATE_FILE):
            continue
        st = path.lstat()
        what: object
        if stat.S_ISLNK(st.st_mode):
            what = "-> " + os.readlink(path)
        elif stat.S_ISDIR(st.st_mode):
            what = "dir"
        elif path.suffix == ".pyc":
            what = _compiled(path.read_bytes(), staging_named)
        else:
            what = hashlib.sha256(path.read_bytes()).hexdigest()
        found[rel] = (oct(stat.S_IMODE(st.st_mode)), what)
    return found


def _compiled(data: bytes, staging_named: bool) -> tuple[bytes, object, str]:
    # CPython's marshal marks objects by their refcounts in the compiling process, so the
    # bytes of a .pyc depend on which worker of the pool compiled it; the code object it
    # holds does not, and code objects compare by value. They do not compare co_filename:
    # it is compared by itself (a layer compiled in its staging folder must name its files
    # where they are deployed, as a compile in place does). The header's source mtime is
    # left out too: sitecustomize.py is written at deploy time.
    code = marshal.loads(data[16:])
    name = code.co_filename
    if staging_named:
        name = re.sub(r"/\.([^/]+)\.partial-[^/]+/", r"/\1/", name)
    return data[:8] + data[12:16], code, name


def recipe(published: Path, target: Path) -> None:
    """The existing venvstacks' documented way: tar -xJf each archive, then each postinstall."""
    target.mkdir()
    for layer in ORDER:
        subprocess.run(["tar", "-C", target, "-xJf", published / f"{layer}.tar.xz"], check=True)
    for layer in ORDER:
        python = target / RUNTIME / "bin" / "python3"
        subprocess.run(
            ["env", "-i", python, "-X", "utf8", "-I", target / layer / "postinstall.py"], check=True
        )


def test_parallel_serial_and_recipe_deploys_are_identical(published: Path, tmp_path: Path) -> None:
    assert len(split_streams(published / f"{RUNTIME}.tar.xz")) > 2  # the parallel decoder's case
    target = tmp_path / "target"  # one path for all three: postinstall writes it into files

    def deployed_by(how: Callable[[], object]) -> dict[str, tuple[str, object]]:
        shutil.rmtree(target, ignore_errors=True)
        how()
        return snapshot(target)

    parallel = deployed_by(lambda: deploy(published, target, log=lambda _: None, jobs=3))
    assert run_app(target / "app-hello")["values"] == ["framework", "pth", "runtime", "support"]
    assert any(rel.endswith(".pyc") for rel in parallel)  # postinstall did byte-compile
    assert parallel == deployed_by(lambda: deploy(published, target, log=lambda _: None, jobs=1))
    assert parallel == deployed_by(lambda: recipe(published, target))


def test_a_hostile_archive_of_many_xz_streams_is_refused(published: Path, tmp_path: Path) -> None:
    archive = published / "app-hello.tar.xz"
    with (
        archive.open("wb") as raw,
        xz_writer(raw, block_size=4096) as xz,
        tarfile.open(fileobj=xz, mode="w|") as tf,
    ):
        top = tarfile.TarInfo("app-hello")
        top.type = tarfile.DIRTYPE
        tf.addfile(top)
        filler = tarfile.TarInfo("app-hello/filler")
        filler.size = 64 * 1024  # pushes the bad member into a later stream
        tf.addfile(filler, io.BytesIO(os.urandom(filler.size)))
        link = tarfile.TarInfo("app-hello/escape")
        link.type, link.linkname = tarfile.SYMTYPE, "../../outside"
        tf.addfile(link)
    assert len(split_streams(archive)) > 2
    republish_app_archive(published, archive)
    with pytest.raises(VenvStacksError, match="symlink app-hello/escape points outside"):
        deploy(published, tmp_path / "target", log=lambda _: None)
    assert sorted(os.listdir(tmp_path / "target")) == sorted([*ORDER[:2], STATE_FILE, f"{STATE_FILE}.lock"])


def test_the_windows_way_each_postinstall_by_itself_deploys_the_same(
    published: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows deploys run every layer's postinstall.py in a process of its own (its
    sitecustomize.py depends on the layers already in place); simulated here on POSIX.
    Its compileall runs in the layer's staging folder, and its pycs name that folder."""
    target = tmp_path / "target"
    deploy(published, target, log=lambda _: None)
    in_process = snapshot(target, staging_named=True)
    shutil.rmtree(target)
    monkeypatch.setattr(finish, "IN_PROCESS", False)
    deploy(published, target, log=lambda _: None)
    assert snapshot(target, staging_named=True) == in_process
