"""`bin/python` of framework and application layers: a script in front of the interpreter.

An extension module in an upper layer may need a shared library that a lower layer
carries. The loader only looks where `LD_LIBRARY_PATH` (or an RPATH) says, so `bin/python`
is a small bash script that appends each lower layer's `share/venv/dynlib` folder
(frameworks in `sys.path` order, then the runtime) to `LD_LIBRARY_PATH`, after whatever
the caller set, and then runs `bin/python_` (a relative symlink to the runtime's
interpreter) with `exec -a .../bin/python`, so `sys.executable` and `pyvenv.cfg` are
still the layer's. Every path is relative to the script's own folder, so a moved
deployment keeps working, and folders reached through symlinks keep the names the caller
used (only links to the script itself are followed). bash, not sh: dash has no `exec -a`.
On macOS the same script runs under zsh (bash 3 is all macOS ships) and sets
`DYLD_LIBRARY_PATH`; Windows layers have no script (`os.add_dll_directory` instead).

The same layout as the existing venvstacks, so an app deployed by either behaves alike.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from venvstacks.fsutil import write_if_changed
from venvstacks.platforms import Platform, major_minor

REAL_PYTHON = "python_"

# Linux's script; `wrapper_script` adapts it to the platform.
_HEAD = """\
#!/bin/bash
# Written by venvstacks. Lets extension modules find the shared libraries of the layers
# below this one: their share/venv/dynlib folders go on LD_LIBRARY_PATH, after any the
# caller set. Then the layer's Python runs as this file, so sys.executable is bin/python.
set -eu
here=$0
case $here in */*) ;; *) here=./$here ;; esac
while [ -L "$here" ]; do  # python3 -> python, or a link to this layer from elsewhere
    link=$(readlink -- "$here")
    case $link in /*) here=$link ;; *) here=${here%/*}/$link ;; esac
done
case $here in  # absolute already when started by path lookup or a launcher: no subshell
    /*) bin_dir=${here%/*} ;;
    *) bin_dir=$(CDPATH="" cd -- "${here%/*}/" && pwd) ;;
esac
add_dynlib_dir() {
    case ":${LD_LIBRARY_PATH-}:" in
        *":$1:"*) ;;
        *) LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$1" ;;
    esac
}
"""

_TAIL = """\
export LD_LIBRARY_PATH
if [ ! -e "$bin_dir/python_" ]; then
    echo "$bin_dir/python_ is missing: run postinstall.py in ${bin_dir%/*}" >&2
    exit 1
fi
exec -a "$bin_dir/python" "$bin_dir/python_" "$@"
"""


def wrapper_script(lower_layers: Sequence[str], platform: Platform) -> str:
    """The script for a layer whose lower layers (folder names, runtime last) are given."""
    folders = [shlex.quote(f"{name}/{platform.dynlib_dir}") for name in lower_layers]
    # "..", not a trimmed $bin_dir: the kernel resolves it from the real layer folder, so a
    # layer reached through a symlink of its own still finds its peers.
    script = _HEAD + "".join(f'add_dynlib_dir "$bin_dir"/../../{f}\n' for f in folders) + _TAIL
    # The template is Linux's; macOS differs in its shell and the loader's variable only.
    shell, var = platform.wrapper_shell, platform.dynlib_mechanism
    if shell is None:
        raise ValueError(f"{platform.name} layers have no bin/python script")
    return script.replace("#!/bin/bash\n", f"#!{shell}\n", 1).replace("LD_LIBRARY_PATH", var)


def install_wrapper(bin_dir: Path, base_python: Path, script: str, py_version: str) -> None:
    """Make `bin/python` the script, `bin/python_` the runtime's interpreter, and
    `python3`/`pythonX.Y` point at the script."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    _replace_symlink(bin_dir / REAL_PYTHON, os.path.relpath(base_python, bin_dir))
    python = bin_dir / "python"
    if python.is_symlink():
        python.unlink()
    if write_if_changed(python, script) or python.stat().st_mode & 0o777 != 0o755:
        python.chmod(0o755)
    for alias in ("python3", f"python{major_minor(py_version)}"):
        _replace_symlink(bin_dir / alias, "python")


def _replace_symlink(path: Path, target: str) -> None:
    if path.is_symlink() and os.readlink(path) == target:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, path)
