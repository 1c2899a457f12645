"""Up-down fine-tuning of a generative DBN, judged by its exact log-likelihood."""

import copy

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


def test_up_down_raises_the_exact_log_likelihood_of_the_generative_model():
    dbn, X, gen = pretrained_dbn()
    patterns = X[:14]
    before = exact_generative_log_likelihood(dbn, patterns)
    history = up_down(dbn, X, epochs=200, batch_size=14, learning_rate=0.05, generator=gen)
    after = exact_generative_log_likelihood(dbn, patterns)
    assert dbn.untied and len(history) == 200
    assert not torch.equal(dbn.generative_weights[0], dbn.rbms[0].weight)
    assert after - before >= 0.3, (before, after)


def test_up_down_refuses_bad_settings():
    dbn, X, _ = pretrained_dbn()
    with pytest.raises(ValueError):
        up_down(dbn, X, epochs=1, learning_rate=0.0)
    label_dbn = DBN.from_sizes([9, 4, 4], n_labels=2)
    with pytest.raises(ValueError, match="labels"):
        up_down(label_dbn, X)
