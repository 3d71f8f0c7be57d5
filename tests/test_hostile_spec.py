"""Hostile stack files: whatever the TOML holds, loading gives a stack or one SpecError line.

Property-based (hypothesis): random values of every field, random names. Names that load
must give every layer its own build folder, lock folder, archive and deployed name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.spec_files import RUNTIME, app, framework, one_error_line, write_stack
from venvstacks.errors import SpecError
from venvstacks.layout import lock_files
from venvstacks.stack.kinds import LayerKind
from venvstacks.stack.model import StackSpec
from venvstacks.stack.spec import COMMON_FIELDS, KIND_FIELDS, load_stack

_HYPO = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

_SCALARS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["cpython-3.11", "cpython@3.11", "launch.py", "a", "x\n", "linux_x86_64", "."]),
    st.integers(),
    st.booleans(),
    st.floats(allow_nan=False),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(min_size=1, max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_FIELDS = sorted({*COMMON_FIELDS, *(f for kind in LayerKind for f in KIND_FIELDS[kind]), "bogus"})


def _table(kind: LayerKind) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(_FIELDS), _VALUES, max_size=6)


def _load(tmp: Path, data: dict[str, Any]) -> StackSpec | SpecError:
    path = tmp / "venvstacks.toml"
    path.write_text(tomli_w.dumps(data))
    try:
        return load_stack(path, warn=lambda message: None)
    except SpecError as exc:
        return exc


@_HYPO
@given(
    runtimes=st.lists(_table(LayerKind.RUNTIME), max_size=2),
    frameworks=st.lists(_table(LayerKind.FRAMEWORK), max_size=2),
    apps=st.lists(_table(LayerKind.APPLICATION), max_size=2),
    index=st.lists(st.dictionaries(st.sampled_from(["name", "url"]), _VALUES, max_size=2), max_size=2),
)
def test_any_field_values_give_a_stack_or_one_line(
    tmp_path_factory: pytest.TempPathFactory,
    runtimes: list[dict[str, Any]],
    frameworks: list[dict[str, Any]],
    apps: list[dict[str, Any]],
    index: list[dict[str, Any]],
) -> None:
    tmp = tmp_path_factory.mktemp("stack")
    (tmp / "launch.py").write_text("print('hi')\n")
    data: dict[str, Any] = {"runtimes": runtimes, "frameworks": frameworks, "applications": apps}
    if index:
        data["tool"] = {"uv": {"index": index}}
    result = _load(tmp, data)
    if isinstance(result, SpecError):
        assert "\n" not in str(result)


_NAME = st.text(st.sampled_from("aAbB1._@+-\n"), min_size=1, max_size=6)


@_HYPO
@given(
    frameworks=st.lists(st.tuples(_NAME, st.booleans()), min_size=1, max_size=5),
    apps=st.lists(st.tuples(_NAME, st.booleans()), max_size=3),
)
def test_layers_that_load_never_share_a_folder_archive_or_deployed_name(
    tmp_path_factory: pytest.TempPathFactory,
    frameworks: list[tuple[str, bool]],
    apps: list[tuple[str, bool]],
) -> None:
    tmp = tmp_path_factory.mktemp("stack")
    (tmp / "launch.py").write_text("")
    base = {"runtime": "cpython-3.11", "requirements": []}
    data = {
        "runtimes": [{"name": "cpython-3.11", "python_implementation": "cpython@3.11", "requirements": []}],
        "frameworks": [{"name": n, "versioned": v, **base} for n, v in frameworks],
        "applications": [{"name": n, "versioned": v, "launch_module": "launch.py", **base} for n, v in apps],
    }
    result = _load(tmp, data)
    if isinstance(result, SpecError):
        assert "\n" not in str(result)
        return
    claimed: dict[str, str] = {}
    for layer in result.layers:
        folders = {layer.env_name, str(lock_files(result, layer).pylock.parent.name)}
        # A versioned layer deploys and publishes as NAME@N for any lock version N.
        deployed = {f"{layer.env_name}@{n}" for n in range(1, 4)} if layer.versioned else {layer.env_name}
        for name in folders | deployed:
            owner = claimed.setdefault(name.casefold(), layer.env_name)
            assert owner == layer.env_name, (name, owner)
        assert "\n" not in layer.env_name


def test_a_layer_named_like_a_versioned_layers_deployed_name_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = RUNTIME + framework("web", extra="versioned = true") + framework("web@1")
    line = one_error_line(capsys, ["show", str(write_stack(tmp_path, toml, {}))])
    assert "layer 'framework-web@1'" in line and "versioned layer 'framework-web' deploys" in line


def test_names_differing_only_in_case_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = RUNTIME + framework("Web") + framework("web")
    line = one_error_line(capsys, ["show", str(write_stack(tmp_path, toml, {}))])
    assert "differs from layer 'framework-Web' only in case" in line


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ('"web\\n"', "use letters, digits"),
        ('"' + "w" * 101 + '"', "101 characters long; use at most 100"),
        ('["web"]', "must be a string"),
        ("{ a = 1 }", "must be a string"),
    ],
)
def test_bad_names_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, hint: str
) -> None:
    toml = RUNTIME + f'\n[[frameworks]]\nname = {name}\nruntime = "cpython-3.11"\nrequirements = []\n'
    toml += framework("other", deps='frameworks = ["web"]')
    line = one_error_line(capsys, ["show", str(write_stack(tmp_path, toml, {}))])
    assert hint in line and "field 'name'" in line


def test_index_name_of_the_wrong_type_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = RUNTIME + '\n[tool.uv]\n[[tool.uv.index]]\nname = ["mirror"]\nurl = "http://127.0.0.1:9/"\n'
    line = one_error_line(capsys, ["show", str(write_stack(tmp_path, toml, {}))])
    assert "'tool.uv.index'" in line and "must be a string" in line


@pytest.mark.parametrize(
    ("module", "files", "hint"),
    [
        ("sitecustomize.py", {"sitecustomize.py": ""}, "would replace Python's or venvstacks' own"),
        ("x.y.py", {"x.y.py": ""}, "which `python -m` cannot import"),
        ("os.py", {"os.py": ""}, "standard library module 'os'"),
        ("my-app", {"my-app/__main__.py": ""}, "which `python -m` cannot import"),
    ],
)
def test_launch_modules_that_cannot_run_with_dash_m_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], module: str, files: dict[str, str], hint: str
) -> None:
    toml = RUNTIME + app("demo", extra=f'launch_module = "{module}"')
    line = one_error_line(capsys, ["show", str(write_stack(tmp_path, toml, files))])
    assert hint in line and "field 'launch_module'" in line
