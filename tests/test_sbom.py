"""SBOMs of published and exported layers, and `venvstacks licenses` over them.

One three-layer stack (tests/support/stacks.py) is built and published once for the module,
against an index of its own whose wheels declare the licences the tests need: a
License-Expression, classifiers, a licence file only, nothing at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.stacks import Run, Stack
from tests.support.wheels import SimpleIndex, serve_index
from venvstacks.fsutil import sha256_file
from venvstacks.lock.pylockdoc import Pylock
from venvstacks.ship.sbomread import read_sbom

pytestmark = pytest.mark.slow  # builds and publishes through the CLI

MIT_CLASSIFIER = "Classifier: License :: OSI Approved :: MIT License\n"
WHEELS = {
    # name: (version, METADATA lines)
    "idna": ("3.10", "License-Expression: BSD-3-Clause\n"),
    "attrs": ("25.3.0", MIT_CLASSIFIER),
    "gplpkg": ("1.0", "License-Expression: GPL-3.0-only\n"),
    "dualpkg": ("2.0", "License-Expression: MIT OR GPL-3.0-only\n"),
    "filepkg": ("1.1", "License-File: LICENSE.txt\n"),
    "nolicence": ("0.1", ""),
}


@pytest.fixture(scope="module")
def licence_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleIndex]:
    with serve_index(tmp_path_factory.mktemp("licence-index")) as index:
        for name, (version, metadata) in WHEELS.items():
            index.add(name, version, metadata=metadata)
        yield index


@pytest.fixture(scope="module")
def published(
    tmp_path_factory: pytest.TempPathFactory, runtime_cache: Path, licence_index: SimpleIndex
) -> Stack:
    root = tmp_path_factory.mktemp("sbom") / "stack"
    stack = Stack(
        root,
        runtime_cache,
        licence_index.url,
        framework_requirements=["idna", "gplpkg"],
        app_requirements=["attrs", "dualpkg", "filepkg", "nolicence"],
        app_versioned=True,
    ).write()
    stack.venvstacks("publish", str(stack.spec), "--format", "tar.gz")
    return stack


def metadata_files(folder: Path) -> dict[str, dict[str, Any]]:
    files = sorted((folder / "__venvstacks__" / "env_metadata").glob("*.json"))
    return {path.stem: json.loads(path.read_text()) for path in files}


def sbom_of(folder: Path, meta: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads((folder / f"{meta['archive_name']}.cdx.json").read_text()))


def packages(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in doc["components"] if c["bom-ref"].startswith("pkg:pypi/")}


def lock_of(stack: Stack, layer: str) -> Pylock:
    (path,) = (stack.root / "requirements" / layer).glob("pylock.*.toml")
    return Pylock.read(path)


def test_every_archive_has_an_sbom_whose_packages_are_its_lock(published: Stack) -> None:
    out = published.root / "_artifacts"
    metas = metadata_files(out)
    assert sorted(metas) == ["app-hello", "cpython-3.11", "framework-web"]
    for layer, meta in metas.items():
        path = out / f"{meta['archive_name']}.cdx.json"
        assert sha256_file(path) == meta["sbom_sha256"]
        doc = sbom_of(out, meta)
        assert doc["specVersion"] == "1.6"
        contents = read_sbom(path.read_text(), path)
        assert contents.layer.install_target == meta["install_target"]
        assert contents.archive_sha256 == meta["archive_hashes"]["sha256"]
        expected = {
            pkg.name: (pkg.version, pkg.all_wheels[0].sha256, pkg.all_wheels[0].url)
            for pkg in lock_of(published, layer).own_packages
        }
        found = {p.name: (p.version, p.wheel_sha256, p.url) for p in contents.packages}
        assert found == expected, layer
        host = str(published.index_url).removesuffix("/simple")
        assert all(str(url).startswith(f"{host}/files/") for _, _, url in found.values())
        # The CycloneDX encoding itself, as other tools read it:
        assert all(c["purl"] == f"pkg:pypi/{n}@{c['version']}" for n, c in packages(doc).items())


def test_the_sboms_validate_against_the_cyclonedx_schema(published: Stack) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    validator = JsonStrictValidator(SchemaVersion.V1_6)
    out = published.root / "_artifacts"
    for meta in metadata_files(out).values():
        text = (out / f"{meta['archive_name']}.cdx.json").read_text()
        assert validator.validate_str(text) is None
        # The validator can fail: the same document without its required bomFormat does.
        broken = json.loads(text)
        del broken["bomFormat"]
        assert validator.validate_str(json.dumps(broken)) is not None


def test_licences_come_from_expression_classifiers_files_or_nothing(published: Stack) -> None:
    out = published.root / "_artifacts"
    app = packages(sbom_of(out, metadata_files(out)["app-hello"]))
    web = packages(sbom_of(out, metadata_files(out)["framework-web"]))
    assert web["idna"]["licenses"] == [{"expression": "BSD-3-Clause"}]
    assert web["gplpkg"]["licenses"] == [{"expression": "GPL-3.0-only"}]
    assert app["dualpkg"]["licenses"] == [{"expression": "MIT OR GPL-3.0-only"}]
    assert app["attrs"]["licenses"] == [{"license": {"id": "MIT"}}]
    assert app["filepkg"]["licenses"] == [{"license": {"name": "LICENSE.txt"}}]
    assert app["nolicence"]["licenses"] == [{"license": {"name": "unknown"}}]
    sources = {n: _props(c)["license_source"] for n, c in app.items()}
    assert sources == {
        "attrs": "classifiers",
        "dualpkg": "expression",
        "filepkg": "files",
        "nolicence": "unknown",
    }
    size = _props(app["nolicence"])["size"]
    site = next((published.build_dir / "app-hello" / "lib").glob("python*/site-packages"))
    on_disk = sum(p.stat().st_size for p in site.glob("nolicence*") if p.is_file())
    on_disk += sum(p.stat().st_size for p in (site / "nolicence-0.1.dist-info").iterdir())
    assert int(size) == on_disk


def _props(component: dict[str, Any]) -> dict[str, str]:
    return {p["name"].removeprefix("venvstacks:"): p["value"] for p in component.get("properties", [])}


def test_the_runtime_appears_once_and_the_app_names_the_layers_below(published: Stack) -> None:
    out = published.root / "_artifacts"
    metas = metadata_files(out)
    docs = {layer: sbom_of(out, meta) for layer, meta in metas.items()}
    runtimes = [
        (layer, c)
        for layer, doc in docs.items()
        for c in doc["components"]
        if c["bom-ref"].startswith("runtime:")
    ]
    assert len(runtimes) == 1
    layer, cpython = runtimes[0]
    assert layer == "cpython-3.11"
    assert metas[layer]["python_implementation"] == f"cpython@{cpython['version']}"
    assert _props(cpython)["runtime_build"] == "packed from a local CPython"
    assert cpython["licenses"] == [{"license": {"id": "PSF-2.0"}}]

    app = docs["app-hello"]
    below = {c["name"]: c for c in app["components"] if c["bom-ref"].startswith("layer:")}
    assert sorted(below) == ["cpython-3.11", "framework-web"]
    for name, component in below.items():
        # Named by lock hash, not archive hash: a lower layer may be republished alone.
        assert _props(component)["requirements_hash"] == metas[name]["requirements_hash"]
        assert "hashes" not in component
    top = app["metadata"]["component"]
    assert top["name"] == metas["app-hello"]["install_target"] == "app-hello@1"
    assert _props(top)["layers_below"] == "framework-web cpython-3.11"  # sys.path order
    (deps,) = [d for d in app["dependencies"] if d["ref"] == top["bom-ref"]]
    assert {"layer:framework-web", "layer:cpython-3.11"} <= set(deps["dependsOn"])


def test_two_fresh_publishes_give_byte_identical_sboms(published: Stack, tmp_path: Path) -> None:
    first = published.root / "_artifacts"
    again = tmp_path / "again"
    published.venvstacks("publish", str(published.spec), "--format", "tar.gz", "--output-dir", str(again))
    for meta in metadata_files(first).values():
        name = f"{meta['archive_name']}.cdx.json"
        assert (again / name).read_bytes() == (first / name).read_bytes(), name


def test_local_export_puts_an_sbom_in_each_layer(published: Stack) -> None:
    published.venvstacks("local-export", str(published.spec))
    out = published.root / "_export"
    for meta in metadata_files(out).values():
        top = meta["install_target"]
        path = out / top / "share" / "venv" / "metadata" / f"{top}.cdx.json"
        assert sha256_file(path) == meta["sbom_sha256"]
        contents = read_sbom(path.read_text(), path)
        assert contents.layer.install_target == top
        assert contents.archive_sha256 is None  # no archive


def licenses(stack: Stack, *args: str) -> Run:
    return stack.venvstacks("licenses", *args, check=False)


def test_licenses_lists_everything_an_app_ships(published: Stack) -> None:
    run = licenses(published, str(published.spec), "--json")
    assert run.code == 0, run.err
    (app,) = json.loads(run.out)
    assert app["app"] == "app-hello@1"
    assert app["layers"] == ["app-hello@1", "framework-web", "cpython-3.11"]
    rows = {(p["package"], p["layer"]): p["license"] for p in app["packages"]}
    assert rows == {
        ("attrs", "app-hello@1"): "OSI Approved :: MIT License",
        ("dualpkg", "app-hello@1"): "MIT OR GPL-3.0-only",
        ("filepkg", "app-hello@1"): "files: LICENSE.txt",
        ("nolicence", "app-hello@1"): "unknown",
        ("gplpkg", "framework-web"): "GPL-3.0-only",
        ("idna", "framework-web"): "BSD-3-Clause",
        ("cpython", "cpython-3.11"): "PSF-2.0",
    }
    assert [p["package"] for p in app["unknown"]] == ["nolicence"]
    assert app["differs_from_published"] == []
    text = licenses(published, str(published.spec))
    assert "unknown licence: nolicence 0.1 (app-hello@1)" in text.out


def test_licenses_deny_fails_on_a_denied_licence_and_passes_otherwise(published: Stack) -> None:
    denied = licenses(published, str(published.spec), "--deny", "GPL-3.0-only")
    assert denied.code == 1
    # gplpkg has only GPL; dualpkg may be used under MIT instead.
    assert "denied: gplpkg 1.0 (framework-web): GPL-3.0-only" in denied.out
    assert "dualpkg" not in "".join(line for line in denied.out.splitlines() if "denied" in line)
    assert "not checkable: filepkg 1.1 (app-hello@1): licence files only" in denied.out

    both = licenses(published, str(published.spec), "--deny", "GPL-3.0-only", "--deny", "MIT", "--json")
    assert both.code == 1
    (app,) = json.loads(both.out)
    assert sorted(p["package"] for p in app["denied"]) == ["attrs", "dualpkg", "gplpkg"]

    allowed = licenses(published, str(published.spec), "--deny", "AGPL-3.0-only")
    assert allowed.code == 0, allowed.out + allowed.err
    assert "denied:" not in allowed.out

    typo = licenses(published, str(published.spec), "--deny", "GPL3")
    assert typo.code == 1
    assert typo.err.strip().splitlines() == [
        "error: --deny 'GPL3': not an SPDX licence identifier (such as GPL-3.0-only; "
        "see https://spdx.org/licenses/)"
    ]


def test_licenses_from_published_sboms_and_what_differs(published: Stack, tmp_path: Path) -> None:
    out = tmp_path / "out"
    published.venvstacks("publish", str(published.spec), "--format", "tar.gz", "--output-dir", str(out))
    from_build = json.loads(licenses(published, str(published.spec), "--json").out)
    from_sboms = licenses(published, "--from", str(out), "--json", "--deny", "GPL-3.0-only")
    assert from_sboms.code == 1
    (app,) = json.loads(from_sboms.out)
    assert app["packages"] == from_build[0]["packages"]
    assert [p["package"] for p in app["denied"]] == ["gplpkg"]
    framework = licenses(published, "--from", str(out), "--include", "framework-*", "--json")
    (web,) = json.loads(framework.out)
    assert (web["app"], web["layers"]) == ("framework-web", ["framework-web", "cpython-3.11"])
    nothing = licenses(published, "--from", str(out), "--include", "app-nope")
    assert nothing.code == 1
    assert nothing.err.strip() == f"error: --include 'app-nope' matches no layer published in {out}"

    # The build now says another licence for idna than the SBOM in the publish folder (as
    # after a rebuild from a wheel whose metadata changed).
    site = next((published.build_dir / "framework-web" / "lib").glob("python*/site-packages"))
    metadata = site / "idna-3.10.dist-info" / "METADATA"
    original = metadata.read_text()
    try:
        metadata.write_text(original.replace("License-Expression: BSD-3-Clause", "License-Expression: MIT"))
        run = licenses(published, str(published.spec))
        assert "differs from the published SBOM: idna 3.10 (framework-web): BSD-3-Clause there" in run.out
    finally:
        metadata.write_text(original)

    # A published SBOM that is not what its metadata says: the list, and one warning.
    artifacts = published.root / "_artifacts"
    sbom_file = artifacts / f"{metadata_files(artifacts)['framework-web']['archive_name']}.cdx.json"
    original = sbom_file.read_text()
    try:
        sbom_file.write_text(original.replace("BSD-3-Clause", "MIT"))
        warned = licenses(published, str(published.spec), "--json")
        assert warned.code == 0
        assert json.loads(warned.out)[0]["packages"] == from_build[0]["packages"]
        assert warned.err.strip() == (
            f"warning: not compared with the published SBOMs: {sbom_file}: "
            "its sha256 is not the sbom_sha256 its metadata records"
        )
    finally:
        sbom_file.write_text(original)

    # An SBOM that does not match its metadata's sha256 is refused, in one line.
    meta = metadata_files(out)["framework-web"]
    tampered = out / f"{meta['archive_name']}.cdx.json"
    tampered.write_text(tampered.read_text().replace("BSD-3-Clause", "MIT"))
    refused = licenses(published, "--from", str(out))
    assert refused.code == 1
    assert refused.err.strip() == f"error: {tampered}: its sha256 is not the sbom_sha256 its metadata records"
