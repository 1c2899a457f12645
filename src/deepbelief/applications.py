"""Denoising and filling in: up-down passes and Gibbs sampling with known entries clamped.

Built on the models' own conditionals (no new maths). The estimator-level
:func:`denoise` and :func:`fill_in` take fitted ``deepbelief.RBM`` or ``deepbelief.DBN``
estimators and arrays in the data's scale; :func:`clamped_passes` is the same on
``deepbelief.nn`` modules and tensors.
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import DataError
from .loop import make_generator
from .nn.rbm import RBM as RBMModule

__all__ = [
    "METHODS",
    "NOISES",
    "clamped_passes",
    "denoise",
    "fill_in",
    "noise_evidence",
    "typicality",
]

#: "mean-field": each pass replaces the free entries by their mean given the others (an
#: up pass of means, a down pass of means); "gibbs": each pass samples, and the result is
#: the average of the visible means over the second half of the passes.
METHODS = ("mean-field", "gibbs")

#: Noise models :func:`denoise` can invert for binary (Bernoulli) inputs.
#: "salt-and-pepper" with level ``p``: each entry is replaced, with probability ``p``, by 0
#: or 1 (equally likely); entries strictly between 0 and 1 are therefore uncorrupted.
#: "gaussian" with level ``sigma``: ``N(0, sigma^2)`` added to every entry, then clipped to
#: [0, 1] (0 and 1 are read as clipped; values outside are read as unclipped).
NOISES = ("salt-and-pepper", "gaussian")


@torch.no_grad()
def clamped_passes(
    module,
    v: torch.Tensor,
    free: torch.Tensor | None = None,
    *,
    method: str = "mean-field",
    steps: int = 1,
    draw: bool = False,
    generator: torch.Generator | None = None,
    evidence: torch.Tensor | None = None,
) -> torch.Tensor:
    """Passes up and down ``module`` from ``v``, the entries outside ``free`` kept as given.

    Parameters
    ----------
    module : deepbelief.nn.RBM or deepbelief.nn.DBN
    v : tensor of shape (n, n_visible)
        The starting visible states (the observed values, and a first guess where free).
    free : bool tensor of the shape of ``v``, optional
        The entries to replace. Without it, every entry is free and no entry anchors a chain
        to ``v``, so "gibbs" makes ``steps`` independent sampled passes from ``v`` and
        averages their visible means (a sampled chain would forget ``v``).
    method : {"mean-field", "gibbs"}
        "mean-field": each pass is an up pass and a down pass of means. "gibbs": each pass
        samples the hidden layers and the free visible entries; the result is the average of
        the visible means over the last ``max(1, steps // 2)`` passes.
    steps : int
        Passes.
    draw : bool, default False
        With "gibbs" and ``free``: the visible means of the last pass alone (given its
        sampled hidden states), one draw from the posterior, instead of the average.
    generator : torch.Generator, optional
    evidence : tensor of the shape of ``v``, optional
        For Bernoulli inputs: what a noisy observation says about each entry, the log-odds
        ``log p(x | v=1) - log p(x | v=0)`` (:func:`noise_evidence`), added to the input of
        the free units at every pass. The result is then the posterior ``P(v = 1 | x)``
        of the free entries, the observation taken as evidence rather than as the state.

    Returns
    -------
    tensor of the shape of ``v``
        ``v`` where not free; the estimate where free.
    """
    check_method(method, steps)
    if evidence is not None:
        free = torch.ones_like(v, dtype=torch.bool) if free is None else free.to(torch.bool)
        return _posterior_passes(module, v, free, evidence, method, steps, draw, generator)
    if method == "mean-field":
        for _ in range(steps):
            v = (
                module.reconstruct(v)
                if free is None
                else torch.where(free, module.reconstruct(v), v)
            )
        return v
    if free is None:
        return sum(_sample_pass(module, v, generator)[0] for _ in range(steps)) / steps
    observed, free = v, free.to(torch.bool)
    averaged = 1 if draw else max(1, steps // 2)
    total = torch.zeros_like(v)
    for step in range(steps):
        mean, sample = _sample_pass(module, v, generator)
        v = torch.where(free, sample, observed)
        if step >= steps - averaged:
            total += mean
    return torch.where(free, total / averaged, observed)


def check_method(method: str, steps) -> None:
    """ValueError for an unknown ``method`` or fewer than one step."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer; got {steps!r}")


def _sample_pass(module, v: torch.Tensor, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One Gibbs pass: (the visible means given the sampled hidden states, a visible sample)."""
    if isinstance(module, RBMModule):
        h = module.sample_hidden(v, generator=generator)
        return module.visible_mean(h), module.sample_visible(h, generator=generator)
    rbms, n_labels = module.rbms, module.n_labels
    x = v
    for rbm in rbms[:-1]:
        x = rbm.sample_hidden(x, generator=generator)
    top = rbms[-1]
    h = top.sample_hidden(module.top_visible(x), generator=generator)
    x = top.sample_visible(h, generator=generator)[:, : top.n_visible - n_labels]
    for layer in reversed(range(1, len(rbms) - 1)):
        x = module.generative_sample(layer, x, generator)
    if len(rbms) == 1:
        return top.visible_mean(h)[:, : top.n_visible - n_labels], x
    return module.generative_mean(0, x), module.generative_sample(0, x, generator)


def _posterior_passes(module, v, free, evidence, method, steps, draw, generator):
    """:func:`clamped_passes` of Bernoulli inputs with ``evidence`` added to their input."""
    observed = v
    averaged = 1 if draw or method == "mean-field" else max(1, steps // 2)
    total = torch.zeros_like(v)
    for step in range(steps):
        sampled = generator if method == "gibbs" else None
        mean = torch.sigmoid(_input_field(module, v, sampled) + evidence)
        state = mean if method == "mean-field" else _bernoulli(mean, generator)
        v = torch.where(free, state, observed)
        if step >= steps - averaged:
            total += mean
    return torch.where(free, total / averaged, observed)


def _bernoulli(p: torch.Tensor, generator) -> torch.Tensor:
    return torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype).lt_(p)


def _input_field(module, v: torch.Tensor, generator=None) -> torch.Tensor:
    """The input units' total input after one pass up ``module`` from ``v`` and back down:
    a pass of means, or of sampled hidden states when a ``generator`` is given."""
    if isinstance(module, RBMModule):
        if generator is None:
            return module.visible_input(module.hidden_mean(v))
        return module.visible_input(module.sample_hidden(v, generator=generator))
    rbms, n_labels = module.rbms, module.n_labels
    top, n_features = rbms[-1], rbms[-1].n_visible - n_labels
    if generator is None:
        h = module.transform(v)
    else:
        x = v
        for rbm in rbms[:-1]:
            x = rbm.sample_hidden(x, generator=generator)
        h = top.sample_hidden(module.top_visible(x), generator=generator)
    if len(rbms) == 1:
        return top.visible_input(h)[:, :n_features]
    if generator is None:
        x = top.visible_mean(h)[:, :n_features]
        for layer in reversed(range(1, len(rbms) - 1)):
            x = module.generative_mean(layer, x)
    else:
        x = top.sample_visible(h, generator=generator)[:, :n_features]
        for layer in reversed(range(1, len(rbms) - 1)):
            x = module.generative_sample(layer, x, generator)
    return module.generative_input(0, x)


def noise_evidence(X, noise: str, level: float) -> tuple[np.ndarray, np.ndarray]:
    """What a noisy observation ``X`` says about each clean binary entry under ``noise``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The noisy rows, in [0, 1] (see :data:`NOISES`).
    noise : {"salt-and-pepper", "gaussian"}
    level : float
        The share of entries replaced (salt-and-pepper, in (0, 1]) or the noise's standard
        deviation (gaussian, > 0).

    Returns
    -------
    free : ndarray of bool
        The entries that may be corrupted (all of them for Gaussian noise; those at 0 or 1
        for salt-and-pepper).
    evidence : ndarray of float64
        ``log p(x | clean = 1) - log p(x | clean = 0)`` of each entry.
    """
    check_noise(noise, level)
    X = np.asarray(X, dtype=np.float64)
    if noise == "salt-and-pepper":
        free = (X == 0) | (X == 1)
        odds = np.log((2 - level) / level)  # kept with 1 - p/2, replaced by it with p/2
        return free, np.where(X == 1, odds, np.where(X == 0, -odds, 0.0))
    clipped = float(torch.special.log_ndtr(torch.tensor(-1.0 / level, dtype=torch.float64)))
    clipped += np.log(2.0)  # log P(x = 0 | 1) - log P(x = 0 | 0), the mass clipped to 0
    evidence = (2 * X - 1) / (2 * level**2)
    evidence = np.where(X == 0, clipped, np.where(X == 1, -clipped, evidence))
    return np.ones(X.shape, bool), evidence


def check_noise(noise: str, level) -> None:
    """ValueError for an unknown noise model or a level outside its range."""
    if noise not in NOISES:
        raise ValueError(f"noise must be one of {', '.join(NOISES)}; got {noise!r}")
    if isinstance(level, bool) or not isinstance(level, (int, float, np.number)):
        raise ValueError(f"noise_level must be a number for {noise} noise; got {level!r}")
    if noise == "salt-and-pepper" and not 0 < level <= 1:
        raise ValueError(
            "noise_level must lie in (0, 1] for salt-and-pepper noise (the share of entries "
            f"replaced); got {level}"
        )
    if noise == "gaussian" and not (level > 0 and np.isfinite(level)):
        raise ValueError(
            f"noise_level must be > 0 for gaussian noise (the standard deviation); got {level}"
        )


def _module(estimator):
    """The fitted estimator's torch module (an RBM's ``model_``, a DBN's ``dbn_``).
    sklearn's NotFittedError (a ValueError) for an estimator not fitted yet; TypeError for
    anything else."""
    from sklearn.base import BaseEstimator
    from sklearn.exceptions import NotFittedError

    for name in ("model_", "dbn_"):
        module = getattr(estimator, name, None)
        if module is not None:
            return module
    if isinstance(estimator, BaseEstimator) and hasattr(estimator, "_prepare"):
        raise NotFittedError(
            f"this {type(estimator).__name__} is not fitted yet: call fit before using it "
            "to denoise, fill in or score rows"
        )
    raise TypeError(
        "model must be a fitted deepbelief.RBM or deepbelief.DBN (or a deepbelief.nn.RBM or "
        f"deepbelief.nn.DBN module); got {type(estimator).__name__}"
    )


def _generator(random_state, device) -> torch.Generator:
    from .estimators import seed_from

    return make_generator(seed_from(random_state), device)


def denoise(
    model,
    X,
    *,
    method="mean-field",
    steps=None,
    mask=None,
    noise=None,
    noise_level=None,
    random_state=None,
):
    """Clean the rows of ``X`` with a fitted ``deepbelief.RBM`` or ``deepbelief.DBN``.

    Three ways, from the least to the most the caller knows about the corruption:

    - neither ``mask`` nor ``noise``: every entry may change: one up-down pass of means by
      default (the model's reconstruction), or the average of ``steps`` sampled up-down
      passes' visible means;
    - ``mask`` marking the entries known to be corrupted: only those change; the others are
      clamped to their values in ``X`` at every pass of the mean-field iteration or of the
      Gibbs chain, whose visible means are averaged over its second half;
    - ``noise`` and ``noise_level`` naming how ``X`` was corrupted (Bernoulli inputs): the
      noisy values are evidence, not the state; the result is the posterior mean of the
      clean entries under the model and the noise model (:func:`noise_evidence`), by
      mean-field passes or by a Gibbs chain averaged over its second half. Entries the
      noise cannot have touched (strictly inside (0, 1) for salt-and-pepper) are clamped.

    Parameters
    ----------
    model : fitted deepbelief.RBM or deepbelief.DBN
    X : array-like of shape (n_samples, n_features)
        In the scale the model was fitted on (Bernoulli inputs are clipped into [0, 1]).
    method : {"mean-field", "gibbs"}, default "mean-field"
    steps : int, optional
        Passes; default 1 for mean-field without ``mask`` or ``noise``, else 20; 100 for
        Gibbs.
    mask : array-like of bool of shape (n_samples, n_features), optional
        True where an entry is corrupted.
    noise : {"salt-and-pepper", "gaussian"}, optional
        The noise model (:data:`NOISES`); not together with ``mask``.
    noise_level : float, optional
        Required with ``noise``: the share of entries replaced by 0 or 1 (salt-and-pepper)
        or the standard deviation (gaussian).
    random_state : None, int, RandomState or Generator
        Seeds Gibbs sampling.

    Returns
    -------
    ndarray of shape (n_samples, n_features), float64

    Examples
    --------
    >>> cleaned = denoise(rbm, noisy, noise="salt-and-pepper", noise_level=0.1)  # doctest: +SKIP
    """
    _module(model)  # refuses an unfitted model before looking at X
    _check_rows(X, "denoise")
    if noise is None:
        if noise_level is not None:
            raise ValueError("noise_level needs noise (the noise model it is the level of)")
        steps = _default_steps(method, steps, mask is not None)
        return _passes(model, X, method, steps, mask, False, random_state)
    if mask is not None:
        raise ValueError("give either mask (the entries known to be corrupted) or noise")
    check_noise(noise, noise_level)
    check_bernoulli_input(model, f"noise={noise!r}")
    steps = _default_steps(method, steps, True)
    given = _dense_rows(model, X)
    free, evidence = noise_evidence(_raw_rows(X, given), noise, noise_level)
    return _passes(model, given, method, steps, free, False, random_state, evidence)


def _raw_rows(X, checked: np.ndarray) -> np.ndarray:
    """``X`` before clipping (evidence reads values outside [0, 1] as unclipped noise)."""
    from scipy import sparse

    raw = X.toarray() if sparse.issparse(X) else np.asarray(X, dtype=np.float64)
    return raw if raw.shape == checked.shape else checked


def check_bernoulli_input(model, what: str, error=ValueError) -> None:
    """``error`` unless the fitted ``model``'s inputs are Bernoulli units (``what`` needs them)."""
    module = _module(model)
    units = module.visible if isinstance(module, RBMModule) else module.input_units
    if units.name != "bernoulli":
        raise error(
            f"{what} is modelled for Bernoulli (binary) inputs; this model's inputs are "
            f"{units.name}: use no noise model"
        )


def _passes(model, X, method, steps, mask, draw, random_state, evidence=None) -> np.ndarray:
    """:func:`clamped_passes` in the data's scale, through a fitted estimator."""
    module = _module(model)
    check_method(method, steps)
    given = _dense_rows(model, X)
    v = model._prepare(given)
    free = None
    if mask is not None:
        free = torch.as_tensor(_check_mask(mask, v.shape), device=v.device)
    if evidence is not None:
        evidence = torch.as_tensor(evidence, dtype=v.dtype, device=v.device)
    generator = _generator(random_state, v.device)
    out = clamped_passes(
        module,
        v,
        free,
        method=method,
        steps=steps,
        draw=draw,
        generator=generator,
        evidence=evidence,
    )
    result = model._restore_scale(out)
    if mask is not None:  # clamped entries come back exactly as given
        result = np.where(np.asarray(mask, bool), result, given.astype(np.float64))
    return result


def fill_in(
    model, X, *, method="mean-field", steps=None, start=None, draw=False, random_state=None
):
    """Fill the NaN entries of ``X`` from a fitted ``deepbelief.RBM`` or ``deepbelief.DBN``,
    the observed entries clamped (they are returned unchanged).

    Parameters
    ----------
    model : fitted deepbelief.RBM or deepbelief.DBN
    X : array-like of shape (n_samples, n_features), with NaN where missing
        In the scale the model was fitted on.
    method : {"mean-field", "gibbs"}, default "mean-field"
        "mean-field" gives the conditional means (a single imputation); "gibbs" the average
        of the sampled passes' means.
    steps : int, optional
        Passes; default 20 for mean-field, 100 for Gibbs.
    start : array-like of shape (n_features,) or of the shape of ``X``, optional
        First guess of each column, or of each entry (default: 0.5 for Bernoulli inputs,
        else the model's input mean).
    draw : bool, default False
        With "gibbs": one draw (the means given the last pass's sampled hidden states)
        instead of the average; different draws for different ``random_state`` (multiple
        imputation).
    random_state : None, int, RandomState or Generator

    Returns
    -------
    ndarray of shape (n_samples, n_features), float64
    """
    _module(model)  # refuses an unfitted model before looking at X
    columns = getattr(X, "columns", None)
    X = np.array(X, dtype=np.float64)
    if X.ndim != 2:
        raise DataError(
            f"X must be 2-D, of shape (n_samples, n_features); got shape {X.shape} (one row: "
            "X.reshape(1, -1))"
        )
    _check_rows(X, "fill_in")
    missing = np.isnan(X)
    check_rows_observed(missing)
    steps = _default_steps(method, steps, True)
    if start is None:
        mean = getattr(model, "input_mean_", None)
        start = np.full(X.shape[1], 0.5) if mean is None else np.asarray(mean, np.float64)
    start = np.asarray(start, np.float64)
    if start.shape not in ((X.shape[1],), X.shape):
        raise DataError(
            f"start must have shape ({X.shape[1]},) (one value a column) or {X.shape} (one an "
            f"entry), like X; got shape {start.shape}"
        )
    filled = np.where(missing, np.broadcast_to(start, X.shape), X)
    if columns is not None:  # the model checks a DataFrame's names against those it learned
        import pandas as pd

        filled = pd.DataFrame(filled, columns=columns)
    out = _passes(model, filled, method, steps, missing, draw, random_state)
    return np.where(missing, out, X)  # observed entries as given (the model saw them clipped)


@torch.no_grad()
def typicality(model, X) -> np.ndarray:
    """``-F(v)`` of each row under a fitted estimator's first RBM, in the data's scale: the
    log-likelihood up to a constant (``log Z``) for an RBM (a classification RBM's with the
    labels summed out), higher for more typical rows.

    Parameters
    ----------
    model : fitted deepbelief.RBM, deepbelief.DBN, DBNClassifier or DBNRegressor
    X : {array-like, sparse matrix} of shape (n_samples, n_features)

    Returns
    -------
    ndarray of shape (n_samples,), float64
    """
    module = _module(model)
    energy = module.free_energy if isinstance(module, RBMModule) else module.input_free_energy
    _check_rows(X, "typicality")
    X = model._check_input(X)
    scores = [-energy(v).double() for v in model._blocks(X)]
    if not scores:
        return np.zeros(0)
    return torch.cat(scores).cpu().numpy() - model._log_scale()


def check_rows_observed(missing: np.ndarray) -> None:
    """DataError naming the first row with no observed entry."""
    empty = np.flatnonzero(missing.all(1)) if missing.shape[1] else np.array([], int)
    if len(empty):
        raise DataError(
            f"row {int(empty[0])} has no observed value (counting from 0; {len(empty)} such "
            "row(s)): nothing to condition on; drop it"
        )


def _check_rows(X, what: str) -> None:
    """DataError (a ValueError) for an ``X`` of zero rows, as scikit-learn's estimators
    refuse them."""
    shape = getattr(X, "shape", None)
    if shape is None:
        shape = np.shape(X)
    if len(shape) >= 1 and shape[0] == 0:
        raise DataError(f"{what} needs at least one row; X has shape {tuple(shape)} (0 rows)")


def _default_steps(method: str, steps, masked: bool):
    if steps is not None:
        return steps
    if method == "gibbs":
        return 100
    return 20 if masked else 1


def _dense_rows(model, X) -> np.ndarray:
    """``X`` validated as the model's input (clipped for Bernoulli units), densified."""
    from .estimators import _dense

    return _dense(model._check_input(X))


def _check_mask(mask, shape) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise DataError(f"mask has shape {mask.shape}; X has shape {tuple(shape)}")
    if mask.dtype != bool:
        raise DataError(f"mask must hold booleans (True where corrupted); got {mask.dtype}")
    return mask
