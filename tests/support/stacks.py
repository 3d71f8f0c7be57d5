"""A small stack on disk, built through the real CLI, with the tasks each run executed."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.support.wheels import SimpleIndex

THREE_LAYERS = """\
[[runtimes]]
name = "cpython-3.11"
python_implementation = "{python}"
requirements = []

[[frameworks]]
name = "web"
runtime = "cpython-3.11"
versioned = {versioned}
requirements = {framework_requirements}

[[applications]]
name = "hello"
frameworks = ["web"]
versioned = {app_versioned}
launch_module = "hello.py"
support_modules = ["helper.py"]
requirements = {app_requirements}
"""

_NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing listens there

HELLO = """\
import attrs
import idna
import helper

print("idna from", idna.__file__)
print("attrs from", attrs.__file__)
print(helper.GREETING)
"""


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def ran(self) -> set[str]:
        return {line[3:].strip() for line in self.out.splitlines() if line.startswith(".  ")}

    @property
    def up_to_date(self) -> set[str]:
        return {line[3:].strip() for line in self.out.splitlines() if line.startswith("-- ")}


@dataclass
class Stack:
    root: Path
    runtime_cache: Path
    index_url: str | None  # the session's package index on 127.0.0.1 (None: the real one)
    python: str = "cpython@3.11"
    versioned: bool = False  # the framework
    app_versioned: bool = False
    framework_requirements: list[str] = field(default_factory=lambda: ["idna"])
    app_requirements: list[str] = field(default_factory=lambda: ["attrs", "idna"])
    greeting: str = "hello from the app layer"
    uv_cache: Path | None = None  # a cache of its own: each wheel is really fetched once

    @property
    def spec(self) -> Path:
        return self.root / "venvstacks.toml"

    @property
    def build_dir(self) -> Path:
        return self.root / "_build"

    def write(self) -> Stack:
        self.root.mkdir(parents=True, exist_ok=True)
        text = THREE_LAYERS.format(
            python=self.python,
            versioned=str(self.versioned).lower(),
            app_versioned=str(self.app_versioned).lower(),
            framework_requirements=_toml_list(self.framework_requirements),
            app_requirements=_toml_list(self.app_requirements),
        )
        _write_if_changed(self.spec, text)
        _write_if_changed(self.root / "hello.py", HELLO)
        _write_if_changed(self.root / "helper.py", f"GREETING = {self.greeting!r}\n")
        return self

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            VENVSTACKS_RUNTIME_CACHE=str(self.runtime_cache),
            VENVSTACKS_RUNTIME_SOURCE="local",
            UV_PYTHON_DOWNLOADS="never",
        )
        if self.uv_cache is not None:
            env["UV_CACHE_DIR"] = str(self.uv_cache)
        if self.index_url is not None:
            env["UV_DEFAULT_INDEX"] = self.index_url
            env.pop("UV_INDEX_URL", None)  # older spelling; it would win over ours
            # Offline for sure: anything but 127.0.0.1 goes to a proxy that is not there.
            env.update(HTTP_PROXY=_NOWHERE, HTTPS_PROXY=_NOWHERE, ALL_PROXY=_NOWHERE, NO_PROXY="127.0.0.1")
            for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
                env.pop(name, None)
        return env

    def venvstacks(self, *args: str, check: bool = True) -> Run:
        proc = subprocess.run(
            [sys.executable, "-m", "venvstacks", *args],
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        run = Run(proc.returncode, proc.stdout, proc.stderr)
        if check and run.code != 0:
            pytest.fail(f"venvstacks {' '.join(args)} failed ({run.code}):\n{run.out}\n{run.err}")
        return run

    def build(self, *args: str, check: bool = True) -> Run:
        return self.venvstacks("build", str(self.spec), *args, check=check)

    def run_app(self) -> str:
        python = self.build_dir / "app-hello" / "bin" / "python"
        proc = subprocess.run(
            ["env", "-i", str(python), "-m", "hello"], capture_output=True, text=True, check=True
        )
        return proc.stdout


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


@pytest.fixture
def stack(tmp_path: Path, runtime_cache: Path, package_index: SimpleIndex) -> Stack:
    return Stack(tmp_path / "stack", runtime_cache, package_index.url).write()
