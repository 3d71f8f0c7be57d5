"""A run ends by saying what it left and where; long steps say how far they are; -v and -q."""

from __future__ import annotations

import hashlib
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support.stacks import Stack
from tests.support.wheels import SimpleIndex
from venvstacks.engine.progress import FIRST_AFTER

# Every test here builds, exports or publishes a stack through the CLI: slow.
pytestmark = pytest.mark.slow


def _line(out: str, start: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith(start)]
    assert len(lines) == 1, out
    return lines[0]


def test_build_summary_names_each_layer_its_folder_and_the_app_command(stack: Stack) -> None:
    first = stack.build()
    built = {line.split()[1]: line.split()[2] for line in first.out.splitlines() if line.startswith("built ")}
    assert built == {
        name: str(stack.build_dir / name) for name in ("cpython-3.11", "framework-web", "app-hello")
    }
    command = _line(first.out, "run app-hello with: ").removeprefix("run app-hello with: ")
    ran = subprocess.run(["env", "-i", *shlex.split(command)], capture_output=True, text=True, check=True)
    assert "hello from the app layer" in ran.stdout

    again = stack.build()
    up_to_date = {line.split()[3] for line in again.out.splitlines() if line.startswith("up to date ")}
    assert up_to_date == set(built)


def test_publish_lists_each_archive_with_size_and_sha256(stack: Stack) -> None:
    run = stack.venvstacks("publish", str(stack.spec), "--format", "tar.gz")
    out_dir = stack.root / "_artifacts"
    header = _line(run.out, "published to ")
    assert header == (
        f"published to {out_dir} (metadata in {out_dir / '__venvstacks__'}; "
        "each archive's SBOM beside it as <archive>.cdx.json):"
    )
    listed = {}
    columns = set()
    for line in run.out.splitlines():
        if line.startswith("  ") and "sha256:" in line:
            name, *_, sha = line.split()
            listed[name] = sha.removeprefix("sha256:")
            columns.add(line.index("sha256:"))
    assert len(columns) == 1, run.out  # the hashes line up under each other
    archives = sorted(p.name for p in out_dir.glob("*.tar.gz"))
    assert sorted(listed) == archives == ["app-hello.tar.gz", "cpython-3.11.tar.gz", "framework-web.tar.gz"]
    for name, sha in listed.items():
        assert sha == hashlib.sha256((out_dir / name).read_bytes()).hexdigest()
    app = _line(run.out, "  app-hello.tar.gz")
    size = (out_dir / "app-hello.tar.gz").stat().st_size
    assert f"  {size / 1e3:.1f} kB  " in app or f"  {size} bytes  " in app


def test_local_export_lists_the_exported_folders(stack: Stack) -> None:
    run = stack.venvstacks("local-export", str(stack.spec))
    export = stack.root / "_export"
    assert _line(run.out, "exported to ") == f"exported to {export}:"
    folders = [line.strip() for line in run.out.splitlines() if line.startswith(f"  {export}")]
    layers = ("cpython-3.11", "framework-web", "app-hello")
    assert folders == [str(export / n) for n in layers]
    assert all((export / n / "bin" / "python").exists() for n in layers)
    command = _line(run.out, "run app-hello with: ").removeprefix("run app-hello with: ")
    assert command.startswith(str(export / "app-hello" / "bin" / "python"))


def test_verbose_before_or_after_the_command_shows_uvs_output(stack: Stack) -> None:
    quiet = stack.venvstacks("lock", str(stack.spec))
    assert "   | " not in quiet.err
    relock = ["lock", str(stack.spec), "--reset-lock", "app-*"]
    for args in (["-v", *relock], [*relock, "-v"]):
        run = stack.venvstacks(*args)
        assert any(line.startswith("   | Resolved") for line in run.err.splitlines()), run.err


def test_quiet_before_the_command_prints_nothing_on_success(stack: Stack) -> None:
    run = stack.venvstacks("-q", "build", str(stack.spec))
    assert run.out == ""
    assert (stack.build_dir / "app-hello" / "bin" / "python").exists()


def test_a_long_task_reports_progress_on_stderr(
    tmp_path: Path, runtime_cache: Path, package_index: SimpleIndex, simple_index: SimpleIndex
) -> None:
    """The CLI runs the heartbeat (its schedule is tested above with a clock of its own)."""
    wheel = simple_index.add("vstest-slow", "1.0")
    release = simple_index.hold(wheel.name + ".metadata")  # what locking reads
    stack = Stack(tmp_path / "stack", runtime_cache, package_index.url, app_requirements=["vstest-slow"])
    stack.write()
    stack.spec.write_text(stack.spec.read_text() + f'\n[tool.uv]\nextra-index-url = ["{simple_index.url}"]\n')
    # Meanwhile uv waits for the held file: lock:app-hello runs on.
    progress = _progress_line(stack, ["lock"], "   lock:app-hello: ", release)
    assert simple_index.wait_for_request(wheel.name + ".metadata", timeout=0)  # it was held
    # Whole seconds as printed; a busy machine may print the line a little late.
    first = re.fullmatch(r"lock:app-hello: still running \((\d+)s\)", progress or "")
    assert first is not None and int(first[1]) >= FIRST_AFTER, progress


def test_a_long_install_says_what_uv_reports(stack: Stack, package_index: SimpleIndex) -> None:
    stack.uv_cache = stack.root.parent / "uv-cache"  # so the wheel cannot come from a cache
    stack.venvstacks("lock", str(stack.spec))
    wheel = "six-1.17.0-py3-none-any.whl"
    stack.app_requirements = ["attrs", "idna", "six"]
    stack.write()
    stack.venvstacks("lock", str(stack.spec))
    release = package_index.hold(wheel)  # uv waits for it while install:app-hello runs on
    said = _progress_line(stack, ["build"], "   install:app-hello: ", release, until="uv: ")
    # uv's own latest progress line, not "still running" (here: the environment it syncs; on
    # a big wheel, `Downloading torch (846.1MiB)`).
    expected = r"install:app-hello: uv: Using Python 3\.11\.\d+ environment at: .* \(\d+s\)"
    assert re.fullmatch(expected, said or ""), said


def _progress_line(
    stack: Stack, command: list[str], start: str, release: threading.Event, until: str = ""
) -> str | None:
    """The first progress line a run prints that starts with ``start`` and holds ``until``,
    read as it comes while the index holds a file back; then the file is released."""
    argv = [sys.executable, "-m", "venvstacks", *command, str(stack.spec)]
    found = None
    try:
        with subprocess.Popen(
            argv, env=stack.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        ) as proc:
            assert proc.stderr is not None
            for line in proc.stderr:
                if line.startswith(start) and until in line:
                    found = line.strip()
                    break
            release.set()
            proc.communicate(timeout=120)
        assert proc.returncode == 0
    finally:
        release.set()
    return found
