"""Data sources: IDX files (the MNIST format, plain or gzipped) and small synthetic sets."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import numpy as np

from .errors import DataError

_IDX_TYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (plain or ``.gz``) into a NumPy array.

    Raises
    ------
    DataError
        When the file is missing, truncated or not in IDX format.
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    dtype, ndim = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: IDX body has {len(raw) - header} bytes, expected {expected} for shape {shape}"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def load_mnist(folder: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST from the four IDX files in ``folder``.

    Returns images as float32 in [0, 1] of shape (n, 784) and labels as int64.
    """
    prefix = {"train": "train", "test": "t10k"}[split]
    folder = Path(folder)

    def find(stem):
        for name in (f"{stem}.gz", stem):
            if (folder / name).exists():
                return folder / name
        raise DataError(f"{folder}: no {stem}[.gz] found")

    images = read_idx(find(f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(find(f"{prefix}-labels-idx1-ubyte"))
    return images.reshape(len(images), -1).astype(np.float32) / 255.0, labels.astype(np.int64)


def bars_and_stripes(side: int = 3) -> np.ndarray:
    """Every bars-and-stripes image of ``side x side`` pixels, one per row, without duplicates.

    A 3x3 grid gives 14 distinct patterns (2 * 2^3 - 2); the optimum average
    log-likelihood of a model of them is ``-log(14) = -2.64`` nats.
    """
    patterns = set()
    for bits in itertools.product((0, 1), repeat=side):
        rows = np.repeat(np.array(bits)[:, None], side, axis=1)
        patterns.add(tuple(rows.ravel()))
        patterns.add(tuple(rows.T.ravel()))
    return np.array(sorted(patterns), dtype=np.float32)
