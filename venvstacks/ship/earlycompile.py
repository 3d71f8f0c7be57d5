"""Compiling a runtime's standard library while its archive is still unpacking.

Unpacking the runtime (one xz stream, a thousand members) and then compiling its ~700
standard library files were two steps in a row on deploy's critical path. A CPython can run
well before its archive is fully unpacked: once its interpreter binary (``bin/pythonX.Y``, a
regular file; ``bin/python3`` is a symlink, and symlinks come last) and what its start-up
reads (``encodings``; before 3.11 also the modules 3.11 freezes) are written, a worker runs
it with ``PYTHONHOME`` set to the staging folder (:meth:`CompilePools.early`). From then
on, each ``.py`` below ``lib/`` is handed to the workers as soon as the unpacker has written
it (``unpack_to_staging(written=...)``), in chunks.

Nothing depends on the archive's member order (other tools' archives have their own): if
the needed files never all appear, nothing starts early; a worker that cannot start yet (a
shared library it needs comes later, say) is no error, and its files wait for the end.
After the unpack and the layer's postinstall work (``finish.stage``), the files of
:func:`compileworker.library_sources` not handed over yet go to the same workers, with the
files early workers sent back (:mod:`compileworker`): the pycs written are the same as
when everything is compiled after the unpack. A runtime's ``postinstall.py`` writes nothing
below ``lib/`` (only venv layers get a ``sitecustomize.py`` there), so no file compiled
early is rewritten later.

Only runtimes published without bytecode start early (a shipped pyc must never race a
compiled one), and feeding stops at the first pyc or ``__pycache__`` member seen anyway.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from venvstacks.ship.compilepool import CHUNK, CompilePools, EarlyJob
from venvstacks.ship.published_meta import PublishedLayer
from venvstacks.stack.kinds import LayerKind

#: What a CPython >= 3.11 reads from its standard library at start-up with ``-S -X utf8``.
_STARTUP = ("encodings/__init__.py", "encodings/aliases.py", "encodings/utf_8.py")
#: And what 3.8-3.10 also read (3.11 freezes them).
_STARTUP_BEFORE_311 = ("codecs.py", "io.py", "abc.py", "_weakrefset.py")


def _version(layer: PublishedLayer) -> str | None:
    """X.Y of a runtime CPython that may start early here, else None."""
    impl = str(layer.metadata.python_implementation or "")
    name, _, version = impl.partition("@")
    parts = version.split(".")
    if name != "cpython" or len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        return None
    return f"{parts[0]}.{parts[1]}"


@dataclass
class EarlyCompile:
    """Feeds a runtime's ``.py`` files to compile workers while it unpacks."""

    pools: CompilePools
    layer: str
    version: str  # X.Y
    needs: set[str]  # files (below the staging folder) that must be written first
    staging: Path | None = None
    job: EarlyJob | None = None
    pending: list[str] = field(default_factory=list)  # written, not handed over yet
    sent: set[str] = field(default_factory=set)
    stopped: bool = False  # a pyc was seen: compile nothing more early

    @classmethod
    def of(cls, layer: PublishedLayer, pools: CompilePools) -> EarlyCompile | None:
        version = _version(layer)
        if layer.kind is not LayerKind.RUNTIME or version is None or os.name != "posix":
            return None
        if layer.metadata.bytecode_included:
            return None
        stdlib = f"lib/python{version}/"
        startup = (
            _STARTUP if tuple(map(int, version.split("."))) >= (3, 11) else _STARTUP + _STARTUP_BEFORE_311
        )
        needs = {f"bin/python{version}", *(stdlib + name for name in startup)}
        return cls(pools, layer.install_target, version, needs)

    def written(self, staging: Path, rel: str) -> None:
        """``unpack_to_staging``'s callback: ``rel`` is written, whole."""
        if self.stopped:
            return
        self.staging = staging
        if rel.endswith(".pyc") or "__pycache__" in rel.split("/"):
            self.stopped = True
            return
        self.needs.discard(rel)
        if rel.startswith("lib/") and rel.endswith(".py"):
            self.pending.append(f"{staging}/{rel}")
        if self.job is None and not self.needs:
            python = staging / f"bin/python{self.version}"
            self.job = self.pools.early(python, staging, layer=self.layer)
        if self.job is not None and len(self.pending) >= CHUNK:
            self._hand_over()

    def _hand_over(self) -> None:
        assert self.job is not None
        self.job.add(self.pending)
        self.sent.update(self.pending)
        self.pending = []

    def unpacked(self) -> None:
        """The unpack is done: hand over what is left of it."""
        if self.job is not None and self.pending:
            self._hand_over()

    def finish(self, python: Path, files: list[str], missing_only: bool) -> Future[None] | None:
        """After the unpack and the postinstall work: compile ``files`` (the layer's
        library) but those already handed over, with the workers that compile them; None if
        nothing started early (or with another Python than ``python``, which compiles
        everything then)."""
        if self.job is None:
            return None
        if os.path.realpath(python) != os.path.realpath(self.job.pool.python):
            self.undo()
            return None
        return self.job.finish(python, [f for f in files if f not in self.sent], missing_only)

    def abandon(self) -> None:
        """Its layer goes: stop the workers, then remove what they may have written."""
        if self.job is not None:
            self.job.abandon()
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)

    def undo(self) -> None:
        """Its layer's own postinstall.py (not ours) compiles: stop, and remove every pyc
        compiled early, as if nothing had been."""
        if self.job is None:
            return
        self.job.drain()  # the chunks under way end: no pyc is half-written
        tag = "cpython-" + "".join(self.version.split("."))
        for source in self.sent:
            folder, name = os.path.split(source)
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, "__pycache__", f"{name[:-3]}.{tag}.pyc"))
        self.job = None
        self.sent.clear()
