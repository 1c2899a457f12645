"""``deepbelief denoise``, ``score`` and ``impute``: in process through ``main(argv)``."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from conftest import SEED

import deepbelief
from deepbelief.applications import denoise
from deepbelief.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def blocks(n: int, seed: int) -> np.ndarray:
    """Rows of three blocks of four bits, each block on or off together (2 % flipped)."""
    rng = np.random.default_rng(seed)
    on = np.repeat(rng.random((n, 3)) < 0.5, 4, axis=1)
    return np.where(rng.random(on.shape) < 0.02, ~on, on).astype(float)


@pytest.fixture(scope="module")
def block_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blocks")
    np.save(folder / "train.npy", blocks(600, SEED))
    code = main(["train", str(folder / "train.npy"), "-o", str(folder / "model"), "--layers",
                 "8", "--pretrain-epochs", "30", "--quiet", "--seed", str(SEED)])  # fmt: skip
    assert code == 0
    return folder


@pytest.mark.stochastic
def test_denoise_cleans_flipped_bits(block_model, capsys, tmp_path):
    clean = blocks(200, 1)
    flips = np.random.default_rng(2).random(clean.shape) < 0.1
    np.save(tmp_path / "noisy.npy", np.where(flips, 1 - clean, clean))
    for method in ("mean-field", "gibbs"):
        out = tmp_path / f"{method}.npy"
        code, stdout, err = run(capsys, "denoise", block_model / "model", tmp_path / "noisy.npy",
                                "-o", out, "--method", method, "--json")  # fmt: skip
        assert code == 0, err
        assert json.loads(stdout) == {"output": str(out), "rows": 200, "method": method}
        cleaned = np.load(out)
        assert np.mean((cleaned - clean) ** 2) < 0.6 * np.mean(flips), method


@pytest.mark.stochastic
def test_score_ranks_foreign_rows_lower(block_model, capsys, tmp_path):
    foreign = (np.random.default_rng(3).random((100, 12)) < 0.5).astype(float)
    np.save(tmp_path / "rows.npy", np.vstack([blocks(100, 4), foreign]))
    code, out, err = run(capsys, "score", block_model / "model", tmp_path / "rows.npy")
    assert code == 0 and "wrote 200 scores" in err
    scores = pd.read_csv(io.StringIO(out))["score"].to_numpy()
    assert np.median(scores[:100]) > np.percentile(scores[100:], 90)


@pytest.mark.stochastic
def test_impute_fills_only_the_empty_cells(capsys, tmp_path, one_seed):
    rng = np.random.default_rng(5 + one_seed)
    size = rng.normal(10, 3, 300).round(2)
    frame = pd.DataFrame({
        "size": size,
        "double": (2 * size + rng.normal(0, 0.2, 300)).round(2),
        "kind": np.where(size > 10, "big", "small"),
        "count": rng.integers(0, 5, 300),
    })  # fmt: skip
    holes = frame.astype(object).mask(rng.random(frame.shape) < 0.15)
    holes.to_csv(tmp_path / "holes.csv", index=False)
    code, _, err = run(capsys, "impute", tmp_path / "holes.csv", "-o", tmp_path / "out.csv",
                       "--seed", one_seed)  # fmt: skip
    assert code == 0 and "empty cells of 300 rows" in err
    text = pd.read_csv(tmp_path / "holes.csv", dtype=str)
    out = pd.read_csv(tmp_path / "out.csv", dtype=str)
    assert not out.isna().any().any()
    observed = text.notna()
    assert (out[observed] == text[observed]).sum().sum() == observed.sum().sum()
    missing = holes["double"].isna() & holes["size"].notna()
    filled = out["double"][missing].astype(float)
    error = np.sqrt(np.mean((filled - frame["double"][missing]) ** 2))
    mean_error = np.sqrt(
        np.mean((holes["double"].astype(float).mean() - frame["double"][missing]) ** 2)
    )
    assert error < 0.6 * mean_error
    assert set(out["kind"]) == {"big", "small"}
    assert out["count"].str.fullmatch(r"\d+").all()


def test_denoise_with_a_noise_model_gives_the_posterior(block_model, capsys, tmp_path):
    """``--noise salt-and-pepper --noise-level 0.2`` writes what
    ``applications.denoise(model, X, noise=..., noise_level=...)`` returns (whose accuracy
    tests/test_applications.py checks against enumeration); grey values stay as they were."""
    clean = blocks(50, 1)
    rng = np.random.default_rng(7)
    noisy = np.where(rng.random(clean.shape) < 0.2, rng.random(clean.shape) < 0.5, clean) * 1.0
    noisy[:, 5] = 0.25
    np.save(tmp_path / "noisy.npy", noisy)
    out = tmp_path / "out.npy"
    code, _, err = run(capsys, "denoise", block_model / "model", tmp_path / "noisy.npy", "-o",
                       out, "--noise", "salt-and-pepper", "--noise-level", "0.2")  # fmt: skip
    assert code == 0, err
    model = deepbelief.load(block_model / "model" / "model.safetensors")
    expected = denoise(model, noisy, noise="salt-and-pepper", noise_level=0.2)
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-6, atol=1e-7)
    assert np.array_equal(np.load(out)[:, 5], noisy[:, 5])
    assert not np.allclose(expected, denoise(model, noisy))


def test_application_commands_refuse_before_working(block_model, capsys, tmp_path):
    np.save(tmp_path / "rows.npy", blocks(10, 6))
    code, _, err = run(capsys, "denoise", block_model / "model", tmp_path / "rows.npy", "-o",
                       tmp_path / "out.txt")  # fmt: skip
    assert code == 2 and "output must be" in err
    code, _, err = run(capsys, "denoise", block_model / "model", tmp_path / "rows.npy", "-o",
                       tmp_path / "out.png")  # fmt: skip
    assert code == 2 and "PNG needs image data" in err
    for options, message in [
        (["--noise", "gaussian"], "--noise gaussian needs --noise-level"),
        (["--noise-level", "0.1"], "--noise-level needs --noise"),
        (["--noise", "salt-and-pepper", "--noise-level", "2"], "--noise-level must lie in"),
        (["--noise", "gaussian", "--noise-level", "-1"], "--noise-level must be > 0"),
    ]:
        code, _, err = run(capsys, "denoise", block_model / "model", tmp_path / "rows.npy",
                           "-o", tmp_path / "out.npy", *options)  # fmt: skip
        assert code == 2 and message in err and err.count("\n") == 1, err
        assert not (tmp_path / "out.npy").exists()
    np.save(tmp_path / "wide.npy", np.zeros((3, 5)))
    code, _, err = run(capsys, "score", block_model / "model", tmp_path / "wide.npy")
    assert code == 2 and "trained on 12" in err
    pd.DataFrame({"a": [1.0, None, 3.0], "b": [None, None, None]}).to_csv(
        tmp_path / "empty.csv", index=False
    )
    code, _, err = run(capsys, "impute", tmp_path / "empty.csv", "-o", tmp_path / "x.csv")
    assert code == 2 and "column 'b' is empty in every row" in err
    code, _, err = run(capsys, "impute", tmp_path / "empty.csv", "-o", tmp_path / "x.csv",
                       "--prediction-epochs", "-1")  # fmt: skip
    assert code == 2 and "--prediction-epochs: must be >= 0" in err
    assert not (tmp_path / "x.csv").exists()


def test_one_layer_generative_model_is_the_classification_rbm(capsys, tmp_path):
    X = blocks(300, 7)
    y = (X[:, 0] > 0.5).astype(int) + 2 * (X[:, 4] > 0.5).astype(int)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    code, _, err = run(capsys, "train", tmp_path / "data.npz", "-o", tmp_path / "model",
                       "--model", "generative", "--layers", "8", "--pretrain-epochs", "20",
                       "--label-training", "hybrid", "--quiet")  # fmt: skip
    assert code == 0, err
    code, out, err = run(capsys, "evaluate", tmp_path / "model", tmp_path / "data.npz", "--json")
    assert code == 0 and json.loads(out)["accuracy"] > 0.9, err
    code, _, err = run(capsys, "train", tmp_path / "data.npz", "-o", tmp_path / "m2", "--model",
                       "generative", "--layers", "8", "--up-down-epochs", "2")  # fmt: skip
    assert code == 2 and "--up-down-epochs needs at least two --layers" in err
    for option, value in (("--label-training", "hybrid"), ("--shift", "1")):
        code, _, err = run(capsys, "train", tmp_path / "data.npz", "-o", tmp_path / "m3",
                           option, value)  # fmt: skip
        assert code == 2 and f"{option} needs --model generative" in err


def test_generative_model_takes_the_fine_tuning_options_for_its_recognition_path(capsys, tmp_path):
    """With --model generative, --epochs, --lr, --dropout and --input-dropout set the label
    model's backprop through its recognition path (finetune_*); one layer is refused in the
    option's words."""
    X = blocks(200, 7)
    y = (X[:, 0] > 0.5).astype(int)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    code, _, err = run(capsys, "train", tmp_path / "data.npz", "-o", tmp_path / "model",
                       "--model", "generative", "--layers", "8", "6", "--pretrain-epochs", "2",
                       "--epochs", "3", "--lr", "0.02", "--dropout", "0.1",
                       "--input-dropout", "0", "--quiet")  # fmt: skip
    assert code == 0, err
    params = deepbelief.load(tmp_path / "model" / "model.safetensors").get_params()
    assert (params["finetune_epochs"], params["finetune_learning_rate"]) == (3, 0.02)
    assert (params["finetune_dropout"], params["finetune_input_dropout"]) == (0.1, 0.0)
    code, _, err = run(capsys, "train", tmp_path / "data.npz", "-o", tmp_path / "m2", "--model",
                       "generative", "--layers", "8", "--epochs", "2")  # fmt: skip
    assert code == 2 and err.startswith("deepbelief: error: --epochs needs at least two"), err
    assert not (tmp_path / "m2").exists()


def test_generative_model_takes_the_generative_preset_and_a_time_budget(capsys, tmp_path):
    """--model generative --preset hinton2006 is GENERATIVE_PRESETS["hinton2006"], the options
    given winning; a preset without a generative model, --time-budget without backprop epochs,
    and the preset's image shifts on rows that are no image are refused in one line before
    any work."""
    from deepbelief.recipes import GENERATIVE_PRESETS

    X = blocks(100, 7)
    y = (X[:, 0] > 0.5).astype(int)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    code, _, err = run(capsys, "train", tmp_path / "data.npz", "-o", tmp_path / "model",
                       "--model", "generative", "--preset", "hinton2006", "--pretrain-epochs",
                       "1", "--epochs", "2", "--time-budget", "600", "--shift", "0",
                       "--quiet")  # fmt: skip
    assert code == 0, err
    model = deepbelief.load(tmp_path / "model" / "model.safetensors")
    params, preset = model.get_params(), GENERATIVE_PRESETS["hinton2006"]
    assert params["hidden_layers"] == preset["hidden_layers"] == (500, 500, 2000)
    assert params["layer_params"] == preset["layer_params"]
    assert params["label_epochs"] == preset["label_epochs"]
    assert params["finetune_learning_rate"] == preset["finetune_learning_rate"]
    assert (params["pretrain_epochs"], params["finetune_epochs"]) == (1, 2)
    assert params["time_budget"] == 600 != preset["time_budget"]
    assert params["finetune_shift"] == 0 != preset["finetune_shift"]
    assert len(model.finetune_history_) == 2
    for options, message in (
        (["--preset", "lee2009"], "--preset lee2009 has no generative model (known: hinton2006)"),
        (["--time-budget", "60"], "--time-budget needs --epochs"),
        (["--preset", "hinton2006"], "features are no square image"),
    ):
        code, _, err = run(capsys, "train", tmp_path / "data.npz", "-o", tmp_path / "m2",
                           "--model", "generative", *options)  # fmt: skip
        assert code == 2 and err.count("\n") == 1 and message in err, err
        assert not (tmp_path / "m2").exists()
