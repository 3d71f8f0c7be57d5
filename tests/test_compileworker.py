"""The compile workers write, byte for byte and mode for mode, the pycs compileall writes,
in every case compileall.compile_file treats specially."""

from __future__ import annotations

import hashlib
import marshal
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from venvstacks.ship.compilepool import CHUNK, CompilePools
from venvstacks.ship.compileworker import library_sources

TAG = sys.implementation.cache_tag
MTIME = 1_600_000_000


def _tree(root: Path) -> Path:
    lib = root / "lib"
    pkg = lib / "pkg"
    (pkg / "sub").mkdir(parents=True)
    for i in range(CHUNK + 3):
        (pkg / f"m{i}.py").write_text(f"VALUE = {i}\n")
    (pkg / "sub" / "deep.py").write_text("def f():\n    return 'deep'\n")
    sources = {
        "syntax.py": b"def (:\n",
        "nulls.py": b"X = 1\0\n",
        "not_utf8.py": b"NAME = '\xe9'\n",
        "unknown_codec.py": b"# -*- coding: no-such-codec -*-\nX = 1\n",
        "latin.py": b"# -*- coding: latin-1 -*-\nNAME = '\xe9'\n",
        "bom.py": b"\xef\xbb\xbfX = 'bom'\n",
        "named.py": b"SNOWMAN = '\\N{SNOWMAN}'\n",
        "warns.py": b"X = 1\nY = X is 1\n",  # a SyntaxWarning
        "future.py": b"from __future__ import annotations\ndef f(x: int) -> undefined: ...\n",
        "readonly.py": b"X = 'read only'\n",
        "private.py": b"X = 'private'\n",
        "script.py": b"X = 'executable'\n",
        "fresh.py": b"X = 'pyc up to date'\n",
        "stale.py": b"X = 'pyc stale'\n",
        "pyc_link.py": b"X = 'pyc is a symlink'\n",
        "pyc_dir.py": b"X = 'pyc is a folder'\n",
    }
    for name, data in sources.items():
        (pkg / name).write_bytes(data)
    (pkg / "readonly.py").chmod(0o444)
    (pkg / "private.py").chmod(0o600)
    (pkg / "script.py").chmod(0o755)
    for source in pkg.rglob("*.py"):  # one mtime: two trees compile the same
        os.utime(source, (MTIME, MTIME))
    cache = pkg / "__pycache__"
    cache.mkdir()
    header = importlib_magic() + bytes(4) + MTIME.to_bytes(4, "little")
    (cache / f"fresh.{TAG}.pyc").write_bytes(header + b"kept: never rewritten")
    (cache / f"stale.{TAG}.pyc").write_bytes(importlib_magic() + bytes(12) + b"old")
    (cache / f"pyc_link.{TAG}.pyc").symlink_to(f"fresh.{TAG}.pyc")
    (cache / f"pyc_dir.{TAG}.pyc").mkdir()
    (lib / "dangling.py").symlink_to("no-such-file.py")
    (lib / "linked.py").symlink_to("pkg/sub/deep.py")
    (lib / "nocache").mkdir()  # its __pycache__ is made by the compile
    (lib / "nocache" / "x.py").write_text("X = 1\n")
    os.utime(lib / "nocache" / "x.py", (MTIME, MTIME))
    return lib


def importlib_magic() -> bytes:
    from importlib.util import MAGIC_NUMBER

    return MAGIC_NUMBER


def _files(root: Path) -> dict[str, tuple[str, str]]:
    """Every entry: its mode and its bytes' sha256 (or link target, or "dir")."""
    found = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            what = "-> " + os.readlink(path)
        elif stat.S_ISDIR(st.st_mode):
            what = "dir"
        else:
            what = hashlib.sha256(path.read_bytes()).hexdigest()
        found[path.relative_to(root).as_posix()] = (oct(st.st_mode), what)
    return found


@pytest.fixture
def umask() -> Iterator[None]:
    # Not the usual 0o022: the folders made must follow it as os.makedirs does.
    old = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("umask")
@pytest.mark.parametrize("epoch", [None, "1700000000"])
def test_workers_write_what_compile_dir_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, epoch: str | None
) -> None:
    if epoch is None:
        monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    else:
        monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)
    by_compileall = tmp_path / "compileall"
    by_pool = tmp_path / "pool"
    for root in (by_compileall, by_pool):
        _tree(root)
    code = "import compileall, sys; compileall.compile_dir(sys.argv[1], quiet=2, workers=0)"
    subprocess.run([sys.executable, "-X", "utf8", "-I", "-c", code, "lib"], cwd=by_compileall, check=True)
    expected = _files(by_compileall)
    monkeypatch.chdir(by_pool)  # the same relative paths, so co_filename matches too
    with CompilePools(2) as pools:
        pools.compile(Path(sys.executable), library_sources(Path("lib")), layer="lib").result(timeout=60)
    assert _files(by_pool) == expected
    # The cases were met: pycs of each kind, and none for the sources that do not compile.
    pycs = {rel.rsplit("/", 1)[-1].split(".")[0] for rel in expected if rel.endswith(".pyc")}
    assert {"latin", "named", "bom", "warns", "readonly", "stale", "x", "linked"} <= pycs
    assert not pycs & {"syntax", "nulls", "not_utf8", "unknown_codec", "dangling"}
    flags = 3 if epoch else 0
    pyc = by_pool / "lib" / "pkg" / "__pycache__" / f"m0.{TAG}.pyc"
    assert int.from_bytes(pyc.read_bytes()[4:8], "little") == flags
    assert (
        (by_pool / "lib/pkg/__pycache__" / f"fresh.{TAG}.pyc").read_bytes().endswith(b"kept: never rewritten")
    )
    assert expected["lib/nocache/__pycache__"][0] == oct(stat.S_IFDIR | 0o775)


def test_files_compiled_in_staging_are_named_where_they_will_be(tmp_path: Path) -> None:
    staging, final, other = tmp_path / ".layer.partial-x", tmp_path / "layer", tmp_path / "other"
    sources = [staging / "lib" / "mod.py", other / "lib" / "mod.py", tmp_path / ".layer.partial-xy.py"]
    for source in sources:
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text("def f():\n    return 1\n")
    with CompilePools(1) as pools:
        job = pools.compile(
            Path(sys.executable), [str(s) for s in sources], layer="layer", shown_as=(staging, final)
        )
        job.result(timeout=60)
    named = []
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.{TAG}.pyc"
        code = marshal.loads(pyc.read_bytes()[16:])
        named.append(code.co_filename)
        assert all(c.co_filename == code.co_filename for c in code.co_consts if hasattr(c, "co_filename"))
    # Only files below the staging folder itself are renamed (a sibling sharing its prefix is not).
    assert named == [str(final / "lib" / "mod.py"), str(sources[1]), str(sources[2])]
