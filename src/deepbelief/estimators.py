"""scikit-learn estimators. Thin: validate, build the torch objects in ``fit``, delegate."""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from . import evaluation
from .errors import DataError
from .io import register, save
from .loop import loading_device
from .nn.rbm import RBM as RBMModule
from .nn.units import BernoulliUnits, Units, units_from_config, units_from_spec
from .samplers import Sampler, sampler_from_config
from .settings import check, check_trainer_settings, integer, real
from .training import Checkpoint, ProgressBar, RBMTrainer, make_generator, resolve_device

log = logging.getLogger("deepbelief")

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def check_X(estimator, X, reset: bool) -> np.ndarray:
    """Validate ``X`` through scikit-learn, raising :class:`DataError` that names the problem.

    Non-finite values are reported with their row and column.
    """
    try:
        X = validate_data(
            estimator, X, reset=reset, dtype=[np.float64, np.float32], ensure_all_finite=False
        )
    except ValueError as exc:
        message = str(exc)
        if "could not convert" in message:
            message = f"X must be numeric: {message}"
        raise DataError(message) from exc
    bad = ~np.isfinite(X)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(X[row, col]) else "infinity (inf)"
        raise DataError(
            f"X contains {kind} at row {row}, column {col} "
            f"(counting from 0; {int(bad.sum())} non-finite value(s) in all); remove or impute them"
        )
    return X


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
        if X.min() >= 0 and X.max() <= 1:
            return BernoulliUnits()
        log.info("visible='auto': values outside [0, 1], using Gaussian units on standardised data")
        return units_from_spec("gaussian")
    return units_from_spec(spec)


def fit_scaling(units: Units, X: np.ndarray):
    """Mean and scale that standardise ``X`` for Gaussian visible units, else ``(None, None)``."""
    if units.name != "gaussian":
        return None, None
    scale = X.std(0)
    return X.mean(0), np.where(scale > 0, scale, 1.0)


class ScaledInputMixin:
    """Input scaling shared by the estimators: ``_input_rbm()`` names the RBM that sees ``X``;
    ``input_mean_``/``input_scale_`` (None for non-Gaussian inputs) and ``visible_units_``
    are fitted attributes."""

    def _input_rbm(self):
        raise NotImplementedError

    def _prepare(self, X: np.ndarray) -> torch.Tensor:
        """Scale ``X`` for the visible units and move it to the model's device."""
        if self.input_mean_ is not None:
            X = (X - self.input_mean_) / self.input_scale_
        rbm = self._input_rbm()
        tensor = torch.as_tensor(np.asarray(X), dtype=rbm.weight.dtype, device=rbm.weight.device)
        message = rbm.support_error(tensor)
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
        return v

    return {k: describe(v) for k, v in params.items()}


def _params_from_state(params: dict) -> dict:
    def restore(v):
        if isinstance(v, dict) and "__units__" in v:
            return units_from_config(v["__units__"])
        if isinstance(v, dict) and "__sampler__" in v:
            return sampler_from_config(v["__sampler__"])
        return v

    return {k: restore(v) for k, v in params.items()}


@register("RBM")
class RBM(ScaledInputMixin, TransformerMixin, BaseEstimator):
    """Restricted Boltzmann Machine, a drop-in for :class:`sklearn.neural_network.BernoulliRBM`.

    Trained by real contrastive divergence (CD-k), persistent CD or parallel tempering on a
    PyTorch core, on CPU or GPU. ``transform`` gives the hidden units' means.

    Parameters
    ----------
    n_components : int, default 256
        Number of hidden units.
    learning_rate : float or "auto", default "auto"
        0.1 for Bernoulli visible units, 0.01 for Gaussian and ReLU ones (Hinton's guide).
    batch_size : int, default 10
    n_iter : int, default 10
        Epochs.
    verbose : int, default 0
        1 logs each epoch's monitors and shows a progress bar.
    random_state : int or None
        Seeds the torch.Generator behind all randomness; same seed, same weights.
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
    weight_decay : float, default 2e-4
        L2 penalty on the weights only.
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
        The weights, as in BernoulliRBM.
    intercept_hidden_, intercept_visible_ : ndarray
    history_ : list of dict
        Per-epoch monitors (reconstruction error, pseudo-log-likelihood, ...).
    n_features_in_ : int
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
        weight_decay=2e-4,
        l1=0.0,
        sparsity_target=None,
        sparsity_cost=0.1,
        max_norm=None,
        clip_grad_norm=None,
        centering=False,
        sample_data=False,
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
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, resume: bool = False):
        """Train on ``X`` for ``n_iter`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
        resume : bool, default False
            Continue an interrupted run (an estimator loaded from its ``checkpoint``) instead
            of starting afresh.

        Returns
        -------
        self
        """
        self._check_params()
        if resume and hasattr(self, "trainer_"):
            X = self._prepare(check_X(self, X, reset=False))
            self.trainer_.epochs = self.n_iter
        else:
            X = self._setup(check_X(self, X, reset=True), partial=False)
        self._train(X)
        return self

    def partial_fit(self, X, y=None):
        """Train for one epoch on ``X`` (one pass in minibatches); returns ``self``."""
        self._check_params()
        if not hasattr(self, "model_"):
            X = self._setup(check_X(self, X, reset=True), partial=True)
        else:
            X = self._prepare(check_X(self, X, reset=False))
        self.trainer_.epochs = self.trainer_.epoch + 1
        self._train(X)
        return self

    def _setup(self, X: np.ndarray, partial: bool) -> torch.Tensor:
        visible = choose_visible(self.visible, X)
        self.visible_units_ = visible.name
        self.input_mean_, self.input_scale_ = fit_scaling(visible, X)
        device = resolve_device(self.device)
        generator = make_generator(self.random_state, device)
        self.model_ = RBMModule(
            X.shape[1],
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
        settings = self._trainer_settings(lr, schedule)
        self.trainer_ = RBMTrainer(self.model_, generator=generator, **settings)
        return self._prepare(X)

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
        )

    def _check_params(self) -> None:
        """Validate every parameter without touching data (``fit`` does it first; the command
        line before it reads a file); ValueError names the parameter and the value."""
        for name, low in (("n_components", 1), ("n_iter", 0), ("checkpoint_every", 1)):
            check(name, getattr(self, name), integer(low))
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        check("weight_std", self.weight_std, real(0, low_open=True))
        check("verbose", self.verbose, integer(0))
        lr = self.learning_rate
        check_trainer_settings(self._trainer_settings(0.1 if lr == "auto" else lr))
        check_units(self.visible, "visible", allow_auto=True)
        check_units(self.hidden, "hidden")
        resolve_device(self.device)

    def _input_rbm(self):
        return self.model_

    def _train(self, X: torch.Tensor) -> None:
        callbacks = []
        if self.verbose:
            callbacks.append(ProgressBar(desc="RBM"))
        if self.checkpoint is not None:
            callbacks.append(Checkpoint(self.checkpoint, self.checkpoint_every, save=self.save))
        self.trainer_.callbacks = callbacks
        level = logging.INFO if self.verbose else logging.DEBUG
        log.log(level, "RBM %s: training %d epochs", self.model_.extra_repr(), self.n_iter)
        self.trainer_.fit(X)
        self.n_iter_ = self.trainer_.epoch

    # ------------------------------------------------------------------ outputs
    def _output(self, result: torch.Tensor, like: np.ndarray) -> np.ndarray:
        dtype = like.dtype if like.dtype in (np.float32, np.float64) else np.float64
        return result.detach().cpu().numpy().astype(dtype, copy=False)

    @torch.no_grad()
    def transform(self, X):
        """Hidden units' means ``E[h | v]``, shape (n_samples, n_components)."""
        check_is_fitted(self)
        X = check_X(self, X, reset=False)
        return self._output(self.model_.hidden_mean(self._prepare(X)), X)

    @torch.no_grad()
    def reconstruct(self, X):
        """Mean-field reconstruction of ``X``, in the scale of ``X``."""
        check_is_fitted(self)
        return self._restore_scale(self.model_.reconstruct(self._prepare(check_X(self, X, False))))

    @torch.no_grad()
    def gibbs(self, v):
        """One Gibbs step ``v -> h -> v'`` from the rows of ``v``; returns the sampled ``v'``."""
        check_is_fitted(self)
        tensor = self._prepare(check_X(self, v, reset=False))
        return self._restore_scale(self.model_.gibbs(tensor, 1, generator=self.trainer_.generator))

    @torch.no_grad()
    def sample(self, n_samples=1, n_steps=1000):
        """Draw ``n_samples`` new rows by ``n_steps`` of Gibbs sampling from random starts
        (parallel tempering when the estimator was trained with ``sampler="pt"``)."""
        check_is_fitted(self)
        sampler = self.trainer_.sampler
        v = sampler.sample(self.model_, int(n_samples), int(n_steps), self.trainer_.generator)
        return self._restore_scale(v)

    @torch.no_grad()
    def score_samples(self, X):
        """Pseudo-log-likelihood of each row (Bernoulli visible units), computed exactly over
        every feature, so it is deterministic; for other visible units, the unnormalised
        log-density ``-F(v)`` of the (standardised) row."""
        check_is_fitted(self)
        X = check_X(self, X, reset=False)
        v = self._prepare(X)
        if isinstance(self.model_.visible, BernoulliUnits):
            scores = evaluation.pseudo_log_likelihood(self.model_, v, per_row=True)
        else:
            scores = -self.model_.free_energy(v)
        return scores.detach().cpu().numpy().astype(np.float64)

    def log_likelihood(self, X, per_row=False, n_runs=100, betas=None):
        """Log-likelihood of the rows of ``X`` in nats (of the data as given: the scaling of
        Gaussian inputs is accounted for).

        ``log Z`` is exact when the smaller discrete layer has at most 2^20 states, else
        estimated by :func:`deepbelief.evaluation.ais_log_partition` with ``n_runs`` runs over
        ``betas`` (default: Salakhutdinov & Murray's 14,501 distributions), its base model
        fitted to ``X`` and its randomness seeded from ``random_state``.

        Returns
        -------
        float, or ndarray of shape (n_samples,) with ``per_row=True``
        """
        check_is_fitted(self)
        X = check_X(self, X, reset=False)
        v = self._prepare(X)
        generator = make_generator(self.random_state, v.device)
        rows = evaluation.log_likelihood(
            self.model_, v, per_row=True, n_runs=n_runs, betas=betas, generator=generator
        )
        rows = rows.cpu().numpy() - self._log_scale()
        return rows if per_row else float(rows.mean())

    def score(self, X, y=None):
        """Mean log-likelihood in nats (:meth:`log_likelihood`); higher is better."""
        return self.log_likelihood(X)

    @property
    def history_(self) -> list[dict]:
        return self.trainer_.history

    @property
    def components_(self) -> np.ndarray:
        return self.model_.weight.detach().cpu().numpy().T.copy()

    @property
    def intercept_hidden_(self) -> np.ndarray:
        return self.model_.hidden_bias.detach().cpu().numpy().copy()

    @property
    def intercept_visible_(self) -> np.ndarray:
        return self.model_.visible_bias.detach().cpu().numpy().copy()

    # ------------------------------------------------------------------ files
    def save(self, path) -> None:
        """Save to ``path`` (safetensors + JSON; atomic); :func:`deepbelief.load` reads it."""
        save(self, path)

    def _to_state(self) -> dict:
        state = {"params": _params_to_state(self.get_params(deep=False))}
        if hasattr(self, "model_"):
            state["fitted"] = {
                "n_features_in": self.n_features_in_,
                "feature_names_in": list(getattr(self, "feature_names_in_", [])) or None,
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
            est.n_features_in_ = int(fitted["n_features_in"])
            if fitted["feature_names_in"]:
                est.feature_names_in_ = np.array(fitted["feature_names_in"], dtype=object)
            est.visible_units_ = fitted["visible_units"]
            est.input_mean_ = _as_array(fitted["input_mean"])
            est.input_scale_ = _as_array(fitted["input_scale"])
            est.n_iter_ = int(fitted["n_iter"])
            device = loading_device(est.device)
            est.trainer_ = RBMTrainer._from_state(fitted["trainer"], device=device)
            est.model_ = est.trainer_.model
        return est


def _as_array(value):
    if value is None:
        return None
    return value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
