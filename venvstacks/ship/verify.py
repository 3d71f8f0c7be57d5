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

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvstacks.errors import VenvStacksError
from venvstacks.layout import LAYER_CONFIG
from venvstacks.ship.deploystate import STATE_FILE, DeployState
from venvstacks.ship.manifest import check_deployed
from venvstacks.ship.published_meta import is_plain_name, load_published

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

    def line(self, shown_at_most: int | None = SHOWN) -> str:
        """`ok` or `FAIL` with the first `shown_at_most` differences (None: every one)."""
        if self.ok:
            note = f"; {self.note}" if self.note else ""
            return f"ok    {self.name} ({self.checked} entries{note})"
        limit = len(self.problems) if shown_at_most is None else shown_at_most
        shown = "; ".join(self.problems[:limit])
        more = len(self.problems) - limit
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
    problems, checked = check_deployed(layer_dir, anchor, source)
    note = "against its own manifest: no published hash for it" if anchor is None else ""
    return LayerReport(layer_dir.name, tuple(problems), checked, note)


def repair_hint(deployed_dir: Path, published: Path | None) -> str:
    """What to run after a FAIL: deploy again, from where the layers were published."""
    source = published or DeployState.read(deployed_dir).published
    where = "PUBLISHED_FOLDER" if source is None else shlex.quote(str(source))
    return (
        f"to repair: venvstacks deploy {where} {shlex.quote(str(deployed_dir))} "
        "(redeploys the layers that differ; docs: `venvstacks docs deployment`)"
    )


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
