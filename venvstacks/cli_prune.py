"""What renamed or removed layers left behind: the note `show` and `build` print, and the
`venvstacks prune` step that removes it (engine/leftovers.py finds it)."""

from __future__ import annotations

from venvstacks.cli_parsers import StackCommand
from venvstacks.console import say
from venvstacks.engine import leftovers
from venvstacks.engine.rundoit import hold_build_lock
from venvstacks.engine.settings import Settings


def mention_leftovers(settings: Settings, cmd: StackCommand) -> Settings:
    """`show` and `build` name what renamed or removed layers left behind (`prune` removes it)."""
    if cmd.command in ("show", "build") and not cmd.json:
        found = leftovers.find_leftovers(settings)
        if found:
            say(leftovers.note(found, settings.stack.root))
    return settings


def prune(settings: Settings, cmd: StackCommand) -> int:
    if settings.build_dir.is_dir():
        hold_build_lock(settings.build_dir)  # no build may be writing what is removed
    found = leftovers.find_leftovers(settings)
    leftovers.remove(found)
    for item in found if not cmd.quiet else ():
        print(f"removed {item.path}" + (f" (of layer {item.layer})" if cmd.verbose else ""))
    print(f"removed {len(found)} leftover(s) of layers no longer in {settings.stack.path}")
    return 0
