"""The rules for an application's `launch_module` and `support_modules` fields: the only
fields whose values are checked against the disk (each module must exist, be a `.py` file or
a package folder whose files may ship, and be importable by `python -m` under a name no other
module of the layer, Python or venvstacks uses). Each raises a `SpecError` naming the file,
the layer and the field; the other fields' rules are in `venvstacks.stack.fields`.
"""

from __future__ import annotations

import keyword
import os
import sys
from pathlib import Path

from venvstacks.stack import modfiles
from venvstacks.stack.fields import LayerTable, strings
from venvstacks.stack.modfiles import module_name


def modules(t: LayerTable) -> tuple[Path, tuple[Path, ...]]:
    """An application's launch module and support modules, which must not share a module name."""
    if "launch_module" not in t.fields:
        raise t.fail(
            "launch_module", "missing; applications need a launch module (a .py file or package folder)"
        )
    written = [("launch_module", str(t.fields["launch_module"]))]
    written += [("support_modules", s) for s in strings(t, "support_modules")]
    # Names first, as the existing venvstacks: a clash is the error, whatever exists.
    seen: dict[str, str] = {}
    for field, value in written:
        name = module_name(_written_path(t, value))
        if name in seen:
            raise t.fail(
                field,
                f"module name {name!r} is used twice (also by {seen[name]}); module names must be unique",
            )
        seen[name] = field
    paths = [_module_path(t, field, value) for field, value in written]
    return paths[0], tuple(paths[1:])


def _written_path(t: LayerTable, value: str) -> Path:
    # Not resolved: the name is the one written (a symlinked module keeps its link's name);
    # modfiles checks where it really leads.
    return Path(os.path.abspath(t.path.parent / value))


def _module_path(t: LayerTable, field: str, value: str) -> Path:
    path = _written_path(t, value)
    if not path.exists():
        raise t.fail(field, f"{value!r} does not exist (paths are relative to the stack file's folder)")
    if path.is_file() and path.suffix != ".py":
        raise t.fail(field, f"{value!r} is neither a .py file nor a package folder")
    if path.is_dir() and not (path / "__init__.py").exists() and not (path / "__main__.py").exists():
        raise t.fail(field, f"{value!r} is a folder without __init__.py or __main__.py")
    try:
        modfiles.module_files(path, t.path.parent)
    except modfiles.ModuleError as exc:
        raise t.fail(field, f"{value!r}: {exc}") from None
    _check_importable(t, field, value, module_name(path))
    return path


# Names the generated wiring or Python's own start-up imports from site-packages.
_RESERVED_MODULES = frozenset({"sitecustomize", "usercustomize", "site"})


def _check_importable(t: LayerTable, field: str, value: str, name: str) -> None:
    """The module must be importable with `python -m NAME` and not shadow, or be shadowed."""
    if not name.isidentifier() or keyword.iskeyword(name):
        raise t.fail(
            field,
            f"{value!r} gives module name {name!r}, which `python -m` cannot import; "
            "rename it to a valid Python identifier (letters, digits, _)",
        )
    if name in _RESERVED_MODULES:
        raise t.fail(field, f"{value!r} would replace Python's or venvstacks' own {name!r} module; rename it")
    if name in sys.stdlib_module_names:
        raise t.fail(
            field,
            f"{value!r} has the name of the standard library module {name!r}, "
            "which Python imports instead; rename it",
        )
