"""Backprop fine-tuning: learning by stated margins, training the shared Parameters in place,
head-only epochs, early stopping, max-norm, weight decay, determinism and the divergence guard."""

import math

import numpy as np
import pytest
import torch
import torch.nn.utils.parametrize as P
from sklearn.datasets import load_digits
from torch import nn

from deepbelief.errors import DivergenceError
from deepbelief.finetune import apply_max_norm, evaluate, finetune, learning_rate_at
from deepbelief.nn.layers import Dropout, keep_mask

# The tests train: their margins must hold across seeds, threads and CPU kernels (CI runs them
# again with ATEN_CPU_CAPABILITY=default and one thread; tests/conftest.py).
pytestmark = pytest.mark.stochastic


class Transpose(nn.Module):
    def forward(self, w):
        return w.t()


def seeded(network: nn.Module, seed: int) -> nn.Module:
    """Re-initialise every parameter from a local generator (no global seeding)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in network.parameters():
            fan_in = p.shape[-1] if p.ndim == 2 else 1
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in) * (p.ndim == 2))
    return network


def transposed_linear(W: nn.Parameter) -> nn.Linear:
    """A Linear whose weight is the transpose of the external Parameter W (in, out)."""
    lin = nn.Linear(*W.shape)
    del lin.weight
    lin.weight = W
    P.register_parametrization(lin, "weight", Transpose(), unsafe=True)
    assert lin.parametrizations.weight.original is W
    return lin


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    order = np.random.RandomState(0).permutation(len(X))
    X = torch.tensor(X[order] / 16.0, dtype=torch.float32)
    y = torch.tensor(y[order], dtype=torch.int64)
    return (X[:1297], y[:1297]), (X[1297:], y[1297:])  # 500 held out


def digits_mlp(seed=0, p=0.1):
    return seeded(
        nn.Sequential(nn.Linear(64, 64), nn.Sigmoid(), Dropout(p), nn.Linear(64, 10)), seed
    )


def sine_data(n, seed, targets=1):
    X = torch.rand(n, 2, generator=gen(seed)) * 2 - 1
    y = torch.sin(3 * X[:, :1]) + X[:, 1:] ** 2
    if targets == 2:
        y = torch.cat([y, X[:, :1] * X[:, 1:]], dim=1)
    return X, y


def regression_mlp(outputs=1, seed=0):
    return seeded(nn.Sequential(nn.Linear(2, 64), nn.Tanh(), nn.Linear(64, outputs)), seed)


def snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


# ---------------------------------------------------------------------- learning
@pytest.mark.parametrize(
    "optimizer, learning_rate", [("sgd", 0.1), ("adam", 0.003)], ids=["sgd", "adam"]
)
def test_digits_classification_reaches_95_percent(digits, optimizer, learning_rate):
    (X, y), (X_test, y_test) = digits
    net = digits_mlp()
    result = finetune(
        net, X, y, "classification", epochs=30, batch_size=32, optimizer=optimizer,
        learning_rate=learning_rate, validation=(X_test, y_test), generator=gen(0),
    )  # fmt: skip
    accuracy = evaluate(net, X_test, y_test, "classification")["val_accuracy"]
    assert accuracy >= 0.95
    assert result.history[-1]["val_accuracy"] == accuracy
    assert result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]
    assert [h["epoch"] for h in result.history] == list(range(1, 31))
    assert not net.training


def test_mixed_precision_learns_as_well_and_keeps_float32_parameters(digits):
    """bfloat16 autocast: within 1.5 points of the float32 run, and the stored Parameters,
    gradients and optimizer state stay float32."""
    (X, y), (X_test, y_test) = digits
    accuracies = {}
    for mixed in (False, True):
        net = digits_mlp()
        result = finetune(
            net, X, y, "classification", epochs=20, learning_rate=0.1, mixed_precision=mixed,
            generator=gen(0),
        )  # fmt: skip
        accuracies[mixed] = evaluate(net, X_test, y_test, "classification")["val_accuracy"]
        assert all(p.dtype == torch.float32 for p in net.parameters())
        assert all(p.grad is None or p.grad.dtype == torch.float32 for p in net.parameters())
        momenta = [s["momentum_buffer"] for s in result.optimizer.state.values()]
        assert momenta and all(m.dtype == torch.float32 for m in momenta)
    assert accuracies[True] >= 0.95
    assert abs(accuracies[True] - accuracies[False]) <= 0.015


def test_regression_of_a_nonlinear_function():
    X, y = sine_data(1000, seed=1)
    X_test, y_test = sine_data(500, seed=2)
    net = regression_mlp()
    result = finetune(
        net, X, y, "regression", epochs=60, batch_size=32, learning_rate=0.05,
        validation=(X_test, y_test), generator=gen(0),
    )  # fmt: skip
    assert result.history[-1]["val_r2"] >= 0.95
    # a 1-D target is one column
    assert evaluate(net, X_test, y_test[:, 0], "regression")["val_r2"] >= 0.95


def test_multi_output_regression():
    X, y = sine_data(1000, seed=1, targets=2)
    X_test, y_test = sine_data(500, seed=2, targets=2)
    net = regression_mlp(outputs=2)
    finetune(
        net, X, y, "regression", epochs=60, batch_size=32, learning_rate=0.05, generator=gen(0)
    )
    with torch.no_grad():
        pred = net(X_test)
    r2 = 1 - ((y_test - pred) ** 2).sum(0) / ((y_test - y_test.mean(0)) ** 2).sum(0)
    assert r2.min() >= 0.9  # each target, not only on average
    assert evaluate(net, X_test, y_test, "regression")["val_r2"] == pytest.approx(
        float(r2.mean()), abs=1e-5
    )


def test_regression_output_shape_mismatch_is_an_error():
    X, y = sine_data(20, seed=1, targets=2)
    with pytest.raises(ValueError, match="shape"):
        finetune(regression_mlp(outputs=1), X, y, "regression", epochs=1, generator=gen(0))


# ---------------------------------------------------------------------- shared parameters
def test_trains_the_shared_parameters_in_place():
    W = nn.Parameter(torch.randn(4, 3, generator=gen(0)) * 0.5)
    lin = transposed_linear(W)
    net = nn.Sequential(lin, nn.Sigmoid(), nn.Linear(3, 2))
    before_objects = list(net.parameters())
    W_before = W.detach().clone()
    X = torch.randn(64, 4, generator=gen(1))
    y = (X[:, 0] > 0).long()
    finetune(net, X, y, "classification", epochs=5, batch_size=16, generator=gen(2))
    assert lin.parametrizations.weight.original is W
    assert all(a is b for a, b in zip(net.parameters(), before_objects))
    assert not torch.equal(W, W_before)
    assert torch.equal(lin.weight, W.t())


# ---------------------------------------------------------------------- head-only epochs
@pytest.mark.parametrize("explicit_head", [False, True])
def test_head_epochs_train_only_the_head(digits, explicit_head):
    (X, y), _ = digits
    net = digits_mlp(p=0.0)
    body, head = net[0], net[3]
    body0, head0 = snapshot(body), snapshot(head)
    seen = []

    class Record:
        def on_epoch_end(self, state, metrics):
            seen.append((snapshot(body), snapshot(head)))

    finetune(
        net, X[:300], y[:300], "classification", epochs=4, head_epochs=2, batch_size=50,
        max_norm=0.01, head=head if explicit_head else None, callbacks=[Record()],
        generator=gen(0),
    )  # fmt: skip
    # head-only epochs: the body is untouched (not even by max_norm), the head moves
    for b, h in seen[:2]:
        assert same(b, body0)
        assert not same(h, head0)
    assert not same(seen[2][0], body0)  # then everything trains
    assert all(p.requires_grad for p in net.parameters())


def test_head_must_belong_to_the_network(digits):
    (X, y), _ = digits
    with pytest.raises(ValueError, match="head"):
        finetune(digits_mlp(), X, y, "classification", head_epochs=1, head=nn.Linear(64, 10))


# ---------------------------------------------------------------------- early stopping
def test_early_stopping_restores_the_best_epoch(digits):
    (X, y), (X_test, y_test) = digits
    net = nn.Sequential(nn.Linear(64, 256), nn.Sigmoid(), nn.Linear(256, 10))
    seeded(net, 0)
    objects = list(net.parameters())
    per_epoch = {}

    class Record:
        def on_epoch_end(self, state, metrics):
            per_epoch[state.epoch] = snapshot(state.network)

    patience, epochs = 3, 200
    result = finetune(
        net, X[:40], y[:40], "classification", epochs=epochs, batch_size=10, learning_rate=0.5,
        validation=(X_test, y_test), early_stopping=patience, callbacks=[Record()],
        generator=gen(0),
    )  # fmt: skip
    losses = [h["val_loss"] for h in result.history]
    assert len(losses) < epochs
    assert result.best_epoch == 1 + int(np.argmin(losses))
    assert len(losses) == result.best_epoch + patience
    assert same(snapshot(net), per_epoch[result.best_epoch])
    assert not same(snapshot(net), per_epoch[len(losses)])
    assert all(a is b for a, b in zip(net.parameters(), objects))


def test_callback_can_stop_training(digits):
    (X, y), _ = digits

    class StopAtTwo:
        def on_epoch_end(self, state, metrics):
            state.stop_training = state.epoch == 2

    result = finetune(digits_mlp(), X, y, "classification", epochs=10, callbacks=[StopAtTwo()])
    assert len(result.history) == 2
    assert result.best_epoch is None  # no validation data


# ---------------------------------------------------------------------- weight averaging
def test_average_epochs_ends_with_the_mean_of_the_last_epochs(digits):
    (X, y), (X_test, y_test) = digits
    ends = []

    class EpochEnds:  # the weights after each epoch's last update, before any averaging
        def on_batch_end(self, state, batch, n_batches):
            if batch == n_batches - 1:
                ends.append(snapshot(state.network))

    net = digits_mlp()
    objects = list(net.parameters())
    result = finetune(
        net, X, y, "classification", epochs=6, learning_rate=0.5, average_epochs=3,
        validation=(X_test, y_test), callbacks=[EpochEnds()], generator=gen(0),
    )  # fmt: skip
    assert len(ends) == 6 and result.n_averaged == 3
    expected = [torch.stack(epochs).mean(0) for epochs in zip(*ends[-3:])]
    for p, mean in zip(net.parameters(), expected):
        torch.testing.assert_close(p.detach(), mean, rtol=0, atol=1e-6)
    assert not same(snapshot(net), ends[-1])
    assert all(a is b for a, b in zip(net.parameters(), objects))  # copied in place
    # the last epoch's validation figures are the returned (averaged) network's
    assert (
        result.history[-1]["val_loss"]
        == evaluate(net, X_test, y_test, "classification")["val_loss"]
    )
    # averaging does not change the path: without it the run ends at the last epoch's weights
    plain = digits_mlp()
    finetune(plain, X, y, "classification", epochs=6, learning_rate=0.5, generator=gen(0))
    assert same(snapshot(plain), ends[-1])


def test_average_epochs_longer_than_the_run_averages_every_epoch(digits):
    (X, y), _ = digits
    ends = []

    class EpochEnds:
        def on_batch_end(self, state, batch, n_batches):
            if batch == n_batches - 1:
                ends.append(snapshot(state.network))

    net = digits_mlp()
    result = finetune(
        net, X, y, "classification", epochs=2, average_epochs=10, callbacks=[EpochEnds()],
        generator=gen(1),
    )  # fmt: skip
    assert result.n_averaged == 2
    for p, a, b in zip(net.parameters(), *ends):
        torch.testing.assert_close(p.detach(), (a + b) / 2, rtol=0, atol=1e-6)


def test_average_epochs_and_early_stopping_exclude_each_other(digits):
    (X, y), (X_test, y_test) = digits
    with pytest.raises(ValueError, match="average_epochs and early_stopping"):
        finetune(
            digits_mlp(), X, y, "classification", average_epochs=2, early_stopping=3,
            validation=(X_test, y_test),
        )  # fmt: skip


# ---------------------------------------------------------------------- regularisers
def row_norms(lin):
    return lin.weight.detach().norm(dim=1)


def test_max_norm_holds_for_plain_and_parametrized_layers():
    X = torch.randn(200, 6, generator=gen(0))
    y = (X[:, 0] + X[:, 1] > 0).long()

    def run(max_norm):
        W = nn.Parameter(torch.randn(6, 8, generator=gen(1)) * 0.3)
        net = nn.Sequential(transposed_linear(W), nn.ReLU(), seeded(nn.Linear(8, 2), 2))
        finetune(
            net, X, y, "classification", epochs=5, batch_size=20, learning_rate=1.0,
            max_norm=max_norm, generator=gen(3),
        )  # fmt: skip
        return net

    limit = 0.5
    free, capped = run(None), run(limit)
    for i in (0, 2):
        assert row_norms(free[i]).max() > 1.5 * limit  # without the cap they grow past it
        assert row_norms(capped[i]).max() <= limit * (1 + 1e-5)
        assert row_norms(capped[i]).max() >= limit * (1 - 1e-3)  # and the cap binds


def test_apply_max_norm_scales_rows_of_the_view():
    """A square weight tells rows from columns: the parametrized case scales ``original``'s
    columns, which are the rows of the (out, in) view."""
    W = nn.Parameter(torch.tensor([[3.0, 0.1], [4.0, 0.1]]))  # view rows: (3, 4) and (.1, .1)
    lin = transposed_linear(W)
    plain = nn.Linear(2, 2)
    with torch.no_grad():
        plain.weight.copy_(W.t())
    apply_max_norm([lin, plain], 1.0)
    expected = torch.tensor([[0.6, 0.8], [0.1, 0.1]])
    assert torch.allclose(lin.weight, expected, atol=1e-6)
    assert torch.allclose(plain.weight, expected, atol=1e-6)
    assert lin.parametrizations.weight.original is W


def test_weight_decay_shrinks_weights_only(digits):
    (X, y), _ = digits

    def run(weight_decay):
        net = digits_mlp(p=0.0)
        result = finetune(
            net, X, y, "classification", epochs=5, batch_size=50, weight_decay=weight_decay,
            generator=gen(0),
        )  # fmt: skip
        return net, result.optimizer

    plain, _ = run(0.0)
    decayed, optimizer = run(0.01)
    for i in (0, 3):
        assert decayed[i].weight.norm() < 0.9 * plain[i].weight.norm()
    decay_groups = [g for g in optimizer.param_groups if g["weight_decay"] > 0]
    assert len(decay_groups) == 1
    assert {id(p) for p in decay_groups[0]["params"]} == {
        id(decayed[0].weight),
        id(decayed[3].weight),
    }


# ---------------------------------------------------------------------- randomness
def test_same_seed_same_parameters_and_no_global_rng(digits):
    (X, y), _ = digits
    X, y = X[:300], y[:300]
    dropout = Dropout(0.5)
    net = seeded(nn.Sequential(nn.Linear(64, 32), nn.Sigmoid(), dropout, nn.Linear(32, 10)), 0)
    seen = []

    class Watch:
        def on_batch_end(self, state, batch, n_batches):
            seen.append((dropout.generator, state.network.training))

    def run(seed, callbacks=()):
        seeded(net, 0)
        finetune(
            net, X, y, "classification", epochs=2, generator=(g := gen(seed)), callbacks=callbacks
        )
        return snapshot(net), g

    torch.manual_seed(123)
    global_state = torch.get_rng_state()
    first, g = run(7, [Watch()])
    assert torch.equal(torch.get_rng_state(), global_state)  # dropout never used the global RNG
    assert all(generator is g and training for generator, training in seen)
    assert dropout.generator is None  # restored
    assert same(run(7)[0], first)
    assert not same(run(8)[0], first)


def test_dropout_masks_come_from_the_generator():
    """Full-batch training in a fixed order: only the dropout masks depend on the seed."""
    X = torch.randn(50, 5, generator=gen(0))
    y = torch.randn(50, 1, generator=gen(1))

    def run(p, seed):
        net = seeded(nn.Sequential(nn.Linear(5, 16), nn.Tanh(), Dropout(p), nn.Linear(16, 1)), 0)
        order = torch.arange(50)  # the same rows in the same order, whatever the seed
        finetune(
            net, X[order], y[order], "regression", epochs=3, batch_size=50, generator=gen(seed)
        )
        return snapshot(net)

    # (the batch is the whole set, so shuffling changes only the summation order: tiny)
    without = [run(0.0, s) for s in (1, 2)]
    with_dropout = [run(0.5, s) for s in (1, 2)]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*without))
    assert not all(torch.allclose(a, b, atol=1e-3) for a, b in zip(*with_dropout))


def test_keep_mask_rate_independence_and_seed():
    shape = (400, 250)
    for keep in (0.5, 0.8, 0.1):
        mask = keep_mask(shape, keep, gen(0), torch.device("cpu"))
        assert mask.shape == shape and mask.dtype == torch.bool
        # 100,000 draws: the rate within 5 standard errors
        assert abs(mask.float().mean().item() - keep) < 5 * math.sqrt(keep * (1 - keep) / 1e5)
    a = keep_mask(shape, 0.5, gen(3), torch.device("cpu")).float()
    # neighbouring entries (which share a 64-bit draw) are uncorrelated
    corr = np.corrcoef(a[:, :-1].flatten().numpy(), a[:, 1:].flatten().numpy())[0, 1]
    assert abs(corr) < 0.02
    assert torch.equal(keep_mask((7, 3), 0.5, gen(3), torch.device("cpu")), keep_mask(
        (7, 3), 0.5, gen(3), torch.device("cpu")))  # fmt: skip
    assert not torch.equal(a, keep_mask(shape, 0.5, gen(4), torch.device("cpu")).float())


# ---------------------------------------------------------------------- schedules
def test_learning_rate_schedules():
    assert learning_rate_at(0.1, "constant", 50, 100) == 0.1
    assert learning_rate_at(0.1, "linear", 25, 100) == pytest.approx(0.075)
    assert learning_rate_at(0.1, "cosine", 50, 100) == pytest.approx(0.05)
    assert learning_rate_at(0.1, "cosine", 100, 100) == pytest.approx(0.0)
    X, y = sine_data(100, seed=1)
    result = finetune(
        regression_mlp(), X, y, "regression", epochs=4, batch_size=25, learning_rate=0.1,
        lr_schedule="linear", generator=gen(0),
    )  # fmt: skip
    # per update: the last of 16 updates uses step 15
    rates = [h["learning_rate"] for h in result.history]
    assert rates == pytest.approx([0.1 * (1 - s / 16) for s in (3, 7, 11, 15)])


def test_progress_bar_runs(digits):
    (X, y), _ = digits
    result = finetune(digits_mlp(), X[:100], y[:100], "classification", epochs=2, progress=True)
    assert len(result.history) == 2


# ---------------------------------------------------------------------- failures
def test_divergence_raises_and_keeps_finite_parameters():
    X, y = sine_data(200, seed=1)
    y = y * 1e3
    net = seeded(nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1)), 0)
    before = snapshot(net)
    objects = list(net.parameters())
    with pytest.raises(DivergenceError, match=r"epoch 1, batch \d+.*lower the learning rate"):
        finetune(
            net, X, y, "regression", epochs=5, batch_size=20, learning_rate=10.0, generator=gen(0)
        )
    assert all(torch.isfinite(p).all() for p in net.parameters())
    assert same(snapshot(net), before)  # the values at the start of the diverging epoch
    assert all(a is b for a, b in zip(net.parameters(), objects))
    assert not net.training


@pytest.mark.parametrize(
    "bad",
    [
        {"optimizer": "rmsprop"},
        {"task": "ranking"},
        {"lr_schedule": "exponential"},
        {"epochs": -1},
        {"batch_size": 0},
        {"learning_rate": 0.0},
        {"head_epochs": -1},
        {"max_norm": 0.0},
        {"early_stopping": 3},  # without validation data
        {"average_epochs": -1},
    ],
    ids=lambda d: next(iter(d)),
)
def test_bad_arguments_raise_value_error(bad):
    X, y = torch.zeros(4, 2), torch.zeros(4, dtype=torch.int64)
    kwargs = {"task": "classification", **bad}
    task = kwargs.pop("task")
    with pytest.raises(ValueError, match=next(iter(bad))):
        finetune(nn.Linear(2, 2), X, y, task, **kwargs)


def test_bad_data_raises_value_error():
    net = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="rows"):
        finetune(net, torch.zeros(4, 2), torch.zeros(3, dtype=torch.int64), "classification")
    with pytest.raises(ValueError, match="no rows"):
        finetune(net, torch.zeros(0, 2), torch.zeros(0, dtype=torch.int64), "classification")
    with pytest.raises(ValueError, match="class indices"):
        finetune(net, torch.zeros(4, 2), torch.zeros(4), "classification")
