"""Bytecode shipped in a layer's archive: ``publish --bytecode``.

By default no ``.pyc`` ships (``fsutil.is_bytecode``): ``postinstall.py`` byte-compiles on
the target. With ``--bytecode`` publish compiles every ``.py`` file of the layer's library
folder (``lib/``, Windows ``Lib/``, the folder postinstall compiles) once, with a CPython of
the layer's own X.Y, into *unchecked-hash* pycs (PEP 552): Python loads them without looking
at the source's time or size, so they stay valid after the layer is unpacked or moved, and
they hold no time stamp, so two fresh publishes write the same bytes. The layer's
``postinstall.py`` is then ``_injected/postinstall_bytecode.py``, which runs the usual script
(shipped as ``share/venv/metadata/venvstacks_postinstall.py``) but compiles only the files
that have no pyc (those that did not compile here, such as test data for another Python
version); the usual script, and so every archive without bytecode, keeps its bytes.

The compiling interpreter is the layer's own ``python`` in its build folder when the layer
is for this machine's platform, else this Python if its X.Y is the layer's; otherwise the
layer is refused in one line. Each pyc records the source's path inside the layer
(``lib/python3.11/site-packages/x.py``) as its file name, never a build path; Python puts
the real path back when it imports the module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path, PurePosixPath

from venvstacks.archive.formats import ArchiveEntry
from venvstacks.errors import VenvStacksError
from venvstacks.layerconfig import LayerConfig
from venvstacks.layout import POSTINSTALL, POSTINSTALL_BYTECODE, USUAL_POSTINSTALL
from venvstacks.platforms import major_minor, platform_tag

LIBRARY_FOLDERS = ("lib", "Lib")

# Run by the compiling interpreter (-I): reads {"out": DIR, "files": [[SOURCE, REL], ...]}
# on stdin, writes each REL's pyc below DIR, prints the pycs written (relative, POSIX).
_COMPILE = """
import importlib.util, json, os, py_compile, sys
job = json.load(sys.stdin)
mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
written = []
for source, rel in job["files"]:
    pyc = importlib.util.cache_from_source(rel).replace(os.sep, "/")
    try:
        py_compile.compile(
            source, os.path.join(job["out"], pyc), rel, doraise=True, optimize=0, invalidation_mode=mode
        )
    except (py_compile.PyCompileError, SyntaxError, ValueError, UnicodeError):
        continue  # not ours to judge: Python reports it if the module is ever imported
    written.append(pyc)
print(json.dumps(written))
"""


def compiler_for(layer_dir: Path, config: LayerConfig, target_platform: str, name: str) -> str:
    """The interpreter that compiles the layer's bytecode, or a one-line refusal."""
    version = major_minor(config.py_version)
    own = layer_dir / config.python
    if target_platform == platform_tag() and os.access(own, os.X_OK):
        return str(own)
    running = "{}.{}".format(*sys.version_info[:2])
    if sys.implementation.name == "cpython" and running == version:
        return sys.executable
    raise VenvStacksError(
        f"layer {name!r}: --bytecode needs a CPython {version} to compile its {target_platform} "
        f"bytecode, and venvstacks runs on Python {running} here; publish it without --bytecode, "
        f"or run venvstacks with a CPython {version}"
    )


def bytecode_entries(
    entries: list[ArchiveEntry], top: str, compiler: str, scratch: Path
) -> list[ArchiveEntry]:
    """Compile the library ``.py`` files among ``entries`` (named ``top/...``) into
    ``scratch``; the archive entries of the pycs and of their ``__pycache__`` folders."""
    files = []
    for entry in entries:
        rel = entry.name.removeprefix(top + "/")
        in_library = rel.split("/")[0] in LIBRARY_FOLDERS and rel.endswith(".py")
        # Links are left to postinstall, as the files publish cannot compile are.
        if in_library and not entry.source.is_symlink() and entry.source.is_file():
            files.append([str(entry.source), rel])
    if not files:
        return []
    job = json.dumps({"out": str(scratch), "files": files})
    proc = subprocess.run(
        [compiler, "-X", "utf8", "-I", "-c", _COMPILE], input=job, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise VenvStacksError(
            f"{top}: compiling its bytecode with {compiler} failed: {lines[-1] if lines else ''}"
        )
    pycs: list[str] = json.loads(proc.stdout)
    folders = sorted({str(PurePosixPath(pyc).parent) for pyc in pycs})
    return [ArchiveEntry(f"{top}/{rel}", scratch / rel) for rel in folders + pycs]


def with_bytecode_postinstall(entries: list[ArchiveEntry], top: str) -> list[ArchiveEntry]:
    """``entries`` with ``postinstall_bytecode.py`` as the layer's ``postinstall.py`` and the
    usual script beside the layer config, which it runs (the usual script's bytes, and so
    every archive published without bytecode, stay as they are)."""
    script = f"{top}/{POSTINSTALL}"
    usual = [e for e in entries if e.name == script]
    rest = [e for e in entries if e.name != script]
    moved = [ArchiveEntry(f"{top}/{USUAL_POSTINSTALL}", e.source) for e in usual]
    return [*rest, ArchiveEntry(script, POSTINSTALL_BYTECODE), *moved]
