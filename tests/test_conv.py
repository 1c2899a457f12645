"""Convolutional RBMs and DBNs against brute force, the dense RBM, and learning."""

import itertools
import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from deepbelief import load, save
from deepbelief.evaluation import exact_log_likelihood, exact_log_partition, tv_distance
from deepbelief.finetune import finetune
from deepbelief.nn import DBN, RBM, ConvDBN, ConvRBM
from deepbelief.training import RBMTrainer, pretrain_dbn

F64 = torch.float64


def small_model(pool: int, seed: int = 0) -> ConvRBM:
    """A 3x3 binary image, two 2x2 filters (2x2 maps), biases away from zero."""
    g = torch.Generator().manual_seed(seed)
    model = ConvRBM((1, 3, 3), 2, 2, pool=pool, weight_std=1.0, generator=g, dtype=F64)
    with torch.no_grad():
        model.channel_bias.fill_(0.3)
        model.map_bias.copy_(torch.tensor([-0.5, 0.7], dtype=F64))
    return model


def hand_energies(model: ConvRBM, V: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """``E(v, h)`` for every pair of rows, written out filter by filter and position by
    position (no convolution routine), shape ``(len(V), len(H))``."""
    c, height, width = model.image_shape
    kh, kw = model.kernel_size
    images = V.reshape(-1, c, height, width)
    w, b, a = model.weight.detach(), model.map_bias.detach(), model.channel_bias.detach()
    response = torch.zeros(len(V), model.n_filters, *model.map_shape, dtype=V.dtype)
    for k, i, j in itertools.product(range(model.n_filters), *map(range, model.map_shape)):
        response[:, k, i, j] = (w[k] * images[:, :, i : i + kh, j : j + kw]).sum((1, 2, 3))
    maps = H.reshape(-1, model.n_filters, *model.map_shape)
    visible = (a[:, None, None] * images).sum((1, 2, 3))
    hidden = (b[:, None, None] * maps).sum((1, 2, 3))
    return -visible[:, None] - hidden[None, :] - response.flatten(1) @ maps.flatten(1).t()


def valid_hidden_states(model: ConvRBM) -> torch.Tensor:
    """Every hidden state; with pooling, only those with at most one unit on per block."""
    states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=model.n_hidden)), dtype=F64)
    if model.pool == 1:
        return states
    maps = states.reshape(-1, model.n_filters, *model.map_shape)
    p = model.pool
    blocks = maps.unfold(2, p, p).unfold(3, p, p).sum((-1, -2))
    return states[(blocks <= 1).all(1).all(1).all(1)]


def brute_force(model: ConvRBM):
    """``(V, H, -E)``: all visible states, all hidden states and the negative energies."""
    V = torch.tensor(list(itertools.product([0.0, 1.0], repeat=model.n_visible)), dtype=F64)
    H = valid_hidden_states(model)
    return V, H, -hand_energies(model, V, H)


@pytest.mark.parametrize("pool", [1, 2])
def test_energies_conditionals_and_log_z_match_brute_force(pool):
    model = small_model(pool)
    V, H, neg = brute_force(model)
    assert len(H) == (256 if pool == 1 else 25)
    energies = torch.stack([model.energy(V, h.expand(len(V), -1)) for h in H], 1)
    torch.testing.assert_close(-energies, neg, rtol=0, atol=1e-12)
    torch.testing.assert_close(model.free_energy(V), -torch.logsumexp(neg, 1), rtol=0, atol=1e-12)
    torch.testing.assert_close(
        model.free_energy_hidden(H), -torch.logsumexp(neg, 0), rtol=0, atol=1e-12
    )
    log_z = float(torch.logsumexp(neg.flatten(), 0))
    assert exact_log_partition(model) == pytest.approx(log_z, abs=1e-10)
    # p(h | v) and p(v | h): the models' means against the enumerated distributions
    p_h = torch.softmax(neg, 1)  # rows: v
    torch.testing.assert_close(model.hidden_mean(V), p_h @ H, rtol=0, atol=1e-12)
    p_v = torch.softmax(neg, 0)  # columns: h
    torch.testing.assert_close(model.visible_mean(H), p_v.t() @ V, rtol=0, atol=1e-12)


def test_probabilistic_max_pooling_samples_the_enumerated_block_distribution():
    model = small_model(pool=2)
    V, H, neg = brute_force(model)
    row = 300
    exact = torch.softmax(neg[row], 0)
    n = 40_000
    g = torch.Generator().manual_seed(3)
    draws = model.sample_hidden(V[row].expand(n, -1), generator=g)
    codes = {tuple(h.tolist()): i for i, h in enumerate(H)}
    counts = torch.zeros(len(H), dtype=F64)
    for state, count in zip(*np.unique(draws.numpy(), axis=0, return_counts=True), strict=True):
        counts[codes[tuple(state.tolist())]] = count  # KeyError: an impossible state
    # TV of an n-sample histogram over 25 states: about sqrt(25 / n) / 2 = 0.0125 at most
    assert tv_distance(counts / n, exact) < 0.03
    # the pooling unit of each block: on with the enumerated probability
    pooled = model.output(V[row : row + 1])[0]
    block_on = torch.stack([(exact * H[:, k * 4 : k * 4 + 4].sum(1)).sum() for k in range(2)])
    torch.testing.assert_close(pooled, block_on, rtol=0, atol=1e-12)
    sampled = model.output(V[row].expand(n, -1), sample=True, generator=g).mean(0)
    assert (sampled - block_on).abs().max() < 0.02


def test_a_kernel_the_size_of_the_image_is_the_dense_rbm():
    g = torch.Generator().manual_seed(1)
    conv = ConvRBM((2, 4, 4), 3, 4, weight_std=0.5, generator=g, dtype=F64)
    with torch.no_grad():
        conv.channel_bias.copy_(torch.tensor([0.2, -0.4], dtype=F64))
        conv.map_bias.copy_(torch.tensor([0.1, -0.3, 0.5], dtype=F64))
    dense = RBM(32, 3, dtype=F64)
    with torch.no_grad():
        dense.weight.copy_(conv.weight.reshape(3, 32).t())
        dense.visible_bias.copy_(conv.visible_bias)
        dense.hidden_bias.copy_(conv.map_bias)
    v = torch.bernoulli(torch.full((20, 32), 0.4, dtype=F64), generator=g)
    h = torch.bernoulli(torch.full((20, 3), 0.5, dtype=F64), generator=g)
    for name in ("free_energy", "hidden_mean"):
        torch.testing.assert_close(getattr(conv, name)(v), getattr(dense, name)(v))
    torch.testing.assert_close(conv.visible_mean(h), dense.visible_mean(h))
    torch.testing.assert_close(conv.free_energy_hidden(h), dense.free_energy_hidden(h))
    torch.testing.assert_close(conv.energy(v, h), dense.energy(v, h))


def test_the_response_to_a_shifted_image_is_the_shifted_response():
    g = torch.Generator().manual_seed(2)
    model = ConvRBM((1, 12, 12), 4, 3, weight_std=1.0, generator=g, dtype=F64)
    image = torch.zeros(1, 12, 12, dtype=F64)
    image[0, 3:7, 2:6] = torch.rand(4, 4, generator=g, dtype=F64)
    shifted = torch.roll(image, shifts=(2, 3), dims=(1, 2))  # the content stays inside
    maps = model.hidden_mean(image.reshape(1, -1)).reshape(4, 10, 10)
    moved = model.hidden_mean(shifted.reshape(1, -1)).reshape(4, 10, 10)
    torch.testing.assert_close(moved[:, 2:, 3:], maps[:, :-2, :-3], rtol=0, atol=1e-12)
    assert not torch.allclose(moved, maps)  # the test can fail: the response did move


@pytest.mark.parametrize("pool", [1, 2])
def test_an_update_follows_the_exact_free_energy_gradient(pool):
    """One SGD step (no momentum, no decay) on a batch with fixed negative particles moves the
    parameters by the difference of the enumerated hidden expectations' statistics."""
    model = small_model(pool)
    V, H, neg = brute_force(model)
    data, particles = V[[5, 100, 300, 511]], V[[0, 7, 200]]
    p_h = torch.softmax(neg, 1)

    def statistics(rows):  # E[dE/dtheta]-style sufficient statistics, written out by hand
        idx = [int((V == r).all(1).nonzero()) for r in rows]
        mean_h = (p_h[idx] @ H).reshape(len(rows), 2, 2, 2)
        images = rows.reshape(len(rows), 3, 3)
        w = torch.zeros(2, 1, 2, 2, dtype=F64)
        for k, a, b in itertools.product(range(2), range(2), range(2)):
            w[k, 0, a, b] = (mean_h[:, k] * images[:, a : a + 2, b : b + 2]).sum((1, 2)).mean()
        return w, mean_h.sum((2, 3)).mean(0), images.sum((1, 2)).mean().reshape(1)

    params = (model.weight, model.map_bias, model.channel_bias)
    before = [p.detach().clone() for p in params]
    trainer = RBMTrainer(
        model,
        epochs=1,
        batch_size=4,
        learning_rate=1.0,
        momentum=0.0,
        final_momentum=0.0,
        weight_decay=0.0,
        init_visible_bias=False,
        monitor_rows=0,
    )
    trainer.sampler.negative = lambda *args, **kw: particles  # the negative phase held fixed
    trainer.fit(data)
    moved = [p.detach() - b for p, b in zip(params, before, strict=True)]
    expected = [d - m for d, m in zip(statistics(data), statistics(particles), strict=True)]
    for got, want in zip(moved, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_pcd_training_raises_the_exact_log_likelihood():
    truth = small_model(pool=2, seed=5)
    with torch.no_grad():
        truth.weight.mul_(2.0)
    g = torch.Generator().manual_seed(0)
    data = truth.gibbs(torch.zeros(500, 9, dtype=F64), k=200, generator=g)
    model = ConvRBM((1, 3, 3), 2, 2, pool=2, generator=g, dtype=F64)
    before = exact_log_likelihood(model, data)
    trainer = RBMTrainer(model, sampler="pcd", epochs=30, batch_size=20, learning_rate=0.05)
    trainer.fit(data)
    after = exact_log_likelihood(model, data)
    best = exact_log_likelihood(truth, data)
    assert after > before + 0.5 * (best - before)  # half of the way to the true model
    assert trainer.history[-1]["pseudo_log_likelihood"] < 0


def test_conv_rbm_files_and_checkpoints_round_trip(tmp_path):
    model = ConvRBM((1, 6, 6), 3, 3, pool=2, visible="gaussian")
    save(model, tmp_path / "conv.dbm")
    loaded = load(tmp_path / "conv.dbm")
    assert isinstance(loaded, ConvRBM) and loaded.config() == model.config()
    torch.testing.assert_close(loaded.state_dict(), model.state_dict())
    X = torch.randn(60, 36, generator=torch.Generator().manual_seed(0))
    whole = RBMTrainer(ConvRBM((1, 6, 6), 3, 3, pool=2, visible="gaussian"), sampler="pcd",
                       epochs=2, batch_size=20, learning_rate=0.01, lr_schedule="constant",
                       generator=torch.Generator().manual_seed(4))  # fmt: skip
    first = RBMTrainer(ConvRBM((1, 6, 6), 3, 3, pool=2, visible="gaussian"), sampler="pcd",
                       epochs=1, batch_size=20, learning_rate=0.01, lr_schedule="constant",
                       generator=torch.Generator().manual_seed(4))  # fmt: skip
    first.model.load_state_dict(whole.model.state_dict())
    whole.fit(X)
    first.fit(X)
    first.save_checkpoint(tmp_path / "ckpt")
    resumed = RBMTrainer.from_checkpoint(tmp_path / "ckpt")
    resumed.epochs = 2
    resumed.fit(X)
    torch.testing.assert_close(resumed.model.state_dict(), whole.model.state_dict())


def test_layer_checks_name_the_problem():
    with pytest.raises(ValueError, match="pool size must divide"):
        ConvRBM((1, 8, 8), 2, 4, pool=2)  # 5x5 maps
    with pytest.raises(ValueError, match="does not fit"):
        ConvRBM((1, 4, 4), 2, 5)
    with pytest.raises(ValueError, match="visible units"):
        ConvRBM((1, 4, 4), 2, 2, visible="relu")
    a, b = ConvRBM((1, 8, 8), 4, 3, pool=2), ConvRBM((3, 3, 3), 2, 2)
    with pytest.raises(ValueError, match="takes images of"):
        ConvDBN([a, b])
    with pytest.raises(ValueError, match="conv layers must come first"):
        DBN([RBM(64, 64), ConvRBM((1, 8, 8), 2, 3)])


def digits():
    X, y = load_digits(return_X_y=True)
    order = torch.randperm(len(X), generator=torch.Generator().manual_seed(1))
    return torch.tensor(X / 16, dtype=torch.float32)[order], torch.tensor(y)[order]


def test_random_init_starts_pooling_units_at_one_half_with_the_sigmoid_bound():
    """``random_init_``: a pooled conv layer's map biases are -log(pool^2), so that a blank
    image's pooling units are exactly 1/2 (a sigmoid at 0), and its weights take Glorot's
    bound times 4; an unpooled conv layer keeps zero biases."""
    g = torch.Generator().manual_seed(0)
    dbn = ConvDBN.from_specs((1, 12, 12), [(6, 3, 2), (4, 3, 1)], [8], generator=g)
    dbn.random_init_(g)
    pooled, plain = dbn.rbms[0], dbn.rbms[1]
    torch.testing.assert_close(pooled.map_bias.detach(), torch.full((6,), -math.log(4)))
    blank = torch.zeros(1, 144)
    torch.testing.assert_close(pooled.output(blank), torch.full((1, 6 * 5 * 5), 0.5))
    bound = 4 * math.sqrt(6 / (9 + 6 * 9))
    assert 0.95 * bound < float(pooled.weight.detach().abs().max()) <= bound
    assert torch.equal(plain.map_bias.detach(), torch.zeros(4))


def test_the_cnn_is_the_conv_rbms_and_pretraining_beats_random_weights():
    X, y = digits()
    accuracy = {}
    for pretrained in (True, False):
        g = torch.Generator().manual_seed(0)
        dbn = ConvDBN.from_specs((1, 8, 8), [(16, 3, 2)], [128], generator=g)
        if pretrained:
            settings = [
                dict(epochs=10, batch_size=20, learning_rate=0.05),
                dict(epochs=10, batch_size=20),
            ]
            pretrain_dbn(dbn, X, settings, generator=g)
        else:
            dbn.random_init_(g)
        net = dbn.to_feedforward("classification", 10, generator=g)
        conv = net[1]
        assert conv.weight is dbn.rbms[0].weight and conv.bias is dbn.rbms[0].map_bias
        start = conv.weight.detach().clone()
        finetune(net, X[:1400], y[:1400], "classification", epochs=1, batch_size=32,
                 learning_rate=0.1, momentum=0.9, generator=g)  # fmt: skip
        assert not torch.equal(dbn.rbms[0].weight.detach(), start)  # trained in place
        with torch.no_grad():
            accuracy[pretrained] = float(
                (net.eval()(X[1400:]).argmax(1) == y[1400:]).double().mean()
            )
    # measured 0.75-0.82 against 0.28-0.55 (seeds 0-5; margins 0.22-0.50): after one epoch
    # the random start (pooling units at 1/2, DBN.random_init_) is far behind
    assert accuracy[True] >= 0.6
    assert accuracy[True] >= accuracy[False] + 0.15
