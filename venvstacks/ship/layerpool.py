"""Deploying several layers at once, each finished as soon as the layers below it are.

A deploy has two steps per layer: *unpack* (anytime: it only writes the layer's own staging
folder) and *finish* (only once every layer it needs is finished: deploy's finish does the
layer's postinstall work and hands its files to the compile workers, which need the
runtime's Python unpacked). ``run_layers`` unpacks up to ``jobs`` layers at a time, in the order given, and
finishes each one as soon as its own unpack and its lower layers' finish are done; the
dependency order comes from :class:`graphlib.TopologicalSorter`.

After a failure no new unpack starts, but the layers under way that do not need the failed
one are still finished; then every unpacked but unfinished staging folder is discarded and
the first error is raised. On Ctrl-C the unpacks under way stop at their next member.
Finished layers stay finished, and ``on_done`` was called for each.
"""

from __future__ import annotations

import graphlib
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

L = TypeVar("L")


@dataclass(frozen=True)
class LayerSteps(Generic[L]):
    """What to do with each layer; ``stop`` is set when the run is abandoned."""

    unpack: Callable[[L, threading.Event], Path]  # returns the staging folder
    finish: Callable[[L, Path], None]  # removes staging on failure
    discard: Callable[[Path], None]  # removes an unfinished staging folder
    on_done: Callable[[L], None]  # called in the calling thread, in finishing order


def run_layers(
    layers: Mapping[str, L],
    needs: Mapping[str, Sequence[str]],
    steps: LayerSteps[L],
    jobs: int,
) -> None:
    """Deploy ``layers`` (by name, in unpack order); ``needs[name]`` lists the names (among
    ``layers``) that must be finished before ``name`` is."""
    stop = threading.Event()
    if jobs <= 1:
        for layer in layers.values():
            steps.finish(layer, steps.unpack(layer, stop))
            steps.on_done(layer)
        return
    order = graphlib.TopologicalSorter({n: [d for d in needs.get(n, ()) if d in layers] for n in layers})
    order.prepare()
    to_unpack = list(layers)
    unpacked: dict[str, Path] = {}
    ready: set[str] = set()  # lower layers all finished
    unpacking: dict[Future[Path], str] = {}
    finishing: dict[Future[None], str] = {}
    failed: Exception | None = None
    with ThreadPoolExecutor(max_workers=2 * jobs, thread_name_prefix="deploy") as pool:
        try:
            while True:
                ready.update(order.get_ready())
                while to_unpack and failed is None and len(unpacking) < jobs:
                    name = to_unpack.pop(0)
                    unpacking[pool.submit(steps.unpack, layers[name], stop)] = name
                for name in sorted(ready & unpacked.keys()):
                    ready.discard(name)
                    finishing[pool.submit(steps.finish, layers[name], unpacked.pop(name))] = name
                under_way: list[Future[Any]] = [*unpacking, *finishing]
                if not under_way:
                    break
                done, _ = wait(under_way, return_when=FIRST_COMPLETED)
                for future in done:
                    try:
                        if future in unpacking:
                            name = unpacking.pop(future)
                            unpacked[name] = future.result()
                        else:
                            name = finishing.pop(future)
                            future.result()
                            steps.on_done(layers[name])
                            order.done(name)
                    except Exception as exc:  # the layers not needing this one go on
                        failed = failed or exc
        except BaseException:  # Ctrl-C: stop everything
            stop.set()
            for unpack in unpacking:
                unpack.cancel()
            for unpack, name in unpacking.items():
                if not unpack.cancelled() and unpack.exception() is None:
                    unpacked[name] = unpack.result()
            wait(finishing)  # a failed finish removes its own staging folder
            raise
        finally:
            for staging in unpacked.values():  # unpacked, never finished
                steps.discard(staging)
    if failed is not None:
        raise failed
