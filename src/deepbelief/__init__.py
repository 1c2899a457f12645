"""deepbelief: Deep Belief Networks and Restricted Boltzmann Machines in PyTorch.

Top-level names are the scikit-learn estimators; :mod:`deepbelief.nn` holds the PyTorch
modules researchers compose.
"""

from ._version import __version__
from .dbn_estimators import DBN, DBNClassifier, DBNRegressor
from .errors import DataError, DeepBeliefError, DivergenceError, ModelFileError
from .estimators import RBM
from .io import load, save

__all__ = [
    "DBN",
    "DBNClassifier",
    "DBNRegressor",
    "RBM",
    "DataError",
    "DeepBeliefError",
    "DivergenceError",
    "ModelFileError",
    "__version__",
    "load",
    "save",
]
