"""A runtime's standard library compiles while its archive unpacks: the same deployed tree,
and a failure or refusal late in the unpack leaves no worker and no staging folder."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from tests.support.layers import RUNTIME, republish_app_archive
from tests.test_compilepool import _running
from tests.test_deploy_parallel import published, published_once, snapshot  # noqa: F401
from venvstacks.errors import VenvStacksError
from venvstacks.ship import earlycompile
from venvstacks.ship.compilepool import CompilePools, EarlyJob
from venvstacks.ship.deploy import deploy


@pytest.fixture
def early_starts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The layers whose compiling started while they unpacked."""
    started: list[str] = []
    real = CompilePools.early

    def early(self: CompilePools, python: Path, home: Path, *, layer: str) -> EarlyJob:
        started.append(layer)
        return real(self, python, home, layer=layer)

    monkeypatch.setattr(CompilePools, "early", early)
    return started


def test_compiling_while_unpacking_deploys_the_same_tree(
    published: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    early_starts: list[str],
) -> None:
    target = tmp_path / "target"
    deploy(published, target, log=lambda _: None)
    assert early_starts == [RUNTIME]
    early = snapshot(target)
    pycs = [rel for rel in early if rel.startswith(f"{RUNTIME}/lib/") and rel.endswith(".pyc")]
    assert len(pycs) > 50
    shutil.rmtree(target)
    monkeypatch.setattr(earlycompile.EarlyCompile, "of", classmethod(lambda cls, *args: None))
    deploy(published, target, log=lambda _: None)
    assert early_starts == [RUNTIME]  # not again
    assert snapshot(target) == early


def test_a_runtime_refused_at_its_end_stops_its_workers_and_leaves_nothing(
    published: Path,  # noqa: F811
    tmp_path: Path,
    early_starts: list[str],
) -> None:
    archive = published / f"{RUNTIME}.tar.xz"
    rewritten = tmp_path / "rewritten.tar.xz"
    with tarfile.open(archive) as src, tarfile.open(rewritten, "w:xz", preset=0) as dst:
        for member in src:
            dst.addfile(member, src.extractfile(member) if member.isreg() else None)
        escape = tarfile.TarInfo(f"{RUNTIME}/escape")  # refused once every file is written
        escape.type, escape.linkname = tarfile.SYMTYPE, "../../outside"
        dst.addfile(escape)
    rewritten.replace(archive)
    republish_app_archive(published, archive, kind="runtimes")
    target = tmp_path / "target"
    with pytest.raises(VenvStacksError, match=f"symlink {RUNTIME}/escape points outside"):
        deploy(published, target, log=lambda _: None)
    assert early_starts == [RUNTIME]  # its workers were compiling when it was refused
    assert [p.name for p in target.iterdir() if ".partial-" in p.name] == []
    assert _running(str(target)) == []
