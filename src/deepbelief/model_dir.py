"""Model directories: what ``deepbelief train`` writes and the other commands read.

A model directory holds

- ``model.safetensors``: the fitted estimator (:func:`deepbelief.save`; load it in Python with
  :func:`deepbelief.load`);
- ``deepbelief.json``: the model card (format version, task, how raw data becomes the model's
  input: the fitted preprocessing, the target column, the image shape; the held-out metrics);
- ``run.json``: the training settings, which ``train --resume`` reads;
- ``checkpoint.safetensors``: the training state while training runs (removed at the end);
- ``.deepbelief.lock``: held (``flock``) by the training that writes the folder.

The card records the SHA-256 of ``model.safetensors`` (``model_sha256``), so a card beside
another model's tensors is refused; cards written before that field are read unchecked.

Every file is written atomically (a temporary file, then a rename).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import errors
from ._version import __version__
from .data import IMPUTE_ADVICE, TablePreprocessor
from .errors import DataError, ModelFileError
from .io import atomic_write_bytes, load, save

CARD_FORMAT = "deepbelief-model-directory"
CARD_VERSION = 1
MODEL_FILE = "model.safetensors"
CARD_FILE = "deepbelief.json"
RUN_FILE = "run.json"
CHECKPOINT_FILE = "checkpoint.safetensors"
MODEL_CHECKSUM = "model_sha256"  # the card's record of model.safetensors' SHA-256


@dataclass
class InputSpec:
    """How raw rows become the model's input, and back.

    Attributes
    ----------
    kind : {"table", "array", "images"}
    preprocessor : dict
        :meth:`deepbelief.data.TablePreprocessor.to_config` of the fitted preprocessing.
    target : str or None
        The target column of a table (dropped from the input when present).
    image_shape : [height, width] or None
        Set when the rows are images.
    """

    kind: str
    preprocessor: dict
    target: str | None = None
    image_shape: list[int] | None = None

    @classmethod
    def fit(cls, dataset, scaling: str, missing: str, drop_ids: bool, non_numeric: str = "error",
            binary: bool = False):  # fmt: skip
        """Fit the preprocessing to ``dataset`` (a :class:`deepbelief.data.Dataset`); returns
        the spec and the model-ready float matrix (``binary``: see
        :class:`~deepbelief.data.TablePreprocessor`)."""
        pre = TablePreprocessor(scaling, missing, drop_ids and dataset.kind == "table",
                                non_numeric, binary=binary)  # fmt: skip
        frame = _as_frame(dataset)
        pre.fit(frame, dataset.source, named=dataset.kind == "table")
        if dataset.kind != "table" and scaling == "minmax":
            _one_scale_for_pixels(pre, dataset)
        X = pre.transform(frame, dataset.source)
        target = getattr(dataset.target, "name", None) if dataset.kind == "table" else None
        shape = list(dataset.image_shape) if dataset.image_shape else None
        spec = cls(dataset.kind, pre.to_config(), None if target is None else str(target), shape)
        return spec, X

    @classmethod
    def as_is(cls, n_features: int, scaling: str, offsets=None, scales=None) -> InputSpec:
        """The spec of numeric rows (``n_features`` columns named ``"0"``, ``"1"``, ...) read
        a block at a time from a ``.npy`` file: each column becomes ``(x - offset) / scale``
        (default 0 and 1: as they are, the estimator doing its own scaling). ``scaling`` says
        what the visible units take: ``"minmax"`` (Bernoulli: new rows are clipped to [0, 1],
        as the estimator clips them) or ``"standard"`` (Gaussian: the estimator
        standardises). Missing values are refused, since training saw none."""
        offsets = [0.0] * n_features if offsets is None else [float(v) for v in offsets]
        scales = [1.0] * n_features if scales is None else [float(v) for v in scales]
        columns = [dict(name=str(i), kind="numeric", offset=offsets[i], scale=scales[i], fill=0.0)
                   for i in range(n_features)]  # fmt: skip
        pre = TablePreprocessor(scaling, missing="error")
        pre.columns = columns
        return cls("array", pre.to_config())

    @property
    def picture_shape(self) -> tuple[int, int] | None:
        """(height, width) to draw rows as pictures (PNG grids, filter plots): the images'
        shape, or for arrays of flat rows whose width is a square (at least 4x4, as the 8x8
        digits or MNIST's 784 pixels) a square grey image; None for tables and other rows."""
        if self.image_shape:
            return tuple(self.image_shape)
        width = len(self.preprocessor["columns"])
        side = math.isqrt(width)
        if self.kind == "array" and side >= 4 and side * side == width:
            return (side, side)
        return None

    @property
    def preprocessing(self) -> TablePreprocessor:
        return TablePreprocessor.from_config(self.preprocessor)

    @property
    def feature_names(self) -> list[str]:
        return [c["name"] for c in self.preprocessor["columns"]]

    def features(self, dataset, unseen: str = "error"):
        """The model-ready matrix of ``dataset``, and its target if it has one.

        A table may contain the target column or not; its other columns must be the training
        columns (by name). Arrays and images must have the training feature count.
        ``unseen``: what a category not seen in training does
        (:meth:`deepbelief.data.TablePreprocessor.transform`).
        """
        if self.kind == "table" and dataset.kind != "table":
            what = {"images": "images", "array": "an array of rows"}.get(dataset.kind, "no table")
            raise DataError(
                f"{dataset.source}: holds {what}, but the model was trained on a CSV table (of "
                f"{len(self.feature_names)} feature columns); give it rows of that table"
            )
        frame, target = _as_frame(dataset), dataset.target
        if self.kind == "table" and self.target is not None and self.target in frame.columns:
            target = frame[self.target]
            frame = frame.drop(columns=self.target)
        shape = getattr(dataset, "image_shape", None)
        if self.image_shape and shape and tuple(shape) != tuple(self.image_shape):
            trained = "x".join(map(str, self.image_shape))
            raise DataError(
                f"{dataset.source}: images of {'x'.join(map(str, shape))} pixels, but the model "
                f"was trained on {trained}; resize them (--image-size {trained})"
            )
        if self.kind != "table":
            expected = len(self.preprocessor["columns"])
            if frame.shape[1] != expected:
                raise DataError(
                    f"{dataset.source}: {frame.shape[1]} features per row, but the model was "
                    f"trained on {expected}"
                )
            frame = frame.set_axis(self.feature_names, axis=1)  # a table's columns in order
        try:
            X = self.preprocessing.transform(frame, dataset.source, unseen)
        except DataError as exc:  # the training option's advice does not fit new rows
            if exc.advice != IMPUTE_ADVICE:
                raise
            instead = "the model was trained to refuse them (--missing error): fill them first"
            raise exc.advised(instead) from None
        bounded = self.preprocessing.bounded_positions()  # Bernoulli units' columns: in [0, 1]
        if bounded:  # new rows may lie beyond the training range
            self.warn_outside(frame, dataset.source)
            X[:, bounded] = np.clip(X[:, bounded], 0.0, 1.0)
        return X, target

    def empty_cells(self, dataset) -> np.ndarray:
        """How many of each row's training columns are empty (NaN) in ``dataset``."""
        frame = _as_frame(dataset)
        if self.kind == "table":
            frame = frame[[name for name in self.feature_names if name in frame.columns]]
        return frame.isna().to_numpy().sum(axis=1)

    def outside(self, frame, first_row: int = 1) -> tuple[int, str] | None:
        """How many numeric values of ``frame`` (the training columns, by name) lie outside
        the training range, and where the first one is (its rows numbered from
        ``first_row``); None when none does."""
        import pandas as pd

        count, first = 0, None
        minmax = self.preprocessor["scaling"] == "minmax"
        for column in self.preprocessor["columns"]:
            if not (column["kind"] == "binary" or (column["kind"] == "numeric" and minmax)):
                continue
            values = pd.to_numeric(frame[column["name"]], errors="coerce").to_numpy(np.float64)
            scaled = (values - column["offset"]) / column["scale"]
            beyond = np.flatnonzero((scaled < -1e-6) | (scaled > 1 + 1e-6))
            if len(beyond) and first is None:
                low, high = column["offset"], column["offset"] + column["scale"]
                first = (f"column {column['name']!r}, row {int(beyond[0]) + first_row}: "
                         f"{values[beyond[0]]:g}, trained on {low:g} to {high:g}")  # fmt: skip
            count += len(beyond)
        return None if first is None else (count, first)

    def warn_outside(self, frame, source: str) -> None:
        """A warning (on the command line: one line) when values of ``frame`` lie outside the
        training range: they are clipped to it, so the model sees the range's ends."""
        self.warn_found(self.outside(frame), source)

    @staticmethod
    def warn_found(found: tuple[int, str] | None, source: str) -> None:
        """:meth:`warn_outside` of what :meth:`outside` found."""
        if found is not None:
            errors.warn(
                f"{source}: {found[0]} value(s) outside the training range, clipped to it (the "
                f"first: {found[1]})",
                errors.OutsideRangeWarning,
            )

    def restore(self, X: np.ndarray):
        """Model-space rows back in the space of the raw data (a DataFrame for tables, whose
        columns of whole numbers come back rounded to whole numbers, as integers)."""
        out = self.preprocessing.inverse_transform(np.asarray(X))
        if self.kind != "table":
            return np.asarray(out, dtype=np.float64)
        for column in self.preprocessor["columns"]:
            if column.get("integer"):
                whole = np.round(out[column["name"]].to_numpy())
                exact = np.all(np.abs(whole) < 2**53)  # else float64 holds them as they are
                out[column["name"]] = whole.astype(np.int64) if exact else whole
        return out


#: Rows in [0, 1] whose largest value is below this are stretched to reach 1 (one scale for
#: every column): 8-bit digits of 0 to 16, over 255, reached 0.063, and Bernoulli units on
#: such faint rows learned nothing (a classifier at chance, 0.08).
FAINT_MAXIMUM = 0.5


def faint_scale(high: float) -> float:
    """The one scale of rows in [0, 1] whose largest value is ``high``: itself when the rows
    are faint (below :data:`FAINT_MAXIMUM`), else 1 (taken as they are)."""
    return high if 0.0 < high < FAINT_MAXIMUM else 1.0


def _one_scale_for_pixels(pre: TablePreprocessor, dataset) -> None:
    """Rows of an array or images for Bernoulli units: values already in [0, 1] are taken as
    they are (as the Python API takes them; faint ones stretched by one scale to reach 1,
    :func:`faint_scale`), other images share one offset and scale (their smallest and
    largest value); other arrays keep a scale per column. Each pixel used to get its own
    min-max scale: a pixel rarely inked in training was amplified up to 7x and a new image's
    ink clipped, and the same images stored as uint8 rows and as IDX were scaled
    differently (a model of one was at chance on the other)."""
    values = np.asarray(dataset.features)
    with np.errstate(invalid="ignore"):
        low, high = float(np.nanmin(values)), float(np.nanmax(values))
    if 0.0 <= low and high <= 1.0:
        offset, scale = 0.0, faint_scale(high)
    elif dataset.kind == "images":
        offset, scale = low, (high - low) or 1.0
    else:
        return
    for column in pre.columns:
        column.update(offset=offset, scale=scale)


def _as_frame(dataset):
    import pandas as pd

    if dataset.kind == "table":
        return dataset.features
    X = np.asarray(dataset.features)
    X = X.reshape(len(X), -1)
    return pd.DataFrame(X, columns=[str(i) for i in range(X.shape[1])])


# ----------------------------------------------------------------------- the card
def write_json(path: Path, payload: dict) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(payload, indent=2, default=_plain) + "\n").encode())


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_json(path: Path) -> dict:
    """Read a JSON object written by :func:`write_json`; ModelFileError when unreadable."""
    try:
        payload = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ModelFileError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(f"{path}: unreadable or corrupt JSON ({exc})") from exc
    if not isinstance(payload, dict):
        raise ModelFileError(f"{path}: expected a JSON object")
    return payload


def save_model(directory: Path, estimator, card: dict) -> dict:
    """Write the estimator and its card (a dict: ``input``, ``task``, ``metrics``, ...) into
    ``directory`` (created if needed); returns the card as written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save(estimator, directory / MODEL_FILE)
    header = {"format": CARD_FORMAT, "format_version": CARD_VERSION, "package_version": __version__}
    card = {**header, **card, MODEL_CHECKSUM: file_sha256(directory / MODEL_FILE)}
    card = json.loads(json.dumps(card, default=_plain))  # plain JSON types
    write_json(directory / CARD_FILE, {**card, "sha256": _card_checksum(card)})
    return card


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except IsADirectoryError as exc:
        raise ModelFileError(f"{path}: is a folder, not a model file") from exc
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read model file ({exc.strerror or exc})") from exc
    return digest.hexdigest()


def check_model_file(directory: Path, card: dict) -> None:
    """Refuse a card paired with another model's tensors: the card records the SHA-256 of
    the ``model.safetensors`` it was written with (cards written before that field existed
    are not checked)."""
    expected = card.get(MODEL_CHECKSUM)
    if expected is None:
        return
    model = Path(directory) / MODEL_FILE
    if not model.exists():
        raise ModelFileError(f"{model}: no such file (the model card {CARD_FILE} needs it)")
    if file_sha256(model) != expected:
        raise ModelFileError(
            f"{model} does not match the model card {Path(directory) / CARD_FILE} (checksum "
            f"mismatch): the card belongs to another model, or the file was changed"
        )


def _card_checksum(card: dict) -> str:
    body = {k: v for k, v in card.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def load_model(directory: Path):
    """Read a model directory; returns ``(estimator, card, input_spec)``.

    Raises
    ------
    ModelFileError
        A missing directory or file, a corrupt or tampered file, a newer format.
    """
    directory = Path(directory)
    if not directory.is_dir():
        what = "is a file, not a model directory" if directory.exists() else "no such directory"
        raise ModelFileError(f"{directory}: {what}")
    if not (directory / CARD_FILE).exists() and not (directory / MODEL_FILE).exists():
        if (directory / CHECKPOINT_FILE).exists():
            raise ModelFileError(
                f"{directory}: holds a training run that has not finished, no model yet: "
                f"`deepbelief train --resume {directory}` continues it"
            )
        raise ModelFileError(
            f"{directory}: not a model folder (no {CARD_FILE}): give the folder train -o wrote"
        )
    card = read_card(directory)
    check_model_file(directory, card)
    estimator = load(directory / MODEL_FILE)
    return estimator, card, card_input(card, directory / CARD_FILE)


def read_card(directory: Path) -> dict:
    """The validated card of a model directory."""
    path = Path(directory) / CARD_FILE
    card = read_json(path)
    if card.get("format") != CARD_FORMAT:
        raise ModelFileError(f"{path}: not a deepbelief model card")
    version = card.get("format_version")
    if not isinstance(version, int):
        raise ModelFileError(f"{path}: the model card has no valid format version")
    if version > CARD_VERSION:
        raise ModelFileError(
            f"{path}: written in model-directory format {version} by deepbelief "
            f"{card.get('package_version', '?')}; this deepbelief ({__version__}) reads up to "
            f"format {CARD_VERSION}: upgrade deepbelief"
        )
    if card.get("sha256") != _card_checksum(card):
        raise ModelFileError(f"{path}: the model card is corrupt or was edited (checksum mismatch)")
    if card.get("task") not in ("classification", "regression", "unsupervised"):
        raise ModelFileError(f"{path}: unknown task {card.get('task')!r} in the model card")
    return card


def card_input(card: dict, path) -> InputSpec:
    """The card's :class:`InputSpec`, checked."""
    try:
        spec = InputSpec(**card["input"])
        spec.preprocessing.n_features  # noqa: B018 (validates)
    except Exception as exc:  # a hand-edited card: any shape of nonsense
        raise ModelFileError(f"{path}: the model card's input section is invalid ({exc})") from exc
    if spec.kind not in ("table", "array", "images"):
        raise ModelFileError(f"{path}: unknown input kind {spec.kind!r} in the model card")
    return spec


def spec_to_card(spec: InputSpec) -> dict:
    """The card's ``input`` section."""
    return asdict(spec)
