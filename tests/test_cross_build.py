"""Cross-building from this machine: `--platform win_amd64 --platform macosx_arm64`.

Offline: the runtimes are python-build-standalone style archives made by the test (stand-in
executables, served as `--runtime-archive PLATFORM:REQ=...`), the wheels are made for each
platform's tags and served on 127.0.0.1. Nothing built for another platform is run here:
the archives are checked member by member, and the Windows layers' postinstall.py is run
with Windows simulated (tests/test_platforms.py runs it for every system).
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.support.foreign import PE, foreign_runtime_archive, load_postinstall, native_wheel
from tests.support.runtime_fixtures import Mirror, RuntimeArchive
from tests.support.stacks import Stack
from tests.support.wheels import SimpleIndex, make_wheel
from venvstacks.platforms import PLATFORMS, host_platform
from venvstacks.ship.sbomread import read_sbom

HOST = host_platform()
WIN, MAC = PLATFORMS["win_amd64"], PLATFORMS["macosx_arm64"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(HOST.name != "linux_x86_64", reason="the wheels made here are for linux_x86_64 hosts"),
]

SPEC = """\
[[runtimes]]
name = "cpython-3.11"
python_implementation = "cpython@3.11"
requirements = []
platforms = ["{host}", "win_amd64", "macosx_arm64"]

[[frameworks]]
name = "native"
runtime = "cpython-3.11"
requirements = ["vstest-native"]

[[applications]]
name = "hello"
frameworks = ["native"]
launch_module = "hello.py"
requirements = ["vstest-pure"]
"""


@pytest.fixture
def cross_stack(tmp_path: Path, runtime_cache: Path, simple_index: SimpleIndex) -> Stack:
    for platform, tag in (
        (HOST, "cp311-cp311-manylinux_2_17_x86_64"),
        (WIN, "cp311-cp311-win_amd64"),
        (MAC, "cp311-cp311-macosx_11_0_arm64"),
    ):
        native_wheel(simple_index.root, "vstest-native", platform, tag)
    make_wheel(simple_index.root, "vstest-pure", "1.0")
    stack = Stack(tmp_path / "stack", runtime_cache, simple_index.url)
    stack.write()
    stack.spec.write_text(SPEC.format(host=HOST.name))
    return stack


def _archive_args(archives: dict[str, RuntimeArchive]) -> list[str]:
    return [f"--runtime-archive={name}:cpython@3.11={a.location}" for name, a in archives.items()]


def _names(archive: Path) -> dict[str, str | None]:
    """Member name -> link target (None for files and folders)."""
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            return {i.filename.rstrip("/"): None for i in zf.infolist()}
    with tarfile.open(archive) as tf:
        return {m.name: (m.linkname if m.issym() else None) for m in tf.getmembers()}


def test_publish_for_windows_and_macos_from_here(cross_stack: Stack, tmp_path: Path) -> None:
    archives = {
        "win_amd64": foreign_runtime_archive(tmp_path / "pbs", WIN),
        "macosx_arm64": foreign_runtime_archive(tmp_path / "pbs", MAC),
    }
    args = ["--publish", "--platform", "win_amd64", "--platform", "macosx_arm64", *_archive_args(archives)]
    run = cross_stack.build(*args)
    out = cross_stack.root / "_artifacts"
    assert sorted(p.name for p in out.iterdir()) == ["macosx_arm64", "win_amd64"]  # the host: not asked for
    assert {"install:win_amd64/app-hello", "publish:macosx_arm64/framework-native"} <= run.ran

    # --- Windows: zip, Scripts/python.exe, Lib/site-packages, Library/bin, no bin/ ---
    win = out / "win_amd64"
    zips = ["app-hello.zip", "cpython-3.11.zip", "framework-native.zip"]
    assert sorted(p.name for p in win.iterdir()) == sorted(
        ["__venvstacks__", *zips, *(f"{name}.cdx.json" for name in zips)]
    )
    # Each archive's SBOM, made here from the Windows layer's own .dist-info.
    sbom_file = win / "framework-native.zip.cdx.json"
    sbom = read_sbom(sbom_file.read_text(), sbom_file)
    assert [p.purl for p in sbom.packages] == ["pkg:pypi/vstest-native@1.0"]
    fw = _names(win / "framework-native.zip")
    assert {
        "framework-native/Scripts/python.exe",
        "framework-native/Scripts/pythonw.exe",
        "framework-native/Lib/site-packages/vstest_native/_core.cp311-win_amd64.pyd",
        "framework-native/Library/bin/vstest_native.dll",
        "framework-native/postinstall.py",
        "framework-native/share/venv/metadata/venvstacks_layer.json",
    } <= set(fw)
    assert not [n for n in fw if n.startswith("framework-native/bin")]
    assert not [n for n in fw if n.endswith(("sitecustomize.py", "pyvenv.cfg"))]
    assert not [n for n in fw if "/Lib/site-packages/Library" in n or "/Lib/site-packages/bin" in n]
    with zipfile.ZipFile(win / "framework-native.zip") as zf:
        assert zf.read("framework-native/Scripts/python.exe") == PE + b"venv launcher\n"
        record = zf.read("framework-native/Lib/site-packages/vstest_native-1.0.dist-info/RECORD").decode()
        assert "../../Library/bin/vstest_native.dll," in record
        config = json.loads(zf.read("framework-native/share/venv/metadata/venvstacks_layer.json"))
    assert config["python"] == "Scripts/python.exe"
    assert config["base_python"] == "../cpython-3.11/python.exe"
    rt = _names(win / "cpython-3.11.zip")
    assert {f"cpython-3.11/{n}" for n in ("python.exe", "Lib/os.py", "include/patchlevel.h")} <= set(rt)
    meta = json.loads((win / "__venvstacks__/env_metadata/app-hello.json").read_text())
    assert (meta["target_platform"], meta["bound_to_implementation"]) == ("win_amd64", True)
    assert meta["python_implementation"] == "cpython@3.11.9"  # read from include/patchlevel.h
    assert meta["archive_name"] == "app-hello.zip"

    # --- macOS: tar.xz, bin/python the zsh script, dynlib links to the dylibs ---
    mac = out / "macosx_arm64"
    fw = _names(mac / "framework-native.tar.xz")
    site = "framework-native/lib/python3.11/site-packages"
    assert fw["framework-native/bin/python3"] == "python"
    assert "framework-native/bin/python_" not in fw  # a link out of the layer: postinstall makes it
    assert f"{site}/vstest_native/_core.cpython-311-darwin.so" in fw
    assert fw["framework-native/share/venv/dynlib/libvstest_native.dylib"] == (
        "../../../lib/python3.11/site-packages/vstest_native/.dylibs/libvstest_native.dylib"
    )
    with tarfile.open(mac / "framework-native.tar.xz") as tf:
        script = tf.extractfile("framework-native/bin/python")
        assert script is not None
        text = script.read().decode()
    assert text.startswith("#!/bin/zsh\n") and "export DYLD_LIBRARY_PATH\n" in text
    assert 'add_dynlib_dir "$bin_dir"/../../cpython-3.11/share/venv/dynlib' in text
    assert _names(mac / "cpython-3.11.tar.xz")["cpython-3.11/bin/python3"] == "python3.11"
    meta = json.loads((mac / "__venvstacks__/env_metadata/framework-native.json").read_text())
    assert (meta["target_platform"], meta["bound_to_implementation"]) == ("macosx_13_0_arm64", False)
    assert meta["macosx_target"] == "13.0"

    # --- the Windows layers deployed, their postinstall.py run as on Windows ---
    refused = cross_stack.venvstacks("deploy", str(win), str(tmp_path / "here"), check=False)
    elsewhere = f"deploy it on such a machine (this one is {HOST.name})"
    assert (refused.code, refused.err) == (1, f"error: cpython-3.11 was built for win_amd64; {elsewhere}\n")
    deploy = tmp_path / "deploy"
    for name in ("cpython-3.11", "framework-native", "app-hello"):
        with zipfile.ZipFile(win / f"{name}.zip") as zf:
            zf.extractall(deploy)
    postinstall = load_postinstall()
    for name in ("cpython-3.11", "framework-native", "app-hello"):
        assert postinstall.main(str(deploy / name), windows=True) == 0
    custom = (deploy / "app-hello/Lib/site-packages/sitecustomize.py").read_text()
    assert f"add_dll_directory('{deploy}/framework-native/Library/bin')\n" in custom
    assert f"addsitedir('{deploy}/framework-native/Lib/site-packages')\n" in custom


def test_host_build_beside_a_cross_build_is_todays(cross_stack: Stack, tmp_path: Path) -> None:
    """--platform naming the host too: the host layers are built where and as without it."""
    archives = {"win_amd64": foreign_runtime_archive(tmp_path / "pbs", WIN)}
    both = ["--platform", HOST.name, "--platform", "win_amd64"]
    cross_stack.build("--publish", *both, *_archive_args(archives))
    out = cross_stack.root / "_artifacts"
    assert (out / "app-hello.tar.xz").is_file() and (out / "win_amd64" / "app-hello.zip").is_file()
    assert (cross_stack.build_dir / "app-hello" / "bin" / "python").is_file()
    assert (cross_stack.build_dir / "win_amd64" / "app-hello" / "Scripts" / "python.exe").is_file()
    again = cross_stack.build("--publish", *_archive_args(archives))  # no --platform: the host only
    assert again.ran == set()
    assert not any(task.startswith(("build:win", "install:win")) for task in again.up_to_date)


def test_a_foreign_runtime_never_serves_a_host_build(cross_stack: Stack, tmp_path: Path) -> None:
    archive = foreign_runtime_archive(tmp_path / "pbs", WIN)
    cross_stack.build("--platform", "win_amd64", *_archive_args({"win_amd64": archive}))
    entries = [json.loads(p.read_text()) for p in cross_stack.runtime_cache.glob("*/runtime.json")]
    windows = {e["archive_sha256"] for e in entries if e.get("platform") == "win_amd64"}
    assert archive.sha256 in windows  # the cache is the session's: other tests' are there too
    host = json.loads((cross_stack.build_dir / ".runtimes/cpython-3.11.json").read_text())
    assert host["archive_sha256"] not in windows and "platform" not in host
    cross = json.loads((cross_stack.build_dir / "win_amd64/.runtimes/cpython-3.11.json").read_text())
    assert (cross["archive_sha256"], cross["platform"], cross["version"]) == (
        archive.sha256,
        "win_amd64",
        "3.11.9",
    )


def test_relock_above_cross_built_layers_fetches_nothing_of_theirs(
    cross_stack: Stack, simple_index: SimpleIndex, tmp_path: Path
) -> None:
    """The framework built for Windows only: its record of what vstest-native depends on
    (lock/depmeta.py) spares relocking the app that package's metadata."""
    make_wheel(simple_index.root, "vstest-extra", "1.0")
    app = 'requirements = ["vstest-pure", "vstest-native"'  # the framework's package too
    cross_stack.spec.write_text(cross_stack.spec.read_text().replace('requirements = ["vstest-pure"', app))
    archive = foreign_runtime_archive(tmp_path / "pbs", WIN)
    args = ["--platform", "win_amd64", *_archive_args({"win_amd64": archive})]
    cross_stack.build(*args)
    assert not (cross_stack.build_dir / "framework-native").exists()
    cross_stack.spec.write_text(cross_stack.spec.read_text().replace(app, f'{app}, "vstest-extra"'))
    simple_index.requests.clear()
    assert "lock:app-hello" in cross_stack.build(*args).ran
    asked = [path for path in simple_index.requests if path.startswith("/files/")]
    assert any("vstest_extra-" in path for path in asked)
    assert not any("vstest_native-" in path for path in asked)


@pytest.mark.network  # numpy's real wheels for Windows and macOS, from the package index
def test_numpy_framework_for_windows_and_macos(tmp_path: Path, runtime_cache: Path) -> None:
    stack = Stack(tmp_path / "stack", runtime_cache, index_url=None)
    stack.write()
    spec = SPEC.format(host=HOST.name).replace('["vstest-native"]', '["numpy==2.1.3"]')
    stack.spec.write_text(spec.replace('["vstest-pure"]', "[]"))
    archives = {
        "win_amd64": foreign_runtime_archive(tmp_path / "pbs", WIN),
        "macosx_arm64": foreign_runtime_archive(tmp_path / "pbs", MAC),
    }
    stack.build(
        "--publish", "--platform", "win_amd64", "--platform", "macosx_arm64", *_archive_args(archives)
    )
    out = stack.root / "_artifacts"
    win = _names(out / "win_amd64" / "framework-native.zip")
    assert "framework-native/Lib/site-packages/numpy/_core/_multiarray_umath.cp311-win_amd64.pyd" in win
    assert not [n for n in win if n.endswith(".so")]
    mac = _names(out / "macosx_arm64" / "framework-native.tar.xz")
    site = "framework-native/lib/python3.11/site-packages"
    assert f"{site}/numpy/_core/_multiarray_umath.cpython-311-darwin.so" in mac
    dylibs = {n: t for n, t in mac.items() if n.startswith("framework-native/share/venv/dynlib/")}
    assert any(n.endswith("libscipy_openblas64_.dylib") for n in dylibs), dylibs  # delocate's .dylibs
    assert all(
        t and t.startswith("../../../lib/python3.11/site-packages/numpy/.dylibs/") for t in dylibs.values()
    )


def test_another_platforms_runtime_comes_from_its_pbs_download(
    cross_stack: Stack, runtime_mirror: Mirror
) -> None:
    """No archive named: pbs-installer's table names the Windows download, asked of the
    mirror; one it does not have is one line saying how to name another place."""
    # A cache of its own, holding this machine's runtimes only (hard links: no copying), so
    # no Windows runtime another test left in the session's cache can serve this one.
    cache = cross_stack.root.parent / "cache"
    for entry in cross_stack.runtime_cache.glob("*/runtime.json"):
        if json.loads(entry.read_text()).get("platform", HOST.name) == HOST.name:
            shutil.copytree(entry.parent, cache / entry.parent.name, symlinks=True, copy_function=os.link)
    cross_stack.runtime_cache = cache
    run = cross_stack.build("--platform", "win_amd64", "--runtime-mirror", runtime_mirror.url, check=False)
    assert run.code == 1
    windows = "-x86_64-pc-windows-msvc-install_only_stripped.tar.gz"
    asked = [p for p in runtime_mirror.requests if p.endswith(windows)]
    assert asked and asked[0].split("/")[2].startswith("cpython-3.11.")  # /<date>/<file>
    output = (run.out + run.err).splitlines()
    line = next(line for line in output if "runtime cpython@3.11 for win_amd64:" in line)
    assert "--runtime-archive 'win_amd64:cpython@3.11=LOC#sha256=HEX'" in line
    assert "Traceback" not in run.out + run.err
