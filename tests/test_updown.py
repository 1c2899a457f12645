"""Up-down fine-tuning of a generative DBN, judged by its exact log-likelihood.

Seeds: the stochastic tests (``@pytest.mark.stochastic``) train for seconds to minutes, so
they run with one seed, ``one_seed`` = ``DEEPBELIEF_TEST_SEED`` (default 0; the CI's second
pass uses 1); their margins were measured with seeds 0, 1 and 2 (tests/conftest.py).
"""

import copy
import math

import pytest
import torch

from deepbelief.data import bars_and_stripes
from deepbelief.evaluation import exact_log_partition
from deepbelief.finetune import up_down
from deepbelief.nn import DBN
from deepbelief.training import make_generator, pretrain_dbn

CPU = torch.device("cpu")


@torch.no_grad()
def exact_generative_log_likelihood(dbn: DBN, X: torch.Tensor) -> float:
    """log p(v) = log sum_h1 p_top(h1) p(v | h1) of a two-layer DBN, by enumerating h1."""
    dbn = copy.deepcopy(dbn).double()
    top = dbn.rbms[1]
    h1 = top.visible.states(top.n_visible, dtype=torch.float64)
    log_prior = -top.free_energy(h1) - exact_log_partition(top)  # (states,)
    p = dbn.generative_mean(0, h1).clamp(1e-12, 1 - 1e-12)  # (states, visible)
    X = X.double()
    log_cond = X @ torch.log(p).t() + (1 - X) @ torch.log1p(-p).t()  # (rows, states)
    return float(torch.logsumexp(log_cond + log_prior, 1).mean())


def pretrained_dbn(seed=0):
    gen = make_generator(seed, CPU)
    dbn = DBN.from_sizes([9, 8, 8], generator=gen)
    X = torch.tensor(bars_and_stripes(3)).repeat(10, 1)
    pretrain_dbn(dbn, X, [dict(epochs=100, batch_size=14)] * 2, generator=gen)
    return dbn, X, gen


def test_exact_generative_likelihood_of_a_tied_dbn_sums_to_one():
    dbn, _, _ = pretrained_dbn()
    every = dbn.rbms[0].visible.states(9)
    log_probs = [exact_generative_log_likelihood(dbn, row[None]) for row in every]
    total = torch.logsumexp(torch.tensor(log_probs, dtype=torch.float64), 0)
    assert float(total) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.stochastic
def test_up_down_raises_the_exact_log_likelihood_of_the_generative_model(one_seed):
    dbn, X, gen = pretrained_dbn(one_seed)
    patterns = X[:14]
    before = exact_generative_log_likelihood(dbn, patterns)
    history = up_down(dbn, X, epochs=200, batch_size=14, learning_rate=0.05, generator=gen)
    after = exact_generative_log_likelihood(dbn, patterns)
    assert dbn.untied and len(history) == 200
    assert not torch.equal(dbn.generative_weights[0], dbn.rbms[0].weight)
    # No model beats -log(14) on the 14 distinct patterns (the uniform distribution over them),
    # so the gain is judged as the share of the gap to that optimum it closes: the pretrained
    # start differs from seed to seed (-3.06 .. -3.34), and with it the room to improve. The old
    # absolute margin (gain >= 0.3) failed for seed 1. Measured gain / share of the gap
    # (native, ATEN_CPU_CAPABILITY=avx2, =default):
    #   seed 0: -3.189 -> -2.781, 0.41 / 74%;  0.41 / 74%;  0.39 / 74%
    #   seed 1: -3.060 -> -2.835, 0.22 / 53%;  0.25 / 56%;  0.25 / 56%
    #   seed 2: -3.343 -> -2.861, 0.48 / 69%;  0.47 / 69%;  0.48 / 70%
    # An up-down step that does nothing or climbs the wrong way closes none of it.
    optimum = -math.log(14)
    print(f"measured: up-down {before:.4f} -> {after:.4f}")
    assert after <= optimum + 1e-9
    assert after - before >= 0.35 * (optimum - before), (before, after)


def test_up_down_refuses_bad_settings():
    dbn, X, _ = pretrained_dbn()
    with pytest.raises(ValueError):
        up_down(dbn, X, epochs=1, learning_rate=0.0)
    label_dbn = DBN.from_sizes([9, 4, 4], n_labels=2)
    with pytest.raises(ValueError, match="labels"):
        up_down(label_dbn, X)
