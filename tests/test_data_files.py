"""NumPy files and image folders: what they load to, and the errors that name the file."""

import gzip
import os

import numpy as np
import pytest
from PIL import Image

from deepbelief.data import load_dataset, read_array, read_idx, read_image_folder
from deepbelief.errors import DataError


def test_npy_and_npz_load_as_rows(tmp_path, monkeypatch):
    X = np.arange(24, dtype=np.float32).reshape(2, 3, 4)  # two 3x4 images
    np.save(tmp_path / "x.npy", X)
    loaded, y = read_array(tmp_path / "x.npy")
    assert loaded.shape == (2, 12) and y is None
    np.savez(tmp_path / "xy.npz", X=X[:, 0], y=np.array([1, 0]))
    loaded, y = read_array(tmp_path / "xy.npz")
    assert loaded.shape == (2, 4) and list(y) == [1, 0]
    np.savez(tmp_path / "one.npz", pixels=X[:, 0])
    assert read_array(tmp_path / "one.npz")[0].shape == (2, 4)
    assert read_array(tmp_path / "xy.npz", key="y")[0].shape == (2, 1)
    # large files are memory-mapped, not read
    monkeypatch.setattr("deepbelief.data.MMAP_BYTES", 10)
    assert isinstance(read_array(tmp_path / "x.npy")[0].base, np.memmap)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b"not numpy at all"), "cannot read as NumPy data"),
        (lambda p: np.save(p, np.array([{"a": 1}], dtype=object)), "cannot read as NumPy"),
        (lambda p: np.save(p, np.array(["a", "b"])), "dtype <U1; numbers are needed"),
    ],
)
def test_bad_numpy_files_raise_data_error_naming_the_file(tmp_path, make, message):
    path = tmp_path / "bad.npy"
    make(path)
    with pytest.raises(DataError, match=message) as info:
        read_array(path)
    assert str(path) in str(info.value)


def test_npz_key_errors(tmp_path):
    np.savez(tmp_path / "two.npz", a=np.zeros(3), b=np.zeros(3))
    with pytest.raises(DataError, match="none named 'X'"):
        read_array(tmp_path / "two.npz")
    with pytest.raises(DataError, match="no array named 'c'"):
        read_array(tmp_path / "two.npz", key="c")
    np.savez(tmp_path / "uneven.npz", X=np.zeros((3, 2)), y=np.zeros(2))
    with pytest.raises(DataError, match="X has 3 rows but y has 2"):
        read_array(tmp_path / "uneven.npz")


def save_image(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path)


def test_image_folder_one_subfolder_per_class(tmp_path):
    save_image(tmp_path / "cats" / "a.png", np.full((4, 5), 255))
    save_image(tmp_path / "dogs" / "b.png", np.zeros((4, 5)))
    save_image(tmp_path / "dogs" / "c.png", np.eye(4, 5) * 255)
    (tmp_path / "dogs" / "notes.txt").write_text("ignored")
    X, labels, shape = read_image_folder(tmp_path)
    assert X.shape == (3, 20) and X.dtype == np.float32 and shape == (4, 5)
    assert list(labels) == ["cats", "dogs", "dogs"]
    assert X[0].min() == 1.0 and X[1].max() == 0.0 and X[2].sum() == 4.0
    X, _, shape = read_image_folder(tmp_path, size=(2, 3))
    assert X.shape == (3, 6) and shape == (2, 3)


def test_image_folders_are_read_in_natural_order_as_shard_folders_are(tmp_path):
    for name in ("img10.png", "img2.png", "img1.png"):
        save_image(tmp_path / "flat" / name, np.full((2, 2), int(name[3:-4])))
    dataset = load_dataset(tmp_path / "flat")
    assert dataset.row_names == ["img1.png", "img2.png", "img10.png"]
    assert np.asarray(dataset.features)[:, 0].tolist() == pytest.approx(
        [1 / 255, 2 / 255, 10 / 255]
    )
    for label in ("10", "9"):
        for name in ("b10.png", "b9.png"):
            save_image(tmp_path / "classes" / label / name, np.zeros((2, 2)))
    dataset = load_dataset(tmp_path / "classes")
    assert dataset.row_names == ["9/b9.png", "9/b10.png", "10/b9.png", "10/b10.png"]


def test_image_folder_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        read_image_folder(tmp_path / "absent")
    with pytest.raises(DataError, match="no images"):
        read_image_folder(tmp_path)
    save_image(tmp_path / "a" / "one.png", np.zeros((4, 4)))
    save_image(tmp_path / "b" / "two.png", np.zeros((6, 4)))
    with pytest.raises(DataError, match=r"two.png: image is 6x4 but the others are 4x4"):
        read_image_folder(tmp_path)
    (tmp_path / "b" / "two.png").unlink()
    (tmp_path / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DataError, match=r"broken.png: unreadable image"):
        read_image_folder(tmp_path)


def test_truncated_idx_is_a_data_error(tmp_path):
    data = bytes([0, 0, 0x08, 2]) + (3).to_bytes(4, "big") + (2).to_bytes(4, "big") + b"\x01" * 5
    (tmp_path / "t.idx").write_bytes(data)
    with pytest.raises(DataError, match="IDX body has 5 bytes, expected 6"):
        read_idx(tmp_path / "t.idx")


# ---------------------------------------------------------------------- IDX corruption
def idx(array: np.ndarray) -> bytes:
    dims = b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return bytes([0, 0, 0x08, array.ndim]) + dims + array.astype(np.uint8).tobytes()


IMAGES = (np.arange(4 * 3 * 2) * 10 % 256).astype(np.uint8).reshape(4, 3, 2)


@pytest.mark.parametrize(
    ("name", "payload", "message"),
    [
        ("a.idx", b"", "bad magic number none"),
        ("a.idx", b"\x00\x00\x07\x01" + b"\x00" * 8, "bad magic number 00000701"),
        ("a.idx", bytes([0, 0, 8, 3, 0, 0]), r"truncated IDX header \(6 bytes"),
        ("a.idx", idx(IMAGES)[:-1], r"IDX body has 23 bytes, expected 24 for shape \(4, 3, 2\)"),
        ("a.idx", idx(IMAGES) + b"\x00", "IDX body has 25 bytes, expected 24"),
        # dimensions whose product overflows int64 to 0 must not pass as an empty array
        (
            "a.idx",
            bytes([0, 0, 8, 3]) + b"\x80\x00\x00\x00" * 2 + (4).to_bytes(4, "big"),
            "IDX body has 0 bytes, expected 18446744073709551616",
        ),
        ("a.idx.gz", gzip.compress(idx(IMAGES), mtime=0)[:-5], "corrupt or truncated gzip data"),
        ("a.idx.gz", b"\x1f\x8b" + b"\x00" * 20, "corrupt or truncated gzip data"),
        ("a.idx.gz", gzip.compress(idx(IMAGES)[:-1], mtime=0), "IDX body has 23 bytes"),
    ],
)
def test_corrupt_idx_files_raise_data_error_naming_the_file(tmp_path, name, payload, message):
    path = tmp_path / name
    path.write_bytes(payload)
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_gzip_is_recognised_from_the_bytes_not_the_name(tmp_path):
    (tmp_path / "images-idx3-ubyte").write_bytes(gzip.compress(idx(IMAGES)))
    (tmp_path / "plain.gz").write_bytes(idx(IMAGES))
    np.testing.assert_array_equal(read_idx(tmp_path / "images-idx3-ubyte"), IMAGES)
    np.testing.assert_array_equal(read_idx(tmp_path / "plain.gz"), IMAGES)
    with pytest.raises(DataError, match="no such file"):
        read_idx(tmp_path / "absent.idx")


# ---------------------------------------------------------------------- NumPy corruption
def test_npy_header_that_does_not_match_the_data_is_refused(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((4, 3), dtype=np.float32))
    good = path.read_bytes()
    path.write_bytes(good[:-4])
    with pytest.raises(DataError, match=r"shape \(4, 3\) \(48 bytes\) but 44 bytes follow"):
        read_array(path)
    path.write_bytes(good + b"\x00" * 4)  # extra bytes: the data would be misread
    with pytest.raises(DataError, match="but 52 bytes follow"):
        read_array(path)
    path.write_bytes(good.replace(b"(4, 3)", b"(9, 3)"))
    with pytest.raises(DataError, match=r"shape \(9, 3\) \(108 bytes\)"):
        read_array(path)
    path.write_bytes(good[:20])
    with pytest.raises(DataError, match="corrupt or unreadable .npy header"):
        read_array(path)


def test_npz_corruption_and_mislabelled_files(tmp_path):
    path = tmp_path / "x.npz"
    np.savez_compressed(path, X=np.arange(12.0).reshape(4, 3), y=np.arange(4))
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="cannot read as NumPy data") as info:
        read_array(path)
    assert str(path) in str(info.value)
    # a .npy file named .npz, and an .npz named .npy, are read by their content
    np.save(tmp_path / "plain.npy", np.ones((2, 2)))
    (tmp_path / "plain.npz").write_bytes((tmp_path / "plain.npy").read_bytes())
    assert read_array(tmp_path / "plain.npz")[0].shape == (2, 2)
    (tmp_path / "zip.npy").write_bytes(good)
    assert read_array(tmp_path / "zip.npy")[1].tolist() == [0, 1, 2, 3]
    # an archive entry that is not an array
    import zipfile

    with zipfile.ZipFile(tmp_path / "odd.npz", "w") as archive:
        archive.writestr("X", b"just bytes")
    with pytest.raises(DataError, match=r"odd.npz\['X'\]: cannot read as NumPy data: corrupt"):
        read_array(tmp_path / "odd.npz")


# ---------------------------------------------------------------------- load_dataset
def test_load_dataset_reads_tables_by_extension(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,label\n1,x,yes\n2,y,no\n")
    (tmp_path / "t.tsv").write_text("a\tb\tlabel\n1\tx\tyes\n2\ty\tno\n")
    (tmp_path / "t.txt").write_text("1,2\n3,4\n")
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(b"a,label\n1,yes\n2,no\n"))
    for name in ("t.csv", "t.tsv"):
        ds = load_dataset(tmp_path / name)
        assert ds.kind == "table" and ds.image_shape is None and ds.source == str(tmp_path / name)
        assert list(ds.features.columns) == ["a", "b"] and list(ds.target) == ["yes", "no"]
        assert len(ds) == 2
    ds = load_dataset(tmp_path / "t.txt", header=False, no_target=True)
    assert ds.features.shape == (2, 2) and ds.target is None
    ds = load_dataset(tmp_path / "t.csv", target="a")
    assert list(ds.target) == [1, 2]
    assert list(load_dataset(tmp_path / "t.csv.gz").target) == ["yes", "no"]


def test_load_dataset_arrays_and_images(tmp_path, monkeypatch):
    np.save(tmp_path / "images.npy", IMAGES)
    ds = load_dataset(tmp_path / "images.npy")
    assert ds.kind == "images" and ds.image_shape == (3, 2) and ds.target is None
    assert ds.features.dtype == np.float32 and ds.features.shape == (4, 6)
    np.testing.assert_allclose(ds.features, IMAGES.reshape(4, 6) / 255.0, rtol=1e-6)

    table = np.arange(12.0).reshape(4, 3)
    np.save(tmp_path / "table.npy", table)
    ds = load_dataset(tmp_path / "table.npy")
    assert ds.kind == "array" and ds.image_shape is None and ds.features.dtype == np.float64
    np.testing.assert_array_equal(ds.features, table)
    monkeypatch.setattr("deepbelief.data.MMAP_BYTES", 10)
    assert isinstance(load_dataset(tmp_path / "table.npy").features, np.memmap)

    np.save(tmp_path / "ints.npy", np.arange(4, dtype=np.int16))
    ds = load_dataset(tmp_path / "ints.npy")
    assert ds.features.dtype == np.float32 and ds.features.shape == (4, 1)

    np.savez(tmp_path / "xy.npz", X=IMAGES, y=np.array([3, 1, 4, 1]))
    ds = load_dataset(tmp_path / "xy.npz")
    assert ds.kind == "images" and list(ds.target) == [3, 1, 4, 1]
    assert load_dataset(tmp_path / "xy.npz", no_target=True).target is None


def test_load_dataset_idx_images_with_a_labels_file(tmp_path):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx(IMAGES)))
    labels = np.array([7, 2, 1, 0], dtype=np.uint8)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx(labels))
    ds = load_dataset(
        tmp_path / "train-images-idx3-ubyte.gz",
        labels_path=tmp_path / "train-labels-idx1-ubyte",
    )
    assert ds.kind == "images" and ds.image_shape == (3, 2) and ds.features.shape == (4, 6)
    np.testing.assert_allclose(ds.features, IMAGES.reshape(4, 6) / 255.0, rtol=1e-6)
    assert ds.target.dtype == np.int64 and list(ds.target) == [7, 2, 1, 0]
    (tmp_path / "few-labels.idx").write_bytes(idx(labels[:3]))
    with pytest.raises(DataError, match=r"few-labels.idx: 3 labels for the 4 rows of"):
        load_dataset(
            tmp_path / "train-images-idx3-ubyte.gz", labels_path=tmp_path / "few-labels.idx"
        )
    (tmp_path / "grid.idx").write_bytes(idx(IMAGES))
    with pytest.raises(DataError, match=r"grid.idx: labels must be one value per row"):
        load_dataset(tmp_path / "train-images-idx3-ubyte.gz", labels_path=tmp_path / "grid.idx")


def test_load_dataset_image_folder(tmp_path):
    save_image(tmp_path / "cats" / "a.png", np.full((4, 5), 255))
    save_image(tmp_path / "dogs" / "b.png", np.zeros((4, 5)))
    ds = load_dataset(tmp_path)
    assert ds.kind == "images" and ds.image_shape == (4, 5) and ds.features.shape == (2, 20)
    assert list(ds.target) == ["cats", "dogs"]
    ds = load_dataset(tmp_path, image_size=(2, 2), no_target=True)
    assert ds.image_shape == (2, 2) and ds.features.shape == (2, 4) and ds.target is None


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("data.xlsx", {}, r"unknown kind of data file \(.xlsx\); deepbelief reads CSV tables"),
        ("README", {}, r"no extension\); .*NumPy arrays \(.npy, .npz\), IDX files"),
        ("absent.csv", {}, "no such file or folder"),
        ("t.csv", {"image_size": (2, 2)}, "an image size applies to image folders only"),
        ("t.csv", {"labels_path": "y.idx"}, "a separate labels file applies to IDX"),
        ("x.npy", {"target": "label"}, "a target column applies to CSV tables"),
        ("x.npy", {"image_size": (2, 2)}, "an image size applies to image folders only"),
        ("x.npy", {"labels_path": "t.csv"}, "a labels file must be an IDX or NumPy file"),
        ("empty.npy", {}, r"no data \(the array has shape \(0, 3\)\)"),
    ],
)
def test_load_dataset_refuses_what_it_cannot_read(tmp_path, monkeypatch, name, kwargs, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.xlsx").write_bytes(b"PK")
    (tmp_path / "README").write_text("hello")
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    np.save(tmp_path / "x.npy", np.zeros((2, 3)))
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    with pytest.raises(DataError, match=message) as info:
        load_dataset(tmp_path / name, **kwargs)
    assert name in str(info.value) or "t.csv" in str(info.value)


@pytest.mark.slow
def test_load_dataset_reads_real_mnist(mnist_dir):
    ds = load_dataset(
        mnist_dir / "t10k-images-idx3-ubyte.gz",
        labels_path=mnist_dir / "t10k-labels-idx1-ubyte.gz",
    )
    assert ds.features.shape == (10000, 784) and ds.image_shape == (28, 28)
    assert set(np.unique(ds.target)) == set(range(10))
    assert 0.0 <= ds.features.min() and ds.features.max() == 1.0


def test_corrupt_npy_headers_and_compressed_npz_data_raise_data_error(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((4, 3), dtype=np.float32))
    good = path.read_bytes()
    path.write_bytes(good.replace(b"(4, 3)", b"(4, 3 "))  # numpy's parser: a TokenError
    with pytest.raises(
        DataError, match="x.npy: cannot read as NumPy data: corrupt or unreadable .npy header"
    ):
        read_array(path)
    path = tmp_path / "c.npz"
    np.savez_compressed(path, X=np.arange(400.0).reshape(100, 4))
    good = bytearray(path.read_bytes())
    good[60] ^= 0xFF  # inside the deflate stream: zlib.error or a CRC mismatch
    path.write_bytes(bytes(good))
    with pytest.raises(DataError, match=r"c.npz(\[.X.\])?: cannot read as NumPy data") as info:
        read_array(path)
    assert type(info.value.__cause__).__name__ in ("error", "BadZipFile")


def test_image_depths_are_scaled_by_their_own_range(tmp_path):
    """16-bit and float images used to be clipped to 8 bits (every non-zero 16-bit pixel read
    as 1.0, a float image in [0, 1] as black)."""
    levels = np.array([[0.0, 0.25], [0.5, 1.0]])
    (tmp_path / "a").mkdir()
    Image.fromarray((levels * 65535).astype(np.uint16)).save(tmp_path / "a" / "deep.png")
    Image.fromarray((levels * 255).astype(np.uint8)).save(tmp_path / "a" / "plain.png")
    Image.fromarray(levels.astype(np.float32), mode="F").save(tmp_path / "a" / "float.tif")
    X, _, shape = read_image_folder(tmp_path)
    assert shape == (2, 2)
    for row in X:  # deep, float, plain (sorted by name): the same grey levels
        np.testing.assert_allclose(row, levels.ravel(), atol=1 / 255)
    Image.fromarray(levels.astype(np.float32) * 7, mode="F").save(tmp_path / "a" / "float.tif")
    with pytest.raises(DataError, match=r"float\.tif: a float image with values in \[0, 7\]"):
        read_image_folder(tmp_path)


def test_transparent_images_are_refused_and_hidden_or_special_entries_skipped(tmp_path):
    (tmp_path / "a").mkdir()
    Image.fromarray(np.full((2, 2), 200, np.uint8)).save(tmp_path / "a" / "x.png")
    (tmp_path / ".ipynb_checkpoints").mkdir()  # a hidden folder is no class
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / ".ipynb_checkpoints" / "x.png")
    (tmp_path / "a" / "._x.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS's
    os.mkfifo(tmp_path / "a" / "pipe.png")  # would block a reader forever
    X, labels, _ = read_image_folder(tmp_path)
    assert list(labels) == ["a"] and X.shape == (1, 4)
    ink = np.zeros((2, 2, 4), np.uint8)
    ink[0, 0] = (0, 0, 0, 255)  # black ink on a transparent background
    Image.fromarray(ink, mode="RGBA").save(tmp_path / "a" / "ink.png")
    with pytest.raises(DataError, match=r"ink\.png: the image is transparent in places"):
        read_image_folder(tmp_path)


def test_a_flat_image_folder_is_unlabelled_and_a_mixed_one_refused(tmp_path):
    save_image(tmp_path / "b.png", np.zeros((2, 3)))
    save_image(tmp_path / "a.png", np.full((2, 3), 255))
    (tmp_path / "empty").mkdir()  # a subfolder without images is no class
    X, labels, shape = read_image_folder(tmp_path)
    assert labels is None and shape == (2, 3) and X[0].min() == 1.0 and X[1].max() == 0.0
    dataset = load_dataset(tmp_path)
    assert dataset.target is None and dataset.row_names == ["a.png", "b.png"]
    save_image(tmp_path / "cats" / "c.png", np.zeros((2, 3)))
    with pytest.raises(DataError, match=r"holds images both directly \(a.png, ...\) and in class"):
        read_image_folder(tmp_path)
    (tmp_path / "a.png").unlink()
    (tmp_path / "b.png").unlink()
    dataset = load_dataset(tmp_path)
    assert list(dataset.target) == ["cats"] and dataset.row_names == ["cats/c.png"]
