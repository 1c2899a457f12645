"""Training data larger than memory: rows read from a ``.npy`` file (or a folder of them) a
block at a time, never all at once.

:class:`RowFile` reads with ordinary file reads rather than through a memory map, so the rows
it has read do not stay in the process's resident memory: the fit loops hold one block of
rows (``BLOCK_ELEMENTS`` values) and the model. Indexing it with a tensor of row indices gives
those rows as a tensor, which is all :class:`deepbelief.training.RBMTrainer` asks of its data;
the epochs' orders are then shuffled by blocks (:func:`blocked_permutation`): the blocks in a
random order, the rows within each block in a random order, so each gathered block is one
contiguous read. Greedy pretraining writes each layer's input to a temporary ``.npy`` file
instead of keeping it in memory (:func:`propagate_to_file`). A large CSV file becomes a folder
of shards, a chunk at a time (:func:`csv_to_shards`).
"""

from __future__ import annotations

import copy
import os
import re
import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from .errors import DataError, UsageError

#: Rows of this many values make one block of reads (4 MiB of float32).
CHUNK_ELEMENTS = 1 << 20


class RowFile:
    """The rows of a 2-D ``.npy`` file (or of a folder of them with the same
    columns and dtype, in name order), read on demand.

    Parameters
    ----------
    path : str or path-like
        A ``.npy`` file or a folder of ``.npy`` files (shards).
    dtype, device : what the rows become when read (default float32, the CPU).
    transform : callable, optional
        Applied to each block of rows read (a NumPy array) before it becomes a tensor, e.g. an
        estimator's input scaling.
    rows : range, optional
        Consecutive rows of the file (step 1): the RowFile holds only these, its row 0 being
        ``rows.start`` (default: all of them). Messages still name the file's row numbers.
    """

    def __init__(self, path, dtype=torch.float32, device="cpu", transform=None, rows=None):
        self.path = Path(path)
        files = shard_files(self.path) if self.path.is_dir() else [self.path]
        if not files:
            raise DataError(f"{self.path}: a folder without .npy files")
        self._files = [_npy_layout(f) for f in files]
        first = self._files[0]

        def kind(layout):  # byte order aside: blocks are read in native order
            return layout["columns"], _native(layout["dtype"])

        for other in self._files[1:]:
            if kind(other) != kind(first):
                raise DataError(
                    f"{other['path']}: {other['columns']} columns of {other['dtype']}, unlike "
                    f"{first['path']}'s {first['columns']} of {first['dtype']}"
                )
        self.file_dtype = _native(first["dtype"])  # what read() gives
        self.fortran_order = first["fortran"] and len(self._files) == 1  # (a file's map)
        self.n_features = first["columns"]
        self._starts = np.cumsum([0] + [f["rows"] for f in self._files])
        total = int(self._starts[-1])
        self.rows = range(total) if rows is None else rows
        if self.rows.step != 1 or not 0 <= self.rows.start <= self.rows.stop <= total:
            raise ValueError(f"rows must be consecutive rows of the file's {total}, got {rows}")
        self.dtype, self.device = dtype, torch.device(device)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self), self.n_features

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start`` to ``stop`` (of those it holds) as they are in the file (in the
        machine's byte order)."""
        first = self.rows.start
        start, stop = first + max(0, start), first + min(stop, len(self))
        parts = []
        for i, layout in enumerate(self._files):
            lo, hi = max(start, self._starts[i]), min(stop, self._starts[i + 1])
            if lo < hi:
                parts.append(_read_rows(layout, lo - self._starts[i], hi - self._starts[i]))
        if not parts:
            return np.empty((0, self.n_features), self.file_dtype)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def __getitem__(self, index) -> torch.Tensor:
        """The rows at ``index`` (a tensor or array of row indices, or a slice) as a tensor;
        the rows between the smallest and largest index are read in one piece when they are
        few enough, else row by row."""
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            return self._tensor(self.read(start, stop)[::step])
        index = torch.as_tensor(index).reshape(-1).cpu().numpy()
        if len(index) == 0:
            return self._tensor(self.read(0, 0))
        lo, hi = int(index.min()), int(index.max()) + 1
        if hi - lo <= 4 * len(index) or hi - lo <= CHUNK_ELEMENTS // max(1, self.n_features):
            rows = self.read(lo, hi)[index - lo]
        else:
            rows = np.concatenate([self.read(int(i), int(i) + 1) for i in index])
        return self._tensor(rows)

    @property
    def chunk_rows(self) -> int:
        """Rows of about :data:`CHUNK_ELEMENTS` values: one block of :meth:`chunks`."""
        return max(1, CHUNK_ELEMENTS // max(1, self.n_features))

    def chunks(self, rows: int | None = None) -> Iterator[torch.Tensor]:
        """Consecutive blocks of rows as tensors (``rows`` each, default about
        :data:`CHUNK_ELEMENTS` values)."""
        rows = rows or self.chunk_rows
        for start in range(0, len(self), rows):
            yield self._tensor(self.read(start, min(len(self), start + rows)))

    def copy(self) -> RowFile:
        """Another RowFile of the same rows, whose ``dtype``, ``device`` and ``transform``
        may be set without changing this one's (an estimator's, not its caller's)."""
        return copy.copy(self)

    def then(self, step: Callable[[np.ndarray], np.ndarray]) -> None:
        """Apply ``step`` to each block after the transform it has (the caller's own, say)."""
        first = self.transform
        self.transform = step if first is None else (lambda rows: step(first(rows)))

    def _tensor(self, rows: np.ndarray) -> torch.Tensor:
        if self.transform is not None:
            rows = self.transform(rows)
        return torch.as_tensor(np.ascontiguousarray(rows), dtype=self.dtype, device=self.device)


def shard_files(folder: Path) -> list[Path]:
    """The ``.npy`` files of a folder of shards (any case of the suffix; hidden files, such
    as macOS's ``._name.npy``, left out) in natural order (``2.npy`` before ``10.npy``);
    DataError when a subfolder holds ``.npy`` files, which would not be read."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    nested = [q for d in entries if d.is_dir() for q in d.iterdir() if _is_npy(q)]
    if nested:
        raise DataError(
            f"{folder}: its subfolder {nested[0].parent.name!r} holds .npy files, which a "
            "folder of shards does not read (only the files directly in it); move them up, "
            "or give the subfolder"
        )
    return sorted((p for p in entries if _is_npy(p)), key=lambda p: natural_key(p.name))


def _is_npy(path: Path) -> bool:
    return path.suffix.lower() == ".npy" and not path.name.startswith(".") and not path.is_dir()


def natural_key(name: str) -> list:
    """A sort key that orders the numbers in names by value: ``img2.png`` before ``img10.png``."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", name)]  # fmt: skip


def csv_to_shards(
    csv, folder, *, chunk_rows: int = 50_000, dtype=np.float32, columns=None
) -> RowFile:
    """Read a numeric CSV file (with a header row) ``chunk_rows`` rows at a time into a new
    folder of ``.npy`` shards and open them as one :class:`RowFile`; DataError naming the
    row and column of a value that is not a number, or for a file without data rows (nothing
    is kept in memory but a chunk). ``columns``: the columns to keep (names or positions, as
    pandas' ``usecols``; default all), e.g. all but a label or text column.

    ``folder`` must not exist yet or be an empty folder (UsageError otherwise, before any
    work: the files of an earlier conversion are never mixed with new ones nor replaced). The
    shards are written to a temporary folder beside it, renamed to ``folder`` only once the
    whole file converted; on any error (or an interruption) the temporary folder is removed
    and ``folder`` is as it was.
    """
    import pandas as pd

    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)):
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    folder = Path(folder)
    existing = _check_new_folder(folder)
    if isinstance(csv, (str, os.PathLike)) and not os.path.isfile(csv):
        what = "is a folder, not a CSV file" if os.path.isdir(csv) else "no such file"
        raise DataError(f"{csv}: {what}")
    try:  # the header is read here: a missing or empty file fails before any folder is made
        reader = pd.read_csv(csv, chunksize=chunk_rows, usecols=columns)
    except pd.errors.EmptyDataError:
        raise DataError(f"{csv}: an empty file, no header row and no rows") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{csv}: not a readable CSV file ({exc})") from None
    except ValueError as exc:  # columns it does not have
        raise DataError(f"{csv}: {exc}") from None
    created = _make_parents(folder.parent)
    work = None
    try:
        work = _make_temporary_folder(folder)
        start, columns = 0, None
        for i, chunk in enumerate(_chunks(reader, csv)):
            columns = list(chunk.columns) if columns is None else columns
            values = chunk.apply(pd.to_numeric, errors="coerce")
            bad = values.isna() & chunk.notna()
            if bad.any(axis=None):
                row, column = np.argwhere(bad.to_numpy())[0]
                raise DataError(
                    f"{csv}: row {start + row + 1}, column {columns[column]!r} holds "
                    f"{chunk.iat[row, column]!r}, not a number"
                )
            if len(chunk):
                np.save(work / f"{i:08d}.npy", np.ascontiguousarray(values.to_numpy(dtype=dtype)))
            start += len(chunk)
        if start == 0:
            shown = f" (only the header: {', '.join(map(str, columns))})" if columns else ""
            raise DataError(f"{csv}: no rows{shown}")
        if existing is not None:
            os.chmod(work, stat.S_IMODE(existing.st_mode))
        try:
            os.rename(work, folder)  # over an empty folder, or none
        except OSError as exc:
            raise UsageError(
                f"{folder}: the shards cannot go there ({exc.strerror or exc}): it is no "
                "longer a new or empty folder"
            ) from None
        work = None
    except BaseException:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        for made in reversed(created):
            try:
                made.rmdir()  # only when still empty
            except OSError:
                break
        raise
    finally:
        reader.close()
    return RowFile(folder)


def _check_new_folder(folder: Path) -> os.stat_result | None:
    """``folder``'s status when it is an empty folder, None when it does not exist; UsageError
    naming it for anything else (a folder holding files, a file, a symbolic link)."""
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(info.st_mode):
        raise UsageError(
            f"{folder}: exists and is not a folder; the shards go into a new or empty folder, "
            "deepbelief will not replace it"
        )
    names = sorted(os.listdir(folder))
    if names:
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise UsageError(
            f"{folder}: is not empty (holds {shown}); the shards go into a new or empty "
            "folder, deepbelief will not mix them with those files or replace them"
        )
    return info


def _make_parents(parent: Path) -> list[Path]:
    """Make the missing folders of ``parent``; those it made, outermost first."""
    missing = []
    path = parent
    while not os.path.lexists(path) and path.parent != path:
        missing.append(path)
        path = path.parent
    created = []
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:
            continue  # made meanwhile by someone else: not ours to remove
        created.append(path)
    return created


def _make_temporary_folder(folder: Path) -> Path:
    """A new folder beside ``folder`` (the usual permissions, as ``mkdir`` gives)."""
    for _ in range(100):
        work = folder.absolute().with_name(f".{folder.name}.{secrets.token_hex(4)}.partial")
        try:
            work.mkdir()
        except FileExistsError:
            continue
        return work
    raise FileExistsError(f"{folder}: no free name for a temporary folder beside it")


def _chunks(reader, csv) -> Iterator:
    """The reader's chunks; a malformed line is a DataError naming the file."""
    import pandas as pd

    while True:
        try:
            chunk = next(reader)
        except StopIteration:
            return
        except pd.errors.ParserError as exc:
            raise DataError(f"{csv}: not a readable CSV file ({exc})") from None
        yield chunk


def _npy_layout(path: Path) -> dict:
    """Where a ``.npy`` file's rows are: header length, shape, dtype (DataError otherwise)."""
    try:
        shape, fortran, dtype, offset = _npy_header(path)
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: not a readable .npy file ({exc})") from None
    if len(shape) != 2 or dtype.hasobject or dtype.kind not in "fiub":
        raise DataError(f"{path}: expected a 2-D numeric array, got shape {shape} of {dtype}")
    return {"path": path, "offset": offset, "rows": shape[0], "columns": shape[1],
            "dtype": dtype, "fortran": bool(fortran)}  # fmt: skip


def _npy_header(path: Path) -> tuple:
    """``(shape, fortran_order, dtype, data offset)`` from a ``.npy`` file's header
    (ValueError or OSError when it has none)."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}.get(version)  # fmt: skip
        if read_header is None:
            raise ValueError(f"format version {version}")
        shape, fortran, dtype = read_header(f)
        return shape, fortran, dtype, f.tell()


def _read_rows(layout: dict, start: int, stop: int) -> np.ndarray:
    """Rows ``start`` to ``stop`` of one file: one read in C order; in Fortran order (each
    column's values one after the other) one read of each column's part."""
    size, columns = layout["dtype"].itemsize, layout["columns"]
    with open(layout["path"], "rb", buffering=0) as f:
        if not layout["fortran"]:
            out = np.empty((stop - start, columns), layout["dtype"])
            _read_into(f, layout["offset"] + start * columns * size, out, layout, stop)
        else:
            out = np.empty((columns, stop - start), layout["dtype"])
            for j in range(columns):
                where = layout["offset"] + (j * layout["rows"] + start) * size
                _read_into(f, where, out[j], layout, stop)
            out = np.ascontiguousarray(out.T)
    if not out.dtype.isnative:  # e.g. a big-endian file: torch reads native order only
        out = out.byteswap(inplace=True).view(_native(out.dtype))
    return out


def _read_into(f, where: int, out: np.ndarray, layout: dict, stop: int) -> None:
    """Fill the contiguous array ``out`` from byte ``where`` of the open file ``f``."""
    f.seek(where)
    view = memoryview(out.reshape(-1).view(np.uint8))
    done = 0
    while done < len(view):
        n = f.readinto(view[done:])
        if not n:
            raise DataError(f"{layout['path']}: the file ends before row {stop}")
        done += n


def _native(dtype: np.dtype) -> np.dtype:
    """``dtype`` in the machine's byte order."""
    return dtype if dtype.isnative else dtype.newbyteorder("=")


def blocked_permutation(n: int, block: int, generator: torch.Generator | None = None):
    """A random order of ``n`` rows that visits blocks of ``block`` consecutive rows in a
    random order and the rows of each block in a random order (one contiguous read per
    block)."""
    block = max(1, int(block))
    device = generator.device if generator is not None else torch.device("cpu")
    starts = torch.randperm(-(-n // block), generator=generator, device=device) * block
    parts = []
    for start in starts.tolist():
        size = min(block, n - start)
        parts.append(start + torch.randperm(size, generator=generator, device=device))
    return torch.cat(parts) if parts else torch.empty(0, dtype=torch.long, device=device)


def write_rows(path, blocks, n_rows: int, n_features: int, dtype=np.float32) -> Path:
    """Write ``blocks`` (arrays or tensors of rows, ``n_rows`` in all) as one ``.npy`` file,
    appending block after block."""
    path = Path(path)
    with open(path, "wb") as f:
        write_npy(f, blocks, n_rows, n_features, dtype)
    return path


def write_npy(f, blocks, n_rows: int, n_features: int, dtype=np.float32) -> None:
    """:func:`write_rows` into an open binary file ``f``."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
              "shape": (n_rows, n_features)}  # fmt: skip
    np.lib.format.write_array_header_2_0(f, header)
    written = 0
    for rows in blocks:
        rows = rows.detach().cpu().numpy() if isinstance(rows, torch.Tensor) else rows
        f.write(np.ascontiguousarray(rows, dtype=dtype).tobytes())
        written += len(rows)
    if written != n_rows:
        raise ValueError(f"wrote {written} rows to {getattr(f, 'name', f)}, expected {n_rows}")


def propagate_to_file(
    source: RowFile, transform: Callable[[torch.Tensor, slice], torch.Tensor], n_out: int,
    folder,
) -> RowFile:  # fmt: skip
    """``transform(rows, positions)`` of every block of ``source``, written to a new file in
    ``folder`` and opened as a :class:`RowFile` of the same dtype and device."""
    fd, name = tempfile.mkstemp(suffix=".npy", dir=folder)
    os.close(fd)
    rows = source.chunk_rows

    def blocks():
        for start, block in zip(range(0, len(source), rows), source.chunks(rows), strict=True):
            yield transform(block, slice(start, start + len(block)))

    dtype = np.float64 if source.dtype == torch.float64 else np.float32
    write_rows(name, blocks(), len(source), n_out, dtype)
    return RowFile(name, dtype=source.dtype, device=source.device)


def holds_rows(path) -> bool:
    """Whether ``path`` is data for a :class:`RowFile`: a folder holding ``.npy`` files, or a
    ``.npy`` file whose header says 2-D (of any dtype: RowFile refuses the
    non-numeric ones). False for other shapes, other files and unreadable headers."""
    path = Path(path)
    if path.is_dir():  # (shards in its subfolders too: RowFile says why it does not read them)
        try:
            return bool(shard_files(path))
        except DataError:
            return True
        except OSError:
            return False
    if path.suffix.lower() != ".npy" or not path.is_file():
        return False
    try:
        shape, _, _, _ = _npy_header(path)
    except (ValueError, OSError):
        return False
    return len(shape) == 2


def is_row_file(X) -> bool:
    """Whether ``X`` is a :class:`RowFile` (read a block at a time)."""
    return isinstance(X, RowFile)


def column_stats(source: RowFile) -> dict:
    """One pass over the file: each column's ``min``, ``max``, ``mean`` and ``std`` (float64
    arrays); DataError naming the (file's) row and column of the first value that is not
    finite."""
    n, lo, hi = 0, None, None
    total = squares = 0.0
    for block in source.chunks():
        sums = block.sum(0, dtype=torch.float64)  # finite when every value is (or overflowed)
        if not torch.isfinite(sums).all():
            _refuse_values(source, n, block, sums)
        low, high = block.min(0).values, block.max(0).values
        lo = low if lo is None else torch.minimum(lo, low)
        hi = high if hi is None else torch.maximum(hi, high)
        total = total + sums
        squares = squares + torch.square(block).sum(0, dtype=torch.float64)
        n += len(block)
    if n == 0:
        raise DataError(f"{source.path}: no rows")
    mean = total / n
    std = (squares / n - mean * mean).clamp_min(0).sqrt()
    stats = {"min": lo.double(), "max": hi.double(), "mean": mean, "std": std}
    return {k: v.cpu().numpy() for k, v in stats.items()}


def _refuse_values(source: RowFile, n: int, block: torch.Tensor, sums: torch.Tensor) -> None:
    """DataError naming the first value of ``block`` (rows from ``n`` on) that is not finite
    as read: NaN or inf in the file, or a number too large for the dtype it is read as; or
    the column whose sum overflowed."""
    bad = (~torch.isfinite(block)).nonzero()
    if not len(bad):
        column = int((~torch.isfinite(sums)).nonzero()[0])
        raise DataError(
            f"{source.path}: column '{column}' holds values too large to sum "
            "(beyond about 1e308 in all); scale them down"
        )
    row, column = (int(i) for i in bad[0])
    value = source.read(n + row, n + row + 1)[0, column]  # as the file holds it
    where = f"{source.path}: {file_position(source.rows.start + n + row, column)}"
    if np.isfinite(value):
        dtype = str(block.dtype).removeprefix("torch.")
        raise DataError(
            f"{where} holds {float(value)}, too large for {dtype} (beyond about 3.4e38); scale "
            "the values down"
        )
    raise DataError(
        f"{where} holds {value}; remove or impute such values first (rows read a block at a "
        "time are not imputed)"
    )


def file_position(row: int, column: int) -> str:
    """``"column '4', row 6"`` for a value at ``row`` and ``column`` counted from 0: as the
    messages about a table's cells name them (columns by name, rows from 1)."""
    return f"column '{column}', row {row + 1}"


def first_outside(source: RowFile, low: float, high: float) -> tuple[int, int, float] | None:
    """``(row, column, value)`` of the first value outside [low, high] (None when none is),
    with the file's row number."""
    n = source.rows.start
    for block in source.chunks():
        outside = (block < low) | (block > high)
        if outside.any():
            row, column = (int(i) for i in outside.nonzero()[0])
            return n + row, column, float(block[row, column])
        n += len(block)
    return None
