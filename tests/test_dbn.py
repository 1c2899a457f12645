"""The DBN module: structure, up and down passes against hand-written ones, unfolding that
shares (never copies) the RBMs' Parameters, greedy pretraining that propagates each layer's
input once, learning by stated margins, the generative classifier against brute force,
generation with clamped labels, and save/load.

Seeds: the stochastic tests (``@pytest.mark.stochastic``) take the ``seed`` fixture and run
once for each of ``SEEDS = (0, 1, 2)`` (tests/conftest.py), each seed offsetting every
generator they draw from by ``1000 * seed``.
"""

import copy
import itertools
import math

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

import deepbelief
from deepbelief.nn import (
    DBN,
    RBM,
    BernoulliUnits,
    Dropout,
    GaussianUnits,
    MixedUnits,
    ReLUUnits,
    SoftmaxUnits,
)
from deepbelief.training import Callback, RBMTrainer, make_generator, pretrain_dbn, propagate

CPU = torch.device("cpu")
F64 = torch.float64


def gen(seed=0):
    return make_generator(seed, CPU)


def randomize(dbn, seed=0, scale=0.7):
    """Give every Parameter (weights, biases, log-variances) non-trivial random values."""
    g = gen(seed)
    with torch.no_grad():
        for p in dbn.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return dbn


def binary_data(n, d, seed=1, dtype=F64):
    return (torch.rand(n, d, generator=gen(seed), dtype=dtype) < 0.4).to(dtype)


def up(x, rbm):
    """Hand-written up pass of a Bernoulli-hidden layer: sigmoid(x W + c)."""
    return torch.sigmoid(x @ rbm.weight + rbm.hidden_bias)


def down_bernoulli(h, rbm):
    """Hand-written down pass to Bernoulli visible units: sigmoid(h W^T + b)."""
    return torch.sigmoid(h @ rbm.weight.t() + rbm.visible_bias)


def kinds(net):
    """Module types of a network (a parametrized Linear counts as nn.Linear)."""
    return [nn.Linear if isinstance(m, nn.Linear) else type(m) for m in net]


def logit_of_mean(data, eps=1e-3):
    p = data.mean(0).clamp(eps, 1 - eps)
    return torch.log(p / (1 - p))


# ============================================================================ structure
def test_from_sizes_builds_rbms_of_the_right_shapes_and_unit_types():
    dbn = DBN.from_sizes([6, 5, 4, 3], visible="gaussian", hidden=["relu", "gaussian", "bernoulli"])
    assert len(dbn.rbms) == 3 and isinstance(dbn.rbms, nn.ModuleList)
    shapes = [(rbm.n_visible, rbm.n_hidden) for rbm in dbn.rbms]
    assert shapes == [(6, 5), (5, 4), (4, 3)]
    assert [tuple(rbm.weight.shape) for rbm in dbn.rbms] == shapes
    hidden_types = [type(rbm.hidden) for rbm in dbn.rbms]
    assert hidden_types == [ReLUUnits, GaussianUnits, BernoulliUnits]
    assert isinstance(dbn.rbms[0].visible, GaussianUnits)
    # each RBM's visible units are the unit type of the hidden layer below
    assert isinstance(dbn.rbms[1].visible, ReLUUnits)
    assert isinstance(dbn.rbms[2].visible, GaussianUnits)
    assert dbn.sizes == [6, 5, 4, 3] and dbn.n_labels == 0

    same = DBN.from_sizes([7, 3, 2], hidden="relu")
    assert [type(r.hidden) for r in same.rbms] == [ReLUUnits, ReLUUnits]
    assert [type(r.visible) for r in same.rbms] == [BernoulliUnits, ReLUUnits]


@pytest.mark.stochastic
def test_random_init_uses_glorot_bounds_for_the_hidden_activation(seed):
    dbn = DBN.from_sizes([300, 200, 100], hidden=["bernoulli", "relu"], generator=gen(0))
    dbn.random_init_(gen(1000 * seed + 1))
    sigmoid_bound = 4 * math.sqrt(6 / (300 + 200))
    relu_bound = math.sqrt(6 / 200)
    for rbm, bound in zip(dbn.rbms, (sigmoid_bound, relu_bound)):
        w = rbm.weight.detach()
        assert 0.99 * bound < float(w.abs().max()) <= bound
        assert float(w.std()) == pytest.approx(bound / math.sqrt(3), rel=0.02)  # U(-b, b)
        assert torch.equal(rbm.hidden_bias, torch.zeros_like(rbm.hidden_bias))
    again = DBN.from_sizes([300, 200, 100], hidden=["bernoulli", "relu"], generator=gen(0))
    again.random_init_(gen(1000 * seed + 1))
    assert torch.equal(again.rbms[0].weight, dbn.rbms[0].weight)


def test_from_sizes_is_seeded_by_its_generator():
    a = DBN.from_sizes([5, 4, 3], generator=gen(3))
    b = DBN.from_sizes([5, 4, 3], generator=gen(3))
    c = DBN.from_sizes([5, 4, 3], generator=gen(4))
    for name, tensor in a.state_dict().items():
        assert torch.equal(tensor, b.state_dict()[name]), name
    assert not torch.equal(a.rbms[0].weight, c.rbms[0].weight)


@pytest.mark.parametrize(
    ("hidden", "pen_type"), [("bernoulli", BernoulliUnits), (["relu", "bernoulli"], ReLUUnits)]
)
def test_label_dbn_top_visible_is_penultimate_units_plus_a_softmax_group(hidden, pen_type):
    dbn = DBN.from_sizes([6, 5, 4], hidden=hidden, n_labels=3)
    top = dbn.rbms[-1]
    assert (dbn.rbms[0].n_visible, dbn.rbms[0].n_hidden) == (6, 5)
    assert (top.n_visible, top.n_hidden) == (5 + 3, 4)
    assert isinstance(top.visible, MixedUnits)
    (pen, n_pen), (lab, n_lab) = top.visible.parts
    assert isinstance(pen, pen_type) and n_pen == 5
    assert isinstance(lab, SoftmaxUnits) and n_lab == 3
    assert dbn.n_labels == 3 and dbn.sizes == [6, 5, 4]  # label units not counted
    # the bottom RBM has no label units
    assert isinstance(dbn.rbms[0].visible, BernoulliUnits)


def test_a_dbn_built_from_explicit_rbms_with_a_label_slot_is_accepted():
    top = RBM(3 + 2, 2, MixedUnits([("bernoulli", 3), (SoftmaxUnits(), 2)]))
    dbn = DBN([RBM(4, 3), top], n_labels=2)
    assert dbn.sizes == [4, 3, 2]


@pytest.mark.parametrize(
    "build",
    [
        lambda: DBN([RBM(4, 3), RBM(4, 2)]),  # 3 hidden units below, 4 visible above
        lambda: DBN([RBM(4, 3), RBM(3, 2)], n_labels=2),  # no room for the labels on top
        lambda: DBN([RBM(4, 3), RBM(3, 2), RBM(3, 1)]),  # the mismatch higher up
        lambda: DBN([RBM(2, 3)], n_labels=2),  # a classification RBM with no input left
        lambda: DBN([]),
        lambda: DBN.from_sizes([4, 3], n_labels=-1),
        lambda: DBN.from_sizes([4, 3, 2], hidden=["bernoulli"]),  # one type for two layers
        lambda: DBN.from_sizes([4, 3, 2], hidden=["bernoulli"] * 3),
        lambda: DBN.from_sizes([4]),
        lambda: DBN.from_sizes([4, 0]),
    ],
)
def test_invalid_structures_raise_value_error(build):
    with pytest.raises(ValueError):
        build()


# ============================================================================ passes
def bernoulli_dbn(sizes=(6, 5, 4, 3), n_labels=0, seed=0):
    return randomize(DBN.from_sizes(list(sizes), n_labels=n_labels, dtype=F64), seed)


def test_transform_equals_a_hand_written_chain_of_sigmoids():
    dbn = bernoulli_dbn()
    x = binary_data(9, 6)
    expected = [x]
    for rbm in dbn.rbms:
        expected.append(up(expected[-1], rbm))
    for layer in range(4):
        torch.testing.assert_close(dbn.transform(x, layer=layer), expected[layer])
    assert torch.equal(dbn.transform(x, layer=0), x)
    torch.testing.assert_close(dbn.transform(x), expected[3])
    torch.testing.assert_close(dbn.transform(x, layer=-1), expected[3])
    assert dbn.transform(x).shape == (9, 3)
    for bad in (4, -2):
        with pytest.raises(ValueError):
            dbn.transform(x, layer=bad)


def test_reconstruct_equals_a_hand_written_up_then_down_pass_of_means():
    dbn = bernoulli_dbn()
    x = binary_data(9, 6)
    h = x
    for rbm in dbn.rbms:
        h = up(h, rbm)
    for rbm in reversed(dbn.rbms):
        h = down_bernoulli(h, rbm)
    torch.testing.assert_close(dbn.reconstruct(x), h)


def test_down_equals_a_hand_written_down_pass():
    dbn = bernoulli_dbn()
    r0, r1, r2 = dbn.rbms
    h2 = torch.rand(5, 4, generator=gen(2), dtype=F64)  # penultimate layer (default start)
    torch.testing.assert_close(dbn.down(h2), down_bernoulli(down_bernoulli(h2, r1), r0))
    h3 = torch.rand(5, 3, generator=gen(3), dtype=F64)
    expected = down_bernoulli(down_bernoulli(down_bernoulli(h3, r2), r1), r0)
    torch.testing.assert_close(dbn.down(h3, from_layer=3), expected)
    assert torch.equal(dbn.down(h2, from_layer=0), h2)
    h1 = torch.rand(5, 5, generator=gen(4), dtype=F64)
    torch.testing.assert_close(dbn.down(h1, from_layer=1), down_bernoulli(h1, r0))


def label_dbn(seed=0, label_scale=3.0):
    """A 6-5-4 DBN with 3 label units; the label weights are large, so a pass that forgets to
    switch the labels off (or leaves them in the features) shows."""
    dbn = bernoulli_dbn((6, 5, 4), n_labels=3, seed=seed)
    with torch.no_grad():
        dbn.rbms[-1].weight[5:] *= label_scale
        dbn.rbms[-1].visible_bias[5:] += 2.0
    return dbn


def test_label_dbn_transform_sees_the_label_units_off():
    dbn = label_dbn()
    r0, top = dbn.rbms
    x = binary_data(8, 6)
    pen = up(x, r0)
    torch.testing.assert_close(dbn.transform(x, layer=1), pen)
    # label units off: only the 5 feature rows of the top weight matrix contribute
    expected = torch.sigmoid(pen @ top.weight[:5] + top.hidden_bias)
    torch.testing.assert_close(dbn.transform(x), expected)
    zeros = torch.zeros(8, 3, dtype=F64)
    torch.testing.assert_close(dbn.transform(x), up(torch.cat([pen, zeros], 1), top))


def test_label_dbn_reconstruct_drops_the_label_units_before_the_down_pass():
    dbn = label_dbn()
    r0, top = dbn.rbms
    x = binary_data(8, 6)
    h_top = torch.sigmoid(up(x, r0) @ top.weight[:5] + top.hidden_bias)
    pen = torch.sigmoid(h_top @ top.weight[:5].t() + top.visible_bias[:5])
    expected = down_bernoulli(pen, r0)
    out = dbn.reconstruct(x)
    assert out.shape == (8, 6)
    torch.testing.assert_close(out, expected)


def test_label_dbn_down_from_the_top_hidden_layer_drops_the_label_units():
    dbn = label_dbn()
    r0, top = dbn.rbms
    h = torch.rand(4, 4, generator=gen(5), dtype=F64)
    pen = torch.sigmoid(h @ top.weight[:5].t() + top.visible_bias[:5])
    torch.testing.assert_close(dbn.down(h, from_layer=2), down_bernoulli(pen, r0))


# ============================================================================ unfolding
def test_to_feedforward_shares_the_rbms_parameters_and_computes_transform():
    dbn = bernoulli_dbn()
    net = dbn.to_feedforward()
    linears = [m for m in net if isinstance(m, nn.Linear)]
    assert len(linears) == 3
    for linear, rbm in zip(linears, dbn.rbms):
        assert linear.parametrizations.weight.original is rbm.weight
        assert linear.bias is rbm.hidden_bias
        assert torch.equal(linear.weight, rbm.weight.t())
    assert kinds(net) == [nn.Linear, nn.Sigmoid] * 3
    # every Parameter of the network is one of the RBMs' own
    rbm_params = {id(p) for p in dbn.parameters()}
    assert {id(p) for p in net.parameters()} <= rbm_params
    net.eval()
    x = binary_data(10, 6)
    with torch.no_grad():
        torch.testing.assert_close(net(x), dbn.transform(x))


@pytest.mark.parametrize(("head", "n_outputs"), [("classification", 4), ("regression", 2)])
def test_to_feedforward_head_adds_a_new_output_layer(head, n_outputs):
    dbn = bernoulli_dbn()
    net = dbn.to_feedforward(head=head, n_outputs=n_outputs, generator=gen(0)).eval()
    x = binary_data(7, 6)
    out = net(x)
    assert out.shape == (7, n_outputs)
    out_layer = net[-1]
    assert isinstance(out_layer, nn.Linear) and out_layer.weight.shape == (n_outputs, 3)
    assert all(out_layer.weight is not p for p in dbn.parameters())
    assert float(out_layer.weight.detach().abs().max()) < 0.1  # small initial weights
    with torch.no_grad():
        torch.testing.assert_close(net[:-1](x), dbn.transform(x))
        torch.testing.assert_close(out, dbn.transform(x) @ out_layer.weight.t() + out_layer.bias)
    custom = nn.Linear(3, 1, dtype=F64)
    assert dbn.to_feedforward(head=custom)[-1] is custom
    with pytest.raises(ValueError):
        dbn.to_feedforward(head="ranking")


def test_an_optimizer_step_on_the_network_trains_the_rbms_own_tensors():
    dbn = bernoulli_dbn()
    weights = [rbm.weight for rbm in dbn.rbms]
    biases = [rbm.hidden_bias for rbm in dbn.rbms]
    before = [w.detach().clone() for w in weights]
    net = dbn.to_feedforward(head="classification", n_outputs=2, generator=gen(0))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    x = binary_data(12, 6)
    target = torch.arange(12) % 2
    loss = nn.functional.cross_entropy(net(x), target)
    optimizer.zero_grad()
    loss.backward()
    grads = [w.grad.clone() for w in weights]
    optimizer.step()
    for i, rbm in enumerate(dbn.rbms):
        assert rbm.weight is weights[i] and rbm.hidden_bias is biases[i]  # same objects
        assert float(grads[i].abs().max()) > 0
        torch.testing.assert_close(rbm.weight.detach(), before[i] - 0.5 * grads[i])
    # the DBN's own up pass now uses the fine-tuned weights
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net[:-1](x), dbn.transform(x))


def test_two_unfoldings_share_the_same_rbm_parameters():
    dbn = bernoulli_dbn()
    a, b = dbn.to_feedforward(), dbn.to_feedforward()
    assert a is not b
    for i in range(3):
        la, lb = a[2 * i], b[2 * i]
        assert la is not lb
        assert la.parametrizations.weight.original is lb.parametrizations.weight.original
        assert la.bias is lb.bias is dbn.rbms[i].hidden_bias
    x = binary_data(5, 6)
    with torch.no_grad():
        a[0].parametrizations.weight.original.add_(0.3)  # edit through network a
        torch.testing.assert_close(b(x), dbn.transform(x))  # b sees the change
        torch.testing.assert_close(a(x), b(x))


@pytest.mark.stochastic
def test_dropout_layers_are_present_when_requested_and_inactive_in_eval_mode(seed):
    dbn = bernoulli_dbn()
    g = gen(1000 * seed + 9)
    net = dbn.to_feedforward(dropout=0.5, input_dropout=0.2, generator=g)
    drops = [m for m in net if isinstance(m, Dropout)]
    assert [d.p for d in drops] == [0.2, 0.5, 0.5, 0.5]
    assert all(d.generator is g for d in drops)
    assert isinstance(net[0], Dropout)  # input dropout comes first
    assert kinds(net) == [Dropout] + [nn.Linear, nn.Sigmoid, Dropout] * 3
    assert not any(isinstance(m, Dropout) for m in dbn.to_feedforward())
    x = binary_data(2000, 6)
    with torch.no_grad():
        net.eval()
        torch.testing.assert_close(net(x), dbn.transform(x))
        net.train()
        out = net(x)
    # the last dropout zeroes about half of the top activations and doubles the rest: the
    # fraction of 6000 has sd 0.0065, so 0.45..0.55 is 7.7 sd (it was 0.3..0.7 of 60
    # activations, 3.1 sd: a false alarm in 1 of 500 seeds)
    zero = out == 0
    assert 0.45 < float(zero.double().mean()) < 0.55
    assert bool((out[~zero] > 0).all())


def test_relu_hidden_units_unfold_to_nn_relu():
    dbn = randomize(DBN.from_sizes([6, 5, 4], hidden=["relu", "bernoulli"], dtype=F64))
    net = dbn.to_feedforward().eval()
    assert kinds(net) == [nn.Linear, nn.ReLU, nn.Linear, nn.Sigmoid]
    x = binary_data(9, 6)
    r0, r1 = dbn.rbms
    h1 = torch.relu(x @ r0.weight + r0.hidden_bias)
    assert bool((h1 == 0).any()) and bool((h1 > 0).any())  # both sides of the kink
    with torch.no_grad():
        torch.testing.assert_close(net(x), torch.sigmoid(h1 @ r1.weight + r1.hidden_bias))


def test_learned_variance_gaussian_visible_unfolds_with_a_variance_scaling_first_module():
    dbn = randomize(DBN.from_sizes([6, 5, 4], visible="gaussian-learned", dtype=F64), scale=0.8)
    first = dbn.rbms[0]
    assert first.visible_logvar is not None
    assert float(first.visible_logvar.detach().abs().min()) > 0.01  # the scaling matters
    net = dbn.to_feedforward().eval()
    scale = net[0]
    assert not isinstance(scale, (nn.Linear, Dropout))
    assert scale.logvar is first.visible_logvar  # shared, not copied
    x = torch.randn(9, 6, generator=gen(4), dtype=F64)
    with torch.no_grad():
        torch.testing.assert_close(net[:3](x), first.hidden_mean(x))
        hand = torch.sigmoid(
            (x * torch.exp(-first.visible_logvar)) @ first.weight + first.hidden_bias
        )
        torch.testing.assert_close(net[:3](x), hand)
        torch.testing.assert_close(net(x), dbn.transform(x))
    assert any(p is first.visible_logvar for p in net.parameters())


def test_fixed_variance_gaussian_layers_unfold_to_identity_activations():
    dbn = randomize(DBN.from_sizes([6, 5, 4], visible="gaussian", hidden=["gaussian", "bernoulli"]))
    net = dbn.to_feedforward().eval()
    assert kinds(net) == [nn.Linear, nn.Identity, nn.Linear, nn.Sigmoid]
    x = torch.randn(9, 6, generator=gen(4))
    with torch.no_grad():
        torch.testing.assert_close(net(x), dbn.transform(x))


def test_learned_variance_units_between_layers_unfold_to_the_same_up_pass():
    dbn = randomize(
        DBN.from_sizes([6, 5, 4], hidden=["gaussian-learned", "bernoulli"], dtype=F64), scale=0.8
    )
    assert dbn.rbms[1].visible_logvar is not None
    net = dbn.to_feedforward().eval()
    x = binary_data(9, 6)
    with torch.no_grad():
        torch.testing.assert_close(net(x), dbn.transform(x))


def test_to_feedforward_refuses_label_dbns_and_units_without_an_activation():
    with pytest.raises(ValueError):
        label_dbn().to_feedforward()
    with pytest.raises(ValueError):
        DBN.from_sizes([6, 4], hidden=SoftmaxUnits([2, 2])).to_feedforward()


# ============================================================================ pretraining
def quick(**kw):
    settings = dict(epochs=2, batch_size=10, learning_rate=0.1, monitor_rows=0)
    settings.update(kw)
    return settings


def training_data(n=60, d=8, seed=3):
    """Rows from two prototypes with flipped pixels: structure for the RBMs to find."""
    g = gen(seed)
    protos = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 1, 1, 0, 0]], dtype=torch.float32)
    rows = protos[torch.arange(n) % 2][:, :d]
    flip = (torch.rand(n, d, generator=g) < 0.1).float()
    return (rows - flip).abs()


class CountCalls:
    """Wraps the hidden_input and hidden_mean methods of an RBM instance with counters."""

    def __init__(self, rbm, monkeypatch):
        self.count = 0
        for name in ("hidden_input", "hidden_mean"):
            monkeypatch.setattr(rbm, name, self._wrap(getattr(rbm, name)))

    def _wrap(self, method):
        def counted(*args, **kw):
            self.count += 1
            return method(*args, **kw)

        return counted


class Snapshots(Callback):
    """Records every RBM's call count when layer ``i`` begins and ends training."""

    def __init__(self, counters, i, log):
        self.counters, self.i, self.log = counters, i, log

    def _snap(self, event):
        self.log.append((self.i, event, [c.count for c in self.counters]))

    def on_train_begin(self, trainer):
        self._snap("begin")

    def on_train_end(self, trainer):
        self._snap("end")


def test_pretraining_propagates_each_layers_input_once_not_per_batch(monkeypatch):
    X = training_data(60)
    dbn = DBN.from_sizes([8, 6, 5, 4], generator=gen(0))
    counters = [CountCalls(rbm, monkeypatch) for rbm in dbn.rbms]
    log = []
    settings = quick(epochs=3, batch_size=6, monitor_rows=30)  # 10 batches per epoch
    pretrain_dbn(
        dbn,
        X,
        [settings] * 3,
        generator=gen(1),
        callbacks_for_layer=lambda i: [Snapshots(counters, i, log)],
    )
    assert [(i, event) for i, event, _ in log] == [
        (i, event) for i in range(3) for event in ("begin", "end")
    ]
    counts = {(i, event): c for i, event, c in log}
    for i in (1, 2):
        begin, end = counts[(i, "begin")], counts[(i, "end")]
        for j in range(i):  # the RBMs below layer i are not used while it trains
            assert end[j] == begin[j], f"layer {i}: RBM {j} used {end[j] - begin[j]} times"
        # ... but the counters do see the single propagation before it (60 rows: one chunk)
        between = begin[i - 1] - counts[(i - 1, "end")][i - 1]
        assert 1 <= between <= 4, between  # (so the counters work: the fused CD update of
        # binary units reads the weights directly and calls none of the counted methods)


def spy_on_visible_bias_init(rbm, monkeypatch):
    """Record the data an RBM's trainer initialises its visible biases from (its inputs)."""
    seen = []
    original = rbm.init_visible_bias_from_data

    def spy(data, *args, **kw):
        seen.append(data.detach().clone())
        return original(data, *args, **kw)

    monkeypatch.setattr(rbm, "init_visible_bias_from_data", spy)
    return seen


def test_the_second_rbm_learns_from_the_mean_activations_of_the_first(monkeypatch):
    X = training_data(60)
    dbn = randomize(DBN.from_sizes([8, 6, 5]), scale=1.0)  # features far from 1/2
    seen = spy_on_visible_bias_init(dbn.rbms[1], monkeypatch)
    pretrain_dbn(dbn, X, [quick(epochs=3), quick(epochs=0)], generator=gen(1))
    r0, r1 = dbn.rbms
    with torch.no_grad():
        hand = up(X, r0)
        assert len(seen) == 1
        torch.testing.assert_close(seen[0], hand)
        torch.testing.assert_close(seen[0], propagate(r0, X))
        # with epochs=0 the second RBM only got its visible biases from its data's means
        torch.testing.assert_close(r1.visible_bias, logit_of_mean(hand))
        assert float(r1.visible_bias.abs().max()) > 0.3


def test_pretrained_weights_equal_those_of_rbms_trained_one_by_one():
    X = training_data(60)
    layer_settings = [quick(epochs=3, sampler="cd"), quick(epochs=4, sampler="pcd", n_chains=7)]
    dbn = DBN.from_sizes([8, 6, 5], generator=gen(0))
    fresh = copy.deepcopy(dbn)
    pretrain_dbn(dbn, X, layer_settings, generator=gen(1))

    g = gen(1)
    r0, r1 = fresh.rbms
    RBMTrainer(r0, generator=g, **layer_settings[0]).fit(X)
    RBMTrainer(r1, generator=g, **layer_settings[1]).fit(propagate(r0, X))
    for name, tensor in fresh.state_dict().items():
        assert torch.equal(dbn.state_dict()[name], tensor), name


def test_per_layer_settings_are_honoured():
    X = training_data(60)
    dbn = DBN.from_sizes([8, 6, 5, 4], generator=gen(0))
    layer_settings = [
        quick(epochs=2, sampler="cd", batch_size=20, monitor_rows=60),
        quick(epochs=5, sampler="pcd", n_chains=7, batch_size=12, monitor_rows=60),
        quick(epochs=3, sampler="cd", k=3, batch_size=60, learning_rate=0.05, monitor_rows=60),
    ]
    trainers = pretrain_dbn(dbn, X, layer_settings, generator=gen(1))
    assert len(trainers) == 3
    assert [t.model for t in trainers] == list(dbn.rbms)
    assert all(t.model is rbm for t, rbm in zip(trainers, dbn.rbms))
    assert [len(t.history) for t in trainers] == [2, 5, 3]
    assert [t.epoch for t in trainers] == [2, 5, 3]
    assert [t.sampler.name for t in trainers] == ["cd", "pcd", "cd"]
    assert trainers[1].sampler.n_chains == 7
    assert [t.sampler.k for t in trainers] == [1, 1, 3]
    assert [t.batches_per_epoch for t in trainers] == [3, 5, 1]
    assert [t.settings["learning_rate"] for t in trainers] == [0.1, 0.1, 0.05]
    assert all("reconstruction_error" in t.history[-1] for t in trainers)


def test_sample_inputs_feeds_binary_samples_of_the_layer_below(monkeypatch):
    X = training_data(60)
    dbn = DBN.from_sizes([8, 6, 5], generator=gen(0))
    fresh = copy.deepcopy(dbn)
    seen = spy_on_visible_bias_init(dbn.rbms[1], monkeypatch)
    settings = [quick(epochs=3), quick(epochs=0)]
    pretrain_dbn(dbn, X, settings, sample_inputs=True, generator=gen(1))
    assert len(seen) == 1
    data = seen[0]
    assert bool(((data == 0) | (data == 1)).all())
    # replay independently: train the first RBM alone, then draw u < p from the same generator
    g = gen(1)
    r0 = fresh.rbms[0]
    RBMTrainer(r0, generator=g, **settings[0]).fit(X)
    with torch.no_grad():
        p = up(X, r0)
        expected = (torch.rand(p.shape, generator=g) < p).float()
        assert torch.equal(data, expected)
        assert not torch.allclose(data, p, atol=0.05)
        torch.testing.assert_close(dbn.rbms[1].visible_bias, logit_of_mean(expected))


def test_recorded_input_states_keep_their_device_type_and_old_bare_states_replay():
    """A resumed pretraining draws the sampled inputs again from the recorded generator
    states: they now carry the device type that wrote them (a CPU state cannot be loaded
    into a CUDA generator), and bare ``get_state()`` tensors of older files still replay."""
    from deepbelief.loop import generator_state
    from deepbelief.training import _replay_inputs

    X = training_data(40)
    dbn = DBN.from_sizes([8, 6, 5, 4], generator=gen(0))
    recorded = []

    def end(i, trainer, input_states):
        recorded[:] = input_states

    settings = [quick(epochs=1)] * 3
    pretrain_dbn(dbn, X, settings, sample_inputs=True, generator=gen(1), on_layer_end=end)
    assert len(recorded) == 2 and all(s["device_type"] == "cpu" for s in recorded)
    new = _replay_inputs(dbn, X, None, True, gen(5), recorded)
    bare = _replay_inputs(dbn, X, None, True, gen(7), [s["state"] for s in recorded])
    assert torch.equal(new, bare) and bool(((new == 0) | (new == 1)).all())
    other = _replay_inputs(dbn, X, None, True, gen(5), [generator_state(gen(9))] * 2)
    assert not torch.equal(new, other)  # the states, not the generator passed, decide


def test_label_dbn_top_rbm_learns_from_features_joined_with_one_hot_labels(monkeypatch):
    X = training_data(60)
    labels = torch.arange(60) % 3
    dbn = DBN.from_sizes([8, 6, 5], n_labels=3, generator=gen(0))
    seen = spy_on_visible_bias_init(dbn.rbms[1], monkeypatch)
    pretrain_dbn(dbn, X, [quick(), quick()], labels=labels, generator=gen(1))
    data = seen[0]
    assert data.shape == (60, 9)
    with torch.no_grad():
        torch.testing.assert_close(data[:, :6], up(X, dbn.rbms[0]))
    assert torch.equal(data[:, 6:], nn.functional.one_hot(labels, 3).float())


def test_pretraining_refuses_missing_labels_and_wrong_numbers_of_settings():
    X = training_data(20)
    with pytest.raises(ValueError):
        pretrain_dbn(DBN.from_sizes([8, 6, 5], n_labels=3), X, [quick(), quick()])
    with pytest.raises(ValueError):
        pretrain_dbn(DBN.from_sizes([8, 6, 5]), X, [quick()])
    with pytest.raises(ValueError):
        pretrain_dbn(DBN.from_sizes([8, 6, 5]), X, [quick()] * 3)


@pytest.mark.stochastic
def test_sampled_inputs_of_learned_variance_units_use_the_learned_variance(seed):
    rbm = RBM(3, 2, hidden="gaussian-learned", generator=gen(0), dtype=F64)
    with torch.no_grad():
        rbm.hidden_logvar.fill_(math.log(0.01))  # standard deviation 0.1
    X = binary_data(4000, 3)
    samples = propagate(rbm, X, sample=True, generator=gen(1000 * seed + 1))
    with torch.no_grad():
        noise = samples - rbm.hidden_mean(X)
    # variance 0.01 estimated from 4000 draws: within 0.005..0.02 with overwhelming probability
    variance = noise.var(0)
    assert bool(((variance > 0.005) & (variance < 0.02)).all()), variance


# ============================================================================ learning
@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return torch.tensor(X / 16.0, dtype=torch.float32), torch.tensor(y)


@pytest.fixture(scope="module")
def digits_label_dbn(digits, seed):
    X, y = digits
    g = gen(1000 * seed)
    dbn = DBN.from_sizes([64, 100, 200], n_labels=10, generator=g)
    settings = dict(epochs=20, batch_size=50, learning_rate=0.1)
    trainers = pretrain_dbn(
        dbn, X, [settings, settings], labels=y, generator=g, callbacks_for_layer=every_epoch
    )
    return dbn, trainers


def every_epoch(layer):
    """A callback that asks the trainer for its monitors after every epoch (by default they
    run every few epochs, at a few per cent of the training time)."""

    class EveryEpoch(Callback):
        needs_monitors = True

    return [EveryEpoch()]


@pytest.mark.stochastic
def test_pretraining_lowers_each_layers_reconstruction_error(digits_label_dbn):
    # measured: layer 1 0.073 -> 0.009-0.010, layer 2 0.048-0.050 -> 0.0034-0.0035 (seeds 0-2,
    # native 1 and 2 threads, avx2 and ATEN default)
    _, trainers = digits_label_dbn
    for i, trainer in enumerate(trainers):
        assert len(trainer.history) == 20
        first = trainer.history[0]["reconstruction_error"]
        last = trainer.history[-1]["reconstruction_error"]
        print(f"measured: layer {i} {first:.4f} -> {last:.4f}")
        assert last < 0.4 * first, f"layer {i}: {first:.4f} -> {last:.4f}"


@pytest.mark.stochastic
def test_label_dbn_classifies_its_training_digits_generatively(digits, digits_label_dbn):
    # measured: 0.953-0.959 (seeds 0-2, native 1 and 2 threads, avx2, ATEN default); chance 0.1
    X, y = digits
    dbn, _ = digits_label_dbn
    free = dbn.label_free_energies(X)
    assert free.shape == (len(X), 10)
    accuracy = float((free.argmin(1) == y).float().mean())
    print(f"measured: generative accuracy {accuracy:.4f}")
    assert accuracy >= 0.9, accuracy
    untrained = DBN.from_sizes([64, 100, 200], n_labels=10, generator=gen(0))
    chance = float((untrained.label_free_energies(X).argmin(1) == y).float().mean())
    assert chance < 0.3


# ============================================================================ label free energies
def test_label_free_energies_equal_brute_force_over_the_top_hidden_states():
    dbn = label_dbn(seed=4)
    r0, top = dbn.rbms
    x = binary_data(7, 6, seed=8)
    free = dbn.label_free_energies(x)
    assert free.shape == (7, 3)

    pen = torch.sigmoid(x @ r0.weight + r0.hidden_bias)  # penultimate features (means)
    hidden_states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4)), dtype=F64)
    brute = torch.empty(7, 3, dtype=F64)
    for row in range(7):
        for c in range(3):
            v = torch.cat([pen[row], torch.eye(3, dtype=F64)[c]])
            energies = torch.stack(
                [
                    -(v @ top.visible_bias) - (h @ top.hidden_bias) - v @ top.weight @ h
                    for h in hidden_states
                ]
            )
            brute[row, c] = -torch.log(torch.exp(-energies).sum())
    with torch.no_grad():
        torch.testing.assert_close(free, brute)
        posterior = torch.softmax(-free, 1)
        torch.testing.assert_close(posterior.sum(1), torch.ones(7, dtype=F64))
        joint = torch.exp(-brute)
        torch.testing.assert_close(posterior, joint / joint.sum(1, keepdim=True))
    # the labels matter: the posterior is far from uniform for some rows
    assert float(posterior.max()) > 0.5


def test_label_free_energies_refuse_a_dbn_without_labels():
    with pytest.raises(ValueError):
        bernoulli_dbn().label_free_energies(binary_data(3, 6))


# ============================================================================ generation
def test_generate_shape_range_and_determinism():
    dbn = bernoulli_dbn()
    a = dbn.generate(11, gibbs_steps=20, generator=gen(5))
    b = dbn.generate(11, gibbs_steps=20, generator=gen(5))
    c = dbn.generate(11, gibbs_steps=20, generator=gen(6))
    assert a.shape == (11, 6) and a.dtype == F64
    assert bool(((a > 0) & (a < 1)).all())  # means of Bernoulli visible units
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert dbn.generate(3, gibbs_steps=0, generator=gen(0)).shape == (3, 6)


def test_generate_keeps_the_label_units_clamped(monkeypatch):
    dbn = label_dbn()
    top = dbn.rbms[-1]
    seen = []
    original = top.sample_hidden

    def spy(v, *args, **kw):
        seen.append(v.clone())
        return original(v, *args, **kw)

    monkeypatch.setattr(top, "sample_hidden", spy)
    labels = torch.tensor([0, 1, 2, 2, 1, 0])
    out = dbn.generate(6, gibbs_steps=15, labels=labels, generator=gen(0))
    assert out.shape == (6, 6)
    assert len(seen) == 16  # one per Gibbs step, plus the final hidden sample
    one_hot = nn.functional.one_hot(labels, 3).to(F64)
    for v in seen:
        assert torch.equal(v[:, 5:], one_hot)
        assert bool(((v[:, :5] == 0) | (v[:, :5] == 1)).all())  # sampled features


def pattern_dbn():
    """A 4-4-2 DBN with 2 labels: label c switches on top hidden unit c, which draws the
    penultimate pattern c; the bottom RBM copies its hidden pattern to the visible layer."""
    patterns = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]], dtype=F64)
    dbn = DBN.from_sizes([4, 4, 2], n_labels=2, dtype=F64)
    r0, top = dbn.rbms
    sign = 2 * patterns - 1  # +1 on the pattern's units, -1 off them
    with torch.no_grad():
        r0.weight.copy_(10 * torch.eye(4, dtype=F64))
        r0.visible_bias.fill_(-5.0)
        r0.hidden_bias.zero_()
        top.weight[:4] = 10 * sign.t()  # feature i <-> hidden unit c
        top.weight[4:] = 30 * (2 * torch.eye(2, dtype=F64) - 1)  # label c <-> hidden c, dominant
        top.visible_bias.copy_(torch.tensor([-5.0] * 4 + [0.0, 0.0], dtype=F64))
        top.hidden_bias.fill_(-5.0)
    return dbn, patterns


@pytest.mark.stochastic
def test_generate_with_a_label_draws_that_labels_pattern(seed):
    dbn, patterns = pattern_dbn()
    labels = torch.tensor([0, 1] * 20)
    out = dbn.generate(40, gibbs_steps=10, labels=labels, generator=gen(1000 * seed))
    assert torch.equal((out > 0.5).to(F64), patterns[labels])
    assert bool(((out - patterns[labels]).abs() < 0.05).all())
    # unclamped, the labels wander: both patterns appear, not only the requested one
    free = dbn.generate(40, gibbs_steps=10, generator=gen(1000 * seed + 1))
    drawn = {tuple(row) for row in (free > 0.5).to(F64).tolist()}
    assert drawn == {tuple(p) for p in patterns.tolist()}


def test_generate_from_a_given_start_takes_one_step_from_it():
    """``start`` replaces the draw from the visible biases: with no Gibbs steps, the result is
    the hidden sample from ``start`` (labels clamped) and its down pass, drawn with the same
    generator."""
    dbn = label_dbn()
    top = dbn.rbms[-1]
    start = binary_data(4, 5, seed=2) * 0.8 + 0.1  # means, not only binary states
    labels = torch.tensor([2, 0, 1, 2])
    out = dbn.generate(4, gibbs_steps=0, labels=labels, generator=gen(7), start=start)
    h = top.sample_hidden(dbn.top_visible(start, labels), generator=gen(7))
    expected = dbn.down(top.visible_mean(h)[:, :5])
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


@pytest.mark.stochastic
def test_generate_from_a_pattern_stays_with_it(seed):
    """In pattern_dbn each top hidden unit draws one penultimate pattern: started from pattern
    1 with the labels free, every chain is in pattern 1 after a step; from the biases (labels
    drawn at random) they are not."""
    dbn, patterns = pattern_dbn()
    start = patterns[1].expand(30, -1)
    out = dbn.generate(30, gibbs_steps=0, generator=gen(seed), start=start)
    assert torch.equal((out > 0.5).to(F64), start)
    free = dbn.generate(30, gibbs_steps=0, generator=gen(seed))
    assert not torch.equal((free > 0.5).to(F64), start)


def test_generate_refuses_a_start_of_the_wrong_shape():
    dbn = label_dbn()
    with pytest.raises(ValueError, match=r"start must have shape \(3, 5\)"):
        dbn.generate(3, gibbs_steps=1, start=torch.zeros(3, 6, dtype=F64))
    with pytest.raises(ValueError, match="start must have shape"):
        dbn.generate(3, gibbs_steps=1, start=torch.zeros(2, 5, dtype=F64))


def test_generate_by_label_is_refused_without_label_units():
    with pytest.raises(ValueError):
        bernoulli_dbn().generate(2, gibbs_steps=1, labels=torch.tensor([0, 1]))


# ============================================================================ files
@pytest.mark.parametrize("n_labels", [0, 3])
def test_save_and_load_round_trip(tmp_path, n_labels):
    dbn = randomize(
        DBN.from_sizes([6, 5, 4], hidden=["relu", "bernoulli"], n_labels=n_labels, dtype=F64)
    )
    path = tmp_path / "dbn.safetensors"
    deepbelief.save(dbn, path)
    loaded = deepbelief.load(path)
    assert type(loaded) is DBN and loaded is not dbn
    assert loaded.config() == dbn.config()
    assert loaded.n_labels == n_labels and loaded.sizes == dbn.sizes
    assert [type(r.hidden) for r in loaded.rbms] == [ReLUUnits, BernoulliUnits]
    state = loaded.state_dict()
    assert set(state) == set(dbn.state_dict())
    for name, tensor in dbn.state_dict().items():
        assert state[name].dtype == F64 and torch.equal(state[name], tensor), name
    x = binary_data(9, 6)
    assert torch.equal(loaded.transform(x), dbn.transform(x))
    assert torch.equal(loaded.reconstruct(x), dbn.reconstruct(x))
    if n_labels:
        assert isinstance(loaded.rbms[-1].visible, MixedUnits)
        assert torch.equal(loaded.label_free_energies(x), dbn.label_free_energies(x))


# ============================================================================ classification RBM
def test_classification_rbm_free_energies_equal_brute_force():
    """One RBM over the input joined with label units (Larochelle & Bengio 2008): the label
    free energies, p(y | x) and the input's free energy with the labels summed out equal the
    sums over every hidden state."""
    rbm = RBM(5 + 3, 4, MixedUnits([(BernoulliUnits(), 5), (SoftmaxUnits(), 3)]),
              generator=gen(3), dtype=F64, weight_std=1.0)  # fmt: skip
    dbn = DBN([rbm], n_labels=3)
    assert dbn.classification_rbm and isinstance(dbn.input_units, BernoulliUnits)
    x = binary_data(6, 5, seed=2)
    hidden_states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4)), dtype=F64)
    brute = torch.empty(6, 3, dtype=F64)
    with torch.no_grad():
        for row in range(6):
            for c in range(3):
                v = torch.cat([x[row], torch.eye(3, dtype=F64)[c]])
                energies = torch.stack([rbm.energy(v[None], h[None])[0] for h in hidden_states])
                brute[row, c] = -torch.logsumexp(-energies, 0)
        torch.testing.assert_close(dbn.label_free_energies(x), brute)
        torch.testing.assert_close(dbn.input_free_energy(x), -torch.logsumexp(-brute, 1))
        assert dbn.transform(x).shape == (6, 4) and dbn.reconstruct(x).shape == (6, 5)
        assert dbn.generate(4, 3, torch.tensor([0, 1, 2, 0]), gen(0)).shape == (4, 5)


def test_label_free_energy_matrix_is_the_label_free_energies_with_gradients():
    from deepbelief.label_training import label_free_energy_matrix

    x = binary_data(7, 6, seed=8)
    units = MixedUnits([(BernoulliUnits(), 6), (SoftmaxUnits(), 3)])
    single = DBN([RBM(6 + 3, 4, units, generator=gen(1), dtype=F64, weight_std=1.0)], 3)
    for dbn in (label_dbn(seed=4), single):
        features = x if dbn.classification_rbm else dbn.transform(x, layer=len(dbn.rbms) - 1)
        energies = label_free_energy_matrix(dbn, features)
        torch.testing.assert_close(energies, dbn.label_free_energies(x))
        energies.sum().backward()
        assert dbn.rbms[-1].weight.grad is not None
        assert float(dbn.rbms[-1].weight.grad.abs().sum()) > 0


def test_label_backprop_step_is_sgd_on_the_exact_label_log_likelihood_of_the_whole_path():
    """Without dropout or momentum, one update moves the recognition weights by ``-lr`` times
    autograd's gradient of ``-log p(y | x)`` through the up pass into the top RBM's label free
    energies; the top RBM and the untied generative weights stay where they were, so the
    samples are the same."""
    from deepbelief.label_training import LabelBackprop, label_free_energy_matrix

    dbn, x = label_dbn(seed=6), binary_data(8, 6, seed=4)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 2, 1])
    before = copy.deepcopy(dbn)
    reference = copy.deepcopy(dbn)
    features = reference.rbms[0].hidden_mean(x)  # the up pass, with gradients
    loss = torch.nn.functional.cross_entropy(-label_free_energy_matrix(reference, features), y)
    loss.backward()
    settings = dict(epochs=1, batch_size=8, learning_rate=0.3, momentum=0.0)
    loop = LabelBackprop(dbn, x, y, dropout=0.0, input_dropout=0.0, **settings)
    value = loop.train_step(x, y, 0.3)
    assert value == pytest.approx(loss.item())
    trained = dict(dbn.named_parameters())
    for name in ("rbms.0.weight", "rbms.0.hidden_bias"):
        p = dict(reference.named_parameters())[name]
        expected = p.detach() - 0.3 * p.grad
        torch.testing.assert_close(trained[name], expected, msg=name)
        assert not torch.equal(trained[name], p.detach()), name
    for name, p in before.rbms[-1].named_parameters():
        assert torch.equal(dict(dbn.rbms[-1].named_parameters())[name], p), name
        assert dict(dbn.rbms[-1].named_parameters())[name].requires_grad, name
    assert torch.equal(dbn.generative_weights[0], before.rbms[0].weight)
    assert torch.equal(dbn.rbms[0].visible_bias, before.rbms[0].visible_bias)
    labels = torch.tensor([0, 1, 2, 2])
    torch.testing.assert_close(
        dbn.generate(4, 5, labels, torch.Generator().manual_seed(3)),
        before.generate(4, 5, labels, torch.Generator().manual_seed(3)),
    )


def test_label_backprop_with_shift_is_the_step_on_the_shifted_images():
    """``shift`` translates the batch (:func:`random_shifts`, from the step's generator) before
    the up pass: the update equals the unshifted rule's on those images; without the images'
    shape it is refused."""
    from deepbelief.images import random_shifts
    from deepbelief.label_training import LabelBackprop

    dbn, x = label_dbn(seed=6), binary_data(8, 6, seed=4)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 2, 1])
    settings = dict(epochs=1, batch_size=8, momentum=0.0, dropout=0.0, input_dropout=0.0)
    shifted, plain = copy.deepcopy(dbn), copy.deepcopy(dbn)
    loop = LabelBackprop(shifted, x, y, shift=1, image_shape=(1, 2, 3), **settings)
    loop.train_step(x, y, 0.3, generator=torch.Generator().manual_seed(5))
    moved = random_shifts(x, (1, 2, 3), 1, torch.Generator().manual_seed(5))
    assert not torch.equal(moved, x)
    LabelBackprop(plain, x, y, **settings).train_step(moved, y, 0.3)
    for (name, a), b in zip(shifted.named_parameters(), plain.parameters()):
        torch.testing.assert_close(a, b, msg=name)
    with pytest.raises(ValueError, match="shift needs the images' shape"):
        LabelBackprop(copy.deepcopy(dbn), x, y, shift=1, image_shape=(1, 2, 2), **settings)


def test_generate_and_to_feedforward_refuse_bad_arguments_naming_them():
    dbn = DBN([RBM(6, 4), RBM(4 + 3, 5, visible=MixedUnits([("bernoulli", 4), ("softmax", 3)]))],
              n_labels=3)  # fmt: skip
    for kwargs, message in [
        ({"n": -2}, "n must be a whole number >= 1, got -2"),
        ({"n": 2, "gibbs_steps": -1}, "gibbs_steps must be a whole number >= 0, got -1"),
        ({"n": 2, "labels": torch.tensor([0, 3])}, r"labels must lie in \[0, 3\), got 0..3"),
        ({"n": 2, "labels": torch.tensor([0, 1, 2])}, r"labels must be 2 integer class indices"),
    ]:
        with pytest.raises(ValueError, match=message):
            dbn.generate(**kwargs)
    plain = DBN([RBM(6, 4)])
    with pytest.raises(ValueError, match="n_outputs must be a whole number >= 1, got 0"):
        plain.to_feedforward("classification", n_outputs=0)
    with pytest.raises(ValueError, match="k must be a whole number >= 0, got -3"):
        RBM(6, 4).gibbs(torch.rand(2, 6), k=-3)
    with pytest.raises(ValueError, match="visible units cover 4 units, but the layer has 5"):
        RBM(5, 3, visible=SoftmaxUnits([2, 2]))
    with pytest.raises(ValueError, match="whole number of units"):
        RBM(2.5, 3)
