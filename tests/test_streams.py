"""Training data larger than memory: RowFile reads, block-shuffled epochs, estimators fitted
on memory maps of .npy files, greedy pretraining through temporary files, and peak memory
that does not grow with the file."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import torch

from deepbelief import DBN, RBM
from deepbelief import training as training_module
from deepbelief.errors import DataError, UsageError
from deepbelief.nn import RBM as RBMModule
from deepbelief.streams import (
    RowFile,
    blocked_permutation,
    column_stats,
    csv_to_shards,
    holds_rows,
    write_rows,
)
from deepbelief.training import RBMTrainer


@pytest.fixture
def binary(tmp_path):
    rng = np.random.default_rng(0)
    X = (rng.random((3000, 40)) < rng.random(40)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    return X, tmp_path / "x.npy"


def test_row_file_reads_rows_as_the_array_holds_them(binary, tmp_path):
    X, path = binary
    rows = RowFile(path)
    assert rows.shape == X.shape and len(rows) == 3000
    index = torch.tensor([2999, 5, 17, 5, 1200])
    assert torch.equal(rows[index], torch.as_tensor(X[index.numpy()]))
    assert torch.equal(rows[10:20], torch.as_tensor(X[10:20]))
    assert torch.equal(torch.cat(list(rows.chunks(700))), torch.as_tensor(X))
    # a folder of shards reads as one file, in name order
    shards = tmp_path / "shards"
    shards.mkdir()
    np.save(shards / "a.npy", X[:1000])
    np.save(shards / "b.npy", X[1000:])
    folder = RowFile(shards)
    assert len(folder) == 3000
    assert torch.equal(
        folder[torch.tensor([999, 1000, 2999])], torch.as_tensor(X[[999, 1000, 2999]])
    )


def test_row_file_refuses_what_it_cannot_read(tmp_path):
    np.save(tmp_path / "three.npy", np.zeros((2, 2, 2)))
    with pytest.raises(DataError, match="three.npy.*2-D"):
        RowFile(tmp_path / "three.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match="junk.npy: not a readable .npy"):
        RowFile(tmp_path / "junk.npy")
    bad = np.zeros((4, 3))
    bad[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(DataError, match=r"nan.npy: column \'1\', row 3 holds nan"):
        column_stats(RowFile(tmp_path / "nan.npy"))
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    np.save(mixed / "a.npy", np.zeros((2, 3)))
    np.save(mixed / "b.npy", np.zeros((2, 4)))
    with pytest.raises(DataError, match="4 columns"):
        RowFile(mixed)


def test_a_range_of_rows_reads_as_those_rows_and_names_the_files_rows(binary, tmp_path):
    X, path = binary
    part = RowFile(path, rows=range(1000, 2500))
    assert part.shape == (1500, 40)
    assert torch.equal(part[torch.tensor([0, 1499, 7])], torch.as_tensor(X[[1000, 2499, 1007]]))
    assert torch.equal(torch.cat(list(part.chunks(400))), torch.as_tensor(X[1000:2500]))
    assert part.read(1400, 9999).shape == (100, 40)  # never beyond the range
    bad = X.copy()
    bad[1200, 5] = np.inf
    np.save(tmp_path / "inf.npy", bad)
    with pytest.raises(DataError, match=r"column \'5\', row 1201 holds inf"):
        column_stats(RowFile(tmp_path / "inf.npy", rows=range(1000, 1300)))
    column_stats(RowFile(tmp_path / "inf.npy", rows=range(1200)))  # the bad row is not in it
    with pytest.raises(ValueError, match="consecutive rows"):
        RowFile(path, rows=range(0, 3001))
    np.save(tmp_path / "flat.npy", X[:, 0])
    np.save(tmp_path / "fortran.npy", np.asfortranarray(X))
    shapes = ["x.npy", "flat.npy", "fortran.npy", "nothing.npy", "."]
    assert [holds_rows(tmp_path / name) for name in shapes] == [True, False, True, False, True]


def test_a_fortran_ordered_file_streams_as_the_c_ordered_one(binary, tmp_path):
    """Each column's values one after the other: a block of rows is one read per column (it
    used to be refused, and the command read such a file into memory)."""
    X, path = binary
    np.save(tmp_path / "f.npy", np.asfortranarray(X))
    rows = RowFile(tmp_path / "f.npy")
    assert torch.equal(torch.cat(list(rows.chunks(700))), torch.as_tensor(X))
    assert torch.equal(rows[torch.tensor([5, 2999, 0])], torch.as_tensor(X[[5, 2999, 0]]))
    assert RowFile(tmp_path / "f.npy", rows=range(100, 200)).read(10, 12).tolist() == (
        X[110:112].tolist()
    )
    mapped = np.load(tmp_path / "f.npy", mmap_mode="r")
    from deepbelief.estimators import row_file_input

    assert row_file_input(RBM(), mapped) is not None  # streamed, not read into memory
    assert row_file_input(RBM(), mapped[:, ::-1]) is None


@pytest.mark.parametrize("n, block", [(10, 3), (12, 4), (5, 10), (1, 1)])
def test_blocked_permutation_visits_each_row_once_a_block_at_a_time(n, block):
    order = blocked_permutation(n, block, torch.Generator().manual_seed(n))
    assert sorted(order.tolist()) == list(range(n))
    for start in range(0, n, block):  # each stretch of the order is one block of rows
        part = order[start : start + block]
        assert part.max() - part.min() < block


def test_trainer_on_a_row_file_learns_as_in_memory(binary, monkeypatch):
    X, path = binary
    monkeypatch.setattr(training_module, "BLOCK_ELEMENTS", 40 * 200)  # 15 blocks of 200 rows

    def fit(data):
        model = RBMModule(40, 20, generator=torch.Generator().manual_seed(0))
        trainer = RBMTrainer(model, epochs=5, batch_size=20, monitor_rows=3000,
                             generator=torch.Generator().manual_seed(1))  # fmt: skip
        return trainer.fit(data).history[-1]["reconstruction_error"]

    memory, streamed = fit(torch.as_tensor(X)), fit(RowFile(path))
    fresh = RBMModule(40, 20, generator=torch.Generator().manual_seed(0))
    untrained = RBMTrainer(fresh).monitors(torch.as_tensor(X))["reconstruction_error"]
    assert streamed < 0.8 * untrained
    assert abs(streamed - memory) < 0.05 * memory


def test_estimators_fit_a_memory_map_as_the_array(binary, tmp_path, monkeypatch):
    X, path = binary
    mapped = np.load(path, mmap_mode="r")
    a = RBM(n_components=10, n_iter=3, random_state=0).fit(X)
    b = RBM(n_components=10, n_iter=3, random_state=0).fit(mapped)
    np.testing.assert_allclose(b.components_, a.components_, rtol=0, atol=1e-6)
    assert b.n_features_in_ == 40
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the layer files go
    d1 = DBN(hidden_layers=(20, 10), pretrain_epochs=2, random_state=0).fit(X)
    d2 = DBN(hidden_layers=(20, 10), pretrain_epochs=2, random_state=0).fit(mapped)
    np.testing.assert_allclose(d2.transform(X), d1.transform(X), rtol=0, atol=1e-5)
    assert not list(tmp_path.glob("deepbelief-*"))  # the layer files are gone
    # a Fortran-ordered file streams too, and learns the same
    np.save(tmp_path / "f.npy", np.asfortranarray(X))
    fortran = RBM(n_components=10, n_iter=3, random_state=0)
    fortran.fit(np.load(tmp_path / "f.npy", mmap_mode="r"))
    np.testing.assert_allclose(fortran.components_, a.components_, rtol=0, atol=1e-6)
    # values outside [0, 1] for Bernoulli units are named, as in memory
    bad = X.copy()
    bad[7, 3] = 2.0
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(DataError, match=r"column \'3\', row 8 holds 2.0"):
        RBM(visible="bernoulli", n_iter=1).fit(np.load(tmp_path / "bad.npy", mmap_mode="r"))


def test_a_folder_of_shards_reads_what_a_user_means_and_names_what_it_cannot(tmp_path):
    """Shards in natural order (``2.npy`` before ``10.npy``), ``.NPY`` too; hidden files
    (macOS's ``._1.npy``) left out; shards in a subfolder named, not dropped silently."""
    folder = tmp_path / "shards"
    folder.mkdir()
    for i in (1, 2, 10):
        np.save(folder / f"{i}.npy", np.full((2, 3), i, np.float32))
    np.save(folder / "upper.npy", np.full((1, 3), 99, np.float32))
    (folder / "upper.npy").rename(folder / "upper.NPY")
    np.save(folder / ".hidden.npy", np.zeros((1, 5)))  # other columns: read, it would fail
    (folder / "._1.npy").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    rows = RowFile(folder)
    np.testing.assert_array_equal(rows.read(0, len(rows))[:, 0], [1, 1, 2, 2, 10, 10, 99])
    assert holds_rows(folder)
    (folder / "part").mkdir()
    np.save(folder / "part" / "0.npy", np.zeros((2, 3), np.float32))
    with pytest.raises(DataError, match=r"subfolder 'part' holds \.npy files.*move them up"):
        RowFile(folder)
    assert holds_rows(folder)  # (so the command says this, not "no images")


def test_values_a_row_file_cannot_take_are_named_as_the_file_holds_them(tmp_path):
    """A float64 1e300 read as float32 was reported as "holds inf"; a column whose float64
    sum overflowed (no value non-finite) crashed with IndexError; a memory map of no
    columns with NumPy's "zero-size array"."""
    big = np.ones((20, 3))
    big[10, 1] = 1e300
    np.save(tmp_path / "big.npy", big)
    with pytest.raises(DataError, match=r"column '1', row 11 holds 1e\+300, too large for float32"):
        column_stats(RowFile(tmp_path / "big.npy"))
    big[10, 1], big[3:5, 2] = 1.0, 1e308
    np.save(tmp_path / "sum.npy", big)
    with pytest.raises(DataError, match=r"column '2' holds values too large to sum"):
        column_stats(RowFile(tmp_path / "sum.npy", dtype=torch.float64))
    np.save(tmp_path / "none.npy", np.zeros((10, 0), np.float32))
    with pytest.raises(DataError, match=r"none\.npy: no data \(its rows have shape \(10, 0\)\)"):
        RBM().fit(np.load(tmp_path / "none.npy", mmap_mode="r"))


def test_estimators_leave_the_callers_row_file_as_it_was(tmp_path):
    """An estimator used to set the scaling, dtype and device on the caller's RowFile: a
    second fit on it saw rows standardised already (another model, no warning), and a
    transform the caller gave was replaced by the scaling, not followed by it."""
    rng = np.random.default_rng(0)
    X = rng.normal(5, 3, (600, 6)).astype(np.float32)
    np.save(tmp_path / "g.npy", X)
    rows = RowFile(tmp_path / "g.npy")
    settings = dict(n_components=4, n_iter=2, visible="gaussian", random_state=0)
    first = RBM(**settings).fit(rows)
    assert rows.transform is None and rows.dtype == torch.float32
    again = RBM(**settings).fit(rows)
    np.testing.assert_array_equal(again.components_, first.components_)
    np.testing.assert_allclose(first.input_mean_, X.mean(0), rtol=1e-5)
    DBN(hidden_layers=(4,), pretrain_epochs=1, visible="gaussian", random_state=0).fit(rows)
    assert rows.transform is None
    # the caller's transform first, then the estimator's scaling of what it gives
    shifted = RBM(**settings).fit(RowFile(tmp_path / "g.npy", transform=lambda r: r * 10 + 100))
    in_memory = RBM(**settings).fit(X * 10 + 100)
    np.testing.assert_allclose(shifted.input_mean_, in_memory.input_mean_, rtol=1e-5)
    np.testing.assert_allclose(shifted.components_, in_memory.components_, rtol=0, atol=1e-5)


def test_a_view_of_a_memory_map_is_read_as_the_view_not_as_the_file(tmp_path):
    """A transpose, a reversal or another dtype's view of a whole file's map has the file's
    shape; such a view used to stream the file as laid out (other data than given)."""
    A = np.zeros((60, 60), np.float32)
    A[:, :30] = 1
    np.save(tmp_path / "square.npy", A)
    mapped = np.load(tmp_path / "square.npy", mmap_mode="r")
    settings = dict(n_components=4, n_iter=2, random_state=0)
    for view in (mapped.T, mapped[::-1, ::-1], mapped[:, ::-1]):
        got = RBM(**settings).fit(view).intercept_visible_
        np.testing.assert_allclose(got, RBM(**settings).fit(np.array(view)).intercept_visible_,
                                   rtol=0, atol=1e-6)  # fmt: skip


def test_a_row_file_where_rows_must_be_in_memory_is_refused_at_once(binary):
    """It used to be read a row at a time into an array of the wrong shape (slowly, for a
    large file) and refused as "Found array with dim 3"."""
    from deepbelief import DBNClassifier

    _, path = binary
    rows = RowFile(path)
    fitted = RBM(n_components=4, n_iter=1, random_state=0).fit(rows)
    message = r"X is a RowFile of .*x\.npy .*only the unsupervised fit"
    for call in (
        lambda: DBNClassifier(hidden_layers=(4,)).fit(rows, np.zeros(len(rows))),
        lambda: DBN(hidden_layers=(4,)).fit(rows, np.arange(len(rows)) % 2),
        lambda: fitted.transform(rows),
    ):
        with pytest.raises(DataError, match=message):
            call()


def test_the_checkpoint_fingerprint_reads_blocks_of_a_few_megabytes_however_wide(
    tmp_path, monkeypatch
):
    """It read 16,384 rows a block: 328 MB at 5,000 float32 columns, whatever the memory."""
    from deepbelief.dbn_estimators import _sha256

    wide = np.random.default_rng(0).random((300, 5000)).astype(np.float32)
    np.save(tmp_path / "wide.npy", wide)
    rows, read = RowFile(tmp_path / "wide.npy"), RowFile.read
    sizes = []

    def recorded(self, start, stop):
        sizes.append(stop - start)
        return read(self, start, stop)

    monkeypatch.setattr(RowFile, "read", recorded)
    digest = _sha256(rows)
    assert max(sizes) <= rows.chunk_rows < 300 and sum(sizes) == 300
    monkeypatch.setattr(RowFile, "read", read)
    assert _sha256(RowFile(tmp_path / "wide.npy")) == digest


# The peak resident memory of this process image: VmHWM (ru_maxrss would count the peak of
# the forked pytest process before exec, which it keeps)
PEAK = """
import re, sys, numpy as np
from deepbelief import RBM
X = np.load(sys.argv[1], mmap_mode="r")
RBM(n_components=16, n_iter=1, batch_size=1000, random_state=0).fit(X)
status = open("/proc/self/status").read()
print(int(re.search(r"VmHWM:\\s*(\\d+) kB", status).group(1)) * 1024)
"""


def _peak_bytes(path) -> int:
    done = subprocess.run([sys.executable, "-c", PEAK, str(path)], capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's /proc")
def test_a_file_three_times_the_memory_trains_with_flat_peak_memory(tmp_path):
    block = (np.random.default_rng(0).random((8000, 500)) < 0.3).astype(np.float32)
    small, large = tmp_path / "small.npy", tmp_path / "large.npy"
    write_rows(small, [block] * 10, 80_000, 500)  # 160 MB
    write_rows(large, (block for _ in range(94)), 752_000, 500)  # 1.5 GB
    size = large.stat().st_size
    small_peak, large_peak = _peak_bytes(small), _peak_bytes(large)
    mb = 10**6
    assert large_peak < 500 * mb < size / 3, f"peak {large_peak / mb:.0f} MB"
    # 9.4 times the rows: the peak grows by the epoch's order of rows (24 bytes a row)
    assert large_peak - small_peak < 64 * mb, (small_peak / mb, large_peak / mb)


def test_a_csv_file_becomes_shards_a_chunk_at_a_time(tmp_path):
    import pandas as pd

    frame = pd.DataFrame(np.random.default_rng(0).random((1000, 4)), columns=list("abcd"))
    frame.to_csv(tmp_path / "t.csv", index=False)
    rows = csv_to_shards(tmp_path / "t.csv", tmp_path / "shards", chunk_rows=300)
    assert len(list((tmp_path / "shards").glob("*.npy"))) == 4
    np.testing.assert_allclose(rows[:].numpy(), frame.to_numpy(np.float32))
    frame = frame.astype(object)
    frame.loc[650, "c"] = "x"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=r"bad.csv: row 651, column 'c' holds 'x', not a number"):
        csv_to_shards(tmp_path / "bad.csv", tmp_path / "bad", chunk_rows=300)


def test_csv_to_shards_refuses_a_folder_that_holds_files_and_leaves_it_as_it_was(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(1)
    pd.DataFrame(rng.random((300, 3)), columns=list("abc")).to_csv(
        tmp_path / "old.csv", index=False
    )
    new = pd.DataFrame(rng.random((100, 3)), columns=list("abc"))
    new.to_csv(tmp_path / "new.csv", index=False)
    shards = tmp_path / "shards"
    csv_to_shards(tmp_path / "old.csv", shards, chunk_rows=64)
    before = {p.name: p.read_bytes() for p in shards.iterdir()}
    assert len(before) == 5
    with pytest.raises(UsageError, match=r"shards: is not empty \(holds 00000000.npy"):
        csv_to_shards(tmp_path / "new.csv", shards, chunk_rows=64)
    assert {p.name: p.read_bytes() for p in shards.iterdir()} == before
    assert len(RowFile(shards)) == 300  # the earlier conversion, not a mix
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("mine")
    with pytest.raises(UsageError, match="notes: is not empty"):
        csv_to_shards(tmp_path / "new.csv", tmp_path / "notes")
    assert [p.name for p in (tmp_path / "notes").iterdir()] == ["readme.txt"]
    (tmp_path / "file").write_text("mine")
    with pytest.raises(UsageError, match="file: exists and is not a folder"):
        csv_to_shards(tmp_path / "new.csv", tmp_path / "file")
    assert (tmp_path / "file").read_text() == "mine"
    # a new folder (with new parents) or an empty one takes the shards, nothing else is left
    rows = csv_to_shards(tmp_path / "new.csv", tmp_path / "a" / "b" / "new", chunk_rows=64)
    np.testing.assert_allclose(rows[:].numpy(), new.to_numpy(np.float32))
    (tmp_path / "empty").mkdir()
    rows = csv_to_shards(tmp_path / "new.csv", tmp_path / "empty", chunk_rows=64)
    assert len(rows) == 100 and len(list((tmp_path / "empty").glob("*.npy"))) == 2
    assert not list(tmp_path.rglob(".*partial"))


def test_csv_to_shards_leaves_nothing_behind_when_it_fails(tmp_path, monkeypatch):
    import pandas as pd

    frame = pd.DataFrame(np.random.default_rng(2).random((400, 3)), columns=list("abc"))
    frame = frame.astype(object)
    frame.loc[250, "b"] = "abc"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(DataError, match=r"bad.csv: row 251, column 'b' holds 'abc'"):
        csv_to_shards(tmp_path / "bad.csv", tmp_path / "out" / "shards", chunk_rows=100)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no folder, no shards
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="row 251"):
        csv_to_shards(tmp_path / "bad.csv", tmp_path / "empty", chunk_rows=100)
    assert not list((tmp_path / "empty").iterdir())
    # an interruption midway leaves nothing either
    frame.loc[250, "b"] = 0.5
    frame.to_csv(tmp_path / "good.csv", index=False)
    save = np.save
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        save(*args, **kwargs)

    monkeypatch.setattr(np, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        csv_to_shards(tmp_path / "good.csv", tmp_path / "out" / "shards", chunk_rows=100)
    assert len(calls) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "empty", "good.csv"])


def test_csv_to_shards_keeps_the_columns_asked_for(tmp_path):
    """A label or text column used to stop the conversion ("holds 'cat', not a number")."""
    (tmp_path / "labelled.csv").write_text("a,b,label\n1,2,cat\n3,4,dog\n")
    rows = csv_to_shards(tmp_path / "labelled.csv", tmp_path / "shards", columns=["a", "b"])
    assert rows.read(0, 2).tolist() == [[1, 2], [3, 4]]
    with pytest.raises(DataError, match=r"labelled.csv: .*not found: \['zz'\]"):
        csv_to_shards(tmp_path / "labelled.csv", tmp_path / "other", columns=["a", "zz"])
    assert not (tmp_path / "other").exists()


def test_csv_to_shards_refuses_a_file_without_rows(tmp_path):
    (tmp_path / "header.csv").write_text("a,b,c\n")
    with pytest.raises(DataError, match=r"header.csv: no rows \(only the header: a, b, c\)"):
        csv_to_shards(tmp_path / "header.csv", tmp_path / "shards")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty.csv: an empty file"):
        csv_to_shards(tmp_path / "empty.csv", tmp_path / "shards")
    # these were Python's FileNotFoundError / IsADirectoryError and pandas' own message
    with pytest.raises(DataError, match="absent.csv: no such file"):
        csv_to_shards(tmp_path / "absent.csv", tmp_path / "shards")
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(DataError, match="folder.csv: is a folder, not a CSV file"):
        csv_to_shards(tmp_path / "folder.csv", tmp_path / "shards")
    with pytest.raises(ValueError, match="chunk_rows must be a positive integer, got 0"):
        csv_to_shards(tmp_path / "header.csv", tmp_path / "shards", chunk_rows=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.csv", "folder.csv", "header.csv"]


def test_a_big_endian_file_streams_as_the_native_one(binary, tmp_path):
    X, path = binary
    big = tmp_path / "big.npy"
    np.save(big, X.astype(">f4"))
    rows, native = RowFile(big), RowFile(path)
    index = torch.tensor([2999, 5, 17, 5, 1200])
    assert torch.equal(rows[index], native[index])
    assert torch.equal(torch.cat(list(rows.chunks(700))), torch.as_tensor(X))
    assert rows.file_dtype == native.file_dtype and rows.read(0, 0).dtype == np.float32
    # shards of either byte order read as one file
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    np.save(mixed / "a.npy", X[:1000].astype(">f4"))
    np.save(mixed / "b.npy", X[1000:])
    assert torch.equal(RowFile(mixed)[:], torch.as_tensor(X))
    # an estimator streams the memory map of the big-endian file as the native one
    a = RBM(n_components=10, n_iter=2, random_state=0).fit(np.load(path, mmap_mode="r"))
    b = RBM(n_components=10, n_iter=2, random_state=0).fit(np.load(big, mmap_mode="r"))
    np.testing.assert_array_equal(b.components_, a.components_)
