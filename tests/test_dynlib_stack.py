"""Shared libraries across layers on Linux, end to end.

A framework carries `libpublisher.so.1`; an app above it carries an extension module
linked against it with no RPATH. The app must work through its `bin/python` script (which
puts the framework's `share/venv/dynlib` on LD_LIBRARY_PATH) with an empty environment,
in the build folder, after local-export, after publish + deploy, and after the deployed
folder moved; and it must fail through `bin/python_`, which bypasses the script.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.support.native import PLATFORM, SONAME, compile_publisher, consumer_wheel, publisher_wheel
from tests.support.stacks import Stack
from tests.support.wheels import SimpleIndex

# Every test builds a stack through the CLI (gcc-made wheels, uv, venvs): slow.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.linux_only,  # ELF libraries
]

STACK = """\
[[runtimes]]
name = "cpython-3.11"
python_implementation = "cpython@3.11"
requirements = []
platforms = ["{platform}"]

[[frameworks]]
name = "publisher"
runtime = "cpython-3.11"
versioned = true
requirements = {framework_requirements}
dynlib_exclude = {exclude}
package_indexes = {{ publisher = "local", publisher-twin = "local" }}
platforms = ["{platform}"]

[[applications]]
name = "consumer"
frameworks = ["publisher"]
launch_module = "use_consumer.py"
requirements = ["consumer"]
package_indexes = {{ consumer = "local" }}
platforms = ["{platform}"]

[[tool.uv.index]]
name = "local"
url = "{url}"
explicit = true
"""

USE_CONSUMER = """\
import sys
import consumer

print("answer", consumer.answer())
print("executable", sys.executable)
"""

APP = "app-consumer"
FRAMEWORK = "framework-publisher"
LOADER_ERROR = f"{SONAME}: cannot open shared object file"


def make_stack(
    root: Path,
    runtime_cache: Path,
    index: SimpleIndex,
    exclude: Sequence[str] = (),
    framework_requirements: Sequence[str] = ("publisher",),
) -> Stack:
    work = root.parent / "native-build"
    publisher_wheel(index.root, work)
    publisher_wheel(index.root, work, name="publisher-twin", answer=43)
    consumer_wheel(index.root, work)
    stack = Stack(root, runtime_cache, index.url)
    root.mkdir(parents=True, exist_ok=True)
    stack.spec.write_text(
        STACK.format(
            platform=PLATFORM,
            url=index.url,
            exclude=json.dumps(list(exclude)),
            framework_requirements=json.dumps(list(framework_requirements)),
        )
    )
    (root / "use_consumer.py").write_text(USE_CONSUMER)
    return stack


def run_app(layer: Path, python: str = "python", env: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["env", "-i", *env, layer / "bin" / python, "-m", "use_consumer"],
        capture_output=True,
        text=True,
        check=False,
    )


def assert_app_works(layer: Path) -> None:
    proc = run_app(layer)
    assert proc.returncode == 0, proc.stderr
    assert "answer 42" in proc.stdout
    assert f"executable {layer}/bin/python\n" in proc.stdout  # the layer's, not python_
    bypass = run_app(layer, "python_")
    assert bypass.returncode != 0
    assert LOADER_ERROR in bypass.stderr


@pytest.fixture
def built(tmp_path: Path, runtime_cache: Path, simple_index: SimpleIndex) -> Stack:
    stack = make_stack(tmp_path / "stack", runtime_cache, simple_index)
    stack.build()
    return stack


def test_app_finds_the_framework_library_through_bin_python(built: Stack) -> None:
    framework = built.build_dir / FRAMEWORK
    link = framework / "share/venv/dynlib" / SONAME
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    assert link.resolve() == framework / "lib/python3.11/site-packages/publisher" / SONAME
    app = built.build_dir / APP
    assert (app / "lib/python3.11/site-packages/consumer/_consumer.abi3.so").is_file()
    assert not (app / "share/venv/dynlib").exists()  # an extension module is no library
    assert (app / "bin/python").read_text().startswith("#!/bin/bash\n")
    assert os.readlink(app / "bin/python3") == "python"
    assert_app_works(app)
    config = json.loads((app / "share/venv/metadata/venvstacks_layer.json").read_text())
    assert config["dynlib_dirs"] == [
        f"../{FRAMEWORK}@1/share/venv/dynlib",
        "../cpython-3.11/share/venv/dynlib",
    ]


def test_callers_library_path_comes_first(built: Stack, tmp_path: Path) -> None:
    own = compile_publisher(tmp_path / "callers-own", answer=7).parent
    app = built.build_dir / APP
    proc = run_app(app, env=[f"LD_LIBRARY_PATH={own}"])
    assert "answer 7" in proc.stdout, proc.stderr  # the caller's library won
    code = "import os; print(os.environ['LD_LIBRARY_PATH'])"
    path = subprocess.run(
        ["env", "-i", f"LD_LIBRARY_PATH={own}", app / "bin/python", "-c", code],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert path.split(":")[0] == str(own)
    assert path.split(":")[1].endswith(f"/{FRAMEWORK}/share/venv/dynlib")


def test_app_works_exported_published_deployed_and_moved(built: Stack, tmp_path: Path) -> None:
    built.venvstacks("local-export", str(built.spec))
    exported = built.root / "_export"
    assert_app_works(exported / APP)
    # the script names the deployed name of the versioned framework
    assert f"{FRAMEWORK}@1/share/venv/dynlib" in (exported / APP / "bin/python").read_text()

    # tar.gz: the format is not what is tested here, and xz costs ~10 s on the runtime
    built.venvstacks("publish", str(built.spec), "--format", "tar.gz")
    target = tmp_path / "deployed"
    built.venvstacks("deploy", str(built.root / "_artifacts"), str(target))
    assert_app_works(target / APP)
    verified = built.venvstacks("verify", str(target)).out  # python_ is postinstall's
    assert [line.split()[0] for line in verified.splitlines()] == ["ok", "ok", "ok"], verified

    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    target.rename(moved)
    for layer in ("cpython-3.11", f"{FRAMEWORK}@1", APP):
        subprocess.run(["python3", moved / layer / "postinstall.py"], check=True)
    assert_app_works(moved / APP)


def test_changed_library_set_rewires_only_the_builds_above(built: Stack) -> None:
    app = built.build_dir / APP
    # same libraries: the framework's rebuild leaves the app asleep
    (built.build_dir / FRAMEWORK / "share/venv/metadata/build-state/built.json").unlink()
    assert built.build().ran == {f"build:{FRAMEWORK}"}

    text = built.spec.read_text().replace("dynlib_exclude = []", 'dynlib_exclude = ["*"]')
    built.spec.write_text(text)
    assert built.build().ran == {f"build:{FRAMEWORK}", f"build:{APP}"}  # no reinstall
    assert not (built.build_dir / FRAMEWORK / "share/venv/dynlib").exists()
    proc = run_app(app)
    assert proc.returncode != 0
    assert LOADER_ERROR in proc.stderr


def test_excluding_every_library_makes_the_app_fail(
    tmp_path: Path, runtime_cache: Path, simple_index: SimpleIndex
) -> None:
    stack = make_stack(tmp_path / "stack", runtime_cache, simple_index, exclude=["*"])
    stack.build()
    assert not (stack.build_dir / FRAMEWORK / "share/venv/dynlib").exists()
    proc = run_app(stack.build_dir / APP)
    assert proc.returncode != 0
    assert LOADER_ERROR in proc.stderr


def test_two_libraries_with_one_name_is_a_one_line_error(
    tmp_path: Path, runtime_cache: Path, simple_index: SimpleIndex
) -> None:
    both = ["publisher", "publisher-twin"]
    stack = make_stack(tmp_path / "stack", runtime_cache, simple_index, framework_requirements=both)
    run = stack.build(check=False)
    assert run.code != 0
    failed = [line for line in run.out.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "Traceback" not in run.out + run.err
    site = "lib/python3.11/site-packages"
    assert f"{site}/publisher/{SONAME} and {site}/publisher_twin/{SONAME}" in failed[0]
    # named as every other message names it: its build name
    assert "venvstacks.toml: layer 'framework-publisher': field 'dynlib_exclude'" in failed[0]

    # excluding one of them settles it
    text = stack.spec.read_text().replace("dynlib_exclude = []", 'dynlib_exclude = ["publisher_twin/*"]')
    stack.spec.write_text(text)
    stack.build()
    assert_app_works(stack.build_dir / APP)
