"""Modules loaded on first use, for what a no-op run never needs.

A module declares them once, at its top, as one list, and uses them as modules:

    if TYPE_CHECKING:
        import pathspec
    else:
        (pathspec,) = lazy_modules("pathspec")

    spec = pathspec.GitIgnoreSpec.from_lines(lines)   # pathspec is imported here, once

The stand-in imports its module through the import system on each attribute access (a
dictionary look-up once imported), so two threads touching it first at once are as safe
as two `import` statements; mypy sees the real modules.
"""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    """Stands in for the module ``name`` until one of its attributes is asked for."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, loaded on first use>"


def lazy_modules(*names: str) -> tuple[Any, ...]:
    return tuple(LazyModule(name) for name in names)
