"""Every way a stack file names an index is the index uv asks, at lock and at install.

Two logging indexes on 127.0.0.1 stand in for a private index and for PyPI: the private one
holds `vstest-private` 1.0, the public one a same-named 9.0 (a dependency-confusion attack)
plus `vstest-common`. When the stack puts the private index first or pins the name to it,
the lock must take 1.0 from the private index and the public one must never be asked.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.pylock_data import locked
from tests.support.stacks import Stack
from tests.support.wheels import SimpleIndex
from venvstacks.lock.pylockdoc import LockedPackage

STACK = """\
{uv}
[[runtimes]]
name = "cpython-3.11"
python_implementation = "cpython@3.11"
requirements = []

[[frameworks]]
name = "deps"
runtime = "cpython-3.11"
requirements = ["vstest-private", "vstest-common"]
{layer}
"""

PRIVATE_THEN_PUBLIC = """\
[[tool.uv.index]]
name = "private"
url = "{private}"
{extra}
[[tool.uv.index]]
name = "public"
url = "{public}"
default = true
"""

# How the stack names the private index: ([tool.uv] or venvstacks.uv.toml text, layer fields).
WAYS: dict[str, tuple[str, str]] = {
    "named index before the default": (PRIVATE_THEN_PUBLIC.replace("{extra}", ""), ""),
    "explicit index in priority_indexes": (
        PRIVATE_THEN_PUBLIC.replace("{extra}", "explicit = true"),
        'priority_indexes = ["private"]',
    ),
    "explicit index in package_indexes": (
        PRIVATE_THEN_PUBLIC.replace("{extra}", "explicit = true"),
        'package_indexes = { vstest-private = "private" }',
    ),
    "stack-wide [tool.uv.sources]": (
        PRIVATE_THEN_PUBLIC.replace("{extra}", "explicit = true")
        + '\n[tool.uv.sources]\nvstest-private = {{ index = "private" }}\n',
        "",
    ),
    # pip's rule, which uv keeps: extra-index-url is asked before index-url.
    "index-url and extra-index-url": (
        '[tool.uv]\nindex-url = "{public}"\nextra-index-url = ["{private}"]\n',
        "",
    ),
}


def _lock_entry(stack: Stack, name: str) -> LockedPackage:
    return locked(stack.root / "requirements" / "framework-deps" / "pylock.framework-deps.toml", name)


def _indexes(index_server: Callable[[str], SimpleIndex]) -> tuple[SimpleIndex, SimpleIndex]:
    private, public = index_server("private"), index_server("public")
    private.add("vstest-private", "1.0", body="ORIGIN = 'private'\n")
    public.add("vstest-private", "9.0", body="ORIGIN = 'public'\n")
    public.add("vstest-common", "1.0")
    return private, public


def _write(stack: Stack, uv: str, layer: str, private: SimpleIndex, public: SimpleIndex) -> None:
    stack.root.mkdir(parents=True, exist_ok=True)
    uv = uv.format(private=private.url, public=public.url)
    if uv.startswith("[tool.uv]"):
        stack.spec.write_text(STACK.format(uv=uv, layer=layer))
    else:  # [[tool.uv.index]] tables
        stack.spec.write_text(STACK.format(uv="", layer=layer) + "\n" + uv)


def _assert_private_wins(stack: Stack, private: SimpleIndex, public: SimpleIndex) -> None:
    entry = _lock_entry(stack, "vstest-private")
    assert entry.version == "1.0"
    assert str(entry.all_wheels[0].url).startswith(private.host + "/")
    assert private.asked("vstest-private") >= 1
    assert public.asked("vstest-private") == 0, public.requests
    common = _lock_entry(stack, "vstest-common")
    assert str(common.all_wheels[0].url).startswith(public.host + "/")


@pytest.mark.parametrize("way", list(WAYS))
def test_the_stack_files_index_is_the_one_uv_asks(
    way: str, tmp_path: Path, runtime_cache: Path, index_server: Callable[[str], SimpleIndex]
) -> None:
    private, public = _indexes(index_server)
    stack = Stack(tmp_path / "stack", runtime_cache, index_url=None)
    _write(stack, *WAYS[way], private, public)
    stack.venvstacks("lock", str(stack.spec))
    _assert_private_wins(stack, private, public)


def test_default_index_replaces_pypi(
    tmp_path: Path, runtime_cache: Path, index_server: Callable[[str], SimpleIndex]
) -> None:
    private = index_server("private")
    private.add("vstest-private", "1.0")
    private.add("vstest-common", "1.0")
    stack = Stack(tmp_path / "stack", runtime_cache, index_url=None)
    stack.root.mkdir(parents=True)
    tables = f'[[tool.uv.index]]\nname = "private"\nurl = "{private.url}"\ndefault = true\n'
    stack.spec.write_text(STACK.format(uv="", layer="") + "\n" + tables)
    stack.venvstacks("lock", str(stack.spec))
    for name in ("vstest-private", "vstest-common"):
        assert str(_lock_entry(stack, name).all_wheels[0].url).startswith(private.host + "/")
        assert private.asked(name) >= 1


def test_venvstacks_uv_toml_indexes_are_asked(
    tmp_path: Path, runtime_cache: Path, index_server: Callable[[str], SimpleIndex]
) -> None:
    private, public = _indexes(index_server)
    stack = Stack(tmp_path / "stack", runtime_cache, index_url=None)
    stack.root.mkdir(parents=True)
    stack.spec.write_text(STACK.format(uv="", layer=""))
    tables = PRIVATE_THEN_PUBLIC.replace("{extra}", "").format(private=private.url, public=public.url)
    (stack.root / "venvstacks.uv.toml").write_text(tables.replace("[[tool.uv.index]]", "[[index]]"))
    stack.venvstacks("lock", str(stack.spec))
    _assert_private_wins(stack, private, public)


def test_the_private_package_is_what_gets_installed(
    tmp_path: Path, runtime_cache: Path, index_server: Callable[[str], SimpleIndex]
) -> None:
    private, public = _indexes(index_server)
    stack = Stack(tmp_path / "stack", runtime_cache, index_url=None)
    _write(stack, *WAYS["named index before the default"], private, public)
    stack.build()
    python = stack.build_dir / "framework-deps" / "bin" / "python"
    out = subprocess.run(
        ["env", "-i", python, "-c", "import vstest_private as m; print(m.VERSION, m.ORIGIN)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == ["1.0", "private"]
    assert public.asked("vstest-private") == 0
