"""A layer gets the wheels that suit the machines it is for, not the build machine.

One package version comes with an old (manylinux_2_17) and a new (manylinux_2_28) wheel.
The build machine can run both, so only the layer's `linux_target` can make the difference.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from packaging.tags import Tag, parse_tag

from tests.support.stacks import Stack
from tests.support.wheels import SimpleIndex
from venvstacks.errors import VenvStacksError
from venvstacks.layers.envs import check_wheel_tags
from venvstacks.platforms import ALL_PLATFORMS, host_platform
from venvstacks.stack.targets import Target

HOST = host_platform()
ARCH = HOST.arch

STACK = """\
[[runtimes]]
name = "cpython-3.11"
python_implementation = "cpython@3.11"
requirements = []

[[frameworks]]
name = "old"
runtime = "cpython-3.11"
requirements = ["vstest-glibc"]
platforms = ["{host}"]
linux_target = "glibc@2.17"

[[frameworks]]
name = "new"
runtime = "cpython-3.11"
requirements = ["vstest-glibc"]
platforms = ["{host}"]

[[tool.uv.index]]
name = "local"
url = "{url}"
default = true
"""

pytestmark = pytest.mark.linux_only  # manylinux wheels


def _installed(stack: Stack, layer: str) -> tuple[str, str]:
    """(the WHEEL file's tag, the module's own TAG) of vstest-glibc in the layer."""
    site = stack.build_dir / layer / HOST.site_packages("3.11")
    wheel = (site / "vstest_glibc-1.0.dist-info" / "WHEEL").read_text()
    tag = next(line.partition(":")[2].strip() for line in wheel.splitlines() if line.startswith("Tag:"))
    python = stack.build_dir / layer / "bin" / "python"
    out = subprocess.run(
        ["env", "-i", python, "-c", "import vstest_glibc; print(vstest_glibc.TAG)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return tag, out


@pytest.mark.slow
def test_old_glibc_target_gets_the_old_wheel(
    tmp_path: Path, runtime_cache: Path, simple_index: SimpleIndex
) -> None:
    for glibc in ("2_17", "2_28"):
        tag = f"py3-none-manylinux_{glibc}_{ARCH}"
        simple_index.add("vstest-glibc", "1.0", tag, body=f"TAG = {tag!r}\n")
    stack = Stack(tmp_path / "stack", runtime_cache, index_url=None)
    stack.root.mkdir(parents=True)
    stack.spec.write_text(STACK.format(host=HOST.name, url=simple_index.url))
    stack.venvstacks("local-export", str(stack.spec))

    assert _installed(stack, "framework-old") == (f"py3-none-manylinux_2_17_{ARCH}",) * 2
    assert _installed(stack, "framework-new") == (f"py3-none-manylinux_2_28_{ARCH}",) * 2
    meta = stack.root / "_export" / "__venvstacks__" / "env_metadata"
    assert json.loads((meta / "framework-old.json").read_text())["linux_target"] == "glibc@2.17"
    assert json.loads((meta / "framework-new.json").read_text())["linux_target"] == "glibc@2.28"

    # A new target reinstalls the layer, although its lock (which lists both wheels) is the same.
    text = stack.spec.read_text().replace('name = "new"\n', 'name = "new"\nlinux_target = "glibc@2.17"\n')
    stack.spec.write_text(text)
    run = stack.build()
    assert "install:framework-new" in run.ran and "install:framework-old" not in run.ran
    assert _installed(stack, "framework-new") == (f"py3-none-manylinux_2_17_{ARCH}",) * 2


def _fake_install(env_dir: Path, dist: str, tags: list[str]) -> None:
    info = env_dir / HOST.site_packages("3.11") / f"{dist}.dist-info"
    info.mkdir(parents=True)
    lines = ["Wheel-Version: 1.0", "Root-Is-Purelib: false", *(f"Tag: {t}" for t in tags)]
    (info / "WHEEL").write_text("\n".join(lines) + "\n")


def test_a_wheel_that_does_not_fit_the_target_is_one_line(tmp_path: Path) -> None:
    env_dir = tmp_path / "framework-x"
    _fake_install(env_dir, "fine-1.0", ["py3-none-any"])
    _fake_install(env_dir, "old-2.0", ["cp311-cp311-manylinux_2_5_x86_64", "cp311-cp311-manylinux1_x86_64"])
    check_wheel_tags(env_dir, "3.11.7", Target("linux_x86_64", "3.11.7", glibc=(2, 17)))
    _fake_install(env_dir, "numpy-2.3.0", ["cp311-cp311-manylinux_2_28_x86_64"])
    with pytest.raises(VenvStacksError) as failure:
        check_wheel_tags(env_dir, "3.11.7", Target("linux_x86_64", "3.11.7", glibc=(2, 17)))
    assert str(failure.value) == (
        "layer 'framework-x': installed numpy 2.3.0 has wheel tag cp311-cp311-manylinux_2_28_x86_64, "
        "which does not fit the layer's target linux_x86_64 glibc@2.17"
    )
    check_wheel_tags(env_dir, "3.11.7", Target("linux_x86_64", "3.11.7", glibc=(2, 28)))


@pytest.mark.parametrize(
    ("target", "platform", "env"),
    [
        (Target("linux_x86_64", "3.11.7", glibc=(2, 17)), "x86_64-manylinux_2_17", {}),
        (Target("linux_aarch64", "3.11.7", glibc=(2, 34)), "aarch64-manylinux_2_34", {}),
        (
            Target("macosx_arm64", "3.11.7", macos=(11, 0)),
            "aarch64-apple-darwin",
            {"MACOSX_DEPLOYMENT_TARGET": "11.0"},
        ),
        (
            Target("macosx_x86_64", "3.11.7", macos=(10, 13)),
            "x86_64-apple-darwin",
            {"MACOSX_DEPLOYMENT_TARGET": "10.13"},
        ),
        (Target("win_amd64", "3.11.7"), "x86_64-pc-windows-msvc", {}),
        (Target("win_arm64", "3.11.7"), "aarch64-pc-windows-msvc", {}),
    ],
)
def test_what_uv_is_told_to_install_for(target: Target, platform: str, env: dict[str, str]) -> None:
    assert (target.uv_platform, target.install_env) == (platform, env)


@pytest.mark.parametrize("platform", ALL_PLATFORMS)
def test_every_platform_a_stack_may_name_has_markers_tags_and_a_uv_name(platform: str) -> None:
    target = Target(platform, "3.11.9")
    assert target.marker_env()["sys_platform"] in ("linux", "darwin", "win32")
    assert target.uv_platform.split("-")[0] in ("x86_64", "aarch64")
    assert any(target.accepts(tag) for tag in _pure_wheel_tags())


def _pure_wheel_tags() -> list[Tag]:
    return list(parse_tag("py3-none-any"))


def test_uvs_progress_lines_are_reported_and_kept_out_of_a_failure() -> None:
    from venvstacks.layers.envs import Install
    from venvstacks.stack.targets import Target
    from venvstacks.tools import run

    reported: list[str] = []
    how = Install(Target("linux_x86_64", "3.11.7"), {}, report=reported.append)
    script = (
        "echo 'Using Python 3.11.7 environment at: /x'; echo 'Downloading torch (846.1MiB)'; "
        "echo ' Downloaded torch'; echo ' + torch==2.5.1'; echo 'error: no space left'; exit 1"
    )
    with pytest.raises(VenvStacksError) as info:
        run("installing", ["sh", "-c", script], progress=how.progress_line)
    assert reported == [
        "uv: Using Python 3.11.7 environment at: /x",
        "uv: Downloading torch (846.1MiB)",
        "uv: Downloaded torch",
        "uv: + torch==2.5.1",
    ]
    assert str(info.value) == "installing failed (exit 1): error: no space left"
