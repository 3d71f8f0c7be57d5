"""A runtime packed from a local CPython is not portable: publish says so, and refuses by default."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.stacks import Run, Stack

# Every test here builds, exports or publishes a stack through the CLI: slow.
pytestmark = pytest.mark.slow

LAYERS = ("cpython-3.11", "framework-web", "app-hello")


def _venvstacks(stack: Stack, *args: str) -> Run:
    env = stack.env()
    del env["VENVSTACKS_ALLOW_LOCAL_RUNTIME"]  # the fixture allows it; a user's shell does not
    proc = subprocess.run(
        [sys.executable, "-m", "venvstacks", *args], cwd=stack.root, env=env, capture_output=True, text=True
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def test_publish_refuses_a_local_runtime_unless_allowed(stack: Stack) -> None:
    built = stack.build()
    # The run's summary says it once, at its end, where it is read.
    (local,) = [line for line in built.out.splitlines() if line.startswith("local runtime:")]
    assert local.startswith("local runtime: cpython-3.11 is the local CPython at ")
    refused = _venvstacks(stack, "publish", str(stack.spec), "--format", "tar.gz")
    assert refused.code == 1
    # One refusal per layer that had started: tasks run one per core by default.
    failed = [line for line in refused.out.splitlines() if line.startswith("FAILED")]
    runtime = "FAILED publish:cpython-3.11: refusing to publish: cpython-3.11 was packed"
    (first,) = [line for line in failed if line.startswith(runtime)]  # its task starts first
    for line in failed:
        layer = line.split(":")[1]
        assert line.startswith(f"FAILED publish:{layer}: refusing to publish: "), line
    for way in (
        "--runtime-source download",
        "--runtime-mirror URL",
        "--runtime-archive cpython@3.11=PATH_OR_URL#sha256=HEX",
        f"delete the cached local one ({stack.runtime_cache}/",
        "--allow-local-runtime",
        "`venvstacks docs runtimes`",
    ):
        assert way in first, way
    assert not list((stack.root / "_artifacts").glob("*.tar.gz"))

    allowed = _venvstacks(stack, "publish", str(stack.spec), "--format", "tar.gz", "--allow-local-runtime")
    assert allowed.code == 0, allowed.err
    assert sorted(p.name for p in (stack.root / "_artifacts").glob("*.tar.gz")) == sorted(
        f"{name}.tar.gz" for name in LAYERS
    )
    warnings = [line for line in allowed.err.splitlines() if "warning: publishing anyway" in line]
    assert len(warnings) == 1, warnings  # once per run, not once per layer
    assert "cpython-3.11 was packed from the local CPython at" in warnings[0]
    assert "every layer published on it runs on machines like this one only" in warnings[0]


def test_show_marks_layers_on_a_local_runtime(stack: Stack) -> None:
    before = _venvstacks(stack, "show", str(stack.spec))
    assert "(local runtime)" not in before.out  # not fetched yet: nothing known
    stack.build()
    text = _venvstacks(stack, "show", str(stack.spec)).out
    marked = [line.split("+-- ")[1].split()[0] for line in text.splitlines() if "(local runtime)" in line]
    assert marked == list(LAYERS)
    data = json.loads(_venvstacks(stack, "show", str(stack.spec), "--json").out)
    assert all(e["local_runtime"] for kind in ("runtimes", "frameworks", "applications") for e in data[kind])
