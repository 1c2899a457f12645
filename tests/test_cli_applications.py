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


FAST_IMPUTE = ("--epochs", "1", "--prediction-epochs", "0", "--hidden", "4")


def stray_token_csv(path, token: str = "abc") -> None:
    """Columns a and b of numbers; a holds ``token`` in row 4 and is empty in rows 6, 9, 12."""
    rng = np.random.default_rng(0)
    a = rng.random(40).round(2).astype(object)
    a[3], a[[5, 8, 11]] = token, None
    pd.DataFrame({"a": a, "b": rng.random(40).round(2)}).to_csv(path, index=False)


def test_impute_types_the_columns_as_train_does(capsys, tmp_path):
    """A numeric column with a stray token is refused in train's words (it used to become a
    categorical column whose empty cells were filled with the token); --non-numeric missing
    reads the token as an empty cell, filled with a number; --non-numeric text keeps the
    column as categories. NA is an empty cell; ``?`` is a stray token."""
    stray_token_csv(tmp_path / "stray.csv")
    code, out, err = run(capsys, "impute", tmp_path / "stray.csv", "-o", "-", *FAST_IMPUTE)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert "column 'a', row 4: 'abc' is not a number" in err and "--non-numeric missing" in err
    code, trained, err2 = run(capsys, "train", tmp_path / "stray.csv", "--no-target", "-o",
                              tmp_path / "model")  # fmt: skip
    assert code == 2 and err2.split(": ", 2)[2] == err.split(": ", 2)[2]
    code, out, err = run(capsys, "impute", tmp_path / "stray.csv", "-o", "-", *FAST_IMPUTE,
                         "--non-numeric", "missing")  # fmt: skip
    assert code == 0 and "filled 4 empty cells (1 of them not a number" in err, err
    filled = pd.read_csv(io.StringIO(out))
    assert filled["a"].dtype == np.float64 and filled["a"].notna().all()
    original = pd.read_csv(tmp_path / "stray.csv", dtype=str)
    kept = original["a"].notna() & (original["a"] != "abc")
    assert (pd.read_csv(io.StringIO(out), dtype=str)["a"][kept] == original["a"][kept]).all()
    code, out, err = run(capsys, "impute", tmp_path / "stray.csv", "-o", "-", *FAST_IMPUTE,
                         "--non-numeric", "text")  # fmt: skip
    assert code == 0 and "filled 3 empty cells" in err, err
    assert pd.read_csv(io.StringIO(out), dtype=str)["a"][3] == "abc"
    text = (tmp_path / "stray.csv").read_text().replace("\n,", "\nNA,", 1)
    (tmp_path / "na.csv").write_text(text.replace("abc", "?"))
    code, _, err = run(capsys, "impute", tmp_path / "na.csv", "-o", "-", *FAST_IMPUTE)
    assert code == 2 and "row 4: '?' is not a number" in err, err
    code, out, err = run(capsys, "impute", tmp_path / "na.csv", "-o", "-", *FAST_IMPUTE,
                         "--non-numeric", "missing")  # fmt: skip
    assert code == 0 and "filled 4 empty cells" in err, err
    assert pd.read_csv(io.StringIO(out))["a"].notna().all()


def test_impute_without_a_header_writes_none(capsys, tmp_path):
    (tmp_path / "rows.csv").write_text("1,2\n3,\n5,6\n7,8\n")
    code, out, err = run(capsys, "impute", tmp_path / "rows.csv", "--no-header", "-o", "-",
                         *FAST_IMPUTE)  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 4 and lines[0] == "1,2" and lines[2:] == ["5,6", "7,8"], out
    assert lines[1].startswith("3,") and lines[1] != "3,"
    code, out, err = run(capsys, "impute", tmp_path / "rows.csv", "-o", tmp_path / "out.csv",
                         *FAST_IMPUTE)  # fmt: skip
    assert code == 0 and (tmp_path / "out.csv").read_text().splitlines()[0] == "1,2"


def test_impute_writes_a_semicolon_file_with_decimal_commas_as_it_read_it(capsys, tmp_path):
    rows = "".join(f"{i},5;{i % 3},25;{'red' if i % 2 else 'blue'}\n" for i in range(40))
    (tmp_path / "semi.csv").write_text("a;b;c\n" + rows + "7,5;;red\n")
    code, out, err = run(capsys, "impute", tmp_path / "semi.csv", "-o", "-", "--hidden", "4",
                         "--epochs", "2")  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "a;b;c" and lines[1:-1] == rows.splitlines()  # kept as written
    a, b, c = lines[-1].split(";")
    assert (a, c) == ("7,5", "red") and 0 <= float(b.replace(",", ".")) <= 3 and "," in b


def test_impute_takes_a_blank_line_of_a_one_column_file_as_an_empty_cell(capsys, tmp_path):
    """A blank line in a one-column CSV is an empty cell: a row with no value, refused (it
    used to be dropped silently, three rows coming back of four); wider files skip them."""
    (tmp_path / "one.csv").write_text("x\n1\n\n3\n4\n")
    code, out, err = run(capsys, "impute", tmp_path / "one.csv", "-o", tmp_path / "out.csv",
                         *FAST_IMPUTE)  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and out == "", err
    assert "row 2 (counting data rows from 1, blank lines included) is empty" in err
    assert not (tmp_path / "out.csv").exists()
    (tmp_path / "full.csv").write_text("x\n1\n2\n3\n")
    code, out, err = run(capsys, "impute", tmp_path / "full.csv", "-o", "-", *FAST_IMPUTE)
    assert code == 0 and out.splitlines() == ["x", "1", "2", "3"], err
    (tmp_path / "two.csv").write_text("x,y\n1,2\n\n3,\n4,5\n5,6\n")
    code, out, err = run(capsys, "impute", tmp_path / "two.csv", "-o", "-", *FAST_IMPUTE)
    assert code == 0 and "of 4 rows" in err and len(out.splitlines()) == 5, err


@pytest.fixture(scope="module")
def text_column_models(tmp_path_factory):
    """A generative and an unsupervised model of a CSV with a text column (and labels 2, 3)."""
    folder = tmp_path_factory.mktemp("text")
    rng = np.random.default_rng(0)
    rows = pd.DataFrame(
        {
            "a": rng.random(60).round(2),
            "c": rng.choice(["x", "y"], 60),
            "label": rng.integers(2, 4, 60),
        }
    )
    rows.to_csv(folder / "rows.csv", index=False)
    for kind, options in (("generative", ()), ("unsupervised", ("--no-target",))):
        code = main(["train", str(folder / "rows.csv"), "-o", str(folder / kind), "--model",
                     kind, *options, "--layers", "4", "--pretrain-epochs", "1",
                     "--quiet"])  # fmt: skip
        assert code == 0
    return folder


def test_npy_output_of_text_columns_is_refused_before_the_work(
    text_column_models, capsys, tmp_path, monkeypatch
):
    """sample and denoise to .npy of a model with a text column: one line naming the file and
    suggesting .csv, before sampling or denoising (they used to run, then fail with "could not
    convert string to float"); .csv works."""
    from deepbelief import applications
    from deepbelief.dbn_estimators import DBN

    def never(*args, **kwargs):
        raise AssertionError("the work ran before the refusal")

    folder = text_column_models
    with monkeypatch.context() as patch:
        patch.setattr(DBN, "sample", never)
        patch.setattr(applications, "denoise", never)
        for argv in (
            ["sample", folder / "generative", "-n", "3", "-o", tmp_path / "out.npy"],
            ["sample", folder / "unsupervised", "-n", "3", "-o", tmp_path / "out.npy"],
            ["denoise", folder / "unsupervised", folder / "rows.csv", "-o", tmp_path / "out.npy"],
        ):
            code, _, err = run(capsys, *argv)
            assert code == 2 and err.count("\n") == 1, err
            assert f"{tmp_path / 'out.npy'}: a .npy file holds numbers only" in err
            assert "'c'" in err and "write .csv" in err
            assert not (tmp_path / "out.npy").exists()
    code, _, err = run(capsys, "sample", folder / "unsupervised", "-n", "3", "--gibbs-steps",
                       "2", "-o", tmp_path / "out.csv")  # fmt: skip
    assert code == 0 and "c" in pd.read_csv(tmp_path / "out.csv").columns, err


def test_npy_writer_refuses_pandas_string_columns(tmp_path):
    """The writer's own guard sees pandas' string dtype (pandas 3 reads text as it), not only
    object columns."""
    from deepbelief.commands import _write_rows
    from deepbelief.errors import UsageError

    rows = pd.DataFrame({"a": [0.5], "c": pd.array(["x"], dtype="string")})
    with pytest.raises(UsageError, match="categorical columns do not fit a .npy file"):
        _write_rows(rows, tmp_path / "out.npy", None)
    assert not (tmp_path / "out.npy").exists()


def test_sample_label_matches_by_value(text_column_models, capsys):
    """--label 3.0 is the label 3, as train and evaluate match labels (it used to be refused)."""
    folder = text_column_models
    code, out, err = run(capsys, "sample", folder / "generative", "-n", "2", "--label", "3.0",
                         "--gibbs-steps", "2", "-o", "-")  # fmt: skip
    assert code == 0 and "of class 3 " in err and len(out.splitlines()) == 3, err
    code, _, err = run(capsys, "sample", folder / "generative", "-n", "2", "--label", "4",
                       "-o", "-")  # fmt: skip
    assert code == 2 and "unknown --label '4'; the classes are 2, 3" in err, err


def test_score_leaves_rows_without_values_unscored_and_says_which_rows_were_filled(
    capsys, tmp_path
):
    """A row of empty cells was filled with the training fills and rated as typical as the
    data's centre; rows with some empty cells were scored filled without a word."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    frame.to_csv(tmp_path / "train.csv", index=False)
    code = main(["train", str(tmp_path / "train.csv"), "-o", str(tmp_path / "m"), "--no-target",
                 "--layers", "8", "--pretrain-epochs", "3", "--quiet"])  # fmt: skip
    assert code == 0
    rows = frame.iloc[:4].copy()
    rows.loc[1, :] = np.nan
    rows.loc[3, "b"] = np.nan
    rows.to_csv(tmp_path / "rows.csv", index=False)
    code, out, err = run(capsys, "score", tmp_path / "m", tmp_path / "rows.csv")
    assert code == 0, err
    scores = pd.read_csv(io.StringIO(out))["score"]
    assert scores.isna().tolist() == [False, True, False, False]
    lines = err.strip().splitlines()  # the summary, then the warnings
    assert lines[0].startswith("deepbelief: wrote 3 scores") and len(lines) == 3, err
    assert "; 1 row(s) without values unscored)" in lines[0]
    assert "rows.csv: 1 row(s) with no values (the first: row 2): their score is left" in lines[1]
    assert "1 row(s) with empty cells (the first: row 4, 1 of 3)" in lines[2]
    code, _, err = run(capsys, "score", tmp_path / "m", tmp_path / "train.csv")
    assert code == 0 and "warning" not in err
    code, _, err = run(capsys, "denoise", tmp_path / "m", tmp_path / "rows.csv", "-o", "-")
    assert code == 0 and "1 row(s) with no values (the first: row 2): denoised from" in err


def test_score_rates_a_row_of_an_unseen_category_impossible_where_transform_refuses_it(
    capsys, tmp_path
):
    """One unseen category failed the whole file for score too, where the novel row is what
    an anomaly score should flag."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300), "c": rng.choice(["red", "blue"], 300)})
    frame.to_csv(tmp_path / "train.csv", index=False)
    code = main(["train", str(tmp_path / "train.csv"), "-o", str(tmp_path / "m"), "--no-target",
                 "--layers", "8", "--pretrain-epochs", "5", "--quiet"])  # fmt: skip
    assert code == 0
    rows = pd.DataFrame({"x": [0.0, 0.0, 0.0], "c": ["red", "purple", "blue"]})
    rows.to_csv(tmp_path / "rows.csv", index=False)
    code, out, err = run(capsys, "score", tmp_path / "m", tmp_path / "rows.csv")
    assert code == 0, err
    scores = pd.read_csv(io.StringIO(out))["score"].to_numpy()
    assert scores[1] == -np.inf and np.isfinite(scores[[0, 2]]).all()  # no probability
    assert "rows.csv: column 'c', row 2: unseen category 'purple' (1 row(s) in all)" in err
    assert "deepbelief: wrote 3 scores (lowest -inf)" in err
    code, _, err = run(capsys, "transform", tmp_path / "m", tmp_path / "rows.csv", "-o", "-")
    assert code == 2 and "row 2: unseen category 'purple' (known: blue, red)" in err


def test_denoise_writes_an_array_in_the_shape_it_read(block_model, capsys, tmp_path):
    flat = blocks(20, 5)
    for shape in ((3, 4), (1, 3, 4), (3, 4, 1)):
        np.save(tmp_path / "rows.npy", flat.reshape(20, *shape))
        out = tmp_path / f"{len(shape)}-{shape[0]}.npy"
        code, _, err = run(capsys, "denoise", block_model / "model", tmp_path / "rows.npy",
                           "-o", out)  # fmt: skip
        assert code == 0, err
        cleaned = np.load(out)
        assert cleaned.shape == (20, *shape)
        assert np.mean((cleaned.reshape(20, -1) - flat) ** 2) < 0.1
