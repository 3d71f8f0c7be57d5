"""The platform model, and every platform-specific decision made with a platform chosen
explicitly (never read from this machine): layer configs, the `bin/python` script, which
files are shared libraries, and postinstall.py on each system, simulated."""

from __future__ import annotations

import dataclasses
import json
import os
import platform as stdlib_platform
import subprocess
import sys
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

import pytest

from tests.support.foreign import MACHO, PE, load_postinstall
from tests.support.spec_files import RUNTIME, app, framework
from venvstacks import platforms
from venvstacks.errors import VenvStacksError
from venvstacks.layers.dynlib import find_libraries
from venvstacks.layers.linking import LinkPlan, Peer, link_layer
from venvstacks.layers.pywrapper import install_wrapper, wrapper_script
from venvstacks.layout import LAYER_CONFIG
from venvstacks.platforms import ALL_PLATFORMS, PLATFORMS, host_platform, platform_of_tag
from venvstacks.runtimes.options import archive_key
from venvstacks.runtimes.record import RuntimeRecord
from venvstacks.stack.spec import load_stack
from venvstacks.stack.targets import Target

WIN, MAC, LINUX = PLATFORMS["win_amd64"], PLATFORMS["macosx_arm64"], PLATFORMS["linux_x86_64"]


def test_one_value_per_stack_file_name_in_upstreams_order() -> None:
    assert ALL_PLATFORMS == (
        "win_amd64",
        "win_arm64",
        "linux_x86_64",
        "linux_aarch64",
        "macosx_arm64",
        "macosx_x86_64",
    )
    assert all(PLATFORMS[name].name == name for name in ALL_PLATFORMS)


POSIX_LAYOUT = ("bin/python", "bin/python3", "lib/python3.12/site-packages", "share/venv/dynlib")


@pytest.mark.parametrize(
    ("name", "layout", "libraries", "archive"),
    [
        ("win_amd64", ("Scripts/python.exe", "python.exe", "Lib/site-packages", "Library/bin"),
         "add_dll_directory", ("zip", True)),
        ("linux_aarch64", POSIX_LAYOUT, "LD_LIBRARY_PATH", ("tar.xz", False)),
        ("macosx_x86_64", POSIX_LAYOUT, "DYLD_LIBRARY_PATH", ("tar.xz", False)),
    ],
)  # fmt: skip
def test_layout_facts(name: str, layout: tuple[str, ...], libraries: str, archive: tuple[str, bool]) -> None:
    p = PLATFORMS[name]
    paths = (p.layer_python, p.runtime_python, p.site_packages("3.12.4"), p.dynlib_dir)
    assert tuple(str(path) for path in paths) == layout
    assert p.dynlib_mechanism == libraries
    assert (p.default_format, p.bound_to_runtime) == archive


@pytest.mark.parametrize(
    ("name", "markers", "uv", "pbs", "tag", "suffixes"),
    [
        ("win_amd64", ("win32", "Windows", "AMD64", "nt"), "x86_64-pc-windows-msvc", ("windows", "x86_64"),
         "win_amd64", (".cp311-win_amd64.pyd", ".pyd")),
        ("win_arm64", ("win32", "Windows", "ARM64", "nt"), "aarch64-pc-windows-msvc", ("windows", "aarch64"),
         "win_arm64", (".cp311-win_arm64.pyd", ".pyd")),
        ("macosx_arm64", ("darwin", "Darwin", "arm64", "posix"), "aarch64-apple-darwin", ("macos", "aarch64"),
         "macosx_13_0_arm64", (".cpython-311-darwin.so", ".abi3.so", ".so")),
        ("linux_x86_64", ("linux", "Linux", "x86_64", "posix"), "x86_64-manylinux", ("linux", "x86_64"),
         "linux_x86_64", (".cpython-311-x86_64-linux-gnu.so", ".abi3.so", ".so")),
    ],
)  # fmt: skip
def test_names_each_tool_uses(
    name: str, markers: tuple[str, ...], uv: str, pbs: tuple[str, str], tag: str, suffixes: tuple[str, ...]
) -> None:
    p = PLATFORMS[name]
    assert (p.sys_platform, p.platform_system, p.platform_machine, p.os_name) == markers
    assert p.uv_name == uv
    assert (p.family, p.arch) == pbs  # pbs-installer's platform and architecture names
    assert p.tag((13, 0)) == tag
    assert p.extension_suffixes("3.11.9") == suffixes


def test_a_target_platform_names_its_platform() -> None:
    assert platform_of_tag("macosx_14_2_x86_64") is PLATFORMS["macosx_x86_64"]
    assert platform_of_tag("macosx_11_0_arm64") is MAC
    assert platform_of_tag("win_amd64") is WIN
    assert platform_of_tag("macosx_10_9_universal2") is None  # not judged


def test_target_tag_carries_the_macos_deployment_target() -> None:
    assert Target("macosx_arm64", "3.11", macos=(14, 2)).tag == "macosx_14_2_arm64"
    assert Target("win_amd64", "3.11").tag == "win_amd64"


@pytest.mark.parametrize(
    ("sys_platform", "machine", "expected"),
    [
        ("darwin", "arm64", "macosx_arm64"),
        ("darwin", "x86_64", "macosx_x86_64"),
        ("win32", "AMD64", "win_amd64"),
        ("win32", "ARM64", "win_arm64"),
        ("linux", "aarch64", "linux_aarch64"),
    ],
)
def test_host_platform(
    monkeypatch: pytest.MonkeyPatch, sys_platform: str, machine: str, expected: str
) -> None:
    monkeypatch.setattr(sys, "platform", sys_platform)
    monkeypatch.setattr(platforms, "_machine", lambda: machine.lower())
    assert host_platform() is PLATFORMS[expected]


@pytest.mark.parametrize("has_uname", [True, False])
def test_the_machine_comes_from_os_uname_else_platform_machine(
    monkeypatch: pytest.MonkeyPatch, has_uname: bool
) -> None:
    """os.uname where it exists (what platform.machine() reads there: no `platform` import
    on a no-op run), platform.machine() elsewhere (Windows, simulated)."""
    if has_uname:
        monkeypatch.setattr(os, "uname", lambda: SimpleNamespace(machine="ARM64"))
    else:
        monkeypatch.delattr(os, "uname", raising=False)
        monkeypatch.setattr(stdlib_platform, "machine", lambda: "AMD64")
    platforms._machine.cache_clear()
    try:
        assert platforms._machine() == ("arm64" if has_uname else "amd64")
    finally:
        platforms._machine.cache_clear()


def test_host_platform_reads_what_platform_machine_says() -> None:
    """Where os.uname exists, it is what platform.machine() reads (so a no-op run does
    without importing `platform`)."""
    if hasattr(os, "uname"):
        assert os.uname().machine == stdlib_platform.machine()


# --- layer configs and the bin/python script --------------------------------------------------

STACK = (
    RUNTIME + framework("fw") + app("hello", deps='frameworks = ["fw"]', extra='launch_module = "hello.py"')
)


def _plan(tmp_path: Path, platform: platforms.Platform, layer: str = "app-hello") -> LinkPlan:
    (tmp_path / "hello.py").write_text("print('hi')\n")
    (tmp_path / "venvstacks.toml").write_text(STACK)
    stack = load_stack(tmp_path / "venvstacks.toml")
    build = tmp_path / "_build"
    runtime = Peer(build / "cpython-3.11", "cpython-3.11")
    frameworks = (Peer(build / "framework-fw", "framework-fw"),) if layer == "app-hello" else ()
    return LinkPlan(stack.layer(layer), build / layer, "3.11.9", runtime, frameworks, tmp_path, platform)


def test_windows_layer_config(tmp_path: Path) -> None:
    assert _plan(tmp_path, WIN).layer_config().to_json() == {
        "python": "Scripts/python.exe",
        "base_python": "../cpython-3.11/python.exe",
        "pylib_dirs": ["../framework-fw/Lib/site-packages", "../cpython-3.11/Lib/site-packages"],
        "py_version": "3.11.9",
        "site_dir": "Lib/site-packages",
        "dynlib_dirs": ["../framework-fw/Library/bin", "../cpython-3.11/Library/bin"],
        "launch_module": "hello",
    }


def test_macos_layer_config_is_linuxs(tmp_path: Path) -> None:
    assert _plan(tmp_path, MAC).layer_config() == _plan(tmp_path, LINUX).layer_config()


def test_macos_script_is_zsh_setting_dyld_library_path() -> None:
    script = wrapper_script(["framework-fw", "cpython-3.11"], MAC)
    assert script.startswith("#!/bin/zsh\n")
    assert "LD_LIBRARY_PATH" not in script.replace("DYLD_LIBRARY_PATH", "")
    assert "export DYLD_LIBRARY_PATH\n" in script
    assert 'add_dynlib_dir "$bin_dir"/../../framework-fw/share/venv/dynlib\n' in script
    linux = wrapper_script(["framework-fw", "cpython-3.11"], LINUX)
    assert script == linux.replace("#!/bin/bash", "#!/bin/zsh").replace("LD_", "DYLD_")
    with pytest.raises(ValueError, match="win_amd64 layers have no bin/python script"):
        wrapper_script(["cpython-3.11"], WIN)


def test_shared_libraries_by_platform(tmp_path: Path) -> None:
    site = PurePosixPath("lib/python3.11/site-packages")
    files = {
        "pkg/.dylibs/libfoo.dylib": MACHO,
        "pkg/_core.cpython-311-darwin.so": MACHO,  # an extension module, not a library
        "pkg/libbar.so": MACHO,  # a Mach-O library named .so
        "pkg/notes.dylib": b"not a library",
        "pkg/libelf.so": b"\x7fELF",  # Linux's, in a macOS layer: no
    }
    for rel, data in files.items():
        (tmp_path / site / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / site / rel).write_bytes(data)
    found = find_libraries(tmp_path, site, MAC.extension_suffixes("3.11"), (), MAC)
    assert [(lib.path, lib.link_names) for lib in found] == [
        (f"{site}/pkg/libbar.so", ("libbar.so",)),
        (f"{site}/pkg/.dylibs/libfoo.dylib", ("libfoo.dylib",)),
    ]
    assert find_libraries(tmp_path, site, WIN.extension_suffixes("3.11"), (), WIN) == []


def test_macos_layer_is_wired_as_upstream_does(tmp_path: Path) -> None:
    """A cross-built macOS app: bin/python the zsh script, python_ the runtime's
    interpreter, dynlib links to its dylibs (made here, from Linux, with MAC chosen)."""
    plan = _plan(tmp_path, MAC, "framework-fw")
    site = plan.env_dir / plan.site_dir
    (site / "pkg/.dylibs").mkdir(parents=True)
    (site / "pkg/.dylibs/libfoo.dylib").write_bytes(MACHO)
    (plan.env_dir / "bin").mkdir()
    link_layer(plan)
    bin_dir = plan.env_dir / "bin"
    assert (bin_dir / "python").read_text().startswith("#!/bin/zsh\n")
    assert os.readlink(bin_dir / "python_") == "../../cpython-3.11/bin/python3"
    assert os.readlink(bin_dir / "python3.11") == "python"
    link = plan.env_dir / "share/venv/dynlib/libfoo.dylib"
    assert os.readlink(link) == "../../../lib/python3.11/site-packages/pkg/.dylibs/libfoo.dylib"
    assert json.loads((plan.env_dir / LAYER_CONFIG).read_text())["python"] == "bin/python"


def test_windows_layer_gets_no_script_and_no_links(tmp_path: Path) -> None:
    plan = _plan(tmp_path, WIN, "framework-fw")
    (plan.env_dir / "Scripts").mkdir(parents=True)
    (plan.env_dir / "Scripts/python.exe").write_bytes(PE)
    (plan.env_dir / "Library/bin").mkdir(parents=True)
    (plan.env_dir / "Library/bin/foo.dll").write_bytes(PE)
    link_layer(plan)
    assert (plan.env_dir / "Scripts/python.exe").read_bytes() == PE
    assert not (plan.env_dir / "bin").exists()
    assert not (plan.env_dir / "share/venv/dynlib").exists()
    assert (plan.env_dir / "Lib/site-packages/sitecustomize.py").is_file()


# --- postinstall.py on each system, simulated -------------------------------------------------


def _layer(deploy: Path, name: str, config: dict[str, object], files: dict[str, bytes]) -> Path:
    layer = deploy / name
    for rel, data in files.items():
        (layer / rel).parent.mkdir(parents=True, exist_ok=True)
        (layer / rel).write_bytes(data)
    (layer / LAYER_CONFIG).parent.mkdir(parents=True, exist_ok=True)
    (layer / LAYER_CONFIG).write_text(json.dumps(config))
    return layer


def _config(python: str, base: str, site: str, peers: list[str], dynlib: str) -> dict[str, object]:
    """A venvstacks_layer.json; peers: the lower layers' folders, runtime last."""
    return {
        "python": python,
        "base_python": base,
        "py_version": "3.11.9",
        "site_dir": site,
        "pylib_dirs": [f"{peer}/{site}" for peer in peers],
        "dynlib_dirs": [f"{peer}/{dynlib}" for peer in peers],
    }


def _windows_deployment(deploy: Path) -> Path:
    """Windows layers as their archives unpack (runtime, framework with a DLL, app)."""
    site, dlls, base = "Lib/site-packages", "Library/bin", "../cpython-3.11/python.exe"
    runtime = _config("python.exe", "python.exe", site, [], dlls)
    _layer(deploy, "cpython-3.11", runtime, {"python.exe": PE, "Lib/os.py": b"", f"{site}/README.txt": b""})
    fw_files = {"Scripts/python.exe": PE, f"{dlls}/fw.dll": PE, f"{site}/fw/__init__.py": b""}
    fw = _config("Scripts/python.exe", base, site, ["../cpython-3.11"], dlls)
    _layer(deploy, "framework-fw", fw, fw_files)
    app = _config("Scripts/python.exe", base, site, ["../framework-fw", "../cpython-3.11"], dlls)
    app_files = {"Scripts/python.exe": PE, f"{site}/hello.py": b"print('hi')\n"}
    return _layer(deploy, "app-hello", {**app, "launch_module": "hello"}, app_files)


def test_postinstall_on_windows_simulated(tmp_path: Path) -> None:
    deploy = tmp_path / "deploy"
    app = _windows_deployment(deploy)
    postinstall = load_postinstall()
    for name in ("cpython-3.11", "framework-fw", "app-hello"):
        assert postinstall.main(str(deploy / name), windows=True) == 0
    rt = deploy / "cpython-3.11"
    assert (app / "sitecustomize.py").exists() is False
    assert (app / "Lib/site-packages/sitecustomize.py").read_text().splitlines()[-6:] == [
        "from site import addsitedir",
        f"addsitedir('{deploy}/framework-fw/Lib/site-packages')",
        f"addsitedir('{rt}/Lib/site-packages')",
        "from os import add_dll_directory",
        f"add_dll_directory('{deploy}/framework-fw/Library/bin')",
        f"# not found: add_dll_directory('{rt}/Library/bin')",  # the runtime has none
    ]
    assert (app / "pyvenv.cfg").read_text() == (
        f"home = {rt}\ninclude-system-site-packages = false\nversion = 3.11.9\nexecutable = {rt}/python.exe\n"
    )
    # No link anywhere: python.exe stays the launcher copy the archive carried.
    assert (app / "Scripts/python.exe").read_bytes() == PE
    assert not [p for p in deploy.rglob("*") if p.is_symlink()]
    assert sorted(p.name for p in (app / "Scripts").iterdir()) == ["python.exe"]
    # Byte-compiled: Lib/, as Windows names it (the runtime's own Python is this one's 3.11).
    if sys.version_info[:2] == (3, 11):
        assert list((rt / "Lib").rglob("*.pyc"))


def test_postinstall_on_posix_makes_links_not_dll_calls(tmp_path: Path) -> None:
    """The same script on macOS or Linux: bin/python is the wrapper script, python_ links to
    the runtime, and no add_dll_directory appears."""
    deploy = tmp_path / "deploy"
    site, dynlib = "lib/python3.11/site-packages", "share/venv/dynlib"
    runtime = _config("bin/python3", "bin/python3", site, [], dynlib)
    _layer(deploy, "cpython-3.11", runtime, {"bin/python3": MACHO})
    script = wrapper_script(["cpython-3.11"], MAC).encode()
    config = _config("bin/python", "../cpython-3.11/bin/python3", site, ["../cpython-3.11"], dynlib)
    app = _layer(deploy, "app-hello", config, {"bin/python": script, f"{site}/hello.py": b""})
    assert load_postinstall().main(str(app), windows=False) == 0
    assert os.readlink(app / "bin/python_") == "../../cpython-3.11/bin/python3"
    assert os.readlink(app / "bin/python3") == "python"
    assert (app / "bin/python").read_bytes() == script
    assert "add_dll_directory" not in (app / site / "sitecustomize.py").read_text()


def test_runtime_archives_name_their_platform() -> None:
    assert archive_key("win_amd64:cpython@3.11") == ("win_amd64", "cpython", "3.11")
    assert archive_key("cpython@3.11.9") == (None, "cpython", "3.11.9")  # this machine's
    with pytest.raises(VenvStacksError, match="unknown platform 'mars'; choose from win_amd64, "):
        archive_key("mars:cpython@3.11")


def test_runtime_records_name_other_platforms_only() -> None:
    host = RuntimeRecord("cpython@3.11", "cpython", "3.11.9", "archive", "/a.tar.gz", "a" * 64, True)
    windows = dataclasses.replace(host, platform="win_amd64")
    assert "platform" not in host.to_json()  # as records were before they named one
    assert windows.to_json()["platform"] == "win_amd64"
    assert RuntimeRecord.from_json(windows.to_json()) == windows
    assert RuntimeRecord.from_json(host.to_json()) == host
    assert not host.same_runtime(windows)


# --- macOS's bin/python script, run by zsh (here, when zsh is installed; on macOS, always) ---

ZSH_PROBE = "import os, sys; print(sys.orig_argv[0]); print(os.environ.get('DYLD_LIBRARY_PATH'))"


@pytest.fixture
def zsh_wrapped(tmp_path: Path) -> Path:
    """deploy/app/bin/python: macOS's script; python_ this test's own Python."""
    if not Path("/bin/zsh").is_file():
        pytest.skip("no /bin/zsh here to run macOS's bin/python script")
    bin_dir = tmp_path / "deploy" / "app" / "bin"
    bin_dir.mkdir(parents=True)
    install_wrapper(bin_dir, Path(sys.executable), wrapper_script(["fw", "rt"], MAC), "3.11.7")
    return tmp_path / "deploy"


def _zsh_probe(python: Path, *env: str) -> subprocess.CompletedProcess[str]:
    cmd = ["env", "-i", *env, str(python), "-c", ZSH_PROBE]
    return subprocess.run(cmd, capture_output=True, text=True)


def test_macos_script_runs_under_zsh(zsh_wrapped: Path, tmp_path: Path) -> None:
    bin_dir = zsh_wrapped / "app" / "bin"
    fw, rt = (f"{bin_dir}/../../{name}/share/venv/dynlib" for name in ("fw", "rt"))
    assert _zsh_probe(bin_dir / "python").stdout.splitlines() == [f"{bin_dir}/python", f"{fw}:{rt}"]
    # The caller's folders first, none twice; python3 (a link to the script) works the same.
    mine = f"/opt/mine:{rt}"
    assert (
        _zsh_probe(bin_dir / "python3", f"DYLD_LIBRARY_PATH={mine}").stdout.splitlines()[1] == f"{mine}:{fw}"
    )
    alias = tmp_path / "alias"
    alias.symlink_to(zsh_wrapped)
    assert _zsh_probe(alias / "app/bin/python3.11").stdout.splitlines()[0] == f"{alias}/app/bin/python"
    (bin_dir / "python_").unlink()
    missing = _zsh_probe(bin_dir / "python")
    assert (missing.returncode, missing.stderr) == (
        1,
        f"{bin_dir}/python_ is missing: run postinstall.py in {zsh_wrapped}/app\n",
    )
