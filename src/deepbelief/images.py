"""Images for the convolutional estimators: the conv layer specs, and image input given as
``(n, H, W)``, ``(n, C, H, W)`` or flat rows with an image shape."""

from __future__ import annotations

import math

import numpy as np

from .errors import DataError


def check_conv_layers(spec) -> list[tuple[int, int, int]]:
    """``[(n_filters, kernel_size, pool), ...]`` from a list of triples (a pair leaves
    ``pool`` at 1); ValueError naming ``conv_layers`` otherwise."""
    if spec is None:
        return []
    layers = []
    for layer in spec if isinstance(spec, (list, tuple)) else [None]:
        triple = tuple(layer) if isinstance(layer, (list, tuple)) else ()
        if len(triple) == 2:
            triple += (1,)
        if len(triple) != 3 or not all(_positive_int(v) for v in triple):
            raise ValueError(
                "conv_layers must be a list of (n_filters, kernel_size, pool) triples of "
                f"positive integers, e.g. [(24, 5, 2), (40, 5, 2)]; got {spec!r}"
            )
        layers.append(tuple(int(v) for v in triple))
    if not layers:
        raise ValueError(f"conv_layers must hold at least one layer or be None; got {spec!r}")
    return layers


def check_image_shape(shape) -> tuple[int, ...] | None:
    """``None``, ``(H, W)`` or ``(C, H, W)``; ValueError naming ``image_shape`` otherwise."""
    if shape is None:
        return None
    dims = tuple(shape) if isinstance(shape, (list, tuple)) else ()
    if len(dims) not in (2, 3) or not all(_positive_int(v) for v in dims):
        raise ValueError(
            f"image_shape must be None, (height, width) or (channels, height, width); got {shape!r}"
        )
    return tuple(int(v) for v in dims)


def flatten_images(X):
    """``(X as flat rows, (C, H, W) or None)``: arrays of 3 or 4 dimensions are images."""
    ndim = getattr(X, "ndim", None)
    if ndim not in (3, 4):
        return X, None
    X = np.asarray(X)
    shape = (1, *X.shape[1:]) if ndim == 3 else X.shape[1:]
    return X.reshape(len(X), -1), tuple(int(s) for s in shape)


def image_shape_for(n_features: int, given, from_data) -> tuple[int, int, int]:
    """The ``(C, H, W)`` of rows of ``n_features``: the data's own shape, else ``given``
    (``image_shape``), else a square grey image, else a 1-pixel-high strip (a signal);
    DataError when ``given`` does not hold ``n_features`` values."""
    shape = from_data or check_image_shape(given)
    if shape is None:
        side = math.isqrt(n_features)
        shape = (side, side) if side * side == n_features else (1, n_features)
    shape = (1, *shape) if len(shape) == 2 else tuple(shape)
    if math.prod(shape) != n_features:
        raise DataError(
            f"image_shape {shape} holds {math.prod(shape)} values; the rows have {n_features}"
        )
    return shape


def check_conv_fit(image_shape, layers) -> None:
    """Refuse (DataError) conv layers whose kernels or pools do not fit the images."""
    _, height, width = image_shape
    for i, (n_filters, kernel, pool) in enumerate(layers):
        maps = (height - kernel + 1, width - kernel + 1)
        where = f"conv layer {i + 1} ({n_filters}, {kernel}, {pool})"
        if min(maps) < 1:
            strip = i == 0 and height == 1  # rows that are no square image
            raise DataError(
                f"{where}: a {kernel}x{kernel} kernel does not fit its {height}x{width} input; "
                "choose a smaller kernel"
                + (
                    " (rows that are not a square image are read as 1-pixel strips: give "
                    "images (n, H, W), or image_shape=(height, width))"
                    if strip
                    else ""
                )
            )
        if maps[0] % pool or maps[1] % pool:
            raise DataError(
                f"{where}: a {kernel}x{kernel} kernel on {height}x{width} gives {maps[0]}x"
                f"{maps[1]} maps, which blocks of {pool}x{pool} do not divide; choose another "
                "kernel or pool size"
            )
        height, width = maps[0] // pool, maps[1] // pool


def _positive_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def random_shifts(rows, image_shape, max_shift: int, generator=None):
    """Flat image rows, each translated by its own random whole-pixel offset in
    ``[-max_shift, max_shift]`` along each axis of ``image_shape`` ``(C, H, W)`` longer than
    one pixel (all channels alike); the pixels shifted in are 0. A torch tensor of the same
    shape, dtype and device, drawn with ``generator``."""
    import torch
    import torch.nn.functional as F

    n, (channels, height, width), s = len(rows), image_shape, int(max_shift)
    images = F.pad(rows.reshape(n, channels, height, width), (s, s, s, s))
    offsets = []
    for size in (height, width):
        offset = torch.randint(0, 2 * s + 1, (n, 1), generator=generator, device=rows.device)
        offsets.append(offset if size > 1 else torch.full_like(offset, s))
    ys = (offsets[0] + torch.arange(height, device=rows.device))[:, None, :, None]
    xs = (offsets[1] + torch.arange(width, device=rows.device))[:, None, None, :]
    row = torch.arange(n, device=rows.device)[:, None, None, None]
    channel = torch.arange(channels, device=rows.device)[None, :, None, None]
    return images[row, channel, ys, xs].reshape(rows.shape)
