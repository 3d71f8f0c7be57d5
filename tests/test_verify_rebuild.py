"""`venvstacks verify --rebuild ARTIFACTS_DIR`: published archives rebuilt from the committed locks."""

from __future__ import annotations

import json

import pytest

from tests.support.stacks import Stack


@pytest.mark.slow
def test_rebuild_reproduces_then_names_what_changed(stack: Stack) -> None:
    stack.build()
    stack.venvstacks("publish", str(stack.spec))
    artifacts = stack.root / "_artifacts"
    meta_before = (artifacts / "__venvstacks__" / "venvstacks.json").read_text()
    locks_before = sorted(p.read_bytes() for p in (stack.root / "requirements").rglob("*") if p.is_file())

    run = stack.venvstacks("verify", "--rebuild", str(artifacts), "--stack", str(stack.spec))
    assert [line.split()[:2] for line in run.out.splitlines()] == [
        ["reproduced", "cpython-3.11"],
        ["reproduced", "framework-web"],
        ["reproduced", "app-hello"],
    ]

    stack.greeting = "changed after publishing"
    stack.write()
    run = stack.venvstacks("verify", "--rebuild", str(artifacts), "--stack", str(stack.spec), check=False)
    assert run.code == 1
    lines = run.out.splitlines()
    assert lines[0].startswith("reproduced  cpython-3.11") and lines[1].startswith(
        "reproduced  framework-web"
    )
    assert lines[2].startswith("DIFFERS     app-hello: sha256 ")
    assert (
        "first differing member: app-hello/lib/python3.11/site-packages/helper.py (published file" in lines[2]
    )

    # Nothing of the user's stack folder was touched: the rebuild happened elsewhere.
    assert (artifacts / "__venvstacks__" / "venvstacks.json").read_text() == meta_before
    assert (
        sorted(p.read_bytes() for p in (stack.root / "requirements").rglob("*") if p.is_file())
        == locks_before
    )
    assert json.loads(meta_before)["layers"]["applications"][0]["files_manifest_sha256"]
