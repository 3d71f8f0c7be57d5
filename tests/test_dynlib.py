"""The pieces of the shared-library wiring, on small trees: which files count as libraries,
what `dynlib_exclude` matches, the link folder, and what the `bin/python` script does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.native import SONAME, compile_publisher, gcc
from venvstacks.layers.dynlib import (
    AmbiguousLibrary,
    apply_links,
    exclude_pattern,
    find_libraries,
    plan_links,
)
from venvstacks.layers.elf import shared_library_soname
from venvstacks.layers.pywrapper import install_wrapper, wrapper_script
from venvstacks.platforms import PLATFORMS

pytestmark = pytest.mark.linux_only  # ELF libraries

LINUX = PLATFORMS["linux_x86_64"]
SITE = LINUX.site_packages("3.11")
SUFFIXES = LINUX.extension_suffixes("3.11")
DYNLIB = LINUX.dynlib_dir


def _library(path: Path, soname: str | None = None) -> Path:
    """A real shared library at `path` (soname as given, or none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    source = path.with_name(path.name + ".c")
    source.write_text(f"int {path.parent.name.replace('.', '_')}(void) {{ return 1; }}\n")
    args = ["-shared", "-fPIC", "-o", str(path), str(source)]
    if soname:
        args.insert(0, f"-Wl,-soname,{soname}")
    subprocess.run([gcc(), *args], check=True)
    source.unlink()
    return path


def test_soname_is_read_from_the_dynamic_section(tmp_path: Path) -> None:
    lib = compile_publisher(tmp_path, answer=1)
    assert shared_library_soname(lib) == SONAME
    assert shared_library_soname(_library(tmp_path / "libplain.so")) == ""
    text = tmp_path / "libfake.so.1"
    text.write_text("INPUT(-lc)\n")  # a linker script, as some distributions ship
    assert shared_library_soname(text) is None
    assert shared_library_soname(tmp_path / "missing.so") is None


def test_libraries_are_found_by_elf_type_and_name(tmp_path: Path) -> None:
    site = tmp_path / SITE
    _library(site / "cuda/lib/libcudart.so.12", soname="libcudart.so.12")
    _library(site / "pkg.libs/libfoo-1a2b.so.1.2.3", soname="libfoo.so.1")
    _library(site / "pkg/_speedups.cpython-311-x86_64-linux-gnu.so")
    _library(site / "pkg/_limited.abi3.so")
    _library(site / "pkg/__pycache__/libcached.so")
    (site / "pkg/notes.so.txt").write_text("not a library")
    (site / "pkg/data.so").write_bytes(b"\x7fELF but truncated")
    found = find_libraries(tmp_path, SITE, SUFFIXES, (), LINUX)
    assert [(lib.path, lib.link_names) for lib in found] == [
        (f"{SITE}/cuda/lib/libcudart.so.12", ("libcudart.so.12",)),
        (f"{SITE}/pkg.libs/libfoo-1a2b.so.1.2.3", ("libfoo-1a2b.so.1.2.3", "libfoo.so.1")),
    ]
    links = plan_links(tmp_path, DYNLIB, found)
    apply_links(tmp_path, DYNLIB, links)
    folder = tmp_path / "share/venv/dynlib"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["libcudart.so.12", "libfoo-1a2b.so.1.2.3", "libfoo.so.1"]
    assert os.readlink(folder / "libfoo.so.1") == f"../../../{SITE}/pkg.libs/libfoo-1a2b.so.1.2.3"
    apply_links(tmp_path, DYNLIB, {})
    assert not folder.exists()


@pytest.mark.parametrize(
    ("pattern", "matched"),
    [
        ("*", {"a/libx.so", "a/b/liby.so.1", "a/.hidden/libz.so"}),
        ("*.so", {"a/libx.so", "a/.hidden/libz.so"}),
        ("b/*", {"a/b/liby.so.1"}),
        ("a/**", {"a/libx.so", "a/b/liby.so.1", "a/.hidden/libz.so"}),
        ("a/**/liby.so.?", {"a/b/liby.so.1"}),
        ("site-packages/a/*", {"a/libx.so"}),
        ("ibx.so", set()),  # whole names only
        ("lib[xz].so", {"a/libx.so", "a/.hidden/libz.so"}),
        ("lib[!x].so", {"a/.hidden/libz.so"}),
    ],
)
def test_exclude_globs_match_the_end_of_the_path(pattern: str, matched: set[str]) -> None:
    paths = ["a/libx.so", "a/b/liby.so.1", "a/.hidden/libz.so"]
    regex = exclude_pattern(pattern)
    assert {p for p in paths if regex.search(f"/{SITE}/{p}")} == matched


def test_one_name_for_two_different_files_is_ambiguous(tmp_path: Path) -> None:
    site = tmp_path / SITE
    _library(site / "one/libdup.so")
    _library(site / "two/libdup.so")
    with pytest.raises(AmbiguousLibrary) as caught:
        plan_links(tmp_path, DYNLIB, find_libraries(tmp_path, SITE, SUFFIXES, (), LINUX))
    assert str(caught.value) == (
        f"{SITE}/one/libdup.so and {SITE}/two/libdup.so would both be linked as "
        "share/venv/dynlib/libdup.so; add a pattern matching one of them to dynlib_exclude"
    )
    assert plan_links(tmp_path, DYNLIB, find_libraries(tmp_path, SITE, SUFFIXES, ["two/*"], LINUX)) == {
        "libdup.so": f"{SITE}/one/libdup.so"
    }
    # the very same bytes in two vendored folders are not a conflict
    (site / "two/libdup.so").write_bytes((site / "one/libdup.so").read_bytes())
    links = plan_links(tmp_path, DYNLIB, find_libraries(tmp_path, SITE, SUFFIXES, (), LINUX))
    assert links == {"libdup.so": f"{SITE}/one/libdup.so"}


PROBE = "import os, sys; print(sys.orig_argv[0]); print(os.environ.get('LD_LIBRARY_PATH'))"


@pytest.fixture
def wrapped(tmp_path: Path) -> Path:
    """deploy/{fw,rt,app}: app's bin/python is the script, python_ the test's own Python."""
    deploy = tmp_path / "deploy"
    bin_dir = deploy / "app" / "bin"
    bin_dir.mkdir(parents=True)
    install_wrapper(bin_dir, Path(sys.executable), wrapper_script(["fw", "rt"], LINUX), "3.11.7")
    return deploy


def _probe(python: Path, *env: str) -> list[str]:
    cmd = ["env", "-i", *env, str(python), "-c", PROBE]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return proc.stdout.splitlines()


def test_script_appends_lower_folders_after_the_callers(wrapped: Path) -> None:
    bin_dir = wrapped / "app" / "bin"
    assert _probe(bin_dir / "python") == [
        f"{bin_dir}/python",
        f"{bin_dir}/../../fw/share/venv/dynlib:{bin_dir}/../../rt/share/venv/dynlib",
    ]
    mine = f"/opt/mine:{bin_dir}/../../rt/share/venv/dynlib"
    assert _probe(bin_dir / "python3", f"LD_LIBRARY_PATH={mine}")[1] == (
        f"{mine}:{bin_dir}/../../fw/share/venv/dynlib"  # the caller's first, none twice
    )


def test_script_keeps_symlinked_folders_as_the_caller_named_them(wrapped: Path, tmp_path: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(wrapped)
    assert _probe(alias / "app/bin/python3.11")[0] == f"{alias}/app/bin/python"
    elsewhere = tmp_path / "my-python"
    elsewhere.symlink_to(wrapped / "app/bin/python")  # a link to the script itself is followed
    assert _probe(elsewhere)[0] == f"{wrapped}/app/bin/python"


def test_script_without_python_underscore_says_to_run_postinstall(wrapped: Path) -> None:
    (wrapped / "app/bin/python_").unlink()
    cmd = ["env", "-i", str(wrapped / "app/bin/python"), "-c", "pass"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr == f"{wrapped}/app/bin/python_ is missing: run postinstall.py in {wrapped}/app\n"
