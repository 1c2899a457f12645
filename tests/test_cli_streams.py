"""``deepbelief train DATA --model unsupervised`` on a ``.npy`` file or a folder of ``.npy``
shards read a block at a time (a RowFile): the model it writes, what it learns, its peak
memory in a child process, and its refusals."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import deepbelief
from deepbelief import DBN, distributed
from deepbelief.cli import main
from deepbelief.model_dir import read_card
from deepbelief.streams import RowFile, is_row_file, write_rows

N, HELD = 3000, 600  # rows, and the last rows held out by --validation-split 0.2
FAST = ["--layers", "16", "--pretrain-epochs", "5", "--pretrain-batch-size", "50",
        "--validation-split", "0.2", "--device", "cpu", "--quiet"]  # fmt: skip


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _patterns(seed: int) -> np.ndarray:
    """Rows of 40 bits: one of four random prototypes each, 5 % of the bits flipped."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((4, 40)) < 0.5
    rows = prototypes[rng.integers(0, 4, N)] ^ (rng.random((N, 40)) < 0.05)
    return rows.astype(np.float32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_seed):
    """A .npy file of patterns and the model the command trains on it, streamed."""
    folder = tmp_path_factory.mktemp("streamed")
    X = _patterns(one_seed)
    np.save(folder / "x.npy", X)
    model = folder / "model"
    argv = ["train", folder / "x.npy", "--model", "unsupervised", "-o", model, *FAST,
            "--seed", one_seed]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    return X, folder, model


def _estimator(model):
    return deepbelief.load(model / "model.safetensors")


@pytest.mark.filterwarnings("ignore:X has .* outside")  # clipped, as the command clips them
@pytest.mark.parametrize("visible", ["bernoulli", "pixels", "gaussian"])
def test_transform_of_a_streamed_model_gives_the_features_python_gives(tmp_path, capsys, visible):
    """The command scales new rows as training did: Bernoulli units see each column scaled to
    [0, 1] by its minimum and maximum over the file (raw 0-255 pixels too), Gaussian units
    the rows as they are (the estimator standardises them)."""
    rng = np.random.default_rng(1)
    X = (rng.random((500, 12)) < 0.4).astype(np.float32)
    if visible == "gaussian":  # values far outside [0, 1]: the estimator standardises them
        X = (rng.normal(size=(500, 12)) * 5 + 30).astype(np.float32)
    if visible == "pixels":
        X = rng.integers(10, 250, size=(500, 12)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    new = np.clip(X[:50] + rng.normal(scale=0.3, size=(50, 12)), -1, 260).astype(np.float32)
    np.save(tmp_path / "new.npy", new)  # Bernoulli: values beyond [0, 1], clipped by both
    low, high = X.min(0), X.max(0)
    scaled = new if visible == "gaussian" else (new - low) / np.where(high > low, high - low, 1)
    model = tmp_path / "model"
    code, _, err = run(capsys, "train", tmp_path / "x.npy", "--model", "unsupervised", "-o",
                       model, "--layers", "8", "--pretrain-epochs", "2", "--visible",
                       "gaussian" if visible == "gaussian" else "bernoulli",
                       "--device", "cpu", "--quiet")  # fmt: skip
    assert code == 0, err
    code, _, err = run(capsys, "transform", model, tmp_path / "new.npy", "-o", tmp_path / "f.npy")
    assert code == 0, err
    if visible != "gaussian":  # said once, after the summary (it used to be silent)
        assert err.count("outside the training range, clipped to it") == 1, err
        assert err.strip().splitlines()[-1].startswith("deepbelief: warning: "), err
    estimator = _estimator(model)
    assert estimator.visible_units_ == ("gaussian" if visible == "gaussian" else "bernoulli")
    expected = estimator.transform(scaled)
    np.testing.assert_allclose(np.load(tmp_path / "f.npy"), expected, rtol=0, atol=1e-6)
    card = read_card(model)
    assert card["input"]["kind"] == "array" and card["rows"] == {"train": 500, "held_out": 0}


def test_transform_of_a_npy_file_reads_and_writes_a_block_at_a_time(
    trained, tmp_path, capsys, monkeypatch
):
    """The second step of the README's larger-than-memory example used to read the whole
    file (peak memory 8 times its size). Now blocks of rows go through the model and out to
    the .npy, CSV or standard output, the same numbers as the estimator gives in memory."""
    from deepbelief import streams

    X, folder, model = trained
    monkeypatch.setattr(streams, "CHUNK_ELEMENTS", 40 * 70)  # blocks of 70 rows
    estimator = _estimator(model)
    columns = read_card(model)["input"]["preprocessor"]["columns"]
    low, high = (np.array([c[k] for c in columns]) for k in ("offset", "scale"))
    expected = estimator.transform(np.clip((X - low) / high, 0, 1))
    code, _, err = run(capsys, "transform", model, folder / "x.npy", "-o", tmp_path / "f.npy")
    assert code == 0, err
    np.testing.assert_allclose(np.load(tmp_path / "f.npy"), expected, rtol=0, atol=1e-6)
    code, _, err = run(capsys, "transform", model, folder / "x.npy", "-o", tmp_path / "f.csv")
    assert code == 0, err
    table = np.loadtxt(tmp_path / "f.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(table, expected, rtol=0, atol=1e-6)
    assert (tmp_path / "f.csv").read_text().startswith("h0,h1,")
    code, out, err = run(capsys, "transform", model, folder / "x.npy", "-o", "-")
    assert code == 0, err
    assert out == (tmp_path / "f.csv").read_text()
    bad = X.copy()
    bad[250, 7] = np.nan  # in the fourth block
    np.save(tmp_path / "bad.npy", bad)
    code, _, err = run(capsys, "transform", model, tmp_path / "bad.npy", "-o", tmp_path / "g.npy")
    assert code == 2 and not (tmp_path / "g.npy").exists()
    assert "bad.npy: column '7', row 251 holds nan" in err
    assert len(err.strip().splitlines()) == 1


TRANSFORM_PEAK = """
import re, sys
from deepbelief.cli import main
assert main(["transform", sys.argv[1], sys.argv[2], "-o", sys.argv[3], "--quiet"]) == 0
status = open("/proc/self/status").read()
print(int(re.search(r"VmHWM:\\s*(\\d+) kB", status).group(1)) * 1024)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's /proc")
def test_transform_of_a_large_npy_file_has_flat_peak_memory(trained, tmp_path):
    """Ten times the rows (256 MB against 26 MB): the peak grows by less than 64 MB (it
    grew by the whole file, several times over)."""
    _, _, model = trained
    block = (np.random.default_rng(0).random((20_000, 40)) < 0.3).astype(np.float32)
    small, large = tmp_path / "small.npy", tmp_path / "large.npy"
    write_rows(small, [block] * 8, 160_000, 40)  # 26 MB
    write_rows(large, (block for _ in range(80)), 1_600_000, 40)  # 256 MB
    peaks = []
    for path in (small, large):
        done = subprocess.run([sys.executable, "-c", TRANSFORM_PEAK, str(model), str(path),
                               str(tmp_path / "f.npy")], capture_output=True, text=True,
                              timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        peaks.append(int(done.stdout.split()[-1]))
    mb = 10**6
    assert peaks[1] - peaks[0] < 64 * mb, (peaks[0] / mb, peaks[1] / mb)
    assert np.load(tmp_path / "f.npy", mmap_mode="r").shape == (1_600_000, 16)


def test_info_and_report_describe_a_streamed_model(trained, tmp_path, capsys):
    _, _, model = trained
    code, out, err = run(capsys, "info", model)
    assert code == 0, err
    assert "layers: 40-16" in out and "held-out reconstruction_error" in out
    code, _, err = run(capsys, "report", model, "-o", tmp_path / "report")
    assert code == 0, err
    assert "reconstruction_error" in (tmp_path / "report" / "report.html").read_text()


@pytest.mark.stochastic
def test_streamed_training_learns_on_the_rows_before_the_held_out_ones(trained):
    X, folder, model = trained
    estimator, card = _estimator(model), read_card(model)
    assert card["rows"] == {"train": N - HELD, "held_out": HELD}
    # the estimator, fitted in Python on a RowFile of the first rows, is the command's model
    same = DBN(**estimator.get_params()).fit(RowFile(folder / "x.npy", rows=range(N - HELD)))
    np.testing.assert_allclose(same.transform(X), estimator.transform(X), rtol=0, atol=1e-6)
    # the held-out metrics are those of the last rows
    held = X[N - HELD :]
    error = float(np.mean((estimator.reconstruct(held) - held) ** 2))
    assert card["metrics"]["reconstruction_error"] == pytest.approx(error, rel=1e-5)
    assert card["metrics"]["rows"] == HELD
    # learnt: well below the error of the same model untrained (its visible biases are the
    # columns' frequencies: about 0.2 here); trained, it is about 0.05
    params = {**estimator.get_params(), "pretrain_epochs": 0}
    untrained = DBN(**params).fit(RowFile(folder / "x.npy", rows=range(N - HELD)))
    baseline = float(np.mean((untrained.reconstruct(held) - held) ** 2))
    assert error < 0.5 * baseline, (error, baseline)


def test_a_folder_of_shards_trains_the_model_of_the_whole_file(trained, tmp_path, capsys):
    X, _, model = trained
    shards = tmp_path / "shards"
    shards.mkdir()
    for i, start in enumerate((0, 1000, 2200)):  # in name order, the rows of x.npy
        np.save(shards / f"part{i}.npy", X[start : (1000, 2200, N)[i]])
    seed = _estimator(model).random_state
    code, _, err = run(capsys, "train", shards, "-o", tmp_path / "m", *FAST, "--seed", seed)
    assert code == 0, err
    from_shards = _estimator(tmp_path / "m")
    np.testing.assert_allclose(from_shards.transform(X), _estimator(model).transform(X), atol=1e-6)
    assert read_card(tmp_path / "m")["rows"] == {"train": N - HELD, "held_out": HELD}


def test_the_other_commands_read_a_folder_of_shards_and_a_table_of_its_columns(
    trained, tmp_path, capsys
):
    """``evaluate`` and ``score`` said "no images" of a folder of shards; a CSV table given
    to a model of .npy rows lost its last column as a target ("3 features per row, but the
    model was trained on 4") and, with a header, was refused for its column names."""
    X, _, model = trained
    shards = tmp_path / "shards"
    shards.mkdir()
    for i in range(3):
        np.save(shards / f"{i}.npy", X[i * 100 : (i + 1) * 100])
    np.save(tmp_path / "x300.npy", X[:300])
    for command in ("evaluate", "score"):
        expected = run(capsys, command, model, tmp_path / "x300.npy")
        assert expected[0] == 0, expected[2]
        assert run(capsys, command, model, shards)[:2] == expected[:2]
    header = ",".join(f"c{i}" for i in range(40))
    np.savetxt(tmp_path / "rows.csv", X[:20], delimiter=",", header=header, comments="")
    code, out, err = run(capsys, "transform", model, tmp_path / "rows.csv", "-o", "-")
    assert code == 0, err
    np.save(tmp_path / "x20.npy", X[:20])
    assert run(capsys, "transform", model, tmp_path / "x20.npy", "-o", "-")[1] == out


def test_streamed_and_in_memory_rows_name_a_value_alike(trained, tmp_path, capsys):
    """Rows read a block at a time said "row 1, column 3 (counting from 0)" where rows read
    whole said "column '3', row 2"; and the clipping warning counted streamed rows from 0."""
    X, _, model = trained
    rows = X[:20].copy()
    rows[1, 3] = 2.0  # outside the training range: clipped, with a warning
    np.save(tmp_path / "rows.npy", rows)
    said = []
    for command in ("transform", "score"):  # a block at a time, then whole
        code, _, err = run(capsys, command, model, tmp_path / "rows.npy", "-o", tmp_path / "o.csv")
        assert code == 0, err
        said.append([line for line in err.splitlines() if "outside the training range" in line])
    assert said[0] == said[1] and len(said[0]) == 1 and "column '3', row 2: 2" in said[0][0]
    rows[1, 3] = np.nan
    np.save(tmp_path / "rows.npy", rows)
    code, _, err = run(capsys, "transform", model, tmp_path / "rows.npy", "-o", tmp_path / "o.csv")
    assert code == 2 and "rows.npy: column '3', row 2 holds nan" in err


def test_a_rank_other_than_0_trains_on_the_same_row_file_and_writes_nothing(
    trained, tmp_path, monkeypatch
):
    _, folder, _ = trained
    seen = []
    fit = DBN.fit

    def recording_fit(self, X, *args, **kwargs):
        seen.append(X)
        return fit(self, X, *args, **kwargs)

    monkeypatch.setattr(DBN, "fit", recording_fit)
    monkeypatch.setattr(distributed, "is_main", lambda: False)
    argv = ["train", folder / "x.npy", "--no-target", "-o", tmp_path / "m", "--layers", "4",
            "--pretrain-epochs", "1", "--validation-split", "0.2", "--device", "cpu"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    assert not (tmp_path / "m").exists()
    assert len(seen) == 1 and is_row_file(seen[0]) and seen[0].rows == range(N - HELD)


def test_other_shapes_and_models_keep_the_in_memory_path(tmp_path, capsys):
    rng = np.random.default_rng(2)
    images = (rng.random((60, 4, 4)) * 255).astype(np.uint8)  # images: scaled, shape kept
    np.save(tmp_path / "images.npy", images)
    code, _, err = run(capsys, "train", tmp_path / "images.npy", "--model", "unsupervised",
                       "-o", tmp_path / "m", "--layers", "4", "--pretrain-epochs", "1",
                       "--quiet")  # fmt: skip
    assert code == 0, err
    assert read_card(tmp_path / "m")["input"]["image_shape"] == [4, 4]
    np.save(tmp_path / "x.npy", rng.random((60, 5)).astype(np.float32))
    code, _, err = run(capsys, "train", tmp_path / "x.npy", "--model", "classifier", "-o",
                       tmp_path / "c")  # fmt: skip
    assert code == 2
    assert err.strip().splitlines() == [
        f"deepbelief: error: --model classifier needs a target; {tmp_path / 'x.npy'} has none"
    ]


def _bad_inputs(tmp_path):
    rng = np.random.default_rng(3)
    X = (rng.random((100, 6)) < 0.5).astype(np.float32)
    held, nan = X.copy(), X.copy()
    held[95, 2], nan[5, 4] = np.inf, np.nan
    for name, rows in [("held", held), ("nan", nan)]:
        np.save(tmp_path / f"{name}.npy", rows)
    np.save(tmp_path / "text.npy", np.array([["a", "b"], ["c", "d"]]))
    (tmp_path / "mixed").mkdir()
    np.save(tmp_path / "mixed" / "a.npy", X)
    np.save(tmp_path / "mixed" / "b.npy", X[:, :5])


UNSUPERVISED = ["--model", "unsupervised"]
BAD = {  # DATA, options -> what the one line on stderr must say
    "held out": ("held.npy", ["--no-target", "--validation-split", "0.1"],
                 r"held\.npy: column \'2\', row 96 holds inf"),
    "nan": ("nan.npy", UNSUPERVISED, r"nan\.npy: column \'4\', row 6 holds nan"),
    "text": ("text.npy", UNSUPERVISED,
             r"text\.npy: expected a 2-D numeric array, got shape \(2, 2\)"),
    "shards": ("mixed", [], r"mixed/b\.npy: 5 columns of float32, unlike .*mixed/a\.npy's 6 of"),
    "shards, target": ("mixed", ["--model", "regressor"],
                       r"--model regressor needs a target; .*mixed, a folder of \.npy shards"),
    "all held out": ("nan.npy", [*UNSUPERVISED, "--validation-split", "0.995"],
                     r"--validation-split 0.995 holds out all 100 rows of .*nan\.npy: none"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_bad_streamed_input_is_one_line_and_exit_2(tmp_path, capsys, case):
    _bad_inputs(tmp_path)
    name, options, message = BAD[case]
    code, out, err = run(capsys, "train", tmp_path / name, "-o", tmp_path / "m", "--layers",
                         "4", *options)  # fmt: skip
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deepbelief: error: "), err
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "m").exists()


# The peak resident memory of the command over what its modules take once imported (VmRSS
# then, VmHWM at the end): the imports alone take over 300 MB, more than the rows it holds,
# so the limit is on the growth (a file several times the limit, as in test_streams.py)
PEAK = """
import re, sys
import deepbelief.commands, sklearn.metrics  # the modules scoring imports too
from deepbelief.cli import main

def kb(name):
    status = open("/proc/self/status").read()
    return int(re.search(name + r":\\s*(\\d+) kB", status).group(1)) * 1024

before = kb("VmRSS")
code = main(sys.argv[1:])
print(code, kb("VmHWM") - before)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's /proc")
def test_the_command_trains_a_file_three_times_its_memory_growth(tmp_path):
    block = (np.random.default_rng(0).random((8000, 500)) < 0.3).astype(np.float32)
    data = tmp_path / "big.npy"
    write_rows(data, (block for _ in range(38)), 304_000, 500)  # 608 MB
    argv = ["train", data, "--model", "unsupervised", "-o", tmp_path / "m", "--layers", "8",
            "--pretrain-epochs", "1", "--pretrain-batch-size", "1000", "--validation-split",
            "0.2", "--device", "cpu", "--quiet"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", PEAK, *map(str, argv)], capture_output=True,
                          text=True, timeout=600, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    code, grown = map(int, done.stdout.split()[-2:])
    assert code == 0 and read_card(tmp_path / "m")["metrics"]["rows"] == 60_800
    mb = 10**6
    # about 100 MB (blocks of rows, the epoch's order, the model; the 122 MB of held-out rows
    # are scored a block at a time); in memory, over 4 GB
    assert grown < 200 * mb < data.stat().st_size / 3, f"grew by {grown / mb:.0f} MB"
