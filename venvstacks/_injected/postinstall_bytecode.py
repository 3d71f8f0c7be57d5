"""postinstall.py of a layer published with ``venvstacks publish --bytecode``.

Usage, as for every layer: ``python postinstall.py`` with any Python 3.8 or newer. Such a
layer ships the usual script as ``share/venv/metadata/venvstacks_postinstall.py``; this one
runs it, except that byte-compiling leaves every file that already has its ``.pyc`` alone:
the archive ships unchecked-hash pycs (PEP 552), which ``compileall`` would take for stale
and rewrite with time stamps. Only the files without one are compiled (``sitecustomize.py``,
which postinstall writes, and files that did not compile at publish time).

The usual script stays the same bytes in every archive, with or without bytecode. This file
keeps to the standard library and to Python 3.8 syntax, as that one does.
"""

import compileall
import importlib.util
import os
import sys

BASE = os.path.join("share", "venv", "metadata", "venvstacks_postinstall.py")


def main():
    layer_dir = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(layer_dir, BASE)
    sys.dont_write_bytecode = True  # loading the usual script leaves no pyc of it behind
    try:
        spec = importlib.util.spec_from_file_location("venvstacks_postinstall", path)
        base = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(base)
    except (OSError, SyntaxError) as exc:
        print(f"postinstall.py: error: cannot load {path}: {exc}", file=sys.stderr)
        return 1
    base.compile_tree = compile_missing
    # Where the layer's own Python compiles (another version runs this script): this file.
    here = os.path.abspath(__file__)
    base.COMPILE_CHILD = (
        f"path = {here!r}\n"
        "with open(path, encoding='utf-8') as f: code = compile(f.read(), path, 'exec')\n"
        "exec(code, {'__name__': 'compile_child', '__file__': path})"
    )
    return base.main(layer_dir)


def compile_missing(path):
    """Compile the .py files below path that have no pyc for the running Python."""
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            source = os.path.join(dirpath, name)
            if name.endswith(".py") and not os.path.exists(importlib.util.cache_from_source(source)):
                compileall.compile_file(source, quiet=2)


if __name__ == "__main__":
    sys.exit(main())
elif __name__ == "compile_child":  # run by the COMPILE_CHILD set above: argv is [-c, lib_dir]
    compile_missing(sys.argv[1])
