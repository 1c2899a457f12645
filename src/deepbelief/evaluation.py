"""Evaluation of RBMs and DBNs: exact and AIS-estimated log partition functions,
log-likelihoods, the DBN variational lower bound, pseudo-likelihood, reconstruction error and
the free-energy gap between training and validation data."""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .loop import ONE_THREAD_MACS, cpu_threads
from .nn.dbn import DBN
from .nn.rbm import RBM
from .nn.units import BernoulliUnits, MixedUnits, SoftmaxUnits

#: Largest number of joint states :func:`exact_log_partition` enumerates by default (2^24).
MAX_EXACT_STATES = 2**24


def warn_relu(model) -> None:
    """A warning when ``model`` has ReLU units: their likelihood is that of the stepped
    sigmoid units they approximate, while its sampler (and CD, PCD, AIS's transitions) draws
    noisy ReLUs, another distribution (:class:`deepbelief.nn.units.ReLUUnits`)."""
    if "relu" in (model.visible.name, model.hidden.name):
        warnings.warn(
            "ReLU units: log Z and likelihoods are those of the stepped sigmoid units that "
            "noisy ReLUs approximate (Nair & Hinton 2010); the model's sampler draws noisy "
            "ReLUs, another distribution, so sampled statistics and these figures differ",
            UserWarning,
            stacklevel=3,
        )


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
    warn_relu(model)
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
def pseudo_log_likelihood(
    model: RBM,
    X: torch.Tensor,
    per_row: bool = False,
    max_elements=2**22,
    features: torch.Tensor | None = None,
):
    """Pseudo-log-likelihood ``sum_i log p(v_i | v_-i)`` of each row, for Bernoulli visible units.

    Every feature's conditional is computed exactly (not estimated from one random feature and
    multiplied by the number of features, as scikit-learn's BernoulliRBM does). Returns the
    mean over rows, or each row's value with ``per_row=True``. ``features`` (column indices)
    restricts the sum to those features, scaled by ``n_visible / len(features)``: a cheaper,
    deterministic estimate for wide layers.
    """
    if not isinstance(model.visible, BernoulliUnits):
        raise TypeError("the pseudo-log-likelihood is defined here for Bernoulli visible units")
    X = torch.as_tensor(X, dtype=model.weight.dtype, device=model.weight.device)
    field = model.hidden_field(X)  # (rows, hidden)
    W, c = model.weight, model.hidden_bias
    chunk = max(1, max_elements // max(1, len(X) * model.n_hidden))
    total = torch.zeros(len(X), dtype=X.dtype, device=X.device)
    columns = (
        torch.arange(model.n_visible, device=X.device)
        if features is None
        else torch.as_tensor(features, dtype=torch.long, device=X.device)
    )
    for start in range(0, len(columns), chunk):
        cols = columns[start : start + chunk]
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
    total *= model.n_visible / len(columns)
    return total if per_row else float(total.mean())


@torch.no_grad()
def pseudo_log_likelihood_estimate(
    model: RBM,
    X: torch.Tensor,
    row_features: torch.Tensor | None = None,
    hidden_field: torch.Tensor | None = None,
) -> float:
    """A cheap, deterministic estimate of :func:`pseudo_log_likelihood`'s mean: each row
    contributes the conditional of one feature (``row_features[i]`` for row ``i``; by default
    the features in turn, ``i mod n_visible``), times ``n_visible``.

    It costs two evaluations of the hidden units' log-partition per row (an exact
    pseudo-log-likelihood costs two per row and feature), and nothing more when
    ``hidden_field`` (``model.hidden_field(X)``) is given. Unlike scikit-learn's
    estimate, the features are fixed, so the same rows give the same number for the same
    model. Bernoulli visible units; values in [0, 1] are weighted as in
    :func:`pseudo_log_likelihood`.
    """
    if not isinstance(model.visible, BernoulliUnits):
        raise TypeError("the pseudo-log-likelihood is defined here for Bernoulli visible units")
    X = torch.as_tensor(X, dtype=model.weight.dtype, device=model.weight.device)
    if row_features is None:
        row_features = torch.arange(len(X), device=X.device) % model.n_visible
    row_features = torch.as_tensor(row_features, dtype=torch.long, device=X.device)
    v = X.gather(1, row_features[:, None])  # (rows, 1)
    if isinstance(model, RBM):
        field = model.hidden_field(X) if hidden_field is None else hidden_field
        w = model.weight[row_features]  # (rows, hidden): each row's feature's weights
        base = field - v * w  # the field with the feature off
        c, logvar = model.hidden_bias, model.hidden_logvar
        logit = model.visible_bias[row_features] + (
            model.hidden.log_partition(base + w, c, logvar)
            - model.hidden.log_partition(base, c, logvar)
        )
    else:  # another field (a conv RBM's): the free energies with the feature off and on
        rows = torch.arange(len(X), device=X.device)
        off, on = X.clone(), X.clone()
        off[rows, row_features], on[rows, row_features] = 0.0, 1.0
        logit = model.free_energy(off) - model.free_energy(on)
    v = v.squeeze(1)
    per_row = v * F.logsigmoid(logit) + (1 - v) * F.logsigmoid(-logit)
    return float(per_row.mean()) * model.n_visible


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


# ---------------------------------------------------------------------- AIS
@dataclass(frozen=True)
class AISResult:
    """An annealed-importance-sampling estimate of ``log Z``.

    ``log_z_lower`` and ``log_z_upper`` are a confidence interval, not bounds: the mean of the
    importance weights -/+ 3 standard errors (Salakhutdinov & Murray 2008). The true ``log Z``
    lies outside it when the weights' spread is underestimated, which is common when AIS
    misses modes of the model (few betas or runs, a sharp model; a low ``ess`` warns of it).
    Forward AIS also underestimates ``log Z`` on average (Jensen's inequality).

    The only true bound here is ``log_z_floor``: ``log Z >= -F(v)`` for every ``v`` in the
    convex hull of the visible states, so ``max -F(v)`` over the ``data`` rows inside it is a
    hard lower bound (see :func:`ais_log_partition`). For a DBN, what bounds the
    log-likelihood is the variational bound of :func:`dbn_lower_bound`, computed with an
    exact or estimated top-level ``log Z``.

    ``log_z_lower <= log_z <= log_z_upper`` always holds, and ``log_z_floor <= log_z_lower``
    whenever the floor is finite.

    Attributes
    ----------
    log_z : float
        The estimate: ``log Z_base + log mean(w)`` over the runs' importance weights ``w``,
        raised to ``log_z_floor`` if it fell below that hard bound (with a warning).
    log_z_lower, log_z_upper : float
        ``log Z_base + log(mean(w) -/+ 3 std(w) / sqrt(runs))``, computed in log space: an
        approximate 3-standard-error confidence interval, not a bound. ``log_z_lower`` is
        ``-inf`` when ``mean(w) <= 3 std(w) / sqrt(runs)``, and is raised to ``log_z_floor``
        when it falls below it.
    ess : float
        Effective sample size ``(sum w)^2 / sum w^2`` (between 1 and ``n_runs``).
    log_weights : torch.Tensor
        Each run's ``log w`` (float64, CPU).
    log_z_base : float
        ``log Z`` of the base-rate model the runs start from.
    n_betas : int
        Number of distributions, the base (beta = 0) and the model (beta = 1) included.
    log_z_floor : float
        The hard lower bound ``max -F(v)`` over the data rows inside the hull of the visible
        states, computed in float64; ``-inf`` without such rows (no data, continuous visible
        units, or every row outside, like a DBN's top-level data with an all-zero label block).
    """

    log_z: float
    log_z_lower: float
    log_z_upper: float
    ess: float
    log_weights: torch.Tensor
    log_z_base: float
    n_betas: int
    log_z_floor: float = -math.inf

    def __float__(self) -> float:
        return self.log_z


def ais_betas(n: int | None = None, dtype=torch.float64) -> torch.Tensor:
    """Inverse temperatures from 0 to 1: Salakhutdinov & Murray's (2008) schedule.

    Steps of 1e-3 up to 0.5, 1e-4 up to 0.9 and 1e-5 up to 1 (14,501 values). With ``n``, the
    same three stretches hold the same shares of ``n`` values.
    """
    counts = (500, 4000, 10000)
    if n is not None:
        if int(n) < 4:
            raise ValueError(f"an AIS schedule needs at least 4 distributions, got {n}")
        scale = (int(n) - 1) / sum(counts)
        counts = [max(1, round(c * scale)) for c in counts]
        counts[-1] = int(n) - 1 - sum(counts[:-1])
    knots = (0.0, 0.5, 0.9, 1.0)
    parts = [
        torch.linspace(a, b, c + 1, dtype=dtype)[:-1] for a, b, c in zip(knots, knots[1:], counts)
    ]
    return torch.cat([*parts, torch.ones(1, dtype=dtype)])


def base_rate_bias(model: RBM, data: torch.Tensor | None = None) -> torch.Tensor:
    """Visible biases of the base-rate model AIS starts from (no hidden interaction).

    Bernoulli units: the log-odds of the data means with one pseudo-count each way; Gaussian
    units: the data means. Without data, or for other unit types: zeros (uniform binary units).
    """
    bias = torch.zeros_like(model.visible_bias)
    if data is None or not len(data):
        return bias
    data = torch.as_tensor(data, dtype=bias.dtype, device=bias.device)
    if isinstance(model.visible, BernoulliUnits):
        p = (data.sum(0) + 1.0) / (len(data) + 2.0)
        return torch.log(p) - torch.log1p(-p)
    if model.visible.name == "gaussian":
        return data.mean(0)
    return bias


@torch.no_grad()
def ais_log_partition(
    model: RBM,
    data: torch.Tensor | None = None,
    n_runs: int = 100,
    betas: int | torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    reverse_from: torch.Tensor | None = None,
) -> AISResult:
    """Estimate ``log Z`` of an RBM by annealed importance sampling (Neal 2001).

    The runs anneal, in one batch, from a base-rate model with the same visible units and no
    interaction to ``model``, through the distributions (for inverse temperature ``beta``)

        p_beta(v, h) ~ exp(-E_v(v; (1 - beta) b_A + beta b) - E_h(h; beta c) + beta s(v) W s(h))

    with one block-Gibbs transition at each ``beta`` (Salakhutdinov & Murray 2008). The
    log-weights are accumulated in float64; the matrix products run in the model's dtype.

    Parameters
    ----------
    model : deepbelief.nn.RBM
        Any visible units with a tractable base model (Bernoulli, Gaussian, softmax, mixed).
    data : tensor, optional
        Rows the base-rate model is fitted to (:func:`base_rate_bias`); a base close to the
        data makes the estimate much tighter. Without it, the base is uniform. For discrete
        visible units the rows also give the hard lower bound ``log_z_floor``
        (:func:`log_partition_floor`): ``max -F(v)`` over the rows inside the convex hull of
        the visible states (Bernoulli values in [0, 1], softmax groups that sum to 1); rows
        outside it, such as a label block of all zeros, are ignored for the floor.
    n_runs : int, default 100
        Independent annealing runs.
    betas : int or 1-D tensor, optional
        The schedule: an explicit increasing sequence from 0 to 1, a number of distributions
        for :func:`ais_betas`, or None for the paper's 14,501.
    generator : torch.Generator, optional
        All the randomness (same seed, same estimate).
    reverse_from : tensor of shape (n_runs, n_visible), optional
        Reverse annealing: start from these samples of the model (for instance long Gibbs
        chains) and anneal down to the base model. Forward AIS underestimates ``log Z`` on
        average (by Jensen's inequality); from exact samples, the reverse estimate
        overestimates it, so the two bracket the truth. ``n_runs`` is ignored.

    Returns
    -------
    AISResult
        ``log_z_lower``/``log_z_upper`` are a 3-standard-error confidence interval of the
        weights, not bounds; ``log_z_floor`` is a true lower bound (or ``-inf``). When the
        estimate falls below the floor, it is raised to it (with a RuntimeWarning), and
        ``log_z_lower <= log_z <= log_z_upper`` always holds.
    """
    warn_relu(model)
    betas = _check_betas(betas)
    if int(n_runs) < 2:
        raise ValueError(f"AIS needs at least 2 runs to bound its estimate, got {n_runs}")
    vis, hid, lv = model.visible, model.hidden, model.visible_logvar
    b_base, c = base_rate_bias(model, data), model.hidden_bias
    log_z_base = float(
        vis.log_partition(torch.zeros_like(b_base)[None], b_base, lv).double()
        + hid.log_partition(
            torch.zeros_like(c)[None], torch.zeros_like(c), model.hidden_logvar
        ).double()
    )
    schedule = betas.tolist()
    runs = int(n_runs) if reverse_from is None else len(reverse_from)
    # thousands of small steps: on one thread, as the trainer runs small updates (on two, a
    # busy other core made a 64-unit model's bound take minutes)
    small = c.device.type == "cpu" and runs * model.weight.numel() < ONE_THREAD_MACS
    with cpu_threads(1 if small else None):
        if reverse_from is None:
            v = vis.sample(b_base.expand(runs, -1), lv, generator)
            log_w = _anneal(model, v, schedule, b_base, generator)
        else:
            v = torch.as_tensor(reverse_from, dtype=c.dtype, device=c.device)
            log_w = _anneal(model, v, schedule[::-1], b_base, generator)  # log(Z_base / Z)
    if reverse_from is None:
        result = _ais_result(log_w.cpu(), log_z_base, len(schedule))
    else:
        forward = _ais_result(log_w.cpu(), -log_z_base, len(schedule))
        result = AISResult(
            log_z=-forward.log_z,
            log_z_lower=-forward.log_z_upper,
            log_z_upper=-forward.log_z_lower,
            ess=forward.ess,
            log_weights=log_w.cpu(),
            log_z_base=log_z_base,
            n_betas=len(schedule),
        )
    return _checked(result, model, data)


def _checked(result: AISResult, model: RBM, data) -> AISResult:
    """Warn when the weights are degenerate; apply the hard floor of
    :func:`log_partition_floor` over ``data``: an estimate below it is impossible (it is raised
    to the floor, with a warning), and the interval's lower end is raised to it."""
    runs = len(result.log_weights)
    if result.ess < max(2.0, 0.1 * runs):
        warnings.warn(
            f"AIS weights are dominated by a few runs (effective sample size {result.ess:.1f} "
            f"of {runs}); the estimate is unreliable: add distributions (betas) or runs",
            RuntimeWarning,
            stacklevel=3,
        )
    floor = log_partition_floor(model, data)
    if result.log_z < floor:
        warnings.warn(
            f"the AIS estimate log Z = {result.log_z:.3f} is below max -F(v) = {floor:.3f} over "
            "the data, a hard lower bound: AIS has missed most of the model's mass; the "
            "estimate is raised to the bound; add distributions (betas) or runs",
            RuntimeWarning,
            stacklevel=3,
        )
    log_z = max(result.log_z, floor)
    return dataclasses.replace(
        result,
        log_z=log_z,
        log_z_lower=min(max(result.log_z_lower, floor), log_z),
        log_z_upper=max(result.log_z_upper, log_z),
        log_z_floor=floor,
    )


@torch.no_grad()
def log_partition_floor(model: RBM, data: torch.Tensor | None) -> float:
    """A hard lower bound on ``log Z``: ``max -F(v)`` over the rows of ``data`` inside the
    convex hull of the visible states, in float64; ``-inf`` when there is no such row.

    ``Z = sum_v exp(-F(v))`` over the visible states, so ``log Z >= -F(v)`` for every state
    ``v``. For Bernoulli and softmax visible units ``-F(v) = v . b + log_partition_h(c + v W)``
    is a convex function of ``v`` (a linear term plus the hidden layer's log-partition function,
    convex in its input, of a linear map of ``v``), so on the convex hull of the states its
    largest value is reached at a state: the bound also holds for mean-field data, Bernoulli
    probabilities in [0, 1] and softmax groups that are probability vectors.

    Rows outside the hull are ignored (a tolerance of 1e-5 is allowed, and such rows are
    clipped into the hull before ``F`` is computed): values outside [0, 1], NaN, or a softmax
    group that does not sum to 1, such as the all-zero label block of a DBN's top-level data
    (``DBN.top_visible(features)`` without labels), where ``-F`` can exceed ``log Z``. Visible
    units that are not all Bernoulli or softmax (Gaussian, ReLU, mixed with them) give
    ``-inf``: a density can exceed ``Z`` anywhere.
    """
    if data is None or not model.visible.discrete:
        return -math.inf
    data = torch.as_tensor(data, dtype=torch.float64, device=model.weight.device)
    if data.dim() != 2 or data.shape[1] != model.n_visible or not len(data):
        return -math.inf
    inside, projected = _into_state_hull(model.visible, data)
    if inside is None or not bool(inside.any()):
        return -math.inf
    exact = copy.deepcopy(model).to(dtype=torch.float64)
    rows = projected[inside]
    return float(torch.cat([-exact.free_energy(chunk) for chunk in torch.split(rows, 4096)]).max())


_HULL_TOLERANCE = 1e-5


def _into_state_hull(units, x: torch.Tensor):
    """``(inside, projected)``: which rows of ``x`` lie (within a tolerance) in the convex hull
    of the states of ``units``, and ``x`` clipped into it; ``(None, x)`` for unit types whose
    states have no such hull here (continuous units)."""
    tol = _HULL_TOLERANCE
    if isinstance(units, BernoulliUnits):
        inside = ((x >= -tol) & (x <= 1 + tol)).all(1)
        return inside, x.clamp(0.0, 1.0)
    if isinstance(units, SoftmaxUnits):
        inside = torch.ones(len(x), dtype=torch.bool, device=x.device)
        groups = []
        for group in units._groups(x):
            total = group.sum(1)
            inside &= (group >= -tol).all(1) & ((total - 1).abs() <= tol)
            clipped = group.clamp(min=0.0)
            groups.append(clipped / clipped.sum(1, keepdim=True).clamp(min=tol))
        return inside, torch.cat(groups, 1)
    if isinstance(units, MixedUnits):
        inside = torch.ones(len(x), dtype=torch.bool, device=x.device)
        blocks = []
        for (part, _), block in zip(units.parts, units._split(x)):
            part_inside, projected = _into_state_hull(part, block)
            if part_inside is None:
                return None, x
            inside &= part_inside
            blocks.append(projected)
        return inside, torch.cat(blocks, 1)
    return None, x


def _anneal(model: RBM, v: torch.Tensor, schedule, b_base, generator) -> torch.Tensor:
    """Run the chains ``v`` through the distributions of ``schedule`` (one Gibbs transition at
    each but the last); returns the float64 log importance weights."""
    vis, hid = model.visible, model.hidden
    lv, lh = model.visible_logvar, model.hidden_logvar
    W, b, c = model.weight, model.visible_bias, model.hidden_bias
    log_w = torch.zeros(len(v), dtype=torch.float64, device=W.device)
    log_p_star = _LogPStar(model, b_base)
    log_ratio = _LogRatio(model, b_base) if _LogRatio.applies(model, schedule) else None
    last = len(schedule) - 1
    for step, (previous, beta) in enumerate(zip(schedule, schedule[1:]), start=1):
        field = vis.statistic(v, lv) @ W
        if log_ratio is not None:
            log_w += log_ratio(v, field, beta, previous)
        else:
            v64, field64 = v.double(), field.double()
            log_w += log_p_star(v64, field64, beta)
            log_w -= log_p_star(v64, field64, previous)
        if step < last:
            h = hid.sample(beta * (field + c), lh, generator)
            x = torch.lerp(b_base, b, beta) + beta * (hid.statistic(h, lh) @ W.t())
            v = vis.sample(x, lv, generator)
    return log_w


class _LogPStar:
    """``log p*_beta(v)`` of AIS's intermediate distributions (hidden units summed out), in
    float64, given ``v`` and its hidden field ``s(v) @ W`` in float64."""

    def __init__(self, model: RBM, b_base: torch.Tensor):
        def f64(t):
            return None if t is None else t.detach().double()

        self.visible, self.hidden = model.visible, model.hidden
        self.b_base, self.b = f64(b_base), f64(model.visible_bias)
        self.c, self.lv, self.lh = (
            f64(model.hidden_bias),
            f64(model.visible_logvar),
            f64(model.hidden_logvar),
        )

    def __call__(self, v64: torch.Tensor, field64: torch.Tensor, beta: float) -> torch.Tensor:
        bias = torch.lerp(self.b_base, self.b, beta)
        return -self.visible.energy(v64, bias, self.lv) + self.hidden.log_partition(
            beta * field64, beta * self.c, self.lh
        )


class _LogRatio:
    """``log p*_beta(v) - log p*_previous(v)`` in one pass, for Bernoulli hidden units and
    visible units whose energy is linear in the bias (Bernoulli, softmax, mixtures of them):
    the visible part is ``(beta - previous) v . (b - b_base)`` (float64) and each hidden unit
    adds ``softplus(beta a) - softplus(previous a)`` with ``a = v W + c``, computed without
    the cancellation of the two large terms (:func:`_softplus_difference`), so the model's
    dtype suffices; the units' sum is float64. Faster than :class:`_LogPStar` twice in
    float64, to the same weights within float32's rounding of each step's small ratio. It
    needs ``|(beta - previous) a| < 1`` for every unit and step (:meth:`applies`)."""

    def __init__(self, model: RBM, b_base: torch.Tensor):
        self.c = model.hidden_bias.detach()
        self.slope = (model.visible_bias - b_base).detach().double()

    @staticmethod
    def applies(model: RBM, schedule) -> bool:
        """Whether the units fit and the schedule's steps are fine enough: with visible
        states in {0, 1}, ``|a_j| <= sum_i |W_ij| + |c_j|``."""

        def linear(units) -> bool:
            if isinstance(units, MixedUnits):
                return all(linear(part) for part, _ in units.parts)
            return type(units) in (BernoulliUnits, SoftmaxUnits)

        if type(model.hidden) is not BernoulliUnits or not linear(model.visible):
            return False
        bound = float((model.weight.detach().abs().sum(0) + model.hidden_bias.detach().abs()).max())
        step = max(abs(b - a) for a, b in zip(schedule, schedule[1:]))
        return step * bound < 1

    def __call__(self, v, field, beta: float, previous: float) -> torch.Tensor:
        a = field + self.c
        hidden = _softplus_difference(beta * a, previous * a, (beta - previous) * a)
        return (beta - previous) * (v.double() @ self.slope) + hidden.sum(1, dtype=torch.float64)


def _softplus_difference(x, y, delta) -> torch.Tensor:
    """``softplus(x) - softplus(y)`` for ``delta = x - y`` with ``|delta| < 1``, to the
    relative precision of the dtype: ``sign(delta) * -log1p(sigmoid(max(x, y)) *
    expm1(-|delta|))`` (the argument of log1p stays above -0.64)."""
    shrink = torch.sigmoid(torch.maximum(x, y)).mul_(torch.expm1(-delta.abs()))
    return torch.log1p(shrink).mul_(-delta.sign())


def _check_betas(betas) -> torch.Tensor:
    if betas is None or isinstance(betas, int):
        return ais_betas(betas)
    betas = torch.as_tensor(betas, dtype=torch.float64).flatten()
    if len(betas) < 2 or betas[0] != 0 or betas[-1] != 1 or (betas.diff() <= 0).any():
        raise ValueError("betas must increase strictly from 0 to 1")
    return betas


def _ais_result(log_w: torch.Tensor, log_z_base: float, n_betas: int) -> AISResult:
    n = len(log_w)
    top = float(log_w.max())
    w = torch.exp(log_w - top)
    mean, spread = float(w.mean()), 3.0 * float(w.std()) / math.sqrt(n)
    lower = top + math.log(mean - spread) if mean > spread else -math.inf
    return AISResult(
        log_z=log_z_base + top + math.log(mean),
        log_z_lower=log_z_base + lower,
        log_z_upper=log_z_base + top + math.log(mean + spread),
        ess=float(w.sum() ** 2 / (w**2).sum()),
        log_weights=log_w,
        log_z_base=log_z_base,
        n_betas=n_betas,
    )


# ---------------------------------------------------------------------- likelihoods
@torch.no_grad()
def log_likelihood(
    model: RBM,
    X: torch.Tensor,
    log_z: float | AISResult | None = None,
    per_row: bool = False,
    **ais_kw,
):
    """Log-likelihood ``-F(v) - log Z`` of the rows of ``X`` in nats (float64).

    Parameters
    ----------
    model : deepbelief.nn.RBM
    X : tensor of shape (n_rows, n_visible)
    log_z : float or AISResult, optional
        The log partition function. Default: exact when the smaller discrete layer has at
        most 2^20 states, else :func:`ais_log_partition` (with ``ais_kw``; its base model is
        fitted to ``X`` unless ``data=`` is given).
    per_row : bool
        Return each row's value (a float64 tensor) instead of the mean.
    """
    X = torch.as_tensor(X, dtype=model.weight.dtype, device=model.weight.device)
    if log_z is None:
        log_z = _log_partition(model, X, **ais_kw)
    exact = copy.deepcopy(model).to(dtype=torch.float64)
    values = -exact.free_energy(X.double()) - float(log_z)
    return values if per_row else float(values.mean())


def _log_partition(model: RBM, data: torch.Tensor, **ais_kw) -> float:
    try:
        return exact_log_partition(model, max_states=2**20)
    except (TypeError, ValueError):
        return ais_log_partition(model, **{"data": data, **ais_kw}).log_z


@torch.no_grad()
def dbn_lower_bound(
    dbn: DBN,
    X: torch.Tensor,
    log_z: float | AISResult | None = None,
    n_samples: int | None = 100,
    generator: torch.Generator | None = None,
    per_row: bool = False,
    **ais_kw,
):
    """Variational lower bound on a DBN's log-likelihood (Salakhutdinov & Murray 2008, s. 4).

    With the factorial posteriors ``Q(h_l | h_{l-1})`` of the up pass,

        log p(v) >= E_Q[ sum_l log p(h_{l-1} | h_l) - log Q(h_l | h_{l-1}) + log p*(h_top) ]
                    - log Z_top

    where ``p(h_{l-1} | h_l)`` are the directed (generative) layers, ``p*`` the top RBM's
    unnormalised marginal of its visible layer (labels summed out) and ``Z_top`` its partition
    function. Bernoulli posteriors contribute their exact entropy.

    Parameters
    ----------
    dbn : deepbelief.nn.DBN
        Two or more layers (one layer: the RBM's own log-likelihood).
    X : tensor of shape (n_rows, n_visible)
    log_z : float or AISResult, optional
        ``log Z`` of the top RBM. Default: exact when enumerable (2^20 states), else AIS with
        ``ais_kw`` and a base model fitted to the up-pass means of ``X``.
    n_samples : int or None, default 100
        Monte Carlo samples of the hidden layers per row (an unbiased estimate of the bound);
        None sums over every hidden state exactly (tiny DBNs only).
    generator : torch.Generator, optional
    per_row : bool
        Return each row's bound (a float64 tensor) instead of the mean.
    """
    exact = copy.deepcopy(dbn).to(dtype=torch.float64)
    X = torch.as_tensor(X, dtype=torch.float64, device=exact.rbms[0].weight.device)
    if log_z is None:
        top_data = _top_level_data(exact, exact.transform(X, layer=len(exact.rbms) - 1))
        top_data = top_data.to(dbn.rbms[-1].weight.dtype)
        log_z = _log_partition(dbn.rbms[-1], top_data, **{"generator": generator, **ais_kw})
    if n_samples is None:
        values = _exact_bound(exact, 0, X)
    else:
        if int(n_samples) < 1:
            raise ValueError(f"n_samples must be >= 1 or None, got {n_samples}")
        values = sum(_sampled_bound(exact, X, generator) for _ in range(int(n_samples)))
        values = values / int(n_samples)
    values = values - float(log_z)
    return values if per_row else float(values.mean())


def _top_level_data(dbn: DBN, features: torch.Tensor) -> torch.Tensor:
    """The top RBM's visible rows for the up-pass ``features``: with label units, each row
    joined with its most probable label (one-hot, the label of lowest free energy), so the rows
    lie in the model's support and bound ``log Z`` from below (:func:`log_partition_floor`).
    ``top_visible(features)`` alone leaves the label block all zeros: outside the support."""
    if not dbn.n_labels:
        return features
    top, n = dbn.rbms[-1], len(features)
    best, best_label = None, torch.zeros(n, dtype=torch.long, device=features.device)
    for c in range(dbn.n_labels):
        labels = torch.full((n,), c, dtype=torch.long, device=features.device)
        value = -top.free_energy(dbn.top_visible(features, labels))
        if best is None:
            best = value
        else:
            better = value > best
            best = torch.where(better, value, best)
            best_label[better] = c
    return dbn.top_visible(features, best_label)


def _sampled_bound(dbn: DBN, x: torch.Tensor, generator) -> torch.Tensor:
    total = torch.zeros(len(x), dtype=x.dtype, device=x.device)
    for layer, rbm in enumerate(dbn.rbms[:-1]):
        q_input = rbm.hidden_input(x)
        h = rbm.hidden.sample(q_input, rbm.hidden_logvar, generator)
        if isinstance(rbm.hidden, BernoulliUnits):
            entropy = (F.softplus(q_input) - q_input * torch.sigmoid(q_input)).sum(-1)
        else:
            entropy = -rbm.hidden_log_prob(h, x)
        total += dbn.generative_log_prob(layer, x, h) + entropy
        x = h
    return total + dbn.top_log_density(x)


def _exact_bound(dbn: DBN, layer: int, x: torch.Tensor) -> torch.Tensor:
    """The bound's expectation summed over every state of the hidden layers from ``layer``."""
    if layer == len(dbn.rbms) - 1:
        return dbn.top_log_density(x)
    states, x_rep, s_rep = _every_hidden_state(dbn, layer, x)
    shape = (len(x), len(states))
    log_q = dbn.rbms[layer].hidden_log_prob(s_rep, x_rep).view(shape)
    log_p = dbn.generative_log_prob(layer, x_rep, s_rep).view(shape)
    above = _exact_bound(dbn, layer + 1, states)
    return (log_q.exp() * (log_p - log_q + above[None])).sum(1)


@torch.no_grad()
def dbn_exact_log_likelihood(dbn: DBN, X: torch.Tensor, per_row: bool = False):
    """Exact log-likelihood of a tiny DBN, summing over every state of the hidden layers below
    the top RBM (at most 2^16 each) and enumerating the top RBM for its partition function."""
    exact = copy.deepcopy(dbn).to(dtype=torch.float64)
    X = torch.as_tensor(X, dtype=torch.float64, device=exact.rbms[0].weight.device)
    values = _exact_marginal(exact, 0, X) - exact_log_partition(exact.rbms[-1])
    return values if per_row else float(values.mean())


def _exact_marginal(dbn: DBN, layer: int, x: torch.Tensor) -> torch.Tensor:
    if layer == len(dbn.rbms) - 1:
        return dbn.top_log_density(x)
    states, x_rep, s_rep = _every_hidden_state(dbn, layer, x)
    log_p = dbn.generative_log_prob(layer, x_rep, s_rep).view(len(x), len(states))
    return torch.logsumexp(log_p + _exact_marginal(dbn, layer + 1, states)[None], 1)


def _every_hidden_state(dbn: DBN, layer: int, x: torch.Tensor):
    """Every state of RBM ``layer``'s hidden units (at most 2^16), and each row of ``x``
    paired with each state: ``(states, x repeated per state, states tiled per row)``."""
    rbm = dbn.rbms[layer]
    if not rbm.hidden.discrete or rbm.hidden.n_states(rbm.n_hidden) > 2**16:
        raise ValueError("exact DBN evaluation enumerates hidden layers of at most 2^16 states")
    states = rbm.hidden.states(rbm.n_hidden, dtype=x.dtype, device=x.device)
    return states, x.repeat_interleave(len(states), 0), states.repeat(len(x), 1)
