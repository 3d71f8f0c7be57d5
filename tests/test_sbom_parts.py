"""The SBOM's parts without a build: publishing beside an unchanged archive, the licence
verdicts, which of a lock's wheels was installed, the runtime record, reading back, and
`show --graph` on the sample stack (which needs no build)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.support.layers import sample_stack
from tests.support.pylock_data import typed
from venvstacks import cli
from venvstacks.archive.formats import ArchiveFormat
from venvstacks.distinfo import Installed, Licence
from venvstacks.engine.contents import runtime_component
from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import sha256_bytes
from venvstacks.jsondoc import DocumentError
from venvstacks.runtimes.record import RuntimeRecord
from venvstacks.ship import sbom
from venvstacks.ship.licensing import check, deny_list
from venvstacks.ship.publish import PublishOptions, publish_layer
from venvstacks.ship.sbomread import read_sbom
from venvstacks.stack.graph import lower_layers
from venvstacks.stack.kinds import LayerKind
from venvstacks.stack.spec import load_stack

SAMPLE = Path(__file__).parents[1] / "stacks" / "sample" / "venvstacks.toml"


def fake_sbom(archive_sha256: str) -> str:
    return f"the SBOM of {archive_sha256}\n"


def test_the_sbom_leaves_the_archive_alone_and_comes_back_when_lost(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    layer = sample_stack(tmp_path_factory, tmp_path / "_build").layers()[2]
    plain, with_sbom = tmp_path / "plain", tmp_path / "with-sbom"

    def options(out: Path) -> PublishOptions:
        return PublishOptions(out, target_platform="linux_x86_64", archive_format=ArchiveFormat.TAR_GZ)

    before = publish_layer(layer, options(plain))
    after = publish_layer(replace(layer, sbom=fake_sbom), options(with_sbom))
    name = str(after.metadata.archive_name)
    assert (with_sbom / name).read_bytes() == (plain / name).read_bytes()
    text = (with_sbom / f"{name}.cdx.json").read_text()
    assert text == fake_sbom(str(after.metadata.archive_sha256))
    assert after.metadata == replace(before.metadata, sbom_sha256=sha256_bytes(text.encode()))
    assert not (plain / f"{name}.cdx.json").exists()

    (with_sbom / f"{name}.cdx.json").unlink()
    again = publish_layer(replace(layer, sbom=fake_sbom), options(with_sbom))
    assert again.status == "unchanged"
    assert (with_sbom / f"{name}.cdx.json").read_text() == text


@pytest.mark.parametrize(
    ("licence", "allowed", "checkable"),
    [
        (Licence("expression", ("MIT OR GPL-3.0-only",)), True, True),
        (Licence("expression", ("MIT AND GPL-3.0-only",)), False, True),
        (Licence("expression", ("GPL-3.0",)), False, True),  # the deprecated spelling is the same licence
        (Licence("expression", ("GPL-3.0-or-later",)), True, True),  # exact identifiers only
        (Licence("expression", ("GPL-3.0-only WITH Classpath-exception-2.0",)), False, True),
        (Licence("expression", ("(Apache-2.0 OR GPL-3.0-only) AND (MIT OR GPL-3.0-only)",)), True, True),
        (Licence("expression", ("MIT OR (",)), True, False),
        (Licence("classifiers", ("OSI Approved :: GNU General Public License v3 (GPLv3)",)), False, True),
        (Licence("classifiers", ("OSI Approved :: MIT License", "OSI Approved :: BSD License")), True, False),
        (Licence("files", ("LICENSE",)), True, False),
        (Licence("unknown"), True, False),
    ],
)
def test_deny_verdicts(licence: Licence, allowed: bool, checkable: bool) -> None:
    verdict = check(licence, deny_list(["gpl-3.0-only"]))
    assert (verdict.allowed, verdict.checkable) == (allowed, checkable)


def test_deny_refuses_what_is_not_an_spdx_identifier() -> None:
    for value in ("GPL3", "MIT OR GPL-3.0-only", ""):
        with pytest.raises(VenvStacksError, match="not an SPDX licence identifier"):
            deny_list([value])


def test_the_installed_wheel_is_the_one_whose_tags_match() -> None:
    wheels = [
        {"name": "x-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "hashes": {"sha256": "a" * 64}},
        {"name": "x-1.0-cp311-cp311-macosx_11_0_arm64.whl", "hashes": {"sha256": "b" * 64}},
    ]
    lock = typed(
        {
            "packages": [
                {"name": "X", "version": "1.0", "wheels": wheels},
                {"name": "shared", "version": "2.0", "marker": "sys_platform == 'from_lower_layer'"},
            ]
        }
    )
    mac = Installed("x", "1.0", Licence("unknown"), 10, frozenset({"cp311-cp311-macosx_11_0_arm64"}))
    came_with_runtime = Installed("pip", "24.0", Licence("unknown"), 5, frozenset({"py3-none-any"}))
    (x, pip) = sbom.packages([mac, came_with_runtime], lock)
    assert (x.wheel, x.wheel_sha256) == ("x-1.0-cp311-cp311-macosx_11_0_arm64.whl", "b" * 64)
    assert (pip.name, pip.wheel_sha256, pip.url, pip.in_lock) == ("pip", None, None, False)
    assert x.in_lock
    linux = replace(mac, wheel_tags=frozenset({"cp311-cp311-manylinux_2_28_x86_64"}))
    (unmatched,) = sbom.packages([linux], lock)  # in the lock, but no wheel with its tags
    assert (unmatched.wheel_sha256, unmatched.in_lock) == (None, True)


def test_the_runtime_component_names_its_build() -> None:
    url = "https://example.invalid/20240107/cpython-3.11.7+20240107-x86_64-unknown-linux-gnu-install_only.tar.gz"
    record = RuntimeRecord("cpython@3.11", "cpython", "3.11.7", "download", url, "c" * 64, portable=True)
    downloaded = runtime_component(record)
    assert downloaded.described() == (
        "python-build-standalone cpython-3.11.7+20240107-x86_64-unknown-linux-gnu-install_only.tar.gz"
    )
    assert (downloaded.version, downloaded.archive_sha256) == ("3.11.7", "c" * 64)
    local = runtime_component(replace(record, source="local", origin="/opt/python", portable=False))
    assert local.described() == "packed from a local CPython"


def contents(archive_sha256: str | None) -> sbom.LayerContents:
    runtime = sbom.LayerRef("cpython-3.11", LayerKind.RUNTIME, 1, "sha256:11")
    framework = sbom.LayerRef("framework-web@3", LayerKind.FRAMEWORK, 3, "sha256:22")
    packages = (
        sbom.Package("attrs", "25.3.0", Licence("classifiers", ("OSI Approved :: MIT License",)), 100),
        sbom.Package(
            "idna",
            "3.10",
            Licence("expression", ("BSD-3-Clause",)),
            200,
            "d" * 64,
            "idna.whl",
            "https://x/idna.whl",
        ),
        sbom.Package("zzz", "1", Licence("files", ("LICENSE", "NOTICE")), 300, in_lock=False),
    )
    app = sbom.LayerRef("app-hello", LayerKind.APPLICATION, 1, "sha256:33")
    return sbom.LayerContents(
        app, "app-hello", "2025-01-02T03:04:05+00:00", packages, None, (framework, runtime), archive_sha256
    )


def test_an_sbom_reads_back_as_written_and_its_serial_follows_the_archive() -> None:
    published = contents("e" * 64)
    text = sbom.sbom_text(published)
    assert read_sbom(text, Path("x.cdx.json")) == published
    doc = json.loads(text)
    assert doc["metadata"]["timestamp"] == "2025-01-02T03:04:05+00:00"  # the lock time, not now
    other = json.loads(sbom.sbom_text(contents("f" * 64)))
    assert doc["serialNumber"] != other["serialNumber"]
    exported = contents(None)
    assert sbom.sbom_text(exported) == sbom.sbom_text(exported)
    assert read_sbom(sbom.sbom_text(exported), Path("x")) == exported


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda doc: doc.pop("metadata"), "field 'metadata': is missing"),
        (
            lambda doc: doc["components"][0].update(version=3),
            "field 'components[0].version': must be a string, not 3 (a number)",
        ),
        (
            lambda doc: doc["metadata"]["component"]["properties"].clear(),
            "field 'metadata.component.properties': has no venvstacks:kind",
        ),
        (
            lambda doc: doc["metadata"]["component"]["properties"][0].update(value="module"),
            "field 'metadata.component.properties': venvstacks:kind 'module' is no layer kind",
        ),
    ],
)
def test_a_damaged_sbom_is_one_line_naming_file_and_field(
    change: Callable[[Any], object], message: str
) -> None:
    doc = json.loads(sbom.sbom_text(contents("e" * 64)))
    change(doc)
    with pytest.raises(DocumentError) as info:
        read_sbom(json.dumps(doc), Path("x.cdx.json"))
    fix = "not an SBOM written by venvstacks: publish the layer again"
    assert str(info.value) == f"x.cdx.json: {message}; {fix}"


def test_show_graph_mermaid_draws_every_edge_of_the_sample(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["show", str(SAMPLE), "--graph", "mermaid"]) == 0
    out = capsys.readouterr().out
    stack = load_stack(SAMPLE)
    ids = {layer.env_name: layer.env_name.replace("-", "_").replace(".", "_") for layer in stack.layers}
    edges = [line.strip() for line in out.splitlines() if "-->" in line]
    expected = [
        f"{ids[layer.env_name]} -->|{place}| {ids[low.env_name]}"
        for layer in stack.layers
        if layer.kind is not LayerKind.RUNTIME
        for place, low in enumerate(lower_layers(stack, layer), 1)
    ]
    assert edges == expected
    assert len(edges) == 10
    assert 'app_scipy_import["app-scipy-import@2"]' in out  # versioned: the deployed name
    assert "app_scipy_client -->|1| framework_scipy" in edges  # sys.path order: its frameworks
    assert "app_scipy_client -->|3| cpython_3_11" in edges  # ... then its runtime


def test_show_graph_dot_and_its_refusal_with_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["show", str(SAMPLE), "--graph", "dot", "--include", "app-sklearn-import"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("digraph stack {")
    assert [line.strip() for line in out.splitlines() if "->" in line] == [
        '"framework-sklearn" -> "cpython-3.12" [label="1"];',
        '"app-sklearn-import" -> "framework-sklearn" [label="1"];',
        '"app-sklearn-import" -> "cpython-3.12" [label="2"];',
    ]
    with pytest.raises(SystemExit) as refused:
        cli.main(["show", str(SAMPLE), "--graph", "dot", "--json"])
    assert refused.value.code == 2
    assert "--json: not allowed with argument --graph" in capsys.readouterr().err


def test_an_app_list_needs_every_layer_below_and_marks_what_differs() -> None:
    from venvstacks.cli_licenses import app_list, with_published

    app = contents("e" * 64)
    with pytest.raises(VenvStacksError) as missing:
        app_list("app-hello", {"app-hello": app}, "out")
    assert (
        str(missing.value) == "app-hello runs on framework-web@3, but out has no SBOM of it; publish it too"
    )

    framework = sbom.LayerContents(app.lowers[0], "framework-web", app.locked_at, (), None, (app.lowers[1],))
    cpython = sbom.Runtime("3.11.7", "local", None, "c" * 64)
    runtime = sbom.LayerContents(app.lowers[1], "cpython-3.11", app.locked_at, (), cpython, ())
    layers = {"app-hello": app, "framework-web@3": framework, "cpython-3.11": runtime}
    listed = app_list("app-hello", layers, "out")
    assert listed.layers == ("app-hello", "framework-web@3", "cpython-3.11")
    assert [(r.package, r.layer) for r in listed.rows][-1] == ("cpython", "cpython-3.11")

    idna = app.packages[1]
    before = replace(idna, licence=Licence("expression", ("MIT",)))
    published = {"app-hello": replace(app, packages=(app.packages[0], before, app.packages[2]))}
    marked = with_published(listed, published)
    assert [(r.package, r.published) for r in marked.rows if r.published] == [("idna", before.licence)]
