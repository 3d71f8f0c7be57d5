"""Wheels holding real native code, compiled with gcc on the spot (no binaries committed).

* `publisher_wheel`: package `<name>/` carrying `libpublisher.so.1` (soname
  `libpublisher.so.1`), whose `publisher_answer()` returns the given number;
* `consumer_wheel`: package `consumer/` whose abi3 extension module `_consumer` is linked
  with `-lpublisher` and no RPATH, so it loads only when the loader is told where
  `libpublisher.so.1` is. `consumer.answer()` calls into the library.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

from tests.support.wheels import write_wheel

SONAME = "libpublisher.so.1"
PLATFORM = f"linux_{platform.machine()}"  # the stack file's name for this machine
WHEEL_PLATFORM = f"manylinux_2_17_{platform.machine()}"  # the code needs nothing newer

CONSUMER_C = r"""
#define Py_LIMITED_API 0x03080000
#include <Python.h>
int publisher_answer(void);
static PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(publisher_answer()); }
static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_consumer", NULL, -1, methods};
PyMODINIT_FUNC PyInit__consumer(void) { return PyModule_Create(&module); }
"""


def gcc() -> str:
    path = shutil.which("gcc")
    if path is None:
        pytest.skip("gcc is needed to build the native test wheels")
    return path


def compile_publisher(work: Path, answer: int) -> Path:
    """`work/libpublisher.so.1`, plus the `libpublisher.so` link that `-lpublisher` wants."""
    work.mkdir(parents=True, exist_ok=True)
    source = work / "publisher.c"
    source.write_text(f"int publisher_answer(void) {{ return {answer}; }}\n")
    lib = work / SONAME
    _gcc("-shared", "-fPIC", f"-Wl,-soname,{SONAME}", "-o", lib, source)
    (work / "libpublisher.so").unlink(missing_ok=True)
    (work / "libpublisher.so").symlink_to(SONAME)
    return lib


def publisher_wheel(wheels: Path, work: Path, name: str = "publisher", answer: int = 42) -> Path:
    lib = compile_publisher(work / name, answer)
    package = name.replace("-", "_")
    files = {f"{package}/__init__.py": b"", f"{package}/{SONAME}": lib.read_bytes()}
    return write_wheel(wheels, name, "1.0", f"py3-none-{WHEEL_PLATFORM}", files)


def consumer_wheel(wheels: Path, work: Path) -> Path:
    publisher_dir = compile_publisher(work / "consumer-build", 0).parent
    source = publisher_dir / "consumer.c"
    source.write_text(CONSUMER_C)
    module = publisher_dir / "_consumer.abi3.so"
    include = sysconfig.get_paths()["include"]
    _gcc("-shared", "-fPIC", f"-I{include}", "-o", module, source, f"-L{publisher_dir}", "-lpublisher")
    files = {
        "consumer/__init__.py": b"from consumer._consumer import answer\n",
        "consumer/_consumer.abi3.so": module.read_bytes(),
    }
    return write_wheel(wheels, "consumer", "1.0", f"cp38-abi3-{WHEEL_PLATFORM}", files)


def _gcc(*args: str | Path) -> None:
    subprocess.run([gcc(), *map(str, args)], check=True, capture_output=True)
