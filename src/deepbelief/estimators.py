"""scikit-learn estimators. Thin: validate, build the torch objects in ``fit``, delegate."""

from __future__ import annotations

import logging
import numbers
import os
import sys
import warnings

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from . import distributed, evaluation
from .errors import DataError
from .io import register, save
from .loop import Callback, loading_device
from .nn.rbm import RBM as RBMModule
from .nn.units import BernoulliUnits, Units, units_from_config, units_from_spec
from .samplers import PT, Sampler, sampler_from_config
from .settings import check, check_trainer_settings, integer, real
from .streams import RowFile, column_stats, file_position, first_outside, is_row_file
from .training import Checkpoint, ProgressBar, RBMTrainer, make_generator, resolve_device

log = logging.getLogger("deepbelief")

_DTYPES = {"float32": torch.float32, "float64": torch.float64}

#: Rows of a sparse (or dense) ``X`` are turned into tensors a block of about this many values
#: at a time at transform and score time, so a large sparse matrix is never densified whole.
_BLOCK_VALUES = 2**24

#: Rows whose pseudo-likelihood the ``verbose`` lines report (the first ones of the data),
#: and the features beyond which it is estimated from that many evenly spread ones.
VERBOSE_ROWS = 1000
VERBOSE_FEATURES = 64

#: The parameters that make :class:`RBM` run scikit-learn's ``BernoulliRBM`` algorithm:
#: ``RBM(**BERNOULLI_RBM_COMPAT, n_components=..., random_state=...)``. It holds only the
#: parameters that ``BernoulliRBM`` lacks; those it has (``n_components``, ``learning_rate``,
#: ``batch_size``, ``n_iter``, ``verbose``, ``random_state``) already have its defaults here
#: (``learning_rate="auto"`` is 0.1 for Bernoulli visible units), so they can still be passed.
BERNOULLI_RBM_COMPAT = {
    "visible": "bernoulli",
    "hidden": "bernoulli",
    "sampler": "pcd",  # stochastic maximum likelihood: persistent chains, one Gibbs step
    "k": 1,
    "n_chains": None,  # as many chains as rows in a minibatch (h_samples_: batch_size rows)
    "lr_schedule": "constant",
    "momentum": 0.0,
    "final_momentum": 0.0,
    "weight_decay": 0.0,
    "l1": 0.0,
    "sparsity_target": None,
    "max_norm": None,
    "clip_grad_norm": None,
    "centering": False,
    "sample_data": False,
    "dropout": 0.0,
    "init_visible_bias": False,  # BernoulliRBM starts its visible biases at zero
    "weight_std": 0.01,
}


class ClippedInputWarning(UserWarning):
    """Values outside [0, 1] given to Bernoulli visible units at transform or score time were
    clipped into [0, 1] (training data outside [0, 1] is refused instead)."""


def check_X(estimator, X, reset: bool, *, accept_sparse: bool = False):
    """Validate ``X`` through scikit-learn, raising :class:`DataError` that names the problem.

    Non-finite values are reported with their row and column.

    Parameters
    ----------
    estimator : estimator
        Records (``reset=True``) or checks ``n_features_in_`` and ``feature_names_in_``.
    X : array-like or sparse matrix of shape (n_samples, n_features)
    reset : bool
    accept_sparse : bool, default False
        Accept scipy.sparse matrices and arrays, returned in CSR format (dense input is
        returned as an ndarray either way).

    Returns
    -------
    ndarray or sparse matrix of float64 or float32
    """
    refuse_row_file(X)
    try:
        X = validate_data(
            estimator,
            X,
            reset=reset,
            dtype=[np.float64, np.float32],
            ensure_all_finite=False,
            accept_sparse="csr" if accept_sparse else False,
        )
    except ValueError as exc:
        raise DataError(non_numeric_message(X, str(exc))) from exc
    _check_finite(X)
    return X


def non_numeric_message(X, message: str) -> str:
    """scikit-learn's ``message`` about ``X``; for a value that is not a number, where it
    lies and what to do."""
    if "could not convert" not in message:
        return message
    where = first_non_number(X)
    if where is None:
        return f"X must be numeric: {message}"
    return (
        f"X must be numeric: {where}; encode text columns first (e.g. OneHotEncoder in a "
        "ColumnTransformer; `deepbelief train` does it for a CSV)"
    )


def refuse_row_file(X) -> None:
    """DataError for a :class:`~deepbelief.streams.RowFile` where rows must be in memory (it
    would be read a row at a time into an array of the wrong shape)."""
    if is_row_file(X):
        raise DataError(
            f"X is a RowFile of {X.path} (read a block at a time): only the unsupervised fit "
            "of deepbelief.RBM and deepbelief.DBN (without y) streams one; for anything else, "
            "give the rows as an array (numpy.load)"
        )


def first_non_number(X) -> str | None:
    """Where the first value of a table ``X`` (a DataFrame or 2-D array-like) that is not a
    number lies: ``"column 's' holds 'x' at row 3 (counting from 0)"``; None when none is
    found."""
    if hasattr(X, "columns") and hasattr(X, "to_numpy"):
        names, values = list(X.columns), X.to_numpy(dtype=object)
    else:
        try:
            values = np.asarray(X, dtype=object)
        except ValueError:  # ragged rows
            return None
        names = list(range(values.shape[1])) if values.ndim == 2 else []
    for j, name in enumerate(names):
        try:
            values[:, j].astype(np.float64)
        except (TypeError, ValueError):
            for i, value in enumerate(values[:, j]):
                try:
                    float(value)
                except (TypeError, ValueError):
                    return f"column {name!r} holds {value!r} at row {i} (counting from 0)"
    return None


def _check_finite(X) -> None:
    """DataError naming the first non-finite value of ``X`` (dense or sparse)."""
    if sp.issparse(X):
        coo = X.tocoo()
        rows, cols, values = coo.row, coo.col, coo.data
    else:
        rows = cols = None
        values = X
    bad = ~np.isfinite(values)
    if not bad.any():
        return
    if rows is None:
        row, col = (int(i) for i in np.argwhere(bad)[0])
    else:
        first = min(zip(rows[bad], cols[bad]))
        row, col = int(first[0]), int(first[1])
    value = X[row, col]
    kind = "NaN" if np.isnan(value) else "infinity (inf)"
    raise DataError(
        f"X contains {kind} at row {row}, column {col} "
        f"(counting from 0; {int(bad.sum())} non-finite value(s) in all); remove or impute them"
    )


def rounding_slack(dtype) -> float:
    """How far past [0, 1] a value of ``dtype`` may lie and still count as inside it: a few
    units of its rounding (a ``MinMaxScaler`` returns 1.0000001 in float32 and
    1.0000000000000002 in float64), never a real excursion."""
    return 4 * float(np.finfo(dtype if np.issubdtype(dtype, np.floating) else np.float64).eps)


def in_unit_interval(low: float, high: float, slack: float) -> bool:
    """Whether a range ``[low, high]`` lies in [0, 1] up to ``slack``."""
    return low >= -slack and high <= 1 + slack


def snap_unit_interval(X: np.ndarray) -> np.ndarray:
    """``X`` with values within rounding of [0, 1] (:func:`rounding_slack`) clipped into it,
    silently (a copy; ``X`` itself when none is outside); values further out stay, for the
    units' check to name."""
    if not X.size or (X.min() >= 0 and X.max() <= 1):
        return X
    slack = rounding_slack(X.dtype)
    X = X.copy()
    X[(X < 0) & (X >= -slack)] = 0
    X[(X > 1) & (X <= 1 + slack)] = 1
    return X


def clip_unit_interval(X):
    """``X`` with its values outside [0, 1] clipped into it (a copy), with one
    :class:`ClippedInputWarning` saying how many there were (values within rounding of it are
    clipped without a word); ``X`` itself when there are none.

    Parameters
    ----------
    X : ndarray or sparse matrix

    Returns
    -------
    ndarray or sparse matrix
    """
    values = X.data if sp.issparse(X) else X
    if not np.count_nonzero((values < 0) | (values > 1)):
        return X
    slack = rounding_slack(values.dtype)
    n_outside = int(np.count_nonzero((values < -slack) | (values > 1 + slack)))
    low, high = float(values.min()), float(values.max())
    if sp.issparse(X) and X.nnz < X.shape[0] * X.shape[1]:  # implicit zeros
        low, high = min(low, 0.0), max(high, 0.0)
    if n_outside:
        warnings.warn(
            f"X has {n_outside} value(s) outside [0, 1] (seen range [{low:g}, {high:g}]); they "
            "were clipped into [0, 1] for the Bernoulli visible units (scale new data as the "
            "training data, for example with the same MinMaxScaler)",
            ClippedInputWarning,
            stacklevel=_outside_stacklevel(),
        )
    if sp.issparse(X):
        X = X.copy()
        X.data = np.clip(X.data, 0.0, 1.0)
        return X
    return np.clip(X, 0.0, 1.0)


def _outside_stacklevel() -> int:
    """The ``stacklevel`` of the first caller outside deepbelief, scikit-learn, joblib (a grid
    search's) and torch (the user's line that called ``transform`` or ``predict``), for the
    caller of this function."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] in (
        "deepbelief",
        "sklearn",
        "joblib",
        "torch",
    ):
        frame, level = frame.f_back, level + 1
    return level


def _dense(X) -> np.ndarray:
    """``X`` as an ndarray (sparse input densified)."""
    return X.toarray() if sp.issparse(X) else np.asarray(X)


def _row_blocks(X):
    """Dense blocks of consecutive rows of ``X`` of about ``_BLOCK_VALUES`` values each."""
    step = max(1, _BLOCK_VALUES // max(1, X.shape[1]))
    for start in range(0, X.shape[0], step):
        yield _dense(X[start : start + step])


def seed_from(random_state) -> int | None:
    """An int seed (or None) for :func:`deepbelief.loop.make_generator` from ``random_state``.

    Parameters
    ----------
    random_state : None, int, numpy.random.RandomState or numpy.random.Generator
        An int is used as it is; a NumPy generator gives a seed drawn from it (which advances
        it, as scikit-learn's ``check_random_state`` users do).

    Returns
    -------
    int or None
    """
    if random_state is None:
        return None
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    high = np.iinfo(np.int32).max
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(high))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(high))
    raise ValueError(
        "random_state must be None, an int, a numpy.random.RandomState or a "
        f"numpy.random.Generator, got {random_state!r}"
    )


def check_units(spec, name: str, allow_auto: bool = False) -> None:
    """Refuse a unit specification that names no unit type (ValueError naming ``name``)."""
    if allow_auto and isinstance(spec, str) and spec == "auto":
        return
    specs = spec if isinstance(spec, (list, tuple)) else [spec]
    for one in specs:
        try:
            units_from_spec(one)
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"{name} units: {exc}") from None


def choose_visible(spec, X: np.ndarray) -> Units:
    """Visible units for ``spec``: with ``"auto"``, Bernoulli units when every value of ``X``
    lies in [0, 1], otherwise Gaussian units (on standardised data); the choice is logged."""
    if isinstance(spec, str) and spec == "auto":
        if not X.size or in_unit_interval(X.min(), X.max(), rounding_slack(X.dtype)):
            return BernoulliUnits()
        log.info("visible='auto': values outside [0, 1], using Gaussian units on standardised data")
        return units_from_spec("gaussian")
    return units_from_spec(spec)


def row_file_input(estimator, X) -> RowFile | None:
    """``X`` as a :class:`~deepbelief.streams.RowFile` when it is one, or a memory map of a
    whole ``.npy`` file (``numpy.load`` with ``mmap_mode="r"``): training data read a block at a
    time. Records ``n_features_in_``. None for any other input (read into memory)."""
    if isinstance(X, np.memmap) and X.ndim == 2 and getattr(X, "filename", None):
        if not str(X.filename).endswith(".npy"):
            return None
        try:
            source = RowFile(X.filename)
        except DataError:  # not numeric rows: in memory (the checks name the problem)
            return None
        if not _whole_map(X, source):  # a slice or view of the map: in memory, as any array
            return None
    elif is_row_file(X):
        source = X.copy()  # the caller's is left as it is (its transform, dtype, device)
    else:
        return None
    if 0 in source.shape:
        raise DataError(f"{source.path}: no data (its rows have shape {source.shape})")
    estimator.n_features_in_ = source.n_features
    if hasattr(estimator, "feature_names_in_"):
        del estimator.feature_names_in_
    return source


def _whole_map(X: np.memmap, source: RowFile) -> bool:
    """Whether ``X`` is the whole of ``source``'s file as the file lays it out: not a slice,
    a transpose, a reversal or another dtype's view of the map with the same shape."""
    root = X
    while isinstance(root.base, np.ndarray):
        root = root.base
    fortran = source.fortran_order
    return (
        X.shape == source.shape
        and (X.flags.f_contiguous if fortran else X.flags.c_contiguous)
        and X.dtype == source.file_dtype  # (a big-endian file's map: in memory)
        and X.__array_interface__["data"][0] == root.__array_interface__["data"][0]
    )


def standardize(mean: np.ndarray, scale: np.ndarray):
    """The input scaling of Gaussian visible units as a function of a block of rows."""
    return lambda rows: (rows - mean) / scale


def prepare_row_file(spec, source: RowFile) -> tuple[Units, np.ndarray | None, np.ndarray | None]:
    """For a RowFile, what :func:`choose_visible` and :func:`fit_scaling` give an array, from
    one pass over it (DataError for values that are not finite, or outside [0, 1] for
    Bernoulli units); adds the scaling to the file's transform."""
    stats = column_stats(source)
    low, high = float(stats["min"].min()), float(stats["max"].max())
    inside = in_unit_interval(low, high, rounding_slack(source.file_dtype))
    if isinstance(spec, str) and spec == "auto":
        visible = BernoulliUnits() if inside else units_from_spec("gaussian")
    else:
        visible = units_from_spec(spec)
    mean = scale = None
    if visible.name == "gaussian":
        mean, scale = stats["mean"], np.where(stats["std"] > 0, stats["std"], 1.0)
        source.then(standardize(mean, scale))
    elif isinstance(visible, BernoulliUnits) and inside and (low < 0 or high > 1):
        source.then(snap_unit_interval)  # rounding past the bounds: clipped
    elif isinstance(visible, BernoulliUnits) and not inside:
        row, column, value = first_outside(source, 0.0, 1.0)
        raise DataError(
            f"X does not fit bernoulli visible units: {source.path}: "
            f"{file_position(row, column)} holds {value!r}, outside [0, 1] (scale the values "
            "to [0, 1], or use gaussian visible units)"
        )
    return visible, mean, scale


def fit_scaling(units: Units, X: np.ndarray):
    """Mean and scale that standardise ``X`` for Gaussian visible units, else ``(None, None)``."""
    if units.name != "gaussian":
        return None, None
    scale = X.std(0)
    return X.mean(0), np.where(scale > 0, scale, 1.0)


def _check_random_state(random_state) -> None:
    """ValueError unless ``random_state`` is None, an int or a NumPy generator."""
    if random_state is None or isinstance(
        random_state, (np.random.RandomState, np.random.Generator)
    ):
        return
    if not isinstance(random_state, numbers.Integral) or isinstance(random_state, bool):
        seed_from(random_state)  # raises, naming the value


class IterationLines(Callback):
    """Prints scikit-learn's ``BernoulliRBM`` line after each epoch to standard output:
    ``[RBM] Iteration 3, pseudo-likelihood = -21.07, time = 0.12s``.

    The pseudo-likelihood is the mean over ``rows`` (the first training rows, the same at
    every epoch), exact up to ``VERBOSE_FEATURES`` features and estimated from that many
    evenly spread ones beyond (scikit-learn estimates it from one random feature per row).
    Models without Bernoulli visible units report their reconstruction error instead.
    ``time`` is the epoch's, as the trainer measured it.

    Parameters
    ----------
    name : str
        Shown in brackets (scikit-learn shows the class name).
    rows : tensor of shape (n_rows, n_visible)
        Prepared training rows.
    """

    def __init__(self, name: str, rows: torch.Tensor):
        self.name, self.rows = name, rows

    @torch.no_grad()
    def on_epoch_end(self, loop, metrics):
        model = loop.model
        if isinstance(model.visible, BernoulliUnits):
            features = None
            if model.n_visible > VERBOSE_FEATURES:
                features = torch.linspace(0, model.n_visible - 1, VERBOSE_FEATURES).long()
            value = evaluation.pseudo_log_likelihood(model, self.rows, features=features)
            what = f"pseudo-likelihood = {value:.2f}"
        else:
            value = evaluation.reconstruction_error(model, self.rows)
            what = f"reconstruction error = {value:.4f}"
        seconds = metrics.get("seconds", 0.0)
        line = f"[{self.name}] Iteration {metrics['epoch']}, {what}, time = {seconds:.2f}s"
        print(line, flush=True)


class ScaledInputMixin:
    """Input scaling shared by the estimators: ``_input_rbm()`` names the RBM that sees ``X``;
    ``input_mean_``/``input_scale_`` (None for non-Gaussian inputs) and ``visible_units_``
    are fitted attributes."""

    def _input_rbm(self):
        raise NotImplementedError

    def _input_units(self):
        return self._input_rbm().visible

    def _prepare(self, X: np.ndarray) -> torch.Tensor:
        """Scale ``X`` for the visible units and move it to the model's device."""
        if self.input_mean_ is not None:
            X = (X - self.input_mean_) / self.input_scale_
        rbm = self._input_rbm()
        X = np.asarray(X)
        if not X.flags.writeable:  # (pandas' copy-on-write arrays): torch wants writable ones
            X = X.copy()
        tensor = torch.as_tensor(X, dtype=rbm.weight.dtype, device=rbm.weight.device)
        message = self._input_units().support_error(tensor)
        if message is not None:
            raise DataError(f"X does not fit {self.visible_units_} visible units: {message}")
        return tensor

    def _log_scale(self) -> float:
        """``log |det|`` of the input scaling (the densities' change of variables)."""
        return 0.0 if self.input_mean_ is None else float(np.log(self.input_scale_).sum())

    def _restore_scale(self, v: torch.Tensor) -> np.ndarray:
        """Visible states back in the scale of the data."""
        out = v.detach().cpu().numpy().astype(np.float64)
        if self.input_mean_ is not None:
            out = out * self.input_scale_ + self.input_mean_
        return out


def _params_to_state(params: dict) -> dict:
    def describe(v):
        if isinstance(v, Units):
            return {"__units__": v.config()}
        if isinstance(v, Sampler):
            return {"__sampler__": v.config()}
        if isinstance(v, os.PathLike):  # a checkpoint path
            return os.fspath(v)
        if isinstance(v, (np.random.RandomState, np.random.Generator)):
            return _rng_to_state(v)
        return v

    return {k: describe(v) for k, v in params.items()}


def _params_from_state(params: dict) -> dict:
    def restore(v):
        if isinstance(v, dict) and "__units__" in v:
            return units_from_config(v["__units__"])
        if isinstance(v, dict) and "__sampler__" in v:
            return sampler_from_config(v["__sampler__"])
        if isinstance(v, dict) and "__numpy_rng__" in v:
            return _rng_from_state(v)
        if isinstance(v, torch.Tensor):  # a parameter given as a NumPy array
            return v.numpy()
        return v

    return {k: restore(v) for k, v in params.items()}


_BIT_GENERATORS = ("MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64")


def _rng_to_state(rng) -> dict:
    """A NumPy ``RandomState`` or ``Generator`` (a ``random_state`` parameter) as plain data."""
    if isinstance(rng, np.random.RandomState):
        kind, state = "RandomState", rng.get_state(legacy=False)
    else:
        kind, state = "Generator", rng.bit_generator.state

    def plain(node):
        if isinstance(node, dict):
            return {k: plain(v) for k, v in node.items()}
        if isinstance(node, np.ndarray):
            return {"__array__": node.tolist(), "dtype": str(node.dtype)}
        return node.item() if isinstance(node, np.generic) else node

    return {"__numpy_rng__": kind, "state": plain(state)}


def _rng_from_state(saved: dict):
    """Inverse of :func:`_rng_to_state`."""

    def restore(node):
        if isinstance(node, dict) and "__array__" in node:
            return np.asarray(node["__array__"], dtype=node["dtype"])
        if isinstance(node, dict):
            return {k: restore(v) for k, v in node.items()}
        return node

    state = restore(saved["state"])
    if saved["__numpy_rng__"] == "RandomState":
        rng = np.random.RandomState()
        rng.set_state(state)
        return rng
    name = state["bit_generator"]
    if name not in _BIT_GENERATORS:
        raise ValueError(f"unknown NumPy bit generator {name!r}")
    bit_generator = getattr(np.random, name)()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


@register("RBM")
class RBM(ClassNamePrefixFeaturesOutMixin, ScaledInputMixin, TransformerMixin, BaseEstimator):
    """Restricted Boltzmann Machine, a drop-in for :class:`sklearn.neural_network.BernoulliRBM`.

    Trained by real contrastive divergence (CD-k), persistent CD or parallel tempering on a
    PyTorch core, on CPU or GPU. ``transform`` gives the hidden units' means. Dense and
    scipy.sparse input are accepted everywhere; every public attribute and method of
    ``BernoulliRBM`` is here with the same meaning.

    Differences from ``BernoulliRBM``, on purpose:

    - The default algorithm is Hinton's practical guide (2010), not scikit-learn's: CD-1
      (``sampler="cd"``) with momentum 0.5 for 5 epochs then 0.9 and the visible biases
      started at the data's log-odds, where ``BernoulliRBM`` runs persistent
      CD-1 (stochastic maximum likelihood) with plain SGD and zero visible biases.
      ``RBM(**BERNOULLI_RBM_COMPAT)`` (:data:`deepbelief.estimators.BERNOULLI_RBM_COMPAT`)
      runs scikit-learn's algorithm; the parameters both classes have (``n_components=256``,
      ``learning_rate`` 0.1 for Bernoulli units, ``batch_size=10``, ``n_iter=10``) have the
      same defaults. Left different even then: each epoch visits the rows in a fresh random
      order (scikit-learn always uses the same contiguous slices), and the persistent chains
      start at rows of the first minibatch (scikit-learn's at hidden states of zero).
    - ``visible="auto"`` picks Gaussian visible units for data outside [0, 1]; with Bernoulli
      visible units, values outside [0, 1] are refused at ``fit`` and clipped into [0, 1] at
      transform and score time, with a :class:`ClippedInputWarning` (scikit-learn uses them
      as they are).
    - :meth:`score_samples` is the exact pseudo-log-likelihood, summed over every feature, so
      it is deterministic; scikit-learn's flips one random feature per row and multiplies by
      the number of features (an unbiased estimate of the same number).
    - :meth:`partial_fit` runs one epoch over ``X`` in minibatches of ``batch_size``;
      scikit-learn makes one update with all of ``X`` (the same when ``X`` has at most
      ``batch_size`` rows).
    - ``fit`` and :meth:`score` record ``history_``; :meth:`score` is the mean
      log-likelihood (:meth:`log_likelihood`).

    Parameters
    ----------
    n_components : int, default 256
        Number of hidden units.
    learning_rate : float or "auto", default "auto"
        0.1 for Bernoulli visible units, 0.01 for Gaussian and ReLU ones (Hinton's guide).
    batch_size : int, default 10
    n_iter : int, default 10
        Epochs.
    verbose : int or bool, default 0
        1 prints scikit-learn's line after each epoch to standard output,
        ``[RBM] Iteration 1, pseudo-likelihood = -25.39, time = 0.12s`` (the mean
        pseudo-log-likelihood of the first 1000 training rows; for visible units other than
        Bernoulli, their reconstruction error instead); 2 and more also show a progress bar
        (on a terminal). Each epoch is logged at level INFO either way.
    random_state : None, int, numpy.random.RandomState or numpy.random.Generator
        Seeds the torch.Generator behind all randomness; same seed, same weights. A NumPy
        generator gives a seed drawn from it at each ``fit`` (and ``log_likelihood``).
    visible : "auto", str or Units, default "auto"
        "auto": Bernoulli units when every value lies in [0, 1], otherwise Gaussian units on
        standardised data (the choice is in ``visible_units_``). Names: "bernoulli",
        "gaussian", "gaussian-learned", "relu", "softmax", or a Units instance. Gaussian visible
        units always see standardised data.
    hidden : str or Units, default "bernoulli"
    sampler : {"cd", "pcd", "pt"} or Sampler, default "cd"
        A Sampler object (for example ``CD(1, reconstruction="sample")``) gives its settings;
        the estimator trains with a fresh copy.
    k : int, default 1
        Gibbs steps per update.
    n_chains : int, optional
        Persistent chains for "pcd" and "pt" (default: the batch size).
    n_temperatures : int, default 10
        Temperatures of "pt".
    lr_schedule : {"auto", "constant", "linear", "cosine"}, default "auto"
        "auto": constant for CD, decaying linearly to zero for PCD and PT (and constant in
        ``partial_fit``).
    momentum, final_momentum : float, default 0.5, 0.9
        Momentum for the first 5 epochs, then after.
    weight_decay : float, default 0
        L2 penalty on the weights only. Hinton's guide suggests 1e-4 or so; off by default,
        as in scikit-learn, because 2e-4 cost scikit-learn's RBM example 0.3 points of
        accuracy (benchmarks/RESULTS.md).
    l1 : float, default 0
    sparsity_target : float, optional
    sparsity_cost : float, default 0.1
    max_norm, clip_grad_norm : float, optional
    centering : bool, default False
        Centered gradients (Melchior et al. 2016; see :class:`deepbelief.training.RBMTrainer`,
        also for its caveat on long runs): the same model, learned faster early.
    sample_data : bool, default False
        Bernoulli visible units only: treat each value in [0, 1] as the probability of a 1 and
        train on a fresh binary draw of every batch ("dynamic binarization" of grey levels),
        instead of on the values themselves.
    init_visible_bias : bool, default True
        Start the visible biases from the training data's means (Hinton's guide: the log-odds
        for Bernoulli units); False starts them at zero, as ``BernoulliRBM`` does.
    dropout : float, default 0.0
        Probability of dropping each hidden unit in every training row's positive and
        negative phases (a dropout RBM, Srivastava et al. 2014; see
        :class:`deepbelief.training.RBMTrainer`); ``transform`` uses every unit, unscaled.
    device : str, default "auto"
        "auto" uses CUDA when available.
    dtype : {"float32", "float64"}, default "float32"
    checkpoint : path, optional
        Save the estimator (with sampler chains and RNG state) there after every
        ``checkpoint_every`` epochs; ``deepbelief.load(path).fit(X, resume=True)`` continues.
    checkpoint_every : int, default 1
    weight_std : float, default 0.01
        Standard deviation of the initial weights, N(0, weight_std^2).

    Attributes
    ----------
    model_ : deepbelief.nn.RBM
        The fitted PyTorch module.
    visible_units_ : str
        Name of the visible unit type used.
    components_ : ndarray of shape (n_components, n_features)
        The weights, as in BernoulliRBM. Settable (written into ``model_``); set on an unfitted
        estimator it builds the model (zero biases, no input scaling), ready for
        ``transform`` and ``partial_fit``; ``fit`` always starts afresh, as in scikit-learn.
    intercept_hidden_ : ndarray of shape (n_components,)
        Biases of the hidden units (settable).
    intercept_visible_ : ndarray of shape (n_features,)
        Biases of the visible units (settable; for Gaussian units, in the standardised scale).
    h_samples_ : ndarray of shape (n_chains, n_components)
        Hidden states of the persistent chains (``sampler="pcd"``, or the chains at
        temperature 1 of "pt"): a draw from ``p(h | v)`` for the chains' visible states, made
        with a copy of the training generator, so reading it changes nothing. Zeros before
        the first update, as in scikit-learn. Setting it sets the chains' visible states to a
        draw from ``p(v | h)``. With ``sampler="cd"`` there are no persistent chains and the
        attribute is absent (AttributeError).
    history_ : list of dict
        Per-epoch monitors (reconstruction error, pseudo-log-likelihood, ...).
    n_iter_ : int
        Epochs completed.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined only when ``X`` has feature names that are all strings.

    Examples
    --------
    >>> import numpy as np
    >>> from deepbelief import RBM
    >>> from deepbelief.estimators import BERNOULLI_RBM_COMPAT
    >>> X = np.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]])
    >>> RBM(n_components=2, random_state=0).fit(X).transform(X).shape
    (4, 2)
    >>> RBM(**BERNOULLI_RBM_COMPAT, n_components=2, random_state=0).fit(X).h_samples_.shape
    (4, 2)
    """

    def __init__(
        self,
        n_components=256,
        *,
        learning_rate="auto",
        batch_size=10,
        n_iter=10,
        verbose=0,
        random_state=None,
        visible="auto",
        hidden="bernoulli",
        sampler="cd",
        k=1,
        n_chains=None,
        n_temperatures=10,
        lr_schedule="auto",
        momentum=0.5,
        final_momentum=0.9,
        weight_decay=0.0,
        l1=0.0,
        sparsity_target=None,
        sparsity_cost=0.1,
        max_norm=None,
        clip_grad_norm=None,
        centering=False,
        sample_data=False,
        init_visible_bias=True,
        dropout=0.0,
        device="auto",
        dtype="float32",
        checkpoint=None,
        checkpoint_every=1,
        weight_std=0.01,
    ):
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.verbose = verbose
        self.random_state = random_state
        self.visible = visible
        self.hidden = hidden
        self.sampler = sampler
        self.centering = centering
        self.sample_data = sample_data
        self.init_visible_bias = init_visible_bias
        self.dropout = dropout
        self.k = k
        self.n_chains = n_chains
        self.n_temperatures = n_temperatures
        self.lr_schedule = lr_schedule
        self.momentum = momentum
        self.final_momentum = final_momentum
        self.weight_decay = weight_decay
        self.l1 = l1
        self.sparsity_target = sparsity_target
        self.sparsity_cost = sparsity_cost
        self.max_norm = max_norm
        self.clip_grad_norm = clip_grad_norm
        self.device = device
        self.dtype = dtype
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.weight_std = weight_std

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, resume: bool = False):
        """Train on ``X`` for ``n_iter`` epochs, from freshly initialised weights.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data (a sparse matrix is densified for training).
        y : ignored
        resume : bool, default False
            Continue an interrupted run (an estimator loaded from its ``checkpoint``) instead
            of starting afresh.

        Returns
        -------
        self
        """
        self._check_params()
        source = row_file_input(self, X)
        if source is not None:  # larger than memory: read a block at a time
            X = self._setup_rows(source, resume)
        elif resume and hasattr(self, "trainer_"):
            X = self._prepare(_dense(check_X(self, X, reset=False, accept_sparse=True)))
            self.trainer_.epochs = self.n_iter
        else:
            X = self._setup(_dense(check_X(self, X, reset=True, accept_sparse=True)), False)
        self._train(X)
        return self

    def _setup_rows(self, source: RowFile, resume: bool) -> RowFile:
        if resume and hasattr(self, "trainer_"):
            self.trainer_.epochs = self.n_iter
            if self.input_mean_ is not None:
                source.then(standardize(self.input_mean_, self.input_scale_))
            return source
        visible, mean, scale = prepare_row_file(self.visible, source)
        self._build(source.n_features, visible, False)
        self.input_mean_, self.input_scale_ = mean, scale
        source.dtype, source.device = self.model_.weight.dtype, self.model_.weight.device
        return source

    def partial_fit(self, X, y=None):
        """Train for one epoch on ``X`` (one pass in minibatches of ``batch_size``).

        The first call initialises the model, unless ``components_`` was set before.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self
        """
        self._check_params()
        if not hasattr(self, "model_"):
            X = self._setup(_dense(check_X(self, X, reset=True, accept_sparse=True)), True)
        else:
            X = self._prepare(_dense(check_X(self, X, reset=False, accept_sparse=True)))
        self.trainer_.epochs = self.trainer_.epoch + 1
        self._train(X)
        return self

    def _setup(self, X: np.ndarray, partial: bool) -> torch.Tensor:
        visible = choose_visible(self.visible, X)
        if isinstance(visible, BernoulliUnits):
            X = snap_unit_interval(X)
        self._build(X.shape[1], visible, partial)
        self.input_mean_, self.input_scale_ = fit_scaling(visible, X)
        with self.trainer_.thread_scope(len(X)):  # small problems: one thread, as training
            return self._prepare(X)

    def _build(self, n_features: int, visible: Units, partial: bool, **settings) -> None:
        """A fresh ``model_`` and ``trainer_`` (``settings`` overrides trainer settings)."""
        self.visible_units_ = visible.name
        self.input_mean_ = self.input_scale_ = None
        device = resolve_device(self.device)
        generator = make_generator(seed_from(self.random_state), device)
        self.model_ = RBMModule(
            n_features,
            self.n_components,
            visible=visible,
            hidden=self.hidden,
            generator=generator,
            weight_std=self.weight_std,
            dtype=_DTYPES[self.dtype],
            device=device,
        )
        lr = self.learning_rate
        if lr == "auto":
            lr = 0.1 if isinstance(visible, BernoulliUnits) else 0.01
        schedule = self.lr_schedule
        if partial and schedule == "auto":
            schedule = "constant"
        settings = {**self._trainer_settings(lr, schedule), **settings}
        self.trainer_ = RBMTrainer(self.model_, generator=generator, **settings)

    def _trainer_settings(self, learning_rate, lr_schedule=None) -> dict:
        """The :class:`RBMTrainer` settings the parameters give."""
        return dict(
            sampler=self.sampler,
            k=self.k,
            n_chains=self.n_chains,
            n_temperatures=self.n_temperatures,
            epochs=self.n_iter,
            batch_size=self.batch_size,
            learning_rate=learning_rate,
            lr_schedule=self.lr_schedule if lr_schedule is None else lr_schedule,
            momentum=self.momentum,
            final_momentum=self.final_momentum,
            weight_decay=self.weight_decay,
            l1=self.l1,
            sparsity_target=self.sparsity_target,
            sparsity_cost=self.sparsity_cost,
            max_norm=self.max_norm,
            clip_grad_norm=self.clip_grad_norm,
            centering=self.centering,
            sample_data=self.sample_data,
            init_visible_bias=self.init_visible_bias,
            dropout=self.dropout,
        )

    def _check_params(self) -> None:
        """Validate every parameter without touching data (``fit`` does it first; the command
        line before it reads a file); ValueError names the parameter and the value."""
        for name, low in (("n_components", 1), ("n_iter", 0), ("checkpoint_every", 1)):
            check(name, getattr(self, name), integer(low))
        if not isinstance(self.dtype, str) or self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        check("weight_std", self.weight_std, real(0, low_open=True))
        if not isinstance(self.verbose, bool):
            check("verbose", self.verbose, integer(0))
        _check_random_state(self.random_state)
        lr = self.learning_rate
        check_trainer_settings(self._trainer_settings(0.1 if lr == "auto" else lr))
        check_units(self.visible, "visible", allow_auto=True)
        check_units(self.hidden, "hidden")
        resolve_device(self.device)

    def _input_rbm(self):
        return self.model_

    def _train(self, X: torch.Tensor) -> None:
        callbacks = []
        shows = self.verbose and distributed.is_main()  # one process of a distributed run
        if shows:
            callbacks.append(IterationLines(type(self).__name__, X[:VERBOSE_ROWS]))
        if shows and self.verbose >= 2:
            callbacks.append(ProgressBar(desc="RBM"))
        if self.checkpoint is not None:
            callbacks.append(Checkpoint(self.checkpoint, self.checkpoint_every, source=self))
        self.trainer_.callbacks = callbacks
        level = logging.INFO if self.verbose else logging.DEBUG
        log.log(level, "RBM %s: training %d epochs", self.model_.extra_repr(), self.n_iter)
        self.trainer_.fit(X)
        self.n_iter_ = self.trainer_.epoch

    # ------------------------------------------------------------------ outputs
    def _output(self, result: torch.Tensor, like) -> np.ndarray:
        dtype = like.dtype if like.dtype in (np.float32, np.float64) else np.float64
        return result.detach().cpu().numpy().astype(dtype, copy=False)

    def _check_input(self, X):
        """``X`` validated at transform or score time: dense or CSR, and for Bernoulli visible
        units clipped into [0, 1] (with one :class:`ClippedInputWarning`)."""
        check_is_fitted(self)
        X = check_X(self, X, reset=False, accept_sparse=True)
        if isinstance(self.model_.visible, BernoulliUnits):
            X = clip_unit_interval(X)
        return X

    def _blocks(self, X):
        """The prepared tensors of consecutive blocks of rows of ``X`` (sparse blocks are
        densified one at a time)."""
        for block in _row_blocks(X):
            yield self._prepare(block)

    @torch.no_grad()
    def transform(self, X):
        """Hidden units' means ``E[h | v]``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_components)
            Of the dtype of ``X`` when it is float32 or float64, else float64.
        """
        X = self._check_input(X)
        means = [self.model_.hidden_mean(v) for v in self._blocks(X)]
        return self._output(torch.cat(means), X)

    @torch.no_grad()
    def reconstruct(self, X):
        """Mean-field reconstruction ``E[v | h = E[h | v]]`` of ``X``, in the scale of ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        X = self._check_input(X)
        parts = [self._restore_scale(self.model_.reconstruct(v)) for v in self._blocks(X)]
        return np.concatenate(parts)

    @torch.no_grad()
    def gibbs(self, v):
        """One Gibbs step ``v -> h -> v'`` from the rows of ``v``.

        Parameters
        ----------
        v : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_features)
            The sampled ``v'``, in the scale of ``v``.
        """
        X = self._check_input(v)
        generator = self.trainer_.generator
        parts = [
            self._restore_scale(self.model_.gibbs(block, 1, generator=generator))
            for block in self._blocks(X)
        ]
        return np.concatenate(parts)

    @torch.no_grad()
    def sample(self, n_samples=1, n_steps=1000):
        """Draw ``n_samples`` new rows by ``n_steps`` of Gibbs sampling from random starts
        (parallel tempering when the estimator was trained with ``sampler="pt"``)."""
        check_is_fitted(self)
        n_samples = check("n_samples", n_samples, integer(1))
        n_steps = check("n_steps", n_steps, integer(0))
        sampler = self.trainer_.sampler
        v = sampler.sample(self.model_, n_samples, n_steps, self.trainer_.generator)
        return self._restore_scale(v)

    @torch.no_grad()
    def score_samples(self, X):
        """Pseudo-log-likelihood of each row (Bernoulli visible units).

        Unlike scikit-learn's, which flips one random feature of each row and multiplies its
        term by the number of features (an unbiased estimate), every feature's conditional
        ``log p(v_i | v_-i)`` is computed and summed: the exact value, deterministic. For other
        visible units, the unnormalised log-density ``-F(v)`` of the (standardised) row.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        X = self._check_input(X)
        bernoulli = isinstance(self.model_.visible, BernoulliUnits)
        scores = [
            evaluation.pseudo_log_likelihood(self.model_, v, per_row=True)
            if bernoulli
            else -self.model_.free_energy(v)
            for v in self._blocks(X)
        ]
        return torch.cat(scores).detach().cpu().numpy().astype(np.float64)

    def log_likelihood(self, X, per_row=False, n_runs=100, betas=None):
        """Log-likelihood of the rows of ``X`` in nats (of the data as given: the scaling of
        Gaussian inputs is accounted for).

        ``log Z`` is exact when the smaller discrete layer has at most 2^20 states, else
        estimated by :func:`deepbelief.evaluation.ais_log_partition` with ``n_runs`` runs over
        ``betas`` (default: Salakhutdinov & Murray's 14,501 distributions), its base model
        fitted to ``X`` and its randomness seeded from ``random_state``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Densified whole (AIS fits its base model to all of it).
        per_row : bool, default False
        n_runs : int, default 100
        betas : sequence of float, optional

        Returns
        -------
        float, or ndarray of shape (n_samples,) with ``per_row=True``
        """
        v = self._prepare(_dense(self._check_input(X)))
        generator = make_generator(seed_from(self.random_state), v.device)
        rows = evaluation.log_likelihood(
            self.model_, v, per_row=True, n_runs=n_runs, betas=betas, generator=generator
        )
        rows = rows.cpu().numpy() - self._log_scale()
        return rows if per_row else float(rows.mean())

    def score(self, X, y=None):
        """Mean log-likelihood in nats (:meth:`log_likelihood`); higher is better."""
        return self.log_likelihood(X)

    # ------------------------------------------------------------------ attributes
    @property
    def history_(self) -> list[dict]:
        return self._fitted("history_", "trainer_").history

    @property
    def _n_features_out(self) -> int:
        """Number of output features (``get_feature_names_out``: ``rbm0``, ``rbm1``, ...)."""
        return self.model_.n_hidden

    @property
    def components_(self) -> np.ndarray:
        return self._fitted("components_", "model_").weight.detach().cpu().numpy().T.copy()

    @components_.setter
    def components_(self, value) -> None:
        if not hasattr(self, "model_"):
            self._build_from_components(value)
        shape = (self.model_.n_hidden, self.model_.n_visible)
        weights = _parameter_array("components_", value, shape, "(n_components, n_features)")
        self._write(self.model_.weight, weights.T)

    @property
    def intercept_hidden_(self) -> np.ndarray:
        bias = self._fitted("intercept_hidden_", "model_").hidden_bias
        return bias.detach().cpu().numpy().copy()

    @intercept_hidden_.setter
    def intercept_hidden_(self, value) -> None:
        self._needs_model("intercept_hidden_")
        shape = (self.model_.n_hidden,)
        self._write(
            self.model_.hidden_bias,
            _parameter_array("intercept_hidden_", value, shape, "(n_components,)"),
        )

    @property
    def intercept_visible_(self) -> np.ndarray:
        bias = self._fitted("intercept_visible_", "model_").visible_bias
        return bias.detach().cpu().numpy().copy()

    @intercept_visible_.setter
    def intercept_visible_(self, value) -> None:
        self._needs_model("intercept_visible_")
        shape = (self.model_.n_visible,)
        self._write(
            self.model_.visible_bias,
            _parameter_array("intercept_visible_", value, shape, "(n_features,)"),
        )
        self.trainer_.settings["init_visible_bias"] = False  # a first update keeps them

    @property
    def h_samples_(self) -> np.ndarray:
        chains = self._chains("h_samples_")
        dtype = self.model_.weight.dtype
        if chains is None:  # no update yet
            n = self.n_chains or self.batch_size
            return np.zeros((n, self.model_.n_hidden), dtype=_numpy_dtype(dtype))
        generator = self.trainer_.generator
        copy = torch.Generator(device=generator.device)
        copy.set_state(generator.get_state())
        with torch.no_grad():
            h = self.model_.sample_hidden(chains, generator=copy)
        return h.cpu().numpy()

    @h_samples_.setter
    def h_samples_(self, value) -> None:
        self._needs_model("h_samples_")
        sampler = self.trainer_.sampler
        if not hasattr(sampler, "chains"):
            raise ValueError(
                f"h_samples_: sampler {sampler.name!r} keeps no persistent chains; use "
                "sampler='pcd' (BERNOULLI_RBM_COMPAT) or 'pt'"
            )
        h = np.asarray(value, dtype=np.float64)
        if h.ndim != 2 or h.shape[1] != self.model_.n_hidden or len(h) < 1:
            raise ValueError(
                f"h_samples_ must have shape (n_chains, {self.model_.n_hidden}) "
                f"(n_chains, n_components), got {h.shape}"
            )
        w = self.model_.weight
        with torch.no_grad():
            h = torch.as_tensor(h, dtype=w.dtype, device=w.device)
            v = self.model_.sample_visible(h, generator=self.trainer_.generator)
        _set_chains(sampler, v)

    def _fitted(self, name: str, part: str):
        """The fitted ``part`` (``model_``, ``trainer_``) that attribute ``name`` reads;
        AttributeError naming ``name`` when there is none yet (it named ``part``)."""
        if part not in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r} (not fitted yet: "
                "call fit first)"
            )
        return self.__dict__[part]

    def _chains(self, name: str) -> torch.Tensor | None:
        """The visible states of the persistent chains at temperature 1 (None before the first
        update); AttributeError naming ``name`` for samplers without chains."""
        sampler = self._fitted(name, "trainer_").sampler
        if not hasattr(sampler, "chains"):
            raise AttributeError(
                f"{name} holds the persistent chains, and sampler {sampler.name!r} keeps none "
                "(use sampler='pcd', as BERNOULLI_RBM_COMPAT does, or 'pt')"
            )
        chains = sampler.chains
        return chains[0] if chains is not None and chains.dim() == 3 else chains

    def _needs_model(self, name: str) -> None:
        if not hasattr(self, "model_"):
            raise ValueError(
                f"cannot set {name} on an unfitted {type(self).__name__}: fit it, or set "
                "components_ first (it fixes the shape)"
            )

    def _build_from_components(self, value) -> None:
        """A model for weights set on an unfitted estimator: zero biases, no input scaling,
        Bernoulli visible units unless ``visible`` names others."""
        self._check_params()
        weights = np.asarray(value, dtype=np.float64)
        if weights.ndim != 2 or weights.shape[0] != self.n_components or weights.shape[1] < 1:
            raise ValueError(
                f"components_ must have shape (n_components={self.n_components}, n_features), "
                f"got {weights.shape}"
            )
        spec = self.visible
        visible = BernoulliUnits() if isinstance(spec, str) and spec == "auto" else spec
        self._build(weights.shape[1], units_from_spec(visible), True, init_visible_bias=False)
        with torch.no_grad():
            self.model_.hidden_bias.zero_()
            self.model_.visible_bias.zero_()
        self.n_features_in_ = weights.shape[1]
        self.n_iter_ = 0

    @staticmethod
    def _write(parameter: torch.Tensor, value: np.ndarray) -> None:
        with torch.no_grad():
            parameter.copy_(torch.as_tensor(value, dtype=parameter.dtype))

    # ------------------------------------------------------------------ files
    def save(self, path) -> None:
        """Save to ``path`` (safetensors + JSON; atomic); :func:`deepbelief.load` reads it."""
        save(self, path)

    def _to_state(self) -> dict:
        state = {"params": _params_to_state(self.get_params(deep=False))}
        if hasattr(self, "model_"):
            state["fitted"] = {
                **input_names_state(self),
                "visible_units": self.visible_units_,
                "input_mean": self.input_mean_,
                "input_scale": self.input_scale_,
                "n_iter": getattr(self, "n_iter_", 0),
                "trainer": self.trainer_._to_state(),
            }
        return state

    @classmethod
    def _from_state(cls, state: dict) -> RBM:
        est = cls(**_params_from_state(state["params"]))
        fitted = state.get("fitted")
        if fitted:
            restore_input_names(est, fitted)
            est.visible_units_ = fitted["visible_units"]
            est.input_mean_ = _as_array(fitted["input_mean"])
            est.input_scale_ = _as_array(fitted["input_scale"])
            est.n_iter_ = int(fitted["n_iter"])
            device = loading_device(est.device)
            est.trainer_ = RBMTrainer._from_state(fitted["trainer"], device=device)
            est.model_ = est.trainer_.model
        return est


def input_names_state(estimator) -> dict:
    """``n_features_in_`` and ``feature_names_in_`` (None without names) for a model file."""
    names = list(getattr(estimator, "feature_names_in_", [])) or None
    return {"n_features_in": estimator.n_features_in_, "feature_names_in": names}


def restore_input_names(estimator, fitted: dict) -> None:
    """Set what :func:`input_names_state` saved."""
    estimator.n_features_in_ = int(fitted["n_features_in"])
    if fitted["feature_names_in"]:
        estimator.feature_names_in_ = np.array(fitted["feature_names_in"], dtype=object)


class SavedRBMWrapper:
    """Saving and loading for an estimator built around a fitted :class:`RBM` (``rbm_``):
    its parameters, the RBM's own state, and the fitted attributes named in ``_FITTED``
    (arrays, numbers, strings, lists of dicts), with ``n_features_in_`` and
    ``feature_names_in_``. Loaded, the RBM goes to the wrapper's ``device``."""

    _FITTED: tuple[str, ...] = ()

    def save(self, path) -> None:
        """Save to ``path`` (safetensors + JSON; atomic); :func:`deepbelief.load` reads it."""
        save(self, path)

    def _to_state(self) -> dict:
        state = {"params": _params_to_state(self.get_params(deep=False))}
        if hasattr(self, "rbm_") and all(hasattr(self, f"{n}_") for n in self._FITTED):
            state["fitted"] = {
                "rbm": self.rbm_._to_state(),
                **input_names_state(self),
                **{name: getattr(self, f"{name}_") for name in self._FITTED},
            }
        return state

    @classmethod
    def _from_state(cls, state: dict):
        est = cls(**_params_from_state(state["params"]))
        fitted = state.get("fitted")
        if fitted:
            inner = {**fitted["rbm"], "params": {**fitted["rbm"]["params"], "device": est.device}}
            est.rbm_ = RBM._from_state(inner)
            restore_input_names(est, fitted)
            for name in cls._FITTED:
                value = fitted[name]
                setattr(est, f"{name}_", value.numpy() if torch.is_tensor(value) else value)
        return est


def _as_array(value):
    if value is None:
        return None
    return value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _parameter_array(name: str, value, shape: tuple, meaning: str) -> np.ndarray:
    """``value`` as a finite float64 array of ``shape``; ValueError naming ``name`` if not."""
    array = np.asarray(value, dtype=np.float64)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape} {meaning}, got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite (it holds NaN or inf)")
    return array


def _numpy_dtype(dtype: torch.dtype):
    return torch.empty(0, dtype=dtype).numpy().dtype


def _set_chains(sampler: Sampler, v: torch.Tensor) -> None:
    """Make ``v`` the visible states of ``sampler``'s chains (at temperature 1 for PT; the
    other temperatures start there too when the number of chains changes)."""
    if not isinstance(sampler, PT):
        sampler.chains = v
        return
    chains = sampler.chains
    if chains is None or chains.shape[1] != len(v):
        sampler.chains = v.unsqueeze(0).repeat(sampler.n_temperatures, 1, 1)
    else:
        chains = chains.clone()
        chains[0] = v
        sampler.chains = chains
