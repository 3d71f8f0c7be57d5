"""sklearn-import: proves scikit-learn comes from the sklearn framework layer."""

import sys
from pathlib import Path

import numpy
import sklearn
from sklearn.linear_model import LinearRegression


def layer_of(module: object) -> str:
    path = Path(getattr(module, "__file__", ""))
    return next((p.parent.name for p in path.parents if p.name == "lib"), str(path))


model = LinearRegression().fit([[0.0], [1.0], [2.0]], [1.0, 3.0, 5.0])
print(f"scikit-learn {sklearn.__version__} imported from layer {layer_of(sklearn)}")
print(f"numpy {numpy.__version__} imported from layer {layer_of(numpy)}")
print(f"fitted slope {model.coef_[0]:.1f}")
print(f"Python {sys.version.split()[0]} at {sys.prefix}")
print("Environment launch module executed successfully")
