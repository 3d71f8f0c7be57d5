"""uv runs only where a sync can change a layer: a lock that names only what lower layers
provide (marked `from_lower_layer`, installed on no platform) on an empty layer needs no uv
run; once the layer holds a package, uv runs (and removes it). A layer of a lock with a
package of its own runs uv as before.

uv is replaced here by a stand-in that records its command line and installs nothing: what
is tested is whether the install asks for it, and that the layer is complete either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from venvstacks.layers import envs
from venvstacks.layers.state import EnvIdentity
from venvstacks.layout import INSTALLED
from venvstacks.lock.pylockdoc import FROM_LOWER_LAYER
from venvstacks.platforms import host_platform
from venvstacks.runtimes.record import RuntimeRecord
from venvstacks.stack.targets import Target

pytestmark = pytest.mark.skipif(host_platform().is_windows, reason="POSIX venvs are written by hand")

HOST = host_platform()
RECORD = RuntimeRecord("cpython@3.11", "cpython", "3.11.9", "local", "/usr", "ab" * 32)
SITE = HOST.site_packages("3.11.9")
LOWER = f'{{ name = "idna", version = "3.10", marker = "{FROM_LOWER_LAYER}" }}'
WHEEL = "attrs-25.3.0-py3-none-any.whl"
OWN = (
    f'{{ name = "attrs", version = "25.3.0", wheels = [{{ name = "{WHEEL}", '
    f'url = "https://example.invalid/{WHEEL}", hashes = {{ sha256 = "{"0" * 64}" }} }}] }}'
)


def lock(tmp_path: Path, *packages: str) -> Path:
    path = tmp_path / "pylock.app-x.toml"
    path.write_text(f'lock-version = "1.0"\ncreated-by = "uv"\npackages = [\n{",".join(packages)}\n]\n')
    return path


def install(tmp_path: Path, lock_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []

    def fake_run(what: str, cmd: Sequence[Any], **_: Any) -> str:
        calls.append([str(part) for part in cmd])
        return ""

    monkeypatch.setattr(envs, "run", fake_run)
    how = envs.Install(Target(HOST.name, RECORD.version), {})
    env_dir = tmp_path / "build" / "app-x"
    envs.install_venv_layer(
        RECORD, tmp_path / "build" / "cpython-3.11", env_dir, lock_path, how, log=lambda _: None
    )
    assert (env_dir / INSTALLED).is_file()  # complete either way
    assert EnvIdentity.read(env_dir) is not None
    return calls


def uv_syncs(calls: list[list[str]]) -> list[list[str]]:
    return [c for c in calls if c[1:3] == ["pip", "sync"]]


def test_a_lock_of_lower_layers_packages_only_runs_no_uv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert uv_syncs(install(tmp_path, lock(tmp_path, LOWER), monkeypatch)) == []
    assert (tmp_path / "build" / "app-x" / SITE).is_dir()


def test_uv_still_removes_what_such_a_layer_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = lock(tmp_path, LOWER)
    install(tmp_path, path, monkeypatch)
    (tmp_path / "build" / "app-x" / SITE / "idna-3.10.dist-info").mkdir()  # installed before it moved down
    assert len(uv_syncs(install(tmp_path, path, monkeypatch))) == 1


def test_a_package_of_its_own_runs_uv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    syncs = uv_syncs(install(tmp_path, lock(tmp_path, LOWER, OWN), monkeypatch))
    assert len(syncs) == 1  # from uv's cache (--offline) first, which the stand-in grants
    assert str(tmp_path / "pylock.app-x.toml") in syncs[0]
