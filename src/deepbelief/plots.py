"""Plots as PNG files (matplotlib, imported lazily so the core does not need it)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'deepbelief[plot]'") from exc
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def tile_images(images: np.ndarray, shape: tuple[int, int], columns: int | None = None):
    """Arrange flat images (one per row) in a grid, each scaled to [0, 1] on its own."""
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


def save_image_grid(grid: np.ndarray, path: str | os.PathLike, title: str | None = None, scale=4):
    """Write a 2-D array in [0, 1] to ``path`` as a grey-scale PNG (atomically)."""
    plt = _pyplot()
    height, width = grid.shape
    dpi, band = 100, (0.3 if title else 0.0)  # inches of title band above the image
    image_height = height * scale / dpi
    fig = plt.figure(figsize=(width * scale / dpi, image_height + band))
    ax = fig.add_axes((0, 0, 1, image_height / (image_height + band)))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:  # centred in the band, clear of the top row of images
        y = 1 - 0.5 * band / (image_height + band)
        fig.text(0.5, y, title, fontsize=9, ha="center", va="center")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    os.replace(tmp, path)


def plot_filters(weight, image_shape: tuple[int, int], path, n_filters: int = 100, title=None):
    """Save the first ``n_filters`` hidden units' incoming weights as image tiles.

    ``weight`` has shape (n_visible, n_hidden), as :class:`deepbelief.nn.RBM.weight`.
    """
    weight = np.asarray(weight.detach().cpu() if hasattr(weight, "detach") else weight)
    filters = weight[:, :n_filters].T
    save_image_grid(tile_images(filters, image_shape), path, title=title)
