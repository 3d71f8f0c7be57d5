"""Helpers shared by the runtime tests (test_runtime_*.py).

A log that collects what a runtime function says, a probe that runs a runtime's python3 with
an empty environment and reports where it really loads from, and a listing of a runtime cache.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

PROBE = (
    "import json, sys, ssl, sqlite3, ctypes, zlib, decimal; print(json.dumps({"
    "'prefix': sys.prefix, 'version': '%d.%d.%d' % sys.version_info[:3], "
    "'libpython': sorted({l.split()[-1] for l in open('/proc/self/maps') if 'libpython' in l})}))"
)


class Log(list[str]):
    def __call__(self, line: str) -> None:
        self.append(line)


def probe(python_dir: Path) -> dict[str, Any]:
    """Run a runtime's python3 with an empty environment (no PATH, no PYTHONHOME...)."""
    out = subprocess.run(
        ["env", "-i", str(python_dir / "bin" / "python3"), "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def cache_contents(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.name != ".locks") if cache.exists() else []


def local_cpython(series: str) -> bool:
    """Whether a build with ``--runtime-source local`` would find a CPython ``series`` here:
    the same lookup the build makes, not a guess from PATH."""
    from venvstacks.runtimes.local import LocalSource

    return LocalSource().find("cpython", series) is not None
