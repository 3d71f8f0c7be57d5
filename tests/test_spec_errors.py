"""The stack file: every way a layer or a top-level key can be wrong (the catalogue `BAD`).

Bad stack files go through the real CLI (`venvstacks show`), because what a user sees is the
contract: exit code 2 and exactly one line on stderr naming the file, the layer and the field,
with a hint of what to do, and never a traceback. The same files also go through the API
(`load_stack`), which must raise a `SpecError` naming the same layer and field. Errors about the
file itself (missing, not TOML, not UTF-8) are in test_spec_file.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.support.spec_files import (
    INDEX,
    OTHER_INDEX,
    RUNTIME,
    RUNTIME_312,
    app,
    framework,
    one_error_line,
    write_stack,
)
from venvstacks.errors import SpecError
from venvstacks.stack.spec import load_stack


@dataclasses.dataclass(frozen=True)
class Bad:
    """A broken stack file and what the one error line must say about it."""

    toml: str
    layer: str | None  # None: the error is about the file or a top-level key
    field: str | None
    hint: str  # words telling the user what to do (or what is expected)
    files: dict[str, str] = dataclasses.field(default_factory=lambda: {"launch.py": "print('hi')\n"})


def _lower_indexes_disagree(spelled: str) -> Bad:
    """Two lower layers take one distribution (spelled as given by the first) from two indexes."""
    return Bad(
        RUNTIME
        + framework("a", extra=f'package_indexes = {{ {spelled} = "mirror" }}')
        + framework("b", extra='package_indexes = { idna = "other" }')
        + framework("c", deps='frameworks = ["a", "b"]')
        + INDEX
        + OTHER_INDEX,
        "framework-c",
        "package_indexes",
        "declare the winner with index_overrides",
    )


BAD: dict[str, Bad] = {
    # --- keys and types --------------------------------------------------------------------
    "unknown-layer-key": Bad(
        RUNTIME + framework("fw", extra='requirement = ["idna"]'),
        "framework-fw",
        "requirement",
        "did you mean 'requirements'?",
    ),
    "unknown-layer-key-app-only-field-on-framework": Bad(
        RUNTIME + framework("fw", extra='launch_module = "launch.py"'),
        "framework-fw",
        "launch_module",
        "is only valid for [[applications]]; remove it from this layer",
    ),
    "unknown-layer-key-dependency-field-on-runtime": Bad(
        RUNTIME.replace("requirements", 'runtime = "cpython-3.11"\nrequirements'),
        "cpython-3.11",
        "runtime",
        "is only valid for [[frameworks]] or [[applications]]",
    ),
    "unknown-top-level-key": Bad(
        RUNTIME + '\n[[framework]]\nname = "fw"\nruntime = "cpython-3.11"\nrequirements = []\n',
        None,
        "framework",
        "did you mean 'frameworks'?",
    ),
    "top-level-not-array-of-tables": Bad(
        'runtimes = "cpython@3.11"\n', None, "runtimes", "must be an array of tables ([[runtimes]])"
    ),
    "requirements-is-a-string": Bad(
        RUNTIME + '\n[[frameworks]]\nname = "fw"\nruntime = "cpython-3.11"\nrequirements = "idna"\n',
        "framework-fw",
        "requirements",
        'must be a list, not string; write it like requirements = ["..."]',
    ),
    "versioned-is-a-string": Bad(
        RUNTIME + framework("fw", extra='versioned = "yes"'),
        "framework-fw",
        "versioned",
        "versioned = true",
    ),
    "platforms-entry-not-a-string": Bad(
        RUNTIME + framework("fw", extra="platforms = [1]"),
        "framework-fw",
        "platforms",
        "every entry must be a string, got 1; quote it",
    ),
    "bad-requirement-syntax": Bad(
        RUNTIME + '\n[[frameworks]]\nname = "fw"\nruntime = "cpython-3.11"\nrequirements = ["idna >="]\n',
        "framework-fw",
        "requirements",
        "invalid requirement 'idna >='",
    ),
    # --- names -------------------------------------------------------------------------------
    "missing-name": Bad(
        RUNTIME + '\n[[frameworks]]\nruntime = "cpython-3.11"\nrequirements = []\n',
        "frameworks[0]",
        "name",
        "every layer needs a name",
    ),
    "name-with-a-slash": Bad(
        RUNTIME + framework("a/b"), "framework-a/b", "name", "use letters, digits and . _ - @ + only"
    ),
    "runtime-name-with-a-layer-prefix": Bad(
        RUNTIME.replace('"cpython-3.11"', '"app-python"'),
        "app-python",
        "name",
        "may not start with 'framework-' or 'app-'",
    ),
    "duplicate-framework-name": Bad(
        RUNTIME + framework("fw") + framework("fw"), "framework-fw", "name", "rename one of them"
    ),
    "duplicate-runtime-name": Bad(RUNTIME + RUNTIME, "cpython-3.11", "name", "rename one of them"),
    # --- required fields ---------------------------------------------------------------------
    "missing-requirements": Bad(
        RUNTIME + '\n[[frameworks]]\nname = "fw"\nruntime = "cpython-3.11"\n',
        "framework-fw",
        "requirements",
        "list the layer's requirements (may be [])",
    ),
    "missing-python-implementation": Bad(
        '[[runtimes]]\nname = "cpython-3.11"\nrequirements = []\n',
        "cpython-3.11",
        "python_implementation",
        'write e.g. "cpython@3.11"',
    ),
    "bad-python-implementation": Bad(
        RUNTIME.replace('"cpython@3.11"', '"cpython-3.11"'),
        "cpython-3.11",
        "python_implementation",
        "is not of the form cpython@X.Y or cpython@X.Y.Z",
    ),
    "pypy-runtime": Bad(
        RUNTIME.replace('"cpython@3.11"', '"pypy@3.10"'),
        "cpython-3.11",
        "python_implementation",
        "PyPy runtimes are not supported yet; use cpython@X.Y",
    ),
    "deprecated-and-current-implementation-both-set": Bad(
        RUNTIME.replace("requirements", 'fully_versioned_name = "cpython@3.11.9"\nrequirements'),
        "cpython-3.11",
        "fully_versioned_name",
        "remove it",
    ),
    "missing-launch-module-field": Bad(
        RUNTIME + '\n[[applications]]\nname = "demo"\nruntime = "cpython-3.11"\nrequirements = []\n',
        "app-demo",
        "launch_module",
        "applications need a launch module",
    ),
    # --- dependencies --------------------------------------------------------------------------
    "stack-without-runtimes": Bad("", None, "runtimes", "add a [[runtimes]] table"),
    "unknown-runtime": Bad(
        RUNTIME + framework("fw", deps='runtime = "cpython-3.13"'),
        "framework-fw",
        "runtime",
        "unknown runtime 'cpython-3.13' (did you mean 'cpython-3.11'?); "
        "define it in a [[runtimes]] table first",
    ),
    "misspelt-runtime": Bad(
        RUNTIME + framework("fw", deps='runtime = "cpyhton-3.11"'),
        "framework-fw",
        "runtime",
        "unknown runtime 'cpyhton-3.11' (did you mean 'cpython-3.11'?)",
    ),
    "misspelt-framework": Bad(
        RUNTIME + framework("scipy") + app("demo", deps='frameworks = ["scpiy"]'),
        "app-demo",
        "frameworks",
        "unknown framework 'scpiy' (did you mean 'scipy'?); frameworks must be defined above",
    ),
    "unknown-framework": Bad(
        RUNTIME + app("demo", deps='frameworks = ["nope"]'),
        "app-demo",
        "frameworks",
        "unknown framework 'nope'",
    ),
    "forward-reference-to-a-framework": Bad(
        RUNTIME + framework("top", deps='frameworks = ["base"]') + framework("base"),
        "framework-top",
        "frameworks",
        "unknown framework 'base' (it is defined further down); "
        "frameworks must be defined above the layers that use them: move its table up",
    ),
    "framework-listing-itself": Bad(
        RUNTIME + framework("loop", deps='frameworks = ["loop"]'),
        "framework-loop",
        "frameworks",
        "a framework cannot list itself",
    ),
    "framework-listed-with-its-prefix": Bad(
        RUNTIME + framework("base") + app("demo", deps='frameworks = ["framework-base"]'),
        "app-demo",
        "frameworks",
        "(did you mean 'base'?); list frameworks without the prefix",
    ),
    "both-runtime-and-frameworks": Bad(
        RUNTIME + framework("base") + app("demo", deps='runtime = "cpython-3.11"\nframeworks = ["base"]'),
        "app-demo",
        "runtime",
        "give exactly one of 'runtime' or 'frameworks'",
    ),
    "neither-runtime-nor-frameworks": Bad(
        RUNTIME + framework("fw", deps=""),
        "framework-fw",
        "runtime",
        "give exactly one of 'runtime' or 'frameworks'",
    ),
    "empty-frameworks-list": Bad(
        RUNTIME + app("demo", deps="frameworks = []"),
        "app-demo",
        "frameworks",
        "must list at least one framework (or use 'runtime')",
    ),
    "framework-listed-twice": Bad(
        RUNTIME + framework("base") + app("demo", deps='frameworks = ["base", "base"]'),
        "app-demo",
        "frameworks",
        "'base' is listed more than once; list it once",
    ),
    "frameworks-on-different-runtimes": Bad(
        RUNTIME
        + RUNTIME_312
        + framework("a")
        + framework("b", deps='runtime = "cpython-3.12"')
        + app("demo", deps='frameworks = ["a", "b"]'),
        "app-demo",
        "frameworks",
        "different runtimes (cpython-3.11, cpython-3.12); a layer can only have one runtime",
    ),
    "c3-linearization-conflict": Bad(
        # b puts itself before a; the app asks for a before b: no order satisfies both.
        RUNTIME
        + framework("a")
        + framework("b", deps='frameworks = ["a"]')
        + app("demo", deps='frameworks = ["a", "b"]'),
        "app-demo",
        "frameworks",
        "reorder the frameworks lists so they agree",
    ),
    # --- application modules -----------------------------------------------------------------
    "missing-launch-module-file": Bad(
        RUNTIME + app("demo", extra='launch_module = "missing.py"'),
        "app-demo",
        "launch_module",
        "'missing.py' does not exist (paths are relative to the stack file's folder)",
    ),
    "launch-module-not-python": Bad(
        RUNTIME + app("demo", extra='launch_module = "notes.txt"'),
        "app-demo",
        "launch_module",
        "is neither a .py file nor a package folder",
        files={"notes.txt": "hello\n"},
    ),
    "launch-module-folder-without-init": Bad(
        RUNTIME + app("demo", extra='launch_module = "pkg"'),
        "app-demo",
        "launch_module",
        "without __init__.py or __main__.py",
        files={"pkg/readme.txt": "x\n"},
    ),
    "missing-support-module": Bad(
        RUNTIME + app("demo", extra='support_modules = ["helpers.py"]'),
        "app-demo",
        "support_modules",
        "'helpers.py' does not exist",
    ),
    "launch-and-support-module-name-clash": Bad(
        RUNTIME + app("demo", extra='support_modules = ["lib/launch.py"]'),
        "app-demo",
        "support_modules",
        "module name 'launch' is used twice (also by launch_module); module names must be unique",
        files={"launch.py": "", "lib/launch.py": ""},
    ),
    "support-module-name-clash": Bad(
        RUNTIME + app("demo", extra='support_modules = ["a/util.py", "b/util"]'),
        "app-demo",
        "support_modules",
        "module name 'util' is used twice",
        files={"launch.py": "", "a/util.py": "", "b/util/__init__.py": ""},
    ),
    # --- platforms and targets -----------------------------------------------------------------
    "unknown-platform": Bad(
        RUNTIME + framework("fw", extra='platforms = ["linux_riscv64"]'),
        "framework-fw",
        "platforms",
        "choose from win_amd64",
    ),
    "platform-a-lower-layer-lacks": Bad(
        RUNTIME.replace("requirements", 'platforms = ["linux_x86_64"]\nrequirements')
        + framework("fw", extra='platforms = ["linux_x86_64", "win_amd64"]'),
        "framework-fw",
        "platforms",
        "'win_amd64' is not built by every lower layer; lower layers share: linux_x86_64",
    ),
    "platform-of-a-disabled-lower-layer": Bad(
        RUNTIME.replace("requirements", "platforms = []\nrequirements")
        + framework("fw", extra='platforms = ["linux_x86_64"]'),
        "framework-fw",
        "platforms",
        "lower layers share: none",
    ),
    "linux-target-musl": Bad(
        RUNTIME + framework("fw", extra='linux_target = "musl"'),
        "framework-fw",
        "linux_target",
        "is not 'glibc' or 'glibc@X.Y' (musl is not supported)",
    ),
    "linux-target-too-old": Bad(
        RUNTIME + framework("fw", extra='linux_target = "glibc@2.5"'),
        "framework-fw",
        "linux_target",
        "older than glibc 2.17",
    ),
    "bad-macosx-target": Bad(
        RUNTIME + framework("fw", extra='macosx_target = "sonoma"'),
        "framework-fw",
        "macosx_target",
        "is not a macOS version like '13.0'",
    ),
    # --- package indexes -----------------------------------------------------------------------
    "unknown-package-index": Bad(
        RUNTIME + framework("fw", extra='package_indexes = { idna = "nowhere" }') + INDEX,
        "framework-fw",
        "package_indexes",
        "define it as a [[tool.uv.index]] with that name",
    ),
    "unknown-priority-index": Bad(
        RUNTIME + framework("fw", extra='priority_indexes = ["nowhere"]') + INDEX,
        "framework-fw",
        "priority_indexes",
        "unknown index 'nowhere'; define it as a [[tool.uv.index]]",
    ),
    "unknown-override-index": Bad(
        RUNTIME + framework("fw", extra='index_overrides = { mirror = "nowhere" }') + INDEX,
        "framework-fw",
        "index_overrides",
        "names unknown index 'nowhere'",
    ),
    "conflicting-lower-indexes": _lower_indexes_disagree("idna"),
    "lower-indexes-differing-in-name-case": _lower_indexes_disagree("IDNA"),  # one distribution
    "own-index-overriding-a-lower-one-undeclared": Bad(
        RUNTIME
        + framework("a", extra='package_indexes = { Idna = "mirror" }')
        + framework("c", deps='frameworks = ["a"]', extra='package_indexes = { idnA = "other" }')
        + INDEX
        + OTHER_INDEX,
        "framework-c",
        "package_indexes",
        "declare the override with index_overrides = { mirror = 'other' }",
    ),
    "uv-index-not-an-array": Bad(
        RUNTIME + '\n[tool.uv]\nindex = "http://127.0.0.1:9/simple"\n',
        None,
        "tool.uv.index",
        "must be an array of tables ([[tool.uv.index]])",
    ),
    "tool-uv-not-a-table": Bad(RUNTIME + '\n[tool]\nuv = "yes"\n', None, "tool.uv", "must be a table"),
}


def test_the_catalogue_is_big_enough() -> None:
    assert len(BAD) >= 20
    assert len({case.toml for case in BAD.values()}) == len(BAD), "every bad stack file is distinct"


@pytest.mark.parametrize("case_id", sorted(BAD))
def test_bad_stack_is_one_clear_line(
    case_id: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = BAD[case_id]
    path = write_stack(tmp_path, case.toml, case.files)
    line = one_error_line(capsys, ["show", str(path)])
    assert line.startswith("error: venvstacks.toml: "), line
    if case.layer is not None:
        assert f"layer {case.layer!r}" in line, line
    if case.field is not None:
        assert f"field {case.field!r}" in line, line
    assert case.hint in line, line


@pytest.mark.parametrize("case_id", sorted(BAD))
def test_bad_stack_raises_spec_error_through_the_api(case_id: str, tmp_path: Path) -> None:
    case = BAD[case_id]
    path = write_stack(tmp_path, case.toml, case.files)
    with pytest.raises(SpecError) as info:
        load_stack(path, warn=lambda message: None)
    assert info.value.layer == case.layer
    assert info.value.field == case.field
    assert info.value.path == path.resolve()
