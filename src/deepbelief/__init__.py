"""deepbelief: Deep Belief Networks and Restricted Boltzmann Machines in PyTorch.

Top-level names are the scikit-learn estimators; :mod:`deepbelief.nn` holds the PyTorch
modules researchers compose.

The names are imported on first use (PEP 562), so ``import deepbelief`` and the command's
``--help`` do not load torch or scikit-learn; ``from deepbelief import RBM`` works as usual.
"""

from __future__ import annotations

import importlib
import logging

from ._version import __version__
from .errors import (
    DataError,
    DeepBeliefError,
    DivergenceError,
    ModelFileError,
    UndertrainedWarning,
)

# a library's messages go where the application sends them; none to stderr by default (the
# warnings that matter are Python warnings; the command line installs its own handler)
logging.getLogger(__name__).addHandler(logging.NullHandler())

#: public name -> the submodule that defines it (imported on first access)
_LAZY = {
    "DBN": "dbn_estimators",
    "DBNClassifier": "dbn_estimators",
    "DBNRegressor": "dbn_estimators",
    "RBM": "estimators",
    "BERNOULLI_RBM_COMPAT": "estimators",
    "ClippedInputWarning": "estimators",
    "OutlierDetector": "outliers",
    "PRESETS": "recipes",
    "RBMImputer": "imputer",
    "load": "io",
    "save": "io",
}

__all__ = [
    "BERNOULLI_RBM_COMPAT",
    "PRESETS",
    "ClippedInputWarning",
    "UndertrainedWarning",
    "DBN",
    "DBNClassifier",
    "DBNRegressor",
    "OutlierDetector",
    "RBM",
    "RBMImputer",
    "DataError",
    "DeepBeliefError",
    "DivergenceError",
    "ModelFileError",
    "__version__",
    "load",
    "save",
]

TYPE_CHECKING = False  # (typing.TYPE_CHECKING without importing typing)
if TYPE_CHECKING:  # for type checkers and IDEs: the eager imports
    from .dbn_estimators import DBN, DBNClassifier, DBNRegressor
    from .estimators import BERNOULLI_RBM_COMPAT, RBM, ClippedInputWarning
    from .imputer import RBMImputer
    from .io import load, save
    from .outliers import OutlierDetector
    from .recipes import PRESETS


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name == "load":  # the classes a file may hold register themselves when imported
        for registering in ("estimators", "dbn_estimators"):
            importlib.import_module(f".{registering}", __name__)
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
