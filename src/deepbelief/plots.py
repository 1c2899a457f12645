"""Plots as PNG files (matplotlib, imported lazily so the core does not need it).

Every function writes its PNG atomically (a temporary file in the same folder, then
:func:`os.replace`), so a crash never leaves a half-written image, and returns the path.
"""

from __future__ import annotations

import io
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .io import atomic_write_bytes

_DPI = 100
#: History keys that are bookkeeping, not learning curves.
_NOT_CURVES = frozenset({"epoch", "seconds", "learning_rate"})
#: Subplot titles of the metrics the trainers record; others are derived from the key.
_METRIC_TITLES = {
    "reconstruction_error": "Reconstruction error",
    "pseudo_log_likelihood": "Pseudo-log-likelihood",
    "free_energy_gap": "Free-energy gap (validation - training)",
    "loss": "Training loss",
    "val_loss": "Validation loss",
    "val_accuracy": "Validation accuracy",
    "val_r2": "Validation R\N{SUPERSCRIPT TWO}",
    "generative_error": "Generative (up-down) error",
}


def _figure(**kwargs):
    """A new :class:`matplotlib.figure.Figure` drawn by its own Agg canvas.

    No pyplot: the process's matplotlib backend, pyplot's list of open figures and its
    interactive state are left as they are (the caller may be running a GUI or a notebook
    with another backend). The figure is freed with its last reference.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'deepbelief[plot]'") from exc
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas
    return fig


def _inches(pixels: float, dpi: int = _DPI) -> float:
    """Figure inches that give exactly ``pixels`` pixels, whether matplotlib truncates or rounds."""
    return (pixels + 0.01) / dpi  # 0.01: float error never truncates to pixels - 1


def _save_figure(fig, path: str | os.PathLike, dpi: int = _DPI) -> Path:
    """Save ``fig`` as a PNG at ``path`` atomically (:func:`deepbelief.io.atomic_write_bytes`:
    never over a device, FIFO, folder or symlink; the mode follows the umask); return the
    path."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _as_array(values) -> np.ndarray:
    """A float64 NumPy array from an array-like or a (possibly CUDA, grad-tracking) tensor."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64)


def tile_images(images: np.ndarray, shape: tuple[int, int], columns: int | None = None):
    """Arrange flat images (one per row) in a grid, each scaled to [0, 1] on its own.

    Parameters
    ----------
    images : array-like of shape (n_images, height * width)
        The flat images, one per row.
    shape : tuple of int
        ``(height, width)`` of one image.
    columns : int, optional
        Images per grid row; by default ``ceil(sqrt(n_images))``.

    Returns
    -------
    grid : ndarray of shape (rows * (height + 1) + 1, columns * (width + 1) + 1)
        The tiles, separated and framed by 1-pixel white (1.0) borders. A constant image
        becomes black (0.0).
    """
    images = np.asarray(images, dtype=np.float64)
    n = len(images)
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    h, w = shape
    grid = np.ones((rows * (h + 1) + 1, columns * (w + 1) + 1))
    for i, image in enumerate(images):
        lo, hi = image.min(), image.max()
        scaled = (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)
        r, c = divmod(i, columns)
        grid[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = (
            scaled.reshape(h, w)
        )
    return grid


#: A grid smaller than this (pixels, its longer side) is enlarged to it (a few 5x5 filters of
#: a conv layer made a 76-pixel image at four screen pixels per grid pixel).
SMALLEST_GRID_PIXELS = 240


def save_image_grid(
    grid: np.ndarray, path: str | os.PathLike, title: str | None = None, scale="auto"
):
    """Write a 2-D array in [0, 1] to ``path`` as a grey-scale PNG (atomically).

    Parameters
    ----------
    grid : ndarray of shape (height, width)
        Grey levels in [0, 1] (0 is black), e.g. from :func:`tile_images`.
    path : str or os.PathLike
        The PNG file to write; its folder must exist.
    title : str, optional
        Text centred in a 0.3-inch (30-pixel) band above the image.
    scale : int or "auto", default "auto"
        Screen pixels per grid pixel; "auto": 4, or more for a grid whose longer side would
        be under :data:`SMALLEST_GRID_PIXELS`.

    Returns
    -------
    path : pathlib.Path
        The file written, ``width * scale`` pixels wide and ``height * scale`` (+ 30 with a
        title) pixels high.
    """
    height, width = grid.shape
    if scale == "auto":
        scale = max(4, math.ceil(SMALLEST_GRID_PIXELS / max(height, width)))
    band = 30 if title else 0  # pixels of title band above the image
    image_height = height * scale
    fig = _figure(figsize=(_inches(width * scale), _inches(image_height + band)))
    ax = fig.add_axes((0, 0, 1, image_height / (image_height + band)))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:  # centred in the band, clear of the top row of images
        y = 1 - 0.5 * band / (image_height + band)
        fig.text(0.5, y, title, fontsize=9, ha="center", va="center")
    return _save_figure(fig, path)


def plot_filters(weight, image_shape: tuple[int, int], path, n_filters: int = 100, title=None):
    """Save the first ``n_filters`` hidden units' incoming weights as image tiles.

    Parameters
    ----------
    weight : array-like or tensor of shape (n_visible, n_hidden)
        As :attr:`deepbelief.nn.RBM.weight`.
    image_shape : tuple of int
        ``(height, width)`` with ``height * width == n_visible``.
    path : str or os.PathLike
        The PNG file to write.
    n_filters : int, default 100
        How many hidden units to show (the first ones).
    title : str, optional
        Text above the tiles.

    Returns
    -------
    path : pathlib.Path
        The file written.
    """
    weight = _as_array(weight)
    filters = weight[:, :n_filters].T
    return save_image_grid(tile_images(filters, image_shape), path, title=title)


# ------------------------------------------------------------------ learning curves
def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _curves(histories: Mapping[str, Sequence[Mapping]]) -> dict[str, dict[str, tuple]]:
    """``{metric: {phase: (epochs, values)}}`` with only finite values, in first-seen order."""
    if not isinstance(histories, Mapping):
        raise TypeError(
            "histories must be a dict mapping a phase name to a list of per-epoch dicts, "
            f"got {type(histories).__name__}"
        )
    curves: dict[str, dict[str, tuple[list, list]]] = {}
    for phase, history in histories.items():
        for index, entry in enumerate(history or []):
            if not isinstance(entry, Mapping):
                raise TypeError(
                    f"histories[{phase!r}][{index}] must be a dict of metrics, "
                    f"got {type(entry).__name__}"
                )
            epoch = entry.get("epoch", index + 1)
            if not _is_number(epoch) or not math.isfinite(epoch):
                epoch = index + 1
            for key, value in entry.items():
                if getattr(value, "shape", None) == () and hasattr(value, "item"):
                    value = value.item()  # a 0-d tensor or NumPy array
                if key in _NOT_CURVES or not _is_number(value) or not math.isfinite(value):
                    continue
                epochs, values = curves.setdefault(key, {}).setdefault(str(phase), ([], []))
                epochs.append(float(epoch))
                values.append(float(value))
    return curves


def _metric_title(key: str) -> str:
    if key in _METRIC_TITLES:
        return _METRIC_TITLES[key]
    if key.startswith("val_"):
        return "Validation " + key[4:].replace("_", " ")
    return key.replace("_", " ").capitalize()


def _learning_curves_figure(histories, title=None):
    """The learning-curve figure (one axes per metric) before it is saved."""
    curves = _curves(histories)
    if not curves:
        raise ValueError(
            "nothing to plot: no phase has a finite numeric metric other than "
            f"{', '.join(sorted(_NOT_CURVES))} (phases: {list(map(str, histories))})"
        )
    from matplotlib.ticker import MaxNLocator

    n = len(curves)
    columns = min(n, 2)
    rows = math.ceil(n / columns)
    band = 40 if title else 0  # pixels for the figure title
    fig = _figure(
        figsize=(_inches(500 * columns), _inches(340 * rows + band)), layout="constrained"
    )
    axes = fig.subplots(rows, columns, squeeze=False)
    axes = axes.ravel()
    for ax in axes[n:]:  # the empty cell of an odd count
        fig.delaxes(ax)
    for ax, (metric, phases) in zip(axes, curves.items()):
        for phase, (epochs, values) in phases.items():
            marker = "o" if len(values) <= 30 else None  # a single epoch is still visible
            ax.plot(epochs, values, marker=marker, markersize=3, linewidth=1.5, label=phase)
        ax.set_title(_metric_title(metric), fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        first = min(min(epochs) for epochs, _ in phases.values())
        last = max(max(epochs) for epochs, _ in phases.values())
        if last - first < 1:  # a single epoch: whole-number ticks around it
            ax.set_xlim(first - 1, last + 1)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


def plot_learning_curves(histories, path, title=None):
    """Plot per-epoch training metrics, one subplot per metric and one line per phase.

    Parameters
    ----------
    histories : dict of str to list of dict
        Phase name (e.g. ``"pretrain layer 1"``, ``"fine-tune"``) to its per-epoch
        metrics, as in ``RBMTrainer.history`` or ``DBNClassifier.history_``. The x axis
        is each entry's ``"epoch"`` (its 1-based position when absent). ``"epoch"``,
        ``"seconds"`` and ``"learning_rate"`` are not plotted; missing, non-numeric and
        non-finite values are skipped.
    path : str or os.PathLike
        The PNG file to write.
    title : str, optional
        Figure title above the subplots.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If no phase has a single finite metric to plot.
    TypeError
        If ``histories`` is not a dict of lists of dicts.
    """
    return _save_figure(_learning_curves_figure(histories, title), path)


# ------------------------------------------------------------------ confusion matrix
def plot_confusion_matrix(matrix, labels, path, title=None):
    """Plot a confusion matrix as an annotated heat map.

    Parameters
    ----------
    matrix : array-like of shape (n_classes, n_classes)
        Counts (or rates): row ``i`` is the true class ``labels[i]``, column ``j`` the
        predicted class ``labels[j]``, as :func:`sklearn.metrics.confusion_matrix`.
    labels : sequence of length n_classes
        Class names, shown on both axes.
    path : str or os.PathLike
        The PNG file to write.
    title : str, optional
        Figure title; by default "Confusion matrix" with the accuracy (trace / total).

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If the matrix is not square, is empty, has negative or non-finite entries, or
        ``labels`` does not have one name per row.
    """
    matrix = _as_array(matrix)
    labels = [str(label) for label in labels]
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {matrix.shape}")
    n = matrix.shape[0]
    if n == 0:
        raise ValueError("the confusion matrix is empty")
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for a {n}x{n} confusion matrix")
    if not np.isfinite(matrix).all() or (matrix < 0).any():
        raise ValueError("confusion-matrix entries must be finite and non-negative")
    integral = bool(np.all(matrix == np.round(matrix)))
    total = matrix.sum()
    if title is None:
        title = "Confusion matrix"
        if total > 0:
            title += f" (accuracy {np.trace(matrix) / total:.1%})"

    cell = 0.5 if n > 12 else 0.7  # inches per class
    longest = max(len(label) for label in labels)
    margin = 1.2 + 0.07 * min(longest, 20)  # room for the tick labels
    side = max(4.0, cell * n + margin)
    fig = _figure(figsize=(side + 1.0, side), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues", vmin=0, interpolation="nearest")
    fig.colorbar(image, ax=ax, shrink=0.8)
    fontsize = max(6.0, min(10.0, 220.0 / n))
    threshold = matrix.max() / 2 if matrix.max() > 0 else 1.0
    for i in range(n):
        for j in range(n):
            value = matrix[i, j]
            text = f"{int(round(value))}" if integral else f"{value:.2f}"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=fontsize,
                color="white" if value > threshold else "black",
            )
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    tick_size = max(7.0, min(10.0, 240.0 / n))
    rotate = n > 10 or longest > 3
    ax.set_xticklabels(labels, fontsize=tick_size, rotation=90 if rotate else 0)
    ax.set_yticklabels(labels, fontsize=tick_size)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=11)
    return _save_figure(fig, path)


# ------------------------------------------------------------------ predicted vs actual
def plot_predicted_vs_actual(actual, predicted, path, names=None, title=None):
    """Plot a regressor's predictions against the true values, one panel per target.

    Parameters
    ----------
    actual, predicted : array-like of shape (n_rows,) or (n_rows, n_targets)
        The true and the predicted values, row by row.
    path : str or os.PathLike
        The PNG file to write.
    names : sequence of str, optional
        One name per target, shown above its panel (with its R\N{SUPERSCRIPT TWO} and RMSE).
    title : str, optional
        Figure title above the panels.

    Returns
    -------
    path : pathlib.Path
        The file written. Each panel shows the rows as points and the line
        ``predicted = actual`` on which a perfect model's points would lie.

    Raises
    ------
    ValueError
        If the shapes differ, there are no rows, a value is not finite, or ``names`` does
        not have one name per target.
    """
    actual, predicted = _as_array(actual), _as_array(predicted)
    if actual.shape != predicted.shape or actual.ndim not in (1, 2) or len(actual) == 0:
        raise ValueError(
            f"actual and predicted must be the same non-empty (n_rows,) or (n_rows, n_targets) "
            f"shape, got {actual.shape} and {predicted.shape}"
        )
    if not (np.isfinite(actual).all() and np.isfinite(predicted).all()):
        raise ValueError("actual and predicted values must be finite")
    actual, predicted = actual.reshape(len(actual), -1), predicted.reshape(len(actual), -1)
    n_targets = actual.shape[1]
    names = [str(n) for n in names] if names is not None else [""] * n_targets
    if len(names) != n_targets:
        raise ValueError(f"{len(names)} names for {n_targets} targets")
    columns = min(n_targets, 3)
    rows = math.ceil(n_targets / columns)
    fig = _figure(figsize=(4.2 * columns, 4.0 * rows + (0.4 if title else 0)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False).ravel())
    size = max(2.0, min(20.0, 4000.0 / len(actual)))  # marker area: smaller for many rows
    for i, ax in enumerate(axes):
        if i >= n_targets:
            ax.set_axis_off()
            continue
        truth, guess = actual[:, i], predicted[:, i]
        ax.scatter(truth, guess, s=size, alpha=0.6, linewidths=0)
        lo, hi = min(truth.min(), guess.min()), max(truth.max(), guess.max())
        ax.plot([lo, hi], [lo, hi], color="black", linewidth=1, label="predicted = actual")
        ax.set_xlabel("actual")
        ax.set_ylabel("predicted")
        ax.set_title(_fit_words(names[i], truth, guess), fontsize=10)
        ax.legend(loc="upper left", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=12)
    return _save_figure(fig, path)


def _fit_words(name: str, truth: np.ndarray, guess: np.ndarray) -> str:
    """``"price: R² 0.91, RMSE 1.2"``: a panel's title."""
    residual = float(np.sum((truth - guess) ** 2))
    spread = float(np.sum((truth - truth.mean()) ** 2))
    rmse = math.sqrt(residual / len(truth))
    r2 = f"R\N{SUPERSCRIPT TWO} {1 - residual / spread:.3f}, " if spread > 0 else ""
    return f"{name}: " * bool(name) + f"{r2}RMSE {rmse:.4g} ({len(truth):,} rows)"


# ------------------------------------------------------------------ class samples
def plot_class_samples(images, labels_per_row, image_shape, path, title=None, *, scale=4):
    """Save a grid of images with one row per class, each row named at its left.

    Parameters
    ----------
    images : array-like or tensor of shape (n_classes * per_row, height * width)
        Flat images ordered class by class: the first ``per_row`` belong to
        ``labels_per_row[0]``, and so on. Each image is scaled to [0, 1] on its own.
    labels_per_row : sequence of length n_classes
        The class name written to the left of each row.
    image_shape : tuple of int
        ``(height, width)`` of one image.
    path : str or os.PathLike
        The PNG file to write.
    title : str, optional
        Text centred in a 30-pixel band above the grid.
    scale : int, default 4
        Screen pixels per image pixel.

    Returns
    -------
    path : pathlib.Path
        The file written. Its image part is :func:`tile_images`' grid with
        ``per_row`` columns, enlarged ``scale`` times: ``(n_classes * (height + 1) + 1) *
        scale`` pixels high (plus 30 with a title), to the right of a white label band.

    Raises
    ------
    ValueError
        If the images do not split evenly into the rows, or do not match ``image_shape``.
    """
    images = _as_array(images)
    names = [str(label) for label in labels_per_row]
    h, w = (int(v) for v in image_shape)
    if not names:
        raise ValueError("labels_per_row is empty: there must be at least one class row")
    if images.ndim != 2 or images.shape[1] != h * w:
        raise ValueError(
            f"images must have shape (n_images, {h * w}) for {h}x{w} images, got {images.shape}"
        )
    n_rows = len(names)
    if len(images) == 0 or len(images) % n_rows:
        raise ValueError(
            f"{len(images)} images do not split into {n_rows} class rows of equal length"
        )
    per_row = len(images) // n_rows
    grid = tile_images(images, (h, w), columns=per_row)

    row_px = (h + 1) * scale
    fontsize = max(4.0, min(9.0, 0.7 * row_px * 72 / _DPI))  # points, fits in one row
    probe = _figure(dpi=_DPI)  # measure the widest label as it will be drawn
    renderer = probe.canvas.get_renderer()
    widest = max(
        probe.text(0, 0, name, fontsize=fontsize).get_window_extent(renderer).width
        for name in names
    )
    label_px = math.ceil(widest) + 12
    grid_h, grid_w = grid.shape[0] * scale, grid.shape[1] * scale
    band = 30 if title else 0
    fig_w, fig_h = label_px + grid_w, grid_h + band
    fig = _figure(figsize=(_inches(fig_w), _inches(fig_h)))
    ax = fig.add_axes((label_px / fig_w, 0, grid_w / fig_w, grid_h / fig_h))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    for r, name in enumerate(names):
        y = 1 + r * (h + 1) + (h - 1) / 2  # the row's centre in grid (data) coordinates
        ax.text(-0.5 - 6 / scale, y, name, ha="right", va="center", fontsize=fontsize)
    if title:
        fig.text(0.5, 1 - 0.5 * band / fig_h, title, fontsize=9, ha="center", va="center")
    return _save_figure(fig, path)
