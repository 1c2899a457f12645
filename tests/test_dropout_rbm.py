"""Dropout RBMs (Srivastava et al. 2014, section 8): ``RBMTrainer(dropout=...)``, the RBM
estimator's ``dropout`` and the DBN estimators' ``pretrain_dropout`` / per-layer ``dropout``.

A mask of kept hidden units is drawn per training row for every update; dropped units are 0
in the positive statistics, in every Gibbs step of the row's CD chain and in its negative
statistics. Persistent chains draw a mask per chain per update."""

import json

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

import deepbelief
from deepbelief import RBM, DBNClassifier
from deepbelief.cli import main
from deepbelief.nn import RBM as RBMModule
from deepbelief.nn import ConvRBM, GaussianUnits
from deepbelief.samplers import Sampler
from deepbelief.training import Checkpoint, RBMTrainer, make_generator

CPU = torch.device("cpu")


def binary_rows(n, d, seed=0):
    return (torch.rand(n, d, generator=make_generator(seed, CPU)) < 0.4).double()


def trainer_for(sampler="cd", seed=3, n_visible=6, n_hidden=5, visible="bernoulli", **kw):
    generator = make_generator(seed, CPU)
    model = RBMModule(n_visible, n_hidden, visible=visible, generator=generator,
                      dtype=torch.float64)  # fmt: skip
    settings = dict(epochs=2, batch_size=8, n_chains=7, n_temperatures=3, monitor_rows=0)
    return RBMTrainer(model, sampler, generator=generator, **{**settings, **kw})


# --------------------------------------------------------------------------- the update rule
@pytest.mark.parametrize("sampler", ["cd", "pcd"])
def test_dropout_zero_is_the_existing_update_bit_for_bit(sampler, monkeypatch):
    """dropout=0.0 takes the existing (fused) path: the same parameters, bit for bit, as a
    trainer built without the setting, and the dropout path is never entered."""
    data = binary_rows(40, 6)
    plain = trainer_for(sampler).fit(data)

    def refuse(*args):
        raise AssertionError("the dropout path ran with dropout=0")

    monkeypatch.setattr(RBMTrainer, "_dropout_gradients", refuse)
    zero = trainer_for(sampler, dropout=0.0)
    assert zero._fused
    zero.fit(data)
    for name, tensor in plain.model.state_dict().items():
        assert torch.equal(tensor, zero.model.state_dict()[name]), name


@pytest.mark.parametrize("sampler", ["cd", "pcd"])
def test_a_mask_of_ones_gives_the_plain_cd_and_pcd_updates(sampler, monkeypatch):
    """The dropout path with every unit kept is CD (PCD): the same random draws and the same
    parameters (to rounding) as the closed-form path of the same trainer without dropout
    (Gaussian visible units, so that both take the unfused closed form)."""
    data = torch.randn(40, 6, generator=make_generator(1, CPU), dtype=torch.float64)
    plain = trainer_for(sampler, visible=GaussianUnits(), learning_rate=0.01).fit(data)
    monkeypatch.setattr(RBMTrainer, "_dropout_mask", lambda self, n: torch.ones(n, 5).double())
    kept = trainer_for(sampler, visible=GaussianUnits(), learning_rate=0.01, dropout=0.5)
    kept.fit(data)
    for name, tensor in plain.model.state_dict().items():
        torch.testing.assert_close(kept.model.state_dict()[name], tensor, rtol=0, atol=1e-12)


class FixedNegative(Sampler):
    """A sampler whose negative particles are given rows (the negative phase held fixed)."""

    name = "fixed"

    def __init__(self, rows):
        super().__init__(1)
        self.rows = rows

    def negative(self, model, v_data, generator=None, hidden_input=None):
        return self.rows


def test_gradient_equals_the_hand_computed_masked_statistics():
    """With the negative particles held fixed and given masks, every gradient is the masked
    CD statistic computed by hand (weight decay and L1 included)."""
    v = binary_rows(4, 3, seed=5)
    v_model = binary_rows(3, 3, seed=6)
    trainer = trainer_for(n_visible=3, n_hidden=4, dropout=0.5, weight_decay=0.01, l1=0.002)
    trainer.sampler = FixedNegative(v_model)
    model = trainer.model
    with torch.no_grad():
        model.visible_bias.copy_(torch.tensor([0.3, -0.2, 0.1]))
        model.hidden_bias.copy_(torch.tensor([-0.1, 0.4, 0.0, 0.2]))
    m_data = torch.tensor([[1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 0, 1], [1, 0, 0, 1.0]]).double()
    m_model = torch.tensor([[0, 1, 1, 1], [1, 1, 0, 0], [1, 0, 1, 0.0]]).double()
    masks = iter([m_data, m_model])
    trainer._dropout_mask = lambda n: next(masks)
    trainer._dropout_gradients(v)

    W, b, c = (p.detach().clone() for p in (model.weight, model.visible_bias, model.hidden_bias))
    grad_w = torch.zeros(3, 4, dtype=torch.float64)
    grad_c = torch.zeros(4, dtype=torch.float64)
    for row, mask in zip(v, m_data, strict=True):  # positive phase, row by row
        p = torch.sigmoid(c + row @ W) * mask
        grad_w -= torch.outer(row, p) / len(v)
        grad_c -= p / len(v)
    for row, mask in zip(v_model, m_model, strict=True):  # negative phase
        p = torch.sigmoid(c + row @ W) * mask
        grad_w += torch.outer(row, p) / len(v_model)
        grad_c += p / len(v_model)
    grad_w += 0.01 * W + 0.002 * torch.sign(W)
    grad_b = v_model.mean(0) - v.mean(0)
    for got, expected in ((model.weight.grad, grad_w), (model.visible_bias.grad, grad_b),
                          (model.hidden_bias.grad, grad_c)):  # fmt: skip
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("sampler", "k"), [("cd", 1), ("cd", 3), ("pcd", 2)])
def test_a_dropped_unit_gets_no_statistics_and_takes_no_part_in_the_chains(sampler, k):
    """A unit dropped in every row and chain: its weight column and bias get exactly zero
    gradient, and the CD-k chains (PCD's persistent chains) are those of the model without
    it, even when it is strongly on."""
    v = binary_rows(8, 6, seed=2)

    def dropping_unit_2(n):
        mask = torch.ones(n, 5, dtype=torch.float64)
        mask[:, 2] = 0
        return mask

    trainers = []
    for strong in (True, False):
        trainer = trainer_for(sampler, k=k, dropout=0.5, weight_decay=0.0)
        with torch.no_grad():  # unit 2 always on, or cut off from the visible units
            trainer.model.weight[:, 2] = 20.0 if strong else 0.0
            trainer.model.hidden_bias[2] = 20.0
        trainer._dropout_mask = dropping_unit_2
        trainers.append(trainer)
    strong, cut = trainers
    v_strong, m = strong._dropout_negative(v, strong.model.hidden_input(v), dropping_unit_2(8))
    v_cut, _ = cut._dropout_negative(v, cut.model.hidden_input(v), dropping_unit_2(8))
    assert torch.equal(m, dropping_unit_2(len(v_strong)))
    assert torch.equal(v_strong, v_cut)  # the dropped unit never reached the visible units
    strong._dropout_gradients(v)
    assert torch.all(strong.model.weight.grad[:, 2] == 0)
    assert strong.model.hidden_bias.grad[2] == 0
    assert torch.all(strong.model.weight.grad[:, [0, 1, 3, 4]] != 0)


@pytest.mark.parametrize(("sampler", "chain_rows"), [("pcd", 7), ("pt", 21)])
def test_persistent_chains_draw_a_mask_per_chain_per_update(sampler, chain_rows, monkeypatch):
    """PCD draws a mask for each of its 7 chains, PT for each chain at each of its 3
    temperatures; the data rows get theirs; fresh masks at every update."""
    sizes, drawn = [], []
    draw = RBMTrainer._dropout_mask

    def spy(self, n):
        sizes.append(n)
        drawn.append(draw(self, n))
        return drawn[-1]

    monkeypatch.setattr(RBMTrainer, "_dropout_mask", spy)
    trainer = trainer_for(sampler, dropout=0.5, epochs=1)
    trainer.fit(binary_rows(16, 6))  # two updates of 8 rows
    assert sizes == [8, chain_rows, 8, chain_rows]
    assert not torch.equal(drawn[1], drawn[3])
    kept = torch.cat(drawn).mean()
    assert 0.3 < kept < 0.7  # 290 draws of p = 0.5: 6.8 standard deviations each side


def test_dropout_training_resumes_from_a_checkpoint_to_the_same_weights(tmp_path):
    """The masks come from the trainer's generator, so nothing new is saved: a run stopped
    after epoch 2 and resumed ends where an uninterrupted one does."""

    class StopAfter(Checkpoint):
        def on_epoch_end(self, trainer, metrics):
            super().on_epoch_end(trainer, metrics)
            if trainer.epoch == 2:
                raise KeyboardInterrupt

    data = binary_rows(40, 6)
    straight = trainer_for("pcd", epochs=4, dropout=0.3).fit(data)
    path = tmp_path / "ckpt.safetensors"
    with pytest.raises(KeyboardInterrupt):
        trainer_for("pcd", epochs=4, dropout=0.3, callbacks=[StopAfter(path)]).fit(data)
    resumed = RBMTrainer.from_checkpoint(path)
    assert resumed.settings["dropout"] == 0.3
    resumed.fit(data)
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name


def test_trainer_refuses_bad_dropout_and_learned_variances_and_centering():
    model = RBMModule(3, 2)
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\)"):
            RBMTrainer(model, dropout=bad)
    with pytest.raises(ValueError, match="dropout needs"):
        RBMTrainer(model, dropout=0.5, centering=True)
    with pytest.raises(ValueError, match="centering needs a dense RBM"):
        RBMTrainer(ConvRBM((1, 4, 4), 2, 3), dropout=0.5, centering=True)
    with pytest.raises(ValueError, match="dropout needs"):
        RBMTrainer(RBMModule(3, 2, visible=GaussianUnits(learn_variance=True)), dropout=0.5)


# --------------------------------------------------------------------------- conv RBMs
def conv_trainer(pool, seed=4, visible="bernoulli", **kw):
    """A conv RBM on 1x4x4 images, two 3x3 filters: 2x2 maps, one 2x2 block each with
    ``pool=2``."""
    generator = make_generator(seed, CPU)
    model = ConvRBM((1, 4, 4), 2, 3, pool=pool, visible=visible, weight_std=0.5,
                    generator=generator, dtype=torch.float64)  # fmt: skip
    with torch.no_grad():
        model.map_bias.copy_(torch.tensor([0.3, -0.4]))
        model.channel_bias.fill_(-0.2)
    settings = dict(epochs=1, batch_size=8, monitor_rows=0, weight_decay=0.0, dropout=0.5)
    return RBMTrainer(model, generator=generator, **{**settings, **kw})


def masked_free_energy(model, v, mask, pool):
    """The free energy of the model whose units are those ``mask`` keeps, from its
    definition: minus the visible units' energy term, minus each pooling block's
    ``log(1 + sum of exp(input) over its kept units)``."""
    x = model.hidden_input(v).masked_fill(mask == 0, -torch.inf)
    blocks = x.reshape(len(v), 2, 2 // pool, pool, 2 // pool, pool).permute(0, 1, 2, 4, 3, 5)
    blocks = blocks.reshape(len(v), -1, pool * pool)
    off = torch.zeros(*blocks.shape[:2], 1, dtype=x.dtype)
    log_z = torch.logsumexp(torch.cat([off, blocks], 2), 2).sum(1)
    return model.visible.energy(v, model.visible_bias, None) - log_z


@pytest.mark.parametrize("pool", [1, 2])
def test_conv_dropout_gradient_is_the_masked_models_free_energy_gradient(pool):
    """With the negative particles held fixed and given masks, the conv trainer's gradients
    are autograd's gradients of mean F(data) - mean F(particles), F the free energy of the
    model without the dropped units (a dropped unit leaves its max-pooling block's softmax)."""
    trainer = conv_trainer(pool)
    model = trainer.model
    v, v_model = binary_rows(5, 16, seed=7), binary_rows(3, 16, seed=8)
    trainer.sampler = FixedNegative(v_model)
    g = make_generator(9, CPU)
    m_data, m_model = ((torch.rand(n, 8, generator=g) < 0.5).double() for n in (5, 3))
    masks = iter([m_data, m_model])
    trainer._dropout_mask = lambda n: next(masks)
    trainer._conv_gradients(v)
    got = [p.grad.clone() for p in model.parameters()]

    loss = masked_free_energy(model, v, m_data, pool).mean()
    loss = loss - masked_free_energy(model, v_model, m_model, pool).mean()
    expected = torch.autograd.grad(loss, list(model.parameters()))
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    assert m_data.min() == 0 and m_data.max() == 1  # the masks drop some units, keep others


@pytest.mark.parametrize(("pool", "k"), [(1, 1), (2, 1), (2, 3)])
def test_a_dropped_conv_map_gets_no_gradient_and_takes_no_part_in_the_chains(pool, k):
    """Feature map 1 dropped at every position of every row: its filter and bias get exactly
    zero gradient, and the CD-k particles are the same whether that map's filter is strong
    or zero (it never reaches the visible units)."""
    v = binary_rows(8, 16, seed=2)

    def dropping_map_1(n):
        mask = torch.ones(n, 2, 4, dtype=torch.float64)
        mask[:, 1] = 0
        return mask.reshape(n, 8)

    particles = []
    for strong in (True, False):
        trainer = conv_trainer(pool, k=k)
        with torch.no_grad():
            trainer.model.weight[1] = 20.0 if strong else 0.0
            trainer.model.map_bias[1] = 20.0
        trainer._dropout_mask = dropping_map_1
        x = trainer.model.hidden_input(v)
        particles.append(trainer._dropout_negative(v, x, dropping_map_1(8))[0])
        if strong:
            trainer._conv_gradients(v)
            grads = trainer.model.weight.grad, trainer.model.map_bias.grad
            assert torch.all(grads[0][1] == 0) and grads[1][1] == 0
            assert torch.all(grads[0][0] != 0) and grads[1][0] != 0
    assert torch.equal(*particles)


def test_conv_dropout_pcd_draws_a_mask_per_chain_and_trains(monkeypatch):
    """PCD on a conv RBM: masks for the 8 data rows and the 6 chains at every update, about
    half the units kept; the parameters move and stay finite."""
    sizes = []
    draw = RBMTrainer._dropout_mask

    def spy(self, n):
        sizes.append(n)
        return draw(self, n)

    monkeypatch.setattr(RBMTrainer, "_dropout_mask", spy)
    trainer = conv_trainer(2, sampler="pcd", n_chains=6)
    before = trainer.model.weight.detach().clone()
    trainer.fit(binary_rows(16, 16))
    assert sizes == [8, 6, 8, 6]
    weight = trainer.model.weight.detach()
    assert torch.isfinite(weight).all() and not torch.equal(weight, before)


@pytest.mark.filterwarnings("ignore::deepbelief.errors.UndertrainedWarning")
def test_pretrain_dropout_reaches_the_conv_layers_trainer(monkeypatch):
    """``pretrain_dropout`` on a conv DBN classifier trains its conv layer as a dropout RBM
    (and the dense layer above it too)."""
    seen = []
    run, run_dense = RBMTrainer._conv_gradients, RBMTrainer._dropout_gradients

    def record(self, v):
        seen.append(("conv", self.settings["dropout"]))
        return run(self, v)

    def record_dense(self, v):
        seen.append(("dense", self.settings["dropout"]))
        return run_dense(self, v)

    monkeypatch.setattr(RBMTrainer, "_conv_gradients", record)
    monkeypatch.setattr(RBMTrainer, "_dropout_gradients", record_dense)
    X, y = binary_rows(40, 36).numpy(), np.arange(40) % 2
    DBNClassifier(conv_layers=[(3, 3, 2)], hidden_layers=(4,), pretrain_epochs=1, epochs=1,
                  pretrain_dropout=0.4, random_state=0).fit(X, y)  # fmt: skip
    assert ("conv", 0.4) in seen and ("dense", 0.4) in seen


# --------------------------------------------------------------------------- the estimators
def test_estimator_dropout_is_validated_cloned_and_saved(tmp_path):
    X = binary_rows(30, 5).numpy()
    est = RBM(n_components=4, n_iter=2, dropout=0.5, random_state=0).fit(X)
    assert est.trainer_.settings["dropout"] == 0.5
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match=rf"dropout must be .*got {bad}"):
            RBM(n_components=4, dropout=bad).fit(X)
    assert clone(est).dropout == 0.5
    deepbelief.save(est, tmp_path / "rbm")
    loaded = deepbelief.load(tmp_path / "rbm")
    assert loaded.dropout == 0.5 and loaded.trainer_.settings["dropout"] == 0.5
    np.testing.assert_array_equal(loaded.transform(X), est.transform(X))


@pytest.mark.filterwarnings("ignore::deepbelief.errors.UndertrainedWarning")
def test_layer_dropout_reaches_each_layers_trainer(monkeypatch):
    """``pretrain_dropout`` sets every layer's ``dropout``, ``layer_params`` one layer's; the
    values reach the trainers that run (recorded by the dropout path)."""
    seen = {}
    run = RBMTrainer._dropout_gradients

    def record(self, v):
        seen[self.model.n_hidden] = self.settings["dropout"]
        return run(self, v)

    monkeypatch.setattr(RBMTrainer, "_dropout_gradients", record)
    X, y = binary_rows(60, 8).numpy(), np.arange(60) % 3
    settings = dict(hidden_layers=(7, 5, 4), pretrain_epochs=1, epochs=1, random_state=0)
    DBNClassifier(**settings, pretrain_dropout=0.25,
                  layer_params=[{"dropout": 0.5}, {"dropout": 0.0}]).fit(X, y)  # fmt: skip
    assert seen == {7: 0.5, 4: 0.25}  # layer 2 (5 units) ran without dropout
    with pytest.raises(ValueError, match=r"layer 2: dropout must be .*got 1\.0"):
        DBNClassifier(**settings, layer_params=[{}, {"dropout": 1.0}]).fit(X, y)
    with pytest.raises(ValueError, match=r"pretrain_dropout must be .*got -0\.1"):
        DBNClassifier(**settings, pretrain_dropout=-0.1).fit(X, y)


def test_command_line_pretrain_dropout_reaches_the_estimator(tmp_path, capsys):
    rows = (np.random.default_rng(0).random((40, 6)) < 0.5).astype(int)
    data = tmp_path / "train.csv"
    lines = ["a,b,c,d,e,label"] + [",".join(map(str, r[:5])) + f",{r[5]}" for r in rows]
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "m"
    argv = ["train", str(data), "-o", str(out), "--layers", "6", "--pretrain-epochs", "1",
            "--epochs", "1", "--pretrain-dropout", "0.3", "--quiet"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    assert deepbelief.load(out / "model.safetensors").pretrain_dropout == 0.3
    assert json.loads((out / "run.json").read_text())["pretrain_dropout"] == 0.3
    assert main([*argv[:-3], "--pretrain-dropout", "1", "--quiet"]) == 2
    assert "--pretrain-dropout" in capsys.readouterr().err


# --------------------------------------------------------------------------- learning
@pytest.mark.stochastic
def test_dropout_rbm_features_classify_held_out_digits(one_seed):
    """A dropout-0.5 RBM's features (every unit, unscaled) feed a logistic regression on
    held-out digits. Measured with seeds 0 to 4 on the avx512, avx2 and default kernels:
    0.956 to 0.976."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X / 16, y, test_size=0.3, random_state=0, stratify=y
    )
    rbm = RBM(n_components=100, n_iter=20, batch_size=20, learning_rate=0.1, dropout=0.5,
              random_state=one_seed).fit(X_train)  # fmt: skip
    probe = LogisticRegression(max_iter=2000).fit(rbm.transform(X_train), y_train)
    assert probe.score(rbm.transform(X_test), y_test) >= 0.90
