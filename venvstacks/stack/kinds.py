"""The three kinds of layer, and every name a kind goes by.

Imported by the stack parser and by the publishing and deploying code alike, so it stays
free of other imports (but `venvstacks.lazy`): deploying reads a kind from `venvstacks.json`
without loading the stack-file parser.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from enum import Enum
from typing import TYPE_CHECKING

from venvstacks.lazy import lazy_modules

if TYPE_CHECKING:
    import difflib
else:
    # Only a misspelt name needs it.
    (difflib,) = lazy_modules("difflib")


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


def did_you_mean(pattern: str, build_names: Iterable[str], before: str = "") -> str:
    """The end of a "matches no layer" message: "; did you mean app-fetch?", or "".

    Patterns match build names only, as in the existing tool; a pattern naming a layer as the
    stack file does (`fetch` for `app-fetch`) or a near miss (`app-fecth`) is answered with
    the build names it probably meant (each after ``before``: "build:" names a task).
    """
    names = sorted(set(build_names))
    meant = [name for name in names if fnmatch.fnmatchcase(stack_file_name(name), pattern)]
    if not meant:
        meant = difflib.get_close_matches(pattern, names, n=3, cutoff=0.75)
    if not meant:
        return ""
    return f"; did you mean {' or '.join(before + name for name in meant)}?"


def stack_file_name(build_name: str) -> str:
    """The name a layer has in the stack file: its build name without its kind's prefix."""
    for kind in LayerKind:
        if kind.prefix and build_name.startswith(kind.prefix):
            return build_name[len(kind.prefix) :]
    return build_name
