"""Exceptions and warnings raised by deepbelief.

Every error the library raises on purpose is a :class:`DeepBeliefError`, so the
command line can turn it into one line on stderr.
"""

import os
import sys
import warnings


class DeepBeliefError(Exception):
    """Base class of every error deepbelief raises on purpose.

    Parameters
    ----------
    problem : str
        What is wrong.
    advice : str, optional
        What to do about it, said after the problem; the command line gives its own with
        :meth:`advised` where the Python API's would not fit (an option for a parameter).
    """

    def __init__(self, problem: str = "", advice: str | None = None):
        self.problem, self.advice = problem, advice
        super().__init__(problem if advice is None else f"{problem}; {advice}")

    def advised(self, advice: str):
        """The same error with other ``advice`` (raise it ``from None``)."""
        return type(self)(self.problem, advice)


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
    """Training ended with its loss barely below where it started (train longer or raise the
    learning rate), or above it, or with an RBM's hidden units switched off (lower the
    learning rate): the model may be no better than chance."""


class DataWarning(UserWarning):
    """Something about the given rows that their results depend on (the command line says it
    after the command succeeded, not before its error)."""


class OutsideRangeWarning(DataWarning):
    """Values of new rows outside the range the model was trained on were clipped to it."""


def drop_advice(options: list) -> str:
    """``"drop it"`` or ``"drop them"``, as many options as a refusal names."""
    return "drop it" if len(options) == 1 else "drop them"


def warn(message: str, category: type[Warning]) -> None:
    """``warnings.warn``, attributed to the first caller outside deepbelief (the user's
    line, which their warning filters and ``pytest.warns`` see), however deep the call."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level + 1)
