"""Unit types checked against brute-force enumeration, quadrature and closed forms.

Every reference value here is computed independently of ``deepbelief`` (explicit sums over
states with ``itertools``, ``math`` and ``scipy`` quadrature), never by calling the code under
test a second time.

Seeds: the stochastic tests (``@pytest.mark.stochastic``) take the ``seed`` fixture and run
once for each of ``SEEDS = (0, 1, 2)`` (tests/conftest.py), each seed offsetting every
generator they draw from by ``1000 * seed``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import integrate

from deepbelief.nn import (
    BernoulliUnits,
    GaussianUnits,
    MixedUnits,
    ReLUUnits,
    SoftmaxUnits,
    Units,
    units_from_config,
    units_from_spec,
)

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _tv_tolerance(p, n: int, delta: float = 1e-6) -> float:
    """Bound on the TV distance between ``p`` and the histogram of ``n`` iid draws from it.

    ``E[TV] <= 1/2 sum_s sqrt(p_s (1 - p_s) / n)`` (Jensen), and TV changes by at most ``1/n``
    when one draw changes, so McDiarmid gives ``P(TV > E[TV] + t) <= exp(-2 n t^2)``; the bound
    is exceeded with probability below ``delta``.
    """
    p = np.asarray(p, dtype=float)
    return 0.5 * float(np.sqrt(p * (1 - p) / n).sum()) + math.sqrt(math.log(1 / delta) / (2 * n))


def _softplus(y: float) -> float:
    return max(y, 0.0) + math.log1p(math.exp(-abs(y)))


# ---------------------------------------------------------------------------------- states


@pytest.mark.parametrize("n", [1, 3, 6])
def test_bernoulli_states_enumerates_every_binary_row_once(n):
    states = BernoulliUnits().states(n, dtype=F64)
    assert states.shape == (2**n, n)
    assert states.dtype == F64
    rows = {tuple(int(x) for x in row) for row in states.tolist()}
    assert rows == set(itertools.product([0, 1], repeat=n))
    assert BernoulliUnits().n_states(n) == 2**n


@pytest.mark.parametrize("sizes", [None, [3], [2, 3], [2, 1, 3]])
def test_softmax_states_are_one_hot_per_group_and_cover_the_product(sizes):
    n = 4 if sizes is None else sum(sizes)
    groups = [n] if sizes is None else sizes
    states = SoftmaxUnits(sizes).states(n, dtype=F64)
    assert states.shape == (math.prod(groups), n)
    picks = set()
    for row in states.tolist():
        start, pick = 0, []
        for size in groups:
            block = row[start : start + size]
            assert sorted(block) == [0.0] * (size - 1) + [1.0]
            pick.append(block.index(1.0))
            start += size
        picks.add(tuple(pick))
    assert picks == set(itertools.product(*(range(s) for s in groups)))
    assert SoftmaxUnits(sizes).n_states(n) == math.prod(groups)


def test_mixed_states_is_the_cartesian_product_of_its_blocks():
    units = MixedUnits([(BernoulliUnits(), 2), (SoftmaxUnits([2, 3]), 5), ("bernoulli", 1)])
    states = units.states(8, dtype=F64)
    expected = set()
    for bits in itertools.product([0, 1], repeat=2):
        for a in range(2):
            for b in range(3):
                for last in (0, 1):
                    onehot = [0] * 5
                    onehot[a] = 1
                    onehot[2 + b] = 1
                    expected.add((*bits, *onehot, last))
    assert states.shape == (len(expected), 8)
    assert {tuple(int(x) for x in row) for row in states.tolist()} == expected
    assert units.n_states(8) == len(expected)
    with pytest.raises(ValueError, match="8 units"):
        units.states(7)


def test_single_block_mixed_states():
    units = MixedUnits([(SoftmaxUnits(), 3)])
    assert torch.equal(units.states(3, dtype=F64), torch.eye(3, dtype=F64))


@pytest.mark.parametrize("units", [GaussianUnits(), GaussianUnits(True), ReLUUnits()])
def test_continuous_units_cannot_be_enumerated(units):
    assert not units.discrete
    assert units.n_states(3) == math.inf
    with pytest.raises(TypeError):
        units.states(3)


def test_mixed_with_a_continuous_part_is_not_discrete():
    assert MixedUnits([("bernoulli", 2), ("softmax", 3)]).discrete
    mixed = MixedUnits([("bernoulli", 2), ("gaussian", 3)])
    assert not mixed.discrete
    assert mixed.n_states(5) == math.inf
    assert MixedUnits([("bernoulli", 2), ("gaussian-learned", 3)]).has_logvar
    assert not mixed.has_logvar


# ---------------------------------------------------------------------------------- Bernoulli


def test_bernoulli_log_partition_and_mean_match_enumeration():
    g = _gen(0)
    n = 4
    field = torch.randn(5, n, generator=g, dtype=F64) * 2
    bias = torch.randn(n, generator=g, dtype=F64)
    units = BernoulliUnits()
    got = units.log_partition(field, bias)
    for r in range(5):
        x = (field[r] + bias).tolist()
        weights = {
            u: math.exp(sum(ui * xi for ui, xi in zip(u, x)))
            for u in itertools.product([0, 1], repeat=n)
        }
        z = sum(weights.values())
        assert got[r].item() == pytest.approx(math.log(z), rel=1e-13, abs=1e-13)
        mean = [sum(w * u[i] for u, w in weights.items()) / z for i in range(n)]
        assert units.mean(field[r] + bias).tolist() == pytest.approx(mean, rel=1e-12, abs=1e-14)
    state = torch.tensor([[1.0, 0, 1, 1]], dtype=F64)
    assert units.energy(state, bias).item() == pytest.approx(-(bias[0] + bias[2] + bias[3]).item())


@pytest.mark.stochastic
def test_bernoulli_sample_frequencies(seed):
    x = torch.tensor([-3.0, -0.7, 0.0, 1.2, 4.0], dtype=F64)
    n = 200_000
    samples = BernoulliUnits().sample(x.expand(n, -1), generator=_gen(1000 * seed + 1))
    assert set(samples.unique().tolist()) <= {0.0, 1.0}
    p = 1 / (1 + np.exp(-x.numpy()))
    freq = samples.mean(0).numpy()
    # 5.5 standard errors per unit: a false alarm below 4e-8 per unit
    assert np.all(np.abs(freq - p) < 5.5 * np.sqrt(p * (1 - p) / n))


# ---------------------------------------------------------------------------------- softmax


@pytest.mark.parametrize("sizes", [None, [2, 3, 1]])
@pytest.mark.stochastic
def test_softmax_log_partition_mean_and_sample_match_enumeration(sizes, seed):
    n = 6
    groups = [n] if sizes is None else sizes
    units = SoftmaxUnits(sizes)
    g = _gen(2)
    field = torch.randn(3, n, generator=g, dtype=F64) * 1.5
    bias = torch.randn(n, generator=g, dtype=F64)
    onehots = []
    for combo in itertools.product(*(range(s) for s in groups)):
        row, start = [0.0] * n, 0
        for size, pick in zip(groups, combo):
            row[start + pick] = 1.0
            start += size
        onehots.append(row)
    for r in range(3):
        x = (field[r] + bias).tolist()
        w = [math.exp(sum(ui * xi for ui, xi in zip(u, x))) for u in onehots]
        z = sum(w)
        assert units.log_partition(field[r : r + 1], bias).item() == pytest.approx(
            math.log(z), rel=1e-13
        )
        mean = [sum(wi * u[i] for wi, u in zip(w, onehots)) / z for i in range(n)]
        assert units.mean(field[r] + bias).tolist() == pytest.approx(mean, rel=1e-12, abs=1e-15)

    # sample: joint histogram over the one-hot states of row 0 against the exact distribution
    x = (field[0] + bias).tolist()
    w = np.array([math.exp(sum(ui * xi for ui, xi in zip(u, x))) for u in onehots])
    p = w / w.sum()
    n_draws = 100_000
    samples = units.sample((field[0] + bias).expand(n_draws, -1), generator=_gen(1000 * seed + 3))
    index = {tuple(u): i for i, u in enumerate(onehots)}
    counts = np.zeros(len(onehots))
    for row, c in zip(*np.unique(samples.numpy(), axis=0, return_counts=True)):
        counts[index[tuple(row.tolist())]] += c  # a KeyError means a row that is not one-hot
    assert 0.5 * np.abs(counts / n_draws - p).sum() < _tv_tolerance(p, n_draws)


def test_softmax_group_sizes_are_validated():
    with pytest.raises(ValueError):
        SoftmaxUnits([])
    with pytest.raises(ValueError):
        SoftmaxUnits([2, 0])
    with pytest.raises(ValueError, match="add up"):
        SoftmaxUnits([2, 2]).mean(torch.zeros(1, 5))
    with pytest.raises(ValueError, match="add up"):
        SoftmaxUnits([2, 2]).states(3)


# ---------------------------------------------------------------------------------- Gaussian

_GRID = np.linspace(-60.0, 60.0, 240_001)


def _gauss_moments(bias: float, field: float, logvar: float | None):
    """log Z, mean and variance of exp(-E_u(u) + s(u) * field) by quadrature on a fine grid."""
    var = 1.0 if logvar is None else math.exp(logvar)
    log_density = -((_GRID - bias) ** 2) / (2 * var) + _GRID * field / var
    top = log_density.max()
    density = np.exp(log_density - top)
    z = np.trapezoid(density, _GRID)
    mean = np.trapezoid(density * _GRID, _GRID) / z
    second = np.trapezoid(density * (_GRID - mean) ** 2, _GRID) / z
    return math.log(z) + top, mean, second


@pytest.mark.parametrize("learn", [False, True])
def test_gaussian_log_partition_and_mean_match_quadrature(learn):
    g = _gen(4)
    n = 3
    field = torch.randn(4, n, generator=g, dtype=F64) * 2
    bias = torch.randn(n, generator=g, dtype=F64)
    logvar = torch.randn(n, generator=g, dtype=F64) if learn else None
    units = GaussianUnits(learn_variance=learn)
    got = units.log_partition(field, bias, logvar)
    for r in range(4):
        expected, means, variances = 0.0, [], []
        for i in range(n):
            lv = None if logvar is None else logvar[i].item()
            log_z, mean, var = _gauss_moments(bias[i].item(), field[r, i].item(), lv)
            expected += log_z
            means.append(mean)
            variances.append(var)
        assert got[r].item() == pytest.approx(expected, rel=1e-10, abs=1e-10)
        # the conditional given total input x = bias + field is N(x, sigma^2)
        assert units.mean(field[r] + bias, logvar).tolist() == pytest.approx(means, abs=1e-9)
        sigma2 = [1.0] * n if logvar is None else torch.exp(logvar).tolist()
        assert variances == pytest.approx(sigma2, rel=1e-8)


def test_gaussian_energy_and_statistic():
    units = GaussianUnits(learn_variance=True)
    state = torch.tensor([[0.5, -1.0]], dtype=F64)
    bias = torch.tensor([1.0, 2.0], dtype=F64)
    logvar = torch.tensor([math.log(4.0), 0.0], dtype=F64)
    assert units.energy(state, bias, logvar).item() == pytest.approx(0.25 / 8 + 9 / 2)
    assert units.statistic(state, logvar)[0].tolist() == pytest.approx([0.125, -1.0])
    assert GaussianUnits().energy(state, bias).item() == pytest.approx(0.25 / 2 + 9 / 2)


@pytest.mark.parametrize("learn", [False, True])
@pytest.mark.stochastic
def test_gaussian_sample_moments(learn, seed):
    x = torch.tensor([-2.0, 0.3, 4.0], dtype=F64)
    logvar = torch.tensor([-1.0, 0.5, 1.2], dtype=F64) if learn else None
    n = 200_000
    s = (
        GaussianUnits(learn)
        .sample(x.expand(n, -1), logvar, generator=_gen(1000 * seed + 5))
        .numpy()
    )
    var = np.ones(3) if logvar is None else np.exp(logvar.numpy())
    # mean: sd sqrt(var / n); variance of a normal sample: sd var * sqrt(2 / n)
    assert np.all(np.abs(s.mean(0) - x.numpy()) < 5.5 * np.sqrt(var / n))
    assert np.all(np.abs(s.var(0) - var) < 5.5 * var * math.sqrt(2 / n))


# ---------------------------------------------------------------------------------- ReLU


def _relu_log_partition_bruteforce(x: float) -> float:
    """sum_{i >= 1} softplus(x - i + 0.5) by a long explicit sum (terms below 1e-300 dropped)."""
    last = max(1, math.ceil(x)) + 800
    return math.fsum(_softplus(x - i + 0.5) for i in range(1, last))


_RELU_X = [-30.0, -3.7, -0.2, 0.0, 0.49, 0.5, 1.3, 7.9, 19.4, 20.5, 21.2, 35.0, 50.3, 300.7, 1000.2]


def test_relu_log_partition_equals_the_stepped_sigmoid_sum():
    units = ReLUUnits()
    bias = torch.tensor([0.25, -1.0, 3.0], dtype=F64)
    x = torch.tensor(_RELU_X, dtype=F64)
    field = x.unsqueeze(1) - bias  # each column gives the same total input x
    got = units.log_partition(field, bias)
    for xi, value in zip(_RELU_X, got.tolist()):
        expected = 3 * _relu_log_partition_bruteforce(xi)
        # the linear shortcut treats softplus(y) as y for y >= 20: it drops sum log1p(exp(-y))
        # over those terms, at most exp(-20) / (1 - exp(-1)) = 3.3e-9 per unit
        assert value == pytest.approx(expected, rel=1e-12, abs=3 * 3.5e-9)
    # one unit at a time, and the large-input shortcut in float32
    for xi in (50.3, 300.7):
        one = units.log_partition(torch.tensor([[xi]], dtype=torch.float32), torch.zeros(1))
        assert one.item() == pytest.approx(_relu_log_partition_bruteforce(xi), rel=1e-6)


@pytest.mark.parametrize("x", [-2.3, -0.4, 0.6, 1.7])
def test_relu_log_partition_equals_enumerated_binary_copies(x):
    """log sum over the 2^K states of K binary copies with biases x - 0.5, x - 1.5, ..."""
    k = 14
    offsets = np.arange(1, k + 1) - 0.5
    copies = np.array(list(itertools.product([0.0, 1.0], repeat=k)))
    logits = copies @ (x - offsets)
    top = logits.max()
    enumerated = top + math.log(np.exp(logits - top).sum())
    got = ReLUUnits().log_partition(
        torch.tensor([[x - 0.3]], dtype=F64), torch.tensor([0.3], dtype=F64)
    )
    # the copies beyond K add sum_{i > K} softplus(x - i + 0.5) <= exp(x - K - 0.5) / (1 - e^-1)
    tail = math.exp(x - k - 0.5) / (1 - math.exp(-1))
    assert -1e-12 <= got.item() - enumerated <= tail + 1e-12


def test_relu_energy_is_that_of_ordered_copies():
    units = ReLUUnits()
    bias = torch.tensor([0.7, -1.2], dtype=F64)
    states = [(0, 0), (1, 0), (2, 3), (5, 1), (17, 40)]
    got = units.energy(torch.tensor(states, dtype=F64), bias)
    for (n0, n1), value in zip(states, got.tolist()):
        expected = 0.0
        for n, b in ((n0, 0.7), (n1, -1.2)):
            # the first n copies, with biases b - 0.5, b - 1.5, ..., are on
            expected -= math.fsum(b - i + 0.5 for i in range(1, n + 1))
            assert -math.fsum(b - i + 0.5 for i in range(1, n + 1)) == pytest.approx(
                n * n / 2 - b * n
            )
        assert value == pytest.approx(expected, rel=1e-13, abs=1e-13)


def _relu_moments(x: float):
    """First, second and fourth moments of max(0, x + N(0, sigmoid(x))) by quadrature."""
    s = math.sqrt(1 / (1 + math.exp(-x)))
    z0 = -x / s  # below z0 the unit is 0

    def moment(p):
        f = lambda z: (x + s * z) ** p * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # noqa: E731
        lo = max(z0, -40.0)
        if lo >= 40.0:
            return 0.0
        return integrate.quad(f, lo, 40.0, epsabs=1e-14, epsrel=1e-12, limit=200)[0]

    return moment(1), moment(2), moment(4)


@pytest.mark.parametrize("x", [-8.0, -2.0, -0.5, 0.0, 0.3, 1.0, 2.5, 8.0, 40.0])
def test_relu_mean_is_the_exact_expectation(x):
    mean, _, _ = _relu_moments(x)
    got = ReLUUnits().mean(torch.tensor([x], dtype=F64)).item()
    assert got == pytest.approx(mean, rel=1e-9, abs=1e-12)


def test_relu_mean_is_finite_for_extreme_inputs():
    x = torch.tensor([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    got = ReLUUnits().mean(x)
    assert torch.isfinite(got).all()
    assert got[0] == 0 and got[1] == pytest.approx(0.0, abs=1e-12)
    assert got[3].item() == pytest.approx(50.0) and got[4].item() == pytest.approx(1000.0)


def test_relu_mean_is_never_negative_in_float32():
    """Rounding made it -3e-8 near x = -2 (121 of these inputs); a stack of ReLU layers
    then refused its own features ("values must be >= 0 for ReLU units")."""
    got = ReLUUnits().mean(torch.linspace(-40.0, 5.0, 100_001))
    assert got.min() >= 0.0


@pytest.mark.stochastic
def test_relu_sample_moments(seed):
    xs = [-2.0, 0.0, 1.5, 4.0]
    n = 200_000
    x = torch.tensor(xs, dtype=F64)
    s = ReLUUnits().sample(x.expand(n, -1), generator=_gen(1000 * seed + 6)).numpy()
    assert (s >= 0).all()
    for j, xj in enumerate(xs):
        m1, m2, m4 = _relu_moments(xj)
        var = m2 - m1 * m1
        # mean: sd sqrt(var / n); raw second moment: sd sqrt((m4 - m2^2) / n)
        assert abs(s[:, j].mean() - m1) < 5.5 * math.sqrt(var / n)
        assert abs((s[:, j] ** 2).mean() - m2) < 5.5 * math.sqrt((m4 - m2 * m2) / n)
        # the probability of an exact zero is P(x + N(0, sigmoid(x)) <= 0)
        p0 = 0.5 * math.erfc(xj / math.sqrt(2 / (1 + math.exp(-xj))))
        assert abs((s[:, j] == 0).mean() - p0) < 5.5 * math.sqrt(p0 * (1 - p0) / n) + 1e-12


# ---------------------------------------------------------------------------------- mixed


def test_mixed_units_act_blockwise():
    g = _gen(7)
    mixed = MixedUnits([(BernoulliUnits(), 2), (GaussianUnits(True), 2), (SoftmaxUnits(), 3)])
    x = torch.randn(4, 7, generator=g, dtype=F64)
    field = torch.randn(4, 7, generator=g, dtype=F64)
    bias = torch.randn(7, generator=g, dtype=F64)
    logvar = torch.randn(7, generator=g, dtype=F64)  # only the Gaussian block uses it
    mean = mixed.mean(x, logvar)
    assert torch.allclose(mean[:, :2], torch.sigmoid(x[:, :2]), rtol=1e-14)
    assert torch.allclose(mean[:, 2:4], x[:, 2:4], rtol=1e-14)
    e = torch.exp(x[:, 4:])
    assert torch.allclose(mean[:, 4:], e / e.sum(1, keepdim=True), rtol=1e-13)

    lp = mixed.log_partition(field, bias, logvar)
    t = field + bias
    var = torch.exp(logvar[2:4])
    expected = (
        torch.log1p(torch.exp(t[:, :2])).sum(1)
        + (0.5 * (t[:, 2:4] ** 2 - bias[2:4] ** 2) / var + 0.5 * torch.log(2 * math.pi * var)).sum(
            1
        )
        + torch.log(torch.exp(t[:, 4:]).sum(1))
    )
    assert torch.allclose(lp, expected, rtol=1e-12)

    state = torch.cat([torch.tensor([[1.0, 0.0]]), x[:1, 2:4], torch.tensor([[0.0, 1.0, 0.0]])], 1)
    energy = mixed.energy(state.to(F64), bias, logvar)
    expected_energy = -bias[0] + 0.5 * (((x[0, 2:4] - bias[2:4]) ** 2) / var).sum() - bias[5]
    assert energy.item() == pytest.approx(expected_energy.item(), rel=1e-13)
    stat = mixed.statistic(state.to(F64), logvar)
    assert torch.allclose(stat[0, 2:4], x[0, 2:4] / var, rtol=1e-14)
    assert torch.equal(stat[0, :2], state[0, :2].to(F64))


def test_mixed_needs_parts():
    with pytest.raises(ValueError):
        MixedUnits([])


# ---------------------------------------------------------------------------------- configuration

_ALL_UNITS = [
    BernoulliUnits(),
    GaussianUnits(),
    GaussianUnits(learn_variance=True),
    ReLUUnits(),
    SoftmaxUnits(),
    SoftmaxUnits([2, 3]),
    MixedUnits([(BernoulliUnits(), 4), (SoftmaxUnits([3]), 3)]),
    MixedUnits([("gaussian-learned", 2), (MixedUnits([("relu", 1), ("binary", 2)]), 3)]),
]


@pytest.mark.parametrize("units", _ALL_UNITS, ids=repr)
def test_units_config_round_trip(units):
    import json

    config = json.loads(json.dumps(units.config()))  # JSON-serialisable
    rebuilt = units_from_config(config)
    assert type(rebuilt) is type(units)
    assert rebuilt == units
    assert rebuilt.config() == units.config()
    assert hash(rebuilt) == hash(units)
    assert rebuilt.discrete == units.discrete and rebuilt.has_logvar == units.has_logvar


def test_units_are_compared_by_configuration():
    assert GaussianUnits() != GaussianUnits(learn_variance=True)
    assert SoftmaxUnits([2, 3]) != SoftmaxUnits([3, 2])
    assert SoftmaxUnits() != SoftmaxUnits([3])
    assert BernoulliUnits() != "bernoulli"
    assert "learn_variance=True" in repr(GaussianUnits(True))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("bernoulli", BernoulliUnits()),
        ("binary", BernoulliUnits()),
        ("Bernoulli", BernoulliUnits()),
        ("gaussian", GaussianUnits()),
        ("gaussian-learned", GaussianUnits(learn_variance=True)),
        ("gaussian_learned", GaussianUnits(learn_variance=True)),
        ("relu", ReLUUnits()),
        ("softmax", SoftmaxUnits()),
    ],
)
def test_units_from_spec_names(name, expected):
    units = units_from_spec(name)
    assert type(units) is type(expected)
    assert units == expected


def test_units_from_spec_passes_instances_through():
    units = SoftmaxUnits([1, 2])
    assert units_from_spec(units) is units


@pytest.mark.parametrize("spec", ["gauss", "", "mixed", 3, None, BernoulliUnits])
def test_units_from_spec_rejects_unknown(spec):
    with pytest.raises(ValueError, match="unknown unit type"):
        units_from_spec(spec)


@pytest.mark.parametrize("config", [{"type": "sigmoid"}, {}, {"type": "units"}])
def test_units_from_config_rejects_unknown(config):
    with pytest.raises(ValueError, match="unknown unit type"):
        units_from_config(config)


def test_base_units_are_abstract():
    units = Units()
    with pytest.raises(NotImplementedError):
        units.mean(torch.zeros(2))
    with pytest.raises(NotImplementedError):
        units.log_partition(torch.zeros(1, 2), torch.zeros(2))


# ---------------------------------------------------------------------------------- support


def test_support_error_names_row_column_and_value():
    x = torch.zeros(4, 5)
    x[2, 3] = 1.5
    x[3, 0] = 7.0  # a later offender; the first one is reported
    for units in (BernoulliUnits(), SoftmaxUnits()):
        message = units.support_error(x)
        assert "row 2, column 3" in message and "1.5" in message
    assert BernoulliUnits().support_error(torch.rand(3, 4)) is None
    assert BernoulliUnits().support_error(torch.tensor([[0.0, 1.0]])) is None

    y = torch.ones(3, 2)
    y[1, 1] = -0.25
    message = ReLUUnits().support_error(y)
    assert "row 1, column 1" in message and "-0.25" in message
    assert ReLUUnits().support_error(torch.zeros(3, 2)) is None
    assert GaussianUnits().support_error(torch.full((2, 2), -1e6)) is None


@pytest.mark.parametrize("units", [BernoulliUnits(), SoftmaxUnits(), ReLUUnits()])
def test_support_error_finds_one_offender_in_a_large_array(units):
    """The quick check (the array's extremes) and the masks agree: a single value just outside
    the support anywhere is found; the bounds, NaN (checked elsewhere) and no rows pass."""
    x = torch.rand(3000, 300, generator=torch.Generator().manual_seed(0))
    assert units.support_error(x) is None
    assert units.support_error(torch.zeros(0, 300)) is None
    assert units.support_error(torch.tensor([[0.0, float("nan"), 1.0]])) is None
    x[2999, 299] = -1e-7
    assert "row 2999, column 299" in units.support_error(x)
    if not isinstance(units, ReLUUnits):
        x[2999, 299], x[1234, 5] = 0.5, 1.0 + 1e-6
        assert "row 1234, column 5" in units.support_error(x)


def test_mixed_support_error_names_the_block():
    mixed = MixedUnits([(BernoulliUnits(), 3), (ReLUUnits(), 2)])
    x = torch.zeros(2, 5)
    assert mixed.support_error(x) is None
    x[1, 4] = -2.0
    message = mixed.support_error(x)
    assert message.startswith("units 3-4:") and "row 1" in message and "-2" in message


def test_mixed_support_error_names_the_data_column():
    mixed = MixedUnits([(BernoulliUnits(), 3), (ReLUUnits(), 2)])
    x = torch.zeros(2, 5)
    x[1, 4] = -2.0
    assert "column 4" in mixed.support_error(x)


def test_support_error_of_a_single_row_names_the_offending_column():
    message = BernoulliUnits().support_error(torch.tensor([0.0, 1.0, 0.0, 3.0]))
    assert "column 3" in message and "value 3" in message


def test_relu_log_partition_is_exact_to_float64_precision():
    x = 20.5
    got = ReLUUnits().log_partition(torch.tensor([[x]], dtype=F64), torch.zeros(1, dtype=F64))
    assert got.item() == pytest.approx(_relu_log_partition_bruteforce(x), rel=1e-14, abs=1e-12)
