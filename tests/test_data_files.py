"""NumPy files and image folders: what they load to, and the errors that name the file."""

import numpy as np
import pytest

from deepbelief.data import read_array, read_idx, read_image_folder
from deepbelief.errors import DataError

Image = pytest.importorskip("PIL.Image")


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
