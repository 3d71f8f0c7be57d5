"""The three kinds of layer, and every name a kind goes by.

Imported by the stack parser and by the publishing and deploying code alike, so it stays
free of other imports: deploying reads a kind from `venvstacks.json` without loading the
stack-file parser.
"""

from __future__ import annotations

from enum import Enum


class LayerKind(Enum):
    """A kind's value is its table name in the stack file and its key in `venvstacks.json`."""

    RUNTIME = "runtimes"
    FRAMEWORK = "frameworks"
    APPLICATION = "applications"

    @property
    def prefix(self) -> str:
        """Put before a layer's name to make its build name (`framework-scipy`)."""
        return _PREFIXES[self]

    @property
    def singular(self) -> str:
        """The kind in words: "runtime", "framework" or "application"."""
        return self.value[:-1]


_PREFIXES = {LayerKind.RUNTIME: "", LayerKind.FRAMEWORK: "framework-", LayerKind.APPLICATION: "app-"}
