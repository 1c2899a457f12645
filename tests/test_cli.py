"""The ``deepbelief`` command, in process through ``main(argv)``: the CSV workflows, every
subcommand, configuration files."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import deepbelief
from deepbelief.cli import main
from deepbelief.data import load_dataset
from deepbelief.model_dir import load_model, read_card

FAST = ["--layers", "16", "--pretrain-epochs", "3", "--epochs", "30", "--quiet"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def binary_csv(tmp_path_factory):
    """The tutorial's CSV: numeric features, last column a yes/no label (60 % 'no')."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 6))
    score = X[:, 0] + 0.8 * X[:, 1] * X[:, 2] - 0.5 * X[:, 3] + 0.3
    label = np.where(score > np.quantile(score, 0.6), "yes", "no")
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    frame["label"] = label
    folder = tmp_path_factory.mktemp("binary")
    frame.iloc[:400].to_csv(folder / "train.csv", index=False)
    frame.iloc[400:].to_csv(folder / "test.csv", index=False)
    frame.iloc[400:].drop(columns="label").to_csv(folder / "unlabelled.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def binary_model(binary_csv):
    model = binary_csv / "model"
    code = main(["train", str(binary_csv / "train.csv"), "-o", str(model), *FAST])
    assert code == 0
    return model


def test_the_report_plots_the_early_stopping_search_beside_the_refit(
    binary_model, tmp_path, capsys, monkeypatch
):
    """The search on the validation split, which chose the refit's epochs, was not shown."""
    from deepbelief import plots

    seen = {}
    plot = plots.plot_learning_curves

    def recording(histories, path, title=None):
        seen.update(histories)
        return plot(histories, path, title)

    monkeypatch.setattr(plots, "plot_learning_curves", recording)
    code, _, err = run(capsys, "report", binary_model, "-o", tmp_path / "report")
    assert code == 0, err
    search, refit = seen["early-stopping search"], seen["fine-tune"]
    assert "val_loss" in search[0] and len(refit) <= len(search)


def test_tutorial_csv_trains_and_predicts_above_the_majority_class(
    binary_model, binary_csv, capsys
):
    code, out, _ = run(capsys, "evaluate", binary_model, binary_csv / "test.csv", "--json")
    assert code == 0
    metrics = json.loads(out)
    truth = pd.read_csv(binary_csv / "test.csv")["label"]
    majority = truth.value_counts(normalize=True).max()
    assert metrics["accuracy"] >= majority + 0.15, (metrics["accuracy"], majority)
    assert set(metrics) >= {"accuracy", "f1_macro", "log_loss", "confusion_matrix"}
    assert np.sum(metrics["confusion_matrix"]) == len(truth)


def test_predict_with_or_without_the_target_column_and_after_reloading(
    binary_model, binary_csv, tmp_path, capsys
):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    assert run(capsys, "predict", binary_model, binary_csv / "test.csv", "-o", first)[0] == 0
    assert run(capsys, "predict", binary_model, binary_csv / "unlabelled.csv", "-o", second)[0] == 0
    a, b = pd.read_csv(first), pd.read_csv(second)
    assert list(a.columns) == ["label"] and len(a) == 100
    pd.testing.assert_frame_equal(a, b)
    assert set(a["label"]) <= {"yes", "no"}
    code, out, _ = run(capsys, "predict", binary_model, binary_csv / "unlabelled.csv", "--proba")
    assert code == 0
    printed = pd.read_csv(__import__("io").StringIO(out))
    pd.testing.assert_series_equal(printed["label"], a["label"])
    np.testing.assert_allclose(printed[["p(no)", "p(yes)"]].sum(axis=1), 1.0, rtol=1e-6)
    # the model directory loaded in Python (estimator + saved preprocessing) predicts the same
    estimator, _, spec = load_model(binary_model)
    assert type(estimator).__name__ == "DBNClassifier"
    X, target = spec.features(load_dataset(binary_csv / "test.csv", no_target=True))
    assert target.name == "label"
    assert list(estimator.predict(X)) == list(a["label"])


def test_regression_csv_reaches_r2(tmp_path, capsys):
    rng = np.random.default_rng(1)
    X = rng.uniform(-2, 2, size=(600, 3))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] ** 2 - X[:, 2]
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame["y"] = y
    frame.to_csv(tmp_path / "reg.csv", index=False)
    model = tmp_path / "model"
    argv = ["train", tmp_path / "reg.csv", "-o", model, "--layers", "32", "--pretrain-epochs",
            "5", "--epochs", "150", "--dropout", "0", "--validation-split", "0.2", "--quiet",
            "--json"]  # fmt: skip
    code, out, _ = run(capsys, *argv)
    assert code == 0
    card = json.loads(out)
    assert card["task"] == "regression" and card["model"] == "regressor"
    assert card["metrics"]["r2"] >= 0.85, card["metrics"]
    code, out, _ = run(capsys, "evaluate", model, tmp_path / "reg.csv", "--json")
    assert json.loads(out)["r2"] >= 0.85
    # a target cell that is not a number, empty or infinite: named, not a library's words
    for cell, shown in (("abc", "'abc' is not a finite number"), ("", "missing"),
                        ("inf", "inf is not a finite number")):  # fmt: skip
        broken = frame.head(20).astype(object)
        broken.loc[7, "y"] = cell
        broken.to_csv(tmp_path / "broken.csv", index=False)
        code, _, err = run(capsys, "evaluate", model, tmp_path / "broken.csv")
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert f"broken.csv: target row 8: {shown}" in err, err


def test_categorical_and_missing_values_end_to_end(tmp_path, capsys):
    rng = np.random.default_rng(2)
    n = 400
    colour = rng.choice(["red", "green", "blue"], size=n)
    size = rng.normal(size=n)
    label = np.where((colour == "red") | (size > 1.0), "A", "B")
    frame = pd.DataFrame({"id": [f"row{i}" for i in range(n)], "colour": colour, "size": size})
    frame["label"] = label
    frame.loc[rng.choice(n, 30, replace=False), "size"] = np.nan
    frame.loc[rng.choice(n, 20, replace=False), "colour"] = np.nan
    frame.to_csv(tmp_path / "mixed.csv", index=False)
    model = tmp_path / "model"
    code, out, err = run(capsys, "train", tmp_path / "mixed.csv", "-o", model, "--drop-ids",
                         *FAST, "--validation-split", "0.2", "--json")  # fmt: skip
    assert code == 0, err
    card = json.loads(out)
    assert card["metrics"]["accuracy"] >= 0.85, card["metrics"]
    columns = [c["name"] for c in card["input"]["preprocessor"]["columns"]]
    assert columns == ["colour", "size"]  # the id column was dropped
    assert card["input"]["preprocessor"]["dropped"] == ["id"]
    quick = ["--layers", "8", "--pretrain-epochs", "1", "--epochs", "1"]
    frame.drop(columns="id").to_csv(tmp_path / "no-id.csv", index=False)
    said = {"mixed": "; --drop-ids dropped 'id')", "no-id": "; --drop-ids found no identifier"}
    for name, summary in said.items():  # it dropped them silently
        code, _, err = run(capsys, "train", tmp_path / f"{name}.csv", "-o", tmp_path / name,
                           "--drop-ids", *quick)  # fmt: skip
        assert code == 0 and summary in err.strip().splitlines()[-1], err
    estimator = deepbelief.load(model / "model.safetensors")
    assert estimator.dbn_.rbms[0].visible.name == "mixed"
    code, out, _ = run(capsys, "predict", model, tmp_path / "mixed.csv")
    assert code == 0 and len(pd.read_csv(__import__("io").StringIO(out))) == n


def test_unsupervised_model_transforms_samples_and_scores(tmp_path, capsys):
    rng = np.random.default_rng(3)
    X = (rng.random((300, 12)) < np.linspace(0.1, 0.9, 12)).astype(float)
    np.save(tmp_path / "x.npy", X)
    model = tmp_path / "model"
    code, out, err = run(capsys, "train", tmp_path / "x.npy", "-o", model, "--layers", "8", "4",
                         "--pretrain-epochs", "3", "--validation-split", "0.2", "--quiet",
                         "--json")  # fmt: skip
    assert code == 0, err
    card = json.loads(out)
    assert card["model"] == "unsupervised" and "reconstruction_error" in card["metrics"]
    assert run(capsys, "transform", model, tmp_path / "x.npy", "-o", tmp_path / "f.npy")[0] == 0
    assert np.load(tmp_path / "f.npy").shape == (300, 4)
    assert run(capsys, "sample", model, "-n", "5", "--gibbs-steps", "10", "-o",
               tmp_path / "s.csv")[0] == 0  # fmt: skip
    samples = pd.read_csv(tmp_path / "s.csv")
    assert samples.shape == (5, 12)
    code, out, _ = run(capsys, "evaluate", model, tmp_path / "x.npy", "--json", "--log-likelihood")
    scores = json.loads(out)
    assert code == 0 and scores["log_likelihood_bound"] < 0


@pytest.mark.parametrize("rows", ["images", "flat"])
def test_generative_model_samples_by_class_as_png_and_reports(rows, tmp_path, capsys):
    """Flat rows of a square width (the README's digits.npz: 64 columns) draw as square
    images; PNG output was refused for them ("PNG needs image data")."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    train = X[:500].reshape(-1, 8, 8) if rows == "images" else X[:500]
    np.savez(tmp_path / "digits.npz", X=train, y=y[:500])
    model = tmp_path / "model"
    argv = ["train", tmp_path / "digits.npz", "-o", model, "--model", "generative",
            "--layers", "32", "64", "--pretrain-epochs", "3", "--quiet"]  # fmt: skip
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    png = tmp_path / "samples.png"
    assert run(capsys, "sample", model, "-n", "4", "--gibbs-steps", "20", "-o", png)[0] == 0
    image = __import__("matplotlib.image").image.imread(png)
    assert image.std() > 0.01
    assert run(capsys, "sample", model, "-n", "3", "--label", "7", "-o", tmp_path / "7.npy")[0] == 0
    assert np.load(tmp_path / "7.npy").shape == (3, 64)
    csv = tmp_path / "drawn.csv"  # each row's class: the label units' (it was left out)
    assert run(capsys, "sample", model, "-n", "30", "--gibbs-steps", "20", "-o", csv)[0] == 0
    drawn = pd.read_csv(csv)
    assert drawn.shape == (30, 65) and drawn.columns[-1] == "label"
    assert drawn["label"].isin(range(10)).all() and drawn["label"].nunique() > 1
    assert run(capsys, "sample", model, "-n", "4", "--label", "7", "-o", csv)[0] == 0
    assert (pd.read_csv(csv)["label"] == 7).all()
    code, out, err = run(capsys, "report", model, "-o", tmp_path / "report", "--json")
    assert code == 0, err
    html = (tmp_path / "report" / "report.html").read_text()
    assert "data:image/png;base64," in html and "filters" in html.lower()
    assert "Samples of each class" in html  # a generative model's report had no samples
    grid = __import__("matplotlib.image").image.imread(tmp_path / "report" / "samples.png")
    assert grid.shape[0] == (10 * (8 + 1) + 1) * 4 and grid.std() > 0.01  # a row per class
    assert str(tmp_path / "report" / "samples.png") in json.loads(out)["plots"]
    code, out, _ = run(capsys, "info", model, "--json")
    summary = json.loads(out)
    assert summary["model"] == "generative" and summary["classes"] == list(range(10))
    assert summary["fine_tuning"]["epochs"] == 0  # its training after pretraining, by phase:
    assert summary["label_training"]["epochs"] > 0 and summary["up_down"]["epochs"] > 0
    text = run(capsys, "info", model)[1]
    assert "label training: " in text and "up-down: " in text
    assert "up-down epochs" in html and "label training epochs" in html
    # the classes as predict --json gives them (evaluate and info gave strings: "0", "1" ...)
    predicted = json.loads(run(capsys, "predict", model, tmp_path / "digits.npz", "--json")[1])
    scored = json.loads(run(capsys, "evaluate", model, tmp_path / "digits.npz", "--json")[1])
    assert predicted["classes"] == scored["classes"] == summary["classes"]
    assert [layer["hidden"] for layer in summary["layers"]] == [32, 64]
    # the bound of rows without their labels: the bound alone (it used to ask for the labels)
    np.save(tmp_path / "images.npy", X[500:540].reshape(-1, *train.shape[1:]))
    code, out, err = run(capsys, "evaluate", model, tmp_path / "images.npy", "--json",
                         "--log-likelihood")  # fmt: skip
    assert code == 0, err
    assert list(json.loads(out)) == ["log_likelihood_bound"]


def test_the_report_of_an_unsupervised_image_model_shows_its_samples(tmp_path, capsys):
    from sklearn.datasets import load_digits

    X = load_digits().images[:300].astype(np.uint8) * 15  # (n, 8, 8) 8-bit images
    np.save(tmp_path / "digits.npy", X)
    model = tmp_path / "model"
    argv = ["train", tmp_path / "digits.npy", "-o", model, "--layers", "16",
            "--pretrain-epochs", "2", "--quiet"]  # fmt: skip
    assert run(capsys, *argv)[0] == 0
    code, out, err = run(capsys, "report", model, "-o", tmp_path / "report", "--json")
    assert code == 0, err
    assert "Samples from the model" in (tmp_path / "report" / "report.html").read_text()
    grid = __import__("matplotlib.image").image.imread(tmp_path / "report" / "samples.png")
    assert grid.shape[:2] == ((8 * (8 + 1) + 1) * 4,) * 2 and grid.std() > 0.01  # 8x8 tiles
    assert [Path(p).name for p in json.loads(out)["plots"]][-2:] == ["filters.png", "samples.png"]


def test_log_likelihood_of_a_classifier_is_refused_before_the_data_is_read(
    binary_model, tmp_path, capsys, monkeypatch
):
    from deepbelief import commands

    def never(*args, **kwargs):
        raise AssertionError("the data was read")

    monkeypatch.setattr(commands, "_load", never)
    code, _, err = run(capsys, "evaluate", binary_model, tmp_path / "any.csv", "--log-likelihood")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--log-likelihood needs a generative or unsupervised model" in err


@pytest.fixture(scope="module")
def bernoulli_model(binary_csv):
    """The tutorial's model with Bernoulli visible units (min-max scaled columns)."""
    model = binary_csv / "bernoulli-model"
    code = main(["train", str(binary_csv / "train.csv"), "-o", str(model), "--visible",
                 "bernoulli", *FAST])  # fmt: skip
    assert code == 0
    return model


def test_a_tables_numeric_columns_get_gaussian_units_unless_they_hold_only_0_and_1(
    binary_model, binary_csv, tmp_path, capsys
):
    """Bernoulli units on min-max scaled independent columns left the default classifier at
    chance (0.51 on x1 + x2 > 0): it learned nothing the rows vary in."""
    code, out, _ = run(capsys, "info", binary_model, "--json")
    assert code == 0 and json.loads(out)["layers"][0]["visible_units"] == "gaussian"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(800, 2))
    easy = pd.DataFrame({"x1": X[:, 0], "x2": X[:, 1], "y": (X.sum(axis=1) > 0).astype(int)})
    easy.iloc[:600].to_csv(tmp_path / "easy.csv", index=False)
    easy.iloc[600:].to_csv(tmp_path / "test.csv", index=False)
    code = main(["train", str(tmp_path / "easy.csv"), "-o", str(tmp_path / "m"),
                 "--pretrain-epochs", "5", "--epochs", "40", "--quiet"])  # fmt: skip
    assert code == 0
    code, out, _ = run(capsys, "evaluate", tmp_path / "m", tmp_path / "test.csv", "--json")
    assert json.loads(out)["accuracy"] >= 0.9, out
    flags = pd.DataFrame({"a": rng.integers(0, 2, 300), "b": rng.integers(0, 2, 300)})
    flags.loc[3, "a"] = np.nan  # a missing value: still a column of 0 and 1
    flags.assign(y=flags["b"]).to_csv(tmp_path / "flags.csv", index=False)
    assert run(capsys, "train", tmp_path / "flags.csv", "-o", tmp_path / "f", *FAST)[0] == 0
    code, out, _ = run(capsys, "info", tmp_path / "f", "--json")
    assert json.loads(out)["layers"][0]["visible_units"] == "bernoulli"


def test_a_column_of_0_and_1_among_continuous_ones_keeps_bernoulli_units(tmp_path, capsys):
    """Every numeric column got Gaussian units when one was continuous: a 0/1 flag came back
    from sample and denoise as -0.45 or 1.36."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=400)
    frame = pd.DataFrame({"a": a, "flag": (a + rng.normal(size=400) > 0).astype(int)})
    frame["b"] = 10 * frame["a"] + rng.normal(size=400)
    frame.to_csv(tmp_path / "t.csv", index=False)
    tiny = ["--layers", "8", "--pretrain-epochs", "5", "--quiet", "--no-target"]
    assert main(["train", str(tmp_path / "t.csv"), "-o", str(tmp_path / "m"), *tiny]) == 0
    code, out, _ = run(capsys, "info", tmp_path / "m", "--json")
    first = json.loads(out)["layers"][0]
    assert first["visible_units"] == "mixed"
    assert first["visible_parts"] == [["gaussian", 1], ["bernoulli", 1], ["gaussian", 1]]
    code, out, _ = run(capsys, "info", tmp_path / "m")  # it said "mixed" alone
    assert "RBM 1: mixed (gaussian 1, bernoulli 1, gaussian 1) -> bernoulli" in out
    columns = json.loads((tmp_path / "m" / "deepbelief.json").read_text())["input"]
    assert [c["kind"] for c in columns["preprocessor"]["columns"]] == [
        "numeric",
        "binary",
        "numeric",
    ]
    assert run(capsys, "sample", tmp_path / "m", "-n", "300", "-o", tmp_path / "s.csv")[0] == 0
    samples = pd.read_csv(tmp_path / "s.csv")
    assert samples["flag"].between(0, 1).all() and samples["b"].abs().max() > 1.5
    frame.iloc[:3].assign(flag=[0, 1, 2]).to_csv(tmp_path / "new.csv", index=False)
    code, _, err = run(
        capsys, "denoise", tmp_path / "m", tmp_path / "new.csv", "-o", tmp_path / "d.csv"
    )
    assert code == 0 and "column 'flag', row 3: 2, trained on 0 to 1" in err, err
    assert pd.read_csv(tmp_path / "d.csv")["flag"].between(0, 1).all()
    explicit = ["--visible", "gaussian", "-o", str(tmp_path / "g")]  # every column Gaussian
    assert main(["train", str(tmp_path / "t.csv"), *explicit, *tiny]) == 0
    code, out, _ = run(capsys, "info", tmp_path / "g", "--json")
    assert json.loads(out)["layers"][0]["visible_units"] == "gaussian"


def test_values_beyond_the_training_range_are_clipped_with_a_warning(
    bernoulli_model, binary_csv, tmp_path, capsys
):
    """The command clipped them silently (the Python API warns): 100 in a column trained on
    about -3 to 3 predicted as its maximum would, without a word. (Bernoulli units: Gaussian
    ones take any value.)"""
    binary_model = bernoulli_model
    rows = pd.read_csv(binary_csv / "unlabelled.csv").iloc[:3]
    train = pd.read_csv(binary_csv / "train.csv")
    far, edge = rows.copy(), rows.copy()
    far.loc[1, "f0"], edge.loc[1, "f0"] = 100.0, train["f0"].max()
    far.to_csv(tmp_path / "far.csv", index=False)
    edge.to_csv(tmp_path / "edge.csv", index=False)
    code, out, err = run(capsys, "predict", binary_model, tmp_path / "far.csv", "--proba")
    assert code == 0
    lines = err.strip().splitlines()  # the summary, then the warning (once all checks passed)
    assert lines[1].startswith("deepbelief: warning: ") and len(lines) == 2, err
    assert "far.csv: 1 value(s) outside the training range, clipped to it" in lines[1]
    assert "column 'f0', row 2: 100, trained on" in lines[1]
    assert run(capsys, "predict", binary_model, tmp_path / "edge.csv", "--proba")[1] == out
    assert "warning" not in run(capsys, "predict", binary_model, tmp_path / "edge.csv")[2]


def test_info_prints_architecture_and_format(binary_model, capsys):
    code, out, _ = run(capsys, "info", binary_model)
    assert code == 0
    assert "6-16" in out and "format 1" in out and "classifier" in out
    assert "has not finished" not in out


def test_info_says_when_a_run_that_has_not_finished_left_its_checkpoint(
    binary_model, tmp_path, capsys
):
    """An interrupted --overwrite run leaves the old model beside its checkpoint: info
    described the old model alone, not that --resume would replace it."""
    import shutil

    model = shutil.copytree(binary_model, tmp_path / "m")
    (model / "checkpoint.safetensors").write_bytes(b"state")
    code, out, _ = run(capsys, "info", model)
    assert code == 0 and f"train --resume {model}` continues it" in out
    code, out, _ = run(capsys, "info", model, "--json")
    assert code == 0 and json.loads(out)["interrupted_run"] is True


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_config_file_sets_options_and_the_command_line_wins(binary_csv, tmp_path, suffix, capsys):
    if suffix == ".yaml":
        text = "layers: [12]\npretrain-epochs: 2\nepochs: 5\nseed: 4\n"
    else:
        text = "layers = [12]\npretrain_epochs = 2\nepochs = 5\nseed = 4\n"
    config = tmp_path / f"c{suffix}"
    config.write_text(text)
    model = tmp_path / "m"
    code, out, err = run(capsys, "train", binary_csv / "train.csv", "-o", model, "--config",
                         config, "--epochs", "3", "--no-early-stopping", "--quiet",
                         "--json")  # fmt: skip
    assert code == 0, err
    settings = json.loads((model / "run.json").read_text())
    assert settings["layers"] == [12] and settings["pretrain_epochs"] == 2
    assert settings["epochs"] == 3 and settings["seed"] == 4
    estimator = deepbelief.load(model / "model.safetensors")
    assert len(estimator.history_) == 3


def test_an_error_found_after_parsing_names_the_config_file_that_set_the_option(
    binary_csv, tmp_path, capsys
):
    """``device: gpu`` in a config was refused as "--device gpu: not a device", with no word
    of the file the value came from; given on the command line, the error stays as it was."""
    config = tmp_path / "run.yaml"
    config.write_text("device: gpu\nlayers: [4]\n")
    data, model = binary_csv / "train.csv", tmp_path / "m"
    code, _, err = run(capsys, "train", data, "-o", model, "--config", config)
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"deepbelief: error: {config}: --device gpu: not a device")
    code, _, err = run(capsys, "train", data, "-o", model, "--config", config, "--device", "tpu")
    assert code == 2 and err.startswith("deepbelief: error: --device tpu: not a device")
    config.write_text("average_epochs: 2\nlayers: [4]\n")
    code, _, err = run(capsys, "train", data, "-o", model, "--config", config, "--early-stopping")
    assert err.startswith(f"deepbelief: error: {config}: --average-epochs and --early-stopping")
    assert not model.exists()


def test_centering_and_weight_averaging_reach_the_estimator(binary_csv, tmp_path, capsys):
    model = tmp_path / "m"
    code, _, err = run(capsys, "train", binary_csv / "train.csv", "-o", model, "--layers", "8",
                       "--pretrain-epochs", "2", "--epochs", "4", "--centering",
                       "--average-epochs", "2", "--quiet")  # fmt: skip
    assert code == 0, err
    estimator = deepbelief.load(model / "model.safetensors")
    assert estimator.centering is True and estimator.average_epochs == 2
    settings = json.loads((model / "run.json").read_text())
    assert settings["centering"] is True and settings["average_epochs"] == 2


def test_resume_reads_a_run_file_written_before_the_newer_options(binary_csv, tmp_path, capsys):
    model = tmp_path / "m"
    argv = ["--layers", "8", "--pretrain-epochs", "2", "--epochs", "3", "--quiet"]
    assert run(capsys, "train", binary_csv / "train.csv", "-o", model, *argv)[0] == 0
    settings = json.loads((model / "run.json").read_text())
    for key in ("centering", "average_epochs", "finished"):  # added after run.json shipped
        del settings[key]
    (model / "run.json").write_text(json.dumps(settings))
    code, _, err = run(capsys, "train", "--resume", model, "--quiet")
    assert code == 0, err
    estimator = deepbelief.load(model / "model.safetensors")
    assert estimator.centering is False and estimator.average_epochs == 0


def test_same_seed_same_model(binary_csv, tmp_path, capsys):
    paths = []
    for name in ("one", "two"):
        model = tmp_path / name
        assert main(["train", str(binary_csv / "train.csv"), "-o", str(model), "--layers", "8",
                     "--pretrain-epochs", "2", "--epochs", "3", "--quiet"]) == 0  # fmt: skip
        paths.append(model / "model.safetensors")
    one, two = (deepbelief.load(p) for p in paths)
    for a, b in zip(one.network_.parameters(), two.network_.parameters()):
        assert torch.equal(a, b)


def test_demo_writes_model_plots_and_report(tmp_path, capsys):
    code, out, err = run(capsys, "demo", "-o", tmp_path, "--epochs", "3", "--quiet", "--json")
    assert code == 0, err
    results = json.loads(out)
    assert results["test_accuracy"] > 0.8
    for key in ("filters", "samples", "report"):
        assert (tmp_path / results[key].split("/")[-1]).stat().st_size > 1000
    assert (tmp_path / "model" / "model.safetensors").exists()
    # running the demo again replaces its own earlier output (the README's command twice);
    # a file of the user's beside it makes it refuse, unless --overwrite (which keeps it)
    before = (tmp_path / "model" / "model.safetensors").stat().st_ino
    code, _, err = run(capsys, "demo", "-o", tmp_path, "--epochs", "1", "--quiet")
    assert code == 0, err
    assert (tmp_path / "model" / "model.safetensors").stat().st_ino != before
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = run(capsys, "demo", "-o", tmp_path, "--epochs", "1", "--quiet")
    assert code == 2 and "--overwrite" in err
    code, _, err = run(capsys, "demo", "-o", tmp_path, "--epochs", "1", "--quiet", "--overwrite")
    assert code == 0, err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_evaluate_names_a_missing_label(binary_model, binary_csv, tmp_path, capsys):
    frame = pd.read_csv(binary_csv / "test.csv")
    frame.loc[4, "label"] = None
    frame.to_csv(tmp_path / "holes.csv", index=False)
    code, _, err = run(capsys, "evaluate", binary_model, tmp_path / "holes.csv")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "holes.csv: target row 5: missing (in 1 of 100 rows)" in err  # not "never saw: nan"


def test_images_of_another_shape_with_the_same_pixel_count_are_refused(tmp_path, capsys):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    np.savez(tmp_path / "digits.npz", X=X[:200].reshape(-1, 8, 8), y=y[:200])
    model = tmp_path / "model"
    argv = ["train", tmp_path / "digits.npz", "-o", model, "--layers", "8",
            "--pretrain-epochs", "1", "--epochs", "1", "--quiet"]  # fmt: skip
    assert run(capsys, *argv)[0] == 0
    np.savez(tmp_path / "wide.npz", X=X[:20].reshape(-1, 4, 16), y=y[:20])
    code, _, err = run(capsys, "evaluate", model, tmp_path / "wide.npz")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "images of 4x16 pixels, but the model was trained on 8x8" in err
    assert "--image-size 8x8" in err


def test_an_image_folder_of_new_images_is_predicted_scored_and_transformed_by_file(
    tmp_path, capsys
):
    """A folder of class subfolders trains a classifier; a flat folder of new images (no
    labels) is predicted, scored and transformed with each row named by its file."""
    from PIL import Image
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    pixels = (X * 16).clip(0, 255).astype(np.uint8).reshape(-1, 8, 8)
    for i in range(300):
        (tmp_path / "train" / str(y[i])).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[i]).save(tmp_path / "train" / str(y[i]) / f"{i}.png")
    (tmp_path / "new").mkdir()
    names = [f"z{i}.png" if i % 2 else f"a{i}.png" for i in range(300, 306)]
    for i, name in zip(range(300, 306), names, strict=True):
        Image.fromarray(pixels[i]).save(tmp_path / "new" / name)
    model = tmp_path / "model"
    argv = ["train", tmp_path / "train", "-o", model, "--layers", "32", "--seed", "0",
            "--pretrain-epochs", "5", "--epochs", "30", "--quiet"]  # fmt: skip
    assert run(capsys, *argv)[0] == 0
    code, out, _ = run(capsys, "predict", model, tmp_path / "new", "-o", "-")
    assert code == 0
    table = pd.read_csv(pd.io.common.StringIO(out))
    assert list(table.columns) == ["file", "prediction"]
    assert list(table["file"]) == sorted(names)  # the order the rows are read in
    # each file's prediction is the one its own pixels get (not the order's neighbour's)
    estimator, _, spec = load_model(model)
    by_file = {name: pixels[i].reshape(1, -1) / 255 for i, name in zip(range(300, 306), names)}
    for name, predicted in zip(table["file"], table["prediction"], strict=True):
        assert str(estimator.predict(by_file[name].astype(np.float32))[0]) == str(predicted)
    code, out, _ = run(capsys, "predict", model, tmp_path / "new", "--json", "--proba")
    document = json.loads(out)
    assert document["files"] == sorted(names) and len(document["probabilities"]) == 6
    code, out, _ = run(capsys, "score", model, tmp_path / "new", "-o", "-")
    scores = pd.read_csv(pd.io.common.StringIO(out))
    assert list(scores.columns) == ["file", "score"] and list(scores["file"]) == sorted(names)
    code, out, _ = run(capsys, "transform", model, tmp_path / "new", "-o", tmp_path / "f.csv")
    features = pd.read_csv(tmp_path / "f.csv")
    assert list(features.columns[:2]) == ["file", "h0"] and features.shape == (6, 33)
    code, _, _ = run(capsys, "transform", model, tmp_path / "new", "-o", tmp_path / "f.npy")
    assert code == 0 and np.load(tmp_path / "f.npy").shape == (6, 32)  # numbers only
    code, out, _ = run(capsys, "predict", model, tmp_path / "train", "-o", "-")
    assert pd.read_csv(pd.io.common.StringIO(out))["file"].iloc[0] == "0/0.png"
    # a folder of larger images is read at the model's size (it asked for --image-size again)
    (tmp_path / "big").mkdir()
    for i, name in zip(range(300, 306), names, strict=True):
        Image.fromarray(pixels[i]).resize((16, 16), Image.NEAREST).save(tmp_path / "big" / name)
    code, out, err = run(capsys, "predict", model, tmp_path / "big", "-o", "-")
    assert code == 0, err
    assert len(pd.read_csv(pd.io.common.StringIO(out))) == 6


def test_a_flat_image_folder_trains_an_unsupervised_model_and_no_classifier(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    for i in range(40):
        Image.fromarray((rng.random((4, 4)) * 255).astype(np.uint8)).save(
            tmp_path / "images" / f"{i}.png"
        )
    argv = ["train", tmp_path / "images", "--layers", "4", "--pretrain-epochs", "1", "--quiet"]
    code, _, err = run(capsys, *argv, "-o", tmp_path / "c", "--model", "classifier")
    assert code == 2 and "--model classifier needs a target" in err, err
    assert run(capsys, *argv, "-o", tmp_path / "u")[0] == 0
    assert json.loads((tmp_path / "u" / "deepbelief.json").read_text())["task"] == "unsupervised"


def test_an_image_whose_name_is_not_utf8_is_named_by_its_own_bytes(tmp_path, capsys):
    """A file name of Latin-1 bytes (Python's surrogate escapes) used to fail the CSV's
    write with a codec error."""
    import os

    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    for i in range(30):
        Image.fromarray((rng.random((4, 4)) * 255).astype(np.uint8)).save(
            tmp_path / "images" / f"{i}.png"
        )
    odd = os.path.join(bytes(tmp_path / "images"), b"caf\xe9.png")
    try:
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(os.fsdecode(odd))
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    model = tmp_path / "model"
    argv = ["train", tmp_path / "images", "-o", model, "--layers", "4", "--pretrain-epochs", "1"]
    assert run(capsys, *argv, "--quiet")[0] == 0
    code, _, err = run(capsys, "score", model, tmp_path / "images", "-o", tmp_path / "s.csv")
    assert code == 0, err
    lines = (tmp_path / "s.csv").read_bytes().splitlines()
    assert lines[0] == b"file,score" and any(line.startswith(b"caf\xe9.png,") for line in lines)


@pytest.fixture(scope="module")
def image_folders(tmp_path_factory):
    """A class folder of digits (three classes, some in nested folders) and its model."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("images")
    X, y = load_digits(return_X_y=True)
    pixels = (X * 16).clip(0, 255).astype(np.uint8).reshape(-1, 8, 8)
    rows = [i for i in range(300) if y[i] < 3][:90]
    for n, i in enumerate(rows):
        deep = "deep/" if n % 3 == 0 else ""  # a third of them one folder further down
        path = root / "train" / str(y[i]) / deep / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[i]).save(path)
    (root / "train" / "0" / "deep" / "loop").symlink_to(root / "train" / "0")  # read once
    model = root / "model"
    argv = ["train", root / "train", "-o", model, "--layers", "16", "--pretrain-epochs", "2",
            "--epochs", "5", "--quiet"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    return root, model, pixels


def test_images_in_nested_folders_belong_to_their_class_folder(image_folders, capsys):
    """Images one folder down in a class folder used to be left out without a word."""
    root, model, _ = image_folders
    dataset = load_dataset(root / "train")
    assert len(dataset.features) == 90 and set(dataset.target) == {"0", "1", "2"}
    assert sum(name.count("/") == 2 for name in dataset.row_names) == 30
    assert all(name.split("/")[0] == label for name, label in
               zip(dataset.row_names, dataset.target, strict=True))  # fmt: skip
    code, out, _ = run(capsys, "evaluate", model, root / "train", "--json")
    assert code == 0 and json.loads(out)["rows"] == 90


def test_a_carriage_return_in_a_file_name_keeps_its_row(image_folders, tmp_path, capsys):
    from PIL import Image

    root, model, pixels = image_folders
    (tmp_path / "new").mkdir()
    names = ["cr\rhere.png", "plain.png", 'q,"x".png']
    for name, image in zip(names, pixels[:3], strict=True):
        Image.fromarray(image).save(tmp_path / "new" / name)
    unsupervised = tmp_path / "unsupervised"  # denoise takes a generative model
    assert run(capsys, "train", root, "--no-target", "-o", unsupervised, "--layers", "8",
               "--pretrain-epochs", "1", "--quiet")[0] == 0  # fmt: skip
    for command, by in (("predict", model), ("score", model), ("denoise", unsupervised)):
        out = tmp_path / f"{command}.csv"
        assert run(capsys, command, by, tmp_path / "new", "-o", out)[0] == 0
        table = pd.read_csv(out)
        assert list(table["file"]) == sorted(names) and len(table) == 3, command
    denoised = pd.read_csv(tmp_path / "denoise.csv")
    assert denoised.shape == (3, 65)  # the file, then the 64 pixels


def test_train_refuses_a_model_folder_inside_its_data(image_folders, capsys):
    root, _, _ = image_folders
    code, _, err = run(capsys, "train", root / "train", "-o", root / "train" / "0" / "model")
    assert code == 2 and "is inside the input" in err, err
    assert not (root / "train" / "0" / "model").exists()


def test_a_table_model_given_images_says_so(binary_model, image_folders, capsys):
    root, _, _ = image_folders
    code, _, err = run(capsys, "predict", binary_model, root / "train")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "holds images, but the model was trained on a CSV table (of 6 feature" in err


def test_model_unsupervised_reads_every_column_of_a_table_unless_target_names_one(tmp_path, capsys):
    """--model unsupervised (without --no-target) dropped the last column as a target it
    never used, without a word."""
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(200, 3)), columns=list("abc"))
    frame.to_csv(tmp_path / "t.csv", index=False)
    tiny = ["--model", "unsupervised", "--layers", "4", "--pretrain-epochs", "1", "--quiet"]
    for name, extra, width in (("all", [], 3), ("named", ["--target", "b"], 2)):
        assert (
            main(["train", str(tmp_path / "t.csv"), "-o", str(tmp_path / name), *tiny, *extra]) == 0
        )
        code, out, _ = run(capsys, "info", tmp_path / name, "--json")
        assert json.loads(out)["layers"][0]["visible"] == width


def test_samples_keep_a_tables_whole_numbers_and_constant_columns(tmp_path, capsys):
    """An integer column came back as 46.5566 and a constant 7.0 as 6.955 to 7.022 (impute
    kept their form)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    frame = pd.DataFrame({"age": np.round(40 + 10 * x).astype(int), "const": 7.0,
                          "x": x + rng.normal(size=300)})  # fmt: skip
    frame.to_csv(tmp_path / "t.csv", index=False)
    tiny = ["--no-target", "--layers", "8", "--pretrain-epochs", "5", "--quiet"]
    assert main(["train", str(tmp_path / "t.csv"), "-o", str(tmp_path / "m"), *tiny]) == 0
    assert run(capsys, "sample", tmp_path / "m", "-n", "50", "-o", tmp_path / "s.csv")[0] == 0
    text = (tmp_path / "s.csv").read_text().splitlines()
    samples = pd.read_csv(tmp_path / "s.csv")
    assert samples["age"].dtype.kind == "i" and samples["age"].nunique() > 3, text[:3]
    assert (samples["const"] == 7.0).all() and samples["x"].nunique() > 40


def test_the_same_pixels_give_the_same_predictions_in_any_container(tmp_path, capsys):
    """Flat uint8 rows kept their raw values with a min-max scale per pixel, while 3-D uint8
    images were divided by 255: a model of one was at chance on the other, silently."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    pixels = (X * 15).astype(np.uint8)  # 0..240
    np.savez(tmp_path / "flat.npz", X=pixels[:600], y=y[:600])
    np.savez(tmp_path / "test-flat.npz", X=pixels[600:800], y=y[600:800])
    np.savez(tmp_path / "test-3d.npz", X=pixels[600:800].reshape(-1, 8, 8), y=y[600:800])
    np.savez(tmp_path / "test-4d.npz", X=pixels[600:800].reshape(-1, 1, 8, 8), y=y[600:800])
    quick = ["--layers", "32", "--pretrain-epochs", "3", "--epochs", "20", "--quiet"]
    assert main(["train", str(tmp_path / "flat.npz"), "-o", str(tmp_path / "m"), *quick]) == 0
    card = json.loads((tmp_path / "m" / "deepbelief.json").read_text())
    columns = card["input"]["preprocessor"]["columns"]
    assert {(c["offset"], c["scale"]) for c in columns} == {(0.0, 1.0)}  # in [0, 1]: as they are
    predicted = {}
    for name in ("test-flat", "test-3d", "test-4d"):
        code, out, err = run(capsys, "predict", tmp_path / "m", tmp_path / f"{name}.npz")
        assert code == 0 and "warning" not in err, err
        predicted[name] = out
    assert predicted["test-flat"] == predicted["test-3d"] == predicted["test-4d"]
    truth = pd.read_csv(io.StringIO(predicted["test-3d"])).iloc[:, 0].to_numpy()
    assert np.mean(truth == y[600:800]) > 0.6
    # images outside [0, 1] share one scale: a pixel rarely inked was amplified up to 7x
    np.savez(tmp_path / "float.npz", X=pixels[:600].reshape(-1, 8, 8).astype(float), y=y[:600])
    assert main(["train", str(tmp_path / "float.npz"), "-o", str(tmp_path / "f"), *quick]) == 0
    card = json.loads((tmp_path / "f" / "deepbelief.json").read_text())
    assert {(c["offset"], c["scale"]) for c in card["input"]["preprocessor"]["columns"]} == {
        (0.0, 240.0)
    }


def test_faint_8_bit_values_are_stretched_to_reach_1(tmp_path, capsys):
    """scikit-learn's digits as uint8 (0 to 16) were divided by 255 and taken as they were,
    at most 0.063: the classifier was at chance (0.08); in memory and streamed alike."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    pixels = X.astype(np.uint8).reshape(-1, 8, 8)  # 0..16
    np.savez(tmp_path / "train.npz", X=pixels[:800], y=y[:800])
    np.savez(tmp_path / "test.npz", X=pixels[800:1200], y=y[800:1200])
    quick = ["--layers", "64", "--pretrain-epochs", "5", "--epochs", "30", "--quiet"]
    assert main(["train", str(tmp_path / "train.npz"), "-o", str(tmp_path / "m"), *quick]) == 0
    columns = read_card(tmp_path / "m")["input"]["preprocessor"]["columns"]
    assert {(c["offset"], round(c["scale"] * 255, 4)) for c in columns} == {(0.0, 16.0)}
    code, out, err = run(capsys, "evaluate", tmp_path / "m", tmp_path / "test.npz", "--json")
    assert code == 0 and json.loads(out)["accuracy"] > 0.85, err
    np.save(tmp_path / "rows.npy", pixels[:300].reshape(300, -1))  # streamed: the same rule
    argv = ["train", tmp_path / "rows.npy", "--model", "unsupervised", "-o", tmp_path / "u",
            "--layers", "8", "--pretrain-epochs", "1", "--quiet"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    columns = read_card(tmp_path / "u")["input"]["preprocessor"]["columns"]
    assert {(c["offset"], c["scale"]) for c in columns} == {(0.0, 16.0)}


def test_labels_given_for_data_that_holds_its_own_are_refused(tmp_path, capsys):
    """--labels replaced the y inside an .npz without a word."""
    np.savez(tmp_path / "d.npz", X=np.random.default_rng(0).random((20, 4)), y=np.arange(20) % 2)
    np.save(tmp_path / "labels.npy", np.arange(20) % 3)
    code, _, err = run(capsys, "train", tmp_path / "d.npz", "--labels", tmp_path / "labels.npy",
                       "-o", tmp_path / "m")  # fmt: skip
    assert code == 2 and "holds its own labels (y); --labels" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "m").exists()
