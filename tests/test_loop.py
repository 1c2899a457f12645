"""The shared fit loop: exact resume after an interruption at any point (a mid-epoch batch,
a Ctrl-C during an update, an exception inside an update, a divergence) for RBMTrainer and the
RBM estimator; generator states that load on another device type; one validation of settings
for the RBM trainer, fine-tuning and the estimators, before any data is read."""

import signal
import time
import warnings

import numpy as np
import pytest
import torch

import deepbelief
from deepbelief import DBN, DBNClassifier, DBNRegressor
from deepbelief import RBM as RBMEstimator
from deepbelief import loop as loop_module
from deepbelief.errors import DivergenceError
from deepbelief.finetune import finetune
from deepbelief.io import read_file, write_file
from deepbelief.loop import generator_state, make_generator, set_generator_state
from deepbelief.nn import RBM
from deepbelief.settings import FinetuneSettings, RBMSettings
from deepbelief.training import Callback, Checkpoint, RBMTrainer

CPU = torch.device("cpu")
BARS = torch.tensor(
    [[1, 1, 1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0, 1, 1, 1]]
    + [[1, 0, 0, 1, 0, 0, 1, 0, 0], [0, 1, 0, 0, 1, 0, 0, 1, 0], [0, 0, 1, 0, 0, 1, 0, 0, 1]],
    dtype=torch.float32,
).repeat(7, 1)  # 42 rows: batches of 10 leave a short last batch
STOP_EPOCH, STOP_BATCH = 3, 2  # 1-based epoch, 0-based batch within it


def make_trainer(sampler, callbacks=(), **changes):
    gen = make_generator(7, CPU)
    settings = dict(
        epochs=6, batch_size=10, n_chains=12, n_temperatures=4, sparsity_target=0.1, k=2
    )
    settings.update(changes)
    return RBMTrainer(RBM(9, 8, generator=gen), sampler, generator=gen, callbacks=callbacks,
                      **settings)  # fmt: skip


class At(Callback):
    """Runs ``action(loop)`` after batch ``STOP_BATCH`` of epoch ``STOP_EPOCH``."""

    def __init__(self, action):
        self.action = action

    def on_batch_end(self, loop, batch, n_batches):
        if loop.epoch == STOP_EPOCH - 1 and batch == STOP_BATCH:
            self.action(loop)


def interrupt(loop):
    raise KeyboardInterrupt


def poison(loop):
    with torch.no_grad():
        loop.model.weight[0, 0] = float("nan")


def assert_same(a: RBMTrainer, b: RBMTrainer):
    for name, tensor in a.model.state_dict().items():
        assert torch.equal(tensor, b.model.state_dict()[name]), name
    chains_a, chains_b = a.sampler.state_dict(), b.sampler.state_dict()
    assert set(chains_a) == set(chains_b)
    for name, tensor in chains_a.items():
        assert torch.equal(tensor, chains_b[name].to(tensor.device)), name
    assert torch.equal(a.generator.get_state(), b.generator.get_state())
    assert [h["epoch"] for h in b.history] == list(range(1, a.epochs + 1))
    drop = ("seconds",)
    assert [{k: v for k, v in h.items() if k not in drop} for h in a.history] == [
        {k: v for k, v in h.items() if k not in drop} for h in b.history
    ]


@pytest.mark.parametrize("sampler", ["cd", "pcd", "pt"])
@pytest.mark.parametrize(
    ("action", "error", "position"),
    [
        (interrupt, KeyboardInterrupt, (STOP_EPOCH - 1, STOP_BATCH + 1)),  # the update done
        (poison, DivergenceError, (STOP_EPOCH - 1, 0)),  # the start of the epoch
    ],
)
def test_rbm_trainer_resumes_exactly_after_a_mid_epoch_interruption_or_a_divergence(
    sampler, action, error, position, tmp_path
):
    straight = make_trainer(sampler).fit(BARS)
    path = tmp_path / "ckpt.safetensors"
    with pytest.raises(error):
        make_trainer(sampler, [Checkpoint(path, every=100), At(action)]).fit(BARS)
    resumed = RBMTrainer.from_checkpoint(path)
    assert (resumed.epoch, resumed.batch) == position
    assert resumed.step == position[0] * 5 + position[1]
    resumed.fit(BARS)
    assert_same(straight, resumed)


def poison_and_interrupt(loop):
    poison(loop)
    raise KeyboardInterrupt


def test_an_interruption_after_an_unnoticed_divergence_keeps_the_start_of_the_epoch(tmp_path):
    """The parameters are checked every check_every updates, not at each: an interruption
    between two checks, after the weights turned NaN, still leaves a finite, completed step
    (the start of the epoch) in the checkpoint, and the resumed run is exact."""
    straight = make_trainer("pcd").fit(BARS)
    path = tmp_path / "ckpt.safetensors"
    with pytest.raises(KeyboardInterrupt):
        make_trainer("pcd", [Checkpoint(path, every=100), At(poison_and_interrupt)]).fit(BARS)
    resumed = RBMTrainer.from_checkpoint(path)
    assert (resumed.epoch, resumed.batch) == (STOP_EPOCH - 1, 0)
    assert all(torch.isfinite(p).all() for p in resumed.model.parameters())
    assert_same(straight, resumed.fit(BARS))


@pytest.mark.parametrize("check_every", [1, 2, 64])
def test_a_divergence_is_found_between_checks_and_keeps_the_start_of_the_epoch(check_every):
    trainer = make_trainer("cd", [At(poison)])
    trainer.check_every = check_every
    with pytest.raises(DivergenceError, match=f"diverged at epoch {STOP_EPOCH}, non-finite"):
        trainer.fit(BARS)
    assert (trainer.epoch, trainer.batch, trainer.step) == (STOP_EPOCH - 1, 0, 10)
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_a_ctrl_c_or_sigterm_during_an_update_is_deferred_to_its_end(monkeypatch, tmp_path, number):
    """SIGINT (Ctrl-C) or SIGTERM (a job scheduler's, or torchrun's at a second Ctrl-C) in the
    middle of an update: the update completes, then KeyboardInterrupt; the checkpoint holds it
    and the resumed run is exact. SIGTERM used to end the process on the spot, losing the
    updates since the last periodic checkpoint."""
    # The loop defers a signal only while Python's default handler is installed. A suite
    # started as a background job of a non-interactive shell inherits SIGINT ignored (SIG_IGN),
    # and Python then keeps it so: install the default handler for this test, and name what
    # was there.
    default = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}[number]
    found = signal.signal(number, default)
    if found != default:
        warnings.warn(f"{number!r} handler left installed before this test: {found!r}",
                      stacklevel=1)  # fmt: skip
    try:
        straight = make_trainer("pcd").fit(BARS)
        original, calls = RBMTrainer._apply, []

        def apply(trainer, v):
            calls.append(1)
            if len(calls) == 2 * 5 + 2:  # the second update of epoch 3
                signal.raise_signal(number)
                # Python runs the handler at its next check for signals, which may come
                # after this line (it did in a full run of the suite): sleeping checks
                for _ in range(200):
                    if trainer.interrupted:
                        break
                    time.sleep(0.005)
                assert trainer.interrupted  # the handler only noted it
            return original(trainer, v)

        monkeypatch.setattr(RBMTrainer, "_apply", apply)
        path = tmp_path / "ckpt.safetensors"
        with pytest.raises(KeyboardInterrupt) as raised:
            make_trainer("pcd", [Checkpoint(path, every=100)]).fit(BARS)
        assert raised.value.signal == number  # the command line exits 128 + it
        monkeypatch.undo()
        assert signal.getsignal(number) == default  # handler restored
    finally:
        signal.signal(number, found)
    resumed = RBMTrainer.from_checkpoint(path)
    assert (resumed.epoch, resumed.batch) == (2, 2)
    assert_same(straight, resumed.fit(BARS))


def test_an_exception_inside_an_update_restores_the_start_of_the_epoch(monkeypatch, tmp_path):
    """An error after an update changed the weights but before the loop counted it: the state
    goes back to the last consistent point, the start of the epoch, never half an update."""
    straight = make_trainer("pcd").fit(BARS)
    original, calls = RBMTrainer._apply, []

    def apply(trainer, v):
        value = original(trainer, v)
        calls.append(1)
        if len(calls) == 2 * 5 + 3:
            raise RuntimeError("out of memory, say")
        return value

    monkeypatch.setattr(RBMTrainer, "_apply", apply)
    path = tmp_path / "ckpt.safetensors"
    with pytest.raises(RuntimeError):
        make_trainer("pcd", [Checkpoint(path, every=100)]).fit(BARS)
    monkeypatch.undo()
    resumed = RBMTrainer.from_checkpoint(path)
    assert (resumed.epoch, resumed.batch, resumed.step) == (2, 0, 10)
    assert_same(straight, resumed.fit(BARS))


@pytest.mark.parametrize(
    ("error", "position"), [(KeyboardInterrupt, (2, 2)), (DivergenceError, (2, 0))]
)
def test_rbm_estimator_resumes_exactly_after_a_mid_epoch_interruption_or_a_divergence(
    error, position, monkeypatch, tmp_path
):
    X = BARS.numpy().astype(np.float64)
    settings = dict(n_components=8, n_iter=6, batch_size=10, sampler="pcd", random_state=0)
    straight = RBMEstimator(**settings).fit(X)
    path = tmp_path / "rbm.safetensors"
    original = loop_module.call

    def call(callbacks, hook, *args):
        if hook == "on_batch_end" and args[0].epoch == 2 and args[1] == 1:
            if error is KeyboardInterrupt:
                raise KeyboardInterrupt
            poison(args[0])
        return original(callbacks, hook, *args)

    monkeypatch.setattr(loop_module, "call", call)
    with pytest.raises(error):
        RBMEstimator(**settings, checkpoint=path, checkpoint_every=100).fit(X)
    monkeypatch.undo()
    loaded = deepbelief.load(path)
    assert (loaded.trainer_.epoch, loaded.trainer_.batch) == position
    resumed = loaded.fit(X, resume=True)
    assert_same(straight.trainer_, resumed.trainer_)
    np.testing.assert_array_equal(straight.transform(X), resumed.transform(X))


# ------------------------------------------------------------------ portable state
FOREIGN = {"device_type": "cuda", "state": torch.arange(16, dtype=torch.uint8)}  # Philox


def test_a_generator_state_of_the_same_device_type_continues_its_stream():
    gen = make_generator(3, CPU)
    saved = generator_state(gen)
    expected = torch.rand(5, generator=gen)
    other = make_generator(4, CPU)
    set_generator_state(other, saved)
    assert torch.equal(torch.rand(5, generator=other), expected)
    set_generator_state(other, saved["state"])  # a bare state, as older files hold
    assert torch.equal(torch.rand(5, generator=other), expected)


def test_a_generator_state_of_another_device_type_seeds_deterministically():
    first, second = make_generator(1, CPU), make_generator(2, CPU)
    set_generator_state(first, FOREIGN)
    set_generator_state(second, FOREIGN)
    assert torch.equal(torch.rand(8, generator=first), torch.rand(8, generator=second))
    other = {"device_type": "cuda", "state": torch.arange(1, 17, dtype=torch.uint8)}
    set_generator_state(second, other)
    set_generator_state(first, FOREIGN)
    assert not torch.equal(torch.rand(8, generator=first), torch.rand(8, generator=second))


def with_foreign_generators(tree):
    """The tree with every saved generator state replaced by a CUDA one."""
    if isinstance(tree, dict):
        if set(tree) == {"device_type", "state"}:
            return dict(FOREIGN)
        return {k: with_foreign_generators(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [with_foreign_generators(v) for v in tree]
    return tree


def test_a_checkpoint_written_on_another_device_type_loads_and_continues(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    with pytest.raises(KeyboardInterrupt):
        make_trainer("pt", [Checkpoint(path, every=100), At(interrupt)]).fit(BARS)
    kind, tree = read_file(path)
    tree = with_foreign_generators(tree)
    tree["device"] = "cuda:0"  # written on a GPU machine
    tree["trainer"]["rule"]["sampler"]["swap_attempts"] = tree["trainer"]["rule"]["sampler"][
        "swap_attempts"
    ].to(torch.float32)
    write_file(path, kind, tree)
    runs = [RBMTrainer.from_checkpoint(path).fit(BARS) for _ in range(2)]
    assert runs[0].model.weight.device.type == "cpu" or torch.cuda.is_available()
    assert torch.equal(runs[0].model.weight, runs[1].model.weight)  # deterministic
    assert runs[0].sampler.swap_attempts.device == CPU  # counters stay on the CPU
    assert runs[0].epoch == 6 and torch.isfinite(runs[0].model.weight).all()


@pytest.mark.parametrize("maker", [DBNClassifier, DBN])
def test_a_model_written_on_another_device_type_loads_and_samples(maker, tmp_path):
    X = BARS.numpy().astype(np.float64)
    y = np.arange(len(X)) % 2
    model = maker(hidden_layers=(6, 5), pretrain_epochs=1, random_state=0, device="cpu")
    if maker is DBNClassifier:
        model.set_params(epochs=1)
    model.fit(X, y)
    path = tmp_path / "model.safetensors"
    model.save(path)
    kind, tree = read_file(path)
    write_file(path, kind, with_foreign_generators(tree))
    loaded = deepbelief.load(path)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    if maker is DBN:
        assert loaded.sample(3, label=1).shape == (3, 9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_checkpoint_moves_cpu_to_cuda_to_cpu(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    with pytest.raises(KeyboardInterrupt):
        make_trainer("pt", [Checkpoint(path, every=100), At(interrupt)]).fit(BARS)
    on_gpu = RBMTrainer.from_checkpoint(path, device="cuda")
    on_gpu.epochs = 4
    on_gpu.fit(BARS.cuda())
    assert on_gpu.model.weight.device.type == "cuda"
    on_gpu.save_checkpoint(path)
    back = RBMTrainer.from_checkpoint(path, device="cpu")
    assert back.epoch == 4 and back.model.weight.device == CPU
    back.epochs = 6
    back.fit(BARS)
    assert torch.isfinite(back.model.weight).all()


# ------------------------------------------------------------------ one validation
@pytest.mark.parametrize(
    "bad",
    [
        dict(momentum=1.5),
        dict(final_momentum=-0.1),
        dict(weight_decay=-1e-4),
        dict(l1=-1.0),
        dict(max_norm=-1.0),
        dict(max_norm=0.0),
        dict(clip_grad_norm=-1.0),
        dict(learning_rate=float("nan")),
        dict(epochs=2.5),
        dict(batch_size=0),
        dict(sparsity_decay=1.0),
        dict(lr_schedule="exponential"),
        dict(centering="yes"),
    ],
)
def test_bad_rbm_settings_are_refused_with_their_name(bad):
    ((name, value),) = bad.items()
    with pytest.raises(ValueError, match=rf"^{name} must be .*got {value!r}"):
        RBMSettings(**bad)
    with pytest.raises(ValueError, match=name):
        make_trainer("cd", **bad)


@pytest.mark.parametrize(
    "bad",
    [dict(momentum=1.5), dict(momentum=5), dict(weight_decay=-1.0), dict(max_norm=-1.0),
     dict(head_epochs=-1), dict(average_epochs=-2), dict(optimizer="lbfgs")],
)  # fmt: skip
def test_bad_finetune_settings_are_refused_with_their_name(bad):
    ((name, _),) = bad.items()
    with pytest.raises(ValueError, match=name):
        FinetuneSettings(**bad)
    network = torch.nn.Linear(3, 2)
    with pytest.raises(ValueError, match=name):
        finetune(network, torch.rand(4, 3), torch.tensor([0, 1, 0, 1]), "classification", **bad)


@pytest.mark.parametrize(
    ("maker", "bad"),
    [
        (DBNClassifier, dict(momentum=5)),
        (DBNClassifier, dict(weight_decay=-1.0)),
        (DBNClassifier, dict(dropout=1.0)),
        (DBNClassifier, dict(layer_params=[{"momentum": 1.5}])),
        (DBNClassifier, dict(layer_params=[{"learning_rte": 0.1}])),
        (DBNRegressor, dict(max_norm=-1.0)),
        (DBNRegressor, dict(device="foo")),
        (DBN, dict(up_down_learning_rate=0.0)),
        (DBN, dict(pretrain_epochs=-1)),
        (RBMEstimator, dict(momentum=1.5)),
        (RBMEstimator, dict(l1=-1.0)),
        (RBMEstimator, dict(device="foo")),
    ],
)
def test_estimators_refuse_a_bad_parameter_before_reading_any_data(maker, bad):
    """``fit(None, None)`` would fail on the data: the parameter's error comes first."""
    ((name, _),) = bad.items()
    with pytest.raises(ValueError, match=name if name != "layer_params" else "layer 1"):
        maker(**bad).fit(None, None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_an_unavailable_device_is_a_clear_error():
    with pytest.raises(ValueError, match="'cuda': not available"):
        DBNClassifier(device="cuda").fit(None, None)


class _Losses(loop_module.FitLoop):
    """A rule whose update returns a preset loss, as a float or left in a tensor."""

    def __init__(self, losses, as_tensor, check_every=64):
        self._init_loop(1, 1, 0.1, None, ())
        self.losses, self.as_tensor, self.check_every = losses, as_tensor, check_every
        self.weight = torch.zeros(1)
        self.synchronisations = 0

    def _update(self, rows, learning_rate):
        value = self.losses[int(rows[0])]
        if not np.isfinite(value):
            self.weight.fill_(float("nan"))  # a step on a non-finite gradient
        return torch.tensor(value) if self.as_tensor else value

    def _parameters(self):
        return [self.weight]

    def _rule_state(self):
        return {"weight": self.weight}

    def _load_rule_state(self, state):
        self.weight.copy_(state["weight"])

    def _read_losses(self, pending, check=True):
        self.synchronisations += bool(pending)
        super()._read_losses(pending, check)

    def _new_order(self, n_rows):
        return torch.arange(n_rows)


@pytest.mark.parametrize("check_every", [1, 3, 64])
def test_losses_left_on_the_device_are_read_in_bulk_with_the_same_figures(check_every):
    """Fine-tuning and label training return their loss as a tensor, so that a GPU is not
    synchronised at every update: the epoch's mean is the same, read once per check_every
    updates, and a non-finite loss is still a divergence at its own batch."""
    losses = [0.5, 0.25, 1.0, 0.75, 2.0, 0.125, 0.5]
    floats, tensors = _Losses(losses, False), _Losses(losses, True, check_every)
    floats.run_loop(len(losses))
    tensors.run_loop(len(losses))
    assert tensors.history[0]["loss"] == floats.history[0]["loss"] == sum(losses) / 7
    assert tensors.synchronisations == -(-len(losses) // check_every)
    broken = _Losses([0.5, 0.25, float("nan"), 0.75, 2.0], True, check_every)
    with pytest.raises(DivergenceError, match=r"at epoch 1, batch 3 \(loss nan\)"):
        broken.run_loop(5)
    assert broken.step == broken.batch == 0 and torch.isfinite(broken.weight).all()


def test_an_interrupt_in_the_last_update_of_an_epoch_stops_after_the_epoch_and_resumes(
    tmp_path,
):
    """A Ctrl-C during an epoch's last update used to stop before the epoch's bookkeeping,
    at "batch 5 of 5": a position that --resume refused ("cannot resume at batch 6 of an
    epoch ..."). The epoch now completes first."""
    straight = make_trainer("pcd").fit(BARS)

    class LastBatch(Callback):
        def on_batch_end(self, loop, batch, n_batches):
            if loop.epoch == 1 and batch == n_batches - 1:
                loop.interrupted = True  # what the SIGINT handler sets

    path = tmp_path / "ckpt.safetensors"
    with pytest.raises(KeyboardInterrupt):
        make_trainer("pcd", [LastBatch(), Checkpoint(path, every=100)]).fit(BARS)
    resumed = RBMTrainer.from_checkpoint(path)
    assert (resumed.epoch, resumed.batch, resumed.step, len(resumed.history)) == (2, 0, 10, 2)
    assert_same(straight, resumed.fit(BARS))
