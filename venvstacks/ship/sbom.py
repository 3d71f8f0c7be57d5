"""A layer's CycloneDX 1.6 SBOM (``<archive name>.cdx.json``), made with cyclonedx-python-lib.

What a layer holds is first gathered as plain data, :class:`LayerContents`: its installed
distributions joined with its lock (:func:`packages`), the CPython of a runtime layer, and the
lower layers it runs on. :func:`sbom_text` turns that into the document and
`sbomread.read_sbom` reads one back (`venvstacks licenses --from`), so the two directions
share one vocabulary, the ``venvstacks:`` properties below.

The document (docs/sbom.md has a reader's view):

* ``metadata.component``: the layer itself (``bom-ref`` ``layer:<deployed name>``; the
  archive's sha256 when published);
* ``components``: one ``library`` per installed distribution (purl ``pkg:pypi/...``, the
  installed wheel's sha256 from the lock, where it came from: the wheel's URL and the index
  where the lock names one, its licence, its files' size), a runtime layer's CPython as a
  ``platform``, and every lower layer the layer runs on (named by deployed name and lock
  hash, not archive hash, so that lower layers can still be republished alone);
* ``dependencies``: the layer on all of those.

Reproducible: the timestamp is the lock time, every ``bom-ref`` is derived from names, and
the serial number from the archive's sha256 (an export, having no archive, derives it from
the document's own content).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from venvstacks import __version__
from venvstacks.distinfo import Installed, Licence
from venvstacks.lazy import lazy_modules
from venvstacks.lock.pylockdoc import LockedPackage, LockedWheel, Pylock
from venvstacks.ship.licensing import CLASSIFIER_IDS
from venvstacks.stack.kinds import LayerKind

# The CycloneDX model and writer, loaded when an SBOM is made or read (never on a no-op run).
if TYPE_CHECKING:
    import packageurl
    from cyclonedx import model as cdx
    from cyclonedx.model import bom as cdx_bom
    from cyclonedx.model import component as cdx_component
    from cyclonedx.model import license as cdx_license
    from cyclonedx.model import tool as cdx_tool
    from cyclonedx.output import json as cdx_json

    from venvstacks.ship import publish
else:
    cdx, cdx_bom, cdx_component, cdx_license, cdx_tool, cdx_json, packageurl, publish = lazy_modules(
        "cyclonedx.model",
        "cyclonedx.model.bom",
        "cyclonedx.model.component",
        "cyclonedx.model.license",
        "cyclonedx.model.tool",
        "cyclonedx.output.json",
        "packageurl",
        "venvstacks.ship.publish",
    )

PROPERTY = "venvstacks:"
_NAMESPACE = uuid.UUID("5d1e6a2c-6b53-4d1f-9a65-5f0c4a1e7b21")  # venvstacks' own, for uuid5
PSF = "PSF-2.0"  # CPython's licence
RUNTIME_LICENCE = Licence("expression", (PSF,))


@dataclass(frozen=True)
class Package:
    name: str  # canonical
    version: str
    licence: Licence
    size: int
    wheel_sha256: str | None = None  # None: not in the lock, or none of its wheels has these tags
    wheel: str | None = None  # the wheel's file name
    url: str | None = None  # where the wheel was downloaded from (None: a local wheel)
    index: str | None = None  # the package index, when the lock names one (uv's do not)
    in_lock: bool = True  # False: it came with the runtime (python-build-standalone's pip)

    @property
    def purl(self) -> str:
        return f"pkg:pypi/{self.name}@{self.version}"


@dataclass(frozen=True)
class Runtime:
    """The CPython a runtime layer is."""

    version: str
    source: str  # "download" | "archive" | "local"
    build: str | None  # the python-build-standalone archive; None when packed from a local CPython
    archive_sha256: str

    def described(self) -> str:
        if self.build is None:
            return "packed from a local CPython"
        return f"python-build-standalone {self.build}"


@dataclass(frozen=True)
class LayerRef:
    """A layer as others name it: by deployed name and lock hash, never by archive hash."""

    install_target: str
    kind: LayerKind
    lock_version: int
    requirements_hash: str

    @property
    def ref(self) -> str:
        return f"layer:{self.install_target}"


@dataclass(frozen=True)
class LayerContents:
    layer: LayerRef
    layer_name: str
    locked_at: str
    packages: tuple[Package, ...]
    runtime: Runtime | None  # a runtime layer's CPython
    lowers: tuple[LayerRef, ...]  # the layers it runs on, in sys.path order
    archive_sha256: str | None = None  # None: exported, not archived


# --- gathering (pure) -------------------------------------------------------------------


def packages(installed: Sequence[Installed], lock: Pylock) -> tuple[Package, ...]:
    """The installed distributions, each with its wheel's hash and source from the lock."""
    by_name: dict[str, LockedPackage] = {p.key: p for p in lock.own_packages}
    result = []
    for dist in installed:
        entry = by_name.get(dist.name)
        if entry is None or entry.version != dist.version:
            result.append(Package(dist.name, dist.version, dist.licence, dist.size, in_lock=False))
            continue
        wheel = _installed_wheel(entry.all_wheels, dist.wheel_tags)
        name = None if wheel is None else wheel.file_name
        sha = None if wheel is None else wheel.sha256
        url = None if wheel is None else wheel.url or None
        result.append(Package(dist.name, dist.version, dist.licence, dist.size, sha, name, url, entry.index))
    return tuple(result)


def _installed_wheel(wheels: Sequence[LockedWheel], tags: frozenset[str]) -> LockedWheel | None:
    if len(wheels) == 1:
        return wheels[0]
    # The one whose tags are the installed WHEEL file's.
    return next((w for w in wheels if {str(t) for t in w.tags} == tags), None)


# --- the document ---------------------------------------------------------------------------


def sbom_text(contents: LayerContents) -> str:
    """The CycloneDX 1.6 JSON document, byte for byte the same for the same contents."""
    if contents.archive_sha256 is not None:
        seed = f"archive:{contents.archive_sha256}"
    else:  # an export: the content itself, written once with a placeholder serial number
        seed = "content:" + hashlib.sha256(_render(contents, uuid.UUID(int=0)).encode()).hexdigest()
    return _render(contents, uuid.uuid5(_NAMESPACE, seed))


def _render(contents: LayerContents, serial: uuid.UUID) -> str:

    top = _layer_component(contents.layer, contents.layer_name)
    top.hashes.update(_sha256(contents.archive_sha256))
    top.properties.add(_prop("layers_below", " ".join(low.install_target for low in contents.lowers)))
    parts = [_package_component(p) for p in contents.packages]
    if contents.runtime is not None:
        parts.append(_runtime_component(contents.runtime))
    lowers = [_layer_component(low) for low in contents.lowers]
    tools = cdx_tool.ToolRepository(components=[_tool()])
    metadata = cdx_bom.BomMetaData(component=top, tools=tools, timestamp=_lock_time(contents.locked_at))
    bom = cdx_bom.Bom(components=[*parts, *lowers], serial_number=serial, metadata=metadata)
    bom.register_dependency(top, [*lowers, *parts])
    for component in (*parts, *lowers):
        bom.register_dependency(component, [])
    return cdx_json.JsonV1Dot6(bom).output_as_string(indent=2) + "\n"


def _layer_component(layer: LayerRef, layer_name: str | None = None) -> cdx_component.Component:

    kinds = {
        LayerKind.RUNTIME: cdx_component.ComponentType.PLATFORM,
        LayerKind.FRAMEWORK: cdx_component.ComponentType.FRAMEWORK,
        LayerKind.APPLICATION: cdx_component.ComponentType.APPLICATION,
    }
    props = [
        _prop("kind", layer.kind.singular),
        _prop("lock_version", str(layer.lock_version)),
        _prop("requirements_hash", layer.requirements_hash),
    ]
    if layer_name is not None:
        props.append(_prop("layer_name", layer_name))
    return cdx_component.Component(
        name=layer.install_target,
        version=str(layer.lock_version),
        type=kinds[layer.kind],
        bom_ref=layer.ref,
        properties=props,
    )


def _package_component(package: Package) -> cdx_component.Component:

    refs = [
        cdx.ExternalReference(type=cdx.ExternalReferenceType.DISTRIBUTION, url=cdx.XsUri(where), comment=what)
        for where, what in ((package.url, "wheel"), (package.index, "index"))
        if where
    ]
    props = [_prop("license_source", package.licence.source), _prop("size", str(package.size))]
    if package.wheel:
        props.append(_prop("wheel", package.wheel))
    if not package.in_lock:
        props.append(_prop("in_lock", "false"))
    return cdx_component.Component(
        name=package.name,
        version=package.version,
        bom_ref=package.purl,
        purl=packageurl.PackageURL(type="pypi", name=package.name, version=package.version),
        hashes=_sha256(package.wheel_sha256),
        licenses=_licences(package.licence),
        external_references=refs,
        properties=props,
    )


def _runtime_component(runtime: Runtime) -> cdx_component.Component:

    props = [_prop("runtime_source", runtime.source), _prop("runtime_build", runtime.described())]
    return cdx_component.Component(
        name="cpython",
        version=runtime.version,
        type=cdx_component.ComponentType.PLATFORM,
        bom_ref=f"runtime:cpython@{runtime.version}",
        licenses=[cdx_license.DisjunctiveLicense(id=PSF)],
        hashes=_sha256(runtime.archive_sha256),
        properties=props,
        description=f"CPython {runtime.version}, {runtime.described()}",
    )


def _licences(licence: Licence) -> list[cdx_license.License]:

    if licence.source == "expression":
        return [cdx_license.LicenseExpression(licence.values[0])]
    if licence.source == "classifiers":
        return [
            cdx_license.DisjunctiveLicense(id=CLASSIFIER_IDS[v])
            if v in CLASSIFIER_IDS
            else cdx_license.DisjunctiveLicense(name=v)
            for v in licence.values
        ]
    return [cdx_license.DisjunctiveLicense(name=v) for v in licence.values or ("unknown",)]


def _tool() -> cdx_component.Component:

    return cdx_component.Component(
        name="venvstacks",
        version=__version__,
        type=cdx_component.ComponentType.APPLICATION,
        bom_ref="venvstacks",
    )


def _sha256(digest: str | None) -> list[Any]:

    return [cdx.HashType(alg=cdx.HashAlgorithm.SHA_256, content=digest)] if digest else []


def _prop(name: str, value: str) -> Any:

    return cdx.Property(name=PROPERTY + name, value=value)


def _lock_time(locked_at: str) -> datetime:

    return datetime.fromtimestamp(publish.lock_epoch(locked_at), UTC)
