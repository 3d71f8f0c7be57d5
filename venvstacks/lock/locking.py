"""Locking a layer with uv: one PEP 751 pylock per layer, constrained by every lower layer.

Files live in `requirements/<layer>/` beside the stack file and are rewritten only when
their content changes, so doit's checksums see an unchanged lock as unchanged.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import tomli_w
from packaging.utils import canonicalize_name

from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import write_if_changed
from venvstacks.layout import LockFiles
from venvstacks.lock import depmeta, pylock, uvconfig, validity
from venvstacks.lock.lockmeta import InputHashes, LockMetadata
from venvstacks.lock.pylockdoc import HEADER, Pylock
from venvstacks.lock.uvconfig import LockOptions
from venvstacks.lock.validity import LockedLayer, Locks
from venvstacks.platforms import major_minor
from venvstacks.stack.graph import lower_layers
from venvstacks.stack.model import LayerSpec, StackSpec
from venvstacks.stack.targets import layer_targets
from venvstacks.tools import run, uv_bin

DEFAULT_OPTIONS = LockOptions()


def lock_layer(
    stack: StackSpec,
    layer: LayerSpec,
    python: Path,
    runtime_version: str,
    options: LockOptions,
    log: Callable[[str], None],
    build_dirs: Sequence[Path] = (),
) -> bool:
    """Lock one layer for its runtime (`python`, CPython `runtime_version` X.Y.Z); returns
    whether its pylock changed. `build_dirs`: folders where its lower layers may be built,
    whose records of what their packages depend on spare uv fetching it (`depmeta`)."""
    locks = Locks(stack)  # each lock file this step needs, read once (validity.LockedLayer)
    locked = locks.of(layer)
    files = locked.files
    py_version = major_minor(runtime_version)
    lowers = lower_layers(stack, layer)
    lower_locks = locks.lower_locks(layer)
    fresh = options.upgrade or options.upgrade_packages or options.resets(layer)
    reason = "asked to" if fresh else validity.why_invalid(locks, layer)
    if reason is None and not validity.fits_runtime(locked, runtime_version):
        reason = f"its markers name the exact Python version, now {runtime_version}"
    if reason is None:
        adopted = validity.adopt(locks, layer)
        version = _bump_version_if_needed(locks, layer, runtime_version)
        made_by = " (made by the existing venvstacks)" if adopted else ""
        if version is None:
            log(f"{files.pylock.name} is current{made_by}: its inputs did not change")
        else:
            log(f"{files.pylock.name} is current; its modules changed: {layer.env_name} is now @{version}")
        return False
    log(f"locking {layer.env_name}: {reason}")
    write_if_changed(
        files.requirements_in,
        HEADER.format(layer=layer.env_name) + "".join(f"{r}\n" for r in layer.requirements),
    )
    known = depmeta.lower_layers_deps(locks.lowers(layer), build_dirs)
    try:
        raw = _run_uv(stack, layer, files, python, py_version, lower_locks, options, known)
    except VenvStacksError as exc:
        raise VenvStacksError(f"{exc}{_pins_involved(str(exc), lowers, lower_locks)}") from None
    raw = pylock.relative_wheel_paths(raw, files.pylock.parent)
    targets = layer_targets(layer, runtime_version)
    try:
        covered = uvconfig.environment_targets(stack, targets)
        if len(covered) < len(targets):
            left_out = ", ".join(t.platform for t in targets if t not in covered)
            log(f"{layer.env_name}: {left_out} outside [tool.uv] environments: wheels not checked there")
        new_lock = pylock.postprocess(raw, targets, _shared_names(lower_locks), covered)
    except pylock.CoverageError as exc:
        raise VenvStacksError(
            f"{stack.path.name}: layer {layer.env_name!r}: {exc.package} has no wheel for {exc.platform}; "
            f"limit the layer with platforms = {exc.working!r} or pick a version that has one"
        ) from None
    changed = write_if_changed(files.pylock, new_lock.file_text(layer.env_name))
    log(f"{files.pylock.name} {'updated' if changed else 'relocked, unchanged'}")
    # Recorded only when a marker of uv's result depends on it (see _fits_runtime).
    full_version = runtime_version if pylock.needs_full_version(raw, runtime_version) else None
    inputs = validity.input_hashes(stack, layer, lower_locks)
    _write_meta(locked, new_lock, inputs, full_version)
    write_if_changed(files.summary, _summary(locks, layer, new_lock))
    return changed


def _pins_involved(message: str, lowers: list[LayerSpec], lower_locks: list[Pylock]) -> str:
    """Which lower layers' pins uv's failure mentions: uv sees them only as bare constraints."""
    named = []
    for lower, lock in zip(lowers, lower_locks, strict=True):
        for name, (version, _) in sorted(lock.pins.items()):
            spelled = "[-_.]".join(re.escape(part) for part in name.split("-"))
            if re.search(rf"(?<![\w.-]){spelled}(?![\w-])", message, re.IGNORECASE):
                named.append(f"{lower.env_name} pins {name}=={version}")
    if not named:
        return ""
    return f" [{'; '.join(named)}: change the requirement, or that layer's]"


def _shared_names(lower_locks: list[Pylock]) -> set[str]:
    return {name for lock in lower_locks for name in lock.pins}


def _run_uv(
    stack: StackSpec,
    layer: LayerSpec,
    files: LockFiles,
    python: Path,
    py_version: str,
    lower_locks: list[Pylock],
    options: LockOptions,
    known: list[depmeta.PackageDeps],
) -> Pylock:
    with tempfile.TemporaryDirectory(prefix="venvstacks-lock-") as tmp:
        work = Path(tmp)
        output = work / files.pylock.name
        # uv keeps the pins it finds in the output file: seed it with the current lock.
        if files.pylock.exists() and not options.upgrade and not options.resets(layer):
            shutil.copyfile(files.pylock, output)
        constraints = work / "constraints.txt"
        constraints.write_text("".join(f"{line}\n" for line in pylock.constraint_lines(lower_locks)))
        config = work / "uv.toml"
        settings = uvconfig.uv_settings(stack, layer, options.index, options.local_wheels)
        settings = depmeta.with_dependency_metadata(settings, known)  # never a lock input
        config.write_text(tomli_w.dumps(uvconfig.anchored(settings, stack.root)))
        resolver = uvconfig.resolver_project(stack, layer, py_version)
        if "tool" in resolver:
            resolver["tool"]["uv"] = uvconfig.anchored(resolver["tool"]["uv"], stack.root)
        project = work / "pyproject.toml"
        project.write_text(tomli_w.dumps(resolver))
        cmd: list[str | Path] = [
            uv_bin(), "pip", "compile", project,
            "--universal", "--format", "pylock.toml", "--output-file", output,
            "--python", python, "--python-version", py_version,
            "--constraints", constraints, "--only-binary", ":all:",
            "--no-config", "--config-file", config, "--no-header", "--quiet",
        ]  # fmt: skip
        if options.upgrade:
            cmd.append("--upgrade")
        for package in options.upgrade_packages:
            cmd += ["--upgrade-package", package]
        try:
            run(f"locking {layer.env_name} (uv pip compile)", cmd, cwd=stack.root)
        except VenvStacksError as exc:
            # uv names the files it was given, which are gone once this returns: name
            # what the user wrote them from instead.
            message = str(exc).replace(str(config), f"the [tool.uv] settings of {stack.path.name}")
            message = message.replace(str(project), f"the requirements of layer {layer.env_name}")
            message = message.replace(str(work), "(a temporary folder)")
            raise VenvStacksError(f"{stack.path.name}: layer {layer.env_name!r}: {message}") from None
        return Pylock.from_toml(output.read_text(encoding="utf-8"), output)


def _write_meta(locked: LockedLayer, new_lock: Pylock, inputs: InputHashes, full_version: str | None) -> int:
    """Write the metadata of `new_lock`, the layer's lock now (`locked` holds what its
    files held when the step began); returns its lock version."""
    stack, layer = locked.stack, locked.layer
    previous = locked.meta or LockMetadata()
    req_hash = pylock.requirements_hash(new_lock)
    version_inputs = locked.version_inputs_hash
    changed = previous.requirements_hash != req_hash or previous.version_inputs_hash != version_inputs
    lock_version = previous.lock_version or 0
    if layer.versioned:
        lock_version = lock_version + 1 if changed or not lock_version else lock_version
    else:
        lock_version = 1
    meta = LockMetadata(
        layer_name=layer.env_name,
        requirements_hash=req_hash,
        inputs=inputs,
        other_inputs=validity.other_inputs(stack, layer),
        version_inputs_hash=version_inputs,
        lock_version=lock_version,
        locked_at=previous.locked_at if not changed and previous.locked_at else _lock_time(stack),
        python_full_version=full_version,
    )
    write_if_changed(locked.files.meta, meta.text())
    return lock_version


def _bump_version_if_needed(locks: Locks, layer: LayerSpec, runtime_version: str) -> int | None:
    """A valid lock whose version inputs (an app's modules) changed gets the next lock
    version without running uv; returns that version, or None if nothing changed."""
    locked = locks.of(layer)
    if validity.version_is_current(locked):
        return None
    previous = locked.meta
    assert previous is not None  # the lock is valid
    lock = locked.pylock
    if previous.by_existing_tool:  # valid, so our own hashes hold now
        full = runtime_version if pylock.needs_full_version(lock, runtime_version) else None
        inputs = validity.input_hashes(locks.stack, layer, locks.lower_locks(layer))
        return _write_meta(locked, lock, inputs, full)
    return _write_meta(locked, lock, previous.inputs, previous.python_full_version)


def _lock_time(stack: StackSpec) -> str:
    now = datetime.now(UTC).replace(microsecond=0)
    limit = os.environ.get("UV_EXCLUDE_NEWER") or stack.uv_config.get("exclude-newer")
    if limit:
        try:
            cutoff = datetime.fromisoformat(str(limit).replace("Z", "+00:00"))
        except ValueError:
            cutoff = now
        if cutoff.tzinfo is None:
            cutoff = cutoff.replace(tzinfo=UTC)
        now = min(now, cutoff.astimezone(UTC).replace(microsecond=0))
    return now.isoformat()


def _summary(locks: Locks, layer: LayerSpec, new_lock: Pylock) -> str:
    own, shared = [], []
    for pkg in new_lock.packages:
        if pkg.is_from_lower_layer:
            shared.append(f"{pkg.name}=={pkg.version}")
        else:
            own.append(f"{pkg.name}=={pkg.version}" + (f" ; {pkg.marker}" if pkg.marker else ""))
    owners: dict[str, str] = {}
    for lower in locks.lowers(layer):
        for name in lower.pylock.pins:
            owners.setdefault(name, lower.layer.env_name)
    lines = [f"# Packages installed in {layer.env_name}", *own, ""]
    if shared:
        lines += ["# Shared packages inherited from other layers"]
        lines += [
            f"{s}  (from {owners.get(canonicalize_name(s.split('==')[0]), 'a lower layer')})" for s in shared
        ]
    return "\n".join(lines).rstrip("\n") + "\n"
