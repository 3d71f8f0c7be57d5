"""The stack file: the accepted forms upstream users rely on, and what loading them gives.

Minimal and fully optioned stacks, deprecated fields (accepted with a warning), platform
defaults and disabled layers, C3 ordering of frameworks, the runtime inferred from frameworks,
and where the uv configuration comes from ([tool.uv] or a side venvstacks.uv.toml).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.spec_files import INDEX, OTHER_INDEX, RUNTIME, RUNTIME_312, app, framework, write_stack
from venvstacks.cli import main
from venvstacks.errors import SpecError
from venvstacks.layout import lock_files
from venvstacks.platforms import ALL_PLATFORMS
from venvstacks.stack.fields import DEFAULT_LINUX_TARGET
from venvstacks.stack.kinds import LayerKind
from venvstacks.stack.model import StackSpec
from venvstacks.stack.modfiles import module_name
from venvstacks.stack.spec import load_stack


def _load(tmp_path: Path, toml: str, files: dict[str, str] | None = None) -> tuple[StackSpec, list[str]]:
    warnings: list[str] = []
    path = write_stack(tmp_path, toml, files if files is not None else {"launch.py": ""})
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
    assert module_name(demo.launch_module) == "launch"
    assert rt.platforms == ALL_PLATFORMS
    assert rt.linux_target == DEFAULT_LINUX_TARGET and rt.macosx_target is None
    assert not rt.versioned
    assert stack.uv_config == {}
    assert lock_files(stack, demo).pylock.parent == tmp_path.resolve() / "requirements" / "app-demo"


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
    path = write_stack(tmp_path, toml, {})
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
    launch = stack.layer("app-demo").launch_module
    assert launch is not None and module_name(launch) == "tool"


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


def test_a_declared_index_override_lets_an_upper_layer_take_a_package_elsewhere(tmp_path: Path) -> None:
    # As the existing venvstacks: names are compared canonically (Torch is torch).
    toml = (
        RUNTIME
        + framework("fw", extra='package_indexes = { IDNA = "mirror" }')
        + app("demo", deps='frameworks = ["fw"]', extra='package_indexes = { Idna = "other" }\n'
              'index_overrides = { mirror = "other" }')
        + INDEX
        + OTHER_INDEX
    )  # fmt: skip
    stack, _ = _load(tmp_path, toml, {"launch.py": ""})
    assert stack.layer("framework-fw").package_indexes == (("idna", "mirror"),)
    assert stack.layer("app-demo").package_indexes == (("idna", "other"),)


@pytest.mark.parametrize(
    "requirement",
    ["idna", "A", "zope.interface", "backports_zoneinfo", "a-b", "-idna", "idna-", "id na", "idna ",
     "idna>=3", "idna[all]", "idna; sys_platform == 'win32'", "é", "idna\n", "_x", "x_"],
)  # fmt: skip
def test_requirements_are_accepted_as_packaging_accepts_them(tmp_path: Path, requirement: str) -> None:
    """Bare names skip packaging's parser (a no-op run does not import it); what is accepted
    stays what packaging accepts."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        Requirement(requirement)
        valid = True
    except InvalidRequirement:
        valid = False
    toml = RUNTIME.replace("requirements = []", f"requirements = [{json.dumps(requirement)}]")
    try:
        spec, _ = _load(tmp_path, toml)
        accepted = spec.layers[0].requirements == (requirement,)
    except SpecError:
        accepted = False
    assert accepted == valid
