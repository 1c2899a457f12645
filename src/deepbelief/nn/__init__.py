"""The PyTorch core: unit types and the RBM module (like ``torch.nn``)."""

from .dbn import DBN
from .layers import Dropout
from .rbm import RBM
from .units import (
    BernoulliUnits,
    GaussianUnits,
    MixedUnits,
    ReLUUnits,
    SoftmaxUnits,
    Units,
    units_from_config,
    units_from_spec,
)

__all__ = [
    "DBN",
    "Dropout",
    "RBM",
    "BernoulliUnits",
    "GaussianUnits",
    "MixedUnits",
    "ReLUUnits",
    "SoftmaxUnits",
    "Units",
    "units_from_config",
    "units_from_spec",
]
