"""Reading back an SBOM venvstacks wrote (ship/sbom.py), for `venvstacks licenses --from`.

Only what `sbom.sbom_text` writes is read, through `jsondoc.Fields`: a missing or mistyped
field is one line naming the file and the field (`components[3].properties`), as every
document venvstacks reads. cyclonedx-python-lib could deserialise the document too, but it
would check less of what matters here (our `venvstacks:` properties) and say less about
where a value is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from venvstacks.distinfo import LICENCE_SOURCES, Licence, LicenceSource
from venvstacks.jsondoc import DocumentError, Fields
from venvstacks.ship.licensing import CLASSIFIER_IDS
from venvstacks.ship.sbom import PROPERTY, LayerContents, LayerRef, Package, Runtime
from venvstacks.stack.kinds import LayerKind

FIX = "not an SBOM written by venvstacks: publish the layer again"
_IDS_TO_CLASSIFIERS = {spdx: classifier for classifier, spdx in CLASSIFIER_IDS.items()}


@dataclass(frozen=True)
class Component:
    """One CycloneDX component, as venvstacks writes it."""

    fields: Fields  # for errors about it
    ref: str
    name: str
    version: str
    properties: dict[str, str]  # the venvstacks: ones, without the prefix
    sha256: str | None
    licences: tuple[tuple[str, str], ...]  # ("expression" | "id" | "name", value)
    references: dict[str, str]  # comment ("wheel", "index") -> URL

    @classmethod
    def read(cls, f: Fields) -> Component:
        props = {}
        for prop in f.tables("properties") or ():
            name = prop.text("name")
            if name.startswith(PROPERTY):
                props[name.removeprefix(PROPERTY)] = prop.text("value")
        hashes = [(h.text("alg"), h.text("content")) for h in f.tables("hashes") or ()]
        refs = {r.opt_text("comment") or "": r.text("url") for r in f.tables("externalReferences") or ()}
        return cls(
            fields=f,
            ref=f.text("bom-ref"),
            name=f.text("name"),
            version=f.text("version"),
            properties=props,
            sha256=next((content for alg, content in hashes if alg == "SHA-256"), None),
            licences=tuple(_licence(entry) for entry in f.tables("licenses") or ()),
            references=refs,
        )

    def prop(self, name: str) -> str:
        if name not in self.properties:
            raise self.fields.fail("properties", f"has no {PROPERTY}{name}")
        return self.properties[name]

    def number(self, name: str) -> int:
        value = self.prop(name)
        if not value.isdigit():
            raise self.fields.fail("properties", f"{PROPERTY}{name} must be a number, not {value!r}")
        return int(value)


def _licence(f: Fields) -> tuple[str, str]:
    if f.has("expression"):
        return ("expression", f.text("expression"))
    licence = f.table("license")
    return ("id", licence.text("id")) if licence.has("id") else ("name", licence.text("name"))


def read_sbom(text: str, path: Path) -> LayerContents:
    """What `sbom.sbom_text` wrote; a DocumentError names the file and field of a bad value."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DocumentError(path, None, None, f"cannot be read as JSON ({exc})", FIX) from None
    doc = Fields.of(data, path, fix=FIX)
    metadata = doc.table("metadata")
    top = Component.read(metadata.table("component"))
    components = [Component.read(c) for c in doc.tables("components") or ()]
    lowers = {c.name: _layer(c) for c in components if c.ref.startswith("layer:")}
    below = []
    for name in top.properties.get("layers_below", "").split():
        if name not in lowers:
            raise top.fields.fail("properties", f"names {name!r} as a layer below, but no component is it")
        below.append(lowers[name])
    packages = [_package(c) for c in components if c.ref.startswith("pkg:pypi/")]
    runtimes = [_runtime(c) for c in components if c.ref.startswith("runtime:")]
    return LayerContents(
        layer=_layer(top),
        layer_name=top.prop("layer_name"),
        locked_at=metadata.text("timestamp"),
        packages=tuple(sorted(packages, key=lambda p: p.name)),
        runtime=runtimes[0] if runtimes else None,
        lowers=tuple(below),
        archive_sha256=top.sha256,
    )


def _layer(component: Component) -> LayerRef:
    named = component.prop("kind")
    kind = next((k for k in LayerKind if k.singular == named), None)
    if kind is None:
        raise component.fields.fail("properties", f"{PROPERTY}kind {named!r} is no layer kind")
    lock_version = component.number("lock_version")
    return LayerRef(component.name, kind, lock_version, component.prop("requirements_hash"))


def _package(component: Component) -> Package:
    source = _source(component)
    values = []
    for kind, value in component.licences:
        # A classifier was written as its SPDX id where it has one: read back the classifier.
        classifier = kind == "id" and source == "classifiers"
        values.append(_IDS_TO_CLASSIFIERS.get(value, value) if classifier else value)
    licence = Licence(source, ()) if source == "unknown" else Licence(source, tuple(sorted(values)))
    return Package(
        name=component.name,
        version=component.version,
        licence=licence,
        size=component.number("size"),
        wheel_sha256=component.sha256,
        wheel=component.properties.get("wheel"),
        url=component.references.get("wheel"),
        index=component.references.get("index"),
        in_lock=component.properties.get("in_lock") != "false",
    )


def _source(component: Component) -> LicenceSource:
    source = component.prop("license_source")
    for known in LICENCE_SOURCES:
        if source == known:
            return known
    message = f"{PROPERTY}license_source {source!r} is not one of {', '.join(LICENCE_SOURCES)}"
    raise component.fields.fail("properties", message)


def _runtime(component: Component) -> Runtime:
    source = component.prop("runtime_source")
    build = component.prop("runtime_build").removeprefix("python-build-standalone ")
    local = source == "local"
    return Runtime(component.version, source, None if local else build, component.sha256 or "")
