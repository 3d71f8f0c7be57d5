"""`venvstacks verify --rebuild ARTIFACTS_DIR`: published archives rebuilt from the committed locks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from subprocess import PIPE

import pytest

from tests.support.spec_files import RUNTIME, app, write_stack
from tests.support.stacks import Stack
from tests.support.wheels import SimpleIndex
from venvstacks.layout import DOIT_DB
from venvstacks.ship.scratch import copy_stack
from venvstacks.stack.modfiles import module_hash
from venvstacks.stack.spec import load_stack


@pytest.fixture(scope="module")
def published(
    tmp_path_factory: pytest.TempPathFactory, runtime_cache: Path, package_index: SimpleIndex
) -> Stack:
    """A stack built into `_b2` and published into `_art2` on the local runtime (as tests do).

    tar.gz, which the rebuild then uses too: xz would spend ~10 s on the runtime archive in
    each publish, and what is compared (member by member) is the same for every format.
    """
    stack = Stack(tmp_path_factory.mktemp("published") / "stack", runtime_cache, package_index.url).write()
    stack.build("--build-dir", "_b2")
    stack.venvstacks("publish", "--build-dir", "_b2", "--output-dir", "_art2", "--format", "tar.gz")
    (stack.root / "_b2" / "big.bin").write_bytes(b"\0" * (8 << 20))
    meta = json.loads((stack.root / "_art2" / "__venvstacks__" / "venvstacks.json").read_text())
    assert meta["layers"]["runtimes"][0]["runtime_portable"] is False
    return stack


def _verify(stack: Stack, *args: str, tmp: Path | None = None) -> subprocess.Popen[str]:
    env = stack.env()
    del env["VENVSTACKS_ALLOW_LOCAL_RUNTIME"]  # what a user publishing with the flag has
    if tmp is not None:
        env["TMPDIR"] = str(tmp)
    cmd = [sys.executable, "-m", "venvstacks", "verify", "--rebuild", *args]
    return subprocess.Popen(cmd, cwd=stack.root, env=env, stdout=PIPE, stderr=PIPE, text=True)


@pytest.mark.slow
def test_a_change_after_publishing_is_named(published: Stack) -> None:
    artifacts = published.root / "_art2"
    meta_before = (artifacts / "__venvstacks__" / "venvstacks.json").read_text()
    locks_before = _locks(published)
    original, published.greeting = published.greeting, "changed after publishing"
    published.write()
    try:
        run = published.venvstacks("verify", "--rebuild", "_art2", "--allow-local-runtime", check=False)
    finally:  # the other tests share this stack
        published.greeting = original
        published.write()
    assert run.code == 1
    lines = run.out.splitlines()
    assert lines[0].startswith("reproduced  cpython-3.11") and lines[1].startswith(
        "reproduced  framework-web"
    )
    assert lines[2].startswith("DIFFERS     app-hello: sha256 ")
    assert (
        "first differing member: app-hello/lib/python3.11/site-packages/helper.py (published file" in lines[2]
    )
    # Nothing of the user's stack folder was touched: the rebuild happened elsewhere.
    assert (artifacts / "__venvstacks__" / "venvstacks.json").read_text() == meta_before
    assert _locks(published) == locks_before
    assert json.loads(meta_before)["layers"]["applications"][0]["files_manifest_sha256"]


def _locks(stack: Stack) -> list[bytes]:
    return sorted(p.read_bytes() for p in (stack.root / "requirements").rglob("*") if p.is_file())


@pytest.mark.slow
def test_rebuild_from_the_stack_folder_with_the_default_stack(published: Stack) -> None:
    out, err = _verify(published, "_art2").communicate()
    assert "Traceback" not in err
    assert [line.split()[:2] for line in out.splitlines()] == [
        ["reproduced", "cpython-3.11"],
        ["reproduced", "framework-web"],
        ["reproduced", "app-hello"],
    ]
    # Published on a local runtime: the rebuild is too, and says so.
    assert "runtime_portable: false): rebuilding with --allow-local-runtime" in err
    # Only what the stack needs was copied: not _b2 (state DB, 8 MiB file), not _art2.
    copied = [line for line in err.splitlines() if line.startswith("rebuilding in ")]
    assert copied and copied[0].endswith("from a copy of: hello.py, helper.py, requirements, venvstacks.toml")


@pytest.mark.slow
def test_rebuild_with_the_stack_folder_and_the_flag(published: Stack) -> None:
    proc = _verify(published, "_art2", "--stack", ".", "--allow-local-runtime")
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert "runtime_portable: false" not in err  # nothing to carry over: the flag was given
    assert [line.split()[0] for line in out.splitlines()] == ["reproduced"] * 3


@pytest.mark.slow
def test_rebuild_refused_without_the_local_runtime_flag(published: Stack) -> None:
    proc = _verify(published, "_art2", "--stack", "venvstacks.toml", "--no-allow-local-runtime")
    out, err = proc.communicate()
    assert proc.returncode == 1 and out == ""
    assert err.splitlines() == [
        "error: cpython-3.11 was published on a local runtime (runtime_portable: false in its "
        "metadata); rebuild it with --allow-local-runtime"
    ]


@pytest.mark.slow
def test_an_uncopyable_file_is_one_line(published: Stack, tmp_path: Path) -> None:
    fifo = published.root / "requirements" / "pipe"
    os.mkfifo(fifo)  # copying it would block: shutil refuses named pipes
    try:
        proc = _verify(published, "_art2", "--allow-local-runtime", tmp=tmp_path)
        out, err = proc.communicate()
    finally:
        fifo.unlink()
    assert proc.returncode == 1 and out == ""
    assert err.splitlines() == [
        f"error: `{fifo}` is a named pipe; the rebuild cannot copy it (remove or move it)"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_sigterm_removes_the_scratch_folder(published: Stack, tmp_path: Path) -> None:
    proc = _verify(published, "_art2", tmp=tmp_path)
    # The marker: the inner publish's build folder in the scratch copy (the rebuild is running).
    while not list(tmp_path.glob("venvstacks-rebuild-*/stack/_build")):
        with contextlib.suppress(subprocess.TimeoutExpired):  # waits for the process, not a clock
            proc.wait(timeout=0.05)
        assert proc.returncode is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert list(tmp_path.iterdir()) == []
    assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in err


def test_copy_skips_output_folders_of_any_name(stack: Stack, tmp_path: Path) -> None:
    (stack.root / "requirements" / "_b3").mkdir(parents=True)
    (stack.root / "requirements" / "_b3" / DOIT_DB).write_bytes(b"")
    (stack.root / "requirements" / "kept.txt").write_text("x")
    (stack.root / "notes").mkdir()
    (stack.root / ".gitignore").write_text("*.log\n")
    copied_file, copied = copy_stack(stack.spec, tmp_path / "copy")
    assert copied_file == tmp_path / "copy" / "venvstacks.toml"
    assert copied == [".gitignore", "hello.py", "helper.py", "requirements", "venvstacks.toml"]
    listing = sorted(p.relative_to(tmp_path / "copy").as_posix() for p in (tmp_path / "copy").rglob("*"))
    assert listing == [
        ".gitignore",
        "hello.py",
        "helper.py",
        "requirements",
        "requirements/kept.txt",
        "venvstacks.toml",
    ]


def test_copy_keeps_modules_outside_the_stack_folder_and_the_gitignores_above(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)  # the repository root: its .gitignore counts
    (repo / ".gitignore").write_text("*.log\n")
    util = repo / "shared" / "util"
    util.mkdir(parents=True)
    (util / "__init__.py").write_text("X = 1\n")
    (util / "run.log").write_text("noise\n")
    extra = 'support_modules = ["../../shared/util"]'
    spec = write_stack(repo / "examples" / "demo", RUNTIME + app("demo", extra=extra), {"launch.py": ""})
    copied_file, copied = copy_stack(spec, tmp_path / "copy")
    assert copied_file == tmp_path / "copy" / "examples" / "demo" / "venvstacks.toml"
    assert copied == ["../../shared/util", "launch.py", "venvstacks.toml"]
    listing = sorted(p.relative_to(tmp_path / "copy").as_posix() for p in (tmp_path / "copy").rglob("*"))
    assert listing == [
        ".gitignore",
        "examples",
        "examples/demo",
        "examples/demo/launch.py",
        "examples/demo/venvstacks.toml",
        "shared",
        "shared/util",
        "shared/util/__init__.py",
    ]
    copy = load_stack(copied_file)
    assert module_hash(copy.layers[1].support_modules[0], copy.root) == module_hash(util, spec.parent)
