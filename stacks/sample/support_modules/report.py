"""Support module for scipy-client: says where a module was imported from."""

import sys
from pathlib import Path


def origin(module: object) -> str:
    """The layer folder a module was imported from (the folder above lib/ or Lib/)."""
    path = Path(getattr(module, "__file__", "") or "")
    for parent in path.parents:
        if parent.name.lower() == "lib" or parent.name == "Lib":
            return parent.parent.name
    return str(path)


def report(module: object) -> None:
    name = getattr(module, "__name__", "?")
    version = getattr(module, "__version__", "?")
    print(f"{name} {version} imported from layer {origin(module)} (Python {sys.version.split()[0]})")
