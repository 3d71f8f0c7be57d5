"""What counts as an application module's files: the one definition.

Hashing (doit file_dep, lock version inputs, published metadata), copying into the app
layer and therefore publishing all use `module_files`, so they always agree on what a
launch or support module is made of: everything under it but byte code, `.git*` entries and
what the committed `.gitignore` files ignore (read here with git's rules, no git needed).

A module path written in the stack file is trusted as far as the code it launches; what is
found inside a module folder is not, so a walk refuses, in one line, what could read outside
the module or never end (links leading out, FIFOs, devices, loops, oversized files). The
rules in full: docs/stack-file.md (modules) and docs/security.md.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import is_bytecode, sha256_file
from venvstacks.lazy import lazy_modules
from venvstacks.stack import ignoreverdicts, verdicts

if TYPE_CHECKING:
    import pathspec
else:
    # Only a module folder with ignore files needs it; a no-op run of most stacks never does.
    (pathspec,) = lazy_modules("pathspec")

# Generous for source code, but stops a module from filling the disk or the archive.
MAX_FILE_BYTES = 256 * 1024 * 1024


class ModuleError(VenvStacksError):
    """A module holds something that cannot be copied safely; the message is one line."""


@dataclass(frozen=True, order=True)
class ModuleFile:
    """One entry of a module: a regular file, a folder, or a symlink kept as a link."""

    rel: str  # posix path inside the module ("" for the module itself)
    source: Path
    link: str | None = None  # the relative target of a kept symlink
    is_dir: bool = False


def module_name(path: Path) -> str:
    """The name a launch or support module is imported by: a .py file's stem, a package's
    folder name. Decided by the path alone (a missing path too), as the existing venvstacks
    does, so that two modules of one name are reported before either is looked for."""
    return path.stem if path.suffix == ".py" and not path.is_dir() else path.name


def module_files(module: Path, root: Path) -> list[ModuleFile]:
    """The module's entries, sorted; raises ModuleError for anything unsafe.

    `module` is the path as the stack file gives it (made absolute, not resolved), `root`
    the stack folder. A single-file module gives one entry with rel "".
    """
    root = Path(os.path.realpath(root))
    real = Path(_resolved(module, module))
    if real == root or real in root.parents:
        raise ModuleError(f"{module}: holds the stack folder ({root}); point at a module inside it")
    if not real.is_dir():
        _check_regular(real, module)
        return [ModuleFile("", real)]
    ignore = _GitIgnores(ignore_root(real, root))
    entries: list[ModuleFile] = []
    for dirpath, dirnames, filenames in os.walk(real):
        here = Path(dirpath)
        ignore.enter(here)
        kept_dirs: list[str] = []
        for name in sorted(dirnames + filenames):
            path = here / name
            rel = path.relative_to(real).as_posix()
            st = os.lstat(path)
            is_dir = stat.S_ISDIR(st.st_mode)
            if _skipped(name) or ignore.ignored(path, is_dir):
                continue
            if stat.S_ISLNK(st.st_mode):
                entries.append(ModuleFile(rel, path, link=_kept_link(path, real)))
            elif is_dir:
                kept_dirs.append(name)
                entries.append(ModuleFile(rel, path, is_dir=True))
            else:
                _check_regular(path, path)
                entries.append(ModuleFile(rel, path))
        dirnames[:] = kept_dirs  # never walks into links or ignored folders
    return sorted(entries)


def module_hash(module: Path, root: Path) -> str:
    """A module's content hash: names and contents of its files, never mtimes."""
    entries = module_files(module, root)
    if len(entries) == 1 and entries[0].rel == "":
        return "sha256:" + sha256_file(entries[0].source)
    h = hashlib.sha256()
    for entry in entries:
        if entry.is_dir:
            continue
        digest = f"link:{entry.link}" if entry.link is not None else sha256_file(entry.source)
        h.update(entry.rel.encode() + b"\0" + digest.encode() + b"\0")
    return "sha256:" + h.hexdigest()


def module_inputs(module: Path, root: Path) -> list[Path]:
    """The regular files whose contents make the module (doit's file_dep)."""
    return [e.source for e in module_files(module, root) if e.link is None and not e.is_dir]


def copy_module(module: Path, root: Path, dest: Path) -> None:
    """Copy the module to `dest` (a new path) exactly as `module_files` lists it."""
    entries = module_files(module, root)
    if entries and entries[0].rel == "":
        _copy_regular(entries[0].source, dest)
        return
    dest.mkdir()
    for entry in entries:  # sorted, so a folder comes before what it holds
        target = dest / entry.rel
        if entry.link is not None:
            os.symlink(entry.link, target)
        elif entry.is_dir:
            target.mkdir()
        else:
            _copy_regular(entry.source, target)


def _copy_regular(source: Path, target: Path) -> None:
    # O_NOFOLLOW: a file swapped for a link after the walk is refused, not followed.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(source, flags)
    with os.fdopen(fd, "rb") as src:
        if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
            raise ModuleError(f"{source}: is not a regular file; remove it from the module")
        with open(target, "xb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    os.chmod(target, stat.S_IMODE(os.stat(source).st_mode) | 0o644)


def _skipped(name: str) -> bool:
    return is_bytecode(name) or name.startswith(".git")


def is_outside(module: Path, root: Path) -> bool:
    """Whether a module path (as written, made absolute) leads out of the stack folder."""
    return not _inside(os.path.realpath(module), os.path.realpath(root))


def ignore_root(folder: Path, root: Path) -> Path:
    """Where the `.gitignore` files that decide about `folder` (real) start: its git
    repository's root, else the stack folder `root` (real) if it holds `folder`, else
    `folder` itself."""
    for candidate in (folder, *folder.parents):
        if os.path.lexists(candidate / ".git"):
            return candidate
    return root if _inside(str(folder), str(root)) else folder


def _resolved(path: Path, shown: Path) -> str:
    """Where `path` really is; it must exist."""
    try:
        return os.path.realpath(path, strict=True)
    except OSError as exc:
        reason = "is a symlink loop" if exc.errno == errno.ELOOP else f"cannot be resolved ({exc.strerror})"
        raise ModuleError(f"{shown}: {reason}; remove it from the module") from None


def _kept_link(link: Path, module: Path) -> str:
    """A symlink's target, relative to its folder, if it stays inside the module."""
    real = _resolved(link, link)
    if not _inside(real, str(module)):
        raise ModuleError(
            f"{link}: a symlink pointing outside its module (to {real}); replace it with the file itself"
        )
    _check_regular_or_dir(Path(real), link)
    return os.path.relpath(real, link.parent)


def _check_regular(path: Path, shown: Path) -> None:
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ModuleError(f"{shown}: is a FIFO, socket or device, not a file; remove it from the module")
    if st.st_size > MAX_FILE_BYTES:
        raise ModuleError(
            f"{shown}: {st.st_size} bytes is over the {MAX_FILE_BYTES} byte limit for module files"
        )


def _check_regular_or_dir(path: Path, shown: Path) -> None:
    if not path.is_dir():
        _check_regular(path, shown)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class _GitIgnores:
    """The `.gitignore` files from `root` (see `ignore_root`) down to the folder being walked.

    As git: patterns are relative to their file's folder, a deeper file overrides a
    shallower one, and an ignored folder is not entered (its contents stay ignored).
    A verdict decided before for the same `.gitignore` texts is taken as it was
    (`ignoreverdicts`, `verdicts`); pathspec is loaded only to decide a new one.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.texts: dict[Path, str | None] = {}
        self.specs: dict[Path, pathspec.GitIgnoreSpec] = {}
        self.verdicts = verdicts.current()

    def enter(self, folder: Path) -> None:
        for parent in (*reversed(folder.relative_to(self.root).parents), folder.relative_to(self.root)):
            self._load(self.root / parent)

    def _load(self, folder: Path) -> None:
        if folder in self.texts:
            return
        path = folder / ".gitignore"
        text = None
        if path.is_file() and not path.is_symlink():
            if path.stat().st_size > MAX_FILE_BYTES:
                raise ModuleError(f"{path}: too big for a .gitignore")
            text = path.read_text(encoding="utf-8", errors="replace")
        self.texts[folder] = text

    def ignored(self, path: Path, is_dir: bool) -> bool:
        chain = list(_chain(self.root, path.parent))
        texts = [self.texts.get(folder) for folder in chain]
        if all(text is None for text in texts):
            return False
        digests = [ignoreverdicts.text_digest(text) for text in texts]
        key = ignoreverdicts.key(path.relative_to(self.root).as_posix(), is_dir, digests)
        verdict = self.verdicts.get(key)
        if verdict is None:
            verdict = self._decide(path, is_dir, chain)
            self.verdicts.add(key, verdict)
        return verdict

    def _decide(self, path: Path, is_dir: bool, chain: list[Path]) -> bool:
        verdict = False
        for folder in chain:
            text = self.texts.get(folder)
            if text is None:
                continue
            if folder not in self.specs:
                self.specs[folder] = pathspec.GitIgnoreSpec.from_lines(text.splitlines())
            rel = path.relative_to(folder).as_posix() + ("/" if is_dir else "")
            include = self.specs[folder].check_file(rel).include
            if include is not None:
                verdict = include
        return verdict


def _chain(root: Path, folder: Path) -> Iterator[Path]:
    """The folders from root down to `folder`, shallowest first."""
    rel = folder.relative_to(root)
    yield root
    for part_count in range(1, len(rel.parts) + 1):
        yield root.joinpath(*rel.parts[:part_count])
