"""``venvstacks verify DEPLOYED_DIR``: is every deployed layer exactly what was published?

Each layer folder of ``DEPLOYED_DIR`` (a folder holding ``share/venv/metadata/
venvstacks_layer.json``) is compared with the file manifest it carries (manifest.py): every
file's sha256, size and executable bit, every link's target, no missing entry and no extra
one besides what ``postinstall.py`` writes. The manifest itself is checked against the
``files_manifest_sha256`` that was published for the layer: taken from ``published`` (a
publish output folder or its metadata file) when given, otherwise from the record that
``venvstacks deploy`` keeps in ``DEPLOYED_DIR/.venvstacks-deploy.json``; a layer with neither
(unpacked by hand) is checked against its own manifest only, and its line says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvstacks.errors import VenvStacksError
from venvstacks.layerconfig import read_layer_config
from venvstacks.layout import FILES_MANIFEST, LAYER_CONFIG
from venvstacks.ship.deploy import is_plain_name, load_published
from venvstacks.ship.deploystate import STATE_FILE, DeployState
from venvstacks.ship.manifest import differences, read_manifest, scan_layer

SHOWN = 3  # differences printed per layer; the rest are counted


@dataclass(frozen=True)
class LayerReport:
    name: str
    problems: tuple[str, ...]
    checked: int = 0  # entries compared
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        if self.ok:
            note = f"; {self.note}" if self.note else ""
            return f"ok    {self.name} ({self.checked} entries{note})"
        shown = "; ".join(self.problems[:SHOWN])
        more = len(self.problems) - SHOWN
        tail = f"; and {more} more" if more > 0 else ""
        count = f"{len(self.problems)} difference{'s' if len(self.problems) != 1 else ''}"
        return f"FAIL  {self.name}: {count}: {shown}{tail}"


def verify_deployed(deployed_dir: Path, published: Path | None = None) -> list[LayerReport]:
    """One report per layer, deployed or expected, sorted by name."""
    if not deployed_dir.is_dir():
        raise VenvStacksError(f"{deployed_dir}: not a folder")
    anchors, source = _published_hashes(deployed_dir, published)
    # A deploy record lists the layers that must be there; a publication may hold more
    # layers than were deployed (deploy --include).
    expected = set(anchors) if published is None else set()
    present = sorted(
        p.name for p in deployed_dir.iterdir() if is_plain_name(p.name) and (p / LAYER_CONFIG).is_file()
    )
    if not present and not expected:
        raise VenvStacksError(
            f"{deployed_dir}: no deployed layer found; pass the folder `venvstacks deploy` wrote "
            "(or `--rebuild` and a folder `venvstacks publish` wrote)"
        )
    reports = [_verify_layer(deployed_dir / name, anchors.get(name), source) for name in present]
    reports += [
        LayerReport(name, (f"layer folder missing (listed in {source})",))
        for name in sorted(expected - set(present))
    ]
    return sorted(reports, key=lambda r: r.name)


def _verify_layer(layer_dir: Path, anchor: str | None, source: str) -> LayerReport:
    try:
        config = read_layer_config(layer_dir)
        manifest, manifest_hash = read_manifest(layer_dir)
    except VenvStacksError as exc:
        return LayerReport(layer_dir.name, (str(exc),))
    problems = []
    note = ""
    if anchor is None:
        note = "against its own manifest: no published hash for it"
    elif anchor != manifest_hash:
        problems.append(f"{FILES_MANIFEST.as_posix()}: not the one in {source}")
    problems += differences(manifest, scan_layer(layer_dir), config)
    return LayerReport(layer_dir.name, tuple(problems), len(manifest), note)


def _published_hashes(deployed_dir: Path, published: Path | None) -> tuple[dict[str, str], str]:
    """install target -> published files_manifest_sha256, and where that came from."""
    if published is not None:
        layers = load_published(published)
        hashes = {la.install_target: la.metadata.files_manifest_sha256 for la in layers}
        return _strings(hashes), f"the published metadata of {published}"
    recorded = DeployState.read(deployed_dir).layers
    hashes = {target: layer.files_manifest_sha256 for target, layer in recorded.items()}
    return _strings(hashes), f"the deploy record {STATE_FILE}"


def _strings(hashes: Mapping[str, Any]) -> dict[str, str]:
    return {k: v for k, v in hashes.items() if isinstance(v, str)}
