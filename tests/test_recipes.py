"""Defaults from the data's size, presets, time budgets, the refit after early stopping and the
undertrained warning (deepbelief.recipes and the supervised DBN estimators)."""

from __future__ import annotations

import json
import subprocess
import types
import warnings

import numpy as np
import pytest
from conftest import SEED, command
from sklearn.datasets import load_iris

from deepbelief import DBNClassifier, DBNRegressor, load
from deepbelief.errors import UndertrainedWarning
from deepbelief.recipes import LARGE, PRESETS, TimeBudget, resolve, size_settings


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return (X - X.min(0)) / (X.max(0) - X.min(0)), y


# ---------------------------------------------------------------------- the size rule
def test_fewer_rows_get_more_epochs_and_large_data_the_dropout_recipe():
    sizes = [50, 112, 1_000, 5_000, 19_999, 60_000, 1_000_000]
    rules = [size_settings("classification", n) for n in sizes]
    epochs = [r["epochs"] for r in rules]
    assert epochs == sorted(epochs, reverse=True) and epochs[0] == 300 and epochs[-1] == 51
    assert [r["early_stopping"] for r in rules] == [False, True, True, True, True, False, False]
    small, large = size_settings("classification", 500), size_settings("classification", LARGE)
    assert (small["batch_size"], small["lr_schedule"], small["input_dropout"]) == (
        32,
        "constant",
        0.0,
    )
    assert (large["batch_size"], large["lr_schedule"], large["dropout"]) == (50, "linear", 0.2)
    assert size_settings("regression", 500)["optimizer"] == "adam"


def test_explicit_values_win_over_the_preset_which_wins_over_the_size_rule():
    params = DBNClassifier(preset="srivastava2014", epochs=7).get_params()
    values = resolve(params, "classification", 60_000)
    assert values["epochs"] == 7  # explicit
    assert values["hidden_layers"] == (500, 500, 2000)  # the preset's
    assert values["pretrain_epochs"] == (50, 50, 30)
    assert values["time_budget"] == PRESETS["srivastava2014"]["time_budget"]
    assert values["momentum"] == 0.9  # not "auto": untouched
    plain = resolve(DBNClassifier().get_params(), "classification", 60_000)
    assert plain["hidden_layers"] == (256, 256) and plain["time_budget"] is None
    assert (
        resolve(DBNClassifier(time_budget=60).get_params(), "classification", 10)["time_budget"]
        == 60
    )


def test_the_auto_learning_rate_follows_the_optimizer_and_the_hidden_units():
    """A classifier given optimizer="adam" fine-tuned with Adam at SGD's 0.1; Gaussian
    (linear) hidden units diverged in pretraining at 0.01 and in fine-tuning at 0.1."""

    def rate(task, **params):
        estimator = DBNClassifier(**params) if task == "classification" else DBNRegressor(**params)
        return resolve(estimator.get_params(), task, 500)["learning_rate"]

    assert rate("classification") == 0.1 and rate("regression") == 0.01
    assert rate("classification", optimizer="adam") == 0.001
    assert rate("regression", optimizer="sgd") == 0.1
    assert rate("classification", hidden="gaussian") == 0.01
    assert rate("classification", hidden=["bernoulli", "gaussian"]) == 0.01
    assert rate("classification", hidden="gaussian", learning_rate=0.2) == 0.2  # given: kept
    assert rate("classification", preset="srivastava2014", hidden="gaussian") == 0.25  # preset's
    from deepbelief.nn import DBN as DBNModule

    dbn = DBNModule.from_sizes([8, 6, 4], hidden="gaussian")
    layers = DBNClassifier(hidden="gaussian")._layer_settings(dbn)
    assert [layer["learning_rate"] for layer in layers] == [0.001, 0.001]
    # ReLU units over Gaussian inputs diverged at 0.01 on standardized digits; over binary
    # inputs (pixels, and the ReLU layer above) they keep the rates of binary units
    dbn = DBNModule.from_sizes([8, 6, 4], visible="gaussian", hidden="relu")
    layers = DBNClassifier(hidden="relu")._layer_settings(dbn)
    assert [layer["learning_rate"] for layer in layers] == [0.001, 0.01]
    dbn = DBNModule.from_sizes([8, 6, 4], hidden="relu")
    layers = DBNClassifier(hidden="relu")._layer_settings(dbn)
    assert [layer["learning_rate"] for layer in layers] == [0.1, 0.01]


@pytest.mark.stochastic
def test_a_classifier_of_relu_units_over_standardized_columns_trains():
    """It diverged (DivergenceError) at 0.01 in the first RBM's training."""
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit(X[:900]).transform(X)
    clf = DBNClassifier(visible="gaussian", hidden="relu", random_state=SEED)
    clf.fit(X[:900], y[:900])
    assert clf.score(X[900:1300], y[900:1300]) > 0.8


@pytest.mark.stochastic
def test_a_classifier_of_gaussian_hidden_units_trains():
    """It diverged (DivergenceError) with the rates of binary units."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    clf = DBNClassifier(hidden="gaussian", hidden_layers=(64, 64), random_state=SEED)
    clf.fit(X[:900] / 16, y[:900])
    assert clf.score(X[900:1300] / 16, y[900:1300]) > 0.85


def test_an_unknown_preset_is_refused_before_any_data(iris):
    with pytest.raises(ValueError, match="hinton2006, lee2009, srivastava2014"):
        DBNClassifier(preset="hinton").fit(*iris)
    with pytest.raises(ValueError, match="time_budget"):
        DBNClassifier(time_budget=-1).fit(*iris)


# ---------------------------------------------------------------------- time budgets
def test_time_budget_replans_the_epochs_from_the_measured_pace(monkeypatch):
    clock = types.SimpleNamespace(now=0.0)
    monkeypatch.setattr("deepbelief.recipes.time.perf_counter", lambda: clock.now)
    loop = types.SimpleNamespace(epochs=100, epoch=0)
    budget = TimeBudget(seconds=10.0, max_epochs=100)
    budget.on_train_begin(loop)
    clock.now, loop.epoch = 0.5, 1  # half a second an epoch: 20 fit
    metrics = {}
    budget.on_epoch_end(loop, metrics)
    assert loop.epochs == metrics["planned_epochs"] == 20
    clock.now, loop.epoch = 4.0, 2  # slower (2 s an epoch): 5 in all
    budget.on_epoch_end(loop, {})
    assert loop.epochs == 5
    clock.now, loop.epoch = 4.1, 4  # past 70 % of the plan: no more re-planning
    budget.on_epoch_end(loop, {})
    assert loop.epochs == 5
    slow = TimeBudget(seconds=1.0, max_epochs=3)
    loop = types.SimpleNamespace(epochs=10, epoch=0)
    slow.on_train_begin(loop)
    assert loop.epochs == 3  # never more than the most


@pytest.mark.filterwarnings("ignore::deepbelief.errors.UndertrainedWarning")
def test_a_spent_budget_leaves_one_epoch_per_phase(iris):
    est = DBNClassifier(
        hidden_layers=(8,), pretrain_epochs=5, epochs=40, time_budget=1e-6, random_state=0
    ).fit(*iris)
    assert [len(h) for h in est.pretrain_history_] == [1]
    assert len(est.validation_history_) == 1 and est.n_iter_ == 1
    assert est.settings_["time_budget"] == 1e-6


def test_under_a_time_budget_the_refit_runs_the_epochs_early_stopping_chose(iris):
    """With time left, the refit grew past the best epoch to fill it, up to ten times (here
    5,680 epochs for a best of 568, 13 s; now 3 s)."""
    est = DBNClassifier(hidden_layers=(8,), pretrain_epochs=2, time_budget=60.0, random_state=0)
    est.fit(*iris)
    assert est.best_epoch_ >= 1 and est.n_iter_ <= est.best_epoch_  # (fewer if time ran out)


# ---------------------------------------------------------------------- early stopping, refit
def test_defaults_on_a_small_table_refit_on_every_row_and_are_saved(iris, tmp_path):
    X, y = iris
    est = DBNClassifier(hidden_layers=(16,), random_state=0).fit(X, y)
    # 250 epochs at most: 50 + 30,000 / 150 rows
    assert est.settings_["early_stopping"] is True and est.settings_["epochs"] == 250
    # the search held out 20 % of the 150 rows; the refit trained on all of them for the
    # best epoch count, averaging the weights over its second half
    assert 1 <= est.best_epoch_ <= len(est.validation_history_) <= 300
    assert est.n_iter_ == est.best_epoch_ and "val_loss" not in est.history_[-1]
    # measured: 0.967 (seed 0)
    assert est.score(X, y) >= 0.9
    est.save(tmp_path / "m")
    back = load(tmp_path / "m")
    assert back.settings_ == est.settings_ and back.best_epoch_ == est.best_epoch_
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))


def test_explicit_early_stopping_off_trains_the_epochs_on_all_rows(iris):
    est = DBNRegressor(hidden_layers=(8,), epochs=6, early_stopping=False, random_state=0)
    est.fit(iris[0][:, :3], iris[0][:, 3])
    assert est.n_iter_ == 6 and not hasattr(est, "best_epoch_")


def test_a_run_that_barely_moves_the_loss_warns(iris):
    with pytest.warns(UndertrainedWarning, match="barely below its start") as caught:
        DBNClassifier(
            hidden_layers=(8,), pretrain=False, epochs=2, learning_rate=1e-6, random_state=0
        ).fit(*iris)
    assert [w.filename for w in caught] == [__file__]  # the user's line, not the library's
    with warnings.catch_warnings():
        warnings.simplefilter("error", UndertrainedWarning)
        DBNClassifier(hidden_layers=(16,), random_state=0).fit(*iris)


# ---------------------------------------------------------------------- the command
def run(*args) -> subprocess.CompletedProcess:
    argv = command() + [str(a) for a in args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600)


def test_the_command_uses_the_recipe_and_reports_its_choices(tmp_path, iris):
    X, y = iris
    rows = ["a,b,c,d,label"] + [",".join(map(str, [*x, int(t)])) for x, t in zip(X, y)]
    (tmp_path / "iris.csv").write_text("\n".join(rows) + "\n")
    result = run("train", tmp_path / "iris.csv", "-o", tmp_path / "m", "--layers", "16", "--json")
    assert result.returncode == 0, result.stderr
    card = json.loads(result.stdout)
    assert card["rows"] == {"train": 150, "held_out": 0}  # nothing kept out of the model
    assert card["settings"]["early_stopping"] is True and card["settings"]["epochs"] == 250
    assert 1 <= card["early_stopping"]["best_epoch"] <= card["early_stopping"]["epochs_run"]
    pretrain_epochs = card["settings"]["pretrain_epochs"]  # what ran, beside what was planned
    assert card["epochs_run"] == {
        "pretraining": [pretrain_epochs],  # one layer of 16
        "fine_tuning": card["early_stopping"]["best_epoch"],  # the refit's
    }
    help_text = run("train", "--help").stdout
    assert "hinton2006" in help_text and "--time-budget" in help_text
    bad = run("train", tmp_path / "iris.csv", "-o", tmp_path / "x", "--preset", "nope")
    assert bad.returncode == 2 and "--preset" in bad.stderr and not (tmp_path / "x").exists()


def test_generative_presets_are_valid_dbn_parameters_and_train_a_label_model(iris):
    """Each of GENERATIVE_PRESETS passes the DBN's parameter rules and, its layers and epochs
    shrunk to iris, trains a label model that classifies and samples by class."""
    from deepbelief import DBN
    from deepbelief.recipes import GENERATIVE_PRESETS

    X, y = iris
    for name, params in GENERATIVE_PRESETS.items():
        DBN(**params)._check_params()
        small = {**params, "hidden_layers": (6, 5, 8), "pretrain_epochs": 2, "label_epochs": 2}
        model = DBN(**small, random_state=0).fit(X, y)
        assert model.predict(X).shape == (len(X),), name
        assert model.sample(3, label=y[0], gibbs_steps=5).shape == (3, 4), name


def test_the_conv_preset_brings_its_conv_layers_unless_given():
    values = resolve(DBNClassifier(preset="lee2009").get_params(), "classification", 60_000)
    assert values["conv_layers"] == [(24, 5, 2), (40, 5, 2)]
    assert values["hidden_layers"] == (200,)
    given = DBNClassifier(preset="lee2009", conv_layers=[(8, 5, 2)]).get_params()
    assert resolve(given, "classification", 60_000)["conv_layers"] == [(8, 5, 2)]
    assert resolve(DBNClassifier().get_params(), "classification", 10)["conv_layers"] is None


def test_the_command_line_knows_every_preset():
    from deepbelief import cli

    assert set(cli.PRESETS) == set(PRESETS)


def test_the_undertrained_warning_says_when_the_loss_rose_and_not_when_there_was_none(
    monkeypatch,
):
    from deepbelief import dbn_estimators

    watch = dbn_estimators._LossWatch.__new__(dbn_estimators._LossWatch)
    watch.X = watch.y = watch.task = None
    for start, end, expected in (
        (1.0, 1.2, "above its start.*raise the learning rate"),
        (1.0, 1.6, "above its start.*lower the learning rate"),  # it grew: steps too large
        (1.0, 0.99, "barely below.*raise the learning rate"),
    ):
        watch.start = start
        monkeypatch.setattr(dbn_estimators, "evaluate", lambda *a, end=end: {"val_loss": end})
        with pytest.warns(UndertrainedWarning, match=expected):
            watch.check(None, 3)
    watch.start = 0.0  # a target already fitted (a constant one): nothing to warn about
    with warnings.catch_warnings():
        warnings.simplefilter("error", UndertrainedWarning)
        watch.check(None, 3)
