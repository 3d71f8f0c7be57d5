"""Unpacking and finishing the layers a deploy needs, their byte-compiling shared
(:mod:`compilepool`), then
renaming them into place (:mod:`finish`)."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import wait
from pathlib import Path
from typing import TYPE_CHECKING

from venvstacks.archive.checked import CheckedArchive
from venvstacks.console import Ticker
from venvstacks.lazy import lazy_modules
from venvstacks.platforms import cores
from venvstacks.ship.compilepool import CompilePools
from venvstacks.ship.finish import Staged, place_layers, stage
from venvstacks.ship.layerpool import LayerSteps, run_layers
from venvstacks.ship.published_meta import PublishedLayer

# Loaded when a layer is unpacked: a redeploy finding every layer current unpacks none.
if TYPE_CHECKING:
    from venvstacks.archive import unpack
else:
    (unpack,) = lazy_modules("venvstacks.archive.unpack")


def _unpack_layer(
    layer: PublishedLayer,
    checked: CheckedArchive,
    target_dir: Path,
    stop: threading.Event,
    log: Callable[[str], None],
) -> Path:
    log(f"Deploying {layer.install_target} from {layer.archive.name}")
    with Ticker(lambda: f"{layer.install_target}: {_unpacked_share(checked)}", log):
        target = layer.install_target
        return unpack.unpack_to_staging(layer.archive, target_dir, target, stop=stop, checked=checked)


def _unpacked_share(checked: CheckedArchive) -> str:
    # How far the unpacker has read the archive (the file position, without its buffer's lock).
    done = os.lseek(checked.file.fileno(), 0, os.SEEK_CUR)
    return f"{min(done, checked.size) * 100 // max(checked.size, 1)}% of {checked.size / 1e6:.0f} MB unpacked"


def deploy_layers(
    pending: Mapping[str, PublishedLayer],
    checked: Mapping[str, CheckedArchive],
    target_dir: Path,
    jobs: int,
    limit: float,
    log: Callable[[str], None],
    record: Callable[[PublishedLayer], None],
) -> None:
    """Unpack and finish ``pending`` (in deployment order), each layer's byte-compiling in
    the shared pools (``limit`` seconds per layer), then rename them into place, each after
    the layers it needs."""
    staged: dict[str, Staged] = {}
    pythons: dict[str, Path] = {}  # install target -> staging folder, for their Pythons
    failure: Exception | None = None
    try:
        with CompilePools(cores(), limit=limit) as pools:

            def finish(layer: PublishedLayer, staging: Path) -> None:
                try:
                    pythons[layer.install_target] = staging
                    staged[layer.install_target] = stage(staging, layer.install_target, pools, pythons)
                except BaseException:
                    shutil.rmtree(staging, ignore_errors=True)
                    raise

            steps = LayerSteps(
                unpack=lambda layer, stop: _unpack_layer(
                    layer, checked[layer.install_target], target_dir, stop, log
                ),
                finish=finish,
                discard=lambda staging: shutil.rmtree(staging, ignore_errors=True),
                on_done=lambda layer: None,
            )
            try:
                run_layers(pending, {t: la.needs for t, la in pending.items()}, steps, jobs)
            except Exception as exc:  # the layers not needing the failed one go on
                failure = exc
            with Ticker(lambda: f"byte-compiling: {pools.progress()}", log):
                wait([s.compiled for s in staged.values() if s.compiled is not None])
        failure = place_layers(pending, staged, target_dir, log, record) or failure
    finally:  # after Ctrl-C: whatever was not renamed into place goes
        for left in staged.values():
            shutil.rmtree(left.staging, ignore_errors=True)
    if failure is not None:
        raise failure
