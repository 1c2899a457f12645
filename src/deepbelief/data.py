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


# ---------------------------------------------------------------------- tables
#: A numeric target with at most this many distinct integer values is taken as class labels.
MAX_CLASSES_AUTO = 20


class TablePreprocessor:
    """Turns a table's feature columns into a float matrix for an RBM's visible units, and back.

    Numeric columns are scaled to [0, 1] (``scaling="minmax"``, for Bernoulli units) or
    standardised (``"standard"``, for Gaussian units); categorical columns (text, bool,
    category) are one-hot encoded, one block per column, for softmax units. Missing values are
    imputed (``missing="impute"``: the column's median, or most frequent category) or refused
    (``"error"``). With ``drop_ids=True``, text or integer columns whose values are all
    distinct (row identifiers) are dropped. The fitted state is plain data
    (:meth:`to_config`), saved with the model and applied again at predict time.
    """

    def __init__(self, scaling: str = "minmax", missing: str = "impute", drop_ids: bool = False):
        if scaling not in ("minmax", "standard"):
            raise ValueError(f"scaling must be 'minmax' or 'standard', got {scaling!r}")
        if missing not in ("impute", "error"):
            raise ValueError(f"missing must be 'impute' or 'error', got {missing!r}")
        self.scaling, self.missing, self.drop_ids = scaling, missing, bool(drop_ids)
        self.columns: list[dict] = []

    # ------------------------------------------------------------------ fitting
    def fit(self, frame, source: str = "data") -> TablePreprocessor:
        """Learn each column's kind, scale, categories and fill value from ``frame``."""
        if frame.shape[1] == 0:
            raise DataError(f"{source}: no feature columns")
        if len(frame) == 0:
            raise DataError(f"{source}: no rows")
        self.columns = []
        for name in frame.columns:
            column = frame[name]
            if self.drop_ids and _looks_like_ids(column):
                continue
            self.columns.append(self._fit_column(str(name), column, source))
        if not self.columns:
            raise DataError(f"{source}: every column was dropped as an identifier")
        return self

    def _fit_column(self, name: str, column, source: str) -> dict:
        missing = column.isna()
        if missing.any() and self.missing == "error":
            raise DataError(_missing_message(source, name, missing))
        present = column[~missing]
        if len(present) == 0:
            raise DataError(f"{source}: column {name!r} has no values")
        if _is_numeric(column):
            values = present.to_numpy(dtype=np.float64)
            if not np.isfinite(values).all():
                row = int(np.flatnonzero(~np.isfinite(values))[0])
                raise DataError(f"{source}: column {name!r} has a non-finite value at row {row}")
            if self.scaling == "minmax":
                low, high = float(values.min()), float(values.max())
                offset, scale = low, (high - low) or 1.0
            else:
                offset, scale = float(values.mean()), float(values.std()) or 1.0
            return dict(name=name, kind="numeric", offset=offset, scale=scale,
                        fill=float(np.median(values)))  # fmt: skip
        categories = sorted({str(v) for v in present}, key=_natural_key)
        fill = str(present.astype(str).value_counts().idxmax())
        return dict(name=name, kind="categorical", categories=categories, fill=fill)

    # ------------------------------------------------------------------ transforming
    def transform(self, frame, source: str = "data") -> np.ndarray:
        """The float32 matrix of ``frame``'s columns (by name), ready for the visible units."""
        self._check_fitted()
        missing_columns = [c["name"] for c in self.columns if c["name"] not in frame.columns]
        if missing_columns:
            raise DataError(f"{source}: missing column(s) {', '.join(map(repr, missing_columns))}")
        blocks = [self._transform_column(c, frame[c["name"]], source) for c in self.columns]
        return np.concatenate(blocks, axis=1).astype(np.float32)

    def _transform_column(self, spec: dict, column, source: str) -> np.ndarray:
        name, missing = spec["name"], column.isna().to_numpy()
        if missing.any() and self.missing == "error":
            raise DataError(_missing_message(source, name, column.isna()))
        if spec["kind"] == "numeric":
            values = _numeric_values(column, source, name)
            values = np.where(missing, spec["fill"], values)
            return ((values - spec["offset"]) / spec["scale"])[:, None]
        values = column.astype(str).to_numpy()
        values = np.where(missing, spec["fill"], values)
        index = {c: i for i, c in enumerate(spec["categories"])}
        codes = np.array([index.get(v, -1) for v in values])
        if (codes < 0).any():
            row = int(np.flatnonzero(codes < 0)[0])
            raise DataError(
                f"{source}: column {name!r}, row {row}: unseen category {values[row]!r} "
                f"(known: {', '.join(spec['categories'][:10])}"
                + (", ...)" if len(spec["categories"]) > 10 else ")")
            )
        one_hot = np.zeros((len(values), len(spec["categories"])))
        one_hot[np.arange(len(values)), codes] = 1.0
        return one_hot

    def inverse_transform(self, matrix: np.ndarray):
        """A DataFrame in the original columns: numeric values unscaled, each one-hot block
        read as its most probable category."""
        import pandas as pd

        self._check_fitted()
        matrix = np.asarray(matrix, dtype=np.float64)
        out, start = {}, 0
        for spec in self.columns:
            width = self._width(spec)
            block = matrix[:, start : start + width]
            if spec["kind"] == "numeric":
                out[spec["name"]] = block[:, 0] * spec["scale"] + spec["offset"]
            else:
                out[spec["name"]] = np.asarray(spec["categories"], dtype=object)[block.argmax(1)]
            start += width
        return pd.DataFrame(out)

    # ------------------------------------------------------------------ description
    @property
    def n_features(self) -> int:
        """Width of the transformed matrix."""
        return sum(self._width(c) for c in self.columns)

    def blocks(self) -> list[tuple[str, int]]:
        """Consecutive ``("numeric", n)`` and ``("categorical", size)`` blocks of the matrix:
        what the visible units must be (numeric runs merged; one softmax group per column)."""
        out: list[tuple[str, int]] = []
        for spec in self.columns:
            if spec["kind"] == "numeric" and out and out[-1][0] == "numeric":
                out[-1] = ("numeric", out[-1][1] + 1)
            else:
                out.append((spec["kind"], self._width(spec)))
        return out

    @staticmethod
    def _width(spec: dict) -> int:
        return 1 if spec["kind"] == "numeric" else len(spec["categories"])

    def _check_fitted(self) -> None:
        if not self.columns:
            raise ValueError("this TablePreprocessor is not fitted yet")

    def to_config(self) -> dict:
        """JSON-serialisable state; :meth:`from_config` rebuilds the fitted preprocessor."""
        return dict(scaling=self.scaling, missing=self.missing, drop_ids=self.drop_ids,
                    columns=[dict(c) for c in self.columns])  # fmt: skip

    @classmethod
    def from_config(cls, config: dict) -> TablePreprocessor:
        """Rebuild from :meth:`to_config`."""
        pre = cls(config["scaling"], config["missing"], config["drop_ids"])
        pre.columns = [dict(c) for c in config["columns"]]
        return pre


def _is_numeric(column) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _numeric_values(column, source: str, name: str) -> np.ndarray:
    """Float values of a column fitted as numeric; text that is not a number is an error."""
    import pandas as pd

    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & ~column.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{source}: column {name!r}, row {row}: {column.iloc[row]!r} is not a number"
        )
    return values


def _looks_like_ids(column) -> bool:
    import pandas as pd

    if len(column) < 2 or column.isna().any() or not column.is_unique:
        return False
    return pd.api.types.is_integer_dtype(column) or pd.api.types.is_object_dtype(column)


def _missing_message(source: str, name: str, missing) -> str:
    row = int(np.flatnonzero(missing.to_numpy())[0])
    return (
        f"{source}: column {name!r}, row {row}: missing value ({int(missing.sum())} in the "
        "column); use missing='impute' to fill them"
    )


def _natural_key(text: str):
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def read_table(path: str | Path, target=None, no_target: bool = False, header: bool = True):
    """Read a CSV file into (features DataFrame, target Series or None).

    Parameters
    ----------
    path : str or Path
    target : str, int or None
        The target column by name or position (negative counts from the end); default: the
        last column.
    no_target : bool
        Every column is a feature (unsupervised use).
    header : bool
        The first line names the columns (else they are named 0, 1, ...).

    Raises
    ------
    DataError
        Missing, empty or ragged files, a header without rows, an unknown target column.
    """
    import pandas as pd

    path = Path(path)
    try:
        frame = pd.read_csv(path, header=0 if header else None, skipinitialspace=True)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise DataError(f"{path}: is a directory, not a CSV file") from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file is empty") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed CSV ({str(exc).strip()})") from exc
    except (UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{path}: cannot read as CSV text ({exc})") from exc
    frame.columns = [str(c) for c in frame.columns]
    if len(frame) == 0:
        raise DataError(f"{path}: a header but no data rows")
    if no_target:
        return frame, None
    name = _target_name(frame, target, path)
    if frame.shape[1] < 2:
        raise DataError(f"{path}: only the target column {name!r}; no feature columns")
    return frame.drop(columns=name), frame[name]


def _target_name(frame, target, path) -> str:
    columns = list(frame.columns)
    if target is None:
        return columns[-1]
    if isinstance(target, int) or (isinstance(target, str) and target.lstrip("-").isdigit()):
        if str(target) in columns:
            return str(target)
        position = int(target)
        if not -len(columns) <= position < len(columns):
            raise DataError(
                f"{path}: target column position {position} is out of range "
                f"({len(columns)} columns)"
            )
        return columns[position]
    if target not in columns:
        shown = ", ".join(map(repr, columns[:20])) + (", ..." if len(columns) > 20 else "")
        raise DataError(f"{path}: no target column named {target!r}; the columns are {shown}")
    return target


def prepare_target(target, task: str = "auto", source: str = "data"):
    """Check a target column and pick the task.

    ``task="auto"``: classification for text labels or at most ``MAX_CLASSES_AUTO`` distinct
    integer values, else regression.

    Returns
    -------
    (values, task) : ndarray and "classification" or "regression"
        Labels as they are (classification) or float64 values (regression).

    Raises
    ------
    DataError
        A missing target value (naming the row), text in a regression target, a single class.
    """
    import pandas as pd

    if task not in ("auto", "classification", "regression"):
        raise ValueError(f"task must be auto, classification or regression, got {task!r}")
    name = f"target column {target.name!r}" if target.name is not None else "the target"
    missing = target.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise DataError(
            f"{source}: {name} has a missing value at row {row} ({int(missing.sum())} in all)"
        )
    numeric = _is_numeric(target)
    if task == "auto":
        integral = numeric and np.all(np.mod(target.to_numpy(dtype=np.float64), 1) == 0)
        few = target.nunique() <= MAX_CLASSES_AUTO
        task = "classification" if not numeric or (integral and few) else "regression"
    if task == "regression":
        values = pd.to_numeric(target, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{source}: {name}, row {row}: {target.iloc[row]!r} is not a finite number"
            )
        return values, task
    values = target.to_numpy()
    if target.nunique() < 2:
        raise DataError(
            f"{source}: {name} has a single class ({values[0]!r}); classification needs two"
        )
    return values, task


# ---------------------------------------------------------------------- arrays and images
#: .npy files larger than this are memory-mapped rather than read into memory.
MMAP_BYTES = 64 * 2**20


def read_array(path: str | Path, key: str | None = None):
    """Read ``.npy`` or ``.npz`` data as ``(X, y or None)``; never unpickles.

    A ``.npy`` file is ``X`` (memory-mapped when larger than :data:`MMAP_BYTES`). An ``.npz``
    archive gives ``X`` from ``key``, else from its ``"X"`` entry (with ``"y"`` as the target
    when present), else from its only entry.

    Raises
    ------
    DataError
        Missing or corrupt files, pickled object arrays, unknown keys, non-numeric arrays.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                X, y = _pick_arrays(archive, key, path)
        else:
            big = path.stat().st_size > MMAP_BYTES
            X, y = np.load(path, mmap_mode="r" if big else None, allow_pickle=False), None
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read as NumPy data ({exc})") from exc
    if X.dtype.kind not in "biuf":
        raise DataError(f"{path}: the array has dtype {X.dtype}; numbers are needed")
    if X.ndim == 1:
        X = X[:, None]
    elif X.ndim > 2:
        X = X.reshape(len(X), -1)  # images: one flattened row each
    if y is not None and len(y) != len(X):
        raise DataError(f"{path}: X has {len(X)} rows but y has {len(y)}")
    return X, y


def _pick_arrays(archive, key, path):
    names = list(archive.files)
    if key is not None:
        if key not in names:
            raise DataError(f"{path}: no array named {key!r}; the archive has {names}")
        return archive[key], None
    if "X" in names:
        return archive["X"], (archive["y"] if "y" in names else None)
    if len(names) == 1:
        return archive[names[0]], None
    raise DataError(f"{path}: several arrays ({names}) and none named 'X'; choose one by key")


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".pgm")


def read_image_folder(folder: str | Path, size: tuple[int, int] | None = None):
    """Read a folder of images, one subfolder per class, as grey levels in [0, 1].

    Returns ``(X, labels, shape)``: one flattened image per row (float32), the subfolder name
    of each, and the (height, width) of the images. Every image must have the size of the
    first one unless ``size`` (height, width) asks for resizing.

    Raises
    ------
    DataError
        A missing folder, no images, an unreadable image or one of a different size (named).
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:  # pragma: no cover - Pillow comes with matplotlib
        raise ImportError("image folders need Pillow: pip install pillow") from exc
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    files = sorted(
        (sub.name, f)
        for sub in folder.iterdir()
        if sub.is_dir()
        for f in sub.iterdir()
        if f.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise DataError(f"{folder}: no images in class subfolders ({', '.join(IMAGE_SUFFIXES)})")
    rows, labels, shape = [], [], None if size is None else tuple(size)
    for label, path in files:
        try:
            with Image.open(path) as image:
                grey = image.convert("L")
                if size is not None:
                    grey = grey.resize((size[1], size[0]))
                pixels = np.asarray(grey, dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise DataError(f"{path}: unreadable image ({exc})") from exc
        if shape is None:
            shape = pixels.shape
        elif pixels.shape != shape:
            raise DataError(
                f"{path}: image is {pixels.shape[0]}x{pixels.shape[1]} but the others are "
                f"{shape[0]}x{shape[1]}; pass a size to resize them"
            )
        rows.append(pixels.reshape(-1))
        labels.append(label)
    return np.stack(rows), np.asarray(labels), shape
