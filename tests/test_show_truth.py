"""`--show-only` and `--json` list what the same command then does, layer by layer.

For each command, with and without `--include`, the listing's `selected_operations` are
compared with the tasks doit then runs or finds up to date (its `.  ` and `-- ` lines):
a lower layer or runtime the run pulls in must be listed, and nothing else.
"""

from __future__ import annotations

import json

import pytest

from tests.support.stacks import Run, Stack

# What each task is part of, by the existing venvstacks' operation names (a local export
# is its `publish` step); `runtime:` fetches what the runtime layer's lock needs.
_OPERATION = {"lock": "lock", "install": "build", "build": "build", "export": "publish", "publish": "publish"}


def _listed(stack: Stack, args: list[str]) -> set[tuple[str, str]]:
    data = json.loads(stack.venvstacks(*args, "--json").out)
    return {
        (entry["name"], op)
        for kind in ("runtimes", "frameworks", "applications")
        for entry in data[kind]
        for op in entry["selected_operations"]
    }


def _done(run: Run) -> set[tuple[str, str]]:
    done = set()
    for task in run.ran | run.up_to_date:
        kind, _, layer = task.partition(":")
        if kind in _OPERATION:
            done.add((layer, _OPERATION[kind]))
    return done


COMMANDS = [
    ["lock"],
    ["build"],
    ["build", "--include", "app-hello"],
    ["lock", "--include", "framework-web"],
    ["build", "--include", "framework-web"],
    ["publish", "--format", "tar.gz"],
    ["publish", "--format", "tar.gz", "--include", "app-hello"],
    ["local-export", "--include", "app-hello"],
    ["local-export", "--include", "framework-web"],
    ["local-export"],
]


@pytest.mark.slow
def test_the_listing_is_what_runs(stack: Stack) -> None:
    stack.write()
    for command in COMMANDS:
        args = [command[0], str(stack.spec), *command[1:]]
        listed = _listed(stack, args)
        run = stack.venvstacks(*args)
        assert listed == _done(run), command
    # The runtime and framework a run pulls in are listed with the steps it takes there.
    publish_app = _listed(stack, ["publish", str(stack.spec), "--include", "app-hello"])
    assert ("cpython-3.11", "build") in publish_app and ("framework-web", "lock") in publish_app
    assert ("app-hello", "lock") in publish_app and ("app-hello", "build") in publish_app


def test_a_disabled_layer_is_not_listed(stack: Stack) -> None:
    stack.write()
    stack.spec.write_text(
        stack.spec.read_text()
        + '\n[[applications]]\nname = "off"\nruntime = "cpython-3.11"\nlaunch_module = "hello.py"\n'
        "requirements = []\nplatforms = []\n"
    )
    run = stack.venvstacks("build", str(stack.spec), "--json")
    names = [e["name"] for e in json.loads(run.out)["applications"]]
    assert names == ["app-hello"]
    assert "skipping app-off: disabled" in run.err
