"""Preprocessing of tables: scaling, one-hot categories, missing values, identifiers, errors
that name the column and row, and a fitted state that is plain data."""

import bz2
import gzip
import json
import lzma
import warnings

import numpy as np
import pandas as pd
import pytest

from deepbelief.data import TablePreprocessor, file_kind, prepare_target, read_table
from deepbelief.errors import DataError


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
    with pytest.raises(DataError, match=r"column 'age', row 3: missing value"):
        TablePreprocessor(missing="error").fit(frame)


def test_unseen_category_and_text_in_a_numeric_column_name_the_row():
    pre = TablePreprocessor().fit(table())
    frame = table()
    frame.loc[3, "colour"] = "purple"
    with pytest.raises(DataError, match=r"column 'colour', row 4: unseen category 'purple'"):
        pre.transform(frame, source="new.csv")
    frame = table().astype({"age": object})
    frame.loc[1, "age"] = "thirty"
    with pytest.raises(DataError, match=r"column 'age', row 2: 'thirty' is not a number"):
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
        (pd.DataFrame({"a": [1.0, np.inf]}), r"column 'a', row 2: non-finite value inf"),
        (pd.DataFrame({"a": [np.nan, 1.0, -np.inf]}), r"column 'a', row 3: non-finite value -inf"),
        (pd.DataFrame({"a": [-1e308, 1e308]}), r"column 'a': .* too wide a range"),
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
        ("a,b,c\n1,2,3\n4,5,6,7\n", {}, r"malformed CSV: line 3 has 4 fields, expected 3"),
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
    with pytest.raises(DataError, match=r"target column 'y' has a missing value at row 2"):
        prepare_target(pd.Series([1.0, np.nan, 2.0], name="y"))
    with pytest.raises(DataError, match="single class"):
        prepare_target(pd.Series(["a", "a"], name="y"))
    with pytest.raises(DataError, match=r"column 'y', row 2: 'high' is not a finite number"):
        prepare_target(pd.Series(["1.5", "high"], name="y"), task="regression")
    with pytest.raises(ValueError, match="task"):
        prepare_target(labels, task="ranking")


def test_text_identifier_columns_are_dropped_too():
    frame = table().assign(name=["ann", "bob", "cy", "dee"])
    pre = TablePreprocessor(drop_ids=True).fit(frame)
    assert "name" not in [c["name"] for c in pre.columns]  # text ids: pandas 3 "str" dtype
    assert "colour" in [c["name"] for c in pre.columns]  # repeated values: not an id


def test_values_far_outside_the_fitted_range_name_the_row_and_value():
    pre = TablePreprocessor().fit(pd.DataFrame({"a": [0.0, 1.0]}))
    np.testing.assert_allclose(pre.transform(pd.DataFrame({"a": [2.0]})), [[2.0]])
    with pytest.raises(DataError, match=r"column 'a', row 2: value 1e\+300 is too far outside"):
        pre.transform(pd.DataFrame({"a": [0.5, 1e300]}), source="new.csv")
    with pytest.raises(DataError, match=r"column 'a', row 1: non-finite value inf"):
        pre.transform(pd.DataFrame({"a": [np.inf]}))


def test_bom_tabs_and_missing_fields(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes("\ufeffa,b,c\r\n1,2,x\r\n3,,y\r\n".encode())
    features, target = read_table(path)
    assert list(features.columns) == ["a", "b"] and list(target) == ["x", "y"]
    assert np.isnan(features["b"].iloc[1])
    tsv = write(tmp_path, "a\tb\n1\t2\n3\t4\n", "data.tsv")
    assert list(read_table(tsv, no_target=True)[0].columns) == ["a", "b"]


def test_rows_longer_than_the_header_are_never_shifted(tmp_path):
    # pandas would take the first column as the index and shift the others left
    features, target = read_table(write(tmp_path, "a,b,c\n1,2,3,\n4,5,6,\n"))
    assert features.to_numpy().tolist() == [[1, 2], [4, 5]] and list(target) == [3, 6]
    path = write(tmp_path, "a,b,c\n1,2,3,4\n4,5,6,7\n")
    with pytest.raises(DataError, match=r"data.csv: malformed CSV: the data rows have more"):
        read_table(path)


def test_a_row_with_too_few_fields_is_refused_naming_its_line(tmp_path):
    """pandas filled a short row's last fields with missing values (a missing middle field
    shifted the values after it a column left) and the command trained on it silently."""
    path = write(tmp_path, 'x1,x2,x3,y\n0.1,0.2,0.3,a\n"4\n",1,1,b\n\n0.5,0.7\n0.2,,,\n')
    with pytest.raises(DataError, match=r"data.csv: malformed CSV: line 6 has 2 fields, "
                                        r"expected 4 \(leave a missing value empty"):  # fmt: skip
        read_table(path)
    with gzip.open(tmp_path / "data.csv.gz", "wt") as f:
        f.write("a,b\n1,2\n3\n")
    with pytest.raises(DataError, match="line 3 has 1 field, expected 2"):
        read_table(tmp_path / "data.csv.gz")
    # empty fields are fields: a row of them, or empty last cells, is read as missing values
    features, target = read_table(write(tmp_path, "a,b,c\n1,2,x\n,,\n3,,\n"))
    assert features["a"].isna().tolist() == [False, True, False] and target.isna().sum() == 2


def test_numbers_written_with_formatting_are_refused_not_made_categories(tmp_path):
    """ "$9.99", "12%", "6,523.94": each price became a text category (an unseen one at
    predict time) without a word."""
    for cells in (
        ["$9.99", "$12.50", "$9.99"],
        ["12%", "0.5%", "7%"],
        ['"6,523.94"', '"1,200"', "7"],
    ):
        frame = read_table(write(tmp_path, "p,y\n" + "".join(f"{c},a\n" for c in cells)))[0]
        with pytest.raises(DataError, match=r"column 'p', row 1: .* is a number written with "
                                            r"formatting .*--non-numeric text"):  # fmt: skip
            TablePreprocessor().fit(frame, "data.csv")
        kept = TablePreprocessor(non_numeric="text").fit(frame, "data.csv")  # asked for: kept
        assert kept.columns[0]["kind"] == "categorical"
    colours = pd.DataFrame({"c": ["red", "1,2", "blue", "red"]})  # mostly text: categories
    assert TablePreprocessor().fit(colours).columns[0]["kind"] == "categorical"


def test_an_empty_unnamed_last_column_is_left_out_and_the_target_is_the_one_before(tmp_path):
    """A spreadsheet's export ends every line with a comma: the empty "Unnamed: 2" column was
    taken as the target ("has a missing value") or refused as a feature with no values."""
    path = write(tmp_path, "a,b,y,\n1,2,u,\n3,4,v,\n")
    with pytest.warns(UserWarning, match="its last column has no name and no values"):
        features, target = read_table(path)
    assert list(features.columns) == ["a", "b"] and list(target) == ["u", "v"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        features, _ = read_table(write(tmp_path, "a,b,\n1,2,7\n3,4,\n"), no_target=True)
    assert list(features.columns) == ["a", "b", "Unnamed: 2"]  # it has a value: kept


def test_a_first_line_of_numbers_warns_that_it_may_be_data_not_a_header(tmp_path):
    path = write(tmp_path, "0.1,0.2,0.3\n0.4,0.5,0.6\n")
    with pytest.warns(UserWarning, match=r"every name in its first line is a number .*--no-header"):
        read_table(path, no_target=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_table(path, no_target=True, header=False)
        read_table(write(tmp_path, "a,2\n1,2\n", "named.csv"), no_target=True)
    fitted = TablePreprocessor().fit(read_table(path, no_target=True, header=False)[0])
    with pytest.raises(DataError, match=r"missing column\(s\) '0', '1', '2' .*give --no-header"):
        fitted.transform(pd.DataFrame({"0.1": [1.0]}))


def test_semicolons_tabs_and_decimal_commas_are_recognised_from_the_file(tmp_path):
    """A semicolon-separated export was one column named 'a;b;y' ("only the target column");
    with decimal commas, "more fields than the header names"."""
    features, target = read_table(write(tmp_path, "a;b;y\n1,5;2,25;u\n0,5;;v\n"))
    assert features.columns.tolist() == ["a", "b"] and target.tolist() == ["u", "v"]
    np.testing.assert_array_equal(features["a"], [1.5, 0.5])
    assert features["b"].iloc[0] == 2.25 and np.isnan(features["b"].iloc[1])
    points = read_table(write(tmp_path, "a;b;y\n1.5;2;u\n0.5;3;v\n", "points.csv"))[0]
    np.testing.assert_array_equal(points["a"], [1.5, 0.5])  # decimal points kept
    for sep in ("\t", "|"):
        named = read_table(write(tmp_path, f"a{sep}b{sep}y\n1{sep}2{sep}u\n", "sep.csv"))[0]
        assert named.columns.tolist() == ["a", "b"]
    # a comma in the first line keeps the comma: "1,5" is then two fields
    assert read_table(write(tmp_path, "a,b;c\n1,5;2\n", "comma.csv"))[0].columns.tolist() == ["a"]


def test_a_column_of_one_value_warns_that_it_tells_nothing():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "k": [7, 7, 7], "c": ["a", "a", "a"]})
    with pytest.warns(UserWarning) as caught:
        TablePreprocessor().fit(frame, "t.csv")
    messages = [str(w.message) for w in caught]  # one warning, whatever the number of columns
    assert messages == ["t.csv: 2 columns 'k', 'c' hold one value in every row: they tell the "
                        "rows apart in nothing; leave them out of the file"]  # fmt: skip
    with pytest.warns(UserWarning, match="t.csv: column 'k' holds one value in every row: it"):
        TablePreprocessor().fit(frame[["x", "k"]], "t.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TablePreprocessor().fit(frame[["x"]].iloc[:1])  # one row: no column varies
        # an image's constant border pixels are no columns a user chose (the demo warned of
        # its digits' pixels 0, 24, 32 and 39)
        from deepbelief.data import Dataset
        from deepbelief.model_dir import InputSpec

        pixels = np.zeros((5, 4))
        pixels[:, 1:] = np.random.default_rng(0).random((5, 3))
        InputSpec.fit(Dataset(pixels, None, "images", (2, 2), "digits"), "minmax", "impute", False)


@pytest.mark.parametrize("suffix", [".csv.zip", ".csv.bz2", ".csv.xz"])
def test_compressed_tables_are_read_and_checked_as_plain_ones(tmp_path, suffix):
    frame = pd.DataFrame({"a": [1.5, 2.5, 3.5], "y": ["u", "v", "u"]})
    frame.to_csv(tmp_path / f"t{suffix}", index=False)
    features, target = read_table(tmp_path / f"t{suffix}")
    assert features["a"].tolist() == [1.5, 2.5, 3.5] and target.tolist() == ["u", "v", "u"]
    assert file_kind(tmp_path / f"t{suffix}") == "table"  # the command took .gz alone
    if suffix != ".csv.zip":  # (pandas alone opens a zip: its rows are not checked again)
        opener = {".csv.bz2": bz2.open, ".csv.xz": lzma.open}[suffix]
        with opener(tmp_path / f"short{suffix}", "wt") as f:
            f.write("a;b\n1,5;2\n3\n")  # a semicolon file with decimal commas, a short row
        with pytest.raises(DataError, match="line 3 has 1 field, expected 2"):
            read_table(tmp_path / f"short{suffix}")


def test_a_kept_row_number_column_warns_that_it_tells_the_rows_position():
    """An integer 'id' column was a feature without a word (text ones warned already)."""
    rng = np.random.default_rng(0)
    salary = rng.choice(np.arange(20_000, 200_000), 30, replace=False)
    frame = pd.DataFrame({"id": np.arange(30), "x": rng.normal(size=30), "salary": salary})
    with pytest.warns(UserWarning, match=r"column 'id' looks like a row number .*--drop-ids"):
        TablePreprocessor().fit(frame, "t.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # dropped, or measurements spread wide: no warning
        assert TablePreprocessor(drop_ids=True).fit(frame).dropped == ["id"]
        TablePreprocessor().fit(frame[["x", "salary"]])


def test_a_column_of_dates_warns_that_each_date_is_a_category():
    """28 dates became 28 categories without a word (audit)."""
    days = pd.date_range("2024-01-01", periods=28).strftime("%Y-%m-%d").tolist()
    frame = pd.DataFrame({"date": days, "x": np.arange(28.0)})
    with pytest.warns(UserWarning) as caught:
        TablePreprocessor().fit(frame, "t.csv")
    assert [str(w.message)[:75] for w in caught] == [  # (not also "a value on each row")
        "t.csv: column 'date' holds dates ('2024-01-01', ...), read as 28 text categ"
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # months by name, codes with dashes: no dates
        names = {"m": ["May", "June", "July"] * 3, "code": ["A-1", "B-2", "C-3"] * 3}
        TablePreprocessor().fit(pd.DataFrame(names), "t.csv")


def test_spaces_after_a_value_are_trimmed_as_spaces_before_it_are(tmp_path):
    """ "red " was a category of its own beside "red" (and " red" was "red")."""
    features, _ = read_table(write(tmp_path, "c,x,y\nred,1,a\nred ,2,b\n red,3,a\n"))
    assert features["c"].tolist() == ["red"] * 3


def test_bytes_that_are_not_utf8_name_the_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("name,n\nab,1\ncd,2\ncaf\u00e9,3\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.csv: line 4: bytes b'\\xe9' are not UTF-8"):
        read_table(path)


# ---------------------------------------------------------------------- large files in chunks
def mixed_csv(n: int, late: dict | None = None) -> str:
    """A table of every column kind; ``late`` replaces cells {(row, column): text}."""
    rng = np.random.default_rng(0)
    lines = ["x,count,colour,flag,sparse,note,mixed,wide,label"]
    for i in range(n):
        cells = [
            f"{rng.normal():.6f}",
            str(int(rng.integers(0, 300))),
            ["red", "green", "blue"][i % 3],
            ["True", "False"][i % 2],
            "1.5" if i % 25 == 0 else "",  # most chunks of 10 rows: all empty
            "memo" if i % 25 == 3 else "",
            str(i),
            f"{rng.normal():.3f}",
            str(i % 4),
        ]
        for (row, column), text in (late or {}).items():
            if row == i:
                cells[column] = text
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def read_both(path, monkeypatch, **kwargs):
    """(one-shot result, chunked result, number of chunked reads)."""
    from deepbelief import data

    whole = read_table(path, **kwargs)
    calls = []
    original = data._read_csv_chunked
    monkeypatch.setattr(data, "CSV_CHUNK_BYTES", 400)
    monkeypatch.setattr(
        data, "_read_csv_chunked", lambda *a: calls.append(1) or original(*a), raising=True
    )
    chunked = read_table(path, **kwargs)
    return whole, chunked, len(calls)


def test_large_files_are_read_in_chunks_with_the_same_result(tmp_path, monkeypatch):
    from deepbelief import data

    # a text cell in the numeric "mixed" column and a float64-only value in "wide", both late:
    # early chunks saw numbers there, as the one-shot read did not
    path = write(tmp_path, mixed_csv(300, {(250, 6): "n/a?", (290, 7): "1e39"}))
    rows = []
    monkeypatch.setattr(data, "_chunk_rows", lambda p: rows.append(10) or 10)
    whole, chunked, calls = read_both(path, monkeypatch)
    assert calls == 1 and rows == [10]  # 30 chunks of 10 rows
    pd.testing.assert_frame_equal(chunked[0], whole[0])
    pd.testing.assert_series_equal(chunked[1], whole[1])
    features = chunked[0]
    assert features["x"].dtype == np.float32 and features["count"].dtype == np.int16
    assert features["sparse"].dtype == np.float32 and features["wide"].dtype == np.float64
    assert features["mixed"].iloc[250] == "n/a?" and features["mixed"].iloc[3] == "3"
    assert features["note"].iloc[3] == "memo" and features["note"].isna().sum() == 288
    assert features["flag"].dtype == bool and chunked[1].dtype == np.int64  # target as read


def test_chunked_reading_keeps_the_line_number_of_a_bad_row(tmp_path, monkeypatch):
    path = write(tmp_path, mixed_csv(300, {(279, 2): "blue,extra"}))
    from deepbelief import data

    monkeypatch.setattr(data, "_chunk_rows", lambda p: 10)
    for threshold in (2**40, 400):
        monkeypatch.setattr(data, "CSV_CHUNK_BYTES", threshold)
        with pytest.raises(DataError, match=r"line 281 has 10 fields, expected 9"):
            read_table(path)  # the header is line 1, data row 280 is line 281


def test_chunk_size_follows_the_byte_budget(tmp_path, monkeypatch):
    from deepbelief import data

    path = write(tmp_path, "a,b\n" + "1.25,2.5\n" * 2000)  # 9 bytes a line
    monkeypatch.setattr(data, "CSV_CHUNK_BYTES", 3600)
    assert data._chunk_rows(path) == 100  # a quarter of the budget per chunk
    sizes = []
    real = pd.read_csv

    def spy(*args, **kwargs):
        sizes.append(kwargs.get("chunksize"))
        return real(*args, **kwargs)

    monkeypatch.setattr(pd, "read_csv", spy)
    features, _ = read_table(path, no_target=True)
    assert sizes == [100] and len(features) == 2000


MEMORY_SCRIPT = """
import sys
import deepbelief.dbn_estimators  # the libraries loaded first: their memory is not the read's
from deepbelief import data


def status(key):  # kB, from /proc/self/status
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024


data.CSV_CHUNK_BYTES = int(sys.argv[2])
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current resident size
before = status("VmRSS")
features, _ = data.read_table(sys.argv[1], no_target=True)
print(status("VmHWM") - before, int(features.memory_usage(index=False).sum()), len(features))
"""


def test_chunked_reading_bounds_memory(tmp_path):
    """Peak memory (in a fresh process) of a 28 MB CSV read in one go and in 1 MB chunks: the
    one-shot read holds every token and a float64 copy; the chunked one about twice the
    float32 result."""
    import os
    import subprocess
    import sys

    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the peak resident size")
    block = np.random.default_rng(0).random((10000, 10))
    text = "\n".join(",".join(f"{v:.5f}" for v in row) for row in block) + "\n"
    path = tmp_path / "big.csv"
    with open(path, "w") as f:
        f.write(",".join("abcdefghij") + "\n" + text * 35)

    def growth(threshold):
        env = dict(os.environ, OMP_NUM_THREADS="1")
        done = subprocess.run(
            [sys.executable, "-c", MEMORY_SCRIPT, str(path), str(threshold)],
            capture_output=True, text=True, check=True, timeout=300, env=env,
        )  # fmt: skip
        grown, result, rows = map(int, done.stdout.split())
        assert rows == 350_000
        return grown, result

    whole, result = growth(2**40)
    chunked, _ = growth(4 * 2**20)
    assert result == 350_000 * 10 * 4  # float32
    assert chunked < 0.5 * whole, (chunked, whole)
    assert chunked < 3 * result, (chunked, result)


# ------------------------------------------------------------- what the property tests found
def test_nul_bytes_mean_a_binary_or_utf16_file(tmp_path):
    path = tmp_path / "utf16.csv"
    path.write_bytes("a,b\n1,2\n".encode("utf-16-le"))  # no byte-order mark
    with pytest.raises(DataError, match=r"utf16.csv: line 1: a NUL byte; .*UTF-16"):
        read_table(path)


def test_an_unclosed_quote_names_its_line(tmp_path):
    path = write(tmp_path, 'a,b\n1,2\n3,"x\n4,5\n')
    with pytest.raises(DataError, match=r"quoted field that starts on line 3 is never closed"):
        read_table(path)


def test_integers_beyond_64_bits_among_decimals_are_numbers_with_missing_values(tmp_path):
    # pandas alone reads this column as text, with "" (not NaN) for the empty cell
    path = write(tmp_path, "a,b,y\n1,9999999999999999999999999,0\n2,,1\n3,0.5,0\n4,NaN,1\n")
    features, _ = read_table(path)
    assert features["b"].dtype == np.float32
    np.testing.assert_allclose(features["b"], [1e25, np.nan, 0.5, np.nan], rtol=1e-6)
    # alone, they are Python integers in an object column (no text to trim)
    features, _ = read_table(write(tmp_path, "b,y\n99999999999999999999,0\n1,1\n", "big.csv"))
    np.testing.assert_allclose(features["b"], [1e20, 1.0], rtol=1e-6)


def test_text_with_nul_characters_keeps_its_categories():
    frame = pd.DataFrame({"c": ["a\x00", "b", None, "a\x00"]})  # NumPy text arrays drop NULs
    pre = TablePreprocessor().fit(frame)
    np.testing.assert_array_equal(pre.transform(frame), [[1, 0], [0, 1], [1, 0], [1, 0]])


def test_huge_values_scale_to_finite_numbers_or_raise():
    frame = pd.DataFrame({"a": [1e308, 1e308, np.nan, 0.0]})
    X = TablePreprocessor().fit(frame).transform(frame)  # the median 1e308 must not overflow
    assert np.isfinite(X).all() and X[2, 0] == 1.0
    with pytest.raises(DataError, match=r"column 'a': .*too wide a range"):
        TablePreprocessor(scaling="standard").fit(pd.DataFrame({"a": [1.7e308, 1.7e308]}))


def test_header_names_are_trimmed_and_a_name_twice_after_trimming_is_refused(tmp_path):
    from deepbelief.data import read_table

    (tmp_path / "spaced.csv").write_text(" a , y ,b\n1,2,3\n4,5,6\n")
    frame, target = read_table(tmp_path / "spaced.csv", target="y")
    assert list(frame.columns) == ["a", "b"] and target.name == "y"
    (tmp_path / "twice.csv").write_text("a,a ,y\n1,2,3\n")
    with pytest.raises(DataError, match=r"twice\.csv: two columns are named 'a'"):
        read_table(tmp_path / "twice.csv")


def test_a_refused_missing_value_carries_its_advice_apart_for_the_command_to_reword():
    """The command line rewrote the library's advice by replacing text in the message."""
    from deepbelief.data import IMPUTE_ADVICE

    frame = pd.DataFrame({"x": [1.0, np.nan, 3.0]})
    with pytest.raises(DataError) as raised:
        TablePreprocessor(missing="error").fit(frame, "t.csv")
    exc = raised.value
    assert exc.advice == IMPUTE_ADVICE and str(exc) == f"{exc.problem}; {IMPUTE_ADVICE}"
    assert "t.csv: column 'x', row 2: missing value" in exc.problem
    reworded = exc.advised("fill them first")
    assert type(reworded) is DataError and str(reworded) == f"{exc.problem}; fill them first"


def test_distinct_integers_spread_wide_are_measurements_not_identifiers():
    """--drop-ids dropped a salary in whole units and a millisecond timestamp (every value
    distinct) as row identifiers."""
    rng = np.random.default_rng(0)
    n = 50
    frame = pd.DataFrame({
        "salary": rng.choice(np.arange(30_000, 200_000), n, replace=False),
        "stamp": 1_700_000_000_000 + rng.choice(10**9, n, replace=False),
        "row_number": np.arange(1, n + 1),  # numbers the rows
        "customer_id": rng.choice(10**6, n, replace=False),  # named as an identifier
        "userId": rng.choice(10**6, n, replace=False),
        "paid": rng.choice(10**6, n, replace=False),  # "id" inside a word: a measurement
    })  # fmt: skip
    kept = [c["name"] for c in TablePreprocessor(drop_ids=True).fit(frame).columns]
    assert kept == ["salary", "stamp", "paid"]


def test_a_text_column_with_a_value_per_row_kept_as_categories_warns():
    from deepbelief.errors import DataWarning

    frame = pd.DataFrame({"name": [f"user{i}" for i in range(30)], "x": np.arange(30.0) % 7})
    with pytest.warns(DataWarning, match="column 'name' holds a different value on each of its "
                      "30 rows: .* --drop-ids"):  # fmt: skip
        TablePreprocessor().fit(frame, "t.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TablePreprocessor().fit(frame.iloc[:19])  # too few rows to tell
        TablePreprocessor().fit(frame.assign(name=[f"u{i % 10}" for i in range(30)]))
