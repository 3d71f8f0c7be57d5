"""A runtime's standard library compiles while its archive unpacks: the same deployed tree,
and a failure or refusal late in the unpack leaves no worker and no staging folder."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.support.layers import RUNTIME, republish_app_archive
from tests.test_compilepool import _running
from tests.test_deploy_parallel import published, published_once, snapshot  # noqa: F401
from venvstacks.errors import VenvStacksError
from venvstacks.ship import earlycompile, finish
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
    escape = tarfile.TarInfo(f"{RUNTIME}/escape")  # refused once every file is written
    escape.type, escape.linkname = tarfile.SYMTYPE, "../../outside"
    _rewrite_runtime(published, tmp_path, escape)
    target = tmp_path / "target"
    with pytest.raises(VenvStacksError, match=f"symlink {RUNTIME}/escape points outside"):
        deploy(published, target, log=lambda _: None)
    assert early_starts == [RUNTIME]  # its workers were compiling when it was refused
    assert [p.name for p in target.iterdir() if ".partial-" in p.name] == []
    assert _running(str(target)) == []


def _rewrite_runtime(folder: Path, tmp_path: Path, last: tarfile.TarInfo, data: bytes = b"") -> None:
    """The runtime's archive in ``folder``, its members but one named as ``last``, then
    ``last`` (holding ``data``) at its end."""
    archive = folder / f"{RUNTIME}.tar.xz"
    rewritten = tmp_path / "rewritten.tar.xz"
    with tarfile.open(archive) as src, tarfile.open(rewritten, "w:xz", preset=0) as dst:
        for member in src:
            if member.name != last.name:
                dst.addfile(member, src.extractfile(member) if member.isreg() else None)
        last.size = len(data)
        dst.addfile(last, io.BytesIO(data))
    rewritten.replace(archive)
    republish_app_archive(folder, archive, kind="runtimes")


def test_a_runtime_whose_postinstall_is_not_ours_compiles_by_itself(
    published: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    early_starts: list[str],
) -> None:
    # Its postinstall.py (ours with a line added, at the archive's end) is not known until
    # the unpack is done: what was compiled early goes, and the script compiles the layer.
    script = (Path(finish.__file__).parent.parent / "_injected" / "postinstall.py").read_bytes()
    marker = tmp_path / "ran"
    # It writes checked-hash pycs (SOURCE_DATE_EPOCH): the early ones, timestamp pycs
    # which its compileall would take as up to date, must be gone before it runs.
    prefix = f"import os; open({str(marker)!r}, 'w').close(); os.environ['SOURCE_DATE_EPOCH'] = '1'\n"
    own = prefix.encode() + script
    info = tarfile.TarInfo(f"{RUNTIME}/postinstall.py")
    info.mode = 0o644
    _rewrite_runtime(published, tmp_path, info, own)
    target = tmp_path / "target"
    deploy(published, target, log=lambda _: None)
    assert early_starts == [RUNTIME] and marker.exists()
    by_itself = snapshot(target)
    pycs = list((target / RUNTIME / "lib").rglob("*.pyc"))
    # Checked-hash but for the modules its own Python imported (and so cached) before.
    assert len([p for p in pycs if p.read_bytes()[4] == 3]) > 10
    shutil.rmtree(target)
    monkeypatch.setattr(earlycompile.EarlyCompile, "of", classmethod(lambda cls, *args: None))
    deploy(published, target, log=lambda _: None)
    assert snapshot(target) == by_itself
