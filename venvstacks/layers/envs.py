"""Creating layer environments and installing their locked packages.

A layer folder is complete only when its `installed.json` manifest exists: the manifest is
deleted before any change and written (atomically) last, so a killed install never looks
done. The manifest holds only what follows from the inputs, so an identical reinstall does
not wake the tasks above it.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import tomli_w

from venvstacks.errors import VenvStacksError
from venvstacks.fsutil import write_atomic
from venvstacks.layers import crossvenv
from venvstacks.layers.state import EnvIdentity, Installed
from venvstacks.layout import INSTALLED
from venvstacks.lazy import lazy_modules
from venvstacks.lock import depmeta, pylock
from venvstacks.lock.pylockdoc import Pylock
from venvstacks.platforms import Platform
from venvstacks.runtimes.cache import install_runtime
from venvstacks.runtimes.record import CacheEntry, RuntimeRecord
from venvstacks.stack.targets import Target
from venvstacks.tools import run, uv_bin

if TYPE_CHECKING:
    from packaging import tags
else:
    # Wheel tags are read after an install only, never in a no-op run.
    (tags,) = lazy_modules("packaging.tags")


@dataclass(frozen=True)
class Install:
    """How a layer's locked packages are installed: for which target, with which uv settings."""

    target: Target
    uv_settings: Mapping[str, Any]  # the stack's network and install settings (a uv.toml)
    # Cross-building: this machine's Python, which uv runs in place of the target's own;
    # packages then go straight into the layer's site-packages (uv's --target).
    cross_python: Path | None = None
    report: Callable[[str], None] = lambda _: None  # what uv says it is doing, as it says it

    def progress_line(self, line: str) -> bool:
        """Whether ``line`` is one of uv's progress lines; if so, it is reported."""
        if not _UV_PROGRESS.match(line):
            return False
        self.report(f"uv: {line}")
        return True


# What uv prints as it goes, without --quiet and without a terminal: counts, downloads with
# their sizes, and one line per package added (+), removed (-) or changed (~).
_UV_PROGRESS = re.compile(
    r"(Resolved|Prepared|Installed|Uninstalled|Audited|Checked|Downloading|Downloaded|Building|Built"
    r"|Using|Bytecode compiled) |[+~-] \S+(==|@| @ )"
)


def install_runtime_layer(
    runtime: CacheEntry, env_dir: Path, lock_path: Path, install: Install, log: Callable[[str], None]
) -> None:
    """Unpack the runtime into its layer folder (if needed) and sync its own packages."""
    record = runtime.record
    identity = EnvIdentity("runtime", record, install.target.describe())
    _start(env_dir)
    if EnvIdentity.read(env_dir) != identity:
        _discard(env_dir)
        log(f"unpacking {record.implementation} {record.version} into {env_dir.name}")
        install_runtime(runtime, env_dir)
        identity.write(env_dir)
    if _has_work(env_dir, record.version, lock_path, install):
        _sync(env_dir, record.version, lock_path, install, python=install.target.facts.runtime_python)
    check_wheel_tags(env_dir, record.version, install.target)
    _finish(env_dir, identity, lock_path, install.target.facts.site_packages(record.version))


def install_venv_layer(
    runtime: RuntimeRecord,
    runtime_dir: Path,
    env_dir: Path,
    lock_path: Path,
    install: Install,
    log: Callable[[str], None],
) -> None:
    """Create (or reuse) the layer's venv on its runtime, then sync it to its lock."""
    identity = EnvIdentity("venv", runtime, install.target.describe(), runtime_dir.name)
    _start(env_dir)
    if EnvIdentity.read(env_dir) != identity:
        _discard(env_dir)
        log(f"creating the virtual environment for {env_dir.name}")
        if install.cross_python is None:
            _create_venv(runtime_dir, env_dir, runtime.version, install.target.facts)
        else:
            crossvenv.create_venv(runtime_dir, env_dir, runtime.version, install.target.facts)
        identity.write(env_dir)
    _mark_relocatable(env_dir)
    if _has_work(env_dir, runtime.version, lock_path, install):
        _sync(env_dir, runtime.version, lock_path, install, python=install.target.facts.layer_python)
    check_wheel_tags(env_dir, runtime.version, install.target)
    _remove_scripts(env_dir, runtime.version, install)
    _finish(env_dir, identity, lock_path, install.target.facts.site_packages(runtime.version))


def _start(env_dir: Path) -> None:
    # From here until _finish the layer does not count as installed.
    (env_dir / INSTALLED).unlink(missing_ok=True)
    # Leftovers of a killed run (the build folder lock says no one else is using them).
    for pattern in (f".{env_dir.name}.tmp-*", f".tmp-{env_dir.name}-*", f".trash-{env_dir.name}-*"):
        for leftover in env_dir.parent.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)


def _finish(env_dir: Path, identity: EnvIdentity, lock_path: Path, site_dir: PurePosixPath) -> None:
    lock = Pylock.read(lock_path)
    requirements_hash = pylock.requirements_hash(lock)
    # What its packages depend on, for locking the layers above (lock/depmeta.py).
    depmeta.record_installed(env_dir, site_dir, lock, requirements_hash)
    pins = sorted(lock.pins.items())
    installed = Installed(identity, requirements_hash, tuple(f"{n}=={v}" for n, (v, _) in pins))
    write_atomic(env_dir / INSTALLED, installed.text())


def _discard(env_dir: Path) -> None:
    """Move an old layer folder aside first, so a half-deleted tree is never mistaken for it."""
    if not env_dir.exists() and not env_dir.is_symlink():
        return
    trash = env_dir.with_name(f".trash-{env_dir.name}-{uuid.uuid4().hex[:8]}")
    os.replace(env_dir, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _create_venv(runtime_dir: Path, env_dir: Path, py_version: str, platform: Platform) -> None:
    """A venv of the runtime on this machine. On POSIX it is written by hand, the very files
    `python -m venv --without-pip --symlinks` leaves (with `bin/python` a relative link, as
    deployed), which spares starting the runtime's Python per layer; on Windows `python -m
    venv --copies` is run by the runtime itself, as the existing tool does."""
    if not platform.is_windows:
        crossvenv.create_host_venv(runtime_dir, env_dir, py_version, platform)
        return
    base_python = runtime_dir / platform.runtime_python
    tmp = env_dir.with_name(f".tmp-{env_dir.name}-{uuid.uuid4().hex[:8]}")
    try:
        run(f"creating venv {env_dir.name}", [base_python, "-Im", "venv", "--without-pip", "--copies", tmp])
        # pyvenv.cfg's paths are the runtime's (its informational `command` line aside).
        os.replace(tmp, env_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _has_work(env_dir: Path, py_version: str, lock_path: Path, install: Install) -> bool:
    """Whether syncing to the lock could change the layer: it locks a package of its own, or
    the layer holds one (which a sync removes). A lock naming only what lower layers provide
    (marked so that no platform installs it) on an empty layer needs no uv run: uv would
    install nothing, and it starts the layer's Python to ask about it first."""
    if any(not package.never_installed for package in Pylock.read(lock_path).packages):
        return True
    return any((env_dir / install.target.facts.site_packages(py_version)).glob("*.dist-info"))


def _sync(
    env_dir: Path, py_version: str, lock_path: Path, install: Install, *, python: PurePosixPath
) -> None:
    """Sync the layer to its lock with `python` (relative to the layer), or when cross-building
    with this machine's Python told the target's version, into the layer's site-packages."""
    # The target, not this machine, decides which of a package's wheels is installed: a
    # newer glibc here must not pick a manylinux_2_28 wheel for a glibc@2.17 layer.
    layer = env_dir.name
    with tempfile.TemporaryDirectory(prefix="venvstacks-install-") as tmp:
        config = Path(tmp) / "uv.toml"
        config.write_text(tomli_w.dumps(dict(install.uv_settings)))
        cmd: list[str | Path] = [
            uv_bin(), "pip", "sync", lock_path,
            "--python-platform", install.target.uv_platform,
            "--no-config", "--config-file", config, "--preview-features", "pylock",
        ]  # fmt: skip
        if install.cross_python is not None:
            site = env_dir / install.target.facts.site_packages(py_version)
            cmd += ["--python", install.cross_python, "--python-version", py_version, "--target", site]
        else:
            cmd += ["--python", env_dir / python]
            if python == install.target.facts.runtime_python:
                cmd.append("--break-system-packages")
        _run_sync(layer, cmd, install)
    if install.cross_python is not None:
        crossvenv.move_data_files(env_dir, install.target.facts.site_packages(py_version))


def _run_sync(layer: str, cmd: list[str | Path], install: Install) -> None:
    env = install.target.install_env
    try:
        # From uv's cache alone first: a lock names its wheels by URL, and uv revalidates
        # (on some servers downloads again) a wheel cached by URL on every install. The
        # lock's hashes pin the bytes either way; only what is not cached needs the network.
        run(f"installing packages into {layer} from uv's cache", [*cmd, "--offline"], env=env)
        return
    except VenvStacksError:
        pass
    try:
        # Without --quiet: uv's own progress lines (resolved, downloading torch (846.1MiB),
        # installed ...) become the step's note; the rest is its message.
        what = f"installing packages into {layer} (uv pip sync)"
        run(what, cmd, env=env, progress=install.progress_line)
    except VenvStacksError as exc:
        raise VenvStacksError(f"layer {layer!r}: {exc}") from None


def check_wheel_tags(env_dir: Path, py_version: str, target: Target) -> None:
    """Every installed wheel must suit the layer's target; fail naming the first that does not."""
    for wheel_file in sorted(env_dir.glob(f"{target.facts.site_packages(py_version)}/*.dist-info/WHEEL")):
        wheel_tags = [
            tag
            for line in wheel_file.read_text(encoding="utf-8", errors="replace").splitlines()
            if line.startswith("Tag:")
            for tag in tags.parse_tag(line.partition(":")[2].strip())
        ]
        if wheel_tags and not any(target.accepts(tag) for tag in wheel_tags):
            dist = wheel_file.parent.name.removesuffix(".dist-info").replace("-", " ", 1)
            raise VenvStacksError(
                f"layer {env_dir.name!r}: installed {dist} has wheel tag {', '.join(map(str, wheel_tags))}, "
                f"which does not fit the layer's target {target.describe()}"
            )


def _mark_relocatable(env_dir: Path) -> None:
    """`relocatable = true` in pyvenv.cfg makes uv write console scripts that run the python
    beside them (`$(dirname "$(realpath "$0")")/python`) instead of naming it by absolute
    path: they keep working after export, deploy and a move."""
    cfg = env_dir / "pyvenv.cfg"
    lines = cfg.read_text(encoding="utf-8").splitlines()
    if "relocatable = true" not in lines:
        write_atomic(cfg, "\n".join([*lines, "relocatable = true"]) + "\n")


# The first line of uv's relocatable launcher; the second execs the python beside it.
_RELOCATABLE_SCRIPT = b'#!/bin/sh\n\'\'\'exec\' "$(dirname -- "$(realpath -- "$0")")"/'


def _relocatable_script(item: Path, env_dir: Path) -> bool:
    if item.is_symlink() or not item.is_file() or item.name.lower().startswith(("activate", "deactivate")):
        return False
    data = item.read_bytes()
    return data.startswith(_RELOCATABLE_SCRIPT) and os.fsencode(env_dir) not in data


def _remove_scripts(env_dir: Path, py_version: str, install: Install) -> None:
    """Drop activate scripts and anything naming the build folder (an absolute shebang):
    they cannot be relocated, and would make published archives depend on that path.
    The console scripts uv wrote relocatable (see _mark_relocatable) stay. A cross-built
    layer keeps none: uv wrote them into site-packages/bin, for this machine."""
    facts = install.target.facts
    site = env_dir / facts.site_packages(py_version)
    bindir = site / "bin" if install.cross_python is not None else env_dir / facts.scripts_dir
    removed = False
    for item in bindir.iterdir() if bindir.is_dir() else ():
        keep = install.cross_python is None and (
            item.name.startswith("python") or _relocatable_script(item, env_dir)
        )
        if not keep:
            removed = True
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item)
            else:
                item.unlink()
    if install.cross_python is not None and bindir.is_dir():
        bindir.rmdir()
    if removed:
        for record in site.glob("*.dist-info/RECORD"):
            _drop_missing_scripts(record, bindir)


def _drop_missing_scripts(record: Path, bindir: Path) -> None:
    """Keep RECORD truthful: forget the scripts just deleted, so uninstalls stay clean."""
    site = record.parent.parent
    kept, changed = [], False
    with record.open(newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            target = Path(os.path.normpath(site / row[0])) if row else None
            if target is not None and target.parent == bindir and not target.exists():
                changed = True
                continue
            kept.append(row)
    if changed:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(kept)
        write_atomic(record, buffer.getvalue())
