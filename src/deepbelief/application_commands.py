"""The application subcommands: ``deepbelief denoise``, ``score`` and ``impute``.

Each checks its output path before any work, writes atomically (or to standard output with
``-o -``) and ends with a one-line summary on standard error (:func:`commands.finish`).
"""

from __future__ import annotations

import numpy as np

from . import errors
from .commands import (
    _model_and_rows,
    _named_rows,
    _warn_blank_rows,
    _where,
    _write_rows,
    _write_table,
    _write_text,
    check_rows_fit,
    estimator_kind,
    finish,
)
from .errors import DataError, UsageError
from .folders import check_input_path, output_file

__all__ = ["denoise", "impute", "score"]


def denoise(args) -> int:
    """``deepbelief denoise MODEL DATA -o OUT [--method M] [--steps K]``: the rows of DATA
    cleaned by the model (in the data's own columns and, for ``.npy``, the array's own shape;
    or a PNG grid for image data)."""
    from . import applications

    suffix = _suffix(
        args.output,
        (".csv", ".npy", ".png"),
        (args.model, args.data, getattr(args, "labels", None)),
    )
    _check_noise_options(args.noise, args.noise_level)
    estimator, _, spec, X, _, dataset = _model_and_rows(args, check_model=_check_denoiser)
    blank = "denoised from the values filled in as in training, not from data"
    _warn_blank_rows(spec.empty_cells(dataset), len(spec.feature_names), str(args.data), blank)
    if suffix == ".png" and not spec.picture_shape:
        raise UsageError(f"{args.output}: PNG needs image data; write .csv or .npy instead")
    check_rows_fit(args.output, spec)
    if args.noise:
        applications.check_bernoulli_input(estimator, f"--noise {args.noise}", UsageError)
    cleaned = applications.denoise(
        estimator, X, method=args.method, steps=args.steps, noise=args.noise,
        noise_level=args.noise_level, random_state=args.seed,
    )  # fmt: skip
    cleaned = spec.restore(cleaned)
    if suffix == ".npy" and dataset.row_shape:  # in the shape the rows came in: (n, 28, 28)
        cleaned = np.asarray(cleaned).reshape(len(cleaned), *dataset.row_shape)
    _write_rows(cleaned, args.output, spec, dataset.row_names)
    message = f"wrote {len(cleaned)} denoised rows ({args.method}) to {_where(args.output)}"
    payload = {"output": str(args.output), "rows": len(cleaned), "method": args.method}
    return finish(args, message, None if suffix == "-" else payload)


def _check_denoiser(estimator, model) -> None:
    """``denoise`` runs up-down passes of a generative model: refused (before the data is
    read) for a classifier or regressor, whose fine-tuning made its weights discriminative
    (they pulled every value towards one end)."""
    if estimator_kind(estimator) in ("classifier", "regressor"):
        raise UsageError(
            f"{model}: denoise needs a generative or unsupervised model (--model generative "
            f"or --model unsupervised); fine-tuning turned this {estimator_kind(estimator)} "
            "into a discriminative network"
        )


def score(args) -> int:
    """``deepbelief score MODEL DATA -o OUT``: one ``score`` per row, the unnormalised
    log-likelihood ``-F(v)`` under the model's first RBM (higher: more typical)."""

    from . import applications

    _suffix(args.output, (".csv",), (args.model, args.data, getattr(args, "labels", None)))
    # a category never seen in training is what a score should flag, not refuse
    estimator, _, spec, X, _, dataset = _model_and_rows(args, unseen="empty")
    scores = applications.typicality(estimator, X)
    if spec.kind == "table":  # a category it never saw: no probability under the model
        scores[spec.preprocessing.unseen_rows(X)] = -np.inf
    empty = spec.empty_cells(dataset)
    scores[empty == len(spec.feature_names)] = np.nan  # nothing to rate: no score
    _warn_empty_cells(empty, len(spec.feature_names), str(args.data))
    _write_table(_named_rows(dataset.row_names, {"score": scores}), output_file(args.output))
    scored = int((~np.isnan(scores)).sum())  # (-inf: a category the model never saw)
    low = float(np.nanmin(scores)) if scored else float("nan")
    unscored = (
        f"; {len(scores) - scored} row(s) without values unscored" if scored < len(scores) else ""
    )
    message = f"wrote {scored} scores (lowest {low:.4g}{unscored}) to {_where(args.output)}"
    payload = {"output": str(args.output), "rows": len(scores), "lowest": low}
    return finish(args, message, None if str(args.output) == "-" else payload)


def _warn_empty_cells(empty: np.ndarray, width: int, source: str) -> None:
    """Warnings for the rows ``score`` gave no score (every cell empty) and for those it
    scored with empty cells filled (the training data's fills, which rate as typical)."""
    _warn_blank_rows(empty, width, source, "their score is left empty")
    some = np.flatnonzero((empty > 0) & (empty < width))
    if len(some):
        errors.warn(
            f"{source}: {len(some)} row(s) with empty cells (the first: row {some[0] + 1}, "
            f"{empty[some[0]]} of {width}): they were scored with the cells filled as in "
            "training, which makes them look more typical than their values alone",
            errors.DataWarning,
        )


def impute(args) -> int:
    """``deepbelief impute DATA -o OUT``: the CSV with its empty cells filled by an RBM
    trained on it (:class:`deepbelief.imputer.RBMImputer`); categorical columns too.

    Columns are typed as ``train`` types them: a mostly numeric column with a few cells that
    are no number is refused naming the first (``--non-numeric error``), read with those
    cells empty, to be filled (``missing``), or kept as categories (``text``). The output has
    a header line when the input has one. In a one-column file a blank line is an empty cell
    (refused, as every row with no value: nothing to fill it from); wider files skip blank
    lines, as ``train`` does."""
    import io

    from .data import csv_dialect, read_table
    from .imputer import RBMImputer

    _suffix(args.output, (".csv",), (args.data,))
    check_input_path(args.data, "DATA")
    source, header = str(args.data), not args.no_header
    frame, _ = read_table(args.data, no_target=True, header=header)
    frame, coerced = _typed(frame, source, args.non_numeric)
    matrix, columns = _encode(frame, source)
    sep, decimal = csv_dialect(args.data)
    out = _as_text(args.data, header, sep, blank_lines=frame.shape[1] == 1)  # the cells as read
    if frame.shape[1] == 1:
        _refuse_blank_lines(out, source)
    missing = np.isnan(matrix)
    imputer = RBMImputer(
        n_components=args.hidden, n_iter=args.epochs or "auto", random_state=args.seed,
        sample_posterior=args.sample, prediction_epochs=args.prediction_epochs,
    )  # fmt: skip
    filled = imputer.fit_transform(matrix) if missing.any() else matrix
    for name, values in _filled_cells(frame, filled, columns, decimal).items():
        out[name] = out[name].where(~frame[name].isna().to_numpy(), values)
    buffer = io.StringIO()
    out.to_csv(buffer, index=False, header=header, sep=sep)
    _write_text(buffer.getvalue(), output_file(args.output))
    cells = int(frame.isna().to_numpy().sum())
    read_as_empty = f" ({coerced} of them not a number: --non-numeric missing)" if coerced else ""
    message = (
        f"filled {cells} empty cells{read_as_empty} of {len(frame)} rows; "
        f"wrote {_where(args.output)}"
    )
    payload = {"output": str(args.output), "rows": len(frame), "filled": cells}
    return finish(args, message, None if str(args.output) == "-" else payload)


def _typed(frame, source: str, non_numeric: str):
    """``(frame, coerced)``: the columns typed as ``train`` types them
    (:class:`deepbelief.data.TablePreprocessor`): a mostly numeric column with stray tokens
    is refused (``non_numeric="error"``, naming the column, row and value), becomes numbers
    with those cells empty (``"missing"``; ``coerced`` counts them) or stays categorical
    (``"text"``)."""
    from .data import TablePreprocessor

    typing = TablePreprocessor(non_numeric=non_numeric)
    coerced = 0
    for name in frame.columns:
        column, stray = typing._stray_tokens(str(name), frame[name], source)
        if stray is not None:
            frame[name] = column
            coerced += int(stray.sum())
    return frame, coerced


def _refuse_blank_lines(text, source: str) -> None:
    """DataError naming the first empty row of a one-column file (read with its blank lines):
    a row with no value has nothing to fill it from."""
    empty = np.flatnonzero(text.iloc[:, 0].isna().to_numpy())
    if len(empty):
        raise DataError(
            f"{source}: row {int(empty[0]) + 1} (counting data rows from 1, blank lines "
            f"included) is empty ({len(empty)} such row(s)); with a single column there is "
            "nothing to fill it from (in a one-column CSV a blank line is an empty cell)"
        )


def _check_noise_options(noise, level) -> None:
    """UsageError unless --noise and --noise-level come together, the level in range."""
    from .applications import check_noise

    if noise is None and level is not None:
        raise UsageError("--noise-level needs --noise (salt-and-pepper or gaussian)")
    if noise is None:
        return
    if level is None:
        raise UsageError(f"--noise {noise} needs --noise-level")
    try:
        check_noise(noise, level)
    except ValueError as error:
        raise UsageError(str(error).replace("noise_level", "--noise-level")) from None


def _suffix(path, allowed, inputs=()) -> str:
    """The output's suffix ("-" for standard output), refused unless ``allowed`` or when it is
    one of the ``inputs``."""
    if output_file(path, inputs) is None:
        return "-"
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise UsageError(f"{path}: output must be {' or '.join(allowed)} (or - for CSV)")
    return suffix


def _encode(frame, source: str):
    """The table as floats with NaN where empty: numeric columns as they are, categorical
    ones one-hot (all NaN where empty); and each column's slice of the matrix."""
    import pandas as pd

    parts, columns, start = [], {}, 0
    for name in frame.columns:
        column = frame[name]
        if column.isna().all():
            raise DataError(f"{source}: column {name!r} is empty in every row; drop it")
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            block = column.to_numpy(dtype=np.float64, na_value=np.nan)[:, None]
        else:
            dummies = pd.get_dummies(column.astype("string"), dtype=np.float64)
            block = dummies.to_numpy(copy=True)
            block[column.isna().to_numpy()] = np.nan
        parts.append(block)
        columns[name] = slice(start, start + block.shape[1])
        start += block.shape[1]
    if not parts:
        raise DataError(f"{source}: no columns")
    matrix = np.hstack(parts)
    empty = np.flatnonzero(np.isnan(matrix).all(1))
    if len(empty):
        raise DataError(
            f"{source}: row {int(empty[0]) + 1} (counting data rows from 1) has no value; "
            "nothing to fill it from"
        )
    return matrix, columns


def _filled_cells(frame, filled: np.ndarray, columns: dict, decimal: str = ".") -> dict:
    """For each column with empty cells, the text of every row's filled value: a number
    (whole where the column holds only whole numbers; with the file's ``decimal`` mark), or
    the most probable category."""
    import pandas as pd

    out = {}
    for name, where in columns.items():
        column = frame[name]
        if not column.isna().any():
            continue
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            values = filled[:, where][:, 0]
            observed = column.dropna().to_numpy(dtype=np.float64)
            if np.all(observed == np.round(observed)):
                out[name] = [str(int(v)) for v in np.round(values)]
            else:
                out[name] = [repr(float(v)).replace(".", decimal) for v in values]
        else:
            categories = pd.get_dummies(column.astype("string")).columns
            out[name] = [str(c) for c in np.asarray(categories)[np.argmax(filled[:, where], 1)]]
    return out


def _as_text(path, header: bool, sep: str, blank_lines: bool = False):
    """The CSV's cells as the text they hold (empty cells NaN), columns named as
    :func:`deepbelief.data.read_table` names them; with ``blank_lines``, a blank line is a
    row of empty cells (else it is skipped, as ``read_table`` skips it)."""
    import pandas as pd

    frame = pd.read_csv(
        path, sep=sep, header=0 if header else None,
        dtype=str, skipinitialspace=True, encoding="utf-8-sig", index_col=False,
        skip_blank_lines=not blank_lines,
    )  # fmt: skip
    frame.columns = [str(c) for c in frame.columns]
    return frame
