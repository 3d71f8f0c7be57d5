"""Finishing unpacked layers: their ``postinstall.py`` work, then the rename into place.

A layer whose ``postinstall.py`` is byte for byte the one this venvstacks ships (or, for a
``--bytecode`` layer, ``postinstall_bytecode.py`` with the usual script beside it) is
finished in this process by that same script's code, loaded from the package: it links the
interpreter and writes ``pyvenv.cfg`` and ``sitecustomize.py`` as always, but leaves the
byte-compiling of ``lib/`` to :mod:`compilepool`, which compiles the same files with the
same Python (the layer's base Python, the runtime's: from the runtime's staging folder when
the runtime is deployed in the same run). Nothing there needs the lower layers in place
(on Linux and macOS: on Windows, ``sitecustomize.py`` looks for lower layers' DLL folders,
so Windows deploys run the script as below), so a layer no longer waits for the runtime's
standard library to be compiled.

Any other ``postinstall.py`` (another tool's or an older one) runs as the recipe runs it,
with its base Python, once the layers below it are in place (:func:`run_postinstall`).

Layers are renamed into place only when every compile is done: a runtime's workers run the
Python in its staging folder, which must stay where it is until they end.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import threading
import types
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvstacks.console import Ticker
from venvstacks.errors import CommandError
from venvstacks.fsutil import replace_dir
from venvstacks.layerconfig import read_layer_config
from venvstacks.layout import POSTINSTALL, POSTINSTALL_BYTECODE, POSTINSTALL_SCRIPT, USUAL_POSTINSTALL
from venvstacks.ship.compilepool import CompilePools
from venvstacks.ship.compileworker import library_sources
from venvstacks.ship.published_meta import PublishedLayer
from venvstacks.tools import run_postinstall_script

# Windows: sitecustomize.py depends on which lower layers are in place (see above).
IN_PROCESS = os.name == "posix"


@dataclass(frozen=True)
class Staged:
    """An unpacked layer on its way into place."""

    staging: Path
    compiled: Future[None] | None  # None: its own postinstall.py still has to run


class _Failed(Exception):
    """postinstall.py's own error message (its ``fail()``, which would exit with 1)."""


@dataclass(frozen=True)
class _Compile:
    lib_dir: str
    base_python: str
    py_version: str


_requests: dict[str, _Compile] = {}  # by layer folder: what its postinstall.py left to compile
_requests_lock = threading.Lock()


def _record_compile(layer: Any) -> None:
    """``Layer.compile_lib`` of the loaded script: note what to compile, compile nothing."""
    lib_dir = os.path.join(layer.dir, "Lib" if layer.windows else "lib")
    with _requests_lock:
        _requests[layer.dir] = _Compile(lib_dir, layer.base_python, layer.py_version)


def _fail(message: str) -> int:
    raise _Failed(message)


@functools.cache
def _script() -> types.ModuleType:
    """A private copy of the shipped postinstall.py (no pyc written, nothing shared)."""
    module = types.ModuleType("venvstacks_postinstall_in_deploy")
    module.__file__ = str(POSTINSTALL_SCRIPT)
    exec(compile(POSTINSTALL_SCRIPT.read_bytes(), str(POSTINSTALL_SCRIPT), "exec"), module.__dict__)
    module.Layer.compile_lib = _record_compile
    module.__dict__["fail"] = _fail
    return module


@functools.cache
def _shipped(path: Path) -> bytes:
    return path.read_bytes()


def _known_script(layer_dir: Path) -> bool | None:
    """None: not a script of ours. Else whether it compiles only files without a pyc."""
    try:
        script = (layer_dir / POSTINSTALL).read_bytes()
        if script == _shipped(POSTINSTALL_SCRIPT):
            return False
        if script == _shipped(POSTINSTALL_BYTECODE):
            return (layer_dir / USUAL_POSTINSTALL).read_bytes() == _shipped(POSTINSTALL_SCRIPT) or None
    except OSError:
        pass
    return None


def stage(staging: Path, name: str, pools: CompilePools, pythons: dict[str, Path]) -> Staged:
    """Do what ``staging``'s postinstall.py does but the byte-compiling, which goes to
    ``pools``. ``pythons`` maps the install targets unpacked in this run to their staging
    folders (where a runtime's Python is until it is renamed)."""
    read_layer_config(staging, name)  # its errors name the layer, as run_postinstall's do
    missing_only = _known_script(staging) if IN_PROCESS else None
    if missing_only is None:
        return Staged(staging, None)
    try:
        _script().main(str(staging))
    except _Failed as exc:
        # As when the script runs in a process of its own and exits with 1.
        output = f"postinstall.py: error: {exc}"
        raise CommandError(f"postinstall of {name}", [POSTINSTALL], 1, output) from None
    with _requests_lock:
        request = _requests.pop(str(staging))
    python = _compiling_python(Path(request.base_python), staging.parent, pythons, request.py_version)
    if python is None or not os.path.isdir(request.lib_dir):
        done: Future[None] = Future()
        done.set_result(None)
        return Staged(staging, done)
    files = library_sources(Path(request.lib_dir))
    if missing_only:
        files = [f for f in files if not _has_cpython_pyc(f, request.py_version)]
    # Named as where they will be: the pycs compileall would write in place (the recipe's).
    final = staging.parent / name
    compiled = pools.compile(python, files, layer=name, missing_only=missing_only, shown_as=(staging, final))
    return Staged(staging, compiled)


def _has_cpython_pyc(source: str, py_version: str) -> bool:
    """Whether ``source`` has the pyc a CPython of ``py_version`` would load: those need
    no worker at all. (The worker asks its own Python again: for any other Python this
    finds nothing, and the worker decides.)"""
    folder, name = os.path.split(source)
    tag = "cpython-" + "".join(py_version.split(".")[:2])
    return os.path.exists(os.path.join(folder, "__pycache__", f"{name[:-3]}.{tag}.pyc"))


def _compiling_python(base: Path, target_dir: Path, pythons: dict[str, Path], version: str) -> Path | None:
    """The base Python where it is now; as postinstall.py run by deploy would, this Python
    if that one is missing but of the layer's X.Y, else none (the layer stays uncompiled)."""
    try:
        parts = base.relative_to(target_dir).parts
    except ValueError:
        parts = ()
    if parts and parts[0] in pythons:
        base = pythons[parts[0]].joinpath(*parts[1:])
    if os.path.exists(base):
        return base
    running = "{}.{}.".format(*sys.version_info[:2])
    if sys.implementation.name == "cpython" and version.startswith(running):
        return Path(sys.executable)
    return None


def place_layers(
    pending: Mapping[str, PublishedLayer],
    staged: dict[str, Staged],
    target_dir: Path,
    log: Callable[[str], None],
    record: Callable[[PublishedLayer], None],
) -> Exception | None:
    """Rename each staged layer into place (after its own postinstall.py if it runs one),
    once the layers it needs are; the first error, if any."""
    failure: Exception | None = None
    placed: set[str] = set()
    for target, layer in pending.items():
        if target not in staged:
            continue
        done = staged[target]
        try:
            if all(dep not in pending or dep in placed for dep in layer.needs):
                _finish_layer(layer, done, target_dir, log)
                placed.add(target)
                record(layer)
        except Exception as exc:
            failure = failure or exc
        finally:
            shutil.rmtree(done.staging, ignore_errors=True)  # nothing left if renamed
            del staged[target]
    return failure


def _finish_layer(layer: PublishedLayer, done: Staged, target_dir: Path, log: Callable[[str], None]) -> None:
    if done.compiled is None:  # a postinstall.py not ours: as the recipe runs it
        with Ticker(lambda: f"{layer.install_target}: postinstall.py (byte-compiling) running", log):
            run_postinstall(done.staging, layer.install_target)
    else:
        done.compiled.result()
    replace_dir(done.staging, target_dir / layer.install_target)


def run_postinstall(layer_dir: Path, name: str | None = None) -> None:
    """Run a deployed layer's ``postinstall.py`` with its base Python (else this one).

    ``name``: the layer's install target, when ``layer_dir`` is its staging folder (messages
    name layers as everywhere else, never by a temporary folder)."""
    runner: Path | str = sys.executable
    base = read_layer_config(layer_dir, name).base_python
    if base is not None and os.path.exists(os.path.join(layer_dir, base)):
        runner = os.path.normpath(os.path.join(layer_dir, base))
    cmd = [runner, "-X", "utf8", "-I", layer_dir / POSTINSTALL]
    run_postinstall_script(f"postinstall of {name or layer_dir.name}", cmd)
