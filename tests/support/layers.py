"""Small but real built layers, laid out exactly as the build code leaves them.

The runtime layer is a trimmed copy of the interpreter running the tests (its binary plus
just the stdlib modules that creating a venv, byte-compiling, postinstall and the sample
app need), so layers really run, and archives stay small enough to compress in a second.
The framework and app layers are venvs made with that runtime, holding hand-written
packages instead of installed wheels.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from venvstacks.ship.publish import LayerProgress, LayerToPublish, PublishOptions, PublishResult
    from venvstacks.stack.kinds import LayerKind

PY = "{}.{}".format(*sys.version_info[:2])
PY_FULL = "{}.{}.{}".format(*sys.version_info[:3])
RUNTIME = f"cpython-{PY}"
SITE = f"lib/python{PY}/site-packages"
LOCKED_AT = "2025-01-02T03:04:05.678+00:00"
LOCK_EPOCH = 1735787045
CONFIG = "share/venv/metadata/venvstacks_layer.json"

# Run by the base interpreter itself: everything it imports while doing what our layers
# do is what the trimmed runtime must contain.
_PROBE = """
import argparse, compileall, json, os, runpy, subprocess, sys, sysconfig, tempfile, venv
import encodings.ascii, encodings.latin_1, encodings.utf_8, encodings.aliases
sysconfig.get_config_vars(); sysconfig.get_paths()
with tempfile.TemporaryDirectory() as tmp:
    venv.main([os.path.join(tmp, "v"), "--without-pip", "--symlinks"])
    compileall.compile_dir(tmp, quiet=2, workers=2)  # as postinstall: a process pool
files = [getattr(m, "__file__", None) for m in list(sys.modules.values())]
files.append(os.path.join(os.path.dirname(venv.__file__), "__main__.py"))
print(json.dumps(sorted({f for f in files if f})))
"""

_template: Path | None = None
_stack: Path | None = None


def runtime_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runtime layer folder, built once per test session; copy it, never change it."""
    global _template
    if _template is None:
        _template = _build_runtime(tmp_path_factory.mktemp("runtime-template"))
    return _template


def _build_runtime(dest: Path) -> Path:
    base = Path(sys.base_prefix)
    exe = base / "bin" / f"python{PY}"
    stdlib = Path(sysconfig.get_paths(vars={"installed_base": str(base)})["stdlib"])
    if not exe.is_file() or not (stdlib / "os.py").is_file():
        pytest.skip(f"no copyable CPython {PY} interpreter at {base}")
    probe = subprocess.run([exe, "-I", "-S", "-c", _PROBE], capture_output=True, check=True)
    lib = dest / "lib" / f"python{PY}"
    for name in json.loads(probe.stdout):
        path = Path(name)
        if path.is_relative_to(stdlib) and "site-packages" not in path.parts:
            target = lib / path.relative_to(stdlib)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    (lib / "lib-dynload").mkdir(exist_ok=True)  # landmark: Python looks for it at startup
    (dest / "bin").mkdir()
    shutil.copy2(exe, dest / "bin" / f"python{PY}")
    os.symlink(f"python{PY}", dest / "bin" / "python3")
    if b"$ORIGIN" in exe.read_bytes():  # a relocatable build finds libpython beside it
        for so in (base / "lib").glob("libpython3*.so*"):
            shutil.copy2(so, dest / "lib" / so.name, follow_symlinks=False)
    site = dest / SITE
    site.mkdir(parents=True)
    (site / "rtpkg.py").write_text("VALUE = 'runtime'\n")
    write_config(dest, "bin/python3", "bin/python3", [])
    subprocess.run([dest / "bin" / "python3", "-I", "-c", "import venv, compileall"], check=True)
    for cache in list(dest.rglob("__pycache__")):
        shutil.rmtree(cache)
    return dest


def write_config(layer: Path, python: str, base: str, pylib: list[str], **extra: Any) -> None:
    config = {
        "python": python,
        "py_version": PY_FULL,
        "base_python": base,
        "site_dir": SITE,
        "pylib_dirs": pylib,
        "dynlib_dirs": [],
        **extra,
    }
    path = layer / CONFIG
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))


APP_MODULE = """\
import json, sys
import fwextra, fwpkg, hello_support, rtpkg
print(json.dumps({
    "values": [fwpkg.VALUE, fwextra.VALUE, rtpkg.VALUE, hello_support.VALUE],
    "fwpkg": fwpkg.__file__,
    "prefix": sys.prefix,
    "base_prefix": sys.base_prefix,
    "path": sys.path,
}))
"""


@dataclass(frozen=True)
class SampleStack:
    """runtime ``cpython-3.X`` <- framework ``framework-fw`` (deployed as ``@2``) <- app."""

    build_dir: Path

    def layers(self) -> list[LayerToPublish]:
        from venvstacks.layerconfig import read_layer_config
        from venvstacks.ship.layermeta import LayerMetadata
        from venvstacks.ship.publish import LayerToPublish

        def typed(data: dict[str, Any]) -> LayerMetadata:
            return LayerMetadata.from_json(data, Path("<test metadata>"))

        def layer(name: str, data: dict[str, Any]) -> LayerToPublish:
            folder = self.build_dir / name
            return LayerToPublish(folder, typed(data), read_layer_config(folder))

        return [
            layer(RUNTIME, runtime_metadata()),
            layer("framework-fw", framework_metadata()),
            layer("app-hello", app_metadata()),
        ]


def kinds_and_names(layers: list[LayerToPublish]) -> list[tuple[LayerKind, str]]:
    """What write_stack_metadata is told: each layer's kind (by its name's prefix) and name."""
    from venvstacks.stack.kinds import LayerKind

    def kind(name: str) -> LayerKind:
        prefixed = [k for k in LayerKind if k.prefix and name.startswith(k.prefix)]
        return prefixed[0] if prefixed else LayerKind.RUNTIME

    return [(kind(la.layer_name), la.layer_name) for la in layers]


def publish_all(
    layers: list[LayerToPublish], options: PublishOptions, progress: LayerProgress | None = None
) -> list[PublishResult]:
    """Each layer, then venvstacks.json: what the publish: tasks do, one after the other."""
    from venvstacks.ship.publish import publish_layer, write_stack_metadata

    results = [publish_layer(layer, options, progress=progress) for layer in layers]
    if not options.dry_run:
        write_stack_metadata(options.output_dir, kinds_and_names(layers), options.suffix)
    return results


def _common(name: str, target: str, lock_version: int = 1) -> dict[str, Any]:
    return {
        "layer_name": name,
        "install_target": target,
        "requirements_hash": f"sha256:{name}-requirements",
        "lock_version": lock_version,
        "locked_at": LOCKED_AT,
        "runtime_layer": RUNTIME,
        "python_implementation": f"cpython@{PY_FULL}",
        "bound_to_implementation": False,
    }


def runtime_metadata() -> dict[str, Any]:
    return {**_common(RUNTIME, RUNTIME), "bound_to_implementation": True}


def framework_metadata() -> dict[str, Any]:
    return {**_common("framework-fw", "framework-fw@2", 2), "required_layers": []}


def app_metadata() -> dict[str, Any]:
    return {
        **_common("app-hello", "app-hello"),
        "required_layers": ["framework-fw@2"],
        "app_launch_module": "hello_app",
        "app_launch_module_hash": "sha256:hello-app",
        "app_support_modules": [{"name": "hello_support", "hash": "sha256:support"}],
    }


def sample_stack(tmp_path_factory: pytest.TempPathFactory, dest: Path) -> SampleStack:
    """A fresh copy at ``dest`` of a sample stack built once per session."""
    global _stack
    if _stack is None:
        template = runtime_template(tmp_path_factory)
        _stack = build_stack(tmp_path_factory.mktemp("stack") / "_build", template).build_dir
    return copy_build(_stack, dest)


def copy_build(src: Path, dest: Path) -> SampleStack:
    """Copy a build folder as if it had been built at ``dest``: absolute links move too."""
    shutil.copytree(src, dest, symlinks=True)
    for dirpath, dirnames, filenames in os.walk(dest):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            target = os.readlink(path) if path.is_symlink() else ""
            if target.startswith(f"{src}/"):
                path.unlink()
                path.symlink_to(dest / Path(target).relative_to(src))
    return SampleStack(dest)


def build_stack(build_dir: Path, template: Path) -> SampleStack:
    """Lay out ``_build``-style layers under ``build_dir``, as the build code would."""
    runtime = build_dir / RUNTIME
    shutil.copytree(template, runtime, symlinks=True)
    fw, app = build_dir / "framework-fw", build_dir / "app-hello"
    for venv in (fw, app):
        cmd = [str(runtime / "bin" / "python3"), "-m", "venv", "--without-pip", "--symlinks"]
        cmd.append(str(venv))
        subprocess.run(cmd, check=True)
        # build-only files that must never ship
        (venv / ".build-marker").write_text("build only\n")
        state = venv / "share/venv/metadata/build-state"
        state.mkdir(parents=True)
        (state / "installed.json").write_text("{}\n")
    fw_site, app_site = fw / SITE, app / SITE
    (fw_site / "fwpkg").mkdir()
    (fw_site / "fwpkg" / "__init__.py").write_text("VALUE = 'framework'\n")
    (fw_site / "fwpkg" / "data.bin").write_bytes(bytes(range(256)) * 64)
    (fw_site / "fw_extra.pth").write_text("fw_extra_dir\n")
    (fw_site / "fw_extra_dir").mkdir()
    (fw_site / "fw_extra_dir" / "fwextra.py").write_text("VALUE = 'pth'\n")
    tool = fw / "share" / "fw-tool"
    tool.write_text("#!/bin/sh\necho tool\n")
    tool.chmod(0o755)
    os.symlink(fw / "lib", fw / "share" / "abs-link-inside")
    os.symlink("../../" + RUNTIME, fw / "share" / "link-outside")
    (app_site / "hello_app.py").write_text(APP_MODULE)
    (app_site / "hello_support.py").write_text("VALUE = 'support'\n")
    subprocess.run([runtime / "bin" / "python3", "-m", "compileall", "-q", app_site], check=True)
    fw_pylib = [f"../{RUNTIME}/{SITE}"]
    app_pylib = [f"../framework-fw@2/{SITE}", f"../{RUNTIME}/{SITE}"]
    base = f"../{RUNTIME}/bin/python3"
    write_config(fw, "bin/python", base, fw_pylib)
    write_config(app, "bin/python", base, app_pylib, launch_module="hello_app")
    for venv, lower in ((fw, [runtime / SITE]), (app, [fw / SITE, runtime / SITE])):
        lines = ["from site import addsitedir"] + [f"addsitedir({str(p)!r})" for p in lower]
        (venv / SITE / "sitecustomize.py").write_text("\n".join(lines) + "\n")
    return SampleStack(build_dir)


def run_app(layer_dir: Path, module: str = "hello_app") -> dict[str, Any]:
    """Run an app with an empty environment, as a user's launcher would."""
    cmd = ["env", "-i", str(layer_dir / "bin" / "python"), "-m", module]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def tree(root: Path) -> dict[str, str]:
    """Every path below root with what it is: file contents hash, link target or dir."""
    import hashlib

    found: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[rel] = "-> " + os.readlink(path)
        elif path.is_dir():
            found[rel] = "dir"
        else:
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def republish_app_archive(published: Path, archive: Path) -> None:
    """Record a rewritten app archive's size and sha256 in venvstacks.json, as a publisher
    would: the hostile-archive tests need deploy's checks to pass so the unpacker sees it."""
    from venvstacks.fsutil import sha256_file

    meta_file = published / "__venvstacks__" / "venvstacks.json"
    meta = json.loads(meta_file.read_text())
    app = meta["layers"]["applications"][0]
    app["archive_size"] = archive.stat().st_size
    app["archive_hashes"] = {"sha256": sha256_file(archive)}
    meta_file.write_text(json.dumps(meta))
