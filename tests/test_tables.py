"""Preprocessing of tables: scaling, one-hot categories, missing values, identifiers, errors
that name the column and row, and a fitted state that is plain data."""

import json

import numpy as np
import pytest

from deepbelief.data import TablePreprocessor, prepare_target, read_table
from deepbelief.errors import DataError

pd = pytest.importorskip("pandas")


def table():
    return pd.DataFrame(
        {
            "id": [101, 102, 103, 104],
            "age": [20.0, 30.0, 40.0, 60.0],
            "colour": ["red", "blue", "red", "green"],
            "score": [1, 2, 3, 4],
        }
    )


def test_numeric_columns_scale_to_unit_range_and_categories_become_one_hot_blocks():
    pre = TablePreprocessor().fit(table())
    X = pre.transform(table())
    assert X.dtype == np.float32 and X.shape == (4, 1 + 1 + 3 + 1)
    np.testing.assert_allclose(X[:, 1], [0.0, 0.25, 0.5, 1.0])  # age, min-max
    np.testing.assert_array_equal(X[:, 2:5], [[0, 0, 1], [1, 0, 0], [0, 0, 1], [0, 1, 0]])
    assert pre.blocks() == [("numeric", 2), ("categorical", 3), ("numeric", 1)]
    assert pre.n_features == 6


def test_standard_scaling_for_gaussian_units():
    X = TablePreprocessor(scaling="standard").fit(table()).transform(table())
    np.testing.assert_allclose(X[:, 1].mean(), 0.0, atol=1e-6)
    np.testing.assert_allclose(X[:, 1].std(), 1.0, atol=1e-6)


def test_inverse_transform_recovers_the_original_columns():
    pre = TablePreprocessor().fit(table())
    back = pre.inverse_transform(pre.transform(table()))
    np.testing.assert_allclose(back["age"], table()["age"])
    assert list(back["colour"]) == list(table()["colour"])


def test_missing_values_are_imputed_or_refused_with_the_column_and_row():
    frame = table()
    frame.loc[2, "age"] = np.nan
    frame.loc[1, "colour"] = None
    X = TablePreprocessor().fit(frame).transform(frame)
    assert X[2, 1] == pytest.approx((30.0 - 20.0) / 40.0)  # the median of 20, 30, 60
    # colour's categories are now green, red: row 1 gets the most frequent, red
    np.testing.assert_array_equal(X[1, 2:4], [0, 1])
    with pytest.raises(DataError, match=r"column 'age', row 2: missing value"):
        TablePreprocessor(missing="error").fit(frame)


def test_unseen_category_and_text_in_a_numeric_column_name_the_row():
    pre = TablePreprocessor().fit(table())
    frame = table()
    frame.loc[3, "colour"] = "purple"
    with pytest.raises(DataError, match=r"column 'colour', row 3: unseen category 'purple'"):
        pre.transform(frame, source="new.csv")
    frame = table().astype({"age": object})
    frame.loc[1, "age"] = "thirty"
    with pytest.raises(DataError, match=r"column 'age', row 1: 'thirty' is not a number"):
        pre.transform(frame)
    with pytest.raises(DataError, match=r"missing column\(s\) 'score'"):
        pre.transform(table().drop(columns="score"))


def test_identifier_columns_are_dropped_by_option():
    pre = TablePreprocessor(drop_ids=True).fit(table())
    assert [c["name"] for c in pre.columns] == ["age", "colour"]  # id and score are unique ints
    kept = TablePreprocessor().fit(table())
    assert [c["name"] for c in kept.columns] == ["id", "age", "colour", "score"]


def test_fitted_state_is_json_and_round_trips():
    pre = TablePreprocessor(scaling="standard").fit(table())
    config = json.loads(json.dumps(pre.to_config()))
    again = TablePreprocessor.from_config(config)
    np.testing.assert_array_equal(again.transform(table()), pre.transform(table()))


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"a": []}), "no rows"),
        (pd.DataFrame(index=range(3)), "no feature columns"),
        (pd.DataFrame({"a": [np.nan, np.nan]}), "column 'a' has no values"),
        (pd.DataFrame({"a": [1.0, np.inf]}), "non-finite value at row 1"),
    ],
)
def test_unusable_tables_raise_data_error(frame, message):
    with pytest.raises(DataError, match=message):
        TablePreprocessor().fit(frame, source="bad.csv")


def test_bad_settings_raise_value_error():
    with pytest.raises(ValueError, match="scaling"):
        TablePreprocessor(scaling="robust")
    with pytest.raises(ValueError, match="missing"):
        TablePreprocessor(missing="drop")
    with pytest.raises(ValueError, match="not fitted"):
        TablePreprocessor().transform(table())


# ---------------------------------------------------------------------- CSV files and targets
def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_read_table_takes_the_last_column_or_a_named_or_numbered_one(tmp_path):
    path = write(tmp_path, "a,b,label\n1,x,yes\n2,y,no\n3,x,yes\n")
    features, target = read_table(path)
    assert list(features.columns) == ["a", "b"] and list(target) == ["yes", "no", "yes"]
    features, target = read_table(path, target="a")
    assert list(features.columns) == ["b", "label"] and list(target) == [1, 2, 3]
    features, target = read_table(path, target=1)
    assert target.name == "b"
    features, target = read_table(path, target="-3")
    assert target.name == "a"
    features, target = read_table(path, no_target=True)
    assert target is None and features.shape == (3, 3)
    features, target = read_table(write(tmp_path, "1,2,0\n3,4,1\n", "raw.csv"), header=False)
    assert features.shape == (2, 2) and list(target) == [0, 1]


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("", {}, "the file is empty"),
        ("a,b,c\n", {}, "a header but no data rows"),
        ("a,b,c\n1,2,3\n4,5,6,7\n", {}, r"malformed CSV .*line 3"),
        ("a,b,c\n1,2,3\n", {"target": "price"}, r"no target column named 'price'; .*'a', 'b'"),
        ("a,b,c\n1,2,3\n", {"target": 7}, "position 7 is out of range"),
        ("label\n1\n2\n", {}, "only the target column 'label'"),
    ],
)
def test_unreadable_tables_name_the_file_and_the_problem(tmp_path, text, kwargs, message):
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=message) as info:
        read_table(path, **kwargs)
    assert str(path) in str(info.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_table(tmp_path / "absent.csv")
    with pytest.raises(DataError, match="is a directory"):
        read_table(tmp_path)


def test_task_detection_and_target_errors():
    labels = pd.Series(["cat", "dog", "cat"], name="animal")
    assert prepare_target(labels)[1] == "classification"
    assert prepare_target(pd.Series([0, 1, 1, 0]))[1] == "classification"
    assert prepare_target(pd.Series(np.arange(50)))[1] == "regression"  # 50 distinct ints
    values, task = prepare_target(pd.Series([0.5, 1.5, 2.25]))
    assert task == "regression" and values.dtype == np.float64
    assert prepare_target(pd.Series([0, 1, 2]), task="regression")[1] == "regression"
    with pytest.raises(DataError, match=r"target column 'y' has a missing value at row 1"):
        prepare_target(pd.Series([1.0, np.nan, 2.0], name="y"))
    with pytest.raises(DataError, match="single class"):
        prepare_target(pd.Series(["a", "a"], name="y"))
    with pytest.raises(DataError, match=r"row 1: 'high' is not a finite number"):
        prepare_target(pd.Series(["1.5", "high"], name="y"), task="regression")
    with pytest.raises(ValueError, match="task"):
        prepare_target(labels, task="ranking")
