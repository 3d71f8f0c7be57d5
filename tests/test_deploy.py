"""Local export, and deploying published layers: checks, order, redeploys, moving."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli_imports import run_in_fresh_interpreter
from tests.support.layers import (
    RUNTIME,
    SITE,
    SampleStack,
    publish_all,
    republish_app_archive,
    run_app,
    sample_stack,
    tree,
)
from venvstacks.archive.formats import ArchiveFormat
from venvstacks.errors import CommandError, VenvStacksError
from venvstacks.fsutil import lock_exclusively, sha256_file
from venvstacks.layerconfig import read_layer_config
from venvstacks.layout import LAYER_CONFIG
from venvstacks.ship.deploy import deploy, select_layers
from venvstacks.ship.deploystate import STATE_FILE
from venvstacks.ship.export import export_layer
from venvstacks.ship.layermeta import LayerMetadata
from venvstacks.ship.publish import PublishOptions
from venvstacks.ship.published_meta import PublishedLayer
from venvstacks.stack.kinds import LayerKind

FW, APP = "framework-fw@2", "app-hello"
EXPECTED = ["framework", "pth", "runtime", "support"]


@pytest.fixture
def stack(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> SampleStack:
    return sample_stack(tmp_path_factory, tmp_path / "_build")


@pytest.fixture(scope="module")
def published_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("deploy")
    return publish(sample_stack(tmp_path_factory, root / "_build"), root / "published")


@pytest.fixture
def published(published_once: Path, tmp_path: Path) -> Path:
    """The sample stack published as tar.gz, a copy of the module's for a test to change."""
    return shutil.copytree(published_once, tmp_path / "published")


def publish(stack: SampleStack, out: Path, **kwargs: Any) -> Path:
    opts = PublishOptions(out, "linux_x86_64", ArchiveFormat.TAR_GZ, **kwargs)
    publish_all(stack.layers(), opts)
    return out


def quiet_deploy(published: Path, target: Path, **kwargs: Any) -> tuple[Any, list[str]]:
    lines: list[str] = []
    result = deploy(published, target, log=lines.append, **kwargs)
    return result, lines


def layer_dirs(target: Path) -> list[str]:
    return sorted(p.name for p in target.iterdir() if p.is_dir()) if target.exists() else []


def test_deploy_run_move_and_run_again(published: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    result, _ = quiet_deploy(published, target)
    assert result.deployed == (RUNTIME, FW, APP) and result.unchanged == ()
    assert [str(app) for app in result.apps] == [f"{target}/{APP}/bin/python -m hello_app"]
    proc = subprocess.run(["env", "-i", *result.apps[0].argv], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["values"] == EXPECTED
    assert layer_dirs(target) == sorted([RUNTIME, FW, APP])  # no staging left behind

    # Move the whole deployment, then rerun postinstall by hand, runtime first.
    moved = tmp_path / "moved" / "here"
    moved.parent.mkdir()
    target.rename(moved)
    for layer in (RUNTIME, FW, APP):
        cmd = ["env", "-i", f"{moved}/{RUNTIME}/bin/python3", f"{moved}/{layer}/postinstall.py"]
        subprocess.run(cmd, check=True, cwd="/")
    after = run_app(moved / APP)
    assert after["values"] == EXPECTED
    assert after["fwpkg"] == f"{moved}/{FW}/{SITE}/fwpkg/__init__.py"
    assert not [p for p in after["path"] if str(target) in p]


def test_deploy_and_verify_import_no_doit_engine(published: Path, tmp_path: Path) -> None:
    """On a target machine `venvstacks deploy` and `verify` start without doit, the task
    graph or the stack commands' workflow (about 0.05-0.08 s of start-up)."""
    target = tmp_path / "target"
    status, loaded = run_in_fresh_interpreter(
        ["deploy", str(published), str(target), "-q"], ["verify", str(target), "-q"]
    )
    assert status == [0, 0]
    assert layer_dirs(target) == sorted([RUNTIME, FW, APP])
    assert run_app(target / APP)["values"] == EXPECTED
    assert loaded == []
    # Nor, deploying again with every layer current, what only a stack command or an
    # unpacking reads: the stack parser, the stack commands' options, filelock, the unpacker.
    not_needed = (
        *("venvstacks.stack.spec", "venvstacks.stack.fields", "venvstacks.cli_stackoptions", "tomllib"),
        *("filelock.", "venvstacks.archive.unpack", "venvstacks.archive.xz", "venvstacks.ship.rebuild"),
    )
    status, loaded = run_in_fresh_interpreter(
        ["deploy", str(published), str(target), "-q"], ["verify", str(target), "-q"], watched=not_needed
    )
    assert status == [0, 0]
    assert loaded == []


def test_a_deploy_waits_for_the_one_under_way_in_its_target(
    published: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from venvstacks.ship import deploy as deploy_module

    target = tmp_path / "target"
    quiet_deploy(published, target)
    state = (target / STATE_FILE).read_bytes()
    release = lock_exclusively(target / f"{STATE_FILE}.lock")  # another deploy, under way
    waiting = threading.Event()
    monkeypatch.setattr(deploy_module, "lock_exclusively", lambda path: lock_exclusively(path, waiting.set))
    done: list[Any] = []
    second = threading.Thread(target=lambda: done.append(quiet_deploy(published, target)[0]))
    second.start()
    try:
        assert waiting.wait(60)  # it found the lock held: the marker it calls before it waits
        assert not done and (target / STATE_FILE).read_bytes() == state  # it touched nothing
    finally:
        release()
        second.join(120)
    assert done and done[0].unchanged and not done[0].deployed


def test_redeploy_after_a_move_relinks_unchanged_layers(published: Path, tmp_path: Path) -> None:
    quiet_deploy(published, tmp_path / "target")
    (tmp_path / "target").rename(tmp_path / "moved")
    result, lines = quiet_deploy(published, tmp_path / "moved")
    assert result.deployed == () and result.unchanged == (RUNTIME, FW, APP)
    assert sum(line.startswith("Relinking") for line in lines) == 3
    assert run_app(tmp_path / "moved" / APP)["prefix"] == str(tmp_path / "moved" / APP)
    _, lines = quiet_deploy(published, tmp_path / "moved")
    assert not [line for line in lines if line.startswith(("Relinking", "Deploying"))]


def test_only_changed_layers_are_replaced(stack: SampleStack, tmp_path: Path) -> None:
    published = publish(stack, tmp_path / "published")
    target = tmp_path / "target"
    quiet_deploy(published, target)
    runtime_inode = (target / RUNTIME / "bin" / "python3").lstat().st_ino
    (stack.build_dir / "app-hello" / SITE / "hello_support.py").write_text("VALUE = 'new'\n")
    publish(stack, published, force=True)
    result, _ = quiet_deploy(published, target)
    assert result.deployed == (APP,) and result.unchanged == (RUNTIME, FW)
    assert run_app(target / APP)["values"] == ["framework", "pth", "runtime", "new"]
    assert (target / RUNTIME / "bin" / "python3").lstat().st_ino == runtime_inode
    assert sorted(os.listdir(target)) == sorted([RUNTIME, FW, APP, STATE_FILE, f"{STATE_FILE}.lock"])
    state = json.loads((target / STATE_FILE).read_text())
    assert state["layers"][APP]["sha256"] == sha256_file(published / "app-hello.tar.gz")


def test_include_adds_what_the_selected_layers_need(published: Path, tmp_path: Path) -> None:
    result, _ = quiet_deploy(published, tmp_path / "a", include=["app-*"])
    assert result.deployed == (RUNTIME, FW, APP)
    result, _ = quiet_deploy(published, tmp_path / "b", include=["framework-fw@2"])
    assert result.deployed == (RUNTIME, FW) and result.apps == ()
    with pytest.raises(VenvStacksError, match=r"matches no published layer$"):
        quiet_deploy(published, tmp_path / "c", include=["nothing*"])


def test_include_naming_a_layer_as_the_stack_file_does_says_what_it_meant(
    published: Path, tmp_path: Path
) -> None:
    with pytest.raises(VenvStacksError) as info:
        quiet_deploy(published, tmp_path / "c", include=["hello"])
    assert str(info.value) == "--include hello: matches no published layer; did you mean app-hello?"


def test_metadata_file_and_tagged_outputs(stack: SampleStack, tmp_path: Path) -> None:
    published = publish(stack, tmp_path / "published", tag_outputs=True)
    meta = published / "__venvstacks__" / "venvstacks-linux_x86_64.json"
    result, _ = quiet_deploy(meta, tmp_path / "target")
    assert result.deployed == (RUNTIME, FW, APP)
    result, _ = quiet_deploy(published, tmp_path / "target")  # finds the one tagged file
    assert result.unchanged == (RUNTIME, FW, APP)


def test_layers_needed_but_missing_are_refused_up_front(stack: SampleStack, tmp_path: Path) -> None:
    opts = PublishOptions(tmp_path / "apps", "linux_x86_64", ArchiveFormat.TAR_GZ)
    publish_all(stack.layers()[1:], opts)
    with pytest.raises(VenvStacksError, match=f"needs layer {RUNTIME}, which is neither"):
        quiet_deploy(tmp_path / "apps", tmp_path / "target")
    assert not (tmp_path / "target").exists()  # the refusal touched nothing, made no folder
    # once the runtime is deployed from elsewhere, the same publication deploys
    full = publish(stack, tmp_path / "full")
    quiet_deploy(full, tmp_path / "target", include=[RUNTIME])
    result, _ = quiet_deploy(tmp_path / "apps", tmp_path / "target")
    assert result.deployed == (FW, APP)


def test_a_target_below_a_file_is_refused(published: Path, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(VenvStacksError, match="a-file exists and is not a folder"):
        quiet_deploy(published, tmp_path / "a-file" / "target")


def test_a_target_linked_to_a_missing_folder_gets_that_folder(published: Path, tmp_path: Path) -> None:
    # e.g. /opt/myapp -> /srv/myapp-2, made before /srv/myapp-2 exists
    (tmp_path / "link").symlink_to(tmp_path / "real" / "myapp")
    result, _ = quiet_deploy(published, tmp_path / "link")
    assert result.target_dir == tmp_path / "link"  # the name given is kept
    assert layer_dirs(tmp_path / "real" / "myapp") == layer_dirs(tmp_path / "link") != []
    assert (tmp_path / "link").is_symlink()


def test_a_target_that_cannot_be_created_is_one_line(published: Path, tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")  # mkdir through it fails (ELOOP)
    target = tmp_path / "loop" / "target"
    with pytest.raises(VenvStacksError) as refused:
        quiet_deploy(published, target)
    assert str(refused.value).startswith(f"deploy target {target}: cannot create it (")
    assert str(refused.value).endswith("); choose another path")


def test_byte_compiling_out_of_time_stops_the_deploy(
    published: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No chunk of files compiles within a millisecond (a worker takes longer to start).
    monkeypatch.setenv("VENVSTACKS_POSTINSTALL_TIMEOUT", "0.001")
    target = tmp_path / "target"
    with pytest.raises(VenvStacksError) as stopped:
        quiet_deploy(published, target)
    assert re.fullmatch(
        r"postinstall of \S+ \(byte-compiling\) did not finish within 0\.001 s and was stopped; "
        r"VENVSTACKS_POSTINSTALL_TIMEOUT gives it longer",
        str(stopped.value),
    ), str(stopped.value)
    assert layer_dirs(target) == []  # nothing moved into place, no staging folder left
    assert [p.name for p in target.iterdir() if p.name.startswith(".") and "partial" in p.name] == []


def test_a_bad_time_limit_is_refused_before_anything_is_touched(
    published: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VENVSTACKS_POSTINSTALL_TIMEOUT", "soon")
    with pytest.raises(VenvStacksError, match=r"^VENVSTACKS_POSTINSTALL_TIMEOUT='soon' is not a number"):
        quiet_deploy(published, tmp_path / "target")
    assert not (tmp_path / "target").exists()


def _damage(published: Path, name: str, how: str) -> None:
    archive = published / name
    data = archive.read_bytes()
    if how == "truncate":
        archive.write_bytes(data[:-100])
    else:  # same size, other bytes
        archive.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))


@pytest.mark.parametrize(
    ("how", "message"),
    [("truncate", "were published; incomplete download"), ("flip", "does not match")],
)
def test_damaged_archives_are_refused_before_anything_is_unpacked(
    published: Path, tmp_path: Path, how: str, message: str
) -> None:
    _damage(published, "app-hello.tar.gz", how)
    with pytest.raises(VenvStacksError, match=message) as err:
        quiet_deploy(published, tmp_path / "target")
    assert "\n" not in str(err.value)
    assert layer_dirs(tmp_path / "target") == []  # not even the intact runtime


def test_hostile_published_archive_is_refused(published: Path, tmp_path: Path) -> None:
    archive = published / "app-hello.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        top = tarfile.TarInfo("app-hello")
        top.type = tarfile.DIRTYPE
        link = tarfile.TarInfo("app-hello/escape")
        link.type, link.linkname = tarfile.SYMTYPE, "../../outside"
        tf.addfile(top)
        tf.addfile(link)
    republish_app_archive(published, archive)
    before = {k: v for k, v in tree(tmp_path).items() if not k.startswith("target")}
    with pytest.raises(VenvStacksError, match="symlink app-hello/escape points outside"):
        quiet_deploy(published, tmp_path / "target")
    assert {k: v for k, v in tree(tmp_path).items() if not k.startswith("target")} == before
    assert layer_dirs(tmp_path / "target") == sorted([RUNTIME, FW])


def _after_the_check(monkeypatch: pytest.MonkeyPatch, target: str, change: Callable[[], None]) -> None:
    """Run `change` right after deploy has checked the archive of `target`."""
    from venvstacks.ship import deploy as deploy_module

    real = deploy_module._verify_archive

    def check_then_change(layer: PublishedLayer) -> Any:
        checked = real(layer)
        if layer.install_target == target:
            change()
        return checked

    monkeypatch.setattr(deploy_module, "_verify_archive", check_then_change)


def test_deploy_unpacks_the_bytes_it_checked_not_an_archive_put_in_their_place(
    published: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted = tmp_path / "planted.tar.gz"
    with tarfile.open(planted, "w:gz") as tf:
        top = tarfile.TarInfo(APP)
        top.type = tarfile.DIRTYPE
        tf.addfile(top)
        tf.addfile(tarfile.TarInfo(f"{APP}/planted.txt"), io.BytesIO(b""))
    _after_the_check(monkeypatch, APP, lambda: os.replace(planted, published / f"{APP}.tar.gz"))
    quiet_deploy(published, tmp_path / "target")
    assert not (tmp_path / "target" / APP / "planted.txt").exists()
    assert run_app(tmp_path / "target" / APP)["values"] == EXPECTED


def test_deploy_refuses_an_archive_changed_in_place_after_its_check(
    published: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def append() -> None:
        with (published / f"{APP}.tar.gz").open("ab") as f:
            f.write(b"\0" * 512)  # after the compressed stream: the unpacker never reads it

    _after_the_check(monkeypatch, APP, append)
    with pytest.raises(VenvStacksError) as err:
        quiet_deploy(published, tmp_path / "target")
    assert str(err.value) == (
        f"refusing to unpack {APP}.tar.gz: it changed after its sha256 was checked; "
        "run again to check it anew"
    )
    assert APP not in layer_dirs(tmp_path / "target")
    assert not list((tmp_path / "target").glob(".*partial*"))


def test_a_failed_postinstall_names_the_layer_not_its_staging_folder(published: Path, tmp_path: Path) -> None:
    # A layer config that postinstall refuses (a path leaving the deployment folder).
    archive = published / f"{APP}.tar.gz"
    unpacked = tmp_path / "unpacked"
    with tarfile.open(archive) as tf:
        tf.extractall(unpacked, filter="tar")
    config = unpacked / APP / LAYER_CONFIG
    config.write_text(json.dumps({**json.loads(config.read_text()), "pylib_dirs": ["../../outside"]}))
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(unpacked / APP, APP)
    republish_app_archive(published, archive)
    with pytest.raises(CommandError) as err:
        quiet_deploy(published, tmp_path / "target")
    assert str(err.value).startswith(f"postinstall of {APP} failed (exit 1): "), str(err.value)
    assert ".partial-" not in str(err.value)


def test_an_archive_without_a_layer_config_names_the_layer_not_its_staging_folder(
    published: Path, tmp_path: Path
) -> None:
    archive = published / f"{APP}.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        top = tarfile.TarInfo(APP)
        top.type = tarfile.DIRTYPE
        tf.addfile(top)
    republish_app_archive(published, archive)
    with pytest.raises(VenvStacksError) as err:
        quiet_deploy(published, tmp_path / "target")
    assert str(err.value) == f"{APP}/{LAYER_CONFIG}: missing; is {APP} a built layer?"


# --- local export ------------------------------------------------------------------------


def export_all(stack: SampleStack, export_dir: Path) -> None:
    for layer in stack.layers():
        export_layer(layer.layer_dir, export_dir, layer.metadata.install_target, layer.config)


def test_export_runs_and_shares_files_with_the_build(stack: SampleStack, tmp_path: Path) -> None:
    build_before = tree(stack.build_dir)
    export_dir = tmp_path / "_export"
    export_all(stack, export_dir)
    assert sorted(os.listdir(export_dir)) == sorted([RUNTIME, FW, APP])
    result = run_app(export_dir / APP)
    assert result["values"] == EXPECTED
    assert result["fwpkg"] == f"{export_dir}/{FW}/{SITE}/fwpkg/__init__.py"
    built = stack.build_dir / "framework-fw" / SITE / "fwpkg" / "__init__.py"
    exported = export_dir / FW / SITE / "fwpkg" / "__init__.py"
    assert built.stat().st_ino == exported.stat().st_ino  # a hard link, not a copy
    assert not (export_dir / FW / "share/venv/metadata/build-state").exists()
    assert not (export_dir / FW / ".build-marker").exists()
    assert tree(stack.build_dir) == build_before  # postinstall wrote beside, never through
    export_all(stack, export_dir)  # exporting again replaces the layers
    assert run_app(export_dir / APP)["values"] == EXPECTED
    assert sorted(os.listdir(export_dir)) == sorted([RUNTIME, FW, APP])


def test_failed_export_leaves_nothing(stack: SampleStack, tmp_path: Path) -> None:
    # A layer config postinstall refuses (a path leaving the deployment folder) makes it fail.
    app = tmp_path / "build" / APP
    shutil.copytree(stack.layers()[2].layer_dir, app, symlinks=True)
    config = json.loads((app / LAYER_CONFIG).read_text())
    (app / LAYER_CONFIG).write_text(json.dumps({**config, "pylib_dirs": ["../../outside"]}))
    with pytest.raises(CommandError, match=r"postinstall of app-hello failed .*leaves the deployment folder"):
        export_layer(app, tmp_path / "_export", APP, read_layer_config(app))
    assert os.listdir(tmp_path / "_export") == []


@pytest.mark.parametrize("what", ["export", "publish"])
def test_an_output_folder_that_cannot_be_created_is_one_line(
    stack: SampleStack, tmp_path: Path, what: str
) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")  # mkdir through it fails (ELOOP)
    out = tmp_path / "loop" / "out"
    with pytest.raises(VenvStacksError) as refused:  # not an OSError: doit would show a traceback
        if what == "export":
            app = stack.layers()[2]
            export_layer(app.layer_dir, out, APP, app.config)
        else:
            publish(stack, out)
    assert str(refused.value).startswith(f"{what} folder {out}: cannot create it (")
    assert str(refused.value).endswith("); choose another path")


def test_export_of_a_folder_that_is_not_a_layer(tmp_path: Path) -> None:
    with pytest.raises(VenvStacksError, match=r"venvstacks_layer\.json: missing"):
        export_layer(tmp_path, tmp_path / "_export", "nothing", read_layer_config(tmp_path))


def test_deploy_refuses_metadata_without_hashes(published: Path, tmp_path: Path) -> None:
    meta_file = published / "__venvstacks__" / "venvstacks.json"
    meta = json.loads(meta_file.read_text())
    del meta["layers"]["runtimes"][0]["archive_hashes"]
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(VenvStacksError, match="has no sha256"):
        quiet_deploy(published, tmp_path / "target")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("install_target", "../evil"),
        ("install_target", ".hidden"),
        ("archive_name", "../app-hello.tar.gz"),
        ("required_layers", ["../../etc"]),
    ],
)
def test_metadata_naming_paths_outside_is_refused(
    published: Path, tmp_path: Path, field: str, value: object
) -> None:
    meta_file = published / "__venvstacks__" / "venvstacks.json"
    meta = json.loads(meta_file.read_text())
    meta["layers"]["applications"][0][field] = value
    meta_file.write_text(json.dumps(meta))
    before = tree(tmp_path)
    with pytest.raises(VenvStacksError, match="is not a plain layer or file name"):
        quiet_deploy(published, tmp_path / "target")
    assert tree(tmp_path) == before


def _published(kind: LayerKind, target: str, runtime: str, *required: str) -> PublishedLayer:
    meta = LayerMetadata(target, runtime_layer=runtime, required_layers=required)
    return PublishedLayer(kind, meta, Path(f"{target}.tar.gz"))


def test_deployment_order_puts_each_layer_after_what_it_needs() -> None:
    rt = _published(LayerKind.RUNTIME, "cpython-3.11", "cpython-3.11")
    base = _published(LayerKind.FRAMEWORK, "framework-base", "cpython-3.11")
    top = _published(LayerKind.FRAMEWORK, "framework-top", "cpython-3.11", "framework-base")
    app = _published(LayerKind.APPLICATION, "app-x", "cpython-3.11", "framework-top", "framework-base")
    # venvstacks.json lists them in any order; the upper framework first here
    order = select_layers([app, top, rt, base], [], lambda target: False)
    assert [la.install_target for la in order] == ["cpython-3.11", "framework-base", "framework-top", "app-x"]


def test_layers_needing_each_other_are_refused() -> None:
    rt = _published(LayerKind.RUNTIME, "cpython-3.11", "cpython-3.11")
    one = _published(LayerKind.FRAMEWORK, "framework-one", "cpython-3.11", "framework-two")
    two = _published(LayerKind.FRAMEWORK, "framework-two", "cpython-3.11", "framework-one")
    with pytest.raises(VenvStacksError, match="need each other in a cycle: framework-"):
        select_layers([rt, one, two], [], lambda target: False)


def test_byte_compiling_for_over_two_seconds_says_how_it_gets_on(
    published: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    from concurrent.futures import Future

    from venvstacks.ship.compilepool import CompilePools

    real = CompilePools.compile
    ticked = threading.Event()
    said: list[str] = []

    def log(line: str) -> None:
        said.append(line)
        if line.startswith("   byte-compiling: "):
            ticked.set()

    def slow_compile(pools: CompilePools, python: Path, files: list[str], **kw: Any) -> Future[None]:
        compiled = real(pools, python, files, **kw)
        later: Future[None] = Future()

        def finish() -> None:  # done once the ticker has spoken (a marker, not a clock)
            ticked.wait(60)
            compiled.result()
            later.set_result(None)

        threading.Thread(target=finish, daemon=True).start()
        return later

    monkeypatch.setattr(CompilePools, "compile", slow_compile)
    result = deploy(published, tmp_path / "target", log=log, jobs=1)
    assert APP in result.deployed
    assert ticked.is_set(), said
    (line, *_) = [line for line in said if line.startswith("   byte-compiling: ")]
    assert re.fullmatch(r"   byte-compiling: (\d+) of (\d+) files compiled \((\d+)s\)", line), line


def test_a_postinstall_not_ours_runs_by_itself_once_the_layers_below_are_in_place(
    published: Path, tmp_path: Path
) -> None:
    # Another tool's script (here: ours with a line added) is run as the recipe runs it, with
    # the runtime's Python, after the runtime is in place; it compiles the layer itself.
    target = tmp_path / "target"
    archive = published / f"{APP}.tar.gz"
    unpacked = tmp_path / "unpacked"
    with tarfile.open(archive) as tf:
        tf.extractall(unpacked, filter="tar")
    script = unpacked / APP / "postinstall.py"
    seen = tmp_path / "runtime-seen"
    probe = f"import os, sys\nopen({str(seen)!r}, 'w').write(str(os.path.isdir({str(target / RUNTIME)!r})))\n"
    script.write_text(probe + script.read_text())
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(unpacked / APP, APP)
    republish_app_archive(published, archive)
    result, _ = quiet_deploy(published, target)
    assert APP in result.deployed
    assert seen.read_text() == "True"
    assert run_app(target / APP)["values"] == EXPECTED
    assert list((target / APP / "lib").rglob("*.pyc"))  # its own compileall ran
