"""Plain doit in a user's own folder, with venvstacks installed from its built wheel.

The tool is installed, not editable, into a fresh venv outside the repository; the stack
folder is made by `venvstacks init` and then given four independent apps, whose tiny
wheels come from a 127.0.0.1 index, on the session's local runtime: no network but PyPI
for the tool's own dependencies.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.stacks import Run
from tests.support.wheels import SimpleIndex

REPO = Path(__file__).parents[1]
APPS = ("a", "b", "c", "d")

FOUR_APPS = """\
[[runtimes]]
name = "cpython-3.11"
python_implementation = "cpython@3.11"
requirements = []
{apps}
[tool.uv]
index-url = "{url}"
"""

APP = """
[[applications]]
name = "{name}"
runtime = "cpython-3.11"
launch_module = "launch_{name}.py"
requirements = ["vstest-{name}"]
"""


@dataclass(frozen=True)
class Installed:
    """venvstacks installed by pip from its wheel into a venv of its own."""

    bin: Path

    def run(self, folder: Path, tool: str, *args: str, env: dict[str, str]) -> Run:
        proc = subprocess.run(
            [str(self.bin / tool), *args], cwd=folder, env=env, capture_output=True, text=True, check=False
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("installed")
    source = tmp / "source"  # a copy: building writes build/ and egg-info beside the sources
    shutil.copytree(REPO / "venvstacks", source / "venvstacks", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "docs", source / "docs")  # the package's description, and `venvstacks docs`
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    uv = [sys.executable, "-m", "uv"]
    env = dict(os.environ, UV_PYTHON_DOWNLOADS="never")
    subprocess.run([*uv, "build", "-q", "--wheel", "--out-dir", tmp / "dist", source], check=True, env=env)
    (wheel,) = (tmp / "dist").glob("venvstacks-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, str(wheel)], check=True, env=env)
    return Installed(venv / "bin")


def _env(runtime_cache: Path, installed: Installed) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(
        PATH=f"{installed.bin}{os.pathsep}{env.get('PATH', '')}",
        VENVSTACKS_RUNTIME_CACHE=str(runtime_cache),
        VENVSTACKS_RUNTIME_SOURCE="local",
        UV_PYTHON_DOWNLOADS="never",
    )
    return env


def _ok(run: Run, what: Sequence[str]) -> Run:
    assert run.code == 0, f"{' '.join(what)} failed ({run.code}):\n{run.out}\n{run.err}"
    return run


@pytest.mark.slow
def test_plain_doit_in_a_users_folder(
    tmp_path: Path, installed: Installed, runtime_cache: Path, simple_index: SimpleIndex
) -> None:
    env = _env(runtime_cache, installed)
    folder = tmp_path / "my stack"  # a space, as users' folders have
    _ok(installed.run(tmp_path, "venvstacks", "init", folder.name, env=env), ["init"])
    assert (folder / "dodo.py").read_text().startswith("from venvstacks.dodo import *")
    assert set((folder / ".gitignore").read_text().split()) == {"_build/", "_export/", "_artifacts/"}
    again = installed.run(tmp_path, "venvstacks", "init", folder.name, env=env)
    assert again.code != 0 and len(again.err.splitlines()) == 1 and "already exist" in again.err

    for name in APPS:
        simple_index.add(f"vstest-{name}", "1.0")
        launch = f"import vstest_{name}\nprint('{name}', vstest_{name}.__file__)\n"
        (folder / f"launch_{name}.py").write_text(launch)
    apps = "".join(APP.format(name=name) for name in APPS)
    (folder / "venvstacks.toml").write_text(FOUR_APPS.format(apps=apps, url=simple_index.url))

    def doit(*args: str) -> Run:
        return _ok(installed.run(folder, "doit", *args, env=env), ["doit", *args])

    listed = doit("list").out.split()
    assert {f"build:app-{name}" for name in APPS} <= set(listed)

    first = doit("-n", "4")
    assert {f"install:app-{name}" for name in APPS} <= first.ran
    for name in APPS:
        python = folder / "_build" / f"app-{name}" / "bin" / "python"
        out = subprocess.run(
            ["env", "-i", python, "-m", f"launch_{name}"], capture_output=True, text=True, check=True
        ).stdout
        assert out.startswith(f"{name} {folder / '_build' / f'app-{name}'}"), out  # its own wheel

    second = doit()
    assert second.ran == set() and f"build:app-{APPS[0]}" in second.up_to_date
    # The CLI shares the state: it finds the same tasks up to date.
    cli = _ok(installed.run(folder, "venvstacks", "build", env=env), ["venvstacks", "build"])
    assert cli.ran == set()

    (folder / "launch_a.py").write_text("print('changed')\n")
    assert doit("build:app-a").ran == {"build:app-a"}
    assert "build:app-a" in doit("info", "build:app-a").out
    doit("forget", "build:app-b")
    assert doit("build:app-b").ran == {"build:app-b"}
    doit("clean", "install:app-c")
    assert not (folder / "_build" / "app-c").exists()
    assert doit().ran == {"install:app-c", "build:app-c"}


@pytest.mark.slow
def test_doit_variables_are_taken_from_the_folder_doit_runs_in(
    tmp_path: Path, installed: Installed, runtime_cache: Path
) -> None:
    env = _env(runtime_cache, installed)
    _ok(installed.run(tmp_path, "venvstacks", "init", "here", env=env), ["init"])
    _ok(installed.run(tmp_path, "venvstacks", "init", "other", "--python", "3.11", env=env), ["init"])
    (tmp_path / "other" / "venvstacks.toml").write_text(
        (tmp_path / "other" / "venvstacks.toml").read_text().replace('name = "hello"', 'name = "there"')
    )
    args = ["stack=../other", "build_dir=elsewhere", "build:app-there"]
    run = installed.run(tmp_path / "here", "doit", *args, env=env)
    assert run.code == 0, run.err
    assert (tmp_path / "here" / "elsewhere" / "app-there" / "bin" / "python").exists()
    assert not (tmp_path / "other" / "_build").exists()


def test_doit_without_a_stack_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "dodo.py").write_text("from venvstacks.dodo import *  # noqa: F403\n")
    proc = subprocess.run(
        [sys.executable, "-m", "doit", "list"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: venvstacks.toml: stack file not found ({tmp_path.resolve() / 'venvstacks.toml'}); "
        "pass the path to a venvstacks.toml, or write a starter stack with `venvstacks init`"
    ]


def test_plain_doit_given_a_stack_file_name_says_which_task_was_meant(tmp_path: Path) -> None:
    (tmp_path / "dodo.py").write_text("from venvstacks.dodo import *  # noqa: F403\n")
    (tmp_path / "launch_fetch.py").write_text("")
    (tmp_path / "venvstacks.toml").write_text(
        FOUR_APPS.format(apps=APP.format(name="fetch"), url="http://127.0.0.1:9/simple")
    )
    proc = subprocess.run(
        [sys.executable, "-m", "doit", "-n", "2", "build:fetch"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 3
    assert proc.stderr.splitlines() == [
        "error: no task build:fetch: 'fetch' is no layer's build name; did you mean build:app-fetch?"
    ]
    assert not (tmp_path / "_build" / "app-fetch").exists()


@pytest.mark.slow
def test_a_users_path_from_the_wheel_init_build_publish_deploy_break_repair(
    tmp_path: Path, installed: Installed, runtime_cache: Path
) -> None:
    env = _env(runtime_cache, installed)
    env["VENVSTACKS_ALLOW_LOCAL_RUNTIME"] = "1"  # the session's runtimes are local CPythons
    folder = tmp_path / "mine"
    init = _ok(installed.run(tmp_path, "venvstacks", "init", "mine", env=env), ["init"])
    hint = init.out.splitlines()[-1]
    assert "`(cd _build/app-hello && bin/python -m hello)`" in hint
    _ok(installed.run(folder, "doit", env=env), ["doit"])
    # The hint, as a user runs it from the stack folder: the built copy runs, not ./hello.py.
    (folder / "hello.py").write_text("print('the source, not the build')\n")
    ran = subprocess.run(["sh", "-c", "cd _build/app-hello && bin/python -m hello"], cwd=folder,
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert ran.stdout.startswith("hello from "), ran.stdout

    _ok(installed.run(folder, "venvstacks", "publish", "--format", "tar.gz", env=env), ["publish"])
    target = tmp_path / "deployed"
    _ok(installed.run(folder, "venvstacks", "deploy", "_artifacts", str(target), env=env), ["deploy"])
    (target / "app-hello" / "share" / "venv" / "metadata" / "venvstacks_layer.json").write_text("{}")
    broken = installed.run(folder, "venvstacks", "verify", str(target), env=env)
    assert broken.code == 1
    assert broken.out.splitlines()[-1].startswith(
        f"to repair: venvstacks deploy {folder / '_artifacts'} {target}"
    )
    repaired = _ok(
        installed.run(folder, "venvstacks", "deploy", "_artifacts", str(target), env=env), ["deploy"]
    )
    assert "(1 repaired)" in repaired.out and "Redeploying app-hello: " in repaired.err
    _ok(installed.run(folder, "venvstacks", "verify", str(target), env=env), ["verify"])

    # Every page a message names is there, from the installed package alone.
    listed = _ok(installed.run(folder, "venvstacks", "docs", "-q", env=env), ["docs"]).out.split()
    assert set(listed) == {p.stem for p in (REPO / "docs").glob("*.md")}
    page = _ok(installed.run(folder, "venvstacks", "docs", "deployment", env=env), ["docs"]).out
    assert page == (REPO / "docs" / "deployment.md").read_text().rstrip("\n") + "\n"
    python = installed.bin / "python"
    description = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.metadata('venvstacks').get_payload())"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert description.startswith("# venvstacks") and "dev.py" not in description
