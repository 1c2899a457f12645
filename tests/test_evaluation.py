"""Exact evaluation against brute force: log Z by enumerating every (v, h) pair or by quadrature,
the pseudo-likelihood from free energies written out by hand, and the simple diagnostics."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch

from deepbelief.evaluation import (
    MAX_EXACT_STATES,
    ais_log_partition,
    exact_log_likelihood,
    exact_log_partition,
    free_energy_gap,
    pseudo_log_likelihood,
    reconstruction_error,
    tv_distance,
)
from deepbelief.nn import RBM, GaussianUnits, MixedUnits, ReLUUnits, SoftmaxUnits

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _logsumexp(a, axis=None):
    a = np.asarray(a, dtype=float)
    top = np.max(a, axis=axis, keepdims=True)
    out = top + np.log(np.exp(a - top).sum(axis=axis, keepdims=True))
    return out.squeeze() if axis is None else np.squeeze(out, axis=axis)


def _binary(n: int) -> np.ndarray:
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def _one_hot_groups(sizes) -> np.ndarray:
    rows = []
    for picks in itertools.product(*(range(s) for s in sizes)):
        row = []
        for size, pick in zip(sizes, picks):
            row += [1.0 if i == pick else 0.0 for i in range(size)]
        rows.append(row)
    return np.array(rows)


def _random_model(nv, nh, seed, visible="bernoulli", hidden="bernoulli", dtype=F64, std=1.0):
    g = _gen(seed)
    model = RBM(nv, nh, visible=visible, hidden=hidden, weight_std=std, generator=g, dtype=dtype)
    with torch.no_grad():
        model.visible_bias.copy_(0.7 * torch.randn(nv, generator=g, dtype=dtype))
        model.hidden_bias.copy_(0.7 * torch.randn(nh, generator=g, dtype=dtype))
        if model.visible_logvar is not None:
            model.visible_logvar.copy_(0.5 * torch.randn(nv, generator=g, dtype=dtype))
    return model


def _params(model):
    return [
        None if p is None else p.detach().to(F64).numpy()
        for p in (model.weight, model.visible_bias, model.hidden_bias, model.visible_logvar)
    ]


def _brute_log_z(model, V, H) -> float:
    """logsumexp of -E(v, h) over every pair, for discrete layers with E = -vb - hc - vWh."""
    W, b, c, _ = _params(model)
    return float(_logsumexp((V @ b)[:, None] + (H @ c)[None, :] + V @ W @ H.T))


def _brute_free_energy(model, V) -> np.ndarray:
    """F(v) of binary rows by enumerating the binary hidden states."""
    W, b, c, _ = _params(model)
    H = _binary(model.n_hidden)
    return -_logsumexp((V @ b)[:, None] + (H @ c)[None, :] + V @ W @ H.T, axis=1)


# ---------------------------------------------------------------------------------- log Z


@pytest.mark.parametrize(("nv", "nh"), [(5, 3), (3, 5), (4, 4), (1, 7)])
def test_exact_log_partition_bernoulli(nv, nh):
    """Enumerates whichever layer is smaller; the answer is the same."""
    model = _random_model(nv, nh, seed=nv * 10 + nh)
    expected = _brute_log_z(model, _binary(nv), _binary(nh))
    assert exact_log_partition(model) == pytest.approx(expected, rel=1e-13, abs=1e-12)
    assert exact_log_partition(model, chunk_size=3) == pytest.approx(expected, rel=1e-13, abs=1e-12)


def test_exact_log_partition_of_a_float32_model_is_computed_in_float64():
    model = _random_model(4, 3, seed=5, dtype=torch.float32, std=3.0)
    expected = _brute_log_z(model, _binary(4), _binary(3))  # float64 from the float32 weights
    assert exact_log_partition(model) == pytest.approx(expected, rel=1e-13)
    assert model.weight.dtype == torch.float32  # the model itself is left alone


@pytest.mark.parametrize("sizes", [None, [2, 3]])
def test_exact_log_partition_softmax_visible(sizes):
    model = _random_model(5, 4, seed=6, visible=SoftmaxUnits(sizes))
    V = _one_hot_groups([5] if sizes is None else sizes)
    assert exact_log_partition(model) == pytest.approx(
        _brute_log_z(model, V, _binary(4)), rel=1e-13
    )


def test_exact_log_partition_mixed_hidden():
    model = _random_model(3, 5, seed=7, hidden=MixedUnits([("bernoulli", 2), (SoftmaxUnits(), 3)]))
    H = np.array([list(a) + list(b) for a in _binary(2) for b in _one_hot_groups([3])])
    assert exact_log_partition(model) == pytest.approx(
        _brute_log_z(model, _binary(3), H), rel=1e-13
    )


@pytest.mark.parametrize("learn", [False, True])
@pytest.mark.parametrize("nv", [1, 2])
def test_exact_log_partition_gaussian_visible_by_quadrature(nv, learn):
    """log Z = log sum_h integral exp(-E(v, h)) dv, the integral on a grid over v."""
    model = _random_model(nv, 3, seed=8 + nv, visible=GaussianUnits(learn_variance=learn))
    W, b, c, logvar = _params(model)
    var = np.ones(nv) if logvar is None else np.exp(logvar)
    axis = np.linspace(-30.0, 30.0, 1201 if nv == 2 else 100_001)  # exact for Gaussians
    grid = np.stack(np.meshgrid(*([axis] * nv), indexing="ij"), -1).reshape(-1, nv)
    quadratic = -(((grid - b) ** 2) / (2 * var)).sum(1)
    # -E(v, h) = -sum (v - b)^2 / (2 var) + h c + (v / var) W h, one h at a time
    terms = []
    for h in _binary(3):
        neg_energy = quadratic + h @ c + (grid / var) @ W @ h
        top = neg_energy.max()
        density = np.exp(neg_energy - top).reshape([len(axis)] * nv)
        for _ in range(nv):
            density = np.trapezoid(density, axis, axis=0)
        terms.append(math.log(float(density)) + top)
    expected = float(_logsumexp(terms))
    assert exact_log_partition(model) == pytest.approx(expected, rel=1e-10, abs=1e-9)


def test_exact_log_partition_refuses_too_many_states():
    with pytest.raises(ValueError, match="states"):
        exact_log_partition(RBM(30, 30))
    with pytest.raises(ValueError, match="limit"):
        exact_log_partition(_random_model(6, 5, seed=1), max_states=16)
    assert exact_log_partition(_random_model(6, 4, seed=1), max_states=16) == pytest.approx(
        _brute_log_z(_random_model(6, 4, seed=1), _binary(6), _binary(4)), rel=1e-13
    )
    assert MAX_EXACT_STATES == 2**24


@pytest.mark.parametrize(("visible", "hidden"), [("gaussian", "gaussian"), ("gaussian", "relu")])
def test_exact_log_partition_needs_a_discrete_layer(visible, hidden):
    with pytest.raises(TypeError):
        exact_log_partition(RBM(2, 2, visible=visible, hidden=hidden))


# ---------------------------------------------------------------------------------- likelihood


def test_exact_log_likelihood_is_a_normalised_distribution():
    model = _random_model(7, 4, seed=12, std=1.5)
    V = _binary(7)
    per_row = exact_log_likelihood(model, torch.tensor(V), per_row=True)
    assert per_row.shape == (128,)
    assert float(torch.logsumexp(per_row, 0)) == pytest.approx(0.0, abs=1e-9)
    expected = -_brute_free_energy(model, V) - _brute_log_z(model, V, _binary(4))
    np.testing.assert_allclose(per_row.numpy(), expected, rtol=1e-12, atol=1e-12)
    rows = torch.tensor(V[[3, 50, 127]])
    mean = exact_log_likelihood(model, rows)
    assert mean == pytest.approx(expected[[3, 50, 127]].mean(), rel=1e-12)
    log_z = exact_log_partition(model)
    assert exact_log_likelihood(model, rows, log_z=log_z + 1.0) == pytest.approx(
        mean - 1.0, rel=1e-12
    )


def test_exact_log_likelihood_of_a_float32_model():
    model = _random_model(5, 3, seed=13, dtype=torch.float32)
    V = _binary(5)
    per_row = exact_log_likelihood(model, torch.tensor(V, dtype=torch.float32), per_row=True)
    assert per_row.dtype == F64
    assert float(torch.logsumexp(per_row, 0)) == pytest.approx(0.0, abs=1e-9)


# ---------------------------------------------------------------------------------- PLL


def _brute_pll(model, X: np.ndarray) -> np.ndarray:
    """sum_i log p(v_i | v_-i) = sum_i -F(v) - log(exp(-F(v)) + exp(-F(v with bit i flipped)))."""
    free = _brute_free_energy(model, X)
    total = np.zeros(len(X))
    for i in range(X.shape[1]):
        flipped = X.copy()
        flipped[:, i] = 1 - flipped[:, i]
        other = _brute_free_energy(model, flipped)
        total += -free - np.logaddexp(-free, -other)
    return total


def test_pseudo_log_likelihood_matches_brute_force():
    model = _random_model(6, 4, seed=14, std=1.5)
    X = _binary(6)[::5]
    expected = _brute_pll(model, X)
    per_row = pseudo_log_likelihood(model, torch.tensor(X), per_row=True)
    np.testing.assert_allclose(per_row.detach().numpy(), expected, rtol=1e-12, atol=1e-12)
    assert pseudo_log_likelihood(model, X) == pytest.approx(expected.mean(), rel=1e-12)
    # chunked over features (one feature at a time) gives the same
    chunked = pseudo_log_likelihood(model, torch.tensor(X), per_row=True, max_elements=1)
    np.testing.assert_allclose(chunked.detach().numpy(), expected, rtol=1e-12, atol=1e-12)
    assert (per_row < 0).all()


def test_pseudo_log_likelihood_over_a_subset_of_features_is_the_scaled_partial_sum():
    model = _random_model(6, 4, seed=14, std=1.5)
    X = torch.tensor(_binary(6)[::5])
    full = pseudo_log_likelihood(model, X, per_row=True)
    terms = [
        pseudo_log_likelihood(model, X, per_row=True, features=[i]) / 6 for i in range(6)
    ]  # each is one feature's conditional, scaled by 6
    assert torch.allclose(sum(terms), full, rtol=1e-12)
    subset = pseudo_log_likelihood(model, X, per_row=True, features=[1, 4])
    assert torch.allclose(subset, 3 * (terms[1] + terms[4]), rtol=1e-12)


def test_pseudo_log_likelihood_needs_bernoulli_visible_units():
    with pytest.raises(TypeError):
        pseudo_log_likelihood(RBM(3, 2, visible="gaussian"), torch.zeros(2, 3))


# ---------------------------------------------------------------------------------- diagnostics


def test_free_energy_gap():
    model = _random_model(5, 3, seed=15)
    X = _binary(5)
    train, valid = X[::3], X[1::4]
    assert free_energy_gap(model, torch.tensor(train), torch.tensor(train)) == pytest.approx(
        0.0, abs=1e-12
    )
    expected = _brute_free_energy(model, valid).mean() - _brute_free_energy(model, train).mean()
    assert free_energy_gap(model, torch.tensor(train), torch.tensor(valid)) == pytest.approx(
        expected, rel=1e-12
    )
    assert free_energy_gap(model, train, valid) == pytest.approx(expected, rel=1e-12)  # numpy input


def test_reconstruction_error_by_hand():
    model = RBM(2, 1, dtype=F64)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0], [-2.0]]))
        model.visible_bias.copy_(torch.tensor([0.5, 0.0]))
        model.hidden_bias.copy_(torch.tensor([-1.0]))
    X = [[1.0, 0.0], [0.0, 1.0]]

    def sigmoid(x):
        return 1 / (1 + math.exp(-x))

    total = 0.0
    for v in X:
        h = sigmoid(-1.0 + v[0] * 1.0 + v[1] * -2.0)
        recon = [sigmoid(0.5 + 1.0 * h), sigmoid(0.0 - 2.0 * h)]
        total += sum((r - x) ** 2 for r, x in zip(recon, v))
    assert reconstruction_error(model, torch.tensor(X)) == pytest.approx(total / 4, rel=1e-13)


def test_reconstruction_error_of_gaussian_units():
    model = _random_model(3, 2, seed=16, visible="gaussian")
    W, b, c, _ = _params(model)
    X = np.array([[0.3, -1.0, 2.0], [1.5, 0.0, -0.5]])
    recon = b + (1 / (1 + np.exp(-(c + X @ W)))) @ W.T
    assert reconstruction_error(model, X) == pytest.approx(((recon - X) ** 2).mean(), rel=1e-12)


def test_tv_distance():
    assert tv_distance(torch.tensor([0.5, 0.5, 0.0]), torch.tensor([0.0, 0.5, 0.5])) == 0.5
    assert tv_distance(torch.tensor([0.2, 0.8]), torch.tensor([0.2, 0.8])) == 0.0


def test_likelihoods_of_relu_units_say_whose_they_are():
    """ReLU units sample noisy ReLUs but their free energy is the stepped sigmoid units':
    the exact and AIS figures warn that they are the latter's."""
    model = RBM(4, 3, hidden=ReLUUnits())
    with pytest.warns(UserWarning, match="stepped sigmoid units"):
        exact_log_partition(model)
    with pytest.warns(UserWarning, match="stepped sigmoid units"):
        ais_log_partition(model, n_runs=4, betas=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exact_log_partition(RBM(4, 3))
