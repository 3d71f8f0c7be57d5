"""`venvstacks licenses`: per app, everything it ships (its layer, its frameworks, its runtime)
with each package's licence, read from the built layers or (`--from DIR`) from published SBOMs.

Unknown licences are called out, and so are packages whose licence differs from the SBOM
already in the publish folder. `--deny ID` (repeatable) makes the exit status 1 when a
package cannot be used without a denied licence (ship/licensing.py says how expressions,
classifiers and files are read), so CI can gate on it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from venvstacks.cli_show import Invocation
from venvstacks.cli_stackoptions import LicensesCommand
from venvstacks.console import say
from venvstacks.distinfo import Licence
from venvstacks.engine.actions import runtime_record
from venvstacks.engine.contents import BuiltLayer, layer_contents
from venvstacks.engine.settings import Settings
from venvstacks.engine.tasks import buildable
from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import read_bounded_text, sha256_bytes
from venvstacks.layout import BUILT, METADATA_DIR, sbom_name
from venvstacks.lock.validity import Locks
from venvstacks.ship import licensing
from venvstacks.ship.published_meta import load_published
from venvstacks.ship.sbom import RUNTIME_LICENCE, LayerContents
from venvstacks.ship.sbomread import read_sbom
from venvstacks.stack.graph import lower_layers
from venvstacks.stack.kinds import LayerKind


@dataclass(frozen=True)
class Row:
    package: str
    version: str
    layer: str  # deployed name
    licence: Licence
    published: Licence | None = None  # the licence in the publish folder's SBOM, if it differs

    def as_json(self) -> dict[str, Any]:
        data = {
            "package": self.package,
            "version": self.version,
            "layer": self.layer,
            "license": self.licence.text(),
            "license_source": self.licence.source,
        }
        if self.published is not None:
            data["published_license"] = self.published.text()
        return data


@dataclass(frozen=True)
class AppList:
    layer: str  # deployed name
    layers: tuple[str, ...]  # its own, then those it runs on in sys.path order
    rows: tuple[Row, ...]


# --- assembling (pure) ------------------------------------------------------------------------


def app_list(top: str, contents: Mapping[str, LayerContents], where: str) -> AppList:
    """``top``'s complete list from the contents of every layer, by deployed name."""
    own = contents[top]
    layers = (top, *(low.install_target for low in own.lowers))
    rows: list[Row] = []
    for name in layers:
        layer = contents.get(name)
        if layer is None:
            raise VenvStacksError(f"{top} runs on {name}, but {where} has no SBOM of it; publish it too")
        rows += [Row(p.name, p.version, name, p.licence) for p in layer.packages]
        if layer.runtime is not None:
            rows.append(Row("cpython", layer.runtime.version, name, RUNTIME_LICENCE))
    return AppList(top, layers, tuple(rows))


def with_published(app: AppList, published: Mapping[str, LayerContents]) -> AppList:
    """Mark the rows whose licence differs from the published SBOM of their layer."""
    known = {
        (name, p.name, p.version): p.licence for name, layer in published.items() for p in layer.packages
    }
    rows = []
    for row in app.rows:
        before = known.get((row.layer, row.package, row.version))
        rows.append(replace(row, published=before) if before not in (None, row.licence) else row)
    return AppList(app.layer, app.layers, tuple(rows))


# --- reading ------------------------------------------------------------------------------------


def built_contents(settings: Settings, names: Sequence[str]) -> dict[str, LayerContents]:
    """The contents of the named layers (build names) and every layer below them."""
    stack = settings.stack
    wanted = {n: stack.layer(n) for n in names}
    for layer in list(wanted.values()):
        wanted.update({low.env_name: low for low in lower_layers(stack, layer)})
    result = {}
    locks = Locks(stack)  # each layer's lock files read once, however many layers above ask
    for layer in wanted.values():
        env_dir = settings.env_dir(layer)
        if not (env_dir / BUILT).exists():
            raise VenvStacksError(f"{layer.env_name} is not built yet; run `venvstacks build` first")
        built = BuiltLayer.read(stack, layer, env_dir, runtime_record(settings, layer), locks)
        contents = layer_contents(built)
        result[contents.layer.install_target] = contents
    return result


def published_contents(folder: Path) -> dict[str, LayerContents]:
    """Every SBOM a publish folder holds, checked against the sha256 its metadata records."""
    result = {}
    for layer in load_published(folder):
        path = layer.archive.parent / sbom_name(layer.archive.name)
        try:
            text = read_bounded_text(path)
        except FileNotFoundError:
            raise VenvStacksError(f"{path}: missing; publish {layer.install_target} again") from None
        expected = layer.metadata.sbom_sha256
        if expected is not None and sha256_bytes(text.encode()) != expected:
            raise VenvStacksError(f"{path}: its sha256 is not the sbom_sha256 its metadata records")
        result[layer.install_target] = read_sbom(text, path)
    return result


# --- the command --------------------------------------------------------------------------------


def licenses(inv: Invocation | None, cmd: LicensesCommand) -> int:
    deny = licensing.deny_list(cmd.deny)  # first: a typo in --deny is reported before any reading
    if cmd.from_dir is not None:
        apps = _from_published(Path(cmd.from_dir), cmd.include)
    else:
        assert inv is not None
        apps = _from_build(inv, cmd.include)
    return report(apps, deny, cmd.json)


def _from_published(folder: Path, include: Sequence[str]) -> list[AppList]:
    contents = published_contents(folder)
    return [app_list(top, contents, str(folder)) for top in _chosen(contents, include, str(folder))]


def _from_build(inv: Invocation, include: Sequence[str]) -> list[AppList]:
    host = {layer.env_name for layer in buildable(inv.settings)}
    chosen = []
    for layer in inv.selected:
        if not include and layer.kind is not LayerKind.APPLICATION:
            continue
        if layer.env_name in host:
            chosen.append(layer.env_name)
        else:  # as the build says it: what is not built here has no list here
            say(f"skipping {layer.env_name}: not built on this machine")
    contents = built_contents(inv.settings, chosen)
    published = _published_if_any(inv.settings.output.publish_dir)
    by_name = {c.layer_name: c.layer.install_target for c in contents.values()}
    return [with_published(app_list(by_name[n], contents, "the build"), published) for n in chosen]


def _chosen(contents: Mapping[str, LayerContents], include: Sequence[str], where: str) -> list[str]:
    """The apps published in ``where``, or the layers ``include`` matches by either name."""
    if not include:
        return [name for name, c in contents.items() if c.layer.kind is LayerKind.APPLICATION]
    chosen = []
    for pattern in include:
        matched = [
            name
            for name, c in contents.items()
            if fnmatchcase(c.layer_name, pattern) or fnmatchcase(name, pattern)
        ]
        if not matched:
            raise VenvStacksError(f"--include {pattern!r} matches no layer published in {where}")
        chosen += [name for name in matched if name not in chosen]
    return chosen


def _published_if_any(folder: Path) -> dict[str, LayerContents]:
    """The SBOMs in the stack's publish folder, to compare with; none if nothing is published."""
    if not (folder / METADATA_DIR).is_dir():
        return {}
    try:
        return published_contents(folder)
    except VenvStacksError as exc:  # the list is still right; only the comparison is lost
        say(f"warning: not compared with the published SBOMs: {exc}")
        return {}


def report(apps: Sequence[AppList], deny: frozenset[str], as_json: bool) -> int:
    denied: list[tuple[str, Row, str]] = []
    result = []
    for app in apps:
        verdicts = [(row, licensing.check(row.licence, deny)) for row in app.rows]
        hits = [(row, v.why) for row, v in verdicts if not v.allowed]
        unchecked = [(row, v.why) for row, v in verdicts if deny and not v.checkable]
        denied += [(app.layer, row, why) for row, why in hits]
        result.append((app, hits, unchecked))
    if as_json:
        print(json.dumps([_app_json(app, hits, unchecked) for app, hits, unchecked in result], indent=2))
    else:
        print("\n\n".join(_app_text(app, hits, unchecked) for app, hits, unchecked in result))
    if denied:
        say(f"denied: {len(denied)} package(s) need a licence on the --deny list")
        return 1
    return 0


def _app_json(app: AppList, hits: list[tuple[Row, str]], unchecked: list[tuple[Row, str]]) -> dict[str, Any]:
    return {
        "app": app.layer,
        "layers": list(app.layers),
        "packages": [row.as_json() for row in app.rows],
        "unknown": [row.as_json() for row in app.rows if row.licence.source == "unknown"],
        "differs_from_published": [row.as_json() for row in app.rows if row.published is not None],
        "denied": [{**row.as_json(), "denied": why} for row, why in hits],
        "not_checkable": [{**row.as_json(), "why": why} for row, why in unchecked],
    }


def _app_text(app: AppList, hits: list[tuple[Row, str]], unchecked: list[tuple[Row, str]]) -> str:
    header = ("package", "version", "layer", "licence")
    cells = [header] + [(r.package, r.version, r.layer, r.licence.text()) for r in app.rows]
    widths = [max(len(c[i]) for c in cells) for i in range(3)]
    count = f"{len(app.rows)} package" + ("" if len(app.rows) == 1 else "s")
    lines = [f"{app.layer} ({count} in {', '.join(app.layers)})"]
    lines += ["  " + "  ".join(c[i].ljust(widths[i]) for i in range(3)) + "  " + c[3] for c in cells]
    for row in app.rows:
        what = f"{row.package} {row.version} ({row.layer})"
        if row.licence.source == "unknown":
            lines.append(f"  unknown licence: {what}: it declares none (`venvstacks docs sbom`)")
        if row.published is not None:
            lines.append(f"  differs from the published SBOM: {what}: {row.published.text()} there")
    lines += [f"  denied: {r.package} {r.version} ({r.layer}): {why}" for r, why in hits]
    lines += [f"  not checkable: {r.package} {r.version} ({r.layer}): {why}" for r, why in unchecked]
    return "\n".join(lines).rstrip()
