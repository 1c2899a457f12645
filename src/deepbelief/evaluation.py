"""Evaluation of RBMs: exact log partition function and log-likelihood, pseudo-likelihood,
reconstruction error and the free-energy gap between training and validation data."""

from __future__ import annotations

import copy

import torch

from .nn.rbm import RBM
from .nn.units import BernoulliUnits

#: Largest number of joint states :func:`exact_log_partition` enumerates by default (2^24).
MAX_EXACT_STATES = 2**24


def _enumerable_layer(model: RBM, max_states: float) -> str:
    candidates = []
    for layer, units, n in (
        ("hidden", model.hidden, model.n_hidden),
        ("visible", model.visible, model.n_visible),
    ):
        if units.discrete:
            candidates.append((units.n_states(n), layer))
    if not candidates:
        raise TypeError("exact evaluation needs one discrete layer (Bernoulli or softmax units)")
    n_states, layer = min(candidates)
    if n_states > max_states:
        raise ValueError(
            f"exact evaluation would enumerate {n_states:.3g} states of the {layer} layer "
            f"(limit {max_states:.3g}); use a smaller model or an AIS estimate"
        )
    return layer


@torch.no_grad()
def exact_log_partition(
    model: RBM, max_states: float = MAX_EXACT_STATES, chunk_size: int = 2**14
) -> float:
    """Exact ``log Z`` of an RBM by enumerating its smaller discrete layer (in float64).

    Parameters
    ----------
    model : deepbelief.nn.RBM
        An RBM with at least one layer of Bernoulli or softmax units of at most
        ``max_states`` joint states (about 20-24 binary units).
    max_states : float
        Refuse to enumerate more states than this.
    chunk_size : int
        States evaluated at once.

    Returns
    -------
    float
        The natural log of the partition function.
    """
    layer = _enumerable_layer(model, max_states)
    exact = copy.deepcopy(model).to(dtype=torch.float64)
    units, n = (
        (exact.hidden, exact.n_hidden) if layer == "hidden" else (exact.visible, exact.n_visible)
    )
    states = units.states(n, dtype=torch.float64, device=exact.weight.device)
    free = exact.free_energy_hidden if layer == "hidden" else exact.free_energy
    parts = [-free(chunk) for chunk in torch.split(states, chunk_size)]
    return float(torch.logsumexp(torch.cat(parts), 0))


@torch.no_grad()
def exact_log_likelihood(
    model: RBM, X: torch.Tensor, log_z: float | None = None, per_row: bool = False
):
    """Exact log-likelihood of the rows of ``X`` in nats: the mean, or each row's value.

    ``log_z`` may pass an already computed :func:`exact_log_partition`.
    """
    if log_z is None:
        log_z = exact_log_partition(model)
    exact = copy.deepcopy(model).to(dtype=torch.float64)
    X = torch.as_tensor(X, dtype=torch.float64, device=exact.weight.device)
    values = -exact.free_energy(X) - log_z
    return values if per_row else float(values.mean())


@torch.no_grad()
def pseudo_log_likelihood(model: RBM, X: torch.Tensor, per_row: bool = False, max_elements=2**22):
    """Pseudo-log-likelihood ``sum_i log p(v_i | v_-i)`` of each row, for Bernoulli visible units.

    Every feature's conditional is computed exactly (not estimated from one random feature and
    multiplied by the number of features, as scikit-learn's BernoulliRBM does). Returns the
    mean over rows, or each row's value with ``per_row=True``.
    """
    if not isinstance(model.visible, BernoulliUnits):
        raise TypeError("the pseudo-log-likelihood is defined here for Bernoulli visible units")
    X = torch.as_tensor(X, dtype=model.weight.dtype, device=model.weight.device)
    field = model.hidden_field(X)  # (rows, hidden)
    W, c = model.weight, model.hidden_bias
    chunk = max(1, max_elements // max(1, len(X) * model.n_hidden))
    total = torch.zeros(len(X), dtype=X.dtype, device=X.device)
    for start in range(0, model.n_visible, chunk):
        cols = slice(start, start + chunk)
        v = X[:, cols].unsqueeze(-1)  # (rows, cols, 1)
        w = W[cols].unsqueeze(0)  # (1, cols, hidden)
        base = field.unsqueeze(1) - v * w  # field with v_i = 0
        logit = model.visible_bias[cols] + (
            model.hidden.log_partition(base + w, c, model.hidden_logvar)
            - model.hidden.log_partition(base, c, model.hidden_logvar)
        )
        v = v.squeeze(-1)
        total += (v * torch.nn.functional.logsigmoid(logit)).sum(1)
        total += ((1 - v) * torch.nn.functional.logsigmoid(-logit)).sum(1)
    return total if per_row else float(total.mean())


@torch.no_grad()
def reconstruction_error(model: RBM, X: torch.Tensor) -> float:
    """Mean squared error per feature between ``X`` and its mean-field reconstruction."""
    X = torch.as_tensor(X, dtype=model.weight.dtype, device=model.weight.device)
    return float(((model.reconstruct(X) - X) ** 2).mean())


@torch.no_grad()
def free_energy_gap(model: RBM, X_train: torch.Tensor, X_valid: torch.Tensor) -> float:
    """Mean free energy of validation rows minus that of training rows.

    A gap that grows during training signals overfitting (Hinton's practical guide, section 6).
    """
    kw = {"dtype": model.weight.dtype, "device": model.weight.device}
    valid = model.free_energy(torch.as_tensor(X_valid, **kw)).mean()
    train = model.free_energy(torch.as_tensor(X_train, **kw)).mean()
    return float(valid - train)


def tv_distance(p: torch.Tensor, q: torch.Tensor) -> float:
    """Total-variation distance between two probability vectors."""
    return 0.5 * float((p - q).abs().sum())
