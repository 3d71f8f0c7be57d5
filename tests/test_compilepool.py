"""Deploy's shared compile workers write the pycs compileall writes, and stop when told."""

from __future__ import annotations

import os
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.procs import ends
from tests.test_deploy_parallel import snapshot
from venvstacks.errors import VenvStacksError
from venvstacks.ship.compilepool import CHUNK, CompilePools
from venvstacks.ship.compileworker import library_sources


def _tree(root: Path) -> Path:
    """A library folder with what compileall treats specially."""
    lib = root / "lib"
    (lib / "pkg" / "sub").mkdir(parents=True)
    for i in range(2 * CHUNK + 3):  # several chunks, the last one short
        (lib / "pkg" / f"m{i}.py").write_text(f"VALUE = {i}\n")
    (lib / "pkg" / "sub" / "deep.py").write_text("def f():\n    return 'deep'\n")
    (lib / "pkg" / "broken.py").write_text("def (:\n")  # left uncompiled, as compileall does
    (lib / "pkg" / "latin.py").write_bytes(b"# -*- coding: latin-1 -*-\nNAME = '\xe9'\n")
    (lib / "pkg" / "data.txt").write_text("not python\n")
    (lib / "pkg" / "__pycache__").mkdir()
    (lib / "pkg" / "__pycache__" / "stray.py").write_text("X = 1\n")  # never listed
    (lib / "linked_dir").symlink_to("pkg/sub")  # not walked into
    (lib / "linked.py").symlink_to("pkg/sub/deep.py")  # compiled, as a file
    return lib


def _clear_pycs(lib: Path) -> None:
    for cache in lib.rglob("__pycache__"):
        for pyc in cache.glob("*.pyc"):
            pyc.unlink()


def test_the_pool_writes_what_compile_dir_writes(tmp_path: Path) -> None:
    lib = _tree(tmp_path)
    by_compileall = "import compileall, sys; compileall.compile_dir(sys.argv[1], quiet=2, workers=0)"
    subprocess.run([sys.executable, "-X", "utf8", "-I", "-c", by_compileall, lib], check=True)
    expected = snapshot(tmp_path)
    tag = sys.implementation.cache_tag
    assert any(rel.endswith(f"linked.{tag}.pyc") for rel in expected)
    _clear_pycs(lib)
    files = library_sources(lib)
    assert "stray.py" not in " ".join(files) and not any("linked_dir" in f for f in files)
    with CompilePools(2) as pools:
        pools.compile(Path(sys.executable), files, layer="lib").result()
        assert pools.progress() == f"{len(files)} of {len(files)} files compiled"
    assert snapshot(tmp_path) == expected


def test_missing_only_leaves_shipped_pycs_alone(tmp_path: Path) -> None:
    lib = _tree(tmp_path)
    unchecked = py_compile.PycInvalidationMode.UNCHECKED_HASH
    written = py_compile.compile(str(lib / "pkg" / "m0.py"), invalidation_mode=unchecked)
    assert written is not None
    shipped = Path(written)
    before = shipped.read_bytes()
    with CompilePools(2) as pools:
        pools.compile(Path(sys.executable), library_sources(lib), missing_only=True, layer="lib").result()
    assert shipped.read_bytes() == before
    assert (lib / "pkg" / "__pycache__").joinpath(Path(shipped.name.replace("m0.", "m1."))).is_file()


def test_a_python_that_cannot_start_fails_its_jobs_in_one_line(tmp_path: Path) -> None:
    lib = _tree(tmp_path)
    python = tmp_path / "no-such-python"
    with CompilePools(2) as pools:
        error = pools.compile(python, library_sources(lib), layer="lib").exception(timeout=60)
    assert isinstance(error, VenvStacksError)
    assert str(error).startswith(f"byte-compiling with {python} failed: "), str(error)
    assert "\n" not in str(error)


def test_a_worker_that_dies_fails_the_job_with_its_last_words(tmp_path: Path) -> None:
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\necho 'worker: out of memory' >&2\nexit 3\n")
    python.chmod(0o755)
    with CompilePools(1) as pools:
        error = pools.compile(python, [str(tmp_path / "x.py")], layer="lib").exception(timeout=60)
    assert str(error) == f"byte-compiling with {python} failed: worker: out of memory"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a fifo")
def test_abandoning_stops_every_worker_and_fails_what_waits(tmp_path: Path) -> None:
    # A "Python" that says its pid through a fifo, then never answers.
    fifo = tmp_path / "started"
    os.mkfifo(fifo)
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\necho $$ > {fifo}\nexec sleep 600\n")
    python.chmod(0o755)
    pools = CompilePools(2)
    job = pools.compile(python, [str(tmp_path / f"m{i}.py") for i in range(3 * CHUNK)], layer="lib")
    pids: list[int] = []
    while len(pids) < 2:  # both workers have started once both wrote their pid
        # Each open waits for a writer and reads to the end of what the open writers wrote;
        # the first may have closed before the second opened, so open again until both did.
        with fifo.open() as started:
            pids += [int(line) for line in started if line.strip()]
    assert not job.done()
    pools.close(abandon=True)
    assert all(ends(pid, within=10) for pid in pids)
    error = job.exception(timeout=10)
    assert isinstance(error, VenvStacksError) and "byte-compiling was stopped" in str(error)
    with pytest.raises(VenvStacksError, match="byte-compiling was stopped"):
        pools.compile(Path(sys.executable), ["x.py"], layer="lib")


def test_a_few_files_take_one_python_start_and_many_take_one_per_worker(tmp_path: Path) -> None:
    lib = _tree(tmp_path)
    starts = tmp_path / "starts"
    python = tmp_path / "python"  # the real Python, noting each start
    python.write_text(f'#!/bin/sh\necho $$ >> {starts}\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    files = library_sources(lib)
    with CompilePools(2) as pools:
        pools.compile(python, files[:3], layer="lib").result()
        assert len(starts.read_text().split()) == 1
        pools.compile(python, files, layer="lib").result()  # several chunks: a second worker
    assert len(starts.read_text().split()) == 2


def _running(token: str) -> list[str]:
    """Command lines of the live processes that name ``token``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (cmdline.parent / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # ended meanwhile
        if token in text and state != "Z":
            found.append(text)
    return found


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="lists processes through /proc")
def test_a_worker_out_of_time_is_stopped_and_names_the_layer(tmp_path: Path) -> None:
    # A "Python" that never answers (the hang simulated: a shell loop that outlives any
    # limit), named by its own path so that a leftover shows in /proc.
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\nwhile :; do sleep 1; done\n")
    python.chmod(0o755)
    with CompilePools(1, limit=1) as pools:
        job = pools.compile(python, [str(tmp_path / f"m{i}.py") for i in range(3)], layer="app-x")
        error = job.exception(timeout=60)  # the limit's own timer ends the wait
        assert str(error) == (
            "postinstall of app-x (byte-compiling) did not finish within 1 s and was stopped; "
            "VENVSTACKS_POSTINSTALL_TIMEOUT gives it longer"
        )
        # Nothing more compiles with that Python: what was queued fails the same way.
        later = pools.compile(python, [str(tmp_path / "n.py")], layer="app-y")
        assert later.exception(timeout=60) is error
    assert _running(str(python)) == []
