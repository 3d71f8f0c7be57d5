"""What every typed JSON document shares: checked field reads, and the one-line error.

Each document venvstacks writes (layer metadata, `venvstacks.json`, lock metadata, the
deploy state, the layer config, the files manifest, the build-state files) is one frozen
class in the package group that owns it, with a `from_json` that reads its fields through
`Fields` and a `to_json` that gives back exactly the object written today. A field of the
wrong type is one line naming the file, the layer when there is one, and the field, as the
stack file's errors do, instead of a confusing comparison or a traceback later on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from venvstacks.errors import VenvStacksError, located
from venvstacks.fsutil import load_json_text, read_bounded_text

T = TypeVar("T")

DAMAGED = "the file is damaged or was edited"


class DocumentError(VenvStacksError):
    """A document holds a value its class cannot take: names the file, layer and field."""

    def __init__(self, path: Path, layer: str | None, field: str | None, message: str, fix: str) -> None:
        super().__init__(f"{located(str(path), layer, field)}: {message}; {fix}")
        self.path = path
        self.field = field


def read_document(path: Path, fix: str = DAMAGED) -> dict[str, Any] | None:
    """A JSON file holding an object; None when there is no such file, a DocumentError when
    it is not JSON or not an object."""
    try:
        data = load_json_text(read_bounded_text(path))
    except FileNotFoundError:
        return None
    except ValueError as exc:  # not UTF-8, not JSON, too big, nested too deeply
        raise DocumentError(path, None, None, f"cannot be read as JSON ({exc})", fix) from None
    if not isinstance(data, dict):
        raise DocumentError(path, None, None, f"must hold an object, not {json_type(data)}", fix)
    return data


@dataclass(frozen=True)
class Fields:
    """A document's fields, read with their types checked (`fail` names the field)."""

    data: Mapping[str, Any]
    path: Path
    layer: str | None = None
    fix: str = DAMAGED
    within: str | None = None  # an object inside the document: its fields are `within.field`

    @classmethod
    def of(
        cls, data: Any, path: Path, layer: str | None = None, fix: str = DAMAGED, within: str | None = None
    ) -> Fields:
        if not isinstance(data, Mapping):
            raise DocumentError(path, layer, within, f"must be an object, not {json_type(data)}", fix)
        return cls(data, path, layer, fix, within)

    def fail(self, field: str | None, message: str) -> DocumentError:
        if self.within:
            field = self.within if field is None else f"{self.within}.{field}"
        return DocumentError(self.path, self.layer, field, message, self.fix)

    def has(self, field: str) -> bool:
        return field in self.data

    def text(self, field: str) -> str:
        value = self.data.get(field)
        if field not in self.data:
            raise self.fail(field, "is missing")
        return self._typed(field, value, str)

    def opt_text(self, field: str) -> str | None:
        """A string, or None when absent or null."""
        value = self.data.get(field)
        return None if value is None else self._typed(field, value, str)

    def integer(self, field: str) -> int | None:
        """An integer (not a boolean), or None when absent or null."""
        value = self.data.get(field)
        return None if value is None else self._typed(field, value, int)

    def flag(self, field: str) -> bool | None:
        value = self.data.get(field)
        return None if value is None else self._typed(field, value, bool)

    def texts(self, field: str) -> tuple[str, ...] | None:
        """A list of strings, or None when absent or null."""
        value = self.data.get(field)
        if value is None:
            return None
        items = self._typed(field, value, list)
        if not all(isinstance(item, str) for item in items):
            raise self.fail(field, "every entry must be a string")
        return tuple(items)

    def table(self, field: str) -> Fields:
        """An object, read as `Fields` (its fields named `field.name`); it must be there."""
        if field not in self.data:
            raise self.fail(field, "is missing")
        where = field if self.within is None else f"{self.within}.{field}"
        return Fields.of(self.data[field], self.path, self.layer, self.fix, where)

    def tables(self, field: str) -> tuple[Fields, ...] | None:
        """A list of objects, each read as `Fields` (their fields named `field[N].name`), or
        None when absent or null."""
        value = self.data.get(field)
        if value is None:
            return None
        where = field if self.within is None else f"{self.within}.{field}"
        items = self._typed(field, value, list)
        return tuple(
            Fields.of(item, self.path, self.layer, self.fix, f"{where}[{n}]") for n, item in enumerate(items)
        )

    def mapping(self, field: str) -> dict[str, Any] | None:
        """An object, or None when absent or null."""
        value = self.data.get(field)
        return None if value is None else dict(self._typed(field, value, dict))

    def text_map(self, field: str) -> dict[str, str] | None:
        """An object of strings, or None when absent or null."""
        value = self.mapping(field)
        if value is not None and not all(isinstance(v, str) for v in value.values()):
            raise self.fail(field, "every value must be a string")
        return value

    def _typed(self, field: str, value: Any, expected: type[T]) -> T:
        # JSON true/false load as bool, which Python counts as an int: not a number here.
        if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            raise self.fail(field, f"must be {_NAMES[expected]}, not {value!r} ({json_type(value)})")
        return value


_NAMES = {str: "a string", int: "an integer", bool: "true or false", dict: "an object", list: "a list"}


def json_type(value: Any) -> str:
    """What a JSON value is, in words."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return {str: "a string", list: "a list", dict: "an object", type(None): "null"}.get(type(value), "?")
