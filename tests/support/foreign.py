"""Runtimes and wheels for platforms other than this machine's, made on the spot.

`foreign_runtime_archive` writes a python-build-standalone `install_only` archive in that
platform's documented layout (a top `python/` folder; Windows: `python.exe`, `Lib/`,
`DLLs/`, `include/patchlevel.h` and the venv launchers under `Lib/venv/scripts/nt/`;
macOS: `bin/python3.X`, `lib/python3.X/`, `include/python3.X/patchlevel.h`, a libpython
dylib). Its executables are stand-ins: nothing here can run them, and nothing may try.
"""

from __future__ import annotations

import importlib.util
import io
import tarfile
from pathlib import Path
from types import ModuleType

from tests.support.runtime_fixtures import RuntimeArchive
from tests.support.wheels import write_wheel
from venvstacks.fsutil import sha256_file
from venvstacks.layout import POSTINSTALL_SCRIPT
from venvstacks.platforms import Platform

# A stand-in's first bytes say what it stands for (PE's "MZ", a 64-bit Mach-O header).
PE = b"MZ stand-in: a Windows executable\n"
MACHO = bytes.fromhex("cffaedfe") + b" stand-in: a macOS binary\n"


def runtime_members(platform: Platform, version: str) -> dict[str, bytes | str]:
    """Member name -> file bytes, or link target (a str), of an install_only archive."""
    xy = ".".join(version.split(".")[:2])
    nodot = xy.replace(".", "")
    header = f'#define PY_VERSION "{version}"\n'.encode()
    if platform.is_windows:
        return {
            "python/python.exe": PE,
            "python/pythonw.exe": PE,
            f"python/python{nodot}.dll": PE,
            "python/DLLs/_ctypes.pyd": PE,
            "python/Lib/os.py": b"# stand-in stdlib\n",
            "python/Lib/site-packages/README.txt": b"site-packages\n",
            "python/Lib/venv/scripts/nt/python.exe": PE + b"venv launcher\n",
            "python/Lib/venv/scripts/nt/pythonw.exe": PE + b"venv launcher (windowed)\n",
            "python/include/patchlevel.h": header,
        }
    return {
        f"python/bin/python{xy}": MACHO,
        "python/bin/python3": f"python{xy}",
        f"python/lib/libpython{xy}.dylib": MACHO,
        f"python/lib/python{xy}/os.py": b"# stand-in stdlib\n",
        f"python/lib/python{xy}/site-packages/README.txt": b"site-packages\n",
        f"python/include/python{xy}/patchlevel.h": header,
    }


def foreign_runtime_archive(folder: Path, platform: Platform, version: str = "3.11.9") -> RuntimeArchive:
    """An install_only .tar.gz for `platform`, named as python-build-standalone names them."""
    folder.mkdir(parents=True, exist_ok=True)
    triple = {"windows": "pc-windows-msvc", "macos": "apple-darwin", "linux": "unknown-linux-gnu"}
    name = f"cpython-{version}+20250101-{platform.arch}-{triple[platform.family]}-install_only.tar.gz"
    path = folder / name
    with tarfile.open(path, "w:gz") as tar:
        for member, content in sorted(runtime_members(platform, version).items()):
            info = tarfile.TarInfo(member)
            if isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o755
                tar.addfile(info, io.BytesIO(content))
    return RuntimeArchive(path, sha256_file(path), version)


def native_wheel(folder: Path, name: str, platform: Platform, tag: str) -> Path:
    """A wheel for one platform: an extension module with that platform's suffix, and the
    platform's kind of shared library (Windows: a DLL in `Library/bin`, the conda layout;
    macOS: a dylib in `.dylibs/`, delocate's; Linux: an ELF-named `.so` in `.libs/`)."""
    dist = name.replace("-", "_")
    ext = platform.extension_suffixes("3.11")[0]
    files: dict[str, bytes] = {
        f"{dist}/__init__.py": f"PLATFORM = {platform.name!r}\n".encode(),
        f"{dist}/_core{ext}": PE if platform.is_windows else MACHO,
    }
    if platform.is_windows:
        files[f"{dist}-1.0.data/data/Library/bin/{dist}.dll"] = PE
    elif platform.is_macos:
        files[f"{dist}/.dylibs/lib{dist}.dylib"] = MACHO
    return write_wheel(folder, name, "1.0", tag, files)


def load_postinstall() -> ModuleType:
    """postinstall.py as a module: `main(layer_dir, windows=...)` runs it as on that system."""
    spec = importlib.util.spec_from_file_location("postinstall_under_test", POSTINSTALL_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
