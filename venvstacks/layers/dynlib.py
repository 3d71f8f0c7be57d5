"""A layer's shared-library folder, `share/venv/dynlib/` (Linux and macOS).

Every shared library in a layer's site-packages (auditwheel's `*.libs/` folders, delocate's
`.dylibs/`, libraries shipped inside packages such as CUDA runtimes) gets a relative
symlink there under its file name, and on Linux under its soname when that differs. Upper
layers' `bin/python` script puts these folders on `LD_LIBRARY_PATH` (macOS:
`DYLD_LIBRARY_PATH`), so an extension module in an app finds a library that a framework
below it carries. Windows layers have none: their DLLs are in `Library/bin`.

Candidates are files named like a library (Linux: `*.so`, `*.so.*`, confirmed by their ELF
header; macOS: `*.dylib`, `*.so`, confirmed as Mach-O); Python extension modules (the
layer's `EXTENSION_SUFFIXES`, abi3 included) are not libraries and are left out, as is
anything `dynlib_exclude` matches.

`plan_links` is pure apart from reading file headers; `apply_links` makes the folder.
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from venvstacks.errors import VenvStacksError
from venvstacks.layers.elf import shared_library_soname
from venvstacks.platforms import Platform


class AmbiguousLibrary(VenvStacksError):
    """Two different files would get the same link name."""

    def __init__(self, name: str, first: str, second: str, folder: PurePosixPath) -> None:
        super().__init__(
            f"{first} and {second} would both be linked as {folder}/{name}; "
            "add a pattern matching one of them to dynlib_exclude"
        )
        self.name = name
        self.paths = (first, second)


@dataclass(frozen=True)
class Library:
    path: str  # relative to the layer folder, "/"-separated
    soname: str  # "" when the library declares none

    @property
    def link_names(self) -> tuple[str, ...]:
        name = self.path.rsplit("/", 1)[-1]
        return (name,) if self.soname in ("", name) else (name, self.soname)


def exclude_pattern(glob: str) -> re.Pattern[str]:
    """The existing tool's `dynlib_exclude` meaning of one glob, as a regular expression.

    The glob must match a whole trailing part of the path (starting after a "/"): `*`
    and `?` stay inside one folder name, `**` as a whole component spans any number of
    folders, and hidden names match like any other.
    """
    parts = glob.strip("/").split("/")
    regex = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
        else:
            regex += _component(part) + ("" if last else "/")
    return re.compile(f"/{regex}\\Z")


def _component(part: str) -> str:
    out, i = "", 0
    while i < len(part):
        c = part[i]
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[" and (end := part.find("]", i + 2)) != -1:
            body = part[i + 1 : end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            out += "[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]"
            i = end
        else:
            out += re.escape(c)
        i += 1
    return out


def find_libraries(
    layer_dir: Path,
    site_dir: PurePosixPath,
    extension_suffixes: Sequence[str],
    exclude: Sequence[str],
    platform: Platform,
) -> list[Library]:
    """The shared libraries under `layer_dir/site_dir`, in path order (none on Windows,
    whose layers keep theirs in `Library/bin`, where the layers above look for them)."""
    if platform.is_windows:
        return []
    patterns = [exclude_pattern(g) for g in exclude]
    # A bare ".so" is also an extension suffix, but it is what most libraries end with.
    module_suffixes = tuple(s for s in extension_suffixes if s != ".so")
    found = []
    root = layer_dir / site_dir
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if not _named_like_library(name, platform) or name.endswith(module_suffixes):
                continue
            path = Path(dirpath, name)
            rel = path.relative_to(layer_dir).as_posix()
            if path.is_symlink() or any(p.search("/" + rel) for p in patterns):
                continue
            soname = shared_library_soname(path) if platform.is_linux else _macho_library(path)
            if soname is not None:
                found.append(Library(rel, soname))
    return found


def _named_like_library(name: str, platform: Platform) -> bool:
    return name.endswith(platform.library_suffixes) or (platform.is_linux and ".so." in name)


# Mach-O magic numbers (32/64-bit, either byte order) and universal ("fat") files.
_MACHO_MAGIC = {
    bytes.fromhex(h) for h in ("feedface", "cefaedfe", "feedfacf", "cffaedfe", "cafebabe", "bebafeca")
}


def _macho_library(path: Path) -> str | None:
    """ "" for a Mach-O file (linked under its file name, as upstream does), else None."""
    with path.open("rb") as f:
        return "" if f.read(4) in _MACHO_MAGIC else None


def plan_links(layer_dir: Path, folder: PurePosixPath, libraries: Iterable[Library]) -> dict[str, str]:
    """Link name -> library path (relative to the layer folder).

    Two files under one name are an error, unless their contents are the same (wheels
    that vendor one library each, such as numpy's and scipy's `*.libs/`, can carry the
    very same file; either copy serves).
    """
    links: dict[str, str] = {}
    for library in libraries:
        for name in library.link_names:
            previous = links.setdefault(name, library.path)
            if previous != library.path and not _same_content(layer_dir, previous, library.path):
                raise AmbiguousLibrary(name, previous, library.path, folder)
    return links


def _same_content(layer_dir: Path, first: str, second: str) -> bool:
    return filecmp.cmp(layer_dir / first, layer_dir / second, shallow=False)


def apply_links(layer_dir: Path, dynlib_dir: PurePosixPath, links: Mapping[str, str]) -> None:
    """Make `dynlib_dir` (`share/venv/dynlib`) hold exactly these relative links (no folder if none).

    Built in a temporary folder and swapped in, so an interrupted build never leaves a
    folder with half the links.
    """
    folder = layer_dir / dynlib_dir
    if _current_links(layer_dir, dynlib_dir) == dict(links):
        return
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if links:
        tmp.mkdir(parents=True)
        for name, target in sorted(links.items()):
            os.symlink(os.path.relpath(layer_dir / target, folder), tmp / name)
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    if links:
        os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def _current_links(layer_dir: Path, dynlib_dir: PurePosixPath) -> dict[str, str] | None:
    """What the folder links to now, relative to the layer folder (None: not ours)."""
    folder = layer_dir / dynlib_dir
    if not folder.is_dir():
        return {} if not folder.exists() else None
    links = {}
    for entry in folder.iterdir():
        if not entry.is_symlink():
            return None
        target = os.path.normpath(folder / os.readlink(entry))
        links[entry.name] = Path(os.path.relpath(target, layer_dir)).as_posix()
    return links
