"""The PyTorch core: unit types and the RBM module (like ``torch.nn``)."""

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
