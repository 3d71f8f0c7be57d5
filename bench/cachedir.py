"""Where the benchmarks keep their work: a cache folder outside the checkout.

Stack copies must not live inside the repository: its `.gitignore` files would decide what
their module folders hold (a folder module under an ignored path is built empty). And two
checkouts (git worktrees of engineers working at the same time) must never share work
folders, so the default folder is keyed by this checkout's path:

    $XDG_CACHE_HOME/venvstacks-bench/<checkout folder name>-<hash of its path>/

(`~/.cache` when XDG_CACHE_HOME is not set). `VENVSTACKS_BENCH_CACHE=DIR` puts it elsewhere.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
#: The variable that names another cache folder.
CACHE_VAR = "VENVSTACKS_BENCH_CACHE"


def bench_cache_dir(root: Path = ROOT) -> Path:
    """The cache folder of the checkout at *root* (see the module's docstring)."""
    chosen = os.environ.get(CACHE_VAR)
    if chosen:
        return Path(chosen).expanduser().resolve()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(os.fsencode(root.resolve())).hexdigest()[:12]
    return base / "venvstacks-bench" / f"{root.resolve().name}-{key}"


CACHE_DIR = bench_cache_dir()
