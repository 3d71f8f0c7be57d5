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

import json

from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import write_if_changed
from venvstacks.layout import lock_files
from venvstacks.lock import pylock, upstream, uvconfig
from venvstacks.lock.lockmeta import AdoptedInputs, InputHashes, LockMetadata
from venvstacks.lock.pylockdoc import Pylock
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


def lower_locks(stack: StackSpec, layer: LayerSpec) -> list[Pylock]:
    return [Pylock.read(lock_files(stack, lower).pylock) for lower in lower_layers(stack, layer)]


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


def why_invalid(stack: StackSpec, layer: LayerSpec, with_lowers: bool = True) -> str | None:
    """Why the layer needs locking, in a few words naming the input; None if its lock is valid
    (its version may still need a bump, see `lock_is_current`). `with_lowers=False` leaves
    out the lower layers' own validity, which a lock of the existing venvstacks depends on."""
    files = lock_files(stack, layer)
    meta = LockMetadata.read(files.meta)
    if meta is None or not files.pylock.exists():
        return "it has no lock yet"
    try:
        lock = Pylock.read(files.pylock)
        if meta.by_existing_tool:
            return _why_theirs_invalid(stack, layer, meta, lock, with_lowers)
        if meta.requirements_hash != pylock.requirements_hash(lock):
            return f"{files.pylock.name} was changed since it was locked"
        now = input_hashes(stack, layer, lower_locks(stack, layer))
        return _changed_input(stack, layer, meta.inputs, meta.other_inputs, now)
    except _DAMAGED:
        return "its lock, or a lower layer's, cannot be read"


def lock_is_valid(stack: StackSpec, layer: LayerSpec) -> bool:
    """The lock exists, is intact, and was made from the layer's current inputs (uv would
    resolve the same packages; the version may still need a bump, see lock_is_current)."""
    return why_invalid(stack, layer) is None


def lock_is_current(stack: StackSpec, layer: LayerSpec) -> bool:
    """Locking would change nothing: the lock is valid and its version is up to date."""
    return lock_is_valid(stack, layer) and version_is_current(stack, layer)


def version_is_current(stack: StackSpec, layer: LayerSpec) -> bool:
    meta = LockMetadata.read(lock_files(stack, layer).meta)
    if meta is None:
        return False
    if meta.by_existing_tool:
        # As the existing venvstacks: version inputs count for versioned layers only.
        expected = upstream.version_inputs_hash(stack, layer)
        return not layer.versioned or meta.version_inputs_hash == expected
    return meta.version_inputs_hash == version_inputs_hash(stack, layer)


def fits_runtime(stack: StackSpec, layer: LayerSpec, runtime_version: str) -> bool:
    """Markers such as python_full_version >= "3.11.4" were decided for the runtime of the
    last lock: another patch release must decide them again. A lock whose markers never
    name the exact version (None) fits every patch release, so committed locks stay valid
    on machines whose runtime is another X.Y.Z; a lock of ours from before the exact
    version was recorded (no key) is redone. The existing venvstacks records no exact
    version: its lock fits when its markers name none."""
    files = lock_files(stack, layer)
    meta = LockMetadata.read(files.meta)
    if meta is None:
        return False
    if meta.by_existing_tool:
        return not pylock.needs_full_version(Pylock.read(files.pylock), runtime_version)
    return meta.full_version_recorded and meta.python_full_version in (None, runtime_version)


def adopt(stack: StackSpec, layer: LayerSpec) -> bool:
    """Record our input hashes beside a valid lock the existing venvstacks made (its own
    files untouched); returns whether the record was new."""
    files = lock_files(stack, layer)
    meta = LockMetadata.read(files.meta)
    if meta is None or not meta.by_existing_tool:
        return False
    now = input_hashes(stack, layer, lower_locks(stack, layer))
    record = AdoptedInputs(meta.requirements_hash, now, other_inputs(stack, layer))
    return write_if_changed(files.adopted, record.text())


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


def _why_theirs_invalid(
    stack: StackSpec, layer: LayerSpec, meta: LockMetadata, lock: Pylock, with_lowers: bool
) -> str | None:
    name = lock_files(stack, layer).pylock.name
    if meta.requirements_hash != upstream.requirements_hash(lock):
        return f"{name} was changed since the existing venvstacks locked it"
    if meta.inputs.lock_input_hash != upstream.lock_input_hash(layer):
        return "its requirements changed"
    if meta.inputs.other_inputs_hash != upstream.other_inputs_hash(stack, layer):
        return "its Python version, linux_target, macosx_target, runtime or frameworks changed"
    # Every layer below (lower_layers is transitive), each checked on its own: linear, not
    # once per path down the graph.
    for lower in lower_layers(stack, layer) if with_lowers else ():
        reason = why_invalid(stack, lower, with_lowers=False)
        if reason is not None:
            return f"lower layer {lower.env_name} needs locking ({reason})"
    adopted = AdoptedInputs.read(lock_files(stack, layer).adopted)
    if adopted is not None and adopted.requirements_hash == meta.requirements_hash:
        now = input_hashes(stack, layer, lower_locks(stack, layer))
        return _changed_input(stack, layer, adopted.inputs, adopted.other_inputs, now)
    # Never adopted: its lower layers' pins are those it was locked against only while
    # they are the existing tool's locks too.
    for lower in lower_layers(stack, layer):
        lower_meta = LockMetadata.read(lock_files(stack, lower).meta)
        if lower_meta is None or not lower_meta.by_existing_tool:
            return f"lower layer {lower.env_name} was relocked since"
    return None
