"""The workflow's first step: the stack file and the command line's options, as one `Settings`.

Relative paths on the command line are relative to the stack file's folder, as in the
existing venvstacks; options not given keep their defaults (some from the environment).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from venvstacks.cli_parsers import StackCommand
from venvstacks.cli_stackoptions import OperationCommand
from venvstacks.console import say
from venvstacks.engine.rundoit import load_stack_for, stack_path
from venvstacks.engine.settings import Settings
from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import check_folder_path
from venvstacks.layout import DEFAULT_EXPORT_DIR, DEFAULT_PUBLISH_DIR, OutputOptions
from venvstacks.lock.uvconfig import LockOptions
from venvstacks.runtimes.options import RuntimeOptions
from venvstacks.stack.kinds import did_you_mean
from venvstacks.stack.modfiles import is_outside

SHOW_LISTS = "; `venvstacks show` lists them"
"""The end of a warning about a layer name that matches nothing."""


def load(_: None, cmd: StackCommand) -> Settings:
    path = stack_path(cmd.spec_path)

    def rel(value: str) -> Path:
        # As upstream: relative paths are relative to the stack file's folder.
        return (path.parent / Path(value).expanduser()).resolve()

    stack = load_stack_for(path, rel(cmd.build_dir))
    root = stack.root
    outside = [
        f"{layer.env_name}: {os.path.relpath(module, root)}"
        for layer in stack.layers
        for module in layer.modules
        if is_outside(module, root)
    ]
    if outside:  # allowed, as the existing venvstacks does; but worth knowing what ships
        say(f"note: module files from outside the stack folder: {'; '.join(outside)}")

    runtimes = RuntimeOptions.from_env(
        cache_dir=rel(cmd.runtime_cache) if cmd.runtime_cache else None,
        policy=cmd.runtime_source,
        mirror=cmd.runtime_mirror,
        archives=_archives(cmd.runtime_archive) or None,
    )
    check_folder_path(rel(cmd.build_dir), "--build-dir")
    if not isinstance(cmd, OperationCommand):
        return Settings(stack, rel(cmd.build_dir), runtimes)
    for folder in cmd.local_wheels:
        if not rel(folder).is_dir():
            raise VenvStacksError(f"--local-wheels {folder!r}: {rel(folder)} is not a folder")
    lock = LockOptions(
        upgrade=cmd.upgrade,
        upgrade_packages=cmd.upgrade_package,
        index=cmd.index,
        local_wheels=tuple(rel(d) for d in cmd.local_wheels),
        reset=cmd.reset_lock,
    )
    for pattern in cmd.reset_lock:  # a typo would otherwise pass unseen: nothing is reset
        if not any(LockOptions(reset=(pattern,)).resets(layer) for layer in stack.layers):
            hint = did_you_mean(pattern, (layer.env_name for layer in stack.layers))
            say(f"warning: --reset-lock {pattern!r} matches no layer{hint or SHOW_LISTS}")
    exporting = cmd.command == "local-export"
    out = OutputOptions(
        export_dir=rel(cmd.output_dir or DEFAULT_EXPORT_DIR) if exporting else root / DEFAULT_EXPORT_DIR,
        publish_dir=root / DEFAULT_PUBLISH_DIR if exporting else rel(cmd.output_dir or DEFAULT_PUBLISH_DIR),
        archive_format=cmd.format,
        tag_outputs=cmd.tag_outputs,
        force=cmd.force,
        **_given(allow_local_runtime=cmd.allow_local_runtime, bytecode=cmd.bytecode),
    )
    if cmd.output_dir:
        check_folder_path(rel(cmd.output_dir), "--output-dir")
    platforms = tuple(dict.fromkeys(cmd.platform))  # each once, in the order given
    return Settings(stack, rel(cmd.build_dir), runtimes, lock, out, platforms)


def _given(**options: Any) -> dict[str, Any]:
    """The options given on the command line: the others keep their (environment) defaults."""
    return {name: value for name, value in options.items() if value is not None}


def _archives(values: Sequence[str] | None) -> dict[str, str]:
    archives = {}
    for value in values or ():
        request, sep, location = value.partition("=")
        if not sep or "#sha256=" not in location:
            raise VenvStacksError(
                f"--runtime-archive {value!r}: write it as [PLATFORM:]cpython@X.Y.Z=PATH_OR_URL#sha256=HEX"
            )
        archives[request] = location
    return archives
