"""`publish --bytecode`: reproducible unchecked-hash pycs in the archives, which deploy uses
as they are (postinstall compiles nothing more), verify covers and moving keeps valid."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from doit.tools import config_changed

from tests.support.layers import RUNTIME, SITE, SampleStack, publish_all, run_app, sample_stack
from tests.support.stacks import Stack
from venvstacks.archive.formats import ArchiveFormat
from venvstacks.engine import tasks
from venvstacks.engine.settings import Settings
from venvstacks.errors import VenvStacksError
from venvstacks.layerconfig import LayerConfig
from venvstacks.layout import POSTINSTALL_BYTECODE, POSTINSTALL_SCRIPT, USUAL_POSTINSTALL, OutputOptions
from venvstacks.runtimes.options import RuntimeOptions
from venvstacks.ship.bytecode import compiler_for
from venvstacks.ship.deploy import deploy
from venvstacks.ship.manifest import check_deployed
from venvstacks.ship.publish import PublishOptions
from venvstacks.stack.spec import load_stack

APP, FW = "app-hello", "framework-fw@2"
LAYERS = (RUNTIME, FW, APP)
BYTECODE_FIELD = "bytecode_included"  # the metadata field saying the archive holds pycs
UNCHECKED_HASH = (1).to_bytes(4, "little")  # PEP 552 flags: hash-based, not checked


def _publish(stack: SampleStack, out: Path, bytecode: bool) -> Path:
    publish_all(stack.layers(), PublishOptions(out, "linux_x86_64", ArchiveFormat.TAR_GZ, bytecode=bytecode))
    return out


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bytecode")
    return _publish(sample_stack(tmp_path_factory, root / "_build"), root / "published", bytecode=True)


def _pycs(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.name.endswith(".pyc")}  # type: ignore[union-attr]


def _layer_meta(published: Path, layer: str) -> dict[str, Any]:
    data = json.loads((published / "__venvstacks__" / "venvstacks.json").read_text())
    return next(m for group in data["layers"].values() for m in group if m["install_target"] == layer)


def _on_disk_pycs(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.pyc"))
    }


def test_two_fresh_publishes_write_the_same_bytes(
    published: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    again = _publish(sample_stack(tmp_path_factory, tmp_path / "_build"), tmp_path / "again", bytecode=True)
    for layer in LAYERS:
        name = f"{layer}.tar.gz"
        assert (again / name).read_bytes() == (published / name).read_bytes(), layer
        assert _layer_meta(published, layer)[BYTECODE_FIELD] is True
    pycs = _pycs(published / f"{APP}.tar.gz")
    tag = sys.implementation.cache_tag
    assert f"{APP}/{SITE}/__pycache__/hello_app.{tag}.pyc" in pycs
    assert all(data[4:8] == UNCHECKED_HASH for data in pycs.values())
    with tarfile.open(published / f"{APP}.tar.gz") as tar:
        member = tar.extractfile(f"{APP}/postinstall.py")
        usual = tar.extractfile(f"{APP}/{USUAL_POSTINSTALL}")
        assert member is not None and usual is not None
        # postinstall.py runs the usual script, which keeps its bytes (default archives do too)
        assert member.read() == POSTINSTALL_BYTECODE.read_bytes()
        assert usual.read() == POSTINSTALL_SCRIPT.read_bytes()
    for layer in LAYERS:  # every library module ships compiled, the runtime's stdlib too
        with tarfile.open(published / f"{layer}.tar.gz") as tar:
            sources = [m.name for m in tar if m.name.endswith(".py") and m.name.startswith(f"{layer}/lib/")]
        assert sources and len(_pycs(published / f"{layer}.tar.gz")) == len(sources), layer


def test_without_the_option_nothing_changes(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    out = _publish(sample_stack(tmp_path_factory, tmp_path / "_build"), tmp_path / "plain", bytecode=False)
    for layer in LAYERS:
        assert _pycs(out / f"{layer}.tar.gz") == {}
        assert BYTECODE_FIELD not in _layer_meta(out, layer)
        with tarfile.open(out / f"{layer}.tar.gz") as tar:
            member = tar.extractfile(f"{layer}/postinstall.py")
            assert member is not None and member.read() == POSTINSTALL_SCRIPT.read_bytes()
            assert f"{layer}/{USUAL_POSTINSTALL}" not in tar.getnames()


def test_the_option_republishes(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    stack = sample_stack(tmp_path_factory, tmp_path / "_build")
    out = _publish(stack, tmp_path / "out", bytecode=False)
    before = (out / f"{APP}.tar.gz").read_bytes()
    _publish(stack, out, bytecode=True)
    assert (out / f"{APP}.tar.gz").read_bytes() != before
    assert _layer_meta(out, APP)["archive_build"] == 2


def test_deployed_layers_import_the_shipped_pycs_and_survive_a_move(published: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    deploy(published, target, log=lambda _line: None)
    shipped = {layer: _on_disk_pycs(target / layer) for layer in LAYERS}
    for layer in LAYERS:
        # Every pyc on disk is a shipped one, unchanged: postinstall compiled nothing.
        problems, compared = check_deployed(target / layer, None, "test")
        assert problems == [] and compared > len(shipped[layer])
        archived = {name.removeprefix(layer + "/") for name in _pycs(published / f"{layer}.tar.gz")}
        # sitecustomize.py is postinstall's own, so is its pyc; every other pyc shipped.
        written = {p for p in shipped[layer] if "/sitecustomize." in p}
        assert set(shipped[layer]) - written == archived
        assert len(written) == (0 if layer == RUNTIME else 1)
    cached = _cached(target / APP)
    assert cached == f"{target}/{APP}/{SITE}/__pycache__/hello_app.{sys.implementation.cache_tag}.pyc"
    moved = tmp_path / "moved"
    target.rename(moved)
    for layer in LAYERS:
        cmd = ["env", "-i", f"{moved}/{RUNTIME}/bin/python3", f"{moved}/{layer}/postinstall.py"]
        subprocess.run(cmd, check=True, cwd="/")
    assert run_app(moved / APP)["values"] == ["framework", "pth", "runtime", "support"]
    assert _cached(moved / APP).startswith(str(moved))
    # Neither postinstall nor the imports wrote or rewrote a shipped pyc (sitecustomize.py
    # names the new place, so its own pyc is new).
    for layer in LAYERS:
        assert _without_sitecustomize(_on_disk_pycs(moved / layer)) == _without_sitecustomize(shipped[layer])


def _without_sitecustomize(pycs: dict[str, str]) -> dict[str, str]:
    return {path: sha for path, sha in pycs.items() if "/sitecustomize." not in path}


def _cached(app: Path) -> str:
    code = "import hello_app, sys; print(hello_app.__cached__)"
    cmd = ["env", "-i", str(app / "bin" / "python"), "-c", code]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[
        -1
    ]  # after its output


def test_verify_and_deploy_see_a_changed_shipped_pyc(published: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    deploy(published, target, log=lambda _line: None)
    pyc = next((target / APP / SITE / "__pycache__").glob("hello_app.*.pyc"))
    pyc.write_bytes(pyc.read_bytes() + b"\0")
    problems, _ = check_deployed(target / APP, None, "test")
    assert problems == [f"{pyc.relative_to(target / APP)}: content differs"]
    lines: list[str] = []
    deploy(published, target, log=lines.append)
    assert check_deployed(target / APP, None, "test")[0] == []


def test_postinstall_compiles_only_what_has_no_pyc(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "shipped.py").write_text("A = 1\n")
    (lib / "local.py").write_text("B = 2\n")
    import py_compile

    shipped = py_compile.compile(
        str(lib / "shipped.py"), doraise=True, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH
    )
    assert shipped is not None
    before = Path(shipped).read_bytes()
    # As the shipped postinstall.py runs it in the layer's own Python (a child process)
    child = "import sys; p = sys.argv.pop(1); "
    child += "exec(compile(open(p).read(), p, 'exec'), {'__name__': 'compile_child'})"
    cmd = [sys.executable, "-I", "-c", child, str(POSTINSTALL_BYTECODE), str(lib)]
    subprocess.run(cmd, check=True)
    assert Path(shipped).read_bytes() == before  # compile_dir would have rewritten it
    assert (lib / "__pycache__" / f"local.{sys.implementation.cache_tag}.pyc").is_file()


def test_a_layer_for_another_python_is_refused_in_one_line(tmp_path: Path) -> None:
    config = LayerConfig("bin/python", "2.7.18", "Lib/site-packages", "../cpython-2.7/python.exe")
    with pytest.raises(VenvStacksError) as caught:
        compiler_for(tmp_path, config, "win_amd64", "cpython-2.7")
    message = str(caught.value)
    assert "\n" not in message and "'cpython-2.7'" in message and "CPython 2.7" in message
    # A Python of the layer's X.Y compiles a cross-built layer.
    mine = replace(config, python="Scripts/python.exe", py_version="{}.{}.0".format(*sys.version_info[:2]))
    assert compiler_for(tmp_path, mine, "win_amd64", "cpython") == sys.executable


def test_the_option_is_an_input_of_the_publish_tasks(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VENVSTACKS_BYTECODE", raising=False)

    def config(bytecode: bool | None) -> dict[str, Any]:
        out = OutputOptions(stack.root / "_export", stack.root / "_artifacts")
        if bytecode is not None:
            out = OutputOptions(stack.root / "_export", stack.root / "_artifacts", bytecode=bytecode)
        settings = Settings(
            load_stack(stack.spec), stack.build_dir, RuntimeOptions(stack.runtime_cache), outputs=out
        )
        check = next(iter(tasks.publish_tasks(settings)))["uptodate"][0]
        assert isinstance(check, config_changed)
        assert isinstance(check.config, dict)
        return check.config

    plain = config(None)
    assert "bytecode" not in plain  # existing publish tasks stay up to date
    assert config(True) == {**plain, "bytecode": True}
    monkeypatch.setenv("VENVSTACKS_BYTECODE", "1")
    assert config(None) == {**plain, "bytecode": True}


def test_symlinked_sources_are_left_to_postinstall(tmp_path: Path) -> None:
    # (publish compiles regular files only; postinstall compiles the rest on the target)
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "real.py").write_text("X = 1\n")
    os.symlink("real.py", lib / "alias.py")
    shutil.copy(lib / "real.py", lib / "copy.py")
    from venvstacks.archive.formats import ArchiveEntry
    from venvstacks.ship.bytecode import bytecode_entries

    entries = [ArchiveEntry(f"top/lib/{n}", lib / n) for n in ("alias.py", "copy.py", "real.py")]
    made = bytecode_entries(entries, "top", sys.executable, tmp_path / "scratch")
    tag = sys.implementation.cache_tag
    assert [e.name for e in made] == [
        "top/lib/__pycache__",
        f"top/lib/__pycache__/copy.{tag}.pyc",
        f"top/lib/__pycache__/real.{tag}.pyc",
    ]


@pytest.mark.slow
def test_the_command_line_option_reaches_the_archives(stack: Stack) -> None:
    stack.build()

    def publish(*args: str) -> dict[str, Any]:
        stack.venvstacks("publish", str(stack.spec), "--format", "tar.gz", "--include", "app-hello", *args)
        return _layer_meta(stack.root / "_artifacts", "app-hello")

    shipped = publish("--bytecode")
    archive = stack.root / "_artifacts" / "app-hello.tar.gz"
    assert shipped[BYTECODE_FIELD] is True and _pycs(archive)
    assert publish("--bytecode")["archive_build"] == shipped["archive_build"]  # up to date
    plain = publish()
    assert BYTECODE_FIELD not in plain and plain["archive_build"] == shipped["archive_build"] + 1
    assert _pycs(archive) == {}
