"""Finish a deployed venvstacks layer on the machine it was unpacked on.

Usage: ``python postinstall.py`` with any Python 3.8 or newer, from any folder. The layer is
the folder this script lives in; its peers (runtime, frameworks) sit beside it in the same
deployment folder. Run it again after moving the deployment folder: the files it writes
hold absolute paths, and nothing else in a layer does.

What it does, driven by ``share/venv/metadata/venvstacks_layer.json``:

* for layered environments (``python`` differs from ``base_python``): writes ``pyvenv.cfg``
  and ``<site_dir>/sitecustomize.py`` (which adds the lower layers' site-packages with
  ``site.addsitedir`` so their ``.pth`` files work too). On Linux and macOS it also points
  the layer's interpreter at the runtime with a relative symlink: when ``bin/python`` is the
  script that puts the lower layers' shared-library folders (``dynlib_dirs``) on
  ``LD_LIBRARY_PATH`` (macOS: ``DYLD_LIBRARY_PATH``), the link is ``bin/python_``, which the
  script runs; otherwise it is ``bin/python`` itself. ``python3`` and ``python3.X`` link to
  ``bin/python`` either way. On Windows ``Scripts/python.exe`` is already a copy of the
  venv launcher (no links), and ``sitecustomize.py`` also adds each lower layer's
  ``Library/bin`` with ``os.add_dll_directory``, so extension modules find their DLLs;
* for every layer: byte-compiles its library folder (``lib/``, on Windows ``Lib/``) with
  the layer's own Python version, one process per core.

Which system it is on is decided here, on the target (``os.name``), never at build time.

Paths are made absolute without resolving symlinks, and any path that leaves the
deployment folder is refused (one line on stderr, exit status 1).

This file is copied into every layer and must keep to the standard library and to Python
3.8 syntax: the target machine may have nothing else.
"""

import compileall
import json
import os
import subprocess
import sys

CONFIG = os.path.join("share", "venv", "metadata", "venvstacks_layer.json")


class Refused(Exception):
    pass


def main(layer_dir=None, windows=None):
    """Finish the layer in layer_dir (default: this script's folder). windows=None: as the
    running system says; tests pass True or False to simulate the other systems."""
    layer_dir = layer_dir or os.path.dirname(os.path.abspath(__file__))
    deploy_dir = os.path.dirname(layer_dir)
    windows = os.name == "nt" if windows is None else windows
    try:
        with open(os.path.join(layer_dir, CONFIG), encoding="utf-8") as f:
            config = json.load(f)
        layer = Layer(layer_dir, deploy_dir, config, windows)
        if layer.is_venv:
            if not windows:  # Windows cannot be relied on for symlinks; python.exe is a copy
                layer.link_python()
            layer.write_pyvenv_cfg()
            layer.write_sitecustomize()
        layer.compile_lib()
    except Refused as exc:
        return fail(str(exc))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return fail(f"{type(exc).__name__}: {exc}")
    return 0


def fail(message):
    print("postinstall.py: error: " + message.replace("\n", " "), file=sys.stderr)
    return 1


class Layer:
    def __init__(self, layer_dir, deploy_dir, config, windows):
        self.dir = layer_dir
        self.deploy_dir = deploy_dir
        self.windows = windows
        self.py_version = str(config["py_version"])
        self.is_venv = config["python"] != config["base_python"]
        # Everything is checked before anything is written.
        self.python = self.resolve(config["python"], own=True)
        self.base_python = self.resolve(config["base_python"])
        self.site_dir = self.resolve(config["site_dir"], own=True)
        self.pylib_dirs = [self.resolve(p) for p in config["pylib_dirs"]]
        self.dynlib_dirs = [self.resolve(p) for p in config.get("dynlib_dirs", [])]

    def resolve(self, rel, own=False):
        """Absolute, normalised, but symlinks are left alone: the deployment folder may
        itself be reached through a symlink, and that is the path users see."""
        path = os.path.normpath(os.path.join(self.dir, rel))
        root = self.dir if own else self.deploy_dir
        if os.path.commonpath([root, path]) != root or path == root:
            where = "its layer folder" if own else "the deployment folder " + root
            raise Refused(f"{rel!r} in {CONFIG} leaves {where}")
        return path

    def link_python(self):
        bin_dir = os.path.dirname(self.python)
        # A regular file is the library-path script, which runs the interpreter as python_.
        wrapped = os.path.isfile(self.python) and not os.path.islink(self.python)
        interpreter = self.python + "_" if wrapped else self.python
        # Relative, so the link survives moving the whole deployment folder.
        replace_symlink(os.path.relpath(self.base_python, bin_dir), interpreter)
        name = os.path.basename(self.python)
        major_minor = ".".join(self.py_version.split(".")[:2])
        for alias in ("python3", "python" + major_minor):
            if alias != name:
                replace_symlink(name, os.path.join(bin_dir, alias))

    def write_pyvenv_cfg(self):
        lines = [
            "home = " + os.path.dirname(self.base_python),
            "include-system-site-packages = false",
            "version = " + self.py_version,
            "executable = " + self.base_python,
        ]
        write_text(os.path.join(self.dir, "pyvenv.cfg"), "\n".join(lines) + "\n")

    def write_sitecustomize(self):
        lines = [
            "# Written by postinstall.py: makes the lower layers importable.",
            "# The paths are absolute: run postinstall.py again after moving the layers.",
            "from site import addsitedir",
        ]
        lines += [f"addsitedir({p!r})" for p in self.pylib_dirs]
        if self.windows:
            # A folder added later (a layer deployed after this one) needs postinstall again.
            lines.append("from os import add_dll_directory")
            for path in self.dynlib_dirs:
                call = f"add_dll_directory({path!r})"
                lines.append(call if os.path.isdir(path) else "# not found: " + call)
        write_text(os.path.join(self.site_dir, "sitecustomize.py"), "\n".join(lines) + "\n")

    def compile_lib(self):
        lib_dir = os.path.join(self.dir, "Lib" if self.windows else "lib")
        if not os.path.isdir(lib_dir):
            return
        # .pyc files are only useful to the layer's own Python version.
        running = "{}.{}.".format(*sys.version_info[:2])
        if sys.implementation.name == "cpython" and self.py_version.startswith(running):
            compile_tree(lib_dir)
            return
        if not os.path.exists(self.base_python):
            warning = f"{self.base_python} not found; {lib_dir} left uncompiled"
            print("postinstall.py: warning: " + warning, file=sys.stderr)
            return
        cmd = [self.base_python, "-X", "utf8", "-I", "-c", COMPILE_CHILD, lib_dir]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            out = proc.stdout.decode("utf-8", "replace").strip().splitlines()
            detail = out[-1] if out else f"exit status {proc.returncode}"
            raise Refused(f"byte-compiling with {self.base_python} failed: {detail}")


def compile_tree(path):
    # Files that do not compile (test data, code for other Python versions) are not ours
    # to judge: Python compiles them, or fails on them, at import time.
    # workers=0: one process per core (compileall's own pool). Where processes cannot be
    # pooled (no working semaphores, as in some sandboxes), compile in this process.
    try:
        compileall.compile_dir(path, maxlevels=sys.getrecursionlimit(), quiet=2, workers=0)
    except (ImportError, OSError, NotImplementedError, RuntimeError):
        compileall.compile_dir(path, maxlevels=sys.getrecursionlimit(), quiet=2)


# compile_tree() for a child process running the layer's own Python (any version >= 3.8).
COMPILE_CHILD = """
import compileall, sys
args = dict(maxlevels=sys.getrecursionlimit(), quiet=2)
try:
    compileall.compile_dir(sys.argv[1], workers=0, **args)
except (ImportError, OSError, NotImplementedError, RuntimeError):
    compileall.compile_dir(sys.argv[1], **args)
"""


def replace_symlink(target, path):
    if os.path.islink(path) and os.readlink(path) == target:
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    os.symlink(target, tmp)
    os.replace(tmp, path)


def write_text(path, text):
    # An unchanged file keeps its mtime, so its .pyc stays valid and reruns are no-ops.
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    except OSError:
        pass
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
