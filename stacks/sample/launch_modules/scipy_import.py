"""scipy-import: proves scipy comes from the scipy framework layer."""

import sys
from pathlib import Path

import numpy
import scipy
from scipy import linalg


def layer_of(module: object) -> str:
    path = Path(getattr(module, "__file__", ""))
    return next((p.parent.name for p in path.parents if p.name == "lib"), str(path))


print(f"scipy {scipy.__version__} imported from layer {layer_of(scipy)}")
print(f"numpy {numpy.__version__} imported from layer {layer_of(numpy)}")
print(f"det([[1, 2], [3, 4]]) = {linalg.det([[1.0, 2.0], [3.0, 4.0]]):.1f}")
print(f"Python {sys.version.split()[0]} at {sys.prefix}")
print("Environment launch module executed successfully")
