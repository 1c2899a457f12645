"""Exceptions raised by deepbelief.

Every error the library raises on purpose is a :class:`DeepBeliefError`, so the
command line can turn it into one line on stderr.
"""


class DeepBeliefError(Exception):
    """Base class of every error deepbelief raises on purpose."""


class DataError(DeepBeliefError, ValueError):
    """The input data is unusable; the message names the problem (row, column, value)."""


class ModelFileError(DeepBeliefError):
    """A model or checkpoint file is corrupt, truncated, foreign or of a newer format."""


class DivergenceError(DeepBeliefError, FloatingPointError):
    """Training produced NaN or inf; the model keeps its last good weights."""


class UsageError(DeepBeliefError):
    """A bad command line (unknown option, bad value, missing argument), or a request this
    machine cannot meet (an unavailable device, more memory than it has)."""


class UndertrainedWarning(UserWarning):
    """Training ended with its loss barely below where it started: the model may be no better
    than chance (train longer or raise the learning rate)."""
