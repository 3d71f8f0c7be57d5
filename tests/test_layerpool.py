"""The parallel deploy schedule: order, failures and Ctrl-C, with folders standing in for layers."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from venvstacks.ship.layerpool import LayerSteps, run_layers

# runtime <- fw <- app, and a second runtime on its own
NEEDS = {"rt": [], "fw": ["rt"], "app": ["fw", "rt"], "rt2": []}


class Deployment:
    """Unpack makes a hidden staging folder; finish renames it (after checking its lower
    layers are in place); what happened is recorded for the test to look at."""

    def __init__(self, root: Path, fail: str = "", interrupt: str = "") -> None:
        self.root, self.fail, self.interrupt = root, fail, interrupt
        self.done: list[str] = []
        self.stopped: list[str] = []
        self.app_waiting = threading.Event()

    def unpack(self, name: str, stop: threading.Event) -> Path:
        staging = self.root / f".{name}.partial"
        staging.mkdir()
        if name == "app" and self.interrupt:
            self.app_waiting.set()
            if stop.wait(timeout=60):  # a real unpack looks at the flag between members
                self.stopped.append(name)
                staging.rmdir()
                raise RuntimeError("stopped")
        return staging

    def finish(self, name: str, staging: Path) -> None:
        if name == self.interrupt:
            self.app_waiting.wait(timeout=60)
            staging.rmdir()  # as deploy's finish step: its own staging goes on any error
            raise KeyboardInterrupt
        if name == self.fail:
            staging.rmdir()
            raise RuntimeError(f"postinstall of {name} failed")
        assert all((self.root / lower).is_dir() for lower in NEEDS[name]), name
        os.rename(staging, self.root / name)

    def run(self, jobs: int) -> None:
        steps = LayerSteps(
            unpack=self.unpack,
            finish=self.finish,
            discard=lambda staging: staging.rmdir(),
            on_done=self.done.append,
        )
        run_layers({name: name for name in NEEDS}, NEEDS, steps, jobs)


@pytest.mark.parametrize("jobs", [1, 2, 4])
def test_every_layer_is_finished_after_the_layers_it_needs(tmp_path: Path, jobs: int) -> None:
    deployment = Deployment(tmp_path)
    deployment.run(jobs)
    assert sorted(os.listdir(tmp_path)) == ["app", "fw", "rt", "rt2"]
    order = deployment.done
    assert order.index("rt") < order.index("fw") < order.index("app")


def test_a_failure_stops_what_needs_the_layer_but_not_the_others(tmp_path: Path) -> None:
    deployment = Deployment(tmp_path, fail="fw")
    with pytest.raises(RuntimeError, match="postinstall of fw failed"):
        deployment.run(jobs=4)
    assert sorted(os.listdir(tmp_path)) == ["rt", "rt2"]  # app's staging folder was discarded
    assert sorted(deployment.done) == ["rt", "rt2"]


def test_ctrl_c_stops_the_unpacks_under_way_and_leaves_no_staging(tmp_path: Path) -> None:
    deployment = Deployment(tmp_path, interrupt="rt")
    with pytest.raises(KeyboardInterrupt):
        deployment.run(jobs=4)
    assert deployment.stopped == ["app"]
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]
    assert "fw" not in deployment.done and "app" not in deployment.done
