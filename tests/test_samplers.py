"""Samplers against the exact Gibbs chain of a 6x4 binary RBM.

With 64 visible and 16 hidden states everything is enumerable: the model distribution
``p(v)``, the visible-to-visible Gibbs transition matrix ``T[v, v'] = sum_h p(h|v) p(v'|h)``
and so the exact distribution of a chain after any number of steps from any start. Histograms
of sampler output are compared with these by total-variation distance, under a bound that a
correct sampler exceeds with probability below 1e-6 per comparison.

Seeds: the stochastic tests (``@pytest.mark.stochastic``) take the ``seed`` fixture and run
once for each of ``SEEDS = (0, 1, 2)`` (tests/conftest.py), each seed offsetting every
generator they draw from by ``1000 * seed``.
"""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pytest
import torch

from deepbelief.nn import RBM
from deepbelief.samplers import CD, PCD, PT, make_sampler, random_visible, sampler_from_config

F64 = torch.float64
NV, NH = 6, 4


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _tv_tolerance(p, n: int, delta: float = 1e-6) -> float:
    """TV between ``p`` and a histogram of ``n`` iid draws from it exceeds this w.p. < delta.

    Jensen bounds ``E[TV]`` by ``1/2 sum sqrt(p (1 - p) / n)``; McDiarmid (one draw moves the
    TV by at most ``1/n``) adds ``sqrt(log(1/delta) / (2 n))``.
    """
    p = np.asarray(p, dtype=float)
    return 0.5 * float(np.sqrt(p * (1 - p) / n).sum()) + math.sqrt(math.log(1 / delta) / (2 * n))


def _tv(p, q) -> float:
    return 0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum())


V = np.array(list(itertools.product([0.0, 1.0], repeat=NV)))  # row index = binary code
H = np.array(list(itertools.product([0.0, 1.0], repeat=NH)))
_POWERS = 2.0 ** np.arange(NV - 1, -1, -1)


def _codes(v: torch.Tensor) -> np.ndarray:
    v = v.detach().numpy()
    assert set(np.unique(v)) <= {0.0, 1.0}
    return (v @ _POWERS).astype(int)


def _histogram(v: torch.Tensor) -> np.ndarray:
    return np.bincount(_codes(v), minlength=len(V)) / len(v)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


class Exact:
    """Everything about a binary RBM, by enumeration, at inverse temperature ``beta``."""

    def __init__(self, W, b, c, beta=1.0):
        self.W, self.b, self.c = W, b, c
        log_joint = (V @ b)[:, None] + (H @ c)[None, :] + beta * (V @ W @ H.T)  # -E(v, h)
        top = log_joint.max()
        joint = np.exp(log_joint - top)
        self.p_v = joint.sum(1) / joint.sum()
        p_h_given_v = joint / joint.sum(1, keepdims=True)
        p_v_given_h = (joint / joint.sum(0, keepdims=True)).T
        self.T = p_h_given_v @ p_v_given_h
        self.free = -np.log(joint.sum(1)) - top  # tempered F(v)
        # sufficient statistics of the weight gradient: outer(v, p(h = 1 | v)), shape (64, 6, 4)
        self.stats = V[:, :, None] * _sigmoid(c + V @ W)[:, None, :]

    def after(self, start: np.ndarray, steps: int) -> np.ndarray:
        """Distribution of the chain after ``steps`` Gibbs steps from distribution ``start``."""
        return start @ np.linalg.matrix_power(self.T, steps)


def _model(weight, visible_bias, hidden_bias) -> RBM:
    model = RBM(NV, NH, dtype=F64)
    with torch.no_grad():
        model.weight.copy_(torch.as_tensor(weight))
        model.visible_bias.copy_(torch.as_tensor(visible_bias))
        model.hidden_bias.copy_(torch.as_tensor(hidden_bias))
    return model


@pytest.fixture(scope="module")
def mixing():
    """A model with std-1 weights: a spread-out p(v) that Gibbs sampling mixes in ~15 steps."""
    g = np.random.default_rng(5)
    W, b, c = g.normal(0, 1.0, (NV, NH)), g.normal(0, 0.5, NV), g.normal(0, 0.5, NH)
    data = np.array(
        [[1.0, 1, 0, 0, 1, 0], [0, 1, 1, 0, 0, 0], [1, 0, 0, 1, 1, 1], [0, 0, 0, 0, 1, 1]]
    )
    return _model(W, b, c), Exact(W, b, c), torch.tensor(data)


@pytest.fixture(scope="module")
def bimodal():
    """Two modes, v = 111000 / h = 1010 and v = 000111 / h = 0101, that Gibbs cannot cross."""
    g = np.random.default_rng(1)
    s, t = np.array([1.0, 1, 1, -1, -1, -1]), np.array([1.0, -1, 1, -1])
    W = 2.5 * np.outer(s, t) + g.normal(0, 0.2, (NV, NH))
    b, c = g.normal(0, 0.2, NV), g.normal(0, 0.2, NH)
    return _model(W, b, c), W, b, c


def test_exact_chain_is_a_valid_reversible_markov_chain(mixing):
    _, exact, _ = mixing
    assert np.allclose(exact.T.sum(1), 1, atol=1e-13)
    flow = exact.p_v[:, None] * exact.T
    assert np.allclose(flow, flow.T, atol=1e-15)  # detailed balance
    assert np.allclose(exact.p_v @ exact.T, exact.p_v, atol=1e-15)
    assert exact.p_v.max() < 0.2  # a non-trivial distribution


def test_model_free_energy_gives_the_exact_distribution(mixing):
    """p(v) from the model's free energy is the enumerated marginal (the oracle's premise)."""
    model, exact, _ = mixing
    free = model.free_energy(torch.tensor(V)).detach().numpy()
    p = np.exp(-free - np.max(-free))
    np.testing.assert_allclose(p / p.sum(), exact.p_v, rtol=1e-12)


# ---------------------------------------------------------------------------------- CD


def test_expected_cd_gradient_approaches_the_exact_gradient(mixing):
    """The CD-k gradient in expectation tends to the log-likelihood gradient as k grows."""
    _, exact, data = mixing
    p_data = np.zeros(len(V))
    np.add.at(p_data, _codes(data), 1 / len(data))
    positive = np.einsum("v,vij->ij", p_data, exact.stats)
    exact_grad = positive - np.einsum("v,vij->ij", exact.p_v, exact.stats)
    distances = []
    for k in (1, 2, 5, 20, 100):
        q_k = exact.after(p_data, k)
        cd_grad = positive - np.einsum("v,vij->ij", q_k, exact.stats)
        distances.append(np.linalg.norm(cd_grad - exact_grad))
    assert all(a > b for a, b in zip(distances, distances[1:])), distances
    assert distances[0] > 0.1 * np.linalg.norm(exact_grad)  # CD-1 is visibly biased here
    assert distances[-1] < 1e-12 * distances[0]  # the chain has mixed


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.stochastic
def test_cd_negative_statistics_match_the_expected_cd_gradient(mixing, k, seed):
    """The sampler's negative-phase statistics average to sum_v T^k[v0, v] stats(v)."""
    model, exact, data = mixing
    repeats = 50_000
    batch = data.repeat(repeats, 1)
    negative = CD(k, "sample").negative(model, batch, generator=_gen(1000 * seed + 100 + k))
    assert negative.shape == batch.shape
    codes = _codes(negative)
    empirical = exact.stats[codes].mean(0)
    # exact mean and variance of the mean: each data row contributes `repeats` iid draws
    rows = np.eye(len(V))[_codes(data)]
    mean, var = np.zeros((NV, NH)), np.zeros((NV, NH))
    for row in rows:
        q = exact.after(row, k)
        m = np.einsum("v,vij->ij", q, exact.stats)
        mean += m / len(data)
        var += (np.einsum("v,vij->ij", q, exact.stats**2) - m**2) * repeats / len(batch) ** 2
    z = np.abs(empirical - mean) / np.sqrt(var + 1e-300)
    assert z.max() < 5.5, z.max()  # a false alarm below 24 * 4e-8
    # the statistics can tell CD-k from CD-(k+1)
    other = sum(np.einsum("v,vij->ij", exact.after(row, k + 1), exact.stats) for row in rows) / 4
    assert (np.abs(other - mean) / np.sqrt(var)).max() > 11


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.stochastic
def test_cd_particles_from_one_start_follow_row_of_t_power_k(mixing, k, seed):
    model, exact, data = mixing
    n = 200_000
    start = data[:1].expand(n, -1).clone()
    row = exact.after(np.eye(len(V))[_codes(data[:1])[0]], k)
    negative = CD(k, "sample").negative(model, start, generator=_gen(1000 * seed + k))
    tolerance = _tv_tolerance(row, n)
    assert _tv(_histogram(negative), row) < tolerance
    # the test can tell k steps from k - 1 or k + 1 steps
    for other in (k - 1, k + 1):
        assert _tv(exact.after(np.eye(len(V))[_codes(data[:1])[0]], other), row) > 1.5 * tolerance
    # a precomputed hidden field gives the same chain
    again = CD(k, "sample").negative(
        model, start, generator=_gen(1000 * seed + k), hidden_input=model.hidden_input(start)
    )
    assert torch.equal(again, negative)


# ---------------------------------------------------------------------------------- PCD


@pytest.mark.stochastic
def test_pcd_chains_persist_and_reach_the_model_distribution(mixing, seed):
    model, exact, data = mixing
    n = 50_000
    sampler = PCD(k=1, n_chains=n)
    p_start = np.zeros(len(V))
    np.add.at(p_start, _codes(data), 1 / len(data))  # chains start at uniformly drawn data rows
    g = _gen(1000 * seed + 7)
    tolerance = _tv_tolerance(np.full(len(V), 1 / len(V)), n)  # the largest for 64 states
    steps = 0
    for target in (1, 2, 30):
        while steps < target:
            negative = sampler.negative(model, data, generator=g)
            steps += 1
        assert negative.shape == (n, NV)
        expected = exact.after(p_start, steps)
        assert _tv(_histogram(negative), expected) < tolerance, steps
    # after one and two steps the chains are told apart: the chains were not restarted
    assert _tv(exact.after(p_start, 1), exact.after(p_start, 2)) > 2 * tolerance
    # after 30 steps the chain is at the model distribution
    assert _tv(exact.after(p_start, 30), exact.p_v) < 1e-6
    assert _tv(_histogram(sampler.chains), exact.p_v) < tolerance + 1e-6


@pytest.mark.stochastic
def test_pcd_with_k_steps_per_call(mixing, seed):
    model, exact, data = mixing
    n = 100_000
    sampler = PCD(k=3, n_chains=n)
    negative = sampler.negative(model, data, generator=_gen(1000 * seed + 8))
    p_start = np.zeros(len(V))
    np.add.at(p_start, _codes(data), 1 / len(data))
    expected = exact.after(p_start, 3)
    tolerance = _tv_tolerance(expected, n)
    assert _tv(_histogram(negative), expected) < tolerance
    assert _tv(exact.after(p_start, 2), expected) > 1.5 * tolerance


def test_pcd_defaults_to_the_minibatch_size_and_reset(mixing):
    model, _, data = mixing
    sampler = PCD()
    assert sampler.negative(model, data, generator=_gen(9)).shape == data.shape
    bigger = data.repeat(3, 1)
    assert sampler.negative(model, bigger, generator=_gen(9)).shape == data.shape  # persists
    sampler.reset()
    assert sampler.state_dict() == {}
    assert sampler.negative(model, bigger, generator=_gen(9)).shape == bigger.shape


@pytest.mark.stochastic
def test_gibbs_sample_from_a_random_start(mixing, seed):
    """Sampler.sample starts at the visible biases alone and runs `steps` Gibbs steps."""
    model, exact, _ = mixing
    n = 50_000
    b = model.visible_bias.detach().numpy()
    p_start = np.prod(np.where(V == 1, _sigmoid(b), 1 - _sigmoid(b)), axis=1)
    start = random_visible(model, n, generator=_gen(1000 * seed + 10))
    assert _tv(_histogram(start), p_start) < _tv_tolerance(p_start, n)
    for steps in (2, 40):
        samples = CD(1).sample(model, n, steps=steps, generator=_gen(1000 * seed + 11))
        expected = exact.after(p_start, steps)
        assert _tv(_histogram(samples), expected) < _tv_tolerance(expected, n)
    assert _tv(expected, exact.p_v) < 1e-9


# ---------------------------------------------------------------------------------- PT


def test_bimodal_model_defeats_plain_gibbs(bimodal):
    model, W, b, c = bimodal
    exact = Exact(W, b, c)
    modes = exact.p_v[[0b111000, 0b000111]]
    assert modes.min() > 0.3  # two heavy modes
    start = np.eye(len(V))[0b111000]
    assert _tv(exact.after(start, 200), exact.p_v) > 0.3  # Gibbs is still stuck after 200 steps


@pytest.mark.stochastic
def test_pt_chains_reach_the_tempered_distributions(bimodal, seed):
    model, W, b, c = bimodal
    n, rounds = 20_000, 100
    sampler = PT(k=1, n_chains=n, n_temperatures=5)
    assert sampler.betas == [1.0, 0.75, 0.5, 0.25, 0.0]
    data = torch.tensor([[1.0, 1, 1, 0, 0, 0]], dtype=F64)  # every chain starts in one mode
    g = _gen(1000 * seed + 12)
    for _ in range(rounds):
        negative = sampler.negative(model, data, generator=g)
    assert negative.shape == (n, NV)
    assert sampler.chains.shape == (5, n, NV)
    # the chain from the start by plain Gibbs would be > 0.3 away after 200 steps;
    # mixing slack beyond the sampling bound is allowed at 0.01
    for t, beta in enumerate(sampler.betas):
        p_beta = Exact(W, b, c, beta).p_v
        assert _tv(_histogram(sampler.chains[t]), p_beta) < _tv_tolerance(p_beta, n) + 0.01, beta
    rates = sampler.swap_rates
    assert rates.shape == (4,)
    assert bool(((rates > 0) & (rates < 1)).all())
    # every pair was proposed every other round, for every chain
    assert sampler.swap_attempts.tolist() == [rounds // 2 * n] * 4


@pytest.mark.stochastic
def test_pt_swap_rates_equal_the_exact_acceptance(bimodal, seed):
    """At equilibrium, pair (i, i+1) accepts E[min(1, exp(F_i(v_i) + F_j(v_j) - F_i(v_j) -
    F_j(v_i)))] with v_i ~ p_beta_i and v_j ~ p_beta_j independent."""
    model, W, b, c = bimodal
    betas = [1.0, 0.7, 0.4, 0.0]
    n = 10_000
    sampler = PT(k=1, n_chains=n, betas=betas)
    data = torch.tensor([[1.0, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]], dtype=F64)
    g = _gen(1000 * seed + 13)
    for _ in range(60):  # burn in
        sampler.negative(model, data, generator=g)
    state = sampler.state_dict()
    state["swap_attempts"] = torch.zeros(3, dtype=F64)
    state["swap_accepts"] = torch.zeros(3, dtype=F64)
    sampler.load_state_dict(state)
    for _ in range(60):
        sampler.negative(model, data, generator=g)
    ladder = [Exact(W, b, c, beta) for beta in betas]
    for i in range(3):
        lo, hi = ladder[i], ladder[i + 1]
        # log acceptance for v_i (rows) and v_j (columns)
        log_ratio = lo.free[:, None] + hi.free[None, :] - lo.free[None, :] - hi.free[:, None]
        rate = float(lo.p_v @ np.minimum(1.0, np.exp(log_ratio)) @ hi.p_v)
        # chains are independent; each one's average acceptance has variance <= 1/4
        assert abs(float(sampler.swap_rates[i]) - rate) < 5.5 * 0.5 / math.sqrt(n) + 0.005, i


@pytest.mark.stochastic
def test_pt_sample_matches_the_model_distribution(bimodal, seed):
    model, W, b, c = bimodal
    exact = Exact(W, b, c)
    n = 20_000
    sampler = PT(k=2, betas=[1.0, 0.75, 0.5, 0.25, 0.0])
    samples = sampler.sample(model, n, steps=200, generator=_gen(1000 * seed + 14))
    assert samples.shape == (n, NV)
    assert _tv(_histogram(samples), exact.p_v) < _tv_tolerance(exact.p_v, n) + 0.01
    # sampling leaves the training chains and swap statistics alone
    assert sampler.chains is None
    assert sampler.swap_attempts.sum() == 0 and sampler.parity == 0


# ---------------------------------------------------------------------------------- state


@pytest.mark.parametrize(
    "make",
    [lambda: PCD(k=2, n_chains=50), lambda: PT(k=1, n_chains=40, n_temperatures=4)],
    ids=["pcd", "pt"],
)
def test_state_dict_round_trip_continues_identically(mixing, make):
    model, _, data = mixing
    sampler = make()
    g = _gen(15)
    for _ in range(5):
        sampler.negative(model, data, generator=g)
    state = copy.deepcopy(sampler.state_dict())
    rng_state = g.get_state()
    original = [sampler.negative(model, data, generator=g).clone() for _ in range(7)]

    restored = make()
    restored.load_state_dict(copy.deepcopy(state))
    g.set_state(rng_state)
    resumed = [restored.negative(model, data, generator=g).clone() for _ in range(7)]
    for a, b in zip(original, resumed):
        assert torch.equal(a, b)
    if isinstance(sampler, PT):
        assert torch.equal(sampler.swap_rates, restored.swap_rates)
        assert sampler.parity == restored.parity
        assert torch.equal(sampler.chains, restored.chains)
    # a fresh sampler without the state would differ
    fresh = make()
    g.set_state(rng_state)
    assert not torch.equal(fresh.negative(model, data, generator=g), original[0])


def test_samplers_without_chains_have_empty_state(mixing):
    assert CD(3).state_dict() == {}
    assert PCD().state_dict() == {}
    assert PT().state_dict() == {}
    pt = PT(n_temperatures=3)
    pt.load_state_dict({})
    assert pt.chains is None


# ---------------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    "build",
    [
        lambda: CD(0),
        lambda: CD(-1),
        lambda: PCD(k=0),
        lambda: PCD(n_chains=0),
        lambda: PT(n_chains=0),
        lambda: PT(k=0),
        lambda: PT(n_temperatures=1),
        lambda: PT(betas=[0.9, 0.5, 0.0]),
        lambda: PT(betas=[1.0, 0.5, 0.7]),
        lambda: PT(betas=[1.0, 1.0, 0.5]),
        lambda: PT(betas=[1.0, 0.5, -0.1]),
        lambda: PT(betas=[1.0]),
        lambda: sampler_from_config({"type": "gibbs"}),
        lambda: make_sampler("annealing"),
    ],
)
def test_invalid_settings_raise_value_error(build):
    with pytest.raises(ValueError):
        build()


@pytest.mark.parametrize(
    "sampler",
    [CD(3), PCD(2, n_chains=10), PCD(), PT(2, n_chains=5, betas=[1.0, 0.6, 0.1]), PT()],
    ids=repr,
)
def test_sampler_config_round_trip(sampler):
    rebuilt = sampler_from_config(sampler.config())
    assert type(rebuilt) is type(sampler)
    assert rebuilt.config() == sampler.config()


def test_make_sampler_by_name():
    assert isinstance(make_sampler("cd", k=4), CD) and make_sampler("cd", k=4).k == 4
    pcd = make_sampler("pcd", k=2, n_chains=7)
    assert type(pcd) is PCD and (pcd.k, pcd.n_chains) == (2, 7)
    pt = make_sampler("pt", n_temperatures=3)
    assert isinstance(pt, PT) and pt.betas == [1.0, 0.5, 0.0]
    pcd.chains = torch.zeros(7, 3)
    fresh = make_sampler(pcd)  # a fresh sampler with the same settings: chains are not shared
    assert fresh is not pcd and fresh.config() == pcd.config() and fresh.chains is None


@pytest.mark.parametrize("k", [1, 3])
def test_cd_mean_reconstruction_is_the_conditional_mean_of_the_last_hidden_sample(k):
    """CD(k, "mean") runs the same chain as CD(k, "sample") up to h_(k-1), then returns
    E[v | h_(k-1)] instead of a sample (Hinton's practical guide, section 3.2)."""
    model = RBM(6, 4, weight_std=1.0, generator=_gen(0), dtype=torch.float64)
    start = model.visible.sample(torch.zeros(50, 6, dtype=torch.float64), generator=_gen(1))
    mean = CD(k, "mean").negative(model, start, generator=_gen(2))
    gen = _gen(2)
    h = model.sample_hidden(start, generator=gen)
    for _ in range(k - 1):
        h = model.sample_hidden(model.sample_visible(h, generator=gen), generator=gen)
    torch.testing.assert_close(mean, model.visible_mean(h), rtol=0, atol=0)
    assert not torch.equal(mean, mean.round())  # probabilities, not binary states
    with pytest.raises(ValueError, match="reconstruction"):
        CD(1, "median")
