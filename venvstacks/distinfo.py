"""What a built layer holds: its installed distributions, read from their ``.dist-info``.

:func:`dist_infos` reads each ``.dist-info`` folder's ``METADATA`` once, for both of its
readers: the SBOM (:func:`installed_distributions`, here) and the record of what the
packages depend on that locking the layers above reads (``lock/depmeta.py``).

For each distribution in the layer's site-packages: its name and version, the licence it
declares and where that came from, the wheel tags it was installed from (to find the wheel
in the lock) and the total size of its files as they ship (bytecode left out, as publishing
leaves it out). The licence is taken, in this order, from:

* ``License-Expression`` (PEP 639, an SPDX expression): ``source="expression"``;
* ``License ::`` classifiers, each as written: ``source="classifiers"``;
* the licence files it carries (``License-File``, else files named LICENSE, LICENCE,
  COPYING or NOTICE in its ``.dist-info``), by name: ``source="files"``;
* nothing of these: ``source="unknown"``.

The free-text ``License`` field is not used: it is prose as often as an identifier.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from importlib.metadata import Distribution, PathDistribution
from pathlib import Path
from typing import Literal

from packaging.utils import canonicalize_name

from venvstacks.fsutil import is_bytecode, read_bounded_text

LicenceSource = Literal["expression", "classifiers", "files", "unknown"]
LICENCE_SOURCES: tuple[LicenceSource, ...] = ("expression", "classifiers", "files", "unknown")
_CLASSIFIER_PREFIX = "License :: "
_LICENCE_FILE_STEMS = ("LICENSE", "LICENCE", "COPYING", "NOTICE")


@dataclass(frozen=True)
class Licence:
    """What a package declares: an SPDX expression, classifiers, file names, or nothing."""

    source: LicenceSource
    values: tuple[str, ...] = ()

    def text(self) -> str:
        """One line for people: the expression, the classifiers or files, or "unknown"."""
        if self.source == "unknown":
            return "unknown"
        joined = "; ".join(self.values)
        return f"files: {joined}" if self.source == "files" else joined


UNKNOWN = Licence("unknown")


@dataclass(frozen=True)
class Installed:
    name: str  # canonical (PEP 503)
    version: str
    licence: Licence
    size: int  # bytes of its files as shipped
    wheel_tags: frozenset[str]  # from its WHEEL file: which of the lock's wheels it came from


@dataclass(frozen=True)
class DistInfo:
    """One ``.dist-info`` folder and its ``METADATA`` headers, read once."""

    path: Path
    metadata: Message  # the headers (the stdlib's parser: packaging.metadata imports far slower)


def dist_infos(site: Path) -> list[DistInfo]:
    """Every ``*.dist-info`` folder in ``site`` with a readable ``METADATA`` (a folder
    without one is no distribution, whatever it is called), by folder name."""
    found = []
    for info in sorted(site.glob("*.dist-info")):
        try:
            text = read_bounded_text(info / "METADATA")
        except (OSError, ValueError):
            continue
        found.append(DistInfo(info, HeaderParser().parsestr(text)))
    return found


def installed_distributions(layer_dir: Path, site_dir: str) -> list[Installed]:
    """Every distribution installed in ``layer_dir/site_dir``, by name."""
    found: dict[str, Installed] = {}
    for info in dist_infos(layer_dir / site_dir):
        meta = info.metadata
        name = next(iter(meta.get_all("Name") or ()), "")
        if not name:
            continue
        found[canonicalize_name(name)] = Installed(
            name=canonicalize_name(name),
            version=str(meta["Version"]),
            licence=declared_licence(meta, info.path),
            size=_files_size(PathDistribution(info.path), layer_dir),  # from its RECORD
            wheel_tags=_wheel_tags(info.path),
        )
    return [found[name] for name in sorted(found)]


def declared_licence(meta: Message, info: Path) -> Licence:
    # get_all, not [...]: a missing field warns, then raises, on newer Pythons.
    expression = " ".join(meta.get_all("License-Expression") or ()).strip()
    if expression:
        return Licence("expression", (expression,))
    classifiers = tuple(
        sorted(
            c.strip()[len(_CLASSIFIER_PREFIX) :]
            for c in meta.get_all("Classifier") or []
            if c.strip().startswith(_CLASSIFIER_PREFIX)
        )
    )
    if classifiers:
        return Licence("classifiers", classifiers)
    files = tuple(meta.get_all("License-File") or ()) or _licence_files(info)
    if files:
        return Licence("files", tuple(sorted(files)))
    return UNKNOWN


def _licence_files(info: Path) -> tuple[str, ...]:
    names = []
    for path in sorted(info.rglob("*")):
        if path.is_file() and path.name.upper().startswith(_LICENCE_FILE_STEMS):
            names.append(path.relative_to(info).as_posix())
    return tuple(names)


def _files_size(dist: Distribution, layer_dir: Path) -> int:
    root = os.path.abspath(layer_dir)
    total = 0
    for file in dist.files or ():
        path = os.path.abspath(str(file.locate()))
        # Scripts sit outside site-packages but inside the layer; nothing outside it ships.
        if is_bytecode(os.path.basename(path)) or os.path.commonpath([root, path]) != root:
            continue
        try:
            total += os.lstat(path).st_size
        except FileNotFoundError:
            continue  # listed in RECORD but removed since (e.g. by a postinstall step)
    return total


def _wheel_tags(info: Path) -> frozenset[str]:
    try:
        text = (info / "WHEEL").read_text(encoding="utf-8")
    except OSError:
        return frozenset()
    return frozenset(line.partition(":")[2].strip() for line in text.splitlines() if line.startswith("Tag:"))
