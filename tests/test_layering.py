"""The package's imports flow one way: each group of modules imports only the groups below it.

Read from the source with `ast` (every import counts: top-level, inside a function, and under
`TYPE_CHECKING`), so a helper imported "just for a constant" from a higher group fails here.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "venvstacks"

# The groups, lowest first, and what each may import besides itself (README "Layout").
BASE = "base"  # errors, platforms, fsutil, tools, console, lazy, startup, and the package's own __init__
ALLOWED: dict[str, set[str]] = {
    BASE: set(),
    "stack": {BASE},
    "archive": {BASE},
    "layout": {BASE, "stack"},
    "lock": {BASE, "stack", "layout"},
    "runtimes": {BASE, "archive"},
    "layers": {BASE, "stack", "layout", "lock", "runtimes"},
    "ship": {BASE, "stack", "layout", "lock", "archive"},
    "engine": {BASE, "stack", "layout", "lock", "runtimes", "layers", "ship", "archive"},
    "cli": {BASE, "stack", "layout", "lock", "runtimes", "layers", "ship", "archive", "engine"},
}
_TOP_LEVEL = {
    "__init__": BASE,
    "errors": BASE,
    "jsondoc": BASE,
    "platforms": BASE,
    "fsutil": BASE,
    "tools": BASE,
    "console": BASE,
    "lazy": BASE,
    "startup": BASE,
    "layout": "layout",
    "layerconfig": "layout",
    "distinfo": "layout",
    "cli": "cli",
    "cli_options": "cli",
    "cli_stackoptions": "cli",
    "cli_commands": "cli",
    "cli_settings": "cli",
    "cli_show": "cli",
    "cli_docs": "cli",
    "cli_prune": "cli",
    "cli_parsers": "cli",
    "cli_graph": "cli",
    "cli_licenses": "cli",
    "cli_workflow": "cli",
    "dodo": "cli",
    "starter": "cli",
    "__main__": "cli",
}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _group(module: str) -> str:
    parts = module.split(".")[1:] or ["__init__"]
    if (PACKAGE / parts[0]).is_dir():
        return parts[0]
    return _TOP_LEVEL[parts[0]]


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    """Every venvstacks module `path` imports, wherever the import statement is, modules it
    declares loaded on first use (`lazy_modules("venvstacks....")`) included (or, with
    `top_level_only`, those imported when the module itself is)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body if top_level_only else ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "lazy_modules":
            names = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            found.update(name for name in names if name.startswith("venvstacks"))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("venvstacks"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if not node.module.startswith("venvstacks"):
                continue
            found.add(node.module)
            # `from venvstacks.ship import deploy` imports the module venvstacks.ship.deploy.
            for alias in node.names:
                sub = PACKAGE.parent.joinpath(*f"{node.module}.{alias.name}".split("."))
                if sub.with_suffix(".py").is_file() or sub.is_dir():
                    found.add(f"{node.module}.{alias.name}")
    return found


def _sources(top_level_only: bool = False) -> dict[str, set[str]]:
    paths = [p for p in PACKAGE.rglob("*.py") if "_injected" not in p.parts]
    return {_module(p): _imports(p, top_level_only) for p in sorted(paths)}


def test_the_allowed_imports_form_no_cycle() -> None:
    graphlib.TopologicalSorter(ALLOWED).prepare()  # raises CycleError


def test_every_module_belongs_to_a_group() -> None:
    assert {_group(module) for module in _sources()} <= ALLOWED.keys()


def test_no_module_imports_itself_through_others() -> None:
    """Import time has no cycle: a module's own imports never lead back to it."""
    graphlib.TopologicalSorter(_sources(top_level_only=True)).prepare()  # raises CycleError


def test_no_import_cycle_even_through_deferred_or_type_only_imports() -> None:
    """No module needs an import inside a function or under TYPE_CHECKING to dodge a cycle:
    counting every import statement, wherever it is, the modules still form no cycle."""
    graphlib.TopologicalSorter(_sources()).prepare()  # raises CycleError


def test_no_import_hides_inside_a_function() -> None:
    """What a module loads on first use is declared once at its top (`venvstacks.lazy`), so a
    reader sees every dependency of a module in one place."""
    inside = [
        f"{_module(path)}:{node.lineno}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if "_injected" not in path.parts
        for func in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(func)
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    assert inside == []


def test_the_stack_data_model_imports_only_the_layer_kinds() -> None:
    """Every reader of a stack imports the specs without the parser (`spec`, `fields`, `naming`)."""
    reached = _reached("venvstacks.stack.model", _sources())
    assert {t for t in reached if _group(t) != BASE} <= {"venvstacks.stack", "venvstacks.stack.kinds"}


def _defined(path: Path) -> set[str]:
    """The names a module defines at its top level (imported names are not defined there)."""
    names: set[str] = set()
    body = list(ast.parse(path.read_text(encoding="utf-8")).body)
    while body:
        node = body.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, ast.If | ast.Try):
            body += [*node.body, *node.orelse]
            body += [n for h in getattr(node, "handlers", []) for n in h.body]
    return names


def test_every_import_names_the_module_that_defines_it() -> None:
    """No re-exports: `from venvstacks.a import X` only where `a` itself defines X."""
    paths = {_module(p): p for p in PACKAGE.rglob("*.py") if "_injected" not in p.parts}
    defined = {module: _defined(path) for module, path in paths.items()}
    wrong = [
        f"{module} imports {node.module}.{alias.name}"
        for module, path in sorted(paths.items())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in paths
        for alias in node.names
        if alias.name not in defined[node.module] and f"{node.module}.{alias.name}" not in paths
    ]
    assert wrong == []


def test_no_group_imports_one_above_it() -> None:
    wrong = [
        f"{module} ({_group(module)}) imports {target} ({_group(target)})"
        for module, targets in _sources().items()
        for target in sorted(targets)
        if _group(target) != _group(module) and _group(target) not in ALLOWED[_group(module)]
    ]
    assert wrong == []


# Deploying and verifying run on the target machine, wiring runs after install: none of them
# may pull in the build's install, lock or publish code for a helper or a constant.
_KEPT_APART = {
    "venvstacks.layers.linking": ("venvstacks.layers.envs", "venvstacks.lock.locking", "venvstacks.ship"),
    "venvstacks.ship.deploy": (
        "venvstacks.ship.publish",
        "venvstacks.ship.export",
        "venvstacks.archive.writer",
        "venvstacks.layers",
        "venvstacks.lock",
    ),
    "venvstacks.ship.verify": (
        "venvstacks.ship.publish",
        "venvstacks.ship.export",
        "venvstacks.archive.writer",
        "venvstacks.layers",
        "venvstacks.lock",
    ),
}


def _reached(start: str, sources: dict[str, set[str]]) -> set[str]:
    """Every module that importing `start` may import, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        module = todo.pop()
        for target in sources.get(module, set()) - seen:
            seen.add(target)
            todo.append(target)
    return seen


@pytest.mark.parametrize("module", sorted(_KEPT_APART))
def test_deploy_verify_and_linking_leave_build_code_alone(module: str) -> None:
    reached = _reached(module, _sources())
    apart = _KEPT_APART[module]
    assert [t for t in sorted(reached) if t in apart or t.startswith(tuple(f"{a}." for a in apart))] == []
