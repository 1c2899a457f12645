"""Column typing that does not guess silently: stray tokens in numeric columns, labels matched
by value, text columns too wide to one-hot encode (issue 13, point 6)."""

import json

import numpy as np
import pandas as pd
import pytest

from deepbelief.cli import main
from deepbelief.data import TablePreprocessor, label_codes, prepare_target, read_table
from deepbelief.errors import DataError

TINY = ["--layers", "4", "--pretrain-epochs", "1", "--epochs", "1", "--quiet"]


def numbers_csv(n: int, stray: dict | None = None, label=lambda i: str(1 + i % 2)) -> str:
    """``x`` (numbers), ``colour`` (text), ``label``; ``stray`` replaces x cells {row: text}
    (rows counted from 0)."""
    rng = np.random.default_rng(0)
    lines = ["x,colour,label"]
    for i in range(n):
        x = (stray or {}).get(i, f"{rng.normal() + 5:.3f}")
        lines.append(f"{x},{['red', 'blue'][i % 2]},{label(i)}")
    return "\n".join(lines) + "\n"


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------------- stray tokens
@pytest.mark.parametrize(
    ("token", "shown"),
    [("abc", "'abc'"), ('"6,7"', "'6,7'"), ("n.a.", "'n.a.'"), ("?", "'?'")],
)
def test_a_stray_token_in_a_numeric_column_names_file_column_row_and_value(tmp_path, token, shown):
    path = write(tmp_path, numbers_csv(40, {6: token}))
    features, _ = read_table(path)
    with pytest.raises(DataError) as caught:
        TablePreprocessor().fit(features, source=str(path))
    message = str(caught.value)
    assert message.startswith(f"{path}: column 'x', row 7: {shown} is not a number")
    assert "39 of the column's 40 values are" in message
    assert "--non-numeric missing" in message and "non_numeric='missing'" in message


def test_the_option_reads_stray_tokens_as_missing_values_in_fit_and_transform(tmp_path):
    path = write(tmp_path, numbers_csv(40, {6: "abc", 20: '"6,7"'}))
    features, _ = read_table(path)
    pre = TablePreprocessor(non_numeric="missing").fit(features, source=str(path))
    spec = pre.columns[0]
    assert spec["kind"] == "numeric" and pre.n_features == 3  # x, then red/blue
    clean = pd.to_numeric(features["x"], errors="coerce")
    assert spec["fill"] == pytest.approx(float(clean.median()))
    X = pre.transform(features)
    assert np.isfinite(X).all()
    assert X[6, 0] == pytest.approx((spec["fill"] - spec["offset"]) / spec["scale"])
    assert X[20, 0] == X[6, 0]
    # clean data (numbers read as float32) predicts: no "unseen category '6.699999809265137'"
    clean_frame = features.assign(x=clean.fillna(6.7).astype(np.float32))
    assert pre.transform(clean_frame).shape == (40, 3)
    # with missing values refused, the first stray cell is named
    with pytest.raises(DataError, match=r"column 'x', row 7: 'abc' is not a number; read as a "):
        TablePreprocessor(non_numeric="missing", missing="error").fit(features, str(path))
    strict = TablePreprocessor(non_numeric="missing", missing="error").fit(clean_frame)
    with pytest.raises(DataError, match=r"column 'x', row 7: 'abc' is not a number; read as "):
        strict.transform(features)
    with pytest.raises(DataError, match=r"column 'x', row 21: '6,7' is not a number \(1 such"):
        TablePreprocessor().fit(clean_frame).transform(features.replace("abc", "5"))


def test_the_rule_is_stored_with_the_fitted_state():
    frame = pd.DataFrame({"x": ["1", "2", "3", "oops"], "y": [1.0, 2.0, 3.0, 4.0]})
    pre = TablePreprocessor(non_numeric="missing", max_categories=7).fit(frame)
    config = json.loads(json.dumps(pre.to_config()))
    assert config["non_numeric"] == "missing" and config["max_categories"] == 7
    again = TablePreprocessor.from_config(config)
    np.testing.assert_array_equal(again.transform(frame), pre.transform(frame))
    del config["non_numeric"], config["max_categories"]  # a card from before the option
    old = TablePreprocessor.from_config(config)
    assert old.non_numeric == "error" and old.max_categories == 1000
    with pytest.raises(DataError, match=r"row 4: 'oops' is not a number"):
        old.transform(frame)


def test_text_keeps_the_column_as_categories_and_mostly_text_columns_stay_text():
    frame = pd.DataFrame({"x": ["1", "2", "3", "oops"]})
    pre = TablePreprocessor(non_numeric="text").fit(frame)
    assert pre.columns[0]["kind"] == "categorical" and pre.n_features == 4
    mostly_text = pd.DataFrame({"grade": ["A", "B", "3", "A", "C"]})
    assert TablePreprocessor().fit(mostly_text).columns[0]["kind"] == "categorical"
    half = pd.DataFrame({"code": ["1", "2", "x", "y"]})  # not a majority of numbers
    assert TablePreprocessor().fit(half).columns[0]["kind"] == "categorical"
    declared = pd.DataFrame({"code": pd.Series(["1", "2", "x"], dtype="category")})
    assert TablePreprocessor().fit(declared).columns[0]["kind"] == "categorical"


def test_bad_non_numeric_settings_are_refused():
    with pytest.raises(ValueError, match="non_numeric"):
        TablePreprocessor(non_numeric="drop")
    with pytest.raises(ValueError, match="max_categories"):
        TablePreprocessor(max_categories=0)
    with pytest.raises(ValueError, match="non_numeric"):
        prepare_target(pd.Series([1, 2]), non_numeric="coerce")


def test_stray_tokens_are_found_across_a_chunked_read(tmp_path, monkeypatch):
    from deepbelief import data

    path = write(tmp_path, numbers_csv(300, {250: "abc", 280: "n.a."}))
    whole, _ = read_table(path)
    monkeypatch.setattr(data, "CSV_CHUNK_BYTES", 400)
    monkeypatch.setattr(data, "_chunk_rows", lambda p: 10)  # 30 chunks; the stray ones late
    calls = []
    original = data._read_csv_chunked
    monkeypatch.setattr(data, "_read_csv_chunked", lambda *a: calls.append(1) or original(*a))
    chunked, _ = read_table(path)
    assert calls == [1]
    pd.testing.assert_frame_equal(chunked, whole)
    with pytest.raises(DataError, match=r"column 'x', row 251: 'abc' is not a number, but 298"):
        TablePreprocessor().fit(chunked, source=str(path))
    X_chunked = TablePreprocessor(non_numeric="missing").fit(chunked).transform(chunked)
    X_whole = TablePreprocessor(non_numeric="missing").fit(whole).transform(whole)
    np.testing.assert_array_equal(X_chunked, X_whole)
    assert np.isfinite(X_chunked).all() and X_chunked[250, 0] == X_chunked[280, 0]


def test_a_mostly_numeric_target_with_a_stray_value_is_refused_unless_taken_as_text():
    target = pd.Series(["1", "2", "1", "two", "2"], name="y")
    with pytest.raises(DataError, match=r"t.csv: target column 'y', row 4: 'two' is not a number"):
        prepare_target(target, source="t.csv")
    with pytest.raises(DataError, match="--non-numeric text"):
        prepare_target(target, non_numeric="missing")
    values, task = prepare_target(target, non_numeric="text")
    assert task == "classification" and sorted(set(values)) == ["1", "2", "two"]
    assert prepare_target(pd.Series(["cat", "dog", "7"]))[1] == "classification"


# ---------------------------------------------------------------------- too many categories
def test_a_text_column_too_wide_to_one_hot_encode_is_refused_with_the_figures():
    n = 1500
    frame = pd.DataFrame({
        "comment": [f"note {i % 1200}" for i in range(n)],
        "x": np.arange(n, dtype=float),
    })  # fmt: skip
    with pytest.raises(DataError) as caught:
        TablePreprocessor().fit(frame, source="big.csv")
    message = str(caught.value)
    assert message.startswith("big.csv: column 'comment' has 1200 distinct values in 1500 rows")
    assert "1200 columns wide (1500 x 1200 x 4 bytes = 7.2 MB)" in message
    assert "limit of 1000 categories" in message and "--drop-ids" in message
    assert TablePreprocessor(max_categories=None).fit(frame).n_features == 1201
    assert TablePreprocessor(max_categories=1200).fit(frame).n_features == 1201
    ids = frame.assign(comment=[f"id{i}" for i in range(n)])  # all distinct: an identifier
    assert TablePreprocessor(drop_ids=True).fit(ids).n_features == 1


# ---------------------------------------------------------------------- labels by value
def test_labels_are_matched_by_value():
    np.testing.assert_array_equal(
        label_codes([2.0, "3", np.int64(1), " 2 ", np.float32(3.0)], np.array([1, 2, 3])),
        [1, 2, 0, 1, 2],
    )
    np.testing.assert_array_equal(label_codes(["2", 1], np.array([1.0, 2.0])), [1, 0])
    np.testing.assert_array_equal(label_codes(["a", "A"], np.array(["A", "a"])), [1, 0])
    unseen = r"e.csv: row 2: target 'b' is none of the model's classes; .*never saw: b, c"
    with pytest.raises(DataError, match=unseen):
        label_codes(["a", "b", "c", "b"], np.array(["A", "a"]), source="e.csv")
    with pytest.raises(DataError, match="never saw: 2.5, 4"):
        label_codes([2.5, 4, 1], np.array([1, 2, 3]))
    with pytest.raises(DataError, match="never saw: 2.0"):  # text labels stay text
        label_codes(["2.0"], np.array(["1", "2"]))
    bools = np.array([False, True])
    np.testing.assert_array_equal(label_codes([True, False], bools), [1, 0])


# ---------------------------------------------------------------------- the command line
def test_labels_written_2_0_evaluate_against_a_model_trained_on_2(tmp_path, capsys):
    train_csv = write(tmp_path, numbers_csv(40), "train.csv")  # labels 1 and 2
    floats = numbers_csv(40, label=lambda i: f"{1 + i % 2}.0")
    assert "2.0" in floats
    eval_csv = write(tmp_path, floats, "eval.csv")
    model = tmp_path / "model"
    assert main(["train", str(train_csv), "-o", str(model), *TINY]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(model), str(eval_csv), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["rows"] == 40 and results["classes"] == [1, 2]
    assert main(["evaluate", str(model), str(train_csv), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == results["accuracy"]


def test_non_numeric_missing_is_stored_and_applied_again_at_predict_time(tmp_path, capsys):
    dirty = write(tmp_path, numbers_csv(40, {3: "abc", 9: '"6,7"'}), "dirty.csv")
    clean = write(tmp_path, numbers_csv(40), "clean.csv")
    model = tmp_path / "model"
    argv = ["train", str(dirty), "-o", str(model), *TINY]
    assert main(["train", str(dirty), "-o", str(tmp_path / "refused"), *TINY]) == 2
    assert "column 'x', row 4: 'abc' is not a number" in capsys.readouterr().err
    assert main([*argv, "--non-numeric", "missing"]) == 0
    card = json.loads((model / "deepbelief.json").read_text())
    assert card["input"]["preprocessor"]["non_numeric"] == "missing"
    assert json.loads((model / "run.json").read_text())["non_numeric"] == "missing"
    capsys.readouterr()
    assert main(["predict", str(model), str(clean)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 41
    assert main(["predict", str(model), str(dirty)]) == 0  # stray cells imputed again
    assert len(capsys.readouterr().out.splitlines()) == 41
