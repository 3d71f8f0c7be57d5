"""Whether a layer's lock still fits its inputs, and if not, which input changed.

A lock is valid when its pylock is what its metadata recorded and the inputs it was made
from are the layer's inputs now. The command line's package sources (`--local-wheels`,
`--index`/`--no-index`) are not inputs: they say where packages come from, not what is
locked (see `uvconfig.lock_inputs`).

Locks made by the existing venvstacks carry its own metadata, which records fewer inputs,
hashed its way (`venvstacks.lock.upstream`). Such a lock is valid as it stands when its own
hashes match and every lower layer's lock is valid as well; nothing committed is rewritten.
The first `lock:` run that finds it valid records our fuller input hashes in a file beside
it (`LockFiles.adopted`), so that a later change the existing tool never recorded (a
`[tool.uv]` setting, a lower layer's pins) relocks it.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field

from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import write_if_changed
from venvstacks.layout import LockFiles, lock_files
from venvstacks.lock import pylock, upstream, uvconfig
from venvstacks.lock.lockmeta import AdoptedInputs, InputHashes, LockMetadata
from venvstacks.lock.pylockdoc import Pylock
from venvstacks.stack import naming
from venvstacks.stack.graph import lower_layers
from venvstacks.stack.model import LayerSpec, StackSpec
from venvstacks.stack.modfiles import module_hash, module_name

# What each lock input (uvconfig.lock_inputs) is, in a relock's one line.
_OTHER_INPUTS = {
    "python": "the runtime's python_implementation",
    "targets": "platforms, linux_target or macosx_target",
    "lower": "the lower layers",
    "versioned": "versioned",
    "project": "package_indexes or [tool.uv.sources]",
    "uv": "the [tool.uv] settings",
}
_DAMAGED = (VenvStacksError, ValueError, TypeError, KeyError, AttributeError)


@dataclass(frozen=True)
class LockedLayer:
    """One layer's lock files as one step reads them: each parsed when first needed, then
    kept for the rest of the step and handed to every check. A later task reads them
    afresh: facts cross a doit task boundary only as the files the earlier task wrote (it
    may have run in another process, or another run)."""

    stack: StackSpec
    layer: LayerSpec

    @property
    def files(self) -> LockFiles:
        return lock_files(self.stack, self.layer)

    @functools.cached_property
    def meta(self) -> LockMetadata | None:
        return LockMetadata.read(self.files.meta)

    @functools.cached_property
    def pylock(self) -> Pylock:
        """The parsed pylock (`Pylock()` if missing); a DocumentError if it is damaged."""
        return Pylock.read(self.files.pylock)

    @functools.cached_property
    def adopted(self) -> AdoptedInputs | None:
        return AdoptedInputs.read(self.files.adopted)

    @functools.cached_property
    def version_inputs_hash(self) -> str:
        """Of its inputs now (module files hashed once per step; see `version_inputs_hash`)."""
        return version_inputs_hash(self.stack, self.layer)

    @property
    def lock_version(self) -> int:
        """Its lock version, as the archives and deployed names give it (1 if unrecorded)."""
        meta = self.meta
        return 1 if meta is None or meta.lock_version is None else meta.lock_version

    @property
    def deployed_name(self) -> str:
        """`NAME@N` for versioned layers (N from the lock metadata), else the build name."""
        return naming.deployed_name(self.layer.env_name, self.lock_version if self.layer.versioned else None)


@dataclass(frozen=True)
class Locks:
    """The lock files of a stack's layers as one step (or one command) reads them: each
    layer's read once, however many layers above it ask (see `LockedLayer`)."""

    stack: StackSpec
    _layers: dict[str, LockedLayer] = field(default_factory=dict, repr=False, compare=False)

    def of(self, layer: LayerSpec) -> LockedLayer:
        found = self._layers.get(layer.env_name)
        if found is None:
            found = self._layers[layer.env_name] = LockedLayer(self.stack, layer)
        return found

    def lowers(self, layer: LayerSpec) -> list[LockedLayer]:
        """Its lower layers' locks, in `lower_layers` order (the runtime last)."""
        return [self.of(lower) for lower in lower_layers(self.stack, layer)]

    def lower_locks(self, layer: LayerSpec) -> list[Pylock]:
        return [lower.pylock for lower in self.lowers(layer)]


def input_hashes(stack: StackSpec, layer: LayerSpec, lowers: list[Pylock]) -> InputHashes:
    """What a lock records of its inputs now; equal hashes mean uv would resolve the same."""
    return InputHashes(
        lock_input_hash=pylock.hash_strings(layer.requirements),
        other_inputs_hash=pylock.hash_strings([json.dumps(uvconfig.lock_inputs(stack, layer))]),
        constraints_hash=pylock.hash_strings(pylock.constraint_lines(lowers)),
    )


def other_inputs(stack: StackSpec, layer: LayerSpec) -> dict[str, str]:
    """Each lock input's own hash: recorded so a relock can say which one changed."""
    inputs = uvconfig.lock_inputs(stack, layer)
    return {key: pylock.hash_strings([json.dumps(value, sort_keys=True)]) for key, value in inputs.items()}


def version_inputs_hash(stack: StackSpec, layer: LayerSpec) -> str:
    items = [f"env_name={layer.env_name}", f"versioned={layer.versioned}"]
    if layer.versioned:
        # As in the existing venvstacks: new app code is a new version of a versioned app,
        # deployed beside the old one, even when its packages stay the same.
        items += [f"module={module_name(m)}:{module_hash(m, stack.root)}" for m in layer.modules]
    return pylock.hash_strings(items)


def why_invalid(locks: Locks, layer: LayerSpec, with_lowers: bool = True) -> str | None:
    """Why the layer needs locking, in a few words naming the input; None if its lock is valid
    (its version may still need a bump, see `lock_is_current`). `with_lowers=False` leaves
    out the lower layers' own validity, which a lock of the existing venvstacks depends on."""
    locked = locks.of(layer)
    meta = locked.meta
    if meta is None or not locked.files.pylock.exists():
        return "it has no lock yet"
    try:
        if meta.by_existing_tool:
            return _why_theirs_invalid(locks, layer, meta, with_lowers)
        if meta.requirements_hash != pylock.requirements_hash(locked.pylock):
            return f"{locked.files.pylock.name} was changed since it was locked"
        now = input_hashes(locks.stack, layer, locks.lower_locks(layer))
        return _changed_input(locks.stack, layer, meta.inputs, meta.other_inputs, now)
    except _DAMAGED:
        return "its lock, or a lower layer's, cannot be read"


def lock_is_valid(locks: Locks, layer: LayerSpec) -> bool:
    """The lock exists, is intact, and was made from the layer's current inputs (uv would
    resolve the same packages; the version may still need a bump, see lock_is_current)."""
    return why_invalid(locks, layer) is None


def lock_is_current(locks: Locks, layer: LayerSpec) -> bool:
    """Locking would change nothing: the lock is valid and its version is up to date."""
    return lock_is_valid(locks, layer) and version_is_current(locks.of(layer))


def version_is_current(locked: LockedLayer) -> bool:
    meta, layer = locked.meta, locked.layer
    if meta is None:
        return False
    if meta.by_existing_tool:
        # As the existing venvstacks: version inputs count for versioned layers only.
        expected = upstream.version_inputs_hash(locked.stack, layer)
        return not layer.versioned or meta.version_inputs_hash == expected
    return meta.version_inputs_hash == locked.version_inputs_hash


def fits_runtime(locked: LockedLayer, runtime_version: str) -> bool:
    """Markers such as python_full_version >= "3.11.4" were decided for the runtime of the
    last lock: another patch release must decide them again. A lock whose markers never
    name the exact version (None) fits every patch release, so committed locks stay valid
    on machines whose runtime is another X.Y.Z; a lock of ours from before the exact
    version was recorded (no key) is redone. The existing venvstacks records no exact
    version: its lock fits when its markers name none."""
    meta = locked.meta
    if meta is None:
        return False
    if meta.by_existing_tool:
        return not pylock.needs_full_version(locked.pylock, runtime_version)
    return meta.full_version_recorded and meta.python_full_version in (None, runtime_version)


def adopt(locks: Locks, layer: LayerSpec) -> bool:
    """Record our input hashes beside a valid lock the existing venvstacks made (its own
    files untouched); returns whether the record was new."""
    locked = locks.of(layer)
    meta = locked.meta
    if meta is None or not meta.by_existing_tool:
        return False
    now = input_hashes(locks.stack, layer, locks.lower_locks(layer))
    record = AdoptedInputs(meta.requirements_hash, now, other_inputs(locks.stack, layer))
    return write_if_changed(locked.files.adopted, record.text())


def _changed_input(
    stack: StackSpec,
    layer: LayerSpec,
    recorded: InputHashes,
    before: dict[str, str] | None,
    now: InputHashes,
) -> str | None:
    if recorded.lock_input_hash != now.lock_input_hash:
        return "its requirements changed"
    if recorded.constraints_hash != now.constraints_hash:
        return "a lower layer's pins changed"
    if recorded.other_inputs_hash == now.other_inputs_hash:
        return None
    if before is not None:
        changed = [_OTHER_INPUTS[k] for k, v in other_inputs(stack, layer).items() if before.get(k) != v]
        if changed:
            return f"{', '.join(changed)} changed"
    return "its settings changed (" + ", ".join(_OTHER_INPUTS.values()) + ")"


def _why_theirs_invalid(locks: Locks, layer: LayerSpec, meta: LockMetadata, with_lowers: bool) -> str | None:
    stack, locked = locks.stack, locks.of(layer)
    if meta.requirements_hash != upstream.requirements_hash(locked.pylock):
        return f"{locked.files.pylock.name} was changed since the existing venvstacks locked it"
    if meta.inputs.lock_input_hash != upstream.lock_input_hash(layer):
        return "its requirements changed"
    if meta.inputs.other_inputs_hash != upstream.other_inputs_hash(stack, layer):
        return "its Python version, linux_target, macosx_target, runtime or frameworks changed"
    # Every layer below (lower_layers is transitive), each checked on its own: linear, not
    # once per path down the graph.
    for lower in lower_layers(stack, layer) if with_lowers else ():
        reason = why_invalid(locks, lower, with_lowers=False)
        if reason is not None:
            return f"lower layer {lower.env_name} needs locking ({reason})"
    adopted = locked.adopted
    if adopted is not None and adopted.requirements_hash == meta.requirements_hash:
        now = input_hashes(stack, layer, locks.lower_locks(layer))
        return _changed_input(stack, layer, adopted.inputs, adopted.other_inputs, now)
    # Never adopted: its lower layers' pins are those it was locked against only while
    # they are the existing tool's locks too.
    for below in locks.lowers(layer):
        if below.meta is None or not below.meta.by_existing_tool:
            return f"lower layer {below.layer.env_name} was relocked since"
    return None
