"""Missing values filled in by an RBM: a scikit-learn transformer, like ``IterativeImputer``."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from .applications import check_method, check_rows_observed, fill_in
from .errors import DataError
from .estimators import RBM, SavedRBMWrapper, non_numeric_message, seed_from
from .io import register
from .loop import make_generator
from .multi_prediction import train_to_fill

__all__ = ["RBMImputer"]

#: CD updates that ``n_iter="auto"`` aims at.
AUTO_UPDATES = 30_000


@register("RBMImputer")
class RBMImputer(SavedRBMWrapper, OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Fills the NaN entries of a table from an RBM trained on it, the observed entries
    clamped (never changed).

    Each column is scaled to [0, 1] by its observed minimum and maximum and modelled by a
    Bernoulli visible unit (its value the unit's probability) when the data lie in [0, 1],
    else by a Gaussian unit (on standardised values), which represents a continuous
    column's value, and linear relations between columns, far better. ``fit`` starts from the
    column means, trains the RBM (CD), then for ``n_rounds - 1`` more rounds fills the
    training data from the RBM and trains on for ``n_iter`` epochs. Then, for
    ``prediction_epochs``, it trains the RBM's mean-field fill-in itself by backpropagation to
    predict observed entries hidden from it (multi-prediction training, Goodfellow et al.
    2013; :mod:`deepbelief.multi_prediction`): random subsets of the entries and runs of
    consecutive columns. On MNIST this takes the error on the missing pixels below
    ``KNNImputer``'s (benchmarks/RESULTS.md). ``transform`` fills by ``steps`` mean-field
    passes (the conditional means: a single imputation) or, with ``sample_posterior=True``,
    by Gibbs sampling that returns one draw, different for each ``random_state`` (multiple
    imputation, as ``IterativeImputer(sample_posterior=True)``; multi-prediction training
    sharpens the mean-field fill, not the sampler, so set ``prediction_epochs=0`` when the
    draws matter more than the means).

    Parameters
    ----------
    n_components : int, default 128
        Hidden units.
    n_iter : int or "auto", default "auto"
        CD epochs per round; "auto": about 30,000 updates, within 5 to 100 epochs (5 on
        MNIST's 60,000 rows, 100 on a few hundred). Multi-prediction training fills better
        from a briefly trained RBM than from a long-trained, sharper one (MNIST, 50 % missing:
        0.118 after 5 CD epochs, 0.164 after 20, benchmarks/RESULTS.md).
    n_rounds : int, default 2
        Rounds of filling the training data and training on it (one when nothing is
        missing in it).
    learning_rate : float or "auto", default "auto"
    batch_size : int, default 10
    steps : int, default 10
        Passes per fill (also those multi-prediction training runs through).
    method : {"mean-field", "gibbs"}, default "mean-field"
        How ``transform`` fills: mean-field passes, or the average of the visible means
        along a Gibbs chain with the observed entries clamped (ignored with
        ``sample_posterior``, which always samples).
    sample_posterior : bool, default False
    prediction_epochs : int, default 10
        Epochs of multi-prediction training (0: none).
    prediction_learning_rate : float, default 0.001
        Its Adam step size.
    prediction_batch_size : int, default 100
    visible : {"auto", "bernoulli", "gaussian"}, default "auto"
        "auto": Bernoulli when every observed value lies in [0, 1], else Gaussian.
    random_state : None, int, RandomState or Generator
    device : str, default "auto"
    verbose : int, default 0

    Attributes
    ----------
    rbm_ : deepbelief.RBM
    data_min_, data_range_ : ndarray of shape (n_features,)
        The observed minimum and range of each column (range 1 for constant columns).
    visible_ : str
        The visible units used.
    statistics_ : ndarray of shape (n_features,)
        The observed mean of each column: the first guess of the passes.
    prediction_history_ : list of dict
        The mean loss of each epoch of multi-prediction training.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
    """

    def __init__(
        self,
        n_components=128,
        n_iter="auto",
        n_rounds=2,
        learning_rate="auto",
        batch_size=10,
        steps=10,
        method="mean-field",
        sample_posterior=False,
        prediction_epochs=10,
        prediction_learning_rate=0.001,
        prediction_batch_size=100,
        visible="auto",
        random_state=None,
        device="auto",
        verbose=0,
    ):
        self.n_components = n_components
        self.n_iter = n_iter
        self.n_rounds = n_rounds
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.steps = steps
        self.method = method
        self.sample_posterior = sample_posterior
        self.prediction_epochs = prediction_epochs
        self.prediction_learning_rate = prediction_learning_rate
        self.prediction_batch_size = prediction_batch_size
        self.visible = visible
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    #: saved beside the RBM (SavedRBMWrapper)
    _FITTED = ("data_min", "data_range", "visible", "statistics", "prediction_history")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def fit(self, X, y=None):
        """Learn the columns' ranges and train the RBM on ``X`` (NaN where missing).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self
        """
        self._check_params()
        X = self._validate(X, reset=True)
        missing = np.isnan(X)
        _check_columns_observed(missing)
        check_rows_observed(missing)
        self.data_min_ = np.nanmin(X, axis=0)
        self.visible_ = self.visible
        if self.visible == "auto":
            inside = self.data_min_.min() >= 0 and np.nanmax(X) <= 1
            self.visible_ = "bernoulli" if inside else "gaussian"
        spread = np.nanmax(X, axis=0) - self.data_min_
        self.data_range_ = np.where(spread > 0, spread, 1.0)
        self.statistics_ = np.nanmean(X, axis=0)
        scaled = self._scale(X)
        filled = np.where(missing, self._scale(self.statistics_)[None, :], scaled)
        self.rbm_ = RBM(
            n_components=self.n_components,
            n_iter=self._epochs(len(X)),
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            visible=self.visible_,
            random_state=self.random_state,
            device=self.device,
            verbose=self.verbose,
        ).fit(filled)
        for round_ in range(2, self.n_rounds + 1 if missing.any() else 2):
            filled = self._fill(scaled, start=filled, random_state=None)
            self.rbm_.set_params(n_iter=round_ * self._epochs(len(X))).fit(filled, resume=True)
        self.prediction_history_ = self._train_to_fill(filled, missing)
        return self

    def _epochs(self, n_rows: int) -> int:
        """``n_iter``, with "auto" resolved for ``n_rows`` training rows."""
        if self.n_iter != "auto":
            return int(self.n_iter)
        updates_per_epoch = -(-n_rows // self.batch_size)
        return int(np.clip(round(AUTO_UPDATES / updates_per_epoch), 5, 100))

    def _train_to_fill(self, filled: np.ndarray, missing: np.ndarray) -> list[dict]:
        """Multi-prediction training of the fitted RBM (nothing when prediction_epochs=0)."""
        if not self.prediction_epochs:
            return []
        rbm = self.rbm_
        rows = rbm._prepare(filled)
        start = rbm._prepare(self._scale(self.statistics_)[None, :])[0]
        generator = make_generator(seed_from(self.random_state), rows.device)
        return train_to_fill(
            rbm.model_,
            rows,
            torch.as_tensor(missing, device=rows.device),
            start,
            epochs=self.prediction_epochs,
            passes=self.steps,
            batch_size=self.prediction_batch_size,
            learning_rate=self.prediction_learning_rate,
            generator=generator,
        )

    def transform(self, X):
        """``X`` with its NaN entries filled in; the observed entries are returned unchanged.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_features), float64
        """
        check_is_fitted(self, "rbm_")
        X = self._validate(X, reset=False)
        missing = np.isnan(X)
        check_rows_observed(missing)
        if not missing.any():
            return X
        start = self._scale(self.statistics_)
        filled = self._fill(self._scale(X), start=start, random_state=self.random_state)
        out = filled * self.data_range_ + self.data_min_
        return np.where(missing, out, X)

    def _fill(self, scaled, start, random_state):
        """Scaled rows with their NaN entries filled by the RBM, from ``start`` (a first guess
        of each column or of each entry)."""
        return fill_in(
            self.rbm_,
            scaled,
            method="gibbs" if self.sample_posterior else self.method,
            steps=self.steps,
            start=start,
            draw=self.sample_posterior,
            random_state=random_state,
        )

    def _scale(self, X):
        """Columns min-max scaled (and, for Bernoulli units, clipped into [0, 1])."""
        scaled = (X - self.data_min_) / self.data_range_
        return np.clip(scaled, 0.0, 1.0) if self.visible_ == "bernoulli" else scaled

    def _validate(self, X, reset: bool):
        try:
            X = validate_data(self, X, reset=reset, dtype=np.float64, ensure_all_finite=False)
        except ValueError as exc:
            raise DataError(non_numeric_message(X, str(exc))) from exc
        if np.isinf(X).any():
            row, column = (int(i) for i in np.argwhere(np.isinf(X))[0])
            raise DataError(f"X contains infinity at row {row}, column {column} (counting from 0)")
        return X

    def _check_params(self) -> None:
        names = ("n_components", "n_rounds", "batch_size", "steps")
        if self.n_iter != "auto":
            names += ("n_iter",)
        for name in (*names, "prediction_batch_size", "prediction_epochs"):
            value, low = getattr(self, name), 0 if name == "prediction_epochs" else 1
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                kind = "a non-negative" if low == 0 else "a positive"
                raise ValueError(f"{name} must be {kind} integer; got {value!r}")
        rate = self.prediction_learning_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
            raise ValueError(f"prediction_learning_rate must be a number > 0; got {rate!r}")
        check_method(self.method, self.steps)
        if self.visible not in ("auto", "bernoulli", "gaussian"):
            raise ValueError(
                f"visible must be 'auto', 'bernoulli' or 'gaussian'; got {self.visible!r}"
            )
        seed_from(self.random_state)


def _check_columns_observed(missing: np.ndarray) -> None:
    empty = np.flatnonzero(missing.all(0)) if len(missing) else np.array([], int)
    if len(empty):
        raise DataError(
            f"column {int(empty[0])} has no observed value (counting from 0; {len(empty)} "
            "such column(s)): nothing to learn it from; drop it"
        )
