"""A layer's file manifest: every file, folder and link its archive holds, with hashes.

Publishing writes it into each archive as ``<layer>/share/venv/metadata/venvstacks_files.json``
(so the layer carries it wherever it is unpacked, by ``venvstacks deploy`` or by hand) and
records its sha256 in the layer's metadata as ``files_manifest_sha256``; the archive's own
sha256 covers it too. ``venvstacks verify`` compares a deployed layer with it.

Entries are keyed by the path below the layer folder; files carry their sha256, size and
whether they are executable (``mode`` 0o755 or 0o644, as the archive stores them), links
their target. The manifest does not list itself.

What ``postinstall.py`` writes is not in any archive and may differ per machine; verify
accepts exactly these (:func:`written_by_postinstall`): ``pyvenv.cfg``,
``<site_dir>/sitecustomize.py``, the layer's ``python`` link (or ``python_``, when
``python`` is the shared-library script) and its ``python3`` / ``python3.X`` aliases
beside it, and ``__pycache__`` folders with their ``.pyc`` files.
"""

from __future__ import annotations

import json
import os
import posixpath
import stat
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from venvstacks.archive.formats import ArchiveEntry, normal_mode
from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import load_json_text, sha256_bytes, sha256_file
from venvstacks.jsondoc import Fields
from venvstacks.layerconfig import LayerConfig, read_layer_config
from venvstacks.layout import FILES_MANIFEST
from venvstacks.platforms import cores, major_minor

FORMAT = 1


@dataclass(frozen=True)
class Entry:
    kind: str  # "dir", "file" or "symlink" ("special" on disk: never published)
    mode: int = 0  # files: 0o755 or 0o644
    size: int = 0
    sha256: str = ""
    target: str = ""  # symlinks

    def describe(self) -> str:
        if self.kind == "symlink":
            return f"a link to {self.target!r}"
        if self.kind == "file":
            return f"a file ({'executable' if self.mode & 0o111 else 'not executable'})"
        return "a folder" if self.kind == "dir" else "a device, fifo or socket"


Manifest = dict[str, Entry]
_KINDS = ("dir", "file", "symlink")
_FIX = "the layer is damaged or was edited; deploy it again"


@dataclass(frozen=True)
class FilesManifest:
    """The document, `venvstacks_files.json`: entries by path below the layer folder."""

    entries: Mapping[str, Entry]

    def text(self) -> str:
        """As the archive stores it: sorted, one entry per line, no defaults."""
        rows = {rel: {k: v for k, v in asdict(e).items() if v} for rel, e in sorted(self.entries.items())}
        lines = ",\n".join(
            f"  {json.dumps(rel)}: {json.dumps(row, sort_keys=True)}" for rel, row in rows.items()
        )
        return f'{{"format": {FORMAT}, "entries": {{\n{lines}\n}}}}\n'

    @classmethod
    def from_json(cls, data: Any, path: Path) -> FilesManifest:
        f = Fields.of(data, path, fix=_FIX)
        if f.integer("format") != FORMAT:
            raise f.fail("format", f"is {f.data.get('format')!r}, expected {FORMAT}")
        rows = f.mapping("entries")
        if rows is None:
            raise f.fail("entries", "is missing")
        return cls(
            {str(rel): _entry(Fields.of(row, path, fix=_FIX, within=rel)) for rel, row in rows.items()}
        )


def _entry(f: Fields) -> Entry:
    unknown = set(f.data) - {"kind", "mode", "size", "sha256", "target"}
    if unknown:
        raise f.fail(None, f"has unknown fields {sorted(unknown)}")
    kind = f.text("kind")
    if kind not in _KINDS:
        raise f.fail("kind", f"must be one of {', '.join(_KINDS)}, not {kind!r}")
    return Entry(
        kind,
        f.integer("mode") or 0,
        f.integer("size") or 0,
        f.opt_text("sha256") or "",
        f.opt_text("target") or "",
    )


# --- publishing side ---------------------------------------------------------------------


def archive_manifest(entries: Iterable[ArchiveEntry], top: str) -> Manifest:
    """The manifest of the archive members ``entries`` (named ``top/...``)."""
    members: dict[str, ArchiveEntry] = {}
    for entry in entries:
        rel = entry.name.removeprefix(top).lstrip("/")
        if rel:  # the top folder itself is the layer folder
            members[rel] = entry
    return _describe_all({rel: _archived(e) for rel, e in members.items()})


def _archived(entry: ArchiveEntry) -> tuple[str, Path]:
    st = os.lstat(entry.source)
    if stat.S_ISLNK(st.st_mode):
        return "symlink:" + (entry.link_target or os.readlink(entry.source)), entry.source
    return ("dir" if stat.S_ISDIR(st.st_mode) else "file"), entry.source


def manifest_text(manifest: Mapping[str, Entry]) -> str:
    """The manifest as the archive stores it (see `FilesManifest.text`)."""
    return FilesManifest(manifest).text()


def manifest_sha256(text: str) -> str:
    return sha256_bytes(text.encode("utf-8"))


# --- deployed side -----------------------------------------------------------------------


def read_manifest(layer_dir: Path) -> tuple[Manifest, str]:
    """The manifest a deployed layer carries, and the sha256 of its bytes."""
    path = layer_dir / FILES_MANIFEST
    try:
        raw = path.read_bytes()
        data = load_json_text(raw.decode("utf-8"))
    except FileNotFoundError:
        raise VenvStacksError(f"{path}: missing (published before file manifests existed?)") from None
    except (OSError, ValueError) as exc:
        raise VenvStacksError(f"{path}: not a valid file manifest ({exc})") from None
    return dict(FilesManifest.from_json(data, path).entries), sha256_bytes(raw)


def scan_layer(layer_dir: Path, expected: Mapping[str, Entry]) -> Manifest:
    """What is on disk now, as far as comparing it with the manifest ``expected`` needs: a
    file's sha256 only where ``expected`` lists a file of its size (any other file differs
    whatever it holds, and postinstall's .pyc files are in no manifest)."""
    found: Manifest = {}
    hashed: dict[str, tuple[str, Entry]] = {}  # the files whose sha256 matters: their paths
    folders = [(str(layer_dir), "")]
    while folders:
        folder, prefix = folders.pop()
        with os.scandir(folder) as entries:
            for item in entries:
                rel = prefix + item.name
                if item.is_symlink():
                    found[rel] = Entry("symlink", target=os.readlink(item.path))
                elif item.is_dir(follow_symlinks=False):
                    # scandir does not descend into symlinked folders: their contents are not the layer's
                    found[rel] = Entry("dir")
                    folders.append((item.path, rel + "/"))
                elif item.is_file(follow_symlinks=False):
                    st = item.stat(follow_symlinks=False)
                    found[rel] = entry = Entry("file", normal_mode(st.st_mode), st.st_size)
                    want = expected.get(rel)
                    if want is not None and want.kind == "file" and want.size == st.st_size:
                        hashed[rel] = (item.path, entry)
                else:
                    found[rel] = Entry("special")
    files = list(hashed.values())
    hashes = _sha256_all([path for path, _ in files], [entry.size for _, entry in files])
    for rel, (_, entry), sha256 in zip(hashed, files, hashes, strict=True):
        found[rel] = Entry("file", entry.mode, entry.size, sha256)
    found.pop(FILES_MANIFEST.as_posix(), None)
    return found


def _describe_all(items: Mapping[str, tuple[str, Path]]) -> Manifest:
    files = [rel for rel, (kind, _) in items.items() if kind == "file"]
    stats = [items[rel][1].stat() for rel in files]
    hashes = _sha256_all([items[rel][1] for rel in files], [st.st_size for st in stats])
    hashed = {
        rel: Entry("file", normal_mode(st.st_mode), st.st_size, sha256)
        for rel, st, sha256 in zip(files, stats, hashes, strict=True)
    }
    result: Manifest = {}
    for rel, (kind, _) in items.items():
        if kind == "file":
            result[rel] = hashed[rel]
        elif kind.startswith("symlink:"):
            result[rel] = Entry("symlink", target=kind.removeprefix("symlink:"))
        else:
            result[rel] = Entry(kind)
    return result


# A file this big is hashed on the pool (hashlib releases the GIL while it hashes it); a
# smaller one, most of a layer's files, in the calling thread, where handing it to a thread
# would cost more than hashing it (a no-op redeploy's check took twice as long that way).
_POOLED_BYTES = 256 * 1024


def _sha256_all(paths: Sequence[str | Path], sizes: Sequence[int]) -> list[str]:
    """The sha256 of each file, big ones on every core."""
    big = [i for i, size in enumerate(sizes) if size >= _POOLED_BYTES]
    if not big:
        return [sha256_file(p) for p in paths]
    found: dict[int, str] = {}
    with ThreadPoolExecutor(max_workers=cores()) as pool:
        pooled = pool.map(lambda i: sha256_file(paths[i]), big)
        found.update((i, sha256_file(p)) for i, p in enumerate(paths) if sizes[i] < _POOLED_BYTES)
        found.update(zip(big, pooled, strict=True))
    return [found[i] for i in range(len(paths))]


# --- comparing ---------------------------------------------------------------------------


def written_by_postinstall(rel: str, config: LayerConfig) -> bool:
    """Whether postinstall.py may have written ``rel`` (see the module docstring)."""
    parts = rel.split("/")
    if "__pycache__" in parts:
        return parts[-1] == "__pycache__" or rel.endswith(".pyc")
    if config.is_runtime:
        return False  # a runtime layer: postinstall only byte-compiles it
    python = config.python
    bin_dir = posixpath.dirname(python)
    version = major_minor(config.py_version)
    # python_: the interpreter link run by the bin/python script (layers/pywrapper.py)
    links = {python, f"{python}_", f"{bin_dir}/python3", f"{bin_dir}/python{version}"}
    return rel in {"pyvenv.cfg", f"{config.site_dir}/sitecustomize.py"} or rel in links


def check_deployed(layer_dir: Path, anchor: str | None, source: str) -> tuple[list[str], int]:
    """What differs between a deployed layer and what was published (its manifest, whose
    sha256 ``anchor`` comes from ``source``; None: the manifest it carries is trusted), and
    how many entries were compared. `verify` reports it; `deploy` repairs what it finds."""
    try:
        config = read_layer_config(layer_dir)
        manifest, manifest_hash = read_manifest(layer_dir)
    except VenvStacksError as exc:
        return [str(exc)], 0
    problems = []
    if anchor is not None and anchor != manifest_hash:
        problems.append(f"{FILES_MANIFEST.as_posix()}: not the one in {source}")
    problems += differences(manifest, scan_layer(layer_dir, manifest), config)
    return problems, len(manifest)


def differences(expected: Mapping[str, Entry], actual: Mapping[str, Entry], config: LayerConfig) -> list[str]:
    """What differs between a layer's manifest and its folder, one short phrase each, by path."""
    found: list[str] = []
    for rel in sorted(expected.keys() | actual.keys()):
        want, have = expected.get(rel), actual.get(rel)
        if want == have or (want is not None and have is not None and _same(want, have)):
            continue
        if written_by_postinstall(rel, config) and (want is None or want.kind == "symlink"):
            continue
        if have is None:
            found.append(f"{rel}: missing")
        elif want is None:
            found.append(f"{rel}: not published ({have.describe()})")
        elif want.kind != have.kind or want.target != have.target:
            found.append(f"{rel}: {have.describe()}, published as {want.describe()}")
        elif want.sha256 != have.sha256 or want.size != have.size:
            found.append(f"{rel}: content differs")
        else:
            found.append(f"{rel}: {have.describe()}, published as {want.describe()}")
    return found


def _same(want: Entry, have: Entry) -> bool:
    if want.kind == "dir":
        return have.kind == "dir"  # folder modes follow the umask of whoever unpacked them
    return want == have
