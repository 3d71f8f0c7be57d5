"""`venvstacks verify DEPLOYED_DIR`: each kind of change to a deployed layer is reported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.layers import RUNTIME, SITE, publish_all, sample_stack
from venvstacks.archive.formats import ArchiveFormat
from venvstacks.cli import main
from venvstacks.layout import FILES_MANIFEST
from venvstacks.ship.deploy import deploy
from venvstacks.ship.manifest import manifest_sha256
from venvstacks.ship.publish import PublishOptions
from venvstacks.ship.verify import verify_deployed

FW, APP = "framework-fw@2", "app-hello"


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Published once for the module: tests change what they deploy from it, never it."""
    root = tmp_path_factory.mktemp("verify")
    stack = sample_stack(tmp_path_factory, root / "_build")
    out = root / "published"
    publish_all(stack.layers(), PublishOptions(out, "linux_x86_64", ArchiveFormat.TAR_GZ))
    return out


@pytest.fixture(scope="module")
def deployed_once(published: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("deployed") / "target"
    deploy(published, target, log=lambda _: None)
    return target


@pytest.fixture
def deployed(deployed_once: Path, tmp_path: Path) -> Path:
    """A copy of the module's deployment for a test to change: deploying (byte-compiling the
    runtime) costs ~0.7 s, copying ~50 ms, and verify checks what is in the folders, not where
    they are."""
    shutil.copytree(deployed_once, tmp_path / "target", symlinks=True)
    return tmp_path / "target"


def lines(deployed: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = main(["verify", str(deployed), *args])
    return code, capsys.readouterr().out.splitlines()


def test_a_fresh_deploy_verifies(deployed_once: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = lines(deployed_once, capsys)
    assert code == 0
    assert [line.split()[:2] for line in out] == [["ok", APP], ["ok", RUNTIME], ["ok", FW]]
    assert all("entries)" in line for line in out)  # checked against the deploy record


def _tamper(layer: Path) -> str:
    (layer / SITE / "fwpkg" / "__init__.py").write_text("VALUE = 'evil'\n")
    return f"{SITE}/fwpkg/__init__.py: content differs"


def _tamper_keeping_size(layer: Path) -> str:
    # Same size: only the sha256 tells (a file of another size differs whatever it holds).
    path = layer / SITE / "fwpkg" / "__init__.py"
    path.write_bytes(bytes(b ^ 1 for b in path.read_bytes()))
    return f"{SITE}/fwpkg/__init__.py: content differs"


def _delete(layer: Path) -> str:
    (layer / SITE / "fwpkg" / "__init__.py").unlink()
    return f"{SITE}/fwpkg/__init__.py: missing"


def _add(layer: Path) -> str:
    (layer / SITE / "extra.pth").write_text("import os\n")
    return f"{SITE}/extra.pth: not published (a file (not executable))"


def _make_executable(layer: Path) -> str:
    (layer / SITE / "fwpkg" / "__init__.py").chmod(0o755)
    return f"{SITE}/fwpkg/__init__.py: a file (executable), published as a file (not executable)"


def _fifo(layer: Path) -> str:
    os.mkfifo(layer / SITE / "pipe")
    return f"{SITE}/pipe: not published (a device, fifo or socket)"


@pytest.mark.parametrize("change", [_tamper, _tamper_keeping_size, _delete, _add, _make_executable, _fifo])
def test_changed_files_are_reported(
    deployed: Path, capsys: pytest.CaptureFixture[str], change: Callable[[Path], str]
) -> None:
    expected = change(deployed / FW)
    code, out = lines(deployed, capsys)
    assert code == 1
    assert out[2] == f"FAIL  {FW}: 1 difference: {expected}"
    assert out[0].startswith(f"ok    {APP}") and out[1].startswith(f"ok    {RUNTIME}")


def test_a_byte_changed_in_a_big_file_is_reported(deployed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The runtime's biggest file (hashed on the thread pool: manifest._POOLED_BYTES)."""
    runtime = deployed / RUNTIME
    files = [p for p in runtime.rglob("*") if p.is_file() and not p.is_symlink() and p.suffix != ".pyc"]
    big = max(files, key=lambda p: p.stat().st_size)
    assert big.stat().st_size >= 256 * 1024
    with big.open("r+b") as f:
        f.seek(big.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 1]))
    code, out = lines(deployed, capsys)
    assert code == 1
    assert out[1] == f"FAIL  {RUNTIME}: 1 difference: {big.relative_to(runtime).as_posix()}: content differs"


def test_a_retargeted_link_is_reported(deployed: Path) -> None:
    link = deployed / RUNTIME / "bin" / "python3"
    published_target = os.readlink(link)
    link.unlink()
    link.symlink_to("../../elsewhere/python")
    (report,) = [r for r in verify_deployed(deployed) if r.name == RUNTIME]
    assert report.problems == (
        f"bin/python3: a link to '../../elsewhere/python', published as a link to {published_target!r}",
    )


def test_what_postinstall_writes_is_accepted_but_nothing_else(deployed: Path) -> None:
    app = deployed / APP
    assert (app / "pyvenv.cfg").is_file() and (app / SITE / "sitecustomize.py").is_file()
    assert list(app.rglob("*.pyc"))  # compiled, not published: still ok
    (app / SITE / "__pycache__" / "evil.py").write_text("")  # not a .pyc
    (report,) = [r for r in verify_deployed(deployed) if r.name == APP]
    assert report.problems == (f"{SITE}/__pycache__/evil.py: not published (a file (not executable))",)


def test_a_manifest_rewritten_to_match_a_change_is_caught_by_the_record(deployed: Path) -> None:
    layer = deployed / FW
    _tamper(layer)
    manifest = json.loads((layer / FILES_MANIFEST).read_text())
    manifest["entries"][f"{SITE}/fwpkg/__init__.py"]["sha256"] = "0" * 64
    (layer / FILES_MANIFEST).write_text(json.dumps(manifest))
    (report,) = [r for r in verify_deployed(deployed) if r.name == FW]
    assert (
        report.problems[0]
        == f"{FILES_MANIFEST.as_posix()}: not the one in the deploy record .venvstacks-deploy.json"
    )


def test_published_metadata_anchors_the_manifests(published: Path, tmp_path: Path) -> None:
    # Unpacked by hand: no deploy record; the publication's metadata names each manifest.
    target = tmp_path / "by-hand"
    target.mkdir()
    for name in (RUNTIME, FW, APP):
        with tarfile.open(published / f"{name}.tar.gz") as tf:
            tf.extractall(target, filter="tar")
    python = target / RUNTIME / "bin" / "python3"
    for name in (RUNTIME, FW, APP):
        subprocess.run([python, "-I", target / name / "postinstall.py"], check=True)
    alone = verify_deployed(target)
    assert all(r.ok and r.note.startswith("against its own manifest") for r in alone)
    anchored = verify_deployed(target, published)
    assert all(r.ok and not r.note for r in anchored)
    meta = json.loads((published / "__venvstacks__" / "venvstacks.json").read_text())
    text = (target / FW / FILES_MANIFEST).read_text()
    assert meta["layers"]["frameworks"][0]["files_manifest_sha256"] == manifest_sha256(text)


def test_a_missing_layer_is_reported(deployed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.rename(deployed / APP, deployed / ".gone")
    code, out = lines(deployed, capsys)
    assert code == 1
    record = "the deploy record .venvstacks-deploy.json"
    assert out[0] == f"FAIL  {APP}: 1 difference: layer folder missing (listed in {record})"


@pytest.mark.parametrize("change", [_tamper, _tamper_keeping_size, _delete, _add, _make_executable, _fifo])
def test_deploy_again_repairs_what_verify_reports(
    published: Path, deployed: Path, capsys: pytest.CaptureFixture[str], change: Callable[[Path], str]
) -> None:
    expected = change(deployed / FW)
    code, out = lines(deployed, capsys)
    assert code == 1
    assert out[-1] == (
        f"to repair: venvstacks deploy {published} {deployed} "
        "(redeploys the layers that differ; docs: `venvstacks docs deployment`)"
    )
    said: list[str] = []
    result = deploy(published, deployed, log=said.append)
    assert result.repaired == result.deployed == (FW,)
    assert f"Redeploying {FW}: it differs from what was published: {expected}" in said
    code, out = lines(deployed, capsys)
    assert code == 0, out


def test_deploy_no_check_trusts_the_record(published: Path, deployed: Path) -> None:
    _tamper(deployed / FW)
    result = deploy(published, deployed, log=lambda _: None, check=False)
    assert result.deployed == result.repaired == ()
    assert "evil" in (deployed / FW / SITE / "fwpkg" / "__init__.py").read_text()


def test_deploy_command_says_what_it_repaired(
    published: Path, deployed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _delete(deployed / FW)
    assert main(["deploy", str(published), str(deployed)]) == 0
    captured = capsys.readouterr()
    assert f"deployed 1 layer(s) (1 repaired), 2 unchanged, into {deployed}" in captured.out
    assert f"Redeploying {FW}: it differs from what was published: {SITE}/fwpkg/__init__.py: missing" in (
        captured.err
    )
    assert main(["deploy", str(published), str(deployed), "--no-check"]) == 0
    assert "deployed 0 layer(s), 3 unchanged" in capsys.readouterr().out


def test_v_and_q_on_verify_and_deploy(
    published: Path, deployed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for change in (_tamper, _add, _make_executable):
        change(deployed / FW)
    (deployed / FW / SITE / "more.pth").write_text("")
    (deployed / FW / SITE / "zz.pth").write_text("")  # four differences: three shown by default
    code, out = lines(deployed, capsys, "-q")
    assert code == 1 and [line.split()[:2] for line in out[:-1]] == [["FAIL", f"{FW}:"]]
    assert out[0].endswith("; and 1 more")
    code, out = lines(deployed, capsys, "-v")
    assert code == 1 and len(out) == 4 and "zz.pth" in out[2] and "and 1 more" not in out[2]
    assert main(["-q", "deploy", str(published), str(deployed)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # no "Redeploying ..." or "Deploying ..." lines
    assert "deployed 1 layer(s) (1 repaired)" in captured.out
