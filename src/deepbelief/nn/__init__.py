"""The PyTorch core: unit types and the RBM module (like ``torch.nn``)."""

from .conv import ConvRBM, MaxPoolBernoulliUnits
from .dbn import DBN, ConvDBN
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
    "ConvDBN",
    "ConvRBM",
    "DBN",
    "Dropout",
    "RBM",
    "BernoulliUnits",
    "GaussianUnits",
    "MaxPoolBernoulliUnits",
    "MixedUnits",
    "ReLUUnits",
    "SoftmaxUnits",
    "Units",
    "units_from_config",
    "units_from_spec",
]
