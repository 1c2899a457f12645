"""scikit-learn estimators built on Deep Belief Networks: DBNClassifier, DBNRegressor and the
unsupervised / generative DBN transformer.

Thin, like :mod:`deepbelief.estimators`: validate, build the DBN in ``fit``, pretrain it
greedily (:func:`deepbelief.training.pretrain_dbn`), then fine-tune the unfolded network whose
Linear layers are the RBMs' own Parameters (:mod:`deepbelief.finetune`).

``fit(..., checkpoint=path)`` keeps the whole training state in one file (kind
``"fit-checkpoint"``), so an interrupted fit resumes exactly where it stopped.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import time
import warnings
import weakref

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    ClassNamePrefixFeaturesOutMixin,
    RegressorMixin,
    TransformerMixin,
)
from sklearn.utils import ClassifierTags, _safe_indexing
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from . import distributed, errors, evaluation
from .errors import DataError, DivergenceError, ModelFileError, UndertrainedWarning
from .estimators import (
    _DTYPES,
    ScaledInputMixin,
    _as_array,
    _dense,
    _params_from_state,
    _params_to_state,
    _row_blocks,
    check_units,
    check_X,
    choose_visible,
    clip_unit_interval,
    fit_scaling,
    input_names_state,
    prepare_row_file,
    refuse_row_file,
    restore_input_names,
    row_file_input,
    seed_from,
    snap_unit_interval,
)
from .finetune import UpDown, evaluate, finetune
from .images import (
    check_conv_fit,
    check_conv_layers,
    check_image_shape,
    flatten_images,
    image_shape_for,
)
from .io import pack, read_file, register, save
from .label_training import LABEL_TRAINING, LabelBackprop, LabelTraining
from .loop import (
    AgreedInterrupt,
    Callback,
    clone_state,
    generator_state,
    loading_device,
    make_generator,
    resolve_device,
    set_generator_state,
)
from .nn.conv import ConvRBM
from .nn.dbn import DBN as DBNModule
from .nn.dbn import ConvDBN
from .nn.units import BernoulliUnits, GaussianUnits
from .progress import pretrain_desc, progress_callbacks
from .recipes import (
    PRESETS,
    PRETRAIN_SHARE,
    Deadline,
    TimeBudget,
    auto_learning_rate,
    check_preset,
    resolve,
)
from .settings import (
    FLAG,
    OPTIMIZERS,
    PROBABILITY,
    FinetuneSettings,
    check,
    check_trainer_settings,
    choice,
    integer,
    real,
)
from .streams import is_row_file
from .training import native_bfloat16, pretrain_dbn, spread_rows


def check_Xy(estimator, X, y, reset: bool, multi_output: bool = False):
    """Validate ``X`` and ``y`` together; bad labels raise :class:`DataError`. A sparse ``X``
    is accepted and returned densified (training needs every value)."""
    refuse_row_file(X)
    _check_finite_targets(y)
    try:
        _, y = validate_data(
            estimator,
            X,
            y,
            reset=reset,
            ensure_all_finite=False,
            multi_output=multi_output,
            y_numeric=False,
            dtype=None,
            accept_sparse=True,
        )
    except ValueError as exc:
        raise DataError(f"bad X or y: {exc}") from exc
    X = _dense(check_X(estimator, X, reset=False, accept_sparse=True))
    return X, y


def _check_finite_targets(y) -> None:
    """Name the first row whose target is NaN or infinite (numeric ``y`` only)."""
    if y is None:
        return  # scikit-learn's validation says that y is required
    try:
        values = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):  # labels as text: only missing ones to name
        missing = _is_missing(np.asarray(y, dtype=object))
        if missing.any():
            row = int(np.argwhere(missing)[0][0])
            raise DataError(
                f"y is missing at row {row} (counting from 0); remove the row or give its label"
            ) from None
        return
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        kind = "NaN" if np.isnan(values.flat[np.flatnonzero(bad)[0]]) else "infinity"
        raise DataError(f"y contains {kind} at row {row} (counting from 0); remove or impute it")


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _shown(label) -> str:
    """A label as a user wrote it: ``0.0`` or ``'yes'``, not ``np.float64(0.0)``."""
    return repr(label.item() if isinstance(label, np.generic) else label)


def _is_missing(y: np.ndarray) -> np.ndarray:
    """Where ``y`` holds NaN (numbers) or NaN, None or ``pd.NA`` (objects: text labels)."""
    if y.dtype.kind in "fc":
        return np.isnan(y)
    if y.dtype.kind != "O":
        return np.zeros(y.shape, bool)
    import pandas as pd  # (only for labels held as objects)

    return np.asarray(pd.isna(y), bool)


def _target_kind(y) -> str:
    """scikit-learn's ``type_of_target``, with its errors (NaN, ...) as :class:`DataError`."""
    try:
        return type_of_target(y)
    except ValueError as exc:
        raise DataError(f"bad y: {exc}") from exc


def _unit_parts(units) -> list:
    """The unit types of a layer: a mixed layer's parts, else the layer's own."""
    return [u for u, _ in units.parts] if units.name == "mixed" else [units]


#: Why a top RBM of Gaussian hidden units over Gaussian or ReLU visible units cannot be
#: sampled: the joint of linear units is a distribution only while the weights' largest
#: singular value stays under 1, which contrastive divergence does not keep.
IMPROPER_TOP = (
    "make a joint of linear units, which is a probability distribution only while its weights "
    "stay small, and its Gibbs chains diverged (label training, up-down, sampling); give "
    "the top layer bernoulli or relu hidden units"
)


def _linear_top_rbm(dbn: DBNModule) -> str | None:
    """The visible unit type ("gaussian", "relu") under Gaussian hidden units in the top RBM,
    when it has both; else None."""
    top = dbn.rbms[-1]
    unbounded = [u.name for u in _unit_parts(top.visible) if u.name in ("gaussian", "relu")]
    return unbounded[0] if top.hidden.name == "gaussian" and unbounded else None


def _check_top_rbm_is_proper(dbn: DBNModule) -> None:
    """Refuse (ValueError) a top RBM whose chains diverged on iris and digits:
    :data:`IMPROPER_TOP`."""
    visible = _linear_top_rbm(dbn)
    if visible:
        raise ValueError(
            f"Gaussian hidden units in the top RBM of a generative DBN, over its {visible} "
            f"visible units, {IMPROPER_TOP}"
        )


def _warn_if_regression_like(index: np.ndarray, n_classes: int) -> None:
    """Warn when most of the classes ``DBN.fit`` is about to learn hold one or two rows: the
    mark of a regression target of integers (a Pipeline passes ``y`` to every step;
    scikit-learn's diabetes target: 214 values, 152 of them on one or two of 442 rows)."""
    counts = np.bincount(index, minlength=n_classes)
    if n_classes > 10 and np.count_nonzero(counts <= 2) > n_classes / 2:
        rows = "a single row" if np.count_nonzero(counts == 1) > n_classes / 2 else "1 or 2 rows"
        errors.warn(
            f"DBN.fit learns y as {n_classes} class labels, most of them on {rows}; if y is "
            "a regression target (a Pipeline passes y to every step), set use_labels=False "
            "to learn the features alone",
            UserWarning,
        )


def _class_labels(y) -> tuple[np.ndarray, np.ndarray]:
    """``classes_`` and the index of each row's class; refuses NaN and single-class ``y``."""
    try:
        check_classification_targets(y)
    except ValueError as exc:
        raise DataError(f"y is not a set of class labels: {exc}") from exc
    y = np.asarray(y)
    if y.dtype.kind == "f" and np.isnan(y).any():
        row = int(np.flatnonzero(np.isnan(y))[0])
        raise DataError(f"y contains NaN at row {row} (counting from 0)")
    classes, index = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise DataError(
            f"y has only one class ({_shown(classes[0])}); a classifier needs at least two"
        )
    return classes, index


#: With ``checkpoint_every="auto"``, the least seconds between periodic checkpoint writes.
CHECKPOINT_SECONDS = 30.0
#: Rows for which the parameters are checked before any data is seen.
_NOMINAL_ROWS = 1000
#: How many times the size rule's epochs a time budget may plan for an "auto" setting.
BUDGET_GROWTH = 10
#: Fine-tuning that ends with the training loss above this fraction of its start warns.
BARELY_TRAINED = 0.9
#: ... and above this many times its start, the advice is a smaller learning rate.
GREW = 1.5
#: Up-down epochs of ``DBN(up_down_epochs="auto")`` for a label model of two or more hidden
#: layers (on MNIST's hinton2006 preset, 3 of them raised the recognised class-conditional
#: samples from 95.7 % to 97.1 % and kept the label error: benchmarks/RESULTS.md).
AUTO_UP_DOWN_EPOCHS = 5

#: A pretrained layer of binary hidden units whose mean activations vary less than this over
#: the training rows (their standard deviation, averaged over the units) is constant: it and
#: the layers above start fine-tuning from random weights (``_restart_constant_layers``).
CONSTANT_FEATURES = 1e-3
#: ... measured on at most this many rows, spread over the data.
CONSTANT_CHECK_ROWS = 2048

FIT_CHECKPOINT = "fit-checkpoint"
#: The advice of a checkpoint refused because the fit's data or settings changed.
RESTART_ADVICE = "delete it (or pass another path) to start afresh"


def _constant_advice(dbn) -> str:
    """What to do about constant features: for a conv stack, a lower rate; for Bernoulli
    visible units, Gaussian ones."""
    if isinstance(dbn, ConvDBN):
        return (
            "; a lower pretraining learning rate (pretrain_learning_rate; --pretrain-lr) may help"
        )
    if not isinstance(dbn.input_units, BernoulliUnits):
        return ""
    return (
        "; Bernoulli visible units learn nothing from columns that vary independently of one "
        "another: Gaussian units on standardised inputs usually suit them (visible='gaussian'; "
        "--visible gaussian)"
    )


@torch.no_grad()
def _first_constant_layer(dbn, X) -> int | None:
    """The index of the first of ``dbn``'s dense RBMs of binary hidden units whose features
    vary less than :data:`CONSTANT_FEATURES` over rows of ``X`` (at most
    :data:`CONSTANT_CHECK_ROWS`, spread over it); None when there is none."""
    if dbn.n_labels:
        return None
    rows = spread_rows(X, CONSTANT_CHECK_ROWS)
    x = rows[:] if is_row_file(rows) else rows
    for i, rbm in enumerate(dbn.rbms):
        x = rbm.output(x)
        if isinstance(rbm.hidden, BernoulliUnits) and len(x) > 1:
            if float(x.std(dim=0).mean()) < CONSTANT_FEATURES:
                return i
    return None


def _check_checkpoint_every(every) -> int | str:
    if isinstance(every, str) and every == "auto":
        return every
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
        raise ValueError(
            f"checkpoint_every must be an integer >= 1 (epochs) or 'auto', got {every!r}"
        )
    return int(every)


def _sha256(values) -> str:
    """SHA-256 of an array's shape and values (as float64 for numbers, else their reprs; a
    RowFile's as it is in its file, a block at a time)."""
    if is_row_file(values):
        digest = hashlib.sha256(repr(values.shape).encode())
        step = values.chunk_rows  # (blocks of a few MB, however wide the rows)
        for start in range(0, len(values), step):
            digest.update(values.read(start, min(len(values), start + step)).tobytes())
        return digest.hexdigest()
    array = np.asarray(values)
    digest = hashlib.sha256(repr(array.shape).encode())
    if array.dtype.kind in "biuf":
        digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    else:
        digest.update(repr(array.ravel().tolist()).encode())
    return digest.hexdigest()


def _fingerprint(estimator, X, y) -> dict:
    """What a checkpoint must match to be resumed: the estimator, its parameters (all but
    ``verbose``) and the data."""
    params = _params_to_state(estimator.get_params(deep=False))
    params.pop("verbose", None)
    return {
        "estimator": type(estimator).__name__,
        "params": params,
        "X_shape": list(np.shape(X)),
        "X_sha256": _sha256(X),
        "y_sha256": None if y is None else _sha256(y),
    }


def _canonical(value) -> str:
    """A parameter's value (as :func:`_params_to_state` gives it) as text that is the same
    for equal values (a tuple and a list of the same numbers too)."""
    tree, tensors = pack(value)
    return json.dumps([tree, {k: t.tolist() for k, t in tensors.items()}], sort_keys=True)


#: The parameters that give a fitted network its shape: a warm start cannot change them.
SHAPE_PARAMS = ("hidden_layers", "conv_layers", "image_shape", "visible", "hidden", "dtype")


def _shape_changes(before: dict, now: dict) -> list[str]:
    """``name=before (now ...)`` for each of :data:`SHAPE_PARAMS` that ``now`` (settings)
    changes."""

    def plain(name, value):  # (16,), [16], 16 and np.int64(16) alike
        if name == "hidden_layers" and isinstance(value, (int, np.integer)):
            value = [value]
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if isinstance(value, (list, tuple)):
            return [plain(None, v) for v in value]
        return int(value) if isinstance(value, np.integer) else value

    before, now = _params_to_state(before), _params_to_state(now)
    return [
        f"{k}={before.get(k)!r} (now {now.get(k)!r})"
        for k in SHAPE_PARAMS
        if _canonical(plain(k, before.get(k))) != _canonical(plain(k, now.get(k)))
    ]


def _fingerprint_mismatch(saved: dict, current: dict) -> str | None:
    """How a checkpoint's fingerprint differs from the current fit's (None: it matches)."""
    canonical = _canonical
    if saved.get("estimator") != current["estimator"]:
        return f"it was made by {saved.get('estimator')}, not {current['estimator']}"
    stored = saved.get("params") or {}
    names = sorted(set(stored) | set(current["params"]))
    changed = [
        f"{k}={stored.get(k)!r} (now {current['params'].get(k)!r})"
        for k in names
        if canonical(stored.get(k)) != canonical(current["params"].get(k))
    ]
    if changed:
        return "it was made with different parameters: " + ", ".join(changed)
    if list(saved.get("X_shape") or []) != current["X_shape"]:
        shape = tuple(saved.get("X_shape") or ())
        return f"it was made for X of shape {shape}, not {tuple(current['X_shape'])}"
    if saved.get("X_sha256") != current["X_sha256"]:
        return "it was made for different X (same shape, other values)"
    if saved.get("y_sha256") != current["y_sha256"]:
        return "it was made for a different y"
    return None


#: The float64 copies predictions use, by the module they copy (dropped with it).
_FLOAT64_COPIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def float64_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A float64 copy of ``module`` in eval mode, for computing with (never to train): made
    once and kept while the module's parameters and buffers stay as they are (any change in
    place, or a move to another device or dtype, makes a new one). Repeated calls, a row at
    a time, no longer copy the whole model each time."""
    tensors = [*module.parameters(), *module.buffers()]
    key = [(t.data_ptr(), t._version, t.device, t.dtype, t.shape) for t in tensors]
    kept = _FLOAT64_COPIES.get(module)
    if kept is not None and kept[0] == key:
        return kept[1]
    exact = copy.deepcopy(module).to(torch.float64).eval()
    _FLOAT64_COPIES[module] = (key, exact)
    return exact


class _FitCheckpoint:
    """The checkpoint file of one ``fit`` call (inactive when ``path`` is None).

    Each phase names the function that builds its current state (:meth:`track`); the file
    is written every ``every`` epochs of a phase, at the end of each phase, and on
    KeyboardInterrupt or divergence, when the fit loop holds its last completed update (a
    mid-epoch one too), so a resumed fit continues exactly from there. Checks the fingerprint
    of a file it resumes from.
    """

    def __init__(self, path, every: int, fingerprint: dict | None, phases: tuple[str, ...]):
        self.path, self.every, self.fingerprint, self.phases = path, every, fingerprint, phases
        self.current = None
        self.written = time.perf_counter()
        self.clock = None  # seconds the fit has run, resumed parts included (a Deadline's)

    def load(self) -> dict | None:
        """The state to resume from; None when there is no file (a fresh start). In a
        distributed run, rank 0 decides whether there is one (every process reads it)."""
        if distributed.is_distributed():
            self._check_same_on_every_process()
        if self.path is None or not distributed.main_says(os.path.lexists(self.path)):
            return None
        kind, tree = read_file(self.path)
        if kind != FIT_CHECKPOINT or not isinstance(tree, dict) or "fingerprint" not in tree:
            raise ModelFileError(f"{self.path}: not a fit checkpoint (it holds a {kind!r})")
        tree = distributed.own_state(tree)  # of a distributed run: this process's part
        problem = _fingerprint_mismatch(tree["fingerprint"], self.fingerprint)
        if problem:
            raise ModelFileError(
                f"{self.path}: refusing to resume from this checkpoint: {problem}",
                RESTART_ADVICE,
            )
        if tree.get("phase") not in self.phases:
            phase = tree.get("phase")
            raise ModelFileError(f"{self.path}: fit checkpoint of unknown phase {phase!r}")
        return tree

    def _check_same_on_every_process(self) -> None:
        """The processes of a distributed run write their checkpoints together: each must be
        given one (the same), at the same interval, or none may."""
        mine = "no checkpoint" if self.path is None else f"checkpoint_every={self.every!r}"
        seen = distributed.gathered_objects(mine)
        if len(set(seen)) > 1:
            each = ", ".join(f"rank {rank}: {given}" for rank, given in enumerate(seen))
            raise ValueError(
                f"the processes of this distributed run were given different checkpoints ({each});"
                " pass the same checkpoint and checkpoint_every to fit on every process"
            )

    def track(self, state) -> None:
        """From now on, ``state()`` builds the state to write."""
        self.current = state

    def keep(self, epoch: int) -> None:
        """Write the state at the end of ``epoch`` of a phase: every ``every`` epochs, or with
        ``every="auto"`` when :data:`CHECKPOINT_SECONDS` have passed since the last write."""
        if self.every == "auto":
            due = time.perf_counter() - self.written >= CHECKPOINT_SECONDS
            if self.path is not None:  # the processes of a distributed run write together
                due = distributed.agree(due)
        else:
            due = epoch % self.every == 0
        if due:
            self.save()

    def save(self, together: bool = True) -> None:
        """Write the current state (atomically). In a distributed run, rank 0 writes, with
        what each process holds of its own (chains, random streams) when the processes call
        this ``together`` at the same point of training; else rank 0's state alone."""
        if self.path is None or self.current is None:
            return
        tree = {"fingerprint": self.fingerprint, **self.current()}
        if self.clock is not None:  # a resumed time budget goes on from here
            tree["seconds"] = float(self.clock())
        distributed.write_together(self.path, FIT_CHECKPOINT, tree, together)
        self.written = time.perf_counter()

    @contextlib.contextmanager
    def saved_on_interrupt(self):
        """On KeyboardInterrupt or divergence, write the state of the last completed update,
        then re-raise (every process of a distributed run together when they all stopped
        after the same update: an agreed interrupt or a divergence)."""
        try:
            yield
        except DivergenceError:
            self.save()
            raise
        except KeyboardInterrupt as exc:
            self.save(together=isinstance(exc, AgreedInterrupt))
            raise


class _Tracked(Callback):
    """Points a :class:`_FitCheckpoint` at a fit loop's state when the loop starts
    (``state(loop)`` builds it) and writes it after every ``every`` epochs."""

    def __init__(self, ckpt: _FitCheckpoint, state):
        self.ckpt, self.state = ckpt, state

    def on_train_begin(self, loop):
        self.ckpt.track(lambda: self.state(loop))

    def on_epoch_end(self, loop, metrics):
        self.ckpt.keep(loop.epoch)


class _DBNBase(ScaledInputMixin, BaseEstimator):
    """Shared machinery: preprocessing, building and greedy pretraining of ``dbn_``."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # densified for training, in row blocks afterwards
        return tags

    def _forget_fit(self) -> None:
        """Drop what an earlier fit learned (scikit-learn's fitted attributes: a trailing
        underscore), so that a fit that fails part way leaves no mix of two fits."""
        for name in [k for k in vars(self) if k.endswith("_") and not k.endswith("__")]:
            delattr(self, name)

    def _check_input(self, X):
        """``X`` validated at predict, transform or score time: dense or CSR, and for Bernoulli
        visible units clipped into [0, 1] (with one :class:`ClippedInputWarning`; ``fit``
        refuses such values instead)."""
        check_is_fitted(self)
        X = check_X(self, self._flat(X), reset=False, accept_sparse=True)
        if isinstance(self._input_units(), BernoulliUnits):
            X = clip_unit_interval(X)
        return X

    def _conv_specs(self) -> list[tuple[int, int, int]]:
        """The conv layers below the dense ones (none for the transformer)."""
        if "conv_layers" not in vars(self):  # not a parameter (get_params: 0.5 ms a call)
            return []
        return check_conv_layers(self._s("conv_layers"))

    def _flat(self, X):
        """Images ``(n, H, W)`` or ``(n, C, H, W)`` as flat rows (conv estimators only); the
        shape, at fit time, in ``_images``."""
        refuse_row_file(X)
        if not self._conv_specs():
            return X
        X, self._images = flatten_images(X)
        return X

    def _blocks(self, X):
        """The prepared tensors of consecutive blocks of rows of ``X`` (a sparse ``X`` is
        densified one block at a time)."""
        for block in _row_blocks(X):
            yield self._prepare(block)

    def _values(self, n_rows: int) -> dict:
        """The parameters training uses for ``n_rows`` rows (subclasses resolve "auto")."""
        return self.get_params(deep=False)

    def _s(self, name: str):
        """The value of parameter ``name`` that training uses: the resolved one from the start
        of ``fit`` on (see ``settings_``), else the parameter as given."""
        active = self.__dict__.get("_active")
        return getattr(self, name) if active is None else active[name]

    def _check_common_params(self):
        layers = given = self._s("hidden_layers")
        if isinstance(layers, np.ndarray):  # as scikit-learn's MLP takes its sizes
            layers = layers.tolist()
        if isinstance(layers, (int, np.integer)):
            layers = (layers,)
        if self._conv_specs() and isinstance(layers, (list, tuple)) and not layers:
            return []  # conv layers alone
        if (
            not isinstance(layers, (list, tuple))
            or not layers
            or any(not isinstance(n, (int, np.integer)) or n < 1 for n in layers)
        ):
            raise ValueError(f"hidden_layers must be positive integers, got {given!r}")
        if not isinstance(self.dtype, str) or self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        return [int(n) for n in layers]

    def _check_base_params(self) -> list[int]:
        """The checks every DBN estimator shares; returns the hidden layer sizes."""
        layers = self._check_common_params()
        check_units(self.visible, "visible", allow_auto=True)
        check_units(self.hidden, "hidden")
        if isinstance(self.hidden, (list, tuple)) and len(self.hidden) != len(layers):
            raise ValueError(f"hidden lists {len(self.hidden)} unit types for {len(layers)} layers")
        check_image_shape(getattr(self, "image_shape", None))
        layers = [None] * len(self._conv_specs()) + layers  # every RBM, conv layers first
        epochs = self._s("pretrain_epochs")
        for value in epochs if isinstance(epochs, (list, tuple)) else [epochs]:
            check("pretrain_epochs", value, integer(0))
        if isinstance(epochs, (list, tuple)) and len(epochs) != len(layers):
            raise ValueError(
                f"pretrain_epochs lists {len(epochs)} epoch counts for {len(layers)} layers"
            )
        check("pretrain_batch_size", self._s("pretrain_batch_size"), integer(1))
        check("k", self.k, integer(1))
        check("weight_std", self.weight_std, real(0, low_open=True))
        check("verbose", self.verbose, integer(0))
        check("sample_inputs", self.sample_inputs, FLAG)
        check("pretrain_dropout", self.pretrain_dropout, PROBABILITY)
        lr = self.pretrain_learning_rate
        if not (isinstance(lr, str) and lr == "auto"):
            check("pretrain_learning_rate", lr, real(0, low_open=True))
        overrides = self.layer_params or []
        if (
            not isinstance(overrides, (list, tuple))
            or len(overrides) > len(layers)
            or not all(isinstance(o, dict) for o in overrides)
        ):
            raise ValueError(
                f"layer_params must be a list of at most {len(layers)} dicts (one per layer), "
                f"got {self.layer_params!r}"
            )
        for i, settings in enumerate(self._layer_settings_for([0.1] * len(layers))):
            check_trainer_settings(settings, f"layer {i + 1}: " if i < len(overrides) else "")
        resolve_device(self.device)
        return layers

    def _layer_settings(self, dbn: DBNModule) -> list[dict]:
        rates = []
        for i, rbm in enumerate(dbn.rbms):
            if isinstance(rbm, ConvRBM):  # a filter's gradient sums over every position
                positions = rbm.map_shape[0] * rbm.map_shape[1]
                rates.append((0.5 if rbm.visible.name == "bernoulli" else 0.05) / positions)
                continue
            parts = _unit_parts(rbm.visible)
            binary = all(isinstance(u, BernoulliUnits) or u.discrete for u in parts)
            above_conv = i > 0 and isinstance(dbn.rbms[i - 1], ConvRBM)
            unbounded = rbm.hidden.name == "relu" and any(
                isinstance(u, GaussianUnits) for u in parts
            )  # Gaussian into ReLU units diverged at 0.01 on standardized digits
            if rbm.hidden.name == "gaussian" or unbounded:  # linear: lower (Hinton's guide)
                rates.append(0.001)
            else:
                rates.append(0.1 if binary and not above_conv else 0.01)
        return self._layer_settings_for(rates)

    def _layer_settings_for(self, auto_rates: list[float]) -> list[dict]:
        """Each layer's RBMTrainer settings; ``auto_rates`` replace the "auto" rate."""
        overrides = list(self.layer_params or [])
        overrides += [{}] * (len(auto_rates) - len(overrides))
        settings = []
        epochs = self._s("pretrain_epochs")
        if not isinstance(epochs, (list, tuple)):
            epochs = [epochs] * len(auto_rates)
        for auto, extra, layer_epochs in zip(auto_rates, overrides, epochs):
            lr = self.pretrain_learning_rate
            base = dict(
                sampler=self.sampler,
                k=self.k,
                centering=self.centering,
                dropout=self.pretrain_dropout,
                epochs=layer_epochs,
                batch_size=self._s("pretrain_batch_size"),
                learning_rate=auto if isinstance(lr, str) and lr == "auto" else lr,
                monitor_rows=500,
            )
            base.update(extra)
            settings.append(base)
        return settings

    def _build_dbn(self, X, n_labels: int = 0):
        """``dbn_`` for ``X`` (an array, or a RowFile), and ``X`` ready for it."""
        sizes = [X.shape[1], *self._check_common_params()]
        convs = self._conv_specs()
        if convs:
            if is_row_file(X):
                raise DataError("conv layers train on images in memory, not on a RowFile")
            units = self.visible
            if not isinstance(units, str) and not isinstance(
                units, (BernoulliUnits, GaussianUnits)
            ):
                raise DataError(
                    "conv layers read images or numeric rows (Bernoulli or Gaussian visible "
                    f"units), not {units.name!r} units: categorical columns (one-hot groups) "
                    "have no pixels to convolve; drop the conv layers or the text columns"
                )
            image = image_shape_for(X.shape[1], self.image_shape, self.__dict__.get("_images"))
            try:
                check_conv_fit(image, convs)
            except DataError as exc:
                preset = getattr(self, "preset", None)
                if preset is None or getattr(self, "conv_layers", None) is not None:
                    raise
                raise DataError(f"{exc} (the conv layers of preset {preset!r})") from exc
            self.image_shape_ = image
        if is_row_file(X):
            visible, *scaling = prepare_row_file(self.visible, X)
        else:
            visible = choose_visible(self.visible, X)
            scaling = fit_scaling(visible, X)
        self.visible_units_ = visible.name
        self.input_mean_, self.input_scale_ = scaling
        device = resolve_device(self.device)
        self.generator_ = make_generator(seed_from(self.random_state), device)
        kw = dict(generator=self.generator_, weight_std=self.weight_std)
        kw.update(dtype=_DTYPES[self.dtype], device=device)
        if convs:
            self.dbn_ = ConvDBN.from_specs(
                self.image_shape_, convs, sizes[1:], visible, self.hidden, **kw
            )
        else:
            self.dbn_ = DBNModule.from_sizes(sizes, visible, self.hidden, n_labels=n_labels, **kw)
        if is_row_file(X):
            X.dtype, X.device = _DTYPES[self.dtype], device
            return X
        if isinstance(visible, BernoulliUnits):
            X = snap_unit_interval(X)
        return self._prepare(X)

    def _open_checkpoint(self, path, every: int, X, y) -> tuple[_FitCheckpoint, dict | None]:
        """The fit's checkpoint and the state it resumes from (loaded into ``dbn_``)."""
        fingerprint = None if path is None else _fingerprint(self, X, y)
        ckpt = _FitCheckpoint(path, every, fingerprint, self._phases)
        saved = ckpt.load()
        # the time budget, the seconds spent before an interruption counted
        self._deadline = Deadline(self._time_budget(), spent=(saved or {}).get("seconds", 0.0))
        ckpt.clock = self._deadline.spent
        if saved is not None:
            if saved["dbn"]["untied"]:
                self.dbn_.untie()
            self.dbn_.load_state_dict(saved["dbn"]["state_dict"])
        return ckpt, saved

    def _dbn_state(self) -> dict:
        return {"untied": self.dbn_.untied, "state_dict": dict(self.dbn_.state_dict())}

    def _time_budget(self) -> float | None:
        """Seconds for the whole fit (None: no budget)."""
        return self.time_budget

    def _pretrain(self, X, labels=None, ckpt=None, resume=None) -> None:
        """Greedy pretraining, from ``resume`` (a checkpoint's ``"pretrain"`` part) when given;
        ``ckpt`` notes the state after every epoch."""
        ckpt = ckpt if ckpt is not None else _FitCheckpoint(None, 1, None, ())
        histories = list(resume["histories"]) if resume else []  # of the finished layers

        def callbacks(i):
            budget = self._pretrain_budget(i)
            return budget + progress_callbacks(pretrain_desc(self.dbn_, i), self.verbose)

        def begin(i, trainer, input_states):
            def state(t):
                return self._pretrain_state(i, t, input_states, histories)

            trainer.callbacks.append(_Tracked(ckpt, state))

        def end(i, trainer, input_states):
            ckpt.save()
            histories.append(trainer.history)

        pretrain_dbn(
            self.dbn_,
            X,
            self._layer_settings(self.dbn_),
            labels=labels,
            sample_inputs=self.sample_inputs,
            generator=self.generator_,
            callbacks_for_layer=callbacks,
            resume=resume,
            on_layer_begin=begin,
            on_layer_end=end,
        )
        self.pretrain_history_ = histories

    def _pretrain_budget(self, layer: int) -> list:
        """Callbacks that keep the pretraining of ``layer`` within its time (none here)."""
        return []

    def _pretrain_state(self, layer, trainer, input_states, histories) -> dict:
        pretrain = {
            "layer": layer,
            "trainer": trainer.state_dict(),
            "input_states": input_states,  # the generator before each propagation below
            "histories": histories,
        }
        return {"phase": "pretrain", "dbn": self._dbn_state(), "pretrain": pretrain}

    def _input_rbm(self):
        return self.dbn_.rbms[0]

    def _input_units(self):
        """The units that see ``X`` (a classification RBM's first part: the rest are labels)."""
        return self.dbn_.input_units

    def save(self, path) -> None:
        """Save to ``path`` (safetensors + JSON; atomic); :func:`deepbelief.load` reads it."""
        save(self, path)

    def _common_state(self) -> dict:
        return {
            **input_names_state(self),
            "visible_units": self.visible_units_,
            "input_mean": self.input_mean_,
            "input_scale": self.input_scale_,
            "dbn": self.dbn_._to_state(),
            "generator": generator_state(self.generator_),
            "pretrain_history": getattr(self, "pretrain_history_", []),
            "image_shape": list(getattr(self, "image_shape_", [])) or None,
        }

    def _restore_common(self, fitted: dict) -> None:
        restore_input_names(self, fitted)
        self.visible_units_ = fitted["visible_units"]
        self.input_mean_ = _as_array(fitted["input_mean"])
        self.input_scale_ = _as_array(fitted["input_scale"])
        self.dbn_ = DBNModule._from_state(fitted["dbn"]).to(loading_device(self.device))
        self.generator_ = make_generator(0, self.dbn_.rbms[0].weight.device)
        set_generator_state(self.generator_, fitted["generator"])
        self.pretrain_history_ = fitted["pretrain_history"]
        if fitted.get("image_shape"):
            self.image_shape_ = tuple(fitted["image_shape"])


class _SupervisedDBN(_DBNBase):
    """Greedy pretraining, then backprop fine-tuning that starts from the pretrained weights."""

    _task = ""

    def __init__(
        self,
        hidden_layers="auto",
        *,
        conv_layers=None,
        image_shape=None,
        unlabeled=None,
        visible="auto",
        hidden="bernoulli",
        pretrain=True,
        pretrain_epochs="auto",
        pretrain_learning_rate="auto",
        pretrain_batch_size="auto",
        sampler="cd",
        k=1,
        centering=False,
        pretrain_dropout=0.0,
        layer_params=None,
        sample_inputs=False,
        weight_std=0.1,
        epochs="auto",
        batch_size="auto",
        optimizer="auto",
        learning_rate="auto",
        momentum=0.9,
        weight_decay=0.0,
        dropout="auto",
        input_dropout="auto",
        max_norm=None,
        lr_schedule="auto",
        early_stopping="auto",
        validation_fraction="auto",
        n_iter_no_change="auto",
        average_epochs=0,
        head_epochs=0,
        warm_start=False,
        mixed_precision=None,
        preset=None,
        time_budget=None,
        random_state=None,
        device="auto",
        dtype="float32",
        verbose=0,
    ):
        self.hidden_layers = hidden_layers
        self.conv_layers = conv_layers
        self.image_shape = image_shape
        self.unlabeled = unlabeled
        self.visible = visible
        self.hidden = hidden
        self.pretrain = pretrain
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_learning_rate = pretrain_learning_rate
        self.pretrain_batch_size = pretrain_batch_size
        self.sampler = sampler
        self.k = k
        self.centering = centering
        self.pretrain_dropout = pretrain_dropout
        self.layer_params = layer_params
        self.sample_inputs = sample_inputs
        self.weight_std = weight_std
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.input_dropout = input_dropout
        self.max_norm = max_norm
        self.lr_schedule = lr_schedule
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.average_epochs = average_epochs
        self.head_epochs = head_epochs
        self.warm_start = warm_start
        self.mixed_precision = mixed_precision
        self.preset = preset
        self.time_budget = time_budget
        self.random_state = random_state
        self.device = device
        self.dtype = dtype
        self.verbose = verbose

    _phases = ("pretrain", "finetune", "refit")

    def _check_params(self) -> None:
        """Validate every parameter without touching data (``fit`` does it first; the command
        line before it reads a file); ValueError names the parameter and the value."""
        check_preset(self.preset)
        if self.time_budget is not None:
            check("time_budget", self.time_budget, real(0, low_open=True))
        check("optimizer", self.optimizer, choice("auto", *OPTIMIZERS))  # before "auto" resolves
        if not (isinstance(self.epochs, str) and self.epochs == "auto"):
            check("epochs", self.epochs, integer(0))
        self._active = self._values(_NOMINAL_ROWS)  # fit resolves "auto" for its data
        self._check_base_params()
        for name in ("pretrain", "early_stopping", "warm_start"):
            check(name, self._s(name), FLAG)
        lr = self._s("learning_rate")
        if not (isinstance(lr, str) and lr == "auto"):
            check("learning_rate", lr, real(0, low_open=True))
        for name in ("dropout", "input_dropout"):
            check(name, self._s(name), PROBABILITY)
        fraction = real(0, 1, low_open=True, high_open=True)
        check("validation_fraction", self._s("validation_fraction"), fraction)
        check("n_iter_no_change", self._s("n_iter_no_change"), integer(1))
        if self._s("mixed_precision") not in (None, True, False, "auto"):
            raise ValueError(
                f"mixed_precision must be None, True, False or 'auto', got {self.mixed_precision!r}"
            )
        FinetuneSettings(task=self._task, **self._finetune_settings())

    def _values(self, n_rows: int) -> dict:
        """The parameters with every "auto" resolved for ``n_rows`` training rows: the
        preset's value, else :func:`deepbelief.recipes.size_settings`'."""
        return resolve(self.get_params(deep=False), self._task, n_rows)

    def _finetune_settings(self) -> dict:
        """The :func:`deepbelief.finetune.finetune` settings the parameters give."""
        optimizer, learning_rate = self._optimizer_settings()
        return dict(
            epochs=self._s("epochs"),
            batch_size=self._s("batch_size"),
            optimizer=optimizer,
            learning_rate=learning_rate,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            max_norm=self.max_norm,
            lr_schedule=self._s("lr_schedule"),
            head_epochs=self.head_epochs,
            early_stopping=self._s("n_iter_no_change") if self._s("early_stopping") else None,
            average_epochs=self.average_epochs,
        )

    def __sklearn_is_fitted__(self) -> bool:
        """Fitted once fine-tuned: a fit stopped in pretraining (a divergence) is not."""
        return hasattr(self, "network_")

    # subclasses: _targets(y, reset) -> (tensor, n_outputs); _head_name
    def fit(self, X, y, *, checkpoint=None, checkpoint_every=1):
        """Pretrain (unless ``pretrain=False`` or a ``warm_start`` refit), then fine-tune.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        checkpoint : str or path-like, optional
            A file for the whole training state, written atomically every
            ``checkpoint_every`` epochs of every phase (each pretraining layer, then
            fine-tuning), at the end of each phase and, on KeyboardInterrupt, as of the last
            completed epoch. When the file exists, fit resumes from it, skipping the
            completed work, and ends with exactly the model that an uninterrupted fit with
            the same ``random_state`` gives. A file made with other parameters or other data is
            refused. The file stays on disk after the fit (a later fit with it returns the
            same model at once); the caller may delete it.
        checkpoint_every : int or "auto", default 1
            Epochs between periodic writes; "auto": at the end of the first epoch after
            ``CHECKPOINT_SECONDS`` (30 s) since the last write (the phases' ends and
            interruptions are always written).

        Returns
        -------
        self

        Raises
        ------
        deepbelief.errors.ModelFileError
            When ``checkpoint`` is corrupt or was made with other parameters or data.
        ValueError
            When ``checkpoint_every < 1``, or a ``checkpoint`` is given to a ``warm_start``
            refit (which continues the fitted model instead).
        """
        self._check_params()
        every = _check_checkpoint_every(checkpoint_every)
        continuing = self.warm_start and hasattr(self, "network_")
        if continuing and checkpoint is not None:
            raise ValueError(
                "a warm_start refit continues the fitted model: it takes no checkpoint"
            )
        if not continuing:
            self._forget_fit()
        X, y, unlabeled = self._labelled_rows(self._flat(X), y)
        X, y = check_Xy(self, X, y, reset=not continuing, multi_output=self._task == "regression")
        targets, n_outputs = self._targets(y, reset=not continuing)
        settings = self._values(len(X))
        changes = _shape_changes(self.settings_, settings) if continuing else []
        if changes:
            raise ValueError(
                "a warm_start refit continues the fitted network, whose shape cannot change: "
                + ", ".join(changes)
                + "; set warm_start=False to fit afresh"
            )
        self.settings_ = self._active = settings  # a warm start takes the parameters as they are
        self._deadline = Deadline(self._s("time_budget"))
        if continuing:  # every row: for the epochs early stopping chose, else ``epochs``
            Xt = self._prepare(X)
            chosen = self._s("early_stopping") and getattr(self, "best_epoch_", None)
            self._finetune(Xt, targets.to(Xt.device), _FitCheckpoint(None, every, None, ()),
                           phase="refit" if chosen else None)  # fmt: skip
            return self
        if unlabeled is not None:  # they join the scaling and pretraining
            X = np.concatenate([X, _dense(check_X(self, unlabeled, reset=False))])
        X_all, X = X, X[: len(y)]
        Xt_all = self._build_dbn(X_all)
        Xt = Xt_all[: len(y)]
        ckpt, saved = self._open_checkpoint(checkpoint, every, X_all, y)
        with ckpt.saved_on_interrupt():
            self._fit_fresh(Xt, targets.to(Xt.device), n_outputs, ckpt, saved, Xt_all)
        return self

    def _labelled_rows(self, X, y):
        """``(X, y, unlabeled X or None)``: the rows whose target is ``unlabeled`` apart."""
        marker = self.unlabeled
        if marker is None:
            return X, y, None
        y = np.asarray(y)
        if isinstance(marker, float) and np.isnan(marker):
            missing = _is_missing(y)
        else:
            missing = y == marker
        missing = missing if missing.ndim == 1 else missing.all(1)
        if missing.all():
            raise DataError(f"every row's target is the unlabeled marker {marker!r}")
        if not missing.any():
            return X, y, None
        rest = _safe_indexing(X, np.flatnonzero(missing))
        return _safe_indexing(X, np.flatnonzero(~missing)), y[~missing], rest

    def _fit_fresh(self, X, targets, n_outputs, ckpt, saved, pretrain_rows=None) -> None:
        """Pretraining (on ``pretrain_rows``, default ``X``) or random initialisation,
        fine-tuning and, after early stopping, the refit on all rows; resuming ``saved``."""
        phase = saved["phase"] if saved else "pretrain"
        if phase == "pretrain":
            if self.pretrain:
                rows = X if pretrain_rows is None else pretrain_rows
                self._pretrain(rows, None, ckpt, saved["pretrain"] if saved else None)
                self._restart_constant_layers(rows)
            else:
                self._random_init()
            start = generator_state(self.generator_)  # before the head and the validation split
            pretrained = clone_state(self._dbn_state()) if self._refits() else None
        else:
            self.pretrain_history_ = saved["pretrain_history"]
            start, pretrained = saved["start_generator"], saved.get("pretrained")
            set_generator_state(self.generator_, start)
        search = saved.get("search") if phase == "refit" else None
        if phase != "refit":
            self.network_ = self._unfold(n_outputs)
            resume = saved["finetune"] if phase == "finetune" else None
            extra = {"pretrained": pretrained}
            self._finetune(X, targets, ckpt, start, resume, extra=extra, search=self._refits())
            if not self._refits():
                return
            search = {"best_epoch": self.best_epoch_, "history": self.validation_history_}
            self.dbn_.load_state_dict(pretrained["state_dict"])
            set_generator_state(self.generator_, start)
        self.best_epoch_, self.validation_history_ = search["best_epoch"], search["history"]
        self.network_ = self._unfold(n_outputs)
        resume = saved["finetune"] if phase == "refit" else None
        self._finetune(X, targets, ckpt, start, resume, extra={"search": search}, phase="refit")

    def _time_budget(self) -> float | None:
        return self._s("time_budget")  # the preset's, when it has one

    def _pretrain_budget(self, layer: int) -> list:
        """A :class:`TimeBudget` giving ``layer`` its share of what is left of
        ``PRETRAIN_SHARE`` of the time budget, in proportion to its weights' size among the
        layers still to train (a fresh run: its share of the whole; a resumed one: of the
        time its interruption left)."""
        budget = self._time_budget()
        if budget is None:
            return []
        costs = [rbm.macs_per_row() for rbm in self.dbn_.rbms]
        left = self._deadline.left() - budget * (1 - PRETRAIN_SHARE)  # fine-tuning's kept
        seconds = max(left, 0.0) * costs[layer] / sum(costs[layer:])
        planned = self._layer_settings(self.dbn_)[layer]["epochs"]
        return [TimeBudget(seconds, self._budget_epochs("pretrain_epochs", planned))]

    def _refits(self) -> bool:
        """Whether fine-tuning ends with a refit on all rows (after early stopping)."""
        return bool(self._s("early_stopping"))

    @torch.no_grad()
    def _random_init(self) -> None:
        """The baseline without pretraining: Glorot's initialisation for the hidden units'
        activation (:meth:`deepbelief.nn.DBN.random_init_`), from the estimator's seed."""
        self.pretrain_history_ = []
        self.dbn_.random_init_(self.generator_)

    @torch.no_grad()
    def _restart_constant_layers(self, X) -> None:
        """Start fine-tuning from random weights (as ``pretrain=False`` does) at the first
        pretrained layer whose features are constant over the training rows, and above it,
        with an :class:`UndertrainedWarning` that says so.

        Such a layer learned nothing of its input, and backprop barely moves its saturated
        units. Bernoulli units on min-max scaled columns that vary independently of one
        another (two normal columns, scikit-learn's ``make_classification``) have nothing to
        learn beyond the columns' means: the first RBM's features barely vary, the second
        switches its units off, and fine-tuning stayed at chance (0.50 accuracy on the class
        x1 + x2 > 0; 0.94 with this restart, 0.99 with Gaussian units)."""
        layer = _first_constant_layer(self.dbn_, X)
        if distributed.is_distributed():  # the processes decide as rank 0 does
            layer = distributed.gathered_objects(layer)[0]
        if layer is None:
            return
        self.dbn_.random_init_(self.generator_, start=layer)
        errors.warn(
            f"RBM {layer + 1}'s pretrained features are constant over the training rows: it "
            f"learned nothing of its input, so RBM {layer + 1} and the layers above start "
            f"fine-tuning from random weights{_constant_advice(self.dbn_)}",
            UndertrainedWarning,
        )

    def _unfold(self, n_outputs: int) -> torch.nn.Sequential:
        return self.dbn_.to_feedforward(
            self._task,
            n_outputs,
            dropout=self._s("dropout"),
            input_dropout=self._s("input_dropout"),
            generator=self.generator_,
        )

    def _finetune(
        self, X, targets, ckpt, start=None, resume=None, extra=None, search=None, phase=None
    ) -> None:
        """One fine-tuning run, from ``resume`` (a :meth:`FinetuneResult.state_dict`) when
        given; ``ckpt`` notes the state after every epoch (``start``: the generator's state
        before the output layer was drawn; ``extra``: more to keep in it).

        ``phase="refit"`` trains on all rows for the epochs the early-stopping run chose
        (``best_epoch_``); otherwise with early stopping, a ``validation_fraction`` of the rows
        is held out for it (``search``: a refit on all rows follows)."""
        phase = phase or "finetune"

        def state(result):
            return {
                "phase": phase,
                "dbn": self._dbn_state(),
                "pretrain_history": self.pretrain_history_,
                "start_generator": start,
                **(extra or {}),
                "finetune": result.state_dict(),
            }

        settings = self._finetune_settings()
        validation = None
        if phase == "refit":
            # all rows for the chosen epochs, ending with the average of the weights over the
            # second half of them (stochastic weight averaging: less variance on small data)
            best = self.best_epoch_
            settings.update(epochs=best, early_stopping=None, average_epochs=best // 2)
        elif self._s("early_stopping"):
            validation, X, targets = self._validation_split(X, targets)
        callbacks = [_Tracked(ckpt, state)]
        callbacks += self._budget_callbacks(settings, search, refit=phase == "refit")
        callbacks += progress_callbacks(
            "refit on all rows" if phase == "refit" else "fine-tune", self.verbose
        )
        # the search's end is not the model's: only the final run is watched
        watch = None if search else _LossWatch(self.network_, X, targets, self._task)
        result = finetune(
            self.network_,
            X,
            targets,
            self._task,
            **settings,
            validation=validation,
            mixed_precision=self._mixed_precision(X.device),
            generator=self.generator_,
            callbacks=callbacks,
            resume=resume,
        )
        ckpt.save()
        if watch is not None and result.history:
            watch.check(self.network_, len(result.history))
        if search:
            self.best_epoch_ = result.best_epoch or len(result.history)
            self.validation_history_ = result.history
            return
        self.history_ = (
            list(getattr(self, "history_", []) if self.warm_start else []) + result.history
        )
        self.n_iter_ = len(result.history)

    def _validation_split(self, X, targets):
        """``(validation, X_train, targets_train)``: a random ``validation_fraction`` held out."""
        n_valid = max(1, int(round(self._s("validation_fraction") * len(X))))
        if n_valid >= len(X):
            raise DataError(f"{len(X)} rows leave nothing to train on after the validation split")
        order = torch.randperm(len(X), generator=self.generator_, device=X.device)
        valid, train = order[:n_valid], order[n_valid:]
        return (X[valid], targets[valid]), X[train], targets[train]

    def _budget_callbacks(self, settings: dict, search, refit: bool = False) -> list:
        """A :class:`TimeBudget` for the time left (half of it when a refit follows); the
        refit's may shorten it, never run past the epochs early stopping chose (it ran 108
        for a best epoch of 69)."""
        left = self._deadline.left()
        if left is None:
            return []
        share = left / 2 if search else left
        most = settings["epochs"] if refit else self._budget_epochs("epochs", settings["epochs"])
        return [TimeBudget(max(share, 0.0), most)]

    def _budget_epochs(self, name: str, planned: int) -> int:
        """The most epochs a time budget may plan: ``planned`` when given or set by a
        preset, else ``BUDGET_GROWTH`` times the size rule's."""
        given = getattr(self, name)
        by_preset = name in PRESETS.get(self.preset, {})
        if isinstance(given, str) and given == "auto" and not by_preset:
            return planned * BUDGET_GROWTH
        return planned

    def _mixed_precision(self, device: torch.device) -> bool:
        value = self._s("mixed_precision")
        if value == "auto":
            return native_bfloat16(device)
        return bool(value)

    def _optimizer_settings(self) -> tuple[str, float]:
        """``"auto"``: SGD for classification (cross-entropy), Adam for regression (squared
        error on standardised targets, where plain SGD at 0.1 diverges and at 0.01 stalls on
        small data), at :func:`deepbelief.recipes.auto_learning_rate`'s rate."""
        optimizer = self._s("optimizer")
        if optimizer == "auto":
            optimizer = "adam" if self._task == "regression" else "sgd"
        learning_rate = self._s("learning_rate")
        if learning_rate == "auto":
            learning_rate = auto_learning_rate(self._task, optimizer, self.hidden)
        return optimizer, learning_rate

    def __getstate__(self):
        # torch refuses to pickle parametrized modules; keep the head's weights and rebuild the
        # unfolded network (which shares the DBN's Parameters) on unpickling
        state = self.__dict__.copy()
        network = state.pop("network_", None)
        if network is not None:
            state["_pickled_head"] = network[-1].state_dict()
        return state

    def __setstate__(self, state):
        head = state.pop("_pickled_head", None)
        self.__dict__.update(state)
        if head is not None:
            self.network_ = self._unfold(head["weight"].shape[0])
            self.network_[-1].load_state_dict(head)

    @torch.no_grad()
    def _forward(self, X) -> torch.Tensor:
        """The network's outputs, computed in float64 on a copy: float32 products round
        differently for different batch sizes, and a row's prediction must not depend on the
        rows it is predicted with."""
        X = self._check_input(X)
        exact = float64_copy(self.network_)
        return torch.cat([exact(v.to(torch.float64)) for v in self._blocks(X)])

    def _to_state(self) -> dict:
        state = {"params": _params_to_state(self.get_params(deep=False))}
        if hasattr(self, "network_"):
            state["fitted"] = {
                **self._common_state(),
                "head": dict(self.network_[-1].state_dict()),
                "targets": self._target_state(),
                "history": self.history_,
                "settings": _params_to_state(self.settings_),
                "best_epoch": getattr(self, "best_epoch_", None),
                "validation_history": getattr(self, "validation_history_", None),
            }
        return state

    @classmethod
    def _from_state(cls, state: dict):
        est = cls(**_params_from_state(state["params"]))
        fitted = state.get("fitted")
        if fitted:
            est._restore_common(fitted)
            settings = fitted.get("settings")  # files before 0.x kept none: no "auto" there
            est.settings_ = _params_from_state(settings) if settings else est._values(1)
            est._active = est.settings_
            if fitted.get("best_epoch") is not None:
                est.best_epoch_ = int(fitted["best_epoch"])
                est.validation_history_ = fitted["validation_history"]
            n_outputs = est._restore_targets(fitted["targets"])
            est.network_ = est._unfold(n_outputs)
            est.network_[-1].load_state_dict(fitted["head"])
            est.history_ = fitted["history"]
            est.n_iter_ = len(est.history_)
        return est


class _LossWatch:
    """Warns (:class:`~deepbelief.errors.UndertrainedWarning`) when fine-tuning ends with the
    training loss of the first rows barely below where it started."""

    ROWS = 2000

    def __init__(self, network, X, targets, task: str):
        self.X, self.y, self.task = X[: self.ROWS], targets[: self.ROWS], task
        self.start = evaluate(network, self.X, self.y, task)["val_loss"]

    def check(self, network, epochs: int) -> None:
        end = evaluate(network, self.X, self.y, self.task)["val_loss"]
        if end > BARELY_TRAINED * self.start and self.start > 1e-8:  # (0: nothing to learn)
            where = "above" if end > self.start else "barely below"
            advice = "train longer (epochs) or raise the learning rate"
            if end > GREW * self.start:  # a step too large, not too few
                advice = "lower the learning rate"
            errors.warn(
                f"fine-tuning ended with the training loss at {end:.4g}, {where} its "
                f"start ({self.start:.4g}) after {epochs} epoch(s): the model may be no "
                f"better than chance; {advice}",
                UndertrainedWarning,
            )


@register("DBNClassifier")
class DBNClassifier(ClassifierMixin, _SupervisedDBN):
    """Deep Belief Network classifier: greedy CD/PCD pretraining of a stack of RBMs, then
    backprop fine-tuning of the unfolded network, starting from the pretrained weights (the
    network's Linear layers are the RBMs' own Parameters).

    The settings marked "auto" take the ``preset``'s value when it has one, else a value
    chosen from the number of training rows (:func:`deepbelief.recipes.size_settings`: many
    epochs and early stopping with a refit on all rows for small tables, larger batches and a
    decaying rate for large datasets); the values used are in ``settings_``. Explicit values
    always win.

    Parameters
    ----------
    hidden_layers : tuple of int or "auto", default "auto"
        "auto": (256, 256), or the preset's. Empty with ``conv_layers``: conv layers alone.
    conv_layers : list of (n_filters, kernel_size, pool), optional
        Convolutional RBMs below the dense layers (:class:`deepbelief.nn.ConvRBM`, Lee et al.
        2009), bottom first: square kernels, probabilistic max-pooling over ``pool x pool``
        blocks (1: none). The fine-tuned network is a CNN whose ``Conv2d`` layers are the conv
        RBMs' Parameters. ``X`` may then be images ``(n, H, W)`` or ``(n, C, H, W)`` (predict
        takes the same, or flat rows). None: the preset's, else none.
    image_shape : (H, W) or (C, H, W), optional
        The images' shape when ``X`` holds flat rows; default: the images' own shape, else a
        square grey image, else a 1-pixel-high strip (rows as 1-D signals).
    unlabeled : scalar, optional
        A target value that marks rows without a label (scikit-learn's semi-supervised
        estimators use -1; NaN works too): they join the input scaling and the greedy
        pretraining, not fine-tuning. None: every row is labelled.
    visible : "auto", str or Units, default "auto"
        As for :class:`deepbelief.RBM` ("auto": Bernoulli for data in [0, 1], else Gaussian on
        standardised data).
    hidden : str, Units or list of them, default "bernoulli"
    pretrain : bool, default True
        False starts fine-tuning from random weights (for comparison).
    pretrain_epochs, pretrain_learning_rate, pretrain_batch_size, sampler, k :
        Settings of every layer's RBM training ("auto" learning rate: 0.1 for binary inputs,
        0.01 for Gaussian ones and for the dense layer on a conv layer's pooled units (mostly
        on, thousands of them: at 0.1 it switched its units off), 0.001 for Gaussian (linear)
        hidden units, and ReLU ones over Gaussian inputs, which diverged at 0.01, a conv
        layer's 0.5 (Gaussian: 0.05) divided by the positions of a feature map, since a
        filter's gradient sums over them; ``pretrain_epochs`` may list one count per layer,
        conv layers first).
    centering : bool, default False
        Centered gradients in every layer's RBM training (Melchior et al. 2016; see
        :class:`deepbelief.training.RBMTrainer`).
    pretrain_dropout : float, default 0.0
        Dropout RBMs: the probability of dropping each hidden unit in every layer's RBM
        training (Srivastava et al. 2014, section 8; ``RBMTrainer(dropout=...)``); not the
        fine-tuning ``dropout``. ``layer_params`` may set ``"dropout"`` per layer.
    layer_params : list of dict, optional
        Per-layer overrides of any :class:`deepbelief.training.RBMTrainer` setting.
    sample_inputs : bool, default False
        Feed each layer sampled (not mean) activations of the layer below.
    weight_std : float, default 0.1
        Standard deviation of the RBMs' initial weights, as in Hinton & Salakhutdinov's (2006)
        MNIST code. (:class:`deepbelief.RBM` keeps the guide's 0.01.) With 0.01, a wide layer
        (500-2000) trained at learning rate 0.1 switches its hidden units off, and a stack
        pretrained on a few hundred rows leaves near-constant features that fine-tuning cannot
        recover from.
    epochs, batch_size, momentum, weight_decay :
        Fine-tuning settings (``epochs`` and ``batch_size`` "auto" by default; with early
        stopping, ``epochs`` is the most the search runs).
    optimizer : {"auto", "sgd", "adam"}, default "auto"
    learning_rate : float or "auto", default "auto"
        "auto": SGD at 0.1 for classification (0.01 with Gaussian hidden units, whose linear
        layers diverged at 0.1), Adam at 0.01 for regression; an optimizer other than the
        task's own at its usual rate (SGD 0.1, Adam 0.001).
    dropout, input_dropout : float or "auto", default "auto"
        Dropout on hidden layers and on the input during fine-tuning.
    max_norm : float, optional
        Cap on each unit's incoming weight norm.
    lr_schedule : {"constant", "linear", "cosine", "auto"}, default "auto"
    early_stopping : bool or "auto", default "auto"
        Hold out ``validation_fraction`` of the rows, fine-tune until ``n_iter_no_change``
        epochs bring no lower validation loss, then refit on all rows (the held-out ones
        included) from the pretrained weights for the best number of epochs (``best_epoch_``),
        ending with the average of the weights over the refit's second half. "auto": on from
        100 to 20,000 rows.
    validation_fraction : float or "auto", default "auto"
        "auto": 0.2 below 1,000 rows, else 0.1.
    n_iter_no_change : int or "auto", default "auto"
        "auto": half the epochs, at least 20.
    average_epochs : int, default 0
        End with the average of the weights after each of the last ``average_epochs``
        fine-tuning epochs (stochastic weight averaging); not with ``early_stopping``.
    head_epochs : int, default 0
        Train only the output layer for the first epochs.
    warm_start : bool, default False
        Refit continues fine-tuning from the current weights, on every row, with the
        parameters as they are then (``epochs``, ``learning_rate``, ``dropout`` ...): for the
        number of epochs the first fit's early stopping chose (``best_epoch_``), else for
        ``epochs``. A refit that changes the network's shape (:data:`SHAPE_PARAMS`:
        ``hidden_layers``, ``conv_layers`` ...) is refused.
    mixed_precision : bool, "auto" or None, default None
        Fine-tune under bfloat16 autocast (see :func:`deepbelief.finetune.finetune`): faster
        on GPUs and CPUs with native bfloat16, slower elsewhere. "auto": where the device
        has it natively (:func:`deepbelief.training.native_bfloat16`). None: the preset's,
        else False.
    preset : {"hinton2006", "lee2009", "srivastava2014"}, optional
        A published MNIST setup (:data:`deepbelief.recipes.PRESETS`) for the "auto" settings
        ("lee2009": a convolutional DBN, for 28x28 images).
    time_budget : float, optional
        Seconds for pretraining (15 %) and fine-tuning: the epochs are re-planned from the
        measured pace to end within it (a run that then depends on the machine's speed).
        None: the preset's budget, else none.
    random_state, device, dtype, verbose
        ``verbose=1``: a bar per phase on a terminal, else one line per epoch on stderr;
        2: the lines always.

    Attributes
    ----------
    classes_ : ndarray
    image_shape_ : (C, H, W)
        With conv layers: the shape of the images.
    dbn_ : deepbelief.nn.DBN
        The pretrained (and, through sharing, fine-tuned) stack.
    network_ : torch.nn.Sequential
        The unfolded network with its output layer.
    settings_ : dict
        Every parameter as training used it ("auto" and the preset resolved).
    best_epoch_ : int
        With early stopping: the epoch of the lowest validation loss, the refit's length.
    validation_history_ : list of dict
        With early stopping: the search's per-epoch metrics, validation scores included.
    pretrain_history_, history_ : lists of per-epoch metrics
        ``history_``: the final fine-tuning run (the refit, after early stopping).

    Warns
    -----
    deepbelief.errors.UndertrainedWarning
        When fine-tuning ends with the training loss barely below its start.
    """

    _task = "classification"

    def _targets(self, y, reset: bool):
        classes, index = _class_labels(y)
        if reset:
            self.classes_ = classes
        else:
            unseen = sorted(set(classes.tolist()) - set(self.classes_.tolist()))
            if unseen:
                raise DataError(f"y has classes {unseen} not seen in the first fit")
            index = np.searchsorted(self.classes_, np.asarray(y))
        return torch.as_tensor(index, dtype=torch.long), len(self.classes_)

    def _target_state(self):
        return _classes_state(self.classes_)

    def _restore_targets(self, state) -> int:
        self.classes_ = _classes_from_state(state)
        return len(self.classes_)

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
        return torch.softmax(self._forward(X), 1).cpu().numpy().astype(np.float64)

    def predict(self, X):
        """The most probable class of each row."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), 1)]


@register("DBNRegressor")
class DBNRegressor(RegressorMixin, _SupervisedDBN):
    """Deep Belief Network regressor: greedy pretraining, then backprop fine-tuning of the
    unfolded network with a linear output layer (one unit per target; targets are standardised
    internally). Parameters as :class:`DBNClassifier`.

    Attributes
    ----------
    dbn_, network_, pretrain_history_, history_ : as DBNClassifier
    n_outputs_ : int
    """

    _task = "regression"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _targets(self, y, reset: bool):
        try:
            y = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            cells = np.asarray(y, dtype=object).reshape(len(y), -1)
            row = next(i for i, r in enumerate(cells) if not all(_is_number(v) for v in r))
            raise DataError(
                f"y must hold numbers for a regressor; row {row} (counting from 0) holds "
                f"{_shown(next(v for v in cells[row] if not _is_number(v)))}"
            ) from None
        if not np.isfinite(y).all():
            row = int(np.argwhere(~np.isfinite(y))[0][0])
            raise DataError(f"y contains NaN or infinity at row {row} (counting from 0)")
        self._y_was_1d = y.ndim == 1
        y2 = y.reshape(len(y), -1)
        if reset:
            scale = y2.std(0)
            self.y_mean_, self.y_scale_ = y2.mean(0), np.where(scale > 0, scale, 1.0)
            self.n_outputs_ = y2.shape[1]
        elif y2.shape[1] != self.n_outputs_:
            raise DataError(
                f"y has {y2.shape[1]} targets; the model was fitted with {self.n_outputs_}"
            )
        dtype = _DTYPES[self.dtype]
        return torch.as_tensor((y2 - self.y_mean_) / self.y_scale_, dtype=dtype), self.n_outputs_

    def _target_state(self):
        return {"y_mean": self.y_mean_, "y_scale": self.y_scale_, "one_d": self._y_was_1d}

    def _restore_targets(self, state) -> int:
        self.y_mean_, self.y_scale_ = _as_array(state["y_mean"]), _as_array(state["y_scale"])
        self._y_was_1d = bool(state["one_d"])
        self.n_outputs_ = len(self.y_mean_)
        return self.n_outputs_

    def predict(self, X):
        """Predicted targets, shape (n_samples,) or (n_samples, n_outputs)."""
        out = self._forward(X).cpu().numpy().astype(np.float64) * self.y_scale_ + self.y_mean_
        return out.ravel() if self._y_was_1d else out


def _classes_state(classes) -> dict:
    """``classes_`` for a model file: the values and their dtype (predict returns the labels'
    own dtype after loading: int8, bool, object, ...)."""
    if classes is None:
        return {"classes": None}
    return {"classes": classes.tolist(), "classes_dtype": classes.dtype.str}


def _classes_from_state(state: dict):
    """``classes_`` from :func:`_classes_state` (files without a dtype: NumPy's guess)."""
    if state["classes"] is None:
        return None
    dtype = state.get("classes_dtype")
    return np.array(state["classes"], dtype=None if dtype is None else np.dtype(dtype))


def _has_labels(estimator) -> bool:
    return getattr(estimator, "classes_", None) is not None


@register("DBN")
class DBN(ClassNamePrefixFeaturesOutMixin, TransformerMixin, _DBNBase):
    """Unsupervised Deep Belief Network (a scikit-learn transformer) and, when fitted with class
    labels, the generative model of Hinton, Osindero & Teh (2006): the top RBM learns the
    penultimate features joined with one-hot label units.

    ``transform`` gives the top layer's features; ``sample`` draws new rows (of a chosen class
    with ``label=``); with labels, ``predict`` and ``predict_proba`` classify by the free energy
    of each label. Parameters as the pretraining ones of :class:`DBNClassifier`.

    ``up_down_epochs`` of up-down (contrastive wake-sleep) fine-tuning of the whole
    generative model follow pretraining, at ``up_down_learning_rate``
    (:class:`deepbelief.finetune.UpDown`): "auto", the default, gives
    :data:`AUTO_UP_DOWN_EPOCHS` to a label model of two or more hidden layers and none
    otherwise. In a label model trained "discriminative" or "hybrid", the top RBM keeps that
    objective during up-down (with its persistent chains starting the sleep phase) while the
    layers below learn their generative and recognition weights; after "generative" label
    training it learns by CD, as in Hinton, Osindero & Teh (2006).

    With one hidden layer and labels, the model is the classification RBM of Larochelle &
    Bengio (2008): one RBM over the input joined with the label units. Its training (and that
    of the top RBM of a deeper label model; ignored without labels) is ``label_training``:
    "generative" (CD on the joint, the pretraining alone), "discriminative" (then
    ``label_epochs`` of SGD on ``-log p(y | x)``, exact from the free energies, at
    ``label_learning_rate``) or "hybrid", the default (the same plus ``generative_weight``
    times the generative gradient, estimated with persistent chains)
    (:class:`deepbelief.label_training.LabelTraining`). On scikit-learn's digits (a quarter held
    out, seed 0), 256-256: 96.4 % test accuracy, and 95.5 % of the class-conditional samples
    recognised by a logistic regression trained on the real digits (84.5 % after generative
    training alone); one layer of 200: 97.6 % and 97.5 %. A CD-1 estimate of the generative
    term (Larochelle & Bengio's) did as well there (98.0 % and 98.0 %), but on MNIST its
    class-conditional chains all fell into one spurious faint blob; persistent chains give
    clean digits. :data:`deepbelief.recipes.GENERATIVE_PRESETS` holds the MNIST setup
    (``DBN(**GENERATIVE_PRESETS["hinton2006"])``).

    ``finetune_epochs`` (default 0) of backprop of ``-log p(y | x)`` through the recognition
    path of a label model of two or more hidden layers come last, after up-down
    (:class:`deepbelief.label_training.LabelBackprop`): the layers below the top are untied
    and only their recognition weights learn, to give the features on which the top RBM's
    label free energies classify right. The generative model (the top RBM and the generative
    weights) stays as up-down left it, so the samples do not change. SGD with momentum at
    ``finetune_learning_rate`` decaying linearly to zero, with inverted dropout at
    ``finetune_dropout`` on the hidden layers below the top and ``finetune_input_dropout`` on
    the input; ``finetune_shift`` translates each input image by a random offset of up to that
    many pixels along each axis first (data augmentation; the rows are images of
    ``image_shape``, by default square and grey). ``time_budget`` (seconds for the whole fit,
    optional) re-plans the backprop's epochs, at most ``finetune_epochs``, to end within it.
    On scikit-learn's digits, 10 epochs lower a 64-64 label model's held-out log loss from
    0.27-0.29 to 0.18 (seeds 0-2); on MNIST see :data:`deepbelief.recipes.GENERATIVE_PRESETS`.

    A continuous ``y`` (as scikit-learn's checks pass to transformers) is ignored with a warning.
    ``use_labels=False`` ignores any ``y``: the DBN as unsupervised features in a Pipeline
    whose last step is a regressor (a Pipeline passes ``y`` to every step, and an integer
    target would otherwise be learned as class labels; a ``y`` most of whose values are on a
    single row warns so).

    scipy.sparse input is accepted everywhere (densified for training, one block of rows at a
    time afterwards). At transform, predict and score time, values outside [0, 1] given to
    Bernoulli visible units are clipped into it with one
    :class:`~deepbelief.estimators.ClippedInputWarning` per call (``fit`` refuses them). The
    output features are named ``dbn0``, ``dbn1``, ... (``get_feature_names_out``), so
    ``set_output(transform="pandas")`` works.

    Attributes
    ----------
    dbn_ : deepbelief.nn.DBN
    classes_ : ndarray or None
        The labels the generative model learned (None when fitted without labels).
    pretrain_history_ : list of per-layer histories
    label_history_ : list of dict
        Per-epoch metrics of the discriminative or hybrid training (empty otherwise).
    finetune_history_, up_down_history_ : list of dict
        Per-epoch metrics of the backprop through the recognition path and of up-down.
    class_features_ : tensor of shape (n_classes, n_features) or None
        Each class's mean of the top RBM's visible features (the up pass of its training
        rows): where :meth:`sample` starts the chains of a class (None without labels).
    """

    def __init__(
        self,
        hidden_layers=(256, 256),
        *,
        visible="auto",
        hidden="bernoulli",
        pretrain_epochs=10,
        pretrain_learning_rate="auto",
        pretrain_batch_size=20,
        sampler="cd",
        k=1,
        centering=False,
        pretrain_dropout=0.0,
        layer_params=None,
        sample_inputs=False,
        weight_std=0.1,
        up_down_epochs="auto",
        up_down_learning_rate=0.01,
        use_labels=True,
        label_training="hybrid",
        label_epochs=20,
        label_learning_rate=0.05,
        generative_weight=0.01,
        finetune_epochs=0,
        finetune_learning_rate=0.1,
        finetune_dropout=0.2,
        finetune_input_dropout=0.0,
        finetune_shift=0,
        image_shape=None,
        time_budget=None,
        random_state=None,
        device="auto",
        dtype="float32",
        verbose=0,
    ):
        self.hidden_layers = hidden_layers
        self.visible = visible
        self.hidden = hidden
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_learning_rate = pretrain_learning_rate
        self.pretrain_batch_size = pretrain_batch_size
        self.sampler = sampler
        self.k = k
        self.centering = centering
        self.pretrain_dropout = pretrain_dropout
        self.layer_params = layer_params
        self.sample_inputs = sample_inputs
        self.weight_std = weight_std
        self.up_down_epochs = up_down_epochs
        self.up_down_learning_rate = up_down_learning_rate
        self.use_labels = use_labels
        self.label_training = label_training
        self.label_epochs = label_epochs
        self.label_learning_rate = label_learning_rate
        self.generative_weight = generative_weight
        self.finetune_epochs = finetune_epochs
        self.finetune_learning_rate = finetune_learning_rate
        self.finetune_dropout = finetune_dropout
        self.finetune_input_dropout = finetune_input_dropout
        self.finetune_shift = finetune_shift
        self.image_shape = image_shape
        self.time_budget = time_budget
        self.random_state = random_state
        self.device = device
        self.dtype = dtype
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        # fitted with class labels, it classifies too (predict, predict_proba): any number of
        # classes (scikit-learn's sparse-input checks read this when predict_proba is there)
        tags.classifier_tags = ClassifierTags(multi_class=True)
        return tags

    _phases = ("pretrain", "labels", "up_down", "finetune")

    def _check_params(self) -> None:
        """Validate every parameter without touching data (``fit`` does it first; the command
        line before it reads a file); ValueError names the parameter and the value."""
        layers = self._check_base_params()
        if not (isinstance(self.up_down_epochs, str) and self.up_down_epochs == "auto"):
            check("up_down_epochs", self.up_down_epochs, integer(0))
        check("up_down_learning_rate", self.up_down_learning_rate, real(0, low_open=True))
        check("use_labels", self.use_labels, FLAG)
        check("label_training", self.label_training, choice(*LABEL_TRAINING))
        check("label_epochs", self.label_epochs, integer(1))
        check("label_learning_rate", self.label_learning_rate, real(0, low_open=True))
        check("generative_weight", self.generative_weight, real(0))
        check("finetune_epochs", self.finetune_epochs, integer(0))
        check("finetune_learning_rate", self.finetune_learning_rate, real(0, low_open=True))
        check("finetune_dropout", self.finetune_dropout, PROBABILITY)
        check("finetune_input_dropout", self.finetune_input_dropout, PROBABILITY)
        check("finetune_shift", self.finetune_shift, integer(0))
        if self.time_budget is not None:
            check("time_budget", self.time_budget, real(0, low_open=True))
            if not self.finetune_epochs:
                raise ValueError(
                    "time_budget needs 'finetune_epochs' (the backprop phase, the last, takes "
                    "the time the earlier phases leave)"
                )
        if self.finetune_epochs and len(layers) < 2:
            raise ValueError(
                "finetune_epochs needs at least two hidden layers (one hidden layer with labels "
                "is the classification RBM: its training is label_training's)"
            )
        if self._explicit_up_down() and len(layers) < 2:
            raise ValueError(
                "up_down_epochs needs at least two hidden layers (one hidden layer with labels "
                "is the classification RBM, trained by CD alone)"
            )

    def _explicit_up_down(self) -> int:
        """``up_down_epochs`` when given as a number (0 for "auto")."""
        epochs = self.up_down_epochs
        return 0 if isinstance(epochs, str) else int(epochs)

    def _up_down_epochs(self, labelled: bool) -> int:
        """The up-down epochs of this fit: "auto" gives :data:`AUTO_UP_DOWN_EPOCHS` to a label
        model of two or more hidden layers, none otherwise."""
        if not (isinstance(self.up_down_epochs, str) and self.up_down_epochs == "auto"):
            return int(self.up_down_epochs)
        deep = len(self._check_common_params()) >= 2
        return AUTO_UP_DOWN_EPOCHS if labelled and deep else 0

    def fit(self, X, y=None, *, checkpoint=None, checkpoint_every=1):
        """Greedy pretraining; with class labels ``y``, of the generative label model; then
        ``up_down_epochs`` of up-down fine-tuning.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            (A sparse matrix is densified for training.)
        y : array-like of shape (n_samples,), optional
            Class labels.
        checkpoint : str or path-like, optional
            A file for the whole training state, written atomically every
            ``checkpoint_every`` epochs of every phase (each pretraining layer, then
            up-down), at the end of each phase and, on KeyboardInterrupt, as of the last
            completed epoch. When the file exists, fit resumes from it, skipping the
            completed work, and ends with exactly the model that an uninterrupted fit with
            the same ``random_state`` gives. A file made with other parameters or other data is
            refused. The file stays on disk after the fit (a later fit with it returns the
            same model at once); the caller may delete it.
        checkpoint_every : int or "auto", default 1
            Epochs between periodic writes; "auto": at the end of the first epoch after
            ``CHECKPOINT_SECONDS`` (30 s) since the last write (the phases' ends and
            interruptions are always written).

        Returns
        -------
        self

        Raises
        ------
        deepbelief.errors.ModelFileError
            When ``checkpoint`` is corrupt or was made with other parameters or data.
        ValueError
            When ``checkpoint_every < 1``.
        """
        self._check_params()
        every = _check_checkpoint_every(checkpoint_every)
        self._forget_fit()
        labels = None
        if not self.use_labels:
            y = None
        elif y is not None and _target_kind(y) in ("continuous", "continuous-multioutput"):
            warnings.warn(
                "DBN.fit ignores a continuous y (it learns class labels only)",
                UserWarning,
                stacklevel=2,
            )
            y = None
        source = row_file_input(self, X) if y is None else None
        if source is not None:  # larger than memory: pretraining reads it a block at a time
            if self._explicit_up_down():
                raise ValueError(
                    "up_down_epochs needs X in memory (an array); a memory-mapped .npy file "
                    "is read a block at a time for pretraining only"
                )
            X = source
            self.classes_ = None
        elif y is None:
            X = _dense(check_X(self, X, reset=True, accept_sparse=True))
            self.classes_ = None
        else:
            X, y = check_Xy(self, X, y, reset=True)
            self.classes_, index = _class_labels(y)
            labels = torch.as_tensor(index, dtype=torch.long)
            _warn_if_regression_like(index, len(self.classes_))
        self.__dict__.pop("image_shape_", None)
        if labels is not None and self.finetune_epochs and self.finetune_shift:
            self.image_shape_ = self._shifted_images(X.shape[1])
        Xt = self._build_dbn(X, n_labels=0 if labels is None else len(self.classes_))
        if labels is not None or self._up_down_epochs(labels is not None):
            _check_top_rbm_is_proper(self.dbn_)  # its chains run in this fit
        labels = None if labels is None else labels.to(Xt.device)
        ckpt, saved = self._open_checkpoint(checkpoint, every, X, y)
        with ckpt.saved_on_interrupt():
            self._fit_fresh(Xt, labels, ckpt, saved)
        self.class_features_ = None if labels is None else self._class_features(Xt, labels)
        return self

    def _class_features(self, X: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Each class's mean of the top RBM's visible features over its training rows, shape
        (n_classes, n_features): where :meth:`sample` starts the chains of that class."""
        dbn = self.dbn_
        top = dbn.rbms[-1]
        sums = X.new_zeros(dbn.n_labels, top.n_visible - dbn.n_labels)
        for rows, classes in zip(torch.split(X, 8192), torch.split(labels, 8192), strict=True):
            sums.index_add_(0, classes, dbn.transform(rows, layer=len(dbn.rbms) - 1))
        counts = torch.bincount(labels, minlength=dbn.n_labels).to(sums.dtype)
        return sums / counts.clamp_min(1).unsqueeze(1)

    def _shifted_images(self, n_features: int) -> tuple[int, int, int]:
        """The ``(C, H, W)`` that ``finetune_shift`` translates: ``image_shape``, else a square
        grey image; DataError for rows that are neither."""
        if self.image_shape is None and math.isqrt(n_features) ** 2 != n_features:
            raise DataError(
                f"finetune_shift translates images, but rows of {n_features} features are no "
                "square image; give image_shape=(height, width)"
            )
        return image_shape_for(n_features, self.image_shape, None)

    def _fit_fresh(self, X, labels, ckpt, saved) -> None:
        """Pretraining, label training, up-down, then backprop of the recognition path,
        resuming ``saved`` (the deadline is the checkpoint's: :meth:`_open_checkpoint`)."""
        phase = saved["phase"] if saved else "pretrain"
        if phase == "pretrain":
            self._pretrain(X, labels, ckpt, saved["pretrain"] if saved else None)
            self._warn_if_constant(X)
        else:
            self.pretrain_history_ = saved["pretrain_history"]
        saved = saved or {}
        for name, train in (("labels", self._train_labels), ("up_down", self._up_down),
                            ("finetune", self._finetune)):  # fmt: skip
            history = "label_history" if name == "labels" else f"{name}_history"
            done = self._phases.index(phase) > self._phases.index(name)
            setattr(self, f"{history}_", saved.get(history, []) if done else [])
            if not done and self._runs(name, labels):
                train(X, labels, ckpt, saved.get(name) if phase == name else None)

    def _warn_if_constant(self, X) -> None:
        """An :class:`UndertrainedWarning` when a layer's pretrained features are constant over
        the training rows: they, and the features above them, carry nothing of the input."""
        layer = _first_constant_layer(self.dbn_, X)
        if layer is not None:
            errors.warn(
                f"RBM {layer + 1}'s pretrained features are constant over the training rows: it "
                f"learned nothing of its input, and the features it passes up carry "
                f"nothing{_constant_advice(self.dbn_)}",
                UndertrainedWarning,
            )

    def _runs(self, phase: str, labels) -> bool:
        """Whether this fit has ``phase`` (after pretraining)."""
        if phase == "up_down":
            return bool(self._up_down_epochs(labels is not None))
        if labels is None:
            return False
        if phase == "labels":
            return self.label_training != "generative"
        return bool(self.finetune_epochs)

    def _train_labels(self, X, labels, ckpt, resume) -> None:
        """Discriminative or hybrid training of the top RBM (``label_training``), from
        ``resume`` (a checkpoint's ``"labels"`` part) when given."""
        dbn = self.dbn_
        features = X if dbn.classification_rbm else dbn.transform(X, layer=len(dbn.rbms) - 1)
        loop = LabelTraining(
            dbn, features, labels, objective=self.label_training,
            generative_weight=self.generative_weight, epochs=self.label_epochs,
            batch_size=self._s("pretrain_batch_size"), learning_rate=self.label_learning_rate,
            generator=self.generator_,
            callbacks=[self._tracked("labels", ckpt),
                       *progress_callbacks("label training", self.verbose)],
        )  # fmt: skip
        if resume is not None:
            loop.load_loop_state(resume)
        self.label_history_ = loop.run().history
        ckpt.save()

    #: the histories of the phases before each phase after pretraining, kept in its checkpoint
    _EARLIER = {"labels": (), "up_down": ("label",), "finetune": ("label", "up_down")}

    def _tracked(self, phase: str, ckpt) -> _Tracked:
        """The callback that keeps ``ckpt`` at the state of ``phase``'s fit loop: the DBN, the
        histories of the phases before it and the loop's own state."""

        def state(loop):
            tree = {"phase": phase, "dbn": self._dbn_state(),
                    "pretrain_history": self.pretrain_history_}  # fmt: skip
            for name in self._EARLIER[phase]:
                tree[f"{name}_history"] = getattr(self, f"{name}_history_")
            tree[phase] = loop.loop_state()
            return tree

        return _Tracked(ckpt, state)

    def _finetune(self, X, labels, ckpt, resume) -> None:
        """Backprop of ``-log p(y | x)`` through the recognition path into the top RBM's label
        free energies (:class:`~deepbelief.label_training.LabelBackprop`), from ``resume`` (a
        checkpoint's ``"finetune"`` part) when given, within what the time budget leaves."""
        left = self._deadline.left()
        budget = [] if left is None else [TimeBudget(max(left, 0.0), self.finetune_epochs)]
        loop = LabelBackprop(
            self.dbn_, X, labels, epochs=self.finetune_epochs,
            batch_size=self._s("pretrain_batch_size"), learning_rate=self.finetune_learning_rate,
            dropout=self.finetune_dropout, input_dropout=self.finetune_input_dropout,
            shift=self.finetune_shift, image_shape=getattr(self, "image_shape_", None),
            generator=self.generator_,
            callbacks=[*budget, self._tracked("finetune", ckpt),
                       *progress_callbacks("fine-tune", self.verbose)],
        )  # fmt: skip
        if resume is not None:
            loop.load_loop_state(resume)
        self.finetune_history_ = loop.run().history
        ckpt.save()

    def _up_down(self, X, labels, ckpt, resume) -> None:
        """Up-down fine-tuning, from ``resume`` (a checkpoint's ``"up_down"`` part) when given;
        ``ckpt`` follows its state."""

        objective = None if labels is None else self.label_training
        loop = UpDown(
            self.dbn_,
            X,
            labels,
            epochs=self._up_down_epochs(labels is not None),
            batch_size=self._s("pretrain_batch_size"),
            learning_rate=self.up_down_learning_rate,
            generator=self.generator_,
            callbacks=[
                self._tracked("up_down", ckpt),
                *progress_callbacks("up-down", self.verbose),
            ],
            label_objective=None if objective == "generative" else objective,
            generative_weight=self.generative_weight,
        )
        if resume is not None and "rule" not in resume:  # written before the shared fit loop
            batches = -(-len(X) // min(loop.batch_size, len(X)))
            epoch = len(resume["history"])
            resume = {
                **resume,
                "epoch": epoch,
                "step": epoch * batches,
                "rule": {"dbn": self.dbn_.state_dict()},
            }
        if resume is not None:
            loop.load_loop_state(resume)
        self.up_down_history_ = loop.run().history
        ckpt.save()

    def transform(self, X):
        """Top hidden layer's means, shape (n_samples, hidden_layers[-1]).

        ``X`` may be sparse; for Bernoulli visible units, values outside [0, 1] are clipped
        into it with a :class:`~deepbelief.estimators.ClippedInputWarning`."""
        X = self._check_input(X)
        exact = self._exact()
        out = torch.cat([exact.transform(v.to(torch.float64)) for v in self._blocks(X)])
        out = out.cpu().numpy()
        return out.astype(X.dtype if X.dtype in (np.float32, np.float64) else np.float64)

    def _exact(self) -> DBNModule:
        """A float64 copy of the stack: large free energies whose small differences matter,
        and results that do not depend on how many rows are computed together."""
        return float64_copy(self.dbn_)

    def reconstruct(self, X):
        """Up pass to the top, down pass of means back to the input space."""
        X = self._check_input(X)
        parts = [self._restore_scale(self.dbn_.reconstruct(v)) for v in self._blocks(X)]
        return np.concatenate(parts)

    def sample(self, n_samples=1, label=None, gibbs_steps=1000, return_labels=False):
        """Draw ``n_samples`` new rows by Gibbs sampling in the top RBM and a down pass.

        Parameters
        ----------
        n_samples : int, default 1
        label : optional
            One of ``classes_``: its label unit is clamped on, and the chains start at the
            class's mean top-level features (``class_features_``). From the visible biases
            instead, chains can spend thousands of steps in a spurious mode before they reach
            the class (MNIST: 45 % of the 1s recognised after 1000 steps, 97 % after 5000 or
            after 1000 from the class's mean; benchmarks/RESULTS.md).
        gibbs_steps : int, default 1000
        return_labels : bool, default False
            Also return each row's class (one of ``classes_``): ``label``, or without it the
            class the label units took at the chains' last step. Needs a DBN fitted with
            labels.

        Returns
        -------
        ndarray of shape (n_samples, n_features_in_)
            With ``return_labels``, a tuple of it and an ndarray of shape (n_samples,).
        """
        check_is_fitted(self)
        n_samples = check("n_samples", n_samples, integer(1))
        gibbs_steps = check("gibbs_steps", gibbs_steps, integer(0))
        labels = start = None
        if (label is not None or return_labels) and not _has_labels(self):
            raise ValueError("this DBN was fitted without labels; it cannot sample by class")
        if label is not None:
            index = self._class_index(label)
            device = self.dbn_.rbms[0].weight.device
            labels = torch.full((n_samples,), index, dtype=torch.long, device=device)
            means = getattr(self, "class_features_", None)  # None: a file written before them
            if means is not None:
                start = means[index].expand(n_samples, -1)
        drawn = self.dbn_.generate(
            n_samples, gibbs_steps, labels, self.generator_, start, return_labels=return_labels
        )
        linear = _linear_top_rbm(self.dbn_)
        if linear and not torch.isfinite(drawn[0] if return_labels else drawn).all():
            raise DivergenceError(
                f"the samples are not finite: Gaussian hidden units over {linear} visible "
                f"units in the top RBM {IMPROPER_TOP}"
            )
        if not return_labels:
            return self._restore_scale(drawn)
        v, indices = drawn
        return self._restore_scale(v), self.classes_[indices.cpu().numpy()]

    def _class_index(self, label) -> int:
        """The position of ``label`` in ``classes_`` (ValueError naming it when it is none of
        them: a list, an unknown value, True for numeric classes)."""
        is_bool = isinstance(label, (bool, np.bool_))
        matches = []
        if np.ndim(label) == 0 and is_bool == (self.classes_.dtype == bool):
            matches = np.flatnonzero(self.classes_ == label)
        if not len(matches):
            raise ValueError(f"unknown label {label!r}; classes are {self.classes_.tolist()}")
        return int(matches[0])

    @available_if(_has_labels)
    def predict_proba(self, X):
        """``p(class | x)`` from the top RBM's free energy with each label unit on."""
        X = self._check_input(X)
        exact = self._exact()
        energies = [exact.label_free_energies(v.to(torch.float64)) for v in self._blocks(X)]
        return torch.softmax(-torch.cat(energies), 1).cpu().numpy()

    @available_if(_has_labels)
    def predict(self, X):
        """The class of lowest free energy for each row."""
        return self.classes_[np.argmax(self.predict_proba(X), 1)]

    @torch.no_grad()
    def score_samples(self, X):
        """Pseudo-log-likelihood of each row under the bottom RBM (Bernoulli inputs), or its
        unnormalised log-density ``-F(v)`` (for a classification RBM, with the labels summed
        out); a bound on the whole DBN's likelihood needs AIS."""
        X = self._check_input(X)
        exact = self._exact()
        pseudo = isinstance(exact.rbms[0].visible, BernoulliUnits)
        scores = [
            evaluation.pseudo_log_likelihood(exact.rbms[0], v, per_row=True)
            if pseudo
            else -exact.input_free_energy(v)
            for v in (block.to(torch.float64) for block in self._blocks(X))
        ]
        return torch.cat(scores).cpu().numpy().astype(np.float64)

    def log_likelihood_bound(self, X, per_row=False, n_samples=100, n_runs=100, betas=None):
        """Variational lower bound on the log-likelihood of the rows of ``X`` in nats
        (:func:`deepbelief.evaluation.dbn_lower_bound`; label units summed out).

        The top RBM's ``log Z`` is exact when small, else estimated by AIS (``n_runs``,
        ``betas``) from a base model fitted to the up-pass of ``X``. ``n_samples`` Monte Carlo
        samples of the hidden layers per row; randomness seeded from ``random_state``.

        Returns
        -------
        float, or ndarray of shape (n_samples,) with ``per_row=True``
        """
        v = self._prepare(_dense(self._check_input(X)))  # whole: AIS fits its base model to it
        generator = make_generator(seed_from(self.random_state), v.device)
        rows = evaluation.dbn_lower_bound(
            self.dbn_, v, n_samples=n_samples, generator=generator, per_row=True,
            n_runs=n_runs, betas=betas,
        )  # fmt: skip
        rows = rows.cpu().numpy() - self._log_scale()
        return rows if per_row else float(rows.mean())

    def score(self, X, y=None):
        """Mean lower bound on the log-likelihood in nats (:meth:`log_likelihood_bound`).

        It runs AIS on the top RBM (unless it is small enough to enumerate): seconds to
        minutes, far more than ``predict``. A grid search over a labelled DBN that should
        rank by accuracy says so: ``GridSearchCV(DBN(...), grid, scoring="accuracy")``.
        """
        return self.log_likelihood_bound(X)

    @property
    def _n_features_out(self) -> int:
        """Number of output features (``get_feature_names_out``: ``dbn0``, ``dbn1``, ...)."""
        return self.dbn_.rbms[-1].n_hidden

    def _to_state(self) -> dict:
        state = {"params": _params_to_state(self.get_params(deep=False))}
        if hasattr(self, "dbn_"):
            histories = {name: getattr(self, f"{name}_", []) for name in self._HISTORIES}
            state["fitted"] = {
                **self._common_state(),
                **_classes_state(self.classes_),
                **histories,
                "class_features": getattr(self, "class_features_", None),
            }
        return state

    #: the histories of the phases after pretraining, kept in the model file
    _HISTORIES = ("label_history", "up_down_history", "finetune_history")

    @classmethod
    def _from_state(cls, state: dict):
        est = cls(**_params_from_state(state["params"]))
        fitted = state.get("fitted")
        if fitted:
            est._restore_common(fitted)
            est.classes_ = _classes_from_state(fitted)
            for name in cls._HISTORIES:  # absent from files written before they were kept
                setattr(est, f"{name}_", fitted.get(name, []))
            means = fitted.get("class_features")
            device = est.dbn_.rbms[0].weight.device
            est.class_features_ = None if means is None else means.to(device)
        return est
