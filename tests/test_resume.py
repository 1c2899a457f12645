"""Checkpoints and exact resume of the DBN estimators' fit: a fit interrupted (KeyboardInterrupt
in the middle of an epoch, a divergence, or a hard crash that leaves only the periodic
checkpoint) in pretraining, fine-tuning or up-down and fitted again with the same checkpoint
ends bit-identical to an uninterrupted fit; foreign, corrupt and mismatched checkpoints are
refused."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import deepbelief
from deepbelief import DBN, DBNClassifier, DBNRegressor, training
from deepbelief import finetune as finetune_module
from deepbelief import loop as loop_module
from deepbelief.errors import DivergenceError, ModelFileError
from deepbelief.io import read_file, write_file
from deepbelief.label_training import LabelBackprop, LabelTraining

PRETRAIN_EPOCHS, FINETUNE_EPOCHS, UP_DOWN_EPOCHS, BATCH = 4, 6, 4, 25
COMMON = dict(
    hidden_layers=(12, 8),  # layer 2 is the one RBM with 8 hidden units
    pretrain_epochs=PRETRAIN_EPOCHS,
    pretrain_batch_size=BATCH,
    sample_inputs=True,  # layer 2's input is drawn: a resume must draw it again exactly
    random_state=3,
    device="cpu",
)
SETTINGS = {
    "classifier": dict(
        COMMON,
        # persistent chains and centering offsets to restore
        layer_params=[{}, {"sampler": "pcd", "n_chains": 10, "centering": True}],
        epochs=FINETUNE_EPOCHS,
        batch_size=BATCH,
        dropout=0.2,
        early_stopping=True,  # the validation split and the best snapshot
        validation_fraction=0.2,
        n_iter_no_change=FINETUNE_EPOCHS,
    ),
    # average_epochs: the running average (from epoch 2 on) is part of the state to restore
    "regressor": dict(
        COMMON, epochs=FINETUNE_EPOCHS, batch_size=BATCH, head_epochs=2, average_epochs=5
    ),
    "dbn": dict(COMMON, up_down_epochs=UP_DOWN_EPOCHS),
}
MAKERS = {"classifier": DBNClassifier, "regressor": DBNRegressor, "dbn": DBN}


class HardCrash(Exception):
    """Stands for kill -9: nothing catches it, so only the periodic checkpoint is on disk."""


@pytest.fixture(scope="module")
def data():
    X, y = load_digits(return_X_y=True)
    X, y = X[:200] / 16.0, y[:200]
    return {
        "classifier": (X, y),
        "regressor": (X, X.mean(1) + y / 10.0),
        "dbn": (X, y),  # with labels: the generative label model
    }


def make(kind, **changes):
    return MAKERS[kind](**{**SETTINGS[kind], **changes})


# ------------------------------------------------------------------ simulated crashes
def in_phase(loop, phase, finetune_runs) -> bool:
    """Whether the fit loop ``loop`` runs ``phase``: pretraining of layer 2, fine-tuning (the
    first fine-tuning run: with early stopping, the search on the validation split), the refit
    on all rows after early stopping (the second run) or up-down. ``finetune_runs`` lists the
    fine-tuning runs seen so far."""
    if phase == "pretrain":
        return isinstance(loop, training.RBMTrainer) and loop.model.n_hidden == 8
    if phase in ("finetune", "refit"):
        if not isinstance(loop, finetune_module.FinetuneResult):
            return False
        if loop not in finetune_runs:
            finetune_runs.append(loop)
        return finetune_runs.index(loop) == (0 if phase == "finetune" else 1)
    if phase == "labels":
        return type(loop) is LabelTraining
    if phase == "label_backprop":
        return isinstance(loop, LabelBackprop)
    return isinstance(loop, finetune_module.UpDown)


def crash_in_epoch(monkeypatch, phase, epoch, error):
    """Raise ``error`` in the middle (after 3 updates) of ``epoch`` (1-based) of ``phase``;
    with ``error=DivergenceError``, turn the next update's parameters to NaN instead, so that
    the fit loop itself finds the divergence."""
    original = loop_module.call
    runs = []

    def call(callbacks, hook, *args):
        loop = args[0]
        if hook == "on_batch_end" and in_phase(loop, phase, runs) and loop.epoch == epoch - 1:
            if args[1] == 2:
                if error is DivergenceError:
                    with torch.no_grad():
                        next(iter(loop._parameters())).fill_(float("nan"))
                else:
                    raise error("simulated crash")
        return original(callbacks, hook, *args)

    monkeypatch.setattr(loop_module, "call", call)


def count_work(monkeypatch):
    """Count the RBM epochs, fine-tuning epochs (a resumed part of one counts as one) and
    up-down updates that run from now on."""
    counts = {"rbm": 0, "finetune": 0, "up_down": 0}

    def counting(owner, name, key):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            counts[key] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    counting(training.RBMTrainer, "_run_epoch", "rbm")
    counting(finetune_module.FinetuneResult, "_run_epoch", "finetune")
    counting(finetune_module, "_up_down_step", "up_down")
    return counts


def position(path):
    """(phase, layer, completed epochs of that phase, completed updates of the next epoch) of
    a checkpoint file."""
    kind, tree = read_file(path)
    assert kind == "fit-checkpoint"
    if tree["phase"] == "pretrain":
        trainer = tree["pretrain"]["trainer"]
        return "pretrain", tree["pretrain"]["layer"], trainer["epoch"], trainer["batch"]
    part = tree["finetune" if tree["phase"] == "refit" else tree["phase"]]
    return tree["phase"], None, part["epoch"], part["batch"]


def expected_work(kind, reference, where):
    phase, layer, done, batches_done = where
    work = {"rbm": 0, "finetune": 0, "up_down": 0}
    if phase == "pretrain":
        above = len(SETTINGS[kind]["hidden_layers"]) - 1 - layer
        work["rbm"] = PRETRAIN_EPOCHS - done + PRETRAIN_EPOCHS * above
    if kind == "dbn":
        left = UP_DOWN_EPOCHS - (done if phase == "up_down" else 0)
        work["up_down"] = left * (200 // BATCH) - (batches_done if phase == "up_down" else 0)
    elif kind == "classifier":  # early stopping: the search, then the refit on all rows
        search = len(reference.validation_history_)
        work["finetune"] = {
            "pretrain": search + reference.n_iter_,
            "finetune": search - done + reference.n_iter_,
            "refit": reference.n_iter_ - done,
        }[phase]
    else:
        work["finetune"] = reference.n_iter_ - (done if phase == "finetune" else 0)
    return work


# ------------------------------------------------------------------ comparisons
def without_seconds(history):
    if isinstance(history, list):
        return [without_seconds(h) for h in history]
    return {k: v for k, v in history.items() if k != "seconds"}


def assert_same_fit(kind, reference, resumed, X):
    """Bit-identical parameters, generator, predictions and histories."""
    modules = [("dbn_", reference.dbn_, resumed.dbn_)]
    if kind != "dbn":
        modules.append(("network_", reference.network_, resumed.network_))
    for label, a, b in modules:
        state_a, state_b = a.state_dict(), b.state_dict()
        assert set(state_a) == set(state_b), label
        for name, tensor in state_a.items():
            assert torch.equal(tensor, state_b[name]), f"{label}{name}"
    assert torch.equal(reference.generator_.get_state(), resumed.generator_.get_state())
    assert without_seconds(reference.pretrain_history_) == without_seconds(
        resumed.pretrain_history_
    )
    assert [len(h) for h in resumed.pretrain_history_] == [PRETRAIN_EPOCHS] * 2
    if kind == "classifier":
        np.testing.assert_array_equal(reference.predict_proba(X), resumed.predict_proba(X))
        assert resumed.best_epoch_ == reference.best_epoch_
        assert without_seconds(reference.validation_history_) == without_seconds(
            resumed.validation_history_
        )
    elif kind == "regressor":
        np.testing.assert_array_equal(reference.predict(X), resumed.predict(X))
    else:
        np.testing.assert_array_equal(reference.transform(X), resumed.transform(X))
        np.testing.assert_array_equal(reference.predict_proba(X), resumed.predict_proba(X))
        assert without_seconds(reference.up_down_history_) == without_seconds(
            resumed.up_down_history_
        )
        assert len(resumed.up_down_history_) == UP_DOWN_EPOCHS
    if kind != "dbn":
        assert without_seconds(reference.history_) == without_seconds(resumed.history_)
        assert resumed.n_iter_ == reference.n_iter_


@pytest.fixture(scope="module")
def references(data):
    """Uninterrupted fits, without a checkpoint."""
    return {kind: make(kind).fit(*data[kind]) for kind in MAKERS}


# A KeyboardInterrupt after the third update of epoch 3 (checkpoint_every=3: the periodic
# file would hold the previous phase's end) writes that update: epoch 2 done, 3 updates of
# epoch 3. A divergence in epoch 3 writes the start of epoch 3. A hard crash in epoch 4 with
# checkpoint_every=2 leaves epoch 2 on disk (epoch 3 was not written).
CRASHES = [
    ("classifier", "pretrain", KeyboardInterrupt),
    ("classifier", "finetune", KeyboardInterrupt),
    ("classifier", "pretrain", HardCrash),
    ("classifier", "finetune", HardCrash),
    ("classifier", "pretrain", DivergenceError),
    ("classifier", "finetune", DivergenceError),
    ("classifier", "refit", KeyboardInterrupt),
    ("classifier", "refit", HardCrash),
    ("classifier", "refit", DivergenceError),
    ("regressor", "pretrain", KeyboardInterrupt),
    ("regressor", "finetune", KeyboardInterrupt),
    ("regressor", "finetune", DivergenceError),
    ("dbn", "pretrain", KeyboardInterrupt),
    ("dbn", "up_down", KeyboardInterrupt),
    ("dbn", "up_down", HardCrash),
    ("dbn", "up_down", DivergenceError),
]


@pytest.mark.parametrize("kind, phase, error", CRASHES)
def test_a_fit_resumed_after_a_crash_ends_bit_identical(
    kind, phase, error, data, references, monkeypatch, tmp_path
):
    X, y = data[kind]
    path = tmp_path / "fit.ckpt"
    epoch, every = (4, 2) if error is HardCrash else (3, 3)
    crash_in_epoch(monkeypatch, phase, epoch, error)
    with pytest.raises(error):
        make(kind).fit(X, y, checkpoint=path, checkpoint_every=every)
    monkeypatch.undo()
    where = position(path)
    batches_done = 3 if error is KeyboardInterrupt else 0
    assert where == (phase, 1 if phase == "pretrain" else None, 2, batches_done)

    counts = count_work(monkeypatch)
    resumed = make(kind).fit(X, y, checkpoint=path, checkpoint_every=every)
    assert counts == expected_work(kind, references[kind], where)  # not a fresh start
    assert_same_fit(kind, references[kind], resumed, X)


LABEL_PHASES = [("labels", "labels"), ("label_backprop", "finetune")]
LABEL_SETTINGS = dict(SETTINGS["dbn"], label_training="hybrid", label_epochs=5, finetune_epochs=5)


@pytest.fixture(scope="module")
def label_reference(data):
    return DBN(**LABEL_SETTINGS).fit(*data["dbn"])


@pytest.mark.parametrize("error", [KeyboardInterrupt, HardCrash, DivergenceError])
@pytest.mark.parametrize("phase, saved_phase", LABEL_PHASES)
def test_label_training_resumed_after_a_crash_ends_bit_identical(
    phase, saved_phase, error, data, label_reference, monkeypatch, tmp_path
):
    """The hybrid training of the label model's top RBM and the backprop through its
    recognition path (after up-down, the last phase) are phases of the checkpoint like the
    others."""
    X, y = data["dbn"]
    reference = label_reference
    path = tmp_path / "fit.ckpt"
    epoch, every = (4, 2) if error is HardCrash else (3, 3)
    crash_in_epoch(monkeypatch, phase, epoch, error)
    with pytest.raises(error):
        DBN(**LABEL_SETTINGS).fit(X, y, checkpoint=path, checkpoint_every=every)
    monkeypatch.undo()
    batches_done = 3 if error is KeyboardInterrupt else 0
    assert position(path) == (saved_phase, None, 2, batches_done)
    resumed = DBN(**LABEL_SETTINGS).fit(X, y, checkpoint=path, checkpoint_every=every)
    assert_same_fit("dbn", reference, resumed, X)
    for name in ("label_history_", "finetune_history_"):
        history = getattr(resumed, name)
        assert without_seconds(history) == without_seconds(getattr(reference, name))
        assert len(history) == 5


@pytest.mark.parametrize("kind", list(MAKERS))
def test_a_finished_checkpoint_gives_the_same_model_without_training(
    kind, data, references, monkeypatch, tmp_path
):
    X, y = data[kind]
    path = tmp_path / "fit.ckpt"
    checkpointed = make(kind).fit(X, y, checkpoint=path, checkpoint_every=2)
    assert_same_fit(kind, references[kind], checkpointed, X)  # checkpoints change nothing
    assert path.exists()
    phase, _, done, _ = position(path)
    assert phase == {"classifier": "refit", "regressor": "finetune", "dbn": "up_down"}[kind]
    assert done == (UP_DOWN_EPOCHS if kind == "dbn" else references[kind].n_iter_)
    counts = count_work(monkeypatch)
    again = make(kind).fit(X, y, checkpoint=path)
    assert counts == {"rbm": 0, "finetune": 0, "up_down": 0}
    assert_same_fit(kind, references[kind], again, X)


def test_resuming_with_another_generator_state_changes_the_weights(
    data, references, monkeypatch, tmp_path
):
    """The comparisons above catch a resume that does not restore the random state: a
    checkpoint of fine-tuning's epoch 3 resumes to the reference, but the same checkpoint with
    the generator of another seed ends with other weights."""
    X, y = data["classifier"]
    reference = references["classifier"]
    path = tmp_path / "fit.ckpt"
    crash_in_epoch(monkeypatch, "finetune", 4, KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        make("classifier").fit(X, y, checkpoint=path)
    monkeypatch.undo()
    kind, tree = read_file(path)
    assert (tree["phase"], tree["finetune"]["epoch"]) == ("finetune", 3)
    assert_same_fit("classifier", reference, make("classifier").fit(X, y, checkpoint=path), X)

    tree["finetune"]["generator"] = torch.Generator().manual_seed(99).get_state()
    write_file(path, kind, tree)
    resumed = make("classifier").fit(X, y, checkpoint=path)
    # the search on the validation split goes another way (the refit on all rows starts again
    # from the generator's state after pretraining, so only the search shows it)
    search = without_seconds(resumed.validation_history_)
    assert search[:3] == without_seconds(reference.validation_history_)[:3]
    assert search[3:] != without_seconds(reference.validation_history_)[3:]


def checkpoint_of(kind, data, path):
    """A finished checkpoint of a quick fit; returns the quick settings."""
    quick = {"pretrain_epochs": 1, ("up_down_epochs" if kind == "dbn" else "epochs"): 1}
    make(kind, **quick).fit(*data[kind], checkpoint=path)
    return quick


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(params=dict(learning_rate=0.05)), "learning_rate='auto' (now 0.05)"),
        (dict(params=dict(random_state=4)), "random_state=3 (now 4)"),
        (dict(X=lambda X: X[:150]), "shape (200, 64), not (150, 64)"),
        (dict(X=lambda X: X + 0.25 * (np.arange(X.size) == 7).reshape(X.shape)), "other values"),
        (dict(y=lambda y: np.roll(y, 1)), "different y"),
    ],
)
def test_a_checkpoint_of_other_parameters_or_data_is_refused(change, message, data, tmp_path):
    path = tmp_path / "fit.ckpt"
    quick = checkpoint_of("classifier", data, path)
    before = path.read_bytes()
    X, y = data["classifier"]
    X = change.get("X", lambda v: v)(X)
    y = change.get("y", lambda v: v)(y)[: len(X)]
    estimator = make("classifier", **quick, **change.get("params", {}))
    with pytest.raises(ModelFileError, match="refusing") as error:
        estimator.fit(X, y, checkpoint=path)
    assert str(path) in str(error.value)
    assert message in str(error.value)
    assert path.read_bytes() == before  # left as it was


def test_a_checkpoint_of_another_estimator_or_a_model_file_is_refused(data, tmp_path):
    path = tmp_path / "fit.ckpt"
    quick = checkpoint_of("regressor", data, path)
    X, y = data["classifier"]
    with pytest.raises(ModelFileError, match="DBNRegressor") as error:
        make("classifier", **quick).fit(X, y, checkpoint=path)
    assert str(path) in str(error.value)
    model_file = tmp_path / "model.safetensors"
    deepbelief.save(make("classifier", **quick).fit(X, y), model_file)
    with pytest.raises(ModelFileError, match="not a fit checkpoint") as error:
        make("classifier", **quick).fit(X, y, checkpoint=model_file)
    assert str(model_file) in str(error.value)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_corrupt_checkpoint_is_refused(damage, data, tmp_path):
    path = tmp_path / "fit.ckpt"
    quick = checkpoint_of("dbn", data, path)
    payload = bytearray(path.read_bytes())
    if damage == "truncate":
        payload = payload[: len(payload) // 2]
    else:
        payload[-5] ^= 0xFF
    path.write_bytes(bytes(payload))
    with pytest.raises(ModelFileError) as error:
        make("dbn", **quick).fit(*data["dbn"], checkpoint=path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("kind", list(MAKERS))
@pytest.mark.parametrize("every", [0, -1, 1.5, True])
def test_checkpoint_every_must_be_a_positive_integer(kind, every, data, tmp_path):
    with pytest.raises(ValueError, match="checkpoint_every"):
        make(kind).fit(*data[kind], checkpoint=tmp_path / "c", checkpoint_every=every)
    assert not (tmp_path / "c").exists()


def test_a_warm_start_refit_takes_no_checkpoint(data, tmp_path):
    X, y = data["classifier"]
    estimator = make("classifier", pretrain_epochs=1, epochs=1, warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match="warm_start"):
        estimator.fit(X, y, checkpoint=tmp_path / "c")


@pytest.mark.parametrize("kind", ["classifier", "dbn"])
def test_a_resumed_time_budget_counts_the_time_before_the_interruption(
    kind, data, monkeypatch, tmp_path
):
    """A resumed run started its time budget afresh: 14.6 s of training against a 12 s
    budget; and each pretraining layer got its whole share again."""
    X, y = data[kind]
    path = tmp_path / "fit.ckpt"
    budget = {"time_budget": 600.0, **({"finetune_epochs": 2} if kind == "dbn" else {})}
    crash_in_epoch(monkeypatch, "pretrain", 2, KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        make(kind, **budget).fit(X, y, checkpoint=path)
    monkeypatch.undo()
    name, tree = read_file(path)
    assert 0 < tree["seconds"] < 600
    tree["seconds"] = 599.0  # as if the run had spent all but a second before it stopped
    write_file(path, name, tree)
    resumed = make(kind, **budget).fit(X, y, checkpoint=path)
    assert resumed._deadline.spent() >= 599.0
    if kind == "classifier":  # (the generative DBN budgets its last phase alone)
        pretrained = [len(h) for h in resumed.pretrain_history_]
        assert pretrained[1] == 2  # the layer it stopped in: no time left for its 4 epochs
