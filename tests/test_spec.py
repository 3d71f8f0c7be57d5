"""The stack file: every way it can be wrong, and the accepted forms upstream users rely on.

Bad stack files go through the real CLI (`venvstacks show`), because what a user sees is the
contract: exit code 2 and exactly one line on stderr naming the file, the layer and the field,
with a hint of what to do, and never a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from venvstacks.cli import main
from venvstacks.errors import SpecError
from venvstacks.spec import ALL_PLATFORMS, DEFAULT_LINUX_TARGET, LayerKind, StackSpec, load_stack

RUNTIME = """
[[runtimes]]
name = "cpython-3.11"
python_implementation = "cpython@3.11"
requirements = []
"""
RUNTIME_312 = """
[[runtimes]]
name = "cpython-3.12"
python_implementation = "cpython@3.12"
requirements = []
"""
INDEX = """
[tool.uv]
[[tool.uv.index]]
name = "mirror"
url = "http://127.0.0.1:9/simple"
explicit = true
"""


def framework(name: str, deps: str = 'runtime = "cpython-3.11"', extra: str = "") -> str:
    return f'\n[[frameworks]]\nname = "{name}"\n{deps}\nrequirements = []\n{extra}\n'


def app(name: str, deps: str = 'runtime = "cpython-3.11"', extra: str = "") -> str:
    launch = "" if "launch_module" in extra else 'launch_module = "launch.py"\n'
    return f'\n[[applications]]\nname = "{name}"\n{deps}\n{launch}requirements = []\n{extra}\n'


@dataclasses.dataclass(frozen=True)
class Bad:
    """A broken stack file and what the one error line must say about it."""

    toml: str
    layer: str | None  # None: the error is about the file or a top-level key
    field: str | None
    hint: str  # words telling the user what to do (or what is expected)
    files: dict[str, str] = dataclasses.field(default_factory=lambda: {"launch.py": "print('hi')\n"})


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
        "unknown runtime 'cpython-3.13'; define it in a [[runtimes]] table first",
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
    "conflicting-lower-indexes": Bad(
        RUNTIME
        + framework("a", extra='package_indexes = { idna = "mirror" }')
        + framework("b", extra='package_indexes = { idna = "other" }')
        + framework("c", deps='frameworks = ["a", "b"]')
        + INDEX
        + '[[tool.uv.index]]\nname = "other"\nurl = "http://127.0.0.1:9/other"\n',
        "framework-c",
        "package_indexes",
        "declare the winner with index_overrides",
    ),
    "uv-index-not-an-array": Bad(
        RUNTIME + '\n[tool.uv]\nindex = "http://127.0.0.1:9/simple"\n',
        None,
        "tool.uv.index",
        "must be an array of tables ([[tool.uv.index]])",
    ),
    "tool-uv-not-a-table": Bad(RUNTIME + '\n[tool]\nuv = "yes"\n', None, "tool.uv", "must be a table"),
}


def _write_stack(tmp_path: Path, toml: str, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        target = tmp_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    path = tmp_path / "venvstacks.toml"
    path.write_text(toml)
    return path


def _one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert err.endswith("\n")
    assert lines[0].startswith("error: ")
    return lines[0]


def test_the_catalogue_is_big_enough() -> None:
    assert len(BAD) >= 20
    assert len({case.toml for case in BAD.values()}) == len(BAD), "every bad stack file is distinct"


@pytest.mark.parametrize("case_id", sorted(BAD))
def test_bad_stack_is_one_clear_line(
    case_id: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = BAD[case_id]
    path = _write_stack(tmp_path, case.toml, case.files)
    line = _one_error_line(capsys, ["show", str(path)])
    assert line.startswith("error: venvstacks.toml: "), line
    if case.layer is not None:
        assert f"layer {case.layer!r}" in line, line
    if case.field is not None:
        assert f"field {case.field!r}" in line, line
    assert case.hint in line, line


@pytest.mark.parametrize("case_id", sorted(BAD))
def test_bad_stack_raises_spec_error_through_the_api(case_id: str, tmp_path: Path) -> None:
    case = BAD[case_id]
    path = _write_stack(tmp_path, case.toml, case.files)
    with pytest.raises(SpecError) as info:
        load_stack(path, warn=lambda message: None)
    assert info.value.layer == case.layer
    assert info.value.field == case.field
    assert info.value.path == path.resolve()


def test_invalid_toml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write_stack(tmp_path, RUNTIME + "\n[[frameworks]\nname = 'x'\n", {})
    line = _one_error_line(capsys, ["show", str(path)])
    assert line.startswith("error: venvstacks.toml: not valid TOML")
    assert "line 7" in line  # the user can go straight to the broken line
    assert "fix the syntax" in line


def test_stack_file_not_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _one_error_line(capsys, ["show", str(tmp_path / "venvstacks.toml")])
    assert line == "error: venvstacks.toml: stack file not found; pass the path to a venvstacks.toml"


def test_folder_without_a_stack_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _one_error_line(capsys, ["show", str(tmp_path)])
    assert "venvstacks.toml: stack file not found" in line


def test_stack_file_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "venvstacks.toml"
    path.write_bytes(RUNTIME.encode() + b"# caf\xe9\n")
    line = _one_error_line(capsys, ["show", str(path)])
    assert line == "error: venvstacks.toml: is not UTF-8 text; save it as UTF-8"


def test_stack_path_is_a_folder_through_the_api(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=re.escape("is a folder; pass the path to a venvstacks.toml")):
        load_stack(tmp_path)


def test_invalid_side_uv_config_names_that_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write_stack(tmp_path, RUNTIME, {"venvstacks.uv.toml": "index = [\n"})
    line = _one_error_line(capsys, ["show", str(path)])
    assert line.startswith("error: venvstacks.uv.toml: not valid TOML")


def test_any_file_name_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "my-stack.toml"
    path.write_text(RUNTIME + framework("fw", extra="bogus = 1"))
    line = _one_error_line(capsys, ["show", str(path)])
    assert line.startswith("error: my-stack.toml: layer 'framework-fw': field 'bogus': unknown field")


# --- accepted stacks ---------------------------------------------------------------------------


def _load(tmp_path: Path, toml: str, files: dict[str, str] | None = None) -> tuple[StackSpec, list[str]]:
    warnings: list[str] = []
    path = _write_stack(tmp_path, toml, files if files is not None else {"launch.py": ""})
    return load_stack(path, warn=warnings.append), warnings


def test_minimal_stack(tmp_path: Path) -> None:
    stack, warnings = _load(tmp_path, RUNTIME + framework("fw") + app("demo", deps='frameworks = ["fw"]'))
    assert warnings == []
    rt, fw, demo = stack.layers
    assert [layer.env_name for layer in stack.layers] == ["cpython-3.11", "framework-fw", "app-demo"]
    assert [layer.kind for layer in stack.layers] == list(LayerKind)
    assert rt.runtime is None and rt.python_implementation == "cpython@3.11"
    assert fw.runtime == "cpython-3.11" and fw.python_implementation == "cpython@3.11"
    assert demo.runtime == "cpython-3.11" and demo.frameworks == ("framework-fw",)
    assert demo.launch_module == (tmp_path / "launch.py").resolve()
    assert demo.launch_module_name == "launch"
    assert rt.platforms == ALL_PLATFORMS
    assert rt.linux_target == DEFAULT_LINUX_TARGET and rt.macosx_target is None
    assert not rt.versioned
    assert stack.uv_config == {}
    assert stack.requirements_dir(demo) == tmp_path.resolve() / "requirements" / "app-demo"


def test_deprecated_fields_warn_and_are_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = """
[[runtimes]]
name = "cpython-3.11"
fully_versioned_name = "cpython@3.11.9"
requirements = []

[[frameworks]]
name = "fw"
runtime = "cpython-3.11"
build_requirements = ["setuptools"]
requirements = ["idna"]
"""
    path = _write_stack(tmp_path, toml, {})
    assert main(["show", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "framework-fw" in out
    warnings = err.splitlines()
    assert len(warnings) == 2, err
    assert warnings[0].startswith("warning: venvstacks.toml: layer 'cpython-3.11'")
    assert "'fully_versioned_name' is deprecated: rename it to 'python_implementation'" in warnings[0]
    assert warnings[1].startswith("warning: venvstacks.toml: layer 'framework-fw'")
    assert "'build_requirements' is deprecated: it is ignored; remove it" in warnings[1]
    stack = load_stack(path, warn=lambda message: None)
    assert stack.layers[0].python_implementation == "cpython@3.11.9"
    assert stack.layers[1].requirements == ("idna",)


def test_platforms_default_to_the_intersection_of_lower_layers(tmp_path: Path) -> None:
    toml = (
        RUNTIME.replace(
            "requirements", 'platforms = ["linux_x86_64", "macosx_arm64", "win_amd64"]\nrequirements'
        )
        + framework("a", extra='platforms = ["win_amd64", "linux_x86_64"]')
        + framework("b", extra='platforms = ["linux_x86_64", "macosx_arm64"]')
        + framework("c")
        + app("ab", deps='frameworks = ["a", "b"]')
        + app("c-only", deps='frameworks = ["c"]')
    )
    stack, _ = _load(tmp_path, toml)
    platforms = {layer.env_name: layer.platforms for layer in stack.layers}
    assert platforms["framework-a"] == ("win_amd64", "linux_x86_64")  # as written
    # defaults keep the canonical platform order (ALL_PLATFORMS), whatever the lower layers wrote
    assert platforms["framework-c"] == ("win_amd64", "linux_x86_64", "macosx_arm64")  # the runtime's
    assert platforms["app-ab"] == ("linux_x86_64",)  # a & b & runtime
    assert platforms["app-c-only"] == ("win_amd64", "linux_x86_64", "macosx_arm64")


def test_platforms_are_deduplicated(tmp_path: Path) -> None:
    stack, _ = _load(tmp_path, RUNTIME + framework("fw", extra='platforms = ["win_amd64", "win_amd64"]'))
    assert stack.layer("framework-fw").platforms == ("win_amd64",)


def test_empty_platforms_disable_a_layer_and_what_needs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = (
        RUNTIME
        + framework("off", extra="platforms = []")
        + framework("on")
        + app("needs-off", deps='frameworks = ["off"]')
        + app("needs-on", deps='frameworks = ["on"]')
    )
    stack, _ = _load(tmp_path, toml)
    enabled = {layer.env_name: layer.enabled for layer in stack.layers}
    assert enabled == {
        "cpython-3.11": True,
        "framework-off": False,
        "framework-on": True,
        "app-needs-off": False,
        "app-needs-on": True,
    }
    assert main(["show", "--json", str(tmp_path / "venvstacks.toml")]) == 0
    data = json.loads(capsys.readouterr().out)
    ops = {e["name"]: e["selected_operations"] for kind in ("frameworks", "applications") for e in data[kind]}
    assert ops["framework-off"] == [] and ops["app-needs-off"] == []
    assert "lock" in ops["framework-on"] and "lock" in ops["app-needs-on"]


def test_c3_order_for_a_diamond(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = (
        RUNTIME
        + framework("base")
        + framework("left", deps='frameworks = ["base"]')
        + framework("right", deps='frameworks = ["base"]')
        + app("demo", deps='frameworks = ["left", "right"]')
    )
    stack, _ = _load(tmp_path, toml)
    demo = stack.layer("app-demo")
    assert demo.frameworks == ("framework-left", "framework-right")
    assert demo.lower == ("framework-left", "framework-right", "framework-base")
    assert demo.runtime == "cpython-3.11"
    assert stack.layer("framework-left").lower == ("framework-base",)
    assert main(["show", "--json", str(tmp_path / "venvstacks.toml")]) == 0
    data = json.loads(capsys.readouterr().out)
    (entry,) = data["applications"]
    assert entry["dependencies"] == [
        "framework-left",
        "framework-right",
        "framework-base",
        "cpython-3.11",
    ]


def test_runtime_is_inferred_from_frameworks(tmp_path: Path) -> None:
    toml = (
        RUNTIME
        + RUNTIME_312
        + framework("fw", deps='runtime = "cpython-3.12"')
        + framework("top", deps='frameworks = ["fw"]')
    )
    stack, _ = _load(tmp_path, toml)
    assert stack.layer("framework-fw").python_implementation == "cpython@3.12"
    assert stack.layer("framework-top").runtime == "cpython-3.12"
    assert stack.layer("framework-top").python_implementation == "cpython@3.12"


def test_every_optional_field(tmp_path: Path) -> None:
    extra = """
versioned = true
linux_target = "glibc@2.34"
macosx_target = "14.0"
dynlib_exclude = ["triton/**"]
package_indexes = { idna = "mirror" }
priority_indexes = ["mirror"]
index_overrides = { mirror = "mirror" }
platforms = ["linux_x86_64"]
"""
    toml = (
        RUNTIME
        + framework("fw", extra=extra)
        + app("demo", deps='frameworks = ["fw"]', extra='support_modules = ["pkg", "util.py"]')
        + INDEX
    )
    stack, _ = _load(tmp_path, toml, {"launch.py": "", "pkg/__init__.py": "", "util.py": ""})
    fw, demo = stack.layer("framework-fw"), stack.layer("app-demo")
    assert fw.versioned
    assert fw.linux_target == "glibc@2.34" and fw.macosx_target == "14.0"
    assert fw.dynlib_exclude == ("triton/**",)
    assert fw.package_indexes == (("idna", "mirror"),)
    assert fw.priority_indexes == ("mirror",)
    assert fw.index_overrides == (("mirror", "mirror"),)
    # package_indexes are inherited by upper layers; priority_indexes are not
    assert demo.package_indexes == (("idna", "mirror"),)
    assert demo.priority_indexes == ()
    assert not demo.versioned
    assert [p.name for p in demo.support_modules] == ["pkg", "util.py"]
    assert demo.platforms == ("linux_x86_64",)


def test_bare_glibc_means_the_default_target(tmp_path: Path) -> None:
    stack, _ = _load(tmp_path, RUNTIME + framework("fw", extra='linux_target = "glibc"'))
    assert stack.layer("framework-fw").linux_target == DEFAULT_LINUX_TARGET == "glibc@2.28"


def test_package_folder_launch_module(tmp_path: Path) -> None:
    stack, _ = _load(
        tmp_path,
        RUNTIME + app("demo", extra='launch_module = "tool"'),
        {"tool/__main__.py": "print('hi')\n"},
    )
    assert stack.layer("app-demo").launch_module_name == "tool"


def test_names_are_unique_per_kind_only(tmp_path: Path) -> None:
    stack, _ = _load(tmp_path, RUNTIME + framework("same") + app("same"))
    assert [layer.env_name for layer in stack.layers] == ["cpython-3.11", "framework-same", "app-same"]


def test_side_uv_config_used_without_tool_uv(tmp_path: Path) -> None:
    side = '[[index]]\nname = "side"\nurl = "http://127.0.0.1:9/simple"\n'
    toml = RUNTIME + framework("fw", extra='package_indexes = { idna = "side" }')
    stack, _ = _load(tmp_path, toml, {"venvstacks.uv.toml": side})
    assert [i["name"] for i in stack.uv_config["index"]] == ["side"]
    assert stack.layer("framework-fw").package_indexes == (("idna", "side"),)


def test_side_uv_config_ignored_with_tool_uv(tmp_path: Path) -> None:
    side = '[[index]]\nname = "side"\nurl = "http://127.0.0.1:9/simple"\n'
    stack, _ = _load(tmp_path, RUNTIME + INDEX, {"venvstacks.uv.toml": side})
    assert [i["name"] for i in stack.uv_config["index"]] == ["mirror"]
    # ...so its indexes cannot be named either
    toml = RUNTIME + framework("fw", extra='package_indexes = { idna = "side" }') + INDEX
    with pytest.raises(SpecError, match="unknown index 'side'"):
        _load(tmp_path, toml, {"venvstacks.uv.toml": side})


def test_other_tool_tables_are_ignored(tmp_path: Path) -> None:
    stack, _ = _load(tmp_path, RUNTIME + '\n[tool.other]\nkey = "value"\n')
    assert stack.uv_config == {}
