"""End to end on the real sample stack (numpy, scipy, scikit-learn, httpx): build, export,
publish, deploy, and run its apps from each place."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.runtime_checks import local_cpython
from tests.support.stacks import Stack
from venvstacks.lock.pylockdoc import Pylock
from venvstacks.ship.sbomread import read_sbom

SAMPLE = Path(__file__).parents[1] / "stacks" / "sample"
# app -> (launch module, the line that proves the import came from the framework layer)
APPS = {
    "app-scipy-import": ("scipy_import", "imported from layer framework-scipy"),
    "app-sklearn-import": ("sklearn_import", "imported from layer framework-sklearn"),
}


def _check_libraries(folder: Path) -> None:
    """numpy's auditwheel-repaired wheel (its numpy.libs/) in the runtime is linked."""
    runtime = folder / "cpython-3.11" / "share/venv/dynlib"
    links = {p.name: os.readlink(p) for p in runtime.iterdir()}
    assert any(name.startswith("libscipy_openblas") for name in links), links
    assert all(t.startswith("../../../lib/python3.11/site-packages/numpy.libs/") for t in links.values())
    assert all((runtime / name).exists() for name in links)
    app = next(p for p in folder.iterdir() if p.name.startswith("app-scipy-import"))
    script = (app / "bin/python").read_text()
    assert script.startswith("#!/bin/bash\n")
    scipy = "framework-scipy" if folder.name == "_build" else "framework-scipy@1"  # the folder's name
    assert f"/../../{scipy}/share/venv/dynlib\n" in script


def _run_apps(folder: Path) -> None:
    """Run each app found in `folder` (deployed names may carry @N) with an empty environment."""
    for app, (module, proof) in APPS.items():
        layer = next(p for p in folder.iterdir() if p.name == app or p.name.startswith(app + "@"))
        out = subprocess.run(
            ["env", "-i", layer / "bin" / "python", "-m", module], capture_output=True, text=True, check=True
        ).stdout
        assert proof in out, out
        assert f"at {layer}" in out  # sys.prefix is the app layer in this very folder
        assert "Environment launch module executed successfully" in out


def _check_sboms(root: Path, artifacts: Path) -> None:
    """Every archive has a valid SBOM whose packages are its lock's, with the lock's hashes."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    validator = JsonStrictValidator(SchemaVersion.V1_6)
    metas = sorted((artifacts / "__venvstacks__" / "env_metadata").glob("*.json"))
    assert len(metas) == 7
    for meta_file in metas:
        meta = json.loads(meta_file.read_text())
        sbom_file = artifacts / f"{meta['archive_name']}.cdx.json"
        text = sbom_file.read_text()
        assert validator.validate_str(text) is None
        found = {p.name: (p.version, p.wheel_sha256) for p in read_sbom(text, sbom_file).packages}
        (lock_file,) = (root / "requirements" / meta["layer_name"]).glob("pylock.*.toml")
        lock = {p.key: p for p in Pylock.read(lock_file).own_packages}
        for name, (version, sha256) in found.items():
            assert lock[name].version == version
            assert sha256 in {w.sha256 for w in lock[name].all_wheels}
        # Only packages some platforms leave out (dlltracer is Windows only) may be missing.
        assert {n for n, p in lock.items() if p.marker is None} <= set(found), meta["layer_name"]


@pytest.mark.slow
@pytest.mark.network  # numpy, scipy, scikit-learn from the real package index
def test_sample_stack_builds_exports_publishes_and_deploys(tmp_path: Path, runtime_cache: Path) -> None:
    if not local_cpython("3.12"):
        pytest.skip("the sample stack needs a CPython 3.12 for its cpython-3.12 runtime")
    root = tmp_path / "sample"
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns("_build", "_export", "_artifacts"))
    stack = Stack(root, runtime_cache, index_url=None)
    run = stack.build("-j", "2")
    assert "is current" in run.err and "updated" not in run.err  # committed locks used as they are
    _run_apps(root / "_build")
    _check_libraries(root / "_build")

    stack.venvstacks("local-export", str(stack.spec), "-j", "2")
    _run_apps(root / "_export")
    _check_libraries(root / "_export")

    stack.venvstacks("publish", str(stack.spec), "--format", "tar.zst", "-j", "2")
    target = tmp_path / "deployed"
    stack.venvstacks("deploy", str(root / "_artifacts"), str(target), "--include", "app-*")
    deployed = {p.name.split("@")[0] for p in target.iterdir() if not p.name.startswith(".")}
    assert deployed == {
        "cpython-3.11",
        "cpython-3.12",
        "framework-scipy",
        "framework-sklearn",
        "app-scipy-import",
        "app-sklearn-import",
    }  # only what the apps need: framework-http-client serves the macOS/Windows app
    _run_apps(target)
    _check_libraries(target)
    _check_sboms(root, root / "_artifacts")
    listed = json.loads(stack.venvstacks("licenses", str(stack.spec), "--json").out)
    assert [app["app"] for app in listed] == ["app-scipy-import@2", "app-sklearn-import"]
    for app in listed:
        layers = {row["layer"] for row in app["packages"]}
        assert layers == set(app["layers"]) - {app["app"]}  # the apps add no packages of their own
        assert [row["package"] for row in app["packages"]].count("cpython") == 1
