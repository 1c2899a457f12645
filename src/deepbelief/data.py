"""Data sources: CSV tables (pandas), NumPy ``.npy``/``.npz`` files, IDX files (the MNIST
format, plain or gzipped), folders of images, and small synthetic sets.

:func:`load_dataset` picks the reader from the path. Every unusable input raises
:class:`~deepbelief.errors.DataError` whose message names the file and, where it applies, the
column, the row and the value. Table rows are counted from 1: row 1 is the first data row after
the header; parse errors name the line of the file instead.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import itertools
import lzma
import math
import os
import re
import warnings
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import errors
from .errors import DataError

_IDX_TYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
_F32 = np.finfo(np.float32)


def _show(value) -> str:
    """``repr`` of a cell value as a user wrote it (NumPy scalars as plain Python values)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


# ---------------------------------------------------------------------- IDX
def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), plain or gzip-compressed, into a NumPy array.

    Compression is recognised from the file's first bytes, not from its name.

    Parameters
    ----------
    path : str or Path
        The IDX file.

    Returns
    -------
    ndarray
        The array with the shape and element type the header declares (native byte order).

    Raises
    ------
    DataError
        When the file is missing, is not gzip or IDX data (bad magic number), has corrupt
        compressed data, or holds more or fewer bytes than its header's shape needs.
    """
    path = Path(path)
    raw = _read_idx_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'none'})")
    dtype, ndim = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(
            f"{path}: truncated IDX header ({len(raw)} bytes; {ndim} dimensions need {header})"
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow on corrupt sizes
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: IDX body has {len(raw) - header} bytes, expected {expected} for shape "
            f"{shape} (truncated or corrupt file)"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _read_idx_bytes(path: Path) -> bytes:
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not an IDX file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such file") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc.strerror or exc})") from exc
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
            raise DataError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
    return raw


def load_mnist(folder: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST from the four IDX files in ``folder`` (each plain or ``.gz``).

    Parameters
    ----------
    folder : str or Path
        Folder holding ``train-images-idx3-ubyte[.gz]`` and the three others.
    split : {"train", "test"}
        Which half to read.

    Returns
    -------
    images : ndarray of shape (n, 784)
        Grey levels as float32 in [0, 1].
    labels : ndarray of shape (n,)
        Digits as int64.

    Raises
    ------
    DataError
        A missing or corrupt file.
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

    Parameters
    ----------
    side : int
        Height and width of the images.

    Returns
    -------
    ndarray of shape (2 * 2**side - 2, side * side)
        The patterns as float32 zeros and ones, in sorted order.
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
#: A text column with more distinct values than this is refused rather than one-hot encoded.
MAX_CATEGORIES = 1000
NON_NUMERIC = ("error", "missing", "text")
#: The kinds of column that hold one number each: ``"binary"`` is a column of only 0 and 1
#: under ``scaling="standard"`` (kept as it is, for Bernoulli units among Gaussian ones).
NUMBERS = ("numeric", "binary")
#: A text column kept as categories with a different value on each of at least this many
#: rows (names, free text) is said to identify the rows (a warning advising ``drop_ids``).
ALL_DISTINCT_ROWS = 20


class TablePreprocessor:
    """Turns a table's feature columns into a float matrix for an RBM's visible units, and back.

    Numeric columns are scaled to [0, 1] (``scaling="minmax"``, for Bernoulli units) or
    standardised (``"standard"``, for Gaussian units; with ``binary=True`` a column of only 0
    and 1 is then kept as it is, for Bernoulli units); categorical columns (text, bool,
    category) are one-hot encoded, one block per column, for softmax units. Missing values are
    imputed (``missing="impute"``: the column's median, or most frequent category) or refused
    (``"error"``). With ``drop_ids=True``, text or integer columns whose values are all
    distinct (row identifiers) are dropped. The fitted state is plain data
    (:meth:`to_config`), saved with the model and applied again at predict time.

    Column typing never guesses silently:

    - A text column in which most cells are numbers (more than half of its non-missing cells
      parse as numbers) but a few are not (``abc``, a decimal comma ``6,7``, ``n.a.``) is a
      numeric column with stray tokens. ``non_numeric="error"`` (the default) refuses it,
      naming the column, the row and the value; ``"missing"`` reads those cells as missing
      values (then imputed or refused according to ``missing``), in ``fit`` and again in
      ``transform``; ``"text"`` keeps the column as categories (the old behaviour). A column of
      text that holds only numbers (possible in a DataFrame built by hand, never from
      :func:`read_table`) and a column of pandas' ``category`` dtype stay categorical.
    - A categorical column with more than ``max_categories`` distinct values (default
      :data:`MAX_CATEGORIES`, 1000) is refused with its figures (distinct values, the width of
      its one-hot block and that block's size as float32: rows x width x 4 bytes): free text
      or row identifiers would make the one-hot matrix explode. Drop the column, use
      ``drop_ids=True`` when its values are all distinct, or raise ``max_categories``
      (``None``: no limit).

    Parameters
    ----------
    scaling : {"minmax", "standard"}
        How numeric columns are scaled.
    missing : {"impute", "error"}
        What happens to missing values.
    drop_ids : bool
        Drop identifier-like columns.
    non_numeric : {"error", "missing", "text"}
        What happens to non-numeric cells of a mostly numeric column (see above).
    max_categories : int or None
        The most distinct values a categorical column may have.
    binary : bool
        With ``scaling="standard"``, keep a numeric column of only 0 and 1 as it is (a
        ``"binary"`` column, for Bernoulli units among the Gaussian ones).

    Notes
    -----
    Error messages count rows from 1 (the first row of the frame is row 1).
    """

    def __init__(
        self,
        scaling: str = "minmax",
        missing: str = "impute",
        drop_ids: bool = False,
        non_numeric: str = "error",
        max_categories: int | None = MAX_CATEGORIES,
        binary: bool = False,
    ):
        if scaling not in ("minmax", "standard"):
            raise ValueError(f"scaling must be 'minmax' or 'standard', got {scaling!r}")
        if missing not in ("impute", "error"):
            raise ValueError(f"missing must be 'impute' or 'error', got {missing!r}")
        if non_numeric not in NON_NUMERIC:
            raise ValueError(
                f"non_numeric must be 'error', 'missing' or 'text', got {non_numeric!r}"
            )
        if max_categories is not None and (
            isinstance(max_categories, bool)
            or not isinstance(max_categories, (int, np.integer))
            or max_categories < 1
        ):
            raise ValueError(
                f"max_categories must be a positive integer or None, got {max_categories!r}"
            )
        self.scaling, self.missing, self.drop_ids = scaling, missing, bool(drop_ids)
        self.non_numeric = non_numeric
        self.max_categories = None if max_categories is None else int(max_categories)
        self.binary = bool(binary)
        self.columns: list[dict] = []

    # ------------------------------------------------------------------ fitting
    def fit(self, frame, source: str = "data", named: bool = True) -> TablePreprocessor:
        """Learn each column's kind, scale, categories and fill value from ``frame``.

        Parameters
        ----------
        frame : pandas.DataFrame
            The feature columns.
        source : str
            Where the data came from, for error messages (a file name).
        named : bool
            The columns are a table's, which a user chose: a column of one value or of row
            numbers is worth a warning (an image's constant border pixels are not).

        Returns
        -------
        TablePreprocessor
            ``self``.

        Raises
        ------
        DataError
            No rows or columns, a column without values, a missing value with
            ``missing="error"``, a non-finite number, a numeric range too wide to scale, a
            non-numeric cell in a mostly numeric column with ``non_numeric="error"``, a
            categorical column with more than ``max_categories`` values.
        """
        if frame.shape[1] == 0:
            raise DataError(f"{source}: no feature columns")
        if len(frame) == 0:
            raise DataError(f"{source}: no rows")
        self.columns, self.dropped = [], []
        for name in frame.columns:
            column = frame[name]
            if self.drop_ids and _looks_like_ids(column):
                self.dropped.append(str(name))
                continue
            self.columns.append(self._fit_column(str(name), column, source, named))
        if not self.columns:
            raise DataError(f"{source}: every column was dropped as an identifier")
        if named and len(frame) > 1:
            _warn_constant(source, [c["name"] for c in self.columns if _one_value(c)])
        return self

    def _fit_column(self, name: str, column, source: str, named: bool = True) -> dict:
        original = column
        column, coerced = self._stray_tokens(name, column, source)
        missing = column.isna()
        if missing.any() and self.missing == "error":
            if coerced is not None and coerced.any():
                raise _coerced_error(source, name, original, coerced)
            raise _missing_error(source, name, missing)
        present = column[~missing]
        if len(present) == 0:
            raise DataError(f"{source}: column {name!r} has no values")
        if _is_numeric(column):
            every = column.to_numpy(dtype=np.float64, na_value=np.nan)
            bad = ~np.isfinite(every) & ~missing.to_numpy()
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise DataError(
                    f"{source}: column {name!r}, row {row + 1}: non-finite value "
                    f"{_show(column.iloc[row])}"
                )
            values = every[~missing.to_numpy()]
            low, high = float(values.min()), float(values.max())
            with np.errstate(over="ignore", invalid="ignore"):
                if self.scaling == "minmax":
                    offset, scale = low, (high - low) or 1.0
                else:
                    offset, scale = float(values.mean()), float(values.std()) or 1.0
            if not (np.isfinite(offset) and np.isfinite(scale)):
                raise DataError(
                    f"{source}: column {name!r}: its values (from {low:g} to {high:g}) span too "
                    "wide a range to scale"
                )
            with np.errstate(over="ignore"):
                fill = float(np.median(values))
            if not np.isfinite(fill):  # the mean of the two middle values overflowed
                fill = float(np.quantile(values, 0.5, method="lower"))
            # what restores a model's rows to the column's own form (InputSpec.restore)
            form = dict(integer=bool(np.all(np.mod(values, 1) == 0)), constant=low == high)
            if named and len(column) >= ALL_DISTINCT_ROWS and _looks_like_ids(column):
                errors.warn(
                    f"{source}: column {name!r} looks like a row number (every value distinct, "
                    "and named or spread as one): as a feature it tells the model where a row "
                    "lies in the file; leave it out with --drop-ids (drop_ids=True)",
                    errors.DataWarning,
                )
            if self.binary and self.scaling == "standard" and np.isin(values, (0, 1)).all():
                return dict(name=name, kind="binary", offset=0.0, scale=1.0, fill=fill, **form)
            return dict(name=name, kind="numeric", offset=offset, scale=scale, fill=fill, **form)
        text = _as_text(present)
        distinct = set(text)
        if self.max_categories is not None and len(distinct) > self.max_categories:
            raise DataError(_too_many_categories(source, name, len(distinct), len(column),
                                                 self.max_categories))  # fmt: skip
        dates = named and len(distinct) > 2 and _looks_like_dates(text)
        if len(distinct) == len(text) >= ALL_DISTINCT_ROWS and not dates:
            _warn_all_distinct(source, name, len(text))
        if dates:
            errors.warn(
                f"{source}: column {name!r} holds dates ({text[0]!r}, ...), read as "
                f"{len(distinct)} text categories: a new date will be one the model never saw; "
                "give it as numbers (days since a start, or year, month and day columns), or "
                "leave it out",
                errors.DataWarning,
            )
        categories = sorted(distinct, key=_natural_key)
        fill = Counter(text).most_common(1)[0][0]  # ties: the first seen
        return dict(name=name, kind="categorical", categories=categories, fill=fill)

    def _stray_tokens(self, name: str, column, source: str):
        """``(column, coerced)``: a mostly numeric text column with a few non-numeric cells is
        refused (``non_numeric="error"``) or becomes float64 with those cells missing
        (``"missing"``; ``coerced`` marks them); other columns come back as they are."""
        import pandas as pd

        if (
            self.non_numeric == "text"
            or isinstance(column.dtype, pd.CategoricalDtype)  # declared categories
            or _kind(column) != "text"
        ):
            return column, None
        numbers = _parse_numbers(column)
        present = ~column.isna().to_numpy()
        stray = present & np.isnan(numbers)
        n_stray, n_present = int(stray.sum()), int(present.sum())
        if n_stray and 2 * (n_present - n_stray) <= n_present:
            _refuse_formatted_numbers(source, name, column, present)
        if n_stray == 0 or 2 * (n_present - n_stray) <= n_present:
            return column, None  # all numbers (typed as text by the caller) or mostly text
        if self.non_numeric == "error":
            row = int(np.flatnonzero(stray)[0])
            raise DataError(
                f"{source}: column {name!r}, row {row + 1}: {_show(column.iloc[row])} is not a "
                f"number, but {n_present - n_stray} of the column's {n_present} values are "
                f"({n_stray} {'is' if n_stray == 1 else 'are'} not); correct the file, or read "
                "such cells as missing values with --non-numeric missing "
                "(non_numeric='missing'), or keep the column as text categories with "
                "--non-numeric text"
            )
        return pd.Series(numbers, index=column.index, name=column.name), stray

    # ------------------------------------------------------------------ transforming
    def transform(self, frame, source: str = "data", unseen: str = "error") -> np.ndarray:
        """The float32 matrix of ``frame``'s columns (by name), ready for the visible units.

        Parameters
        ----------
        frame : pandas.DataFrame
            Rows with (at least) the fitted columns.
        source : str
            Where the data came from, for error messages.
        unseen : {"error", "empty"}
            A category not seen in fit: refused, or (``"empty"``) its row's one-hot block is
            left all zeros (:meth:`unseen_rows`), with a warning naming the column, the first
            row and the value.

        Returns
        -------
        ndarray of shape (n_rows, n_features)
            Finite float32 values.

        Raises
        ------
        DataError
            A missing column, text in a numeric column, an unseen category, a non-finite value
            or one too far outside the fitted range (each naming the column, row and value).
        """
        self._check_fitted()
        missing_columns = [c["name"] for c in self.columns if c["name"] not in frame.columns]
        if missing_columns:
            shown = ", ".join(map(repr, missing_columns[:5]))
            more = len(missing_columns) - 5
            shown += f" and {more} more (of {len(self.columns)})" if more > 0 else ""
            if all(name.isdigit() for name in missing_columns):  # numbered: no header
                shown += " (the model was trained on a file without a header: give --no-header)"
            raise DataError(f"{source}: missing column(s) {shown}")
        blocks = [self._transform_column(c, frame[c["name"]], source, unseen) for c in self.columns]
        return np.concatenate(blocks, axis=1).astype(np.float32)

    def _transform_column(self, spec: dict, column, source: str, unseen: str) -> np.ndarray:
        name, missing = spec["name"], column.isna().to_numpy()
        if spec["kind"] in NUMBERS:
            values, coerced = _numeric_values(column, source, name, self.non_numeric)
            if coerced.any() and self.missing == "error":
                raise _coerced_error(source, name, column, coerced)
            if missing.any() and self.missing == "error":
                raise _missing_error(source, name, column.isna())
            missing = missing | coerced
            values = np.where(missing, spec["fill"], values)
            with np.errstate(over="ignore", invalid="ignore"):
                scaled = (values - spec["offset"]) / spec["scale"]
            bad = ~(np.abs(scaled) <= _F32.max)  # also catches NaN and inf
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                what = "non-finite value" if not np.isfinite(values[row]) else "value"
                raise DataError(
                    f"{source}: column {name!r}, row {row + 1}: {what} {_show(column.iloc[row])}"
                    + ("" if what != "value" else " is too far outside the range seen in fit")
                )
            return scaled[:, None]
        if missing.any() and self.missing == "error":
            raise _missing_error(source, name, column.isna())
        values = _as_text(column)
        values[missing] = spec["fill"]  # not np.where: NumPy text would drop trailing NULs
        index = {c: i for i, c in enumerate(spec["categories"])}
        codes = np.array([index.get(v, -1) for v in values])
        new = np.flatnonzero(codes < 0)
        if len(new):
            where = (
                f"{source}: column {name!r}, row {new[0] + 1}: unseen category {values[new[0]]!r}"
            )
            if unseen != "empty":
                raise DataError(
                    f"{where} (known: {', '.join(spec['categories'][:10])}"
                    + (", ...)" if len(spec["categories"]) > 10 else ")")
                )
            errors.warn(
                f"{where} ({len(new)} row(s) in all): a value the model never saw, to which it "
                "gives no probability",
                errors.DataWarning,
            )
        one_hot = np.zeros((len(values), len(spec["categories"])))
        seen = codes >= 0
        one_hot[np.flatnonzero(seen), codes[seen]] = 1.0
        return one_hot

    def unseen_rows(self, matrix: np.ndarray) -> np.ndarray:
        """Which rows of a :meth:`transform` result (``unseen="empty"``) have an empty one-hot
        block: a category not seen in fit."""
        unseen, at = np.zeros(len(matrix), dtype=bool), 0
        for spec in self.columns:
            width = len(spec["categories"]) if spec["kind"] == "categorical" else 1
            if spec["kind"] == "categorical":
                unseen |= ~np.asarray(matrix[:, at : at + width]).any(axis=1)
            at += width
        return unseen

    def inverse_transform(self, matrix: np.ndarray):
        """A DataFrame in the original columns: numeric values unscaled, each one-hot block
        read as its most probable category.

        Parameters
        ----------
        matrix : array-like of shape (n_rows, n_features)
            Rows in the transformed space.

        Returns
        -------
        pandas.DataFrame
            One column per fitted column.
        """
        import pandas as pd

        self._check_fitted()
        matrix = np.asarray(matrix, dtype=np.float64)
        out, start = {}, 0
        for spec in self.columns:
            width = self._width(spec)
            block = matrix[:, start : start + width]
            if spec.get("constant"):  # the one value training saw (scaled, any value maps to it)
                out[spec["name"]] = np.full(len(block), spec["fill"])
            elif spec["kind"] in NUMBERS:
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
        """Consecutive ``("numeric", n)``, ``("binary", n)`` and ``("categorical", size)``
        blocks of the matrix: what the visible units must be (runs of numeric or binary
        columns merged; one softmax group per categorical column).

        Returns
        -------
        list of (str, int)
        """
        out: list[tuple[str, int]] = []
        for spec in self.columns:
            kind = spec["kind"]
            if kind in NUMBERS and out and out[-1][0] == kind:
                out[-1] = (kind, out[-1][1] + 1)
            else:
                out.append((kind, self._width(spec)))
        return out

    def bounded_positions(self) -> list[int]:
        """The matrix columns that Bernoulli units take, in [0, 1]: every numeric column with
        ``scaling="minmax"``, binary columns with ``"standard"`` (one-hot blocks are 0 or 1
        anyway)."""
        out, start = [], 0
        for spec in self.columns:
            if spec["kind"] == "binary" or (spec["kind"] == "numeric" and self.scaling == "minmax"):
                out.append(start)
            start += self._width(spec)
        return out

    @staticmethod
    def _width(spec: dict) -> int:
        return 1 if spec["kind"] in NUMBERS else len(spec["categories"])

    def _check_fitted(self) -> None:
        if not self.columns:
            raise ValueError("this TablePreprocessor is not fitted yet")

    def to_config(self) -> dict:
        """JSON-serialisable state; :meth:`from_config` rebuilds the fitted preprocessor.

        Returns
        -------
        dict
        """
        return dict(scaling=self.scaling, missing=self.missing, drop_ids=self.drop_ids,
                    non_numeric=self.non_numeric, max_categories=self.max_categories,
                    binary=self.binary, columns=[dict(c) for c in self.columns],
                    dropped=list(getattr(self, "dropped", [])))  # fmt: skip

    @classmethod
    def from_config(cls, config: dict) -> TablePreprocessor:
        """Rebuild from :meth:`to_config`.

        Parameters
        ----------
        config : dict
            What :meth:`to_config` returned (possibly through JSON).

        Returns
        -------
        TablePreprocessor
        """
        pre = cls(
            config["scaling"],
            config["missing"],
            config["drop_ids"],
            config.get("non_numeric", "error"),  # cards written before the option existed
            config.get("max_categories", MAX_CATEGORIES),
            config.get("binary", False),
        )
        pre.columns = [dict(c) for c in config["columns"]]
        pre.dropped = list(config.get("dropped", []))  # the identifier columns --drop-ids left out
        return pre


def _is_numeric(column) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _numeric_values(column, source: str, name: str, non_numeric: str = "error"):
    """``(values, coerced)``: float values of a column fitted as numeric, and where text that
    is not a number was read as a missing value (``non_numeric="missing"``; otherwise such
    text is an error)."""
    values = _parse_numbers(column)
    bad = np.isnan(values) & ~column.isna().to_numpy()
    if bad.any() and non_numeric != "missing":
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{source}: column {name!r}, row {row + 1}: {_show(column.iloc[row])} is not a number "
            f"({_cells(int(bad.sum()))}); correct the file, or train with --non-numeric "
            "missing (non_numeric='missing') to read such cells as missing values"
        )
    return values, bad


#: What spreadsheets add to numbers: currency and percent signs, thousands separators (or a
#: decimal comma), spaces.
_NUMBER_FORMATTING = r"[\s$€£¥%,]"


def _refuse_formatted_numbers(source: str, name: str, column, present: np.ndarray) -> None:
    """DataError for a text column most of whose cells are numbers once a spreadsheet's
    formatting is taken out (``$9.99``, ``12%``, ``6,523.94``): they would silently become
    text categories, one per distinct price, and any new price an unseen category."""
    formatted = column.astype(str).str.replace(_NUMBER_FORMATTING, "", regex=True)
    numbers = _parse_numbers(formatted.mask(~present))
    parsed = present & ~np.isnan(numbers)
    if 2 * int(parsed.sum()) <= int(present.sum()):
        return
    row = int(np.flatnonzero(parsed)[0])
    raise DataError(
        f"{source}: column {name!r}, row {row + 1}: {_show(column.iloc[row])} is a number "
        f"written with formatting (a currency or percent sign, or commas), as {int(parsed.sum())} "
        f"of the column's {int(present.sum())} values are; deepbelief reads plain numbers "
        "(9.99, 6523.94): save the column without the formatting, or keep it as text "
        "categories with --non-numeric text (non_numeric='text')"
    )


def _parse_numbers(column) -> np.ndarray:
    """float64 values of ``column``: NaN where a cell is missing or not a number."""
    import pandas as pd

    try:
        numbers = pd.to_numeric(column, errors="coerce")
        return np.asarray(numbers.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    except (TypeError, ValueError, OverflowError):  # odd Python objects: one by one
        out = np.full(len(column), np.nan)
        for i, value in enumerate(column.to_numpy(dtype=object)):
            try:
                out[i] = float(value)
            except (TypeError, ValueError, OverflowError):
                pass
        return out


#: The advice of a missing value refused by ``missing="error"``.
IMPUTE_ADVICE = "use --missing impute (missing='impute') to fill them"


def _coerced_error(source: str, name: str, column, coerced: np.ndarray) -> DataError:
    row = int(np.flatnonzero(coerced)[0])
    return DataError(
        f"{source}: column {name!r}, row {row + 1}: {_show(column.iloc[row])} is not a number; "
        f"read as a missing value ({_cells(int(coerced.sum()))} in the column), it is refused "
        "by --missing error",
        IMPUTE_ADVICE,
    )


def _cells(n: int) -> str:
    return "1 such cell" if n == 1 else f"{n} such cells"


_DATE = re.compile(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?$")


def _looks_like_dates(text: np.ndarray) -> bool:
    """Whether most of (a sample of) ``text`` are dates written with digits (2024-03-01,
    01/03/2024, 2024-03-01 12:30)."""
    sample = text[:: max(1, len(text) // 200)]
    return sum(bool(_DATE.match(value.strip())) for value in sample) > 0.9 * len(sample)


def _one_value(spec: dict) -> bool:
    """Whether a fitted column held one value in every row."""
    return bool(spec.get("constant")) or len(spec.get("categories", (0, 1))) == 1


def _warn_constant(source: str, names: list[str]) -> None:
    """One warning for the columns that hold one value in every row."""
    if not names:
        return
    shown = ", ".join(map(repr, names[:5])) + (
        f" and {len(names) - 5} more" if len(names) > 5 else ""
    )
    errors.warn(
        f"{source}: {'column' if len(names) == 1 else f'{len(names)} columns'} {shown} "
        f"{'holds' if len(names) == 1 else 'hold'} one value in every row: "
        f"{'it tells' if len(names) == 1 else 'they tell'} the rows apart in nothing; leave "
        f"{'it' if len(names) == 1 else 'them'} out of the file",
        errors.DataWarning,
    )


def _warn_all_distinct(source: str, name: str, n: int) -> None:
    errors.warn(
        f"{source}: column {name!r} holds a different value on each of its {n} rows: as "
        "categories it only names the rows, and a new row's value is unseen (refused at predict "
        "time); leave it out with --drop-ids (drop_ids=True)",
        errors.DataWarning,
    )


def _too_many_categories(source: str, name: str, n_values: int, n_rows: int, limit: int) -> str:
    size = n_values * n_rows * 4
    return (
        f"{source}: column {name!r} has {n_values} distinct values in {n_rows} rows; one-hot "
        f"encoding would make it {n_values} columns wide ({n_rows} x {n_values} x 4 bytes = "
        f"{_bytes(size)}), over the limit of {limit} categories; drop the column from the file "
        "(or use --drop-ids if it identifies the rows), or raise max_categories"
    )


def _bytes(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def _as_text(column) -> np.ndarray:
    """The values of ``column`` as Python strings in an object array, the same way in fit and
    transform (a NumPy text array would drop trailing NUL characters)."""
    return np.array([str(v) for v in column.to_numpy(dtype=object)], dtype=object)


#: Column names that say a column identifies the rows: ``id``, ``key``, ``user_id``,
#: ``customer id``, ``userId``, ``row``...
_ID_NAME = re.compile(r"(?i:^(id|key|index|row|uuid|guid)$|[ _.-](id|key|uuid|guid)$)|[a-z]I[dD]$")


def _looks_like_ids(column) -> bool:
    """Whether ``column`` identifies the rows (``drop_ids=True`` drops it): every value
    distinct and present, and text, or integers named as an identifier or numbering the rows
    (no wider than twice the row count). Distinct integers spread wider (salaries in whole
    units, timestamps) are measurements: they were dropped as identifiers."""
    import pandas as pd

    if len(column) < 2 or column.isna().any() or not column.is_unique:
        return False
    types = pd.api.types
    if types.is_object_dtype(column) or types.is_string_dtype(column):  # pandas 3: "str"
        return True
    if not types.is_integer_dtype(column):
        return False
    if _ID_NAME.search(str(column.name)):
        return True
    span = int(column.max()) - int(column.min()) + 1
    return span <= 2 * len(column)


def _missing_error(source: str, name: str, missing) -> DataError:
    row = int(np.flatnonzero(missing.to_numpy())[0])
    return DataError(
        f"{source}: column {name!r}, row {row + 1}: missing value ({int(missing.sum())} in the "
        "column)",
        IMPUTE_ADVICE,
    )


def _natural_key(text: str):
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


#: CSV files larger than this (bytes on disk) are read in chunks of about a quarter of it, each
#: converted to compact dtypes (float32, the smallest integer type) before the next is read.
CSV_CHUNK_BYTES = 64 * 2**20
_COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zip", ".zst", ".tar")


def read_table(
    path: str | Path,
    target: str | int | None = None,
    no_target: bool = False,
    header: bool = True,
    sep: str | None = None,
):
    """Read a CSV file into (features DataFrame, target Series or None).

    Feature columns are stored compactly: floating-point columns as float32 (float64 where a
    value lies beyond float32's range), integer columns in the smallest integer type that holds
    them; the target column keeps the types pandas gives it. Files larger than
    :data:`CSV_CHUNK_BYTES` are read in chunks, so the peak memory is about twice the compact
    result rather than several times the file (every token, then float64 columns); the result
    is the same as reading them in one go.

    Parameters
    ----------
    path : str or Path
        The CSV file (UTF-8, with or without a byte-order mark; compressed files such as
        ``.csv.gz`` are read too).
    target : str, int or None
        The target column by name or position (negative counts from the end); default: the
        last column.
    no_target : bool
        Every column is a feature (unsupervised use).
    header : bool
        The first line names the columns (else they are named "0", "1", ...).
    sep : str or None
        The field separator; default: a tab for ``.tsv`` files, else a comma.

    Returns
    -------
    features : pandas.DataFrame
        The feature columns, with string column names.
    target : pandas.Series or None
        The target column (None with ``no_target``).

    Raises
    ------
    DataError
        Missing or empty files, a line with more fields than the first (naming the line), rows
        longer than the header, a quoted field never closed (naming its line), bytes that are
        not UTF-8 or NUL bytes (binary or UTF-16 files; naming the line), a header without
        rows, an unknown target column.
    """
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a CSV file")
    if not path.exists():
        raise DataError(f"{path}: no such file")
    _refuse_binary(path)
    decimal = "."
    if sep is None:
        sep, decimal = csv_dialect(path)
    options = dict(
        sep=sep,
        decimal=decimal,
        header=0 if header else None,
        skipinitialspace=True,
        encoding="utf-8-sig",
        low_memory=False,
        index_col=False,  # never take the first column as the index when rows are longer
    )
    error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if path.stat().st_size > CSV_CHUNK_BYTES:
                frame, name = _read_csv_chunked(path, options, target, no_target)
            else:
                frame, name = _read_csv_whole(path, options, target, no_target)
        except DataError as exc:  # raised after the whole file parsed, as in one read
            error = exc
        except (ValueError, OSError, OverflowError, EOFError, zlib.error) as exc:
            # pandas' ParserError, EmptyDataError and UnicodeDecodeError are ValueErrors
            raise _csv_error(path, exc) from exc
    lost = False
    for warning in caught:
        if issubclass(warning.category, pd.errors.ParserWarning) and "loss of data" in str(
            warning.message
        ):
            lost = True  # rows longer than the header: pandas would drop the extra fields
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    if lost:
        raise DataError(
            f"{path}: malformed CSV: the data rows have more fields than the header names"
        )
    if error is not None:
        raise error
    if len(frame) and frame.iloc[:, -1].isna().any():  # a short row ends with missing cells
        _refuse_short_rows(path, sep)
    if header and not np.isnan(_parse_numbers(pd.Series(list(frame.columns)))).any():
        errors.warn(
            f"{path}: every name in its first line is a number ({', '.join(frame.columns[:3])}"
            f"{', ...' if frame.shape[1] > 3 else ''}): if that line is data, not a header, "
            "give --no-header (it is read as the columns' names, and its row is lost)",
            errors.DataWarning,
        )
    if name is None:
        return frame, None
    if frame.shape[1] < 2:
        raise DataError(f"{path}: only the target column {name!r}; no feature columns")
    return frame.drop(columns=name), frame[name]


#: Compressed files opened here through the standard library; pandas alone opens archives.
_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
_ARCHIVES = (".zip", ".zst", ".tar")


def _opener(path: Path):
    """What opens ``path`` decompressed (``open`` for a plain file), or None for an archive."""
    suffix = path.suffix.lower()
    return None if suffix in _ARCHIVES else _OPENERS.get(suffix, open)


#: Field separators recognised in a CSV's first line when it has no comma.
_SEPARATORS = (";", "\t", "|")
_DECIMAL_COMMA = re.compile(r"^\s*[-+]?\d+,\d+\s*$")
_DECIMAL_POINT = re.compile(r"^\s*[-+]?\d*\.\d+\s*$")


def csv_dialect(path: Path) -> tuple[str, str]:
    """``(separator, decimal mark)`` of a CSV file: a tab for ``.tsv``; else a comma, unless
    the first line has none but semicolons, tabs or bars (a spreadsheet's export in a
    language that writes decimal commas: ``1,5;2,25``); the decimal mark is then a comma
    when sampled fields are numbers with a comma (``2,25``) and none with a point."""
    opener = _opener(path)
    if _plain_suffix(path) == ".tsv":
        return "\t", "."
    if opener is None:
        return ",", "."
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="", errors="replace") as f:
            lines = [line for line in itertools.islice(f, 200) if line.strip()]
    except (OSError, EOFError, zlib.error, ValueError):
        return ",", "."  # the reader reports it
    if not lines or "," in lines[0]:
        return ",", "."
    counts = {sep: lines[0].count(sep) for sep in _SEPARATORS}
    sep = max(counts, key=counts.get)
    if counts[sep] == 0:
        return ",", "."
    fields = [cell for line in lines[1:] for cell in line.rstrip("\r\n").split(sep)]
    comma = any(_DECIMAL_COMMA.match(cell) for cell in fields)
    point = any(_DECIMAL_POINT.match(cell) for cell in fields)
    return sep, "," if comma and not point else "."


def _refuse_short_rows(path: Path, sep: str) -> None:
    """DataError naming the first line with fewer fields than the first line (pandas fills
    them with missing values, and a missing middle field would shift the values after it
    into the wrong columns); a line of only empty fields (``,,,``) has its fields. Read only
    when some row's last cell is missing (a short row's is), in one pass of :mod:`csv`."""
    opener = _opener(path)
    if opener is None:
        return  # not checked: pandas alone opens archives
    with opener(path, "rt", encoding="utf-8-sig", newline="") as f:
        expected = None
        reader = csv.reader(f, delimiter=sep)
        for fields in reader:
            if not fields:
                continue  # a blank line, which pandas skips
            if expected is None:
                expected = len(fields)
            elif len(fields) < expected:
                raise DataError(
                    f"{path}: malformed CSV: line {reader.line_num} has {len(fields)} "
                    f"field{'s' * (len(fields) != 1)}, expected {expected} (leave a missing value "
                    f"empty between its separators, e.g. 0.5{sep}{sep}0.7)"
                )


def _refuse_binary(path: Path) -> None:
    """A NUL byte near the start: a binary or UTF-16 file, which pandas would read as garbage."""
    opener = _opener(path)
    if opener is None:
        return  # pandas alone opens archives
    try:
        with opener(path, "rb") as f:
            sample = f.read(2**16)
    except (OSError, EOFError, zlib.error, ValueError):  # (lzma, bz2: ValueError, OSError)
        return  # the CSV reader reports it
    at = sample.find(b"\x00")
    if at >= 0:
        raise DataError(
            f"{path}: line {1 + _count_lines(sample[:at])}: a NUL byte; this is a binary or "
            "UTF-16 file, not UTF-8 CSV text"
        )


def _plain_suffix(path: Path) -> str:
    """The suffix of ``path`` after removing a compression suffix, lower case."""
    name = path.name.lower()
    for suffix in _COMPRESSED_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return Path(name).suffix


def _read_csv_whole(path: Path, options: dict, target, no_target: bool):
    import pandas as pd

    frame = _tidy(pd.read_csv(path, **options), path)
    if len(frame) == 0:
        raise DataError(f"{path}: a header but no data rows")
    frame = _without_an_empty_last_column(frame, path)
    name = None if no_target else _target_name(frame, target, path)
    return _compact(frame, keep={name}, wide=set()), name


def _without_an_empty_last_column(frame, path: Path):
    """``frame`` less its last column when that has no name in the header and no value (a
    spreadsheet's export with a comma at the end of every line), with a warning."""
    last = frame.columns[-1]
    if frame.shape[1] < 2 or not last.startswith("Unnamed: ") or frame[last].notna().any():
        return frame
    errors.warn(
        f"{path}: its last column has no name and no values (every line ends with a comma); "
        "it is left out",
        errors.DataWarning,
    )
    return frame.drop(columns=last)


def _read_csv_chunked(path: Path, options: dict, target, no_target: bool):
    """Read ``path`` chunk by chunk, compacting each chunk, with the result of one read.

    A column whose chunks disagree in kind (numbers in one, text in another) is text in a
    one-shot read: such columns are read again as text. A float column with a value beyond
    float32's range stays float64: when earlier chunks were already rounded, it is read again.
    """
    import pandas as pd

    rows = _chunk_rows(path)

    def run(opts, text: set, wide: set, names=None):
        chunks, kinds, text_dtypes, rounded, name, deferred = [], {}, {}, set(), None, None
        with pd.read_csv(path, chunksize=rows, **opts) as reader:
            for chunk in reader:
                if deferred is not None:
                    continue  # parse to the end: a malformed line later wins, as in one read
                if names is not None:
                    chunk.columns = names  # the real names, after placeholder ones
                try:
                    chunk = _tidy(chunk, path, text)
                    if not chunks:
                        if len(chunk) == 0:
                            raise DataError(f"{path}: a header but no data rows")
                        name = None if no_target else _target_name(chunk, target, path)
                except DataError as exc:
                    deferred, chunks = exc, []
                    continue
                for column in chunk.columns:
                    kind = _kind(chunk[column])
                    kinds.setdefault(column, set()).add(kind)
                    if kind == "text":
                        text_dtypes.setdefault(column, chunk[column].dtype)
                chunk = _compact(chunk, keep={name} | text, wide=wide)
                rounded |= {c for c in chunk.columns if chunk[c].dtype == np.float32}
                chunks.append(chunk)
        if deferred is not None:
            raise deferred
        return chunks, kinds, text_dtypes, rounded, name

    wide: set = set()
    chunks, kinds, text_dtypes, rounded, name = run(options, set(), wide)
    if not chunks:
        return _read_csv_whole(path, options, target, no_target)
    mixed = {c for c, k in kinds.items() if len(k - {"empty"}) > 1}
    if mixed or (wide & rounded):
        # placeholder names: pandas applies a dtype given for "a" to a column named "a.1" too
        columns = list(chunks[0].columns)
        places = {c: f"c{i}" for i, c in enumerate(columns)}
        again = dict(options, names=list(places.values()), dtype={places[c]: str for c in mixed})
        chunks, kinds, text_dtypes, _, name = run(again, mixed, wide, names=columns)
    frame = pd.concat(chunks, ignore_index=True)
    del chunks
    if len(frame) == 0:
        raise DataError(f"{path}: a header but no data rows")
    casts = {}
    for column in frame.columns:
        seen = kinds[column] - {"empty"}
        dtype = frame[column].dtype
        if seen <= {"number"} and dtype == np.float64 and column not in wide | {name}:
            casts[column] = np.float32  # an int64 chunk met a float32 one
        elif seen == {"text"} and dtype != text_dtypes[column]:
            casts[column] = text_dtypes[column]  # an all-empty chunk made it object
        elif seen == {"bool"} and dtype.kind != "O" and frame[column].isna().any():
            # all-empty chunks made it float; one read gives True, False and NaN objects
            missing = frame[column].isna()
            flags = frame[column].fillna(0).astype(bool).astype(object)
            casts[column] = flags.mask(missing, np.nan)
    for column, values in list(casts.items()):
        if isinstance(values, pd.Series):
            frame[column] = values
            del casts[column]
    return (frame.astype(casts) if casts else frame), name


def _chunk_rows(path: Path) -> int:
    """Rows per chunk: about a quarter of :data:`CSV_CHUNK_BYTES` of text."""
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as f:
            sample = f.read(min(2**20, max(CSV_CHUNK_BYTES, 1)))
        lines = max(sample.count(b"\n"), sample.count(b"\r"), 1)
        per_line = max(len(sample) / lines, 1.0)
    except (OSError, EOFError, zlib.error):
        per_line = 100.0  # the read itself reports the problem
    return max(1, int(CSV_CHUNK_BYTES / 4 / per_line))


#: What pandas reads as a missing value by default (its documented na_values).
_NA_TEXT = (
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
)  # fmt: skip


def _tidy(frame, path: Path, text: set = frozenset()):
    """String column names without surrounding spaces (``" y "`` is ``y``, as ``--target y``
    names it); numbers that pandas left as text or Python objects (integers beyond 64 bits,
    alone or among decimals) as float64, so that every chunk of a file and the whole file
    agree on what a column holds. Columns in ``text`` stay text."""
    import pandas as pd

    names = [str(c).strip() for c in frame.columns]
    if len(set(names)) < len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise DataError(f"{path}: two columns are named {twice!r} (spaces around names aside)")
    frame.columns = names
    for column in frame.columns:
        values = frame[column]
        if values.dtype != object and not pd.api.types.is_string_dtype(values):
            continue
        if pd.api.types.infer_dtype(values, skipna=True) in ("string", "mixed"):
            stripped = values.str.rstrip()  # "red " is "red" (skipinitialspace: " red" is)
            values = stripped.where(stripped.notna(), values)  # (not text: as it was)
        missing = values.isin(_NA_TEXT)  # pandas keeps "", "NaN", ... as text next to integers
        frame[column] = values = values.mask(missing)  # beyond 64 bits
        if column in text:
            continue
        present = values.dropna()
        if len(present) == 0 or isinstance(present.iloc[0], (bool, np.bool_)):
            continue
        try:
            frame[column] = pd.to_numeric(values, errors="raise").astype(np.float64)
        except (ValueError, TypeError, OverflowError):  # text after all, or beyond float64
            continue
    return frame


def _kind(column) -> str:
    """What pandas made of a column: "empty", "number", "bool" or "text"."""
    import pandas as pd

    types = pd.api.types
    present = column.dropna()
    if len(present) == 0:
        return "empty"
    if types.is_bool_dtype(column):
        return "bool"
    if types.is_numeric_dtype(column):
        return "number"
    if types.is_object_dtype(column) and all(isinstance(v, (bool, np.bool_)) for v in present):
        return "bool"
    return "text"


def _compact(frame, keep: set, wide: set):
    """Float columns as float32 (unless a value needs float64: then the column joins ``wide``),
    integer columns in their smallest signed type; columns in ``keep`` or ``wide`` untouched."""
    casts = {}
    for column in frame.columns:
        if column in keep or column in wide:
            continue
        dtype = frame[column].dtype
        if not isinstance(dtype, np.dtype) or len(frame) == 0:
            continue
        if dtype.kind == "f" and dtype.itemsize > 4:
            if _fits_float32(frame[column].to_numpy()):
                casts[column] = np.float32
            else:
                wide.add(column)
        elif dtype.kind in "iu" and dtype.itemsize > 1:
            low, high = int(frame[column].min()), int(frame[column].max())
            for small in (np.int8, np.int16, np.int32, np.int64):
                info = np.iinfo(small)
                if info.min <= low and high <= info.max:
                    if np.dtype(small).itemsize < dtype.itemsize or dtype.kind == "u":
                        casts[column] = small
                    break
            else:  # unsigned beyond int64: as a chunk of it would mix with signed ones
                casts[column] = np.float32
    return frame.astype(casts) if casts else frame


def _fits_float32(values: np.ndarray) -> bool:
    magnitude = np.abs(values[np.isfinite(values) & (values != 0)])
    return magnitude.size == 0 or (magnitude.max() <= _F32.max and magnitude.min() >= _F32.tiny)


_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_OPEN_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")


def _csv_error(path: Path, exc: Exception) -> DataError:
    """A DataError naming the file (and the line, when known) for an exception of the CSV
    reader."""
    import pandas as pd

    if isinstance(exc, pd.errors.EmptyDataError):
        return DataError(f"{path}: the file is empty")
    if isinstance(exc, UnicodeDecodeError):
        where = _first_non_utf8(path)
        if where is not None:
            line, bad = where
            return DataError(
                f"{path}: line {line}: bytes {bad!r} are not UTF-8 text; save the file as UTF-8"
            )
        return DataError(f"{path}: not UTF-8 text ({exc.reason}); save the file as UTF-8")
    text = " ".join(str(exc).split())
    match = _FIELDS.search(text)
    if match:
        expected, line, saw = match.groups()
        return DataError(
            f"{path}: malformed CSV: line {line} has {saw} fields, expected {expected}"
        )
    match = _OPEN_QUOTE.search(text)
    if match:  # pandas counts these rows from 0
        return DataError(
            f"{path}: malformed CSV: the quoted field that starts on line "
            f"{int(match.group(1)) + 1} is never closed"
        )
    if isinstance(exc, pd.errors.ParserError):
        return DataError(f"{path}: malformed CSV ({text})")
    if isinstance(exc, OSError):
        return DataError(f"{path}: cannot read the file ({exc.strerror or text})")
    return DataError(f"{path}: cannot read as a CSV table ({type(exc).__name__}: {text})")


def _first_non_utf8(path: Path) -> tuple[int, bytes] | None:
    """Line number and bytes of the first invalid UTF-8 sequence of an uncompressed file."""
    if _plain_suffix(path) != path.suffix.lower():
        return None  # compressed: positions in the file mean nothing to the user
    line, carry = 1, b""
    try:
        with open(path, "rb") as f:
            while True:
                block = f.read(2**20)
                data = carry + block
                try:
                    codecs.decode(data, "utf-8")
                    carry = b""
                except UnicodeDecodeError as exc:
                    if block and exc.reason == "unexpected end of data":
                        carry = data[exc.start :]  # a character cut by the block boundary
                        line += _count_lines(data[: exc.start])
                        continue
                    return line + _count_lines(data[: exc.start]), data[exc.start : exc.end]
                if not block:
                    return None
                line += _count_lines(data)
    except OSError:
        return None


def _count_lines(data: bytes) -> int:
    """Line breaks in ``data`` as the CSV reader counts them: \\n, \\r\\n or a lone \\r."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def _target_name(frame, target, path) -> str:
    columns = list(frame.columns)
    if target is None:
        return columns[-1]
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        target = int(target)
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


def prepare_target(target, task: str = "auto", source: str = "data", non_numeric: str = "error"):
    """Check a target column and pick the task.

    ``task="auto"``: classification for text labels or at most ``MAX_CLASSES_AUTO`` distinct
    integer values, else regression. A text target in which most values are numbers but a few
    are not (see :class:`TablePreprocessor`) is refused, naming the row and the value, unless
    ``non_numeric="text"`` takes every value as a text label (a target value is never read
    as missing).

    Parameters
    ----------
    target : pandas.Series
        The target column.
    task : {"auto", "classification", "regression"}
        The task, or "auto" to decide from the values.
    source : str
        Where the data came from, for error messages.
    non_numeric : {"error", "missing", "text"}
        ``"text"`` accepts a mostly numeric target with a few non-numeric values as text
        labels; the others refuse it.

    Returns
    -------
    (values, task) : ndarray and "classification" or "regression"
        Labels as they are (classification) or float64 values (regression).

    Raises
    ------
    DataError
        A missing target value (naming the row, counted from 1), text or a non-finite number in
        a regression target, a single class, a few non-numeric values among numbers.
    """
    import pandas as pd

    if task not in ("auto", "classification", "regression"):
        raise ValueError(f"task must be auto, classification or regression, got {task!r}")
    if non_numeric not in NON_NUMERIC:
        raise ValueError(f"non_numeric must be 'error', 'missing' or 'text', got {non_numeric!r}")
    name = f"target column {target.name!r}" if target.name is not None else "the target"
    missing = target.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise DataError(
            f"{source}: {name} has a missing value at row {row + 1} ({int(missing.sum())} in all); "
            "training needs the target of every row: remove those rows, or name the target "
            "with --target (--no-target: no target, an unsupervised model)"
        )
    if non_numeric != "text" and task != "regression" and _kind(target) == "text":
        stray = np.isnan(_parse_numbers(target))
        if stray.any() and 2 * int(stray.sum()) < len(target):
            row = int(np.flatnonzero(stray)[0])
            raise DataError(
                f"{source}: {name}, row {row + 1}: {_show(target.iloc[row])} is not a number, but "
                f"{len(target) - int(stray.sum())} of its {len(target)} values are; correct the "
                "file, or take every value as a text label with --non-numeric text"
            )
    numeric = _is_numeric(target)
    if task == "auto":
        with np.errstate(invalid="ignore"):
            integral = numeric and np.all(np.mod(target.to_numpy(dtype=np.float64), 1) == 0)
        few = target.nunique() <= MAX_CLASSES_AUTO
        task = "classification" if not numeric or (integral and few) else "regression"
    if task == "regression":
        values = pd.to_numeric(target, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{source}: {name}, row {row + 1}: {_show(target.iloc[row])} is not a finite number"
            )
        return values, task
    values = target.to_numpy()
    if target.nunique() < 2:
        raise DataError(
            f"{source}: {name} has a single class ({_show(values[0])}); classification needs two"
        )
    return values, task


def label_codes(values, classes, source: str = "data") -> np.ndarray:
    """The index in ``classes`` of each of ``values``, matching labels by value.

    When every class is a number (the training labels were numeric), labels compare as
    numbers: ``2``, ``2.0``, ``np.int64(2)`` and the text ``"2"`` are the same label. Otherwise
    labels compare as text, exactly (``"a"`` and ``"A"`` differ).

    Parameters
    ----------
    values : array-like
        The labels to look up (for example an evaluation file's target column).
    classes : array-like
        The labels a model was trained on (its ``classes_``).
    source : str
        Where ``values`` came from, for error messages.

    Returns
    -------
    ndarray of int
        One index per value.

    Raises
    ------
    DataError
        A value that is none of the classes (the first few are named).
    """
    classes = np.asarray(classes)
    numeric = classes.dtype.kind in "iuf" or (
        classes.dtype.kind == "O"
        and all(
            isinstance(c, (int, float, np.integer, np.floating))
            and not isinstance(c, (bool, np.bool_))
            for c in classes
        )
    )
    key = _number_key if numeric else str
    index = {key(c): i for i, c in enumerate(classes.tolist())}
    codes, unknown = [], {}
    for row, value in enumerate(np.asarray(values, dtype=object).ravel()):
        if isinstance(value, np.generic):
            value = value.item()
        code = index.get(key(value), -1)
        if code < 0:
            unknown.setdefault(str(value), row)
        codes.append(code)
    if unknown:
        shown = sorted(unknown)
        first = min(unknown, key=unknown.get)
        raise DataError(
            f"{source}: row {unknown[first] + 1}: target {first!r} is none of the model's "
            f"classes; target values the model never saw: {', '.join(shown[:5])}"
            + (f" (and {len(shown) - 5} more)" if len(shown) > 5 else "")
            + f"; its classes are {', '.join(str(c) for c in classes.tolist()[:10])}"
            + (", ..." if len(classes) > 10 else "")
        )
    return np.asarray(codes, dtype=np.int64)


def _number_key(value):
    """A label as a Python number (``2``, ``2.0`` and ``"2"`` give equal keys: Python's ints
    and floats of equal value are equal dictionary keys); text that is no number stays text."""
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return value.item() if isinstance(value, np.generic) else value
    text = str(value).strip()
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return str(value)


# ---------------------------------------------------------------------- arrays and images
#: .npy files larger than this are memory-mapped rather than read into memory.
MMAP_BYTES = 64 * 2**20
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def read_array(path: str | Path, key: str | None = None):
    """Read ``.npy`` or ``.npz`` data as ``(X, y or None)``; never unpickles.

    A ``.npy`` file is ``X`` (memory-mapped when larger than :data:`MMAP_BYTES`). An ``.npz``
    archive gives ``X`` from ``key``, else from its ``"X"`` entry (with ``"y"`` as the target
    when present), else from its only entry. The format is recognised from the file's first
    bytes. One-dimensional ``X`` becomes a column; more dimensions are flattened per row.

    Parameters
    ----------
    path : str or Path
        The ``.npy`` or ``.npz`` file.
    key : str or None
        The ``.npz`` entry to read as ``X``.

    Returns
    -------
    X : ndarray of shape (n, d)
    y : ndarray of shape (n,) or None

    Raises
    ------
    DataError
        Missing, truncated or corrupt files (a header that does not match the data), pickled
        object arrays, unknown keys, non-numeric arrays, ``X`` and ``y`` of different lengths.
    """
    path = Path(path)
    X, y = _read_numpy(path, key)
    if X.ndim == 1:
        X = X[:, None]
    elif X.ndim > 2:
        X = X.reshape(len(X), -1)  # images: one flattened row each
    return X, y


def _read_numpy(path: Path, key: str | None = None):
    """``(X, y)`` of a .npy/.npz file with ``X`` in its stored shape (at least 1-D)."""
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a NumPy file")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with open(path, "rb") as f:
            magic = f.read(len(_NPY_MAGIC))
        with warnings.catch_warnings():  # numpy warns about odd (e.g. corrupt) headers
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", SyntaxWarning)
            if magic.startswith(_ZIP_MAGIC):
                X, y = _read_npz(path, key)
            elif magic == _NPY_MAGIC:
                X, y = _read_npy(path), None
            else:
                X = y = None
        if X is None:
            raise DataError(
                f"{path}: cannot read as NumPy data: not a .npy or .npz file (its first bytes "
                f"are {magic!r})"
            )
    except DataError:
        raise
    except Exception as exc:  # numpy, zipfile and zlib raise many kinds on corrupt files
        raise DataError(f"{path}: cannot read as NumPy data ({type(exc).__name__}: {exc})") from exc
    if X.dtype.kind not in "biuf":
        raise DataError(f"{path}: the array has dtype {X.dtype}; numbers are needed")
    if X.ndim == 0:
        raise DataError(f"{path}: holds a single number, not rows of data")
    if y is not None:
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise DataError(f"{path}: y must hold one value per row; it has shape {y.shape}")
        if len(y) != len(X):
            raise DataError(f"{path}: X has {len(X)} rows but y has {len(y)}")
    return X, y


def _npy_header(f, where: str):
    """Shape, dtype and data offset of the .npy stream ``f``; refuses pickled objects."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(f)
        else:
            shape, _, dtype = fmt._read_array_header(f, version)
    except Exception as exc:
        raise DataError(
            f"{where}: cannot read as NumPy data: corrupt or unreadable .npy header "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    if dtype.hasobject:
        raise DataError(
            f"{where}: cannot read as NumPy data: it holds pickled Python objects, which "
            "deepbelief never loads"
        )
    if any(n < 0 for n in shape):
        raise DataError(f"{where}: cannot read as NumPy data: corrupt header (shape {shape})")
    return shape, dtype, f.tell()


def _check_size(where: str, shape, dtype, offset: int, size: int) -> None:
    needed = math.prod(shape) * dtype.itemsize
    if size - offset != needed:
        raise DataError(
            f"{where}: cannot read as NumPy data: the header describes a {dtype} array of shape "
            f"{tuple(shape)} ({needed} bytes) but {size - offset} bytes follow it (truncated "
            "or corrupt file)"
        )


def _read_npy(path: Path) -> np.ndarray:
    size = path.stat().st_size
    with open(path, "rb") as f:
        shape, dtype, offset = _npy_header(f, str(path))
    _check_size(str(path), shape, dtype, offset, size)
    return np.load(path, mmap_mode="r" if size > MMAP_BYTES else None, allow_pickle=False)


def _read_npz(path: Path, key: str | None):
    with np.load(path, allow_pickle=False) as archive:
        names = list(archive.files)

        def entry(name):
            member = f"{name}.npy" if f"{name}.npy" in archive.zip.namelist() else name
            where = f"{path}[{name!r}]"
            with archive.zip.open(member) as f:
                shape, dtype, offset = _npy_header(f, where)
            _check_size(where, shape, dtype, offset, archive.zip.getinfo(member).file_size)
            return archive[name]

        if key is not None:
            if key not in names:
                raise DataError(f"{path}: no array named {key!r}; the archive has {names}")
            return entry(key), None
        if "X" in names:
            return entry("X"), (entry("y") if "y" in names else None)
        if len(names) == 1:
            return entry(names[0]), None
        if not names:
            raise DataError(f"{path}: the archive holds no arrays")
    raise DataError(f"{path}: several arrays ({names}) and none named 'X'; choose one by key")


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".pgm")


def read_image_folder(folder: str | Path, size: tuple[int, int] | None = None):
    """Read a folder of images as grey levels in [0, 1]: one subfolder per class, or the
    images directly in the folder (unlabelled, for example new images to predict).

    Parameters
    ----------
    folder : str or Path
        The folder; each subfolder's name is the label of the images in it (and in its own
        subfolders). Images directly in the folder have no label (a folder may hold images or
        class subfolders, not both).
    size : (int, int) or None
        Resize every image to (height, width); by default every image must have the size of
        the first one.

    Returns
    -------
    X : ndarray of shape (n, height * width)
        One flattened image per row (float32), sorted by subfolder, then file name
        (:func:`image_files`).
    labels : ndarray of shape (n,) or None
        The subfolder name of each image; None for images directly in the folder.
    shape : (int, int)
        The (height, width) of the images.

    Raises
    ------
    DataError
        A missing folder, no images, images both directly in the folder and in subfolders,
        an unreadable image or one of a different size (named).
    """
    X, labels, shape, _ = _read_images(folder, size)
    return X, labels, shape


def image_files(folder: str | Path) -> list[tuple[str | None, Path]]:
    """The images of an image folder in the order :func:`read_image_folder` reads them:
    ``(label, path)`` pairs sorted by label, then path, in natural order (``img2.png`` before
    ``img10.png``, as shard files are), the label being the name of the class
    subfolder that holds the image (at any depth below it), or None for images directly in
    ``folder``. Hidden files and folders
    (``.ipynb_checkpoints``, macOS's ``._x.png``), other files and non-files are skipped.
    DataError for a missing folder, no images, or images both in the folder and in
    subfolders."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")

    try:
        loose = _images_in(folder)
        classes = [
            (sub.name, f)
            for sub in folder.iterdir()
            if sub.is_dir() and not sub.name.startswith(".")
            for f in _images_in(sub, nested=True)
        ]
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the folder ({exc})") from exc
    if loose and classes:
        raise DataError(
            f"{folder}: holds images both directly ({loose[0].name}, ...) and in class "
            f"subfolders ({classes[0][0]}/, ...); put every image in its class's subfolder, "
            "or all of them directly in the folder (unlabelled)"
        )
    if not loose and not classes:
        raise DataError(
            f"{folder}: no images, neither in it nor in class subfolders "
            f"({', '.join(IMAGE_SUFFIXES)})"
        )
    from .streams import natural_key

    if loose:
        return [(None, f) for f in sorted(loose, key=lambda f: natural_key(str(f)))]
    return sorted(classes, key=lambda c: (natural_key(c[0]), natural_key(str(c[1]))))


def _images_in(where: Path, nested: bool = False) -> list[Path]:
    """The image files in ``where`` (and, ``nested``, in its subfolders at any depth, each
    folder once however links reach it), hidden ones and their folders left out."""

    def images(folder: Path) -> list[Path]:
        return [
            f
            for f in folder.iterdir()
            if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".") and f.is_file()
        ]

    if not nested:
        return images(where)
    found, seen, pending = [], set(), [where]
    while pending:
        folder = pending.pop()
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree
            continue
        seen.add(real)
        found += images(folder)
        pending += [d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")]
    return found


def _read_images(folder, size):
    """:func:`read_image_folder`, and each image's path relative to the folder (POSIX)."""
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow comes with matplotlib
        raise ImportError("image folders need Pillow: pip install pillow") from exc
    folder = Path(folder)
    if size is not None:
        size = _image_size(size, folder)
    files = image_files(folder)
    rows, shape = [], size
    for _, path in files:
        try:
            with Image.open(path) as image:
                pixels = _grey_levels(image, size, path)
        except DataError:
            raise
        except Exception as exc:  # Pillow's decoders raise many kinds on corrupt files
            raise DataError(f"{path}: unreadable image ({type(exc).__name__}: {exc})") from exc
        if shape is None:
            shape = pixels.shape
        elif pixels.shape != shape:
            raise DataError(
                f"{path}: image is {pixels.shape[0]}x{pixels.shape[1]} but the others are "
                f"{shape[0]}x{shape[1]}; pass a size to resize them (--image-size HxW)"
            )
        rows.append(pixels.reshape(-1))
    labels = None if files[0][0] is None else np.asarray([label for label, _ in files])
    names = [path.relative_to(folder).as_posix() for _, path in files]
    return np.stack(rows), labels, tuple(shape), names


def _grey_levels(image, size, path) -> np.ndarray:
    """An image's grey levels in [0, 1] as float32, resized to ``size`` (height, width) when
    given: 8-bit images over 255, 16-bit ones over 65535, float ones as they are (refused
    outside [0, 1]); an image with transparency is refused (it used to be dropped, and
    ink drawn on a transparent background read as blank)."""
    from PIL import Image

    if "A" in image.getbands() or "transparency" in image.info:
        alpha = np.asarray(image.convert("RGBA").getchannel("A"))
        if alpha.min() < 255:
            raise DataError(
                f"{path}: the image is transparent in places; flatten it onto a background "
                "first (its grey levels alone would lose what the transparency draws)"
            )
    if image.mode.startswith("I") or image.mode == "F":  # 16- and 32-bit integers, floats
        grey = np.asarray(image, dtype=np.float32)
        if image.mode != "F":
            grey = grey / 65535.0
        elif grey.size and not (0 <= grey.min() and grey.max() <= 1):
            raise DataError(
                f"{path}: a float image with values in [{grey.min():g}, {grey.max():g}]; "
                "scale it to [0, 1]"
            )
        if size is not None:
            grey = np.asarray(Image.fromarray(grey, mode="F").resize((size[1], size[0])))
        return np.clip(grey, 0.0, 1.0).astype(np.float32)
    grey = image.convert("L")
    if size is not None:
        grey = grey.resize((size[1], size[0]))
    return np.asarray(grey, dtype=np.float32) / 255.0


def _image_size(size, where) -> tuple[int, int]:
    try:
        height, width = (int(s) for s in size)
    except (TypeError, ValueError):
        height = width = 0
    if height < 1 or width < 1:
        raise DataError(f"{where}: image size must be two positive integers, got {size!r}")
    return height, width


# ---------------------------------------------------------------------- any file
@dataclass
class Dataset:
    """Data read by :func:`load_dataset`.

    Attributes
    ----------
    features : pandas.DataFrame or ndarray
        A DataFrame of the feature columns for tables; otherwise a float array with one
        (flattened) sample per row.
    target : pandas.Series, ndarray or None
        The target column of a table, the labels of images or arrays, or None.
    kind : {"table", "array", "images"}
        What the rows are.
    image_shape : (int, int) or None
        (height, width) when the rows are images.
    source : str
        The path the data came from.
    row_names : list of str or None
        What each row is, where the data says: an image folder's file paths, relative to
        the folder (``"cats/a.png"``); None otherwise.
    row_shape : tuple of int or None
        The shape of one row as the array file held it, before it was flattened (``(28,
        28)``, ``(1, 28, 28)``, ``(28, 28, 1)``); None for tables, folders and flat rows.
    """

    features: Any
    target: Any
    kind: str
    image_shape: tuple[int, int] | None
    source: str
    row_names: list[str] | None = None
    row_shape: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self.features)


_TABLE_SUFFIXES = (".csv", ".tsv", ".txt")
_IDX_NAME = re.compile(r"(\.idx\d?|-ubyte)$")
SUPPORTED = (
    "CSV tables (.csv, .tsv, .txt, also .gz, .bz2, .xz or .zip), NumPy arrays (.npy, .npz), "
    "IDX files "
    "(.idx, *-ubyte, also .gz) and folders of images (one subfolder per class)"
)


def file_kind(path: Path) -> str:
    """The kind of ``path``: "folder", "table", "array" or "idx"; DataError otherwise."""
    if path.is_dir():
        return "folder"
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    name = path.name.lower()
    plain = name[:-3] if name.endswith(".gz") else name
    if _plain_suffix(path) in _TABLE_SUFFIXES and not name.endswith((".zst", ".tar")):
        return "table"  # plain, or compressed (.gz, .bz2, .xz; .zip through pandas)
    if name.endswith((".npy", ".npz")):
        return "array"
    if _IDX_NAME.search(plain) or name.endswith(".gz"):
        return "idx"
    raise DataError(
        f"{path}: unknown kind of data file ({path.suffix or 'no extension'}); deepbelief "
        f"reads {SUPPORTED}"
    )


def load_dataset(
    path: str | Path,
    target: str | int | None = None,
    no_target: bool = False,
    header: bool = True,
    image_size: tuple[int, int] | None = None,
    labels_path: str | Path | None = None,
) -> Dataset:
    """Read a data file or an image folder, choosing the reader from the path.

    - a folder: :func:`read_image_folder` (labels are the subfolder names; images directly
      in the folder have none; ``row_names`` are the files), or the rows of a folder of
      ``.npy`` shards (:class:`deepbelief.streams.RowFile`) when it holds no images;
    - ``.csv``, ``.tsv`` (tab-separated), ``.txt``, each optionally ``.gz``:
      :func:`read_table`;
    - ``.npy``, ``.npz``: :func:`read_array` (an ``.npz`` may carry labels as ``"y"``);
    - ``.idx``, ``.idx3``, ``*-ubyte`` and other ``.gz`` files: :func:`read_idx`.

    Arrays of shape (n, height, width) are images: flattened to rows, their shape kept in
    ``image_shape``; 8-bit images (uint8) become grey levels in [0, 1], like image folders.
    Other arrays become float rows as they are (float64 stays float64, everything else becomes
    float32; large ``.npy`` files stay memory-mapped when already float).

    Parameters
    ----------
    path : str or Path
        The file or folder.
    target : str, int or None
        Tables only: the target column (default: the last column).
    no_target : bool
        Read no target: every table column is a feature, and labels are dropped.
    header : bool
        Tables only: the first line names the columns.
    image_size : (int, int) or None
        Image folders only: resize every image to (height, width).
    labels_path : str or Path or None
        IDX or NumPy data only: an IDX or ``.npy`` file with one label per row (for example
        MNIST's ``train-labels-idx1-ubyte.gz``); it replaces an ``.npz`` file's ``"y"``.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        A missing file, an unknown extension (listing the supported kinds), an option that does
        not apply to the kind of file, and every error of the readers (corrupt, truncated or
        mislabelled files; labels whose count differs from the rows).
    """
    path = Path(path)
    kind = file_kind(path)

    def refuse(option: str, applies: str):
        raise DataError(f"{path}: {option} applies to {applies} only")

    if kind == "table":
        if image_size is not None:
            refuse("an image size", "image folders")
        if labels_path is not None:
            refuse("a separate labels file", "IDX and NumPy data")
        features, column = read_table(path, target=target, no_target=no_target, header=header)
        return Dataset(features, column, "table", None, str(path))
    if target is not None:
        refuse("a target column", "CSV tables; other files carry their labels")
    if kind == "folder":
        if labels_path is not None:
            refuse("a separate labels file", "IDX and NumPy data")
        if image_size is None and _holds_shards(path):
            from .streams import RowFile

            rows = RowFile(path)  # read into memory (training reads it a block at a time)
            X = rows.read(0, len(rows))
            X = X if X.dtype in (np.float32, np.float64) else X.astype(np.float32)
            if 0 in X.shape:
                raise DataError(f"{path}: no data (the rows have shape {X.shape})")
            return Dataset(X, None, "array", None, str(path))
        X, labels, shape, names = _read_images(path, image_size)
        target = None if no_target else labels
        return Dataset(X, target, "images", shape, str(path), row_names=names)
    if image_size is not None:
        refuse("an image size", "image folders")
    if kind == "array":
        X, y = _read_numpy(path)
    else:
        X, y = read_idx(path), None
        if X.ndim == 0:
            raise DataError(f"{path}: the IDX file holds a single number, not rows of data")
    if len(X) == 0 or math.prod(X.shape[1:]) == 0:
        raise DataError(f"{path}: no data (the array has shape {X.shape})")
    if labels_path is not None:
        if y is not None:
            raise DataError(
                f"{path}: holds its own labels (y); --labels {labels_path} would replace them: "
                "give one or the other"
            )
        if Path(labels_path).exists() and os.path.samefile(labels_path, path):
            raise DataError(f"{path}: given as both the data and its --labels; name each file")
        y = _read_labels(Path(labels_path), len(X), path)
    row_shape = tuple(int(n) for n in X.shape[1:]) if X.ndim > 2 else None
    if X.ndim == 4 and X.shape[1] == 1:  # one channel first, (n, 1, H, W): grey images
        X = X[:, 0]
    elif X.ndim == 4 and X.shape[3] == 1:  # ... or last, (n, H, W, 1)
        X = X[..., 0]
    images = X.ndim == 3
    if X.dtype == np.uint8:  # 8-bit pixels, however the rows are shaped: over 255, as images
        features = X.reshape(len(X), -1).astype(np.float32)
        features /= 255.0
    elif X.dtype in (np.float32, np.float64):
        features = X.reshape(len(X), -1)  # no copy: a memory map stays one
    else:
        features = X.reshape(len(X), -1).astype(np.float32)
    return Dataset(
        features,
        None if no_target else y,
        "images" if images else "array",
        tuple(int(n) for n in X.shape[1:]) if images else None,
        str(path),
        row_shape=row_shape,
    )


def _holds_shards(folder: Path) -> bool:
    """Whether ``folder`` is a folder of ``.npy`` shards (rows) rather than of images."""
    from .streams import holds_rows

    try:
        image_files(folder)
    except DataError:
        return holds_rows(folder)
    return False


def _read_labels(path: Path, n_rows: int, data_path: Path) -> np.ndarray:
    kind = file_kind(path)
    if kind == "idx":
        y = read_idx(path)
    elif kind == "array":
        y, _ = _read_numpy(path)
    else:
        raise DataError(f"{path}: a labels file must be an IDX or NumPy file")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{path}: labels must be one value per row; the array has shape {y.shape}")
    if len(y) != n_rows:
        raise DataError(f"{path}: {len(y)} labels for the {n_rows} rows of {data_path}")
    return y.astype(np.int64) if y.dtype.kind in "biu" else np.asarray(y)
