"""Property-based tests of the command line: generated CSV files and byte-level corruptions
of model directories end in a model (exit 0) or one line naming the problem (exit 2), never
another exit code, a traceback or a hang."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepbelief.cli import main

TINY = ["--layers", "3", "--pretrain-epochs", "1", "--epochs", "1", "--quiet"]
CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.integers(-5, 5),
    st.sampled_from(["", "a", "b", "NaN", "1e3", " 2 ", '"q,uoted"', "x\ty", "-"]),
)


@st.composite
def csv_texts(draw):
    n_cols = draw(st.integers(1, 4))
    rows = draw(st.lists(st.lists(CELLS, min_size=1, max_size=n_cols + 1), max_size=12))
    header = ",".join(f"c{i}" for i in range(n_cols))
    body = "\n".join(",".join(str(c) for c in row) for row in rows)
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    bom = draw(st.sampled_from(["", "\ufeff"]))
    return bom + (header + "\n" + body).replace("\n", newline)


def one_line_or_success(code: int, err: str) -> None:
    assert code in (0, 2), err
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("deepbelief"), err


@settings(
    max_examples=40, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=csv_texts())
def test_generated_csv_trains_or_fails_with_one_line(tmp_path_factory, capsys, text):
    folder = tmp_path_factory.mktemp("csv")
    (folder / "d.csv").write_text(text)
    code = main(["train", str(folder / "d.csv"), "-o", str(folder / "m"), *TINY])
    one_line_or_success(code, capsys.readouterr().err)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=40), "label": rng.choice(["a", "b"], size=40)})
    frame.to_csv(folder / "d.csv", index=False)
    assert main(["train", str(folder / "d.csv"), "-o", str(folder / "m"), *TINY]) == 0
    return folder / "m"


@settings(
    max_examples=80, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(["model.safetensors", "deepbelief.json"]),
    edit=st.sampled_from(["flip", "delete", "insert", "truncate"]),
    where=st.floats(0, 1),
    byte=st.integers(0, 255),
)
def test_corrupted_model_directory_loads_or_fails_with_one_line(
    model_dir, tmp_path_factory, capsys, name, edit, where, byte
):
    copy = tmp_path_factory.mktemp("corrupt") / "m"
    shutil.copytree(model_dir, copy)
    data = bytearray((copy / name).read_bytes())
    i = min(int(where * len(data)), len(data) - 1)
    if edit == "flip":
        data[i] ^= byte or 1
    elif edit == "delete":
        del data[i]
    elif edit == "insert":
        data.insert(i, byte)
    else:
        data = data[:i]
    (copy / name).write_bytes(bytes(data))
    for argv in (["info", str(copy)], ["predict", str(copy), str(model_dir.parent / "d.csv")]):
        code = main(argv)
        one_line_or_success(code, capsys.readouterr().err)
