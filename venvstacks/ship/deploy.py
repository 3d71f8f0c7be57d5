"""Deploying published layers into a folder on the target machine.

::

    result = deploy(published, target_dir, include=["app-*"], log=print)

``published`` is a publish output folder (holding ``__venvstacks__/venvstacks.json``, or a
single ``venvstacks-<platform>.json``) or the path of such a metadata file; archives are
looked up in the folder above ``__venvstacks__/``. ``include`` holds fnmatch patterns
matched against ``layer_name`` and ``install_target`` (empty: every layer); the layers each
selected one needs (``runtime_layer``, ``required_layers``) are added.

Before anything is unpacked, every needed layer must be published or already deployed in
``target_dir``, and each archive to unpack must have the published size and sha256. Each
layer is then unpacked safely into a hidden folder beside its destination, its
``postinstall.py`` runs there (with the deployed runtime's Python, so only once the layers
it needs are in place), and only then is it renamed into place, replacing an older copy.
Layers that do not need each other are unpacked and finished at the same time
(``layerpool.py``).
A small state file (``.venvstacks-deploy.json``) records each layer's archive sha256, so a
redeploy skips unchanged layers, once their files are checked against their manifests (as
``venvstacks verify`` does; ``check=False`` skips that): a layer that differs is deployed
again, which repairs it. If the whole folder was moved since, the skipped layers'
``postinstall.py`` is rerun so their absolute paths follow. The returned
:class:`DeployResult` says how to run each app: ``<target>/<app>/bin/python -m <module>``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shlex
import shutil
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import wait
from dataclasses import dataclass, replace
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import TYPE_CHECKING

from venvstacks.archive.checked import CheckedArchive, open_checked
from venvstacks.console import Ticker
from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import lock_exclusively, make_folder
from venvstacks.layerconfig import read_layer_config
from venvstacks.layout import LAYER_CONFIG
from venvstacks.lazy import lazy_modules
from venvstacks.platforms import cores, host_platform, platform_of_tag
from venvstacks.ship.compilepool import CompilePools
from venvstacks.ship.deploystate import STATE_FILE, DeployedLayer, DeployState
from venvstacks.ship.finish import Staged, place_layers, run_postinstall, stage
from venvstacks.ship.layerpool import LayerSteps, run_layers
from venvstacks.ship.manifest import check_deployed
from venvstacks.ship.published_meta import PublishedLayer, is_plain_name, load_published
from venvstacks.stack.kinds import LayerKind, did_you_mean
from venvstacks.tools import postinstall_timeout

# Loaded when a layer is unpacked: a redeploy finding every layer current unpacks none.
if TYPE_CHECKING:
    from venvstacks.archive import unpack
else:
    (unpack,) = lazy_modules("venvstacks.archive.unpack")

_KIND_ORDER = {kind: rank for rank, kind in enumerate(LayerKind)}


@dataclass(frozen=True)
class AppCommand:
    layer_name: str
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return shlex.join(self.argv)


@dataclass(frozen=True)
class DeployResult:
    target_dir: Path
    deployed: tuple[str, ...]  # install targets unpacked by this run
    unchanged: tuple[str, ...]  # install targets skipped (same sha256 already there)
    apps: tuple[AppCommand, ...]
    repaired: tuple[str, ...] = ()  # among deployed: recorded as current, but they differed


# --- planning (pure) ---------------------------------------------------------------------


def _check_platform(layers: Sequence[PublishedLayer]) -> None:
    """Layers built for another platform deploy there: their postinstall.py, run here, would
    wire them for this machine instead (an unknown target_platform is not judged)."""
    host = host_platform()
    for layer in layers:
        tag = layer.metadata.target_platform or ""
        built_for = platform_of_tag(tag)
        if built_for is not None and built_for.name != host.name:
            raise VenvStacksError(
                f"{layer.install_target} was built for {tag}; deploy it on such a machine "
                f"(this one is {host.name})"
            )


def select_layers(
    layers: Sequence[PublishedLayer],
    include: Sequence[str],
    already_deployed: Callable[[str], bool],
) -> list[PublishedLayer]:
    """The layers matching ``include`` plus what they need, in deployment order."""
    by_target = {layer.install_target: layer for layer in layers}
    if include:
        wanted = [
            layer
            for layer in layers
            if any(
                fnmatch.fnmatchcase(str(layer.metadata.layer_name), pat)
                or fnmatch.fnmatchcase(layer.install_target, pat)
                for pat in include
            )
        ]
        if not wanted:
            names = [str(layer.metadata.layer_name) for layer in layers]
            hint = did_you_mean(include[0], names) if len(include) == 1 else ""
            raise VenvStacksError(f"--include {' '.join(include)}: matches no published layer{hint}")
    else:
        wanted = list(layers)
    chosen: dict[str, PublishedLayer] = {}
    todo = list(wanted)
    while todo:
        layer = todo.pop()
        if layer.install_target in chosen:
            continue
        chosen[layer.install_target] = layer
        for dep in layer.needs:
            if dep in by_target:
                todo.append(by_target[dep])
            elif not already_deployed(dep):
                raise VenvStacksError(
                    f"{layer.install_target} needs layer {dep}, which is neither published "
                    "here nor deployed in the target folder"
                )
    return _deployment_order(chosen, {target: i for i, target in enumerate(by_target)})


def _deployment_order(
    chosen: Mapping[str, PublishedLayer], listed: Mapping[str, int]
) -> list[PublishedLayer]:
    """Every layer after the layers it needs; among those ready, runtimes first, then
    frameworks, then apps, each in the order ``venvstacks.json`` lists them."""
    graph = TopologicalSorter({t: [d for d in la.needs if d in chosen] for t, la in chosen.items()})
    try:
        graph.prepare()
    except CycleError as exc:
        raise VenvStacksError(
            f"published layers need each other in a cycle: {' -> '.join(exc.args[1])}"
        ) from None
    result: list[PublishedLayer] = []
    while graph.is_active():
        ready = sorted(graph.get_ready(), key=lambda t: (_KIND_ORDER[chosen[t].kind], listed[t]))
        result += (chosen[t] for t in ready)
        graph.done(*ready)
    return result


# --- effects -----------------------------------------------------------------------------


@contextlib.contextmanager
def _made_for_this_run(target_dir: Path) -> Iterator[None]:
    """The target folder, made if missing; a deploy refused before it put anything there
    removes the folder it made (with the lock file in it), so a refusal touches nothing."""
    existed = target_dir.exists()
    make_folder(target_dir, "deploy target")
    try:
        yield
    except BaseException:
        lock = target_dir / f"{STATE_FILE}.lock"
        if not existed and {p.name for p in target_dir.iterdir()} <= {lock.name}:
            lock.unlink(missing_ok=True)
            target_dir.rmdir()
        raise


def deploy(
    published: Path,
    target_dir: Path,
    *,
    include: Sequence[str] = (),
    log: Callable[[str], None] = print,
    jobs: int | None = None,
    check: bool = True,
) -> DeployResult:
    """Deploy the published layers selected by ``include`` into ``target_dir``.

    Each layer's own base Python (the deployed runtime's) runs its ``postinstall.py``. Up to
    ``jobs`` layers (default: one per core) unpack at once; ``jobs=1`` deploys one layer
    after another.
    """
    target_dir = target_dir.absolute()
    limit = postinstall_timeout()  # a bad setting is refused before anything is touched
    layers = load_published(published)
    _check_platform(layers)
    with _made_for_this_run(target_dir), contextlib.ExitStack() as opened:
        opened.callback(lock_exclusively(target_dir / f"{STATE_FILE}.lock"))  # released last
        _remove_leftovers(target_dir)
        state = DeployState.read(target_dir)  # empty: every layer is deployed afresh
        selected = select_layers(layers, include, lambda t: _is_deployed(target_dir / t))
        todo = {la.install_target for la in selected if not _is_current(la, target_dir, state)}
        skipped = [la for la in selected if la.install_target not in todo]
        repaired = _damaged(skipped, target_dir, log) if check else set()
        todo |= repaired
        # Every archive is checked before any is unpacked, and kept open until it is.
        checked = {
            la.install_target: opened.enter_context(_verify_archive(la))
            for la in selected
            if la.install_target in todo
        }
        if state.path not in (None, str(target_dir)):
            _relink_moved(target_dir, [t for t in state.layers if t not in todo], log)
        # published: what `verify` tells to redeploy from
        state = replace(state, path=str(target_dir), published=str(published.absolute()))
        state.write(target_dir)

        def record(layer: PublishedLayer) -> None:
            nonlocal state
            meta = layer.metadata
            deployed = DeployedLayer(_archive_sha256(layer), meta.layer_name, meta.files_manifest_sha256)
            state = state.with_layer(layer.install_target, deployed)
            state.write(target_dir)

        pending = {la.install_target: la for la in selected if la.install_target in todo}
        _deploy_layers(pending, checked, target_dir, jobs or cores(), limit, log, record)
        _check_complete(selected, target_dir)
    apps = tuple(_app_command(layer, target_dir) for layer in selected if _is_app(layer))
    deployed = tuple(la.install_target for la in selected if la.install_target in todo)
    unchanged = tuple(la.install_target for la in selected if la.install_target not in todo)
    return DeployResult(target_dir, deployed, unchanged, apps, tuple(t for t in deployed if t in repaired))


def _damaged(skipped: Sequence[PublishedLayer], target_dir: Path, log: Callable[[str], None]) -> set[str]:
    """The layers among ``skipped`` whose files differ from their published manifests."""
    found = set()
    for layer in skipped:
        anchor = layer.metadata.files_manifest_sha256
        problems, _ = check_deployed(target_dir / layer.install_target, anchor, "the metadata")
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            why = f"it differs from what was published: {problems[0]}{more}"
            log(f"Redeploying {layer.install_target}: {why}")
            found.add(layer.install_target)
    return found


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


def _deploy_layers(
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


def _relink_moved(target_dir: Path, targets: Sequence[str], log: Callable[[str], None]) -> None:
    present = [target_dir / t for t in targets if is_plain_name(t) and _is_deployed(target_dir / t)]
    # Runtimes first: the others' postinstall runs with the runtime's Python.
    present.sort(key=lambda d: not _is_runtime(d))
    for layer_dir in present:
        log(f"Relinking {layer_dir.name} (the target folder was moved)")
        run_postinstall(layer_dir)


def _is_runtime(layer_dir: Path) -> bool:
    return read_layer_config(layer_dir).is_runtime


def _remove_leftovers(target_dir: Path) -> None:
    # Staging and swapped-out folders of a deploy that was killed; we hold the lock.
    for pattern in (".*.partial-*", ".*.old-*"):
        for path in target_dir.glob(pattern):
            shutil.rmtree(path, ignore_errors=True)


def _is_deployed(layer_dir: Path) -> bool:
    return (layer_dir / LAYER_CONFIG).is_file()


def _is_current(layer: PublishedLayer, target_dir: Path, state: DeployState) -> bool:
    entry = state.layers.get(layer.install_target)
    return (
        entry is not None
        and entry.sha256 == _archive_sha256(layer)
        and _is_deployed(target_dir / layer.install_target)
    )


def _archive_sha256(layer: PublishedLayer) -> str:
    sha256 = layer.metadata.archive_sha256
    if sha256 is None:
        raise VenvStacksError(f"{layer.install_target}: published metadata has no sha256")
    return sha256


def _verify_archive(layer: PublishedLayer) -> CheckedArchive:
    """The archive, checked and kept open: what is unpacked is what was checked."""
    path = layer.archive
    if not path.is_file():
        raise VenvStacksError(f"{path}: archive missing for layer {layer.install_target}")
    checked = open_checked(path)
    expected = layer.metadata.archive_size
    with contextlib.ExitStack() as on_error:
        on_error.enter_context(checked)
        if expected is not None and checked.size != expected:
            raise VenvStacksError(
                f"{path.name}: {checked.size} bytes but {expected} were published; incomplete download?"
            )
        if checked.sha256 != _archive_sha256(layer):
            raise VenvStacksError(
                f"{path.name}: sha256 {checked.sha256} does not match the published "
                f"{_archive_sha256(layer)}; the archive is damaged or was replaced"
            )
        on_error.pop_all()
    return checked


def _check_complete(selected: Sequence[PublishedLayer], target_dir: Path) -> None:
    for layer in selected:
        for dep in layer.needs:
            if not _is_deployed(target_dir / dep):
                raise VenvStacksError(f"{layer.install_target}: needed layer {dep} is missing")


def _is_app(layer: PublishedLayer) -> bool:
    return layer.kind is LayerKind.APPLICATION and bool(layer.metadata.app_launch_module)


def _app_command(layer: PublishedLayer, target_dir: Path) -> AppCommand:
    layer_dir = target_dir / layer.install_target
    rel = read_layer_config(layer_dir).python
    module = str(layer.metadata.app_launch_module)
    argv = (str(layer_dir / str(rel)), "-m", module)
    return AppCommand(str(layer.metadata.layer_name), argv)
