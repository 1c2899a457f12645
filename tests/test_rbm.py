"""The RBM's free energies and conditionals against brute force on tiny models.

The reference energy ``E(v, h) = E_v(v) + E_h(h) - s_v(v) W s_h(h)`` is written out here for
each unit type, states are enumerated with ``itertools`` and continuous layers are integrated
on a fine grid, so nothing is computed by the code under test twice.

Seeds: the stochastic tests (``@pytest.mark.stochastic``) take the ``seed`` fixture and run
once for each of ``SEEDS = (0, 1, 2)`` (tests/conftest.py), each seed offsetting every
generator they draw from by ``1000 * seed``.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from scipy import integrate

from deepbelief.nn import (
    RBM,
    BernoulliUnits,
    GaussianUnits,
    MixedUnits,
    ReLUUnits,
    SoftmaxUnits,
)

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _logsumexp(a, axis=None):
    a = np.asarray(a, dtype=float)
    top = np.max(a, axis=axis, keepdims=True)
    out = top + np.log(np.exp(a - top).sum(axis=axis, keepdims=True))
    return out.squeeze() if axis is None else np.squeeze(out, axis=axis)


def _tv_tolerance(p, n: int, delta: float = 1e-6) -> float:
    """TV between ``p`` and a histogram of ``n`` iid draws exceeds this with prob. < delta.

    Jensen bounds ``E[TV]`` by ``1/2 sum sqrt(p (1 - p) / n)``; McDiarmid (one draw moves the
    TV by at most ``1/n``) adds ``sqrt(log(1/delta) / (2 n))``.
    """
    p = np.asarray(p, dtype=float)
    return 0.5 * float(np.sqrt(p * (1 - p) / n).sum()) + math.sqrt(math.log(1 / delta) / (2 * n))


def _histogram(samples: torch.Tensor, states: np.ndarray) -> np.ndarray:
    """Frequencies of the rows of ``samples`` over the rows of ``states`` (all must occur)."""
    index = {tuple(row): i for i, row in enumerate(states.tolist())}
    counts = np.zeros(len(states))
    rows, c = np.unique(samples.detach().numpy(), axis=0, return_counts=True)
    for row, k in zip(rows.tolist(), c):
        counts[index[tuple(row)]] += k
    return counts / len(samples)


# ------------------------------------------------------------------- discrete layers, by hand
# A layer is a list of blocks: ("bernoulli", n) or ("softmax", group_sizes or None, n).


def _units(blocks):
    made = []
    for block in blocks:
        if block[0] == "bernoulli":
            made.append((BernoulliUnits(), block[1]))
        else:
            made.append((SoftmaxUnits(block[1]), block[2]))
    return made[0][0] if len(made) == 1 else MixedUnits(made)


def _size(blocks):
    return sum(b[-1] for b in blocks)


def _enumerate(blocks) -> np.ndarray:
    per_block = []
    for block in blocks:
        if block[0] == "bernoulli":
            per_block.append([list(s) for s in itertools.product([0.0, 1.0], repeat=block[1])])
        else:
            sizes = block[1] or [block[2]]
            rows = []
            for picks in itertools.product(*(range(s) for s in sizes)):
                row = []
                for size, pick in zip(sizes, picks):
                    row += [1.0 if i == pick else 0.0 for i in range(size)]
                rows.append(row)
            per_block.append(rows)
    return np.array([sum(parts, []) for parts in itertools.product(*per_block)])


_DISCRETE_CASES = {
    "bernoulli-bernoulli": ([("bernoulli", 4)], [("bernoulli", 3)]),
    "softmax1-bernoulli": ([("softmax", None, 5)], [("bernoulli", 3)]),
    "softmax23-bernoulli": ([("softmax", [2, 3], 5)], [("bernoulli", 3)]),
    "bernoulli-softmax32": ([("bernoulli", 3)], [("softmax", [3, 2], 5)]),
    "mixed-bernoulli": ([("bernoulli", 2), ("softmax", None, 3)], [("bernoulli", 3)]),
    "bernoulli-mixed": ([("bernoulli", 4)], [("bernoulli", 2), ("softmax", [2, 2], 4)]),
}


def _random_model(vis, hid, nv, nh, seed, std=0.9):
    g = _gen(seed)
    model = RBM(nv, nh, visible=vis, hidden=hid, weight_std=std, generator=g, dtype=F64)
    with torch.no_grad():
        model.visible_bias.copy_(0.8 * torch.randn(nv, generator=g, dtype=F64))
        model.hidden_bias.copy_(0.8 * torch.randn(nh, generator=g, dtype=F64))
        if model.visible_logvar is not None:
            model.visible_logvar.copy_(0.6 * torch.randn(nv, generator=g, dtype=F64))
        if model.hidden_logvar is not None:
            model.hidden_logvar.copy_(0.6 * torch.randn(nh, generator=g, dtype=F64))
    return model


def _params(model):
    return tuple(
        None if p is None else p.detach().numpy().copy()
        for p in (
            model.weight,
            model.visible_bias,
            model.hidden_bias,
            model.visible_logvar,
            model.hidden_logvar,
        )
    )


@pytest.fixture(params=sorted(_DISCRETE_CASES), scope="module")
def discrete_case(request):
    vis_blocks, hid_blocks = _DISCRETE_CASES[request.param]
    nv, nh = _size(vis_blocks), _size(hid_blocks)
    model = _random_model(_units(vis_blocks), _units(hid_blocks), nv, nh, seed=len(request.param))
    V, H = _enumerate(vis_blocks), _enumerate(hid_blocks)
    W, b, c, _, _ = _params(model)
    neg_energy = (V @ b)[:, None] + (H @ c)[None, :] + V @ W @ H.T  # -E(v, h), all pairs
    return model, V, H, neg_energy


def test_energy_of_every_pair(discrete_case):
    model, V, H, neg_energy = discrete_case
    v = torch.tensor(np.repeat(V, len(H), 0))
    h = torch.tensor(np.tile(H, (len(V), 1)))
    got = model.energy(v, h).detach().numpy().reshape(len(V), len(H))
    np.testing.assert_allclose(got, -neg_energy, rtol=1e-13, atol=1e-13)


def test_free_energy_sums_out_the_hidden_layer(discrete_case):
    model, V, H, neg_energy = discrete_case
    got = model.free_energy(torch.tensor(V)).detach().numpy()
    np.testing.assert_allclose(got, -_logsumexp(neg_energy, axis=1), rtol=1e-12, atol=1e-12)


def test_free_energy_hidden_sums_out_the_visible_layer(discrete_case):
    model, V, H, neg_energy = discrete_case
    got = model.free_energy_hidden(torch.tensor(H)).detach().numpy()
    np.testing.assert_allclose(got, -_logsumexp(neg_energy, axis=0), rtol=1e-12, atol=1e-12)


def test_log_partition_from_both_layers_agrees(discrete_case):
    model, V, H, neg_energy = discrete_case
    log_z = float(_logsumexp(neg_energy))
    from_v = float(torch.logsumexp(-model.free_energy(torch.tensor(V)), 0).detach())
    from_h = float(torch.logsumexp(-model.free_energy_hidden(torch.tensor(H)), 0).detach())
    assert from_v == pytest.approx(log_z, rel=1e-13, abs=1e-12)
    assert from_h == pytest.approx(log_z, rel=1e-13, abs=1e-12)


def test_conditional_means_are_brute_force_marginals(discrete_case):
    """p(h_j = 1 | v) for Bernoulli units; the group probabilities for softmax units."""
    model, V, H, neg_energy = discrete_case
    p_h_given_v = np.exp(neg_energy - _logsumexp(neg_energy, axis=1)[:, None])
    p_v_given_h = np.exp(neg_energy - _logsumexp(neg_energy, axis=0)[None, :])
    hidden_mean = model.hidden_mean(torch.tensor(V)).detach().numpy()
    visible_mean = model.visible_mean(torch.tensor(H)).detach().numpy()
    np.testing.assert_allclose(hidden_mean, p_h_given_v @ H, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(visible_mean, p_v_given_h.T @ V, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(model(torch.tensor(V)).detach().numpy(), p_h_given_v @ H, rtol=1e-12)


@pytest.mark.parametrize("beta", [0.0, 0.4])
def test_tempered_free_energy_and_means(discrete_case, beta):
    """``beta`` scales the interaction term only."""
    model, V, H, _ = discrete_case
    W, b, c, _, _ = _params(model)
    neg_energy = (V @ b)[:, None] + (H @ c)[None, :] + beta * (V @ W @ H.T)
    v = torch.tensor(V)
    got = model.free_energy(v, beta=beta).detach().numpy()
    np.testing.assert_allclose(got, -_logsumexp(neg_energy, axis=1), rtol=1e-12, atol=1e-12)
    got_h = model.free_energy_hidden(torch.tensor(H), beta=beta).detach().numpy()
    np.testing.assert_allclose(got_h, -_logsumexp(neg_energy, axis=0), rtol=1e-12, atol=1e-12)
    p_h_given_v = np.exp(neg_energy - _logsumexp(neg_energy, axis=1)[:, None])
    # a per-row beta column (as parallel tempering passes it) gives the same
    column = torch.full((len(V), 1), beta, dtype=F64)
    np.testing.assert_allclose(
        model.hidden_mean(v, beta=column).detach().numpy(), p_h_given_v @ H, rtol=1e-12, atol=1e-14
    )
    e = model.energy(v[:1].expand(len(H), -1), torch.tensor(H), beta=beta).detach().numpy()
    np.testing.assert_allclose(e, -neg_energy[0], rtol=1e-13, atol=1e-13)


@pytest.mark.stochastic
def test_conditional_samples_follow_the_brute_force_conditionals(discrete_case, seed):
    model, V, H, neg_energy = discrete_case
    n = 60_000
    iv, ih = len(V) // 3, len(H) // 2
    p_h = np.exp(neg_energy[iv] - _logsumexp(neg_energy[iv]))
    p_v = np.exp(neg_energy[:, ih] - _logsumexp(neg_energy[:, ih]))
    v = torch.tensor(V[iv]).expand(n, -1)
    h = torch.tensor(H[ih]).expand(n, -1)
    hs = model.sample_hidden(v, generator=_gen(1000 * seed + 11))
    vs = model.sample_visible(h, generator=_gen(1000 * seed + 12))
    assert 0.5 * np.abs(_histogram(hs, H) - p_h).sum() < _tv_tolerance(p_h, n)
    assert 0.5 * np.abs(_histogram(vs, V) - p_v).sum() < _tv_tolerance(p_v, n)


# ------------------------------------------------------------------- Gaussian visible units

_GRID = np.linspace(-50.0, 50.0, 200_001)


def _trapezoid_log(log_density: np.ndarray, grid: np.ndarray) -> tuple[float, np.ndarray]:
    top = log_density.max()
    density = np.exp(log_density - top)
    return math.log(np.trapezoid(density, grid)) + top, density


@pytest.fixture(params=[False, True], ids=["unit-variance", "learned-variance"], scope="module")
def gaussian_model(request):
    model = _random_model(GaussianUnits(learn_variance=request.param), "bernoulli", 3, 3, seed=21)
    if request.param:
        assert model.visible_logvar is not None and model.visible_logvar.abs().min() > 0.05
    else:
        assert model.visible_logvar is None
    return model


def _gaussian_visible_energy(model, v: np.ndarray, h: np.ndarray) -> np.ndarray:
    """E(v, h) of every (row of v, row of h) pair, written out."""
    W, b, c, logvar, _ = _params(model)
    var = np.ones_like(b) if logvar is None else np.exp(logvar)
    self_v = (((v - b) ** 2) / (2 * var)).sum(1)
    return self_v[:, None] - (h @ c)[None, :] - (v / var) @ W @ h.T


def test_gaussian_energy_and_free_energy_by_enumerating_h(gaussian_model):
    model = gaussian_model
    H = _enumerate([("bernoulli", 3)])
    v = 2.0 * torch.randn(6, 3, generator=_gen(22), dtype=F64)
    energy = _gaussian_visible_energy(model, v.numpy(), H)
    got_e = model.energy(v.repeat_interleave(len(H), 0), torch.tensor(np.tile(H, (6, 1))))
    np.testing.assert_allclose(got_e.detach().numpy().reshape(6, len(H)), energy, rtol=1e-13)
    got = model.free_energy(v).detach().numpy()
    np.testing.assert_allclose(got, -_logsumexp(-energy, axis=1), rtol=1e-12, atol=1e-12)
    p_h = np.exp(-energy - _logsumexp(-energy, axis=1)[:, None])
    np.testing.assert_allclose(model.hidden_mean(v).detach().numpy(), p_h @ H, rtol=1e-12)


def test_gaussian_free_energy_hidden_and_conditional_by_quadrature(gaussian_model):
    """Given h the visible units are independent: integrate each on a fine grid."""
    model = gaussian_model
    W, b, c, logvar, _ = _params(model)
    var = np.ones(3) if logvar is None else np.exp(logvar)
    H = _enumerate([("bernoulli", 3)])
    free = model.free_energy_hidden(torch.tensor(H)).detach().numpy()
    means = model.visible_mean(torch.tensor(H)).detach().numpy()
    for k, h in enumerate(H):
        log_z = float(h @ c)
        for i in range(3):
            # -E restricted to unit i: -(v - b_i)^2 / (2 var_i) + (v / var_i) (W h)_i
            log_density = -((_GRID - b[i]) ** 2) / (2 * var[i]) + _GRID / var[i] * (W[i] @ h)
            log_zi, density = _trapezoid_log(log_density, _GRID)
            log_z += log_zi
            mean = np.trapezoid(density * _GRID, _GRID) / np.trapezoid(density, _GRID)
            variance = np.trapezoid(density * (_GRID - mean) ** 2, _GRID) / np.trapezoid(
                density, _GRID
            )
            assert means[k, i] == pytest.approx(mean, rel=1e-9, abs=1e-9)
            assert variance == pytest.approx(var[i], rel=1e-8)
        assert free[k] == pytest.approx(-log_z, rel=1e-10, abs=1e-10)


@pytest.mark.stochastic
def test_gaussian_visible_samples_match_quadrature_moments(gaussian_model, seed):
    model = gaussian_model
    W, b, _, logvar, _ = _params(model)
    var = np.ones(3) if logvar is None else np.exp(logvar)
    n = 100_000
    for k, h in enumerate([[0.0, 0.0, 0.0], [1.0, 0.0, 1.0], [1.0, 1.0, 1.0]]):
        h_np = np.array(h)
        s = model.sample_visible(
            torch.tensor([h], dtype=F64).expand(n, -1), generator=_gen(1000 * seed + 30 + k)
        )
        s = s.detach().numpy()
        for i in range(3):
            log_density = -((_GRID - b[i]) ** 2) / (2 * var[i]) + _GRID / var[i] * (W[i] @ h_np)
            _, density = _trapezoid_log(log_density, _GRID)
            z = np.trapezoid(density, _GRID)
            mean = np.trapezoid(density * _GRID, _GRID) / z
            variance = np.trapezoid(density * (_GRID - mean) ** 2, _GRID) / z
            # normal samples: the mean has sd sqrt(var/n), the sample variance var sqrt(2/n)
            assert abs(s[:, i].mean() - mean) < 5.5 * math.sqrt(variance / n)
            assert abs(s[:, i].var() - variance) < 5.5 * variance * math.sqrt(2 / n)


def test_gaussian_log_partition_from_both_layers_agrees():
    """log Z as an integral of exp(-F(v)) over a 2-D grid equals logsumexp(-F(h))."""
    model = _random_model(GaussianUnits(learn_variance=True), "bernoulli", 2, 3, seed=23)
    H = torch.tensor(_enumerate([("bernoulli", 3)]))
    from_h = float(torch.logsumexp(-model.free_energy_hidden(H), 0).detach())
    axis = np.linspace(-25.0, 25.0, 1001)
    grid = torch.tensor(np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2))
    log_density = -model.free_energy(grid).detach().numpy().reshape(len(axis), len(axis))
    top = log_density.max()
    density = np.exp(log_density - top)
    from_v = math.log(np.trapezoid(np.trapezoid(density, axis, axis=1), axis)) + top
    assert from_v == pytest.approx(from_h, abs=1e-8)


# ------------------------------------------------------------------- Gaussian hidden units


def test_gaussian_hidden_free_energies_and_mean():
    model = _random_model("bernoulli", GaussianUnits(learn_variance=True), 3, 2, seed=24)
    W, b, c, _, logvar = _params(model)
    var = np.exp(logvar)
    V = _enumerate([("bernoulli", 3)])
    free = model.free_energy(torch.tensor(V)).detach().numpy()
    means = model.hidden_mean(torch.tensor(V)).detach().numpy()
    for k, v in enumerate(V):
        log_z = float(v @ b)
        for j in range(2):
            log_density = -((_GRID - c[j]) ** 2) / (2 * var[j]) + (v @ W[:, j]) * _GRID / var[j]
            log_zj, density = _trapezoid_log(log_density, _GRID)
            log_z += log_zj
            mean = np.trapezoid(density * _GRID, _GRID) / np.trapezoid(density, _GRID)
            assert means[k, j] == pytest.approx(mean, rel=1e-9, abs=1e-9)
        assert free[k] == pytest.approx(-log_z, rel=1e-10, abs=1e-10)
    h = 1.5 * torch.randn(4, 2, generator=_gen(25), dtype=F64)
    hn = h.numpy()
    neg_e = (V @ b)[:, None] - (((hn - c) ** 2) / (2 * var)).sum(1)[None, :] + V @ W @ (hn / var).T
    got = model.free_energy_hidden(h).detach().numpy()
    np.testing.assert_allclose(got, -_logsumexp(neg_e, axis=0), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------- ReLU hidden units


def _softplus(y: float) -> float:
    return max(y, 0.0) + math.log1p(math.exp(-abs(y)))


def test_relu_hidden_free_energies():
    """F(v) uses the stepped-sigmoid sum; F(h) at integer h uses E_h = n^2/2 - c n."""
    model = _random_model("bernoulli", "relu", 4, 3, seed=26, std=1.5)
    W, b, c, _, _ = _params(model)
    V = _enumerate([("bernoulli", 4)])
    got = model.free_energy(torch.tensor(V)).detach().numpy()
    for k, v in enumerate(V):
        x = c + v @ W
        log_z = math.fsum(_softplus(xj - i + 0.5) for xj in x for i in range(1, 400))
        assert got[k] == pytest.approx(-(v @ b) - log_z, rel=1e-12, abs=1e-12)

    H = np.array([[0, 0, 0], [1, 0, 2], [3, 1, 0], [4, 5, 6]], dtype=float)
    energy_h = (0.5 * H**2 - H * c).sum(1)
    neg_e = (V @ b)[:, None] - energy_h[None, :] + V @ W @ H.T
    got_h = model.free_energy_hidden(torch.tensor(H)).detach().numpy()
    np.testing.assert_allclose(got_h, -_logsumexp(neg_e, axis=0), rtol=1e-12, atol=1e-12)


def test_relu_hidden_mean_is_the_noisy_relu_expectation():
    model = _random_model("bernoulli", "relu", 4, 3, seed=27, std=1.5)
    W, _, c, _, _ = _params(model)
    V = _enumerate([("bernoulli", 4)])[::3]
    got = model.hidden_mean(torch.tensor(V)).detach().numpy()
    for k, v in enumerate(V):
        for j, x in enumerate(c + v @ W):
            s = math.sqrt(1 / (1 + math.exp(-x)))

            def f(z, x=x, s=s):
                return max(0.0, x + s * z) * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

            kink = min(max(-x / s, -30.0), 30.0)
            value = sum(
                integrate.quad(f, lo, hi, epsabs=1e-14)[0] for lo, hi in ((-30, kink), (kink, 30))
            )
            assert got[k, j] == pytest.approx(value, rel=1e-9, abs=1e-12)


# ------------------------------------------------------------------- the module itself


def test_config_round_trip():
    model = RBM(5, 4, visible=MixedUnits([("bernoulli", 3), (SoftmaxUnits([2]), 2)]), hidden="relu")
    config = json.loads(json.dumps(model.config()))
    rebuilt = RBM.from_config(config, dtype=F64)
    assert rebuilt.config() == model.config()
    assert rebuilt.visible == model.visible and rebuilt.hidden == ReLUUnits()
    assert rebuilt.weight.dtype == F64 and rebuilt.weight.shape == (5, 4)
    assert "5x4" in repr(model)


@pytest.mark.stochastic
def test_parameters_and_initialisation(seed):
    model = RBM(200, 100, weight_std=0.1, generator=_gen(1000 * seed + 40), dtype=F64)
    again = RBM(200, 100, weight_std=0.1, generator=_gen(1000 * seed + 40), dtype=F64)
    assert torch.equal(model.weight, again.weight)
    # sample std of 20000 N(0, 0.01) draws: relative sd sqrt(1/(2*20000)) = 0.005
    assert float(model.weight.detach().std()) == pytest.approx(0.1, rel=5.5 * 0.005)
    assert torch.equal(model.visible_bias, torch.zeros(200, dtype=F64))
    assert model.visible_logvar is None and model.hidden_logvar is None
    names = {n for n, _ in RBM(3, 2, visible="gaussian-learned").named_parameters()}
    assert names == {"weight", "visible_bias", "hidden_bias", "visible_logvar"}
    for nv, nh in ((0, 3), (3, 0)):
        with pytest.raises(ValueError):
            RBM(nv, nh)


def test_reconstruct_and_gibbs():
    model = _random_model("bernoulli", "bernoulli", 4, 3, seed=41)
    W, b, c, _, _ = _params(model)
    v = np.array([[1.0, 0, 1, 1], [0, 0, 0, 1]])

    def sigmoid(x):
        return 1 / (1 + np.exp(-x))

    expected = sigmoid(b + sigmoid(c + v @ W) @ W.T)
    np.testing.assert_allclose(
        model.reconstruct(torch.tensor(v)).detach().numpy(), expected, rtol=1e-13
    )
    vt = torch.tensor(v)
    assert torch.equal(model.gibbs(vt, k=0), vt)
    np.testing.assert_allclose(
        model.interaction(vt, torch.tensor([[1.0, 0, 1], [0, 1, 1]])).detach().numpy(),
        [v[0] @ W @ [1, 0, 1], v[1] @ W @ [0, 1, 1]],
        rtol=1e-13,
    )


def test_init_visible_bias_from_data():
    data = torch.tensor([[1.0, 0, 1], [1, 0, 0], [1, 0, 1], [0, 0, 1]], dtype=F64)
    model = RBM(3, 2, dtype=F64)
    model.init_visible_bias_from_data(data, eps=1e-3)
    p = np.array([0.75, 1e-3, 0.75])
    np.testing.assert_allclose(model.visible_bias.detach().numpy(), np.log(p / (1 - p)), rtol=1e-12)

    x = torch.tensor([[1.0, -2.0], [3.0, 2.0], [2.0, 6.0]], dtype=F64)
    gauss = RBM(2, 2, visible="gaussian-learned", dtype=F64)
    with torch.no_grad():
        gauss.visible_logvar.fill_(0.3)
    gauss.init_visible_bias_from_data(x)
    np.testing.assert_allclose(gauss.visible_bias.detach().numpy(), [2.0, 2.0])
    # documented: learned log-variances are left alone
    np.testing.assert_allclose(gauss.visible_logvar.detach().numpy(), [0.3, 0.3])


def test_support_error_is_the_visible_units():
    model = RBM(3, 2, visible="relu")
    assert model.support_error(torch.ones(2, 3)) is None
    message = model.support_error(torch.tensor([[0.0, 1.0, 2.0], [1.0, -3.0, 0.0]]))
    assert "row 1, column 1" in message
