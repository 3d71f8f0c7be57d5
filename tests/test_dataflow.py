"""Each step parses each document it needs once, and hands the parsed facts on (issue 22).

The `lock:`, `export:` and `publish:` steps of a small versioned stack run in a process of
their own each (tests/support/reads.py), with every file they open for reading counted: the
stack's lock files (own and lower layers' pylock and metadata), the runtime record, the
layer's config, its distributions' metadata, the module files and the output folder's
metadata must each be read at most once per step, and so must the lower layers' records of
what their packages depend on, which relocking above built layers reads. (A step reads
afresh what an earlier task wrote: tasks may run in other processes, or in another run.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.stacks import Stack

pytestmark = pytest.mark.slow  # builds a stack through the CLI

REPO = Path(__file__).parents[1]


def step_reads(stack: Stack, step: str, layer: str) -> dict[str, int]:
    """The files the step parsed (relative to the stack folder, or the runtime cache as
    `<runtimes>/...`), each with how often; its archive's contents are left out."""
    out = stack.root.parent / f"reads-{step}-{layer}.json"
    cmd = [sys.executable, "-m", "tests.support.reads", step, layer, str(stack.spec)]
    cmd += ["--runtime-cache", str(stack.runtime_cache), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=stack.env(), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    counted: dict[str, int] = {}
    for path, kind, n in json.loads(out.read_text()):
        if kind != "parse":
            continue
        for root, shown in ((stack.root, ""), (stack.runtime_cache, "<runtimes>/")):
            if Path(path).is_relative_to(root):
                counted[shown + Path(path).relative_to(root).as_posix()] = n
    return counted


def read_twice(counted: dict[str, int]) -> dict[str, int]:
    return {path: n for path, n in counted.items() if n > 1}


LOCKS = "requirements/{0}/pylock.{0}"
RECORD = "_build/.runtimes/cpython-3.11.json"


def _versioned(stack: Stack) -> Stack:
    # Versioned layers: their deployed names come from their lock metadata, read by every step.
    stack.versioned = stack.app_versioned = True
    return stack.write()


def test_lock_parses_each_document_once(stack: Stack) -> None:
    _versioned(stack).venvstacks("lock", str(stack.spec))
    app, web = LOCKS.format("app-hello"), LOCKS.format("framework-web")

    current = step_reads(stack, "lock", "app-hello")  # nothing changed: the lock is checked only
    assert {f"{app}.meta.json", f"{app}.toml", f"{web}.toml", RECORD, "hello.py"} <= current.keys()
    assert read_twice(current) == {}

    (stack.root / "hello.py").write_text((stack.root / "hello.py").read_text() + "# changed\n")
    bumped = step_reads(stack, "lock", "app-hello")  # its modules changed: its next version
    assert json.loads((stack.root / f"{app}.meta.json").read_text())["lock_version"] == 2
    assert {f"{app}.meta.json", "hello.py", "helper.py"} <= bumped.keys()
    assert read_twice(bumped) == {}

    stack.app_requirements = ["attrs"]
    relocked = step_reads(_versioned(stack), "lock", "app-hello")  # uv runs
    assert "attrs" in (stack.root / f"{app}.toml").read_text()
    assert {f"{app}.meta.json", f"{web}.toml", RECORD} <= relocked.keys()
    assert read_twice(relocked) == {}


def test_relock_above_built_layers_parses_their_records_once(stack: Stack) -> None:
    # What the framework's packages depend on, recorded by its install (lock/depmeta.py); the
    # runtime's lock pins nothing, so its record is not even looked for.
    stack.build()
    stack.app_requirements = ["attrs", "idna", "six"]
    relocked = step_reads(stack.write(), "lock", "app-hello")
    assert "six" in (stack.root / f"{LOCKS.format('app-hello')}.toml").read_text()
    state = "share/venv/metadata/build-state/dependencies.json"
    assert {f"_build/framework-web/{state}", RECORD} <= relocked.keys()
    assert f"_build/cpython-3.11/{state}" not in relocked
    assert read_twice(relocked) == {}


def test_export_and_publish_parse_each_document_once(stack: Stack) -> None:
    _versioned(stack).build()
    app, web = LOCKS.format("app-hello"), LOCKS.format("framework-web")
    config = "_build/app-hello/share/venv/metadata/venvstacks_layer.json"
    wanted = {f"{app}.meta.json", f"{app}.toml", f"{web}.meta.json", RECORD, config, "hello.py"}

    exported = step_reads(stack, "export", "app-hello")
    assert wanted <= exported.keys()
    assert any(path.endswith(".dist-info/METADATA") for path in exported)
    assert read_twice(exported) == {}

    published = step_reads(stack, "publish", "app-hello")
    assert (stack.root / "_artifacts" / "app-hello@1.tar.xz").is_file()
    assert wanted <= published.keys()
    assert read_twice(published) == {}

    unchanged = step_reads(stack, "publish", "app-hello")  # the archive stays: metadata only
    assert "_artifacts/__venvstacks__/env_metadata/app-hello.json" in unchanged
    assert read_twice(unchanged) == {}
