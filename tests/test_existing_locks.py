"""Locks made by the existing venvstacks count, and a relock says which input changed.

A user switching brings committed locks whose `pylock.*.meta.json` the existing venvstacks
wrote: its own hashes, computed its own way. The test writes such metadata for locks of a
small stack with the formulas below (checked by hand against the existing venvstacks'
committed locks of its examples/sklearn, jupyterlab, mlx and pytorch stacks: every hash
matched), then checks that they are taken as they stand: valid in `show --json`, and
`lock` neither runs uv nor rewrites a committed file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.support.stacks import Stack
from venvstacks.lock import upstream
from venvstacks.lock.pylockdoc import Pylock


def _concat(items: list[str]) -> str:
    # The existing tool's hash_strings: no separator between the strings.
    return "sha256:" + hashlib.sha256("".join(items).encode()).hexdigest()


def _their_meta(
    lock: Path, requirements: list[str], other_inputs: list[str], env_name: str
) -> dict[str, object]:
    items = []
    for pkg in Pylock.read(lock).packages:
        marker = "" if pkg.is_from_lower_layer else (pkg.marker or "")
        pinned = f"{pkg.name}=={pkg.version}" + (f" ; {marker}" if marker else "")
        items.append(f"{pinned} from {pkg.index or 'unspecified index'}")
        for wheel in pkg.all_wheels:
            name = wheel.name or (wheel.url or wheel.path or "").rsplit("/", 1)[-1]
            items += [f"{name}:{alg}:{digest}" for alg, digest in (wheel.hashes or {}).items()]
    return {
        "lock_input_hash": _concat(sorted(requirements)),
        "lock_version": 1,
        "locked_at": "2025-10-11T00:00:00+00:00",
        "other_inputs_hash": _concat(other_inputs),
        "requirements_hash": _concat(sorted(items)),
        "version_inputs_hash": _concat([f"env_name={env_name}", "is_versioned_layer=False"]),
    }


_TARGETS = ["py_version=3.11", "linux_target=glibc@2.28", "macosx_target=13.0"]
_LAYERS = {  # build name: (requirements, other inputs after the targets)
    "cpython-3.11": ([], []),
    "framework-web": (["idna"], ["cpython-3.11"]),
    "app-hello": (["attrs", "idna"], ["cpython-3.11", "web"]),
}


def _locked_by_the_existing_tool(stack: Stack) -> dict[Path, bytes]:
    """Lock with us, then replace our metadata by what the existing tool writes; returns
    every committed file's bytes."""
    stack.venvstacks("lock", str(stack.spec))
    shutil.rmtree(stack.build_dir)  # a fresh clone: no doit state of ours
    committed = {}
    for name, (requirements, others) in _LAYERS.items():
        folder = stack.root / "requirements" / name
        stem = name.replace(".", "_")
        meta = _their_meta(folder / f"pylock.{stem}.toml", requirements, _TARGETS + others, name)
        (folder / f"pylock.{stem}.meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        committed.update({path: path.read_bytes() for path in folder.iterdir()})
    return committed


def _valid(stack: Stack) -> dict[str, bool]:
    data = json.loads(stack.venvstacks("show", "--json", str(stack.spec)).out)
    return {
        e["name"]: e["has_valid_lock"]
        for kind in ("runtimes", "frameworks", "applications")
        for e in data[kind]
    }


@pytest.fixture
def theirs(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> dict[Path, bytes]:
    monkeypatch.delenv("MACOSX_DEPLOYMENT_TARGET", raising=False)
    stack.write()
    return _locked_by_the_existing_tool(stack)


def test_their_locks_are_valid_as_they_stand(stack: Stack, theirs: dict[Path, bytes]) -> None:
    assert _valid(stack) == dict.fromkeys(_LAYERS, True)
    stack.index_url = "http://127.0.0.1:9/simple"  # nothing there: a relock would fail
    run = stack.venvstacks("lock", str(stack.spec))
    assert run.err.count("is current (made by the existing venvstacks)") == 3
    assert {path: path.read_bytes() for path in theirs} == theirs  # nothing committed rewritten
    adopted = sorted(p.name for p in (stack.root / "requirements").rglob("*.inputs.json"))
    assert adopted == [
        "pylock.app-hello.inputs.json",
        "pylock.cpython-3_11.inputs.json",
        "pylock.framework-web.inputs.json",
    ]
    assert _valid(stack) == dict.fromkeys(_LAYERS, True)


def test_a_changed_input_of_their_lock_relocks_saying_which(stack: Stack, theirs: dict[Path, bytes]) -> None:
    stack.app_requirements = ["attrs", "idna", "six"]
    stack.write()
    assert _valid(stack) == {"cpython-3.11": True, "framework-web": True, "app-hello": False}
    lines = stack.venvstacks("lock", str(stack.spec)).err.splitlines()
    assert "   locking app-hello: its requirements changed" in lines
    assert not any(line.startswith("   locking") and "app-hello" not in line for line in lines)
    web = stack.root / "requirements" / "framework-web"
    assert {p: theirs[p] for p in theirs if p.parent == web} == {
        p: p.read_bytes() for p in theirs if p.parent == web
    }


def test_after_adoption_a_uv_setting_they_never_recorded_relocks(
    stack: Stack, theirs: dict[Path, bytes]
) -> None:
    stack.venvstacks("lock", str(stack.spec))  # adopts them
    stack.spec.write_text(stack.spec.read_text() + '\n[tool.uv]\nprerelease = "allow"\n')
    assert _valid(stack) == dict.fromkeys(_LAYERS, False)
    run = stack.venvstacks("lock", str(stack.spec))
    assert "   locking framework-web: the [tool.uv] settings changed" in run.err.splitlines()


def test_our_relock_names_the_input_that_changed(stack: Stack) -> None:
    stack.write()
    stack.venvstacks("lock", str(stack.spec))
    stack.spec.write_text(
        stack.spec.read_text().replace('requirements = ["idna"]', 'requirements = ["idna", "six"]')
    )
    run = stack.venvstacks("lock", str(stack.spec))
    lines = run.err.splitlines()
    assert "   locking framework-web: its requirements changed" in lines
    assert "   locking app-hello: a lower layer's pins changed" in lines
    stack.spec.write_text(stack.spec.read_text() + '\n[tool.uv]\nprerelease = "allow"\n')
    lines = stack.venvstacks("lock", str(stack.spec)).err.splitlines()
    assert "   locking cpython-3.11: the [tool.uv] settings changed" in lines


def test_a_package_modules_hash_is_the_existing_tools(tmp_path: Path) -> None:
    # Its hash_module over a folder: an os.walk with sorted subfolders, hashing each
    # folder's name, then each file's name and "sha256:<hex>", prefixed "sha256/".
    pkg = tmp_path / "pkg"
    for rel, text in {
        "__init__.py": "a",
        "__main__.py": "b",
        "sub/x.py": "c",
        "sub/deeper/y.py": "d",
    }.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    (pkg / "empty").mkdir()
    digest = hashlib.sha256()
    for folder, subfolders, files in os.walk(pkg):
        digest.update(Path(folder).name.encode())
        subfolders.sort()
        for name in sorted(files):
            digest.update(name.encode())
            digest.update(
                ("sha256:" + hashlib.sha256((Path(folder) / name).read_bytes()).hexdigest()).encode()
            )
    assert upstream._module_hash(pkg, tmp_path) == "sha256/" + digest.hexdigest()


def test_a_relocked_lower_layer_relocks_their_lock_above_it(stack: Stack, theirs: dict[Path, bytes]) -> None:
    # Their metadata records no lower layer's pins: once a lower layer is relocked, the
    # layers above are relocked too (as the existing venvstacks relocks derived layers).
    stack.framework_requirements = ["idna", "six"]
    stack.write()
    assert _valid(stack) == {"cpython-3.11": True, "framework-web": False, "app-hello": False}
    lines = stack.venvstacks("lock", str(stack.spec)).err.splitlines()
    assert "   locking framework-web: its requirements changed" in lines
    assert "   locking app-hello: lower layer framework-web was relocked since" in lines
    assert _valid(stack) == dict.fromkeys(_LAYERS, True)
