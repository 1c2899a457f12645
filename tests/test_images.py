"""Image helpers: random whole-pixel translations for data augmentation."""

import numpy as np
import pytest
import torch

from deepbelief.images import random_shifts


def translated(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``image`` (C, H, W) moved down by ``dy`` and right by ``dx`` pixels, zeros shifted in."""
    out = np.zeros_like(image)
    _, h, w = image.shape
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        :, max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


@pytest.mark.parametrize("shape, shift", [((1, 5, 6), 1), ((2, 4, 4), 2), ((1, 1, 9), 2)])
def test_random_shifts_translate_each_image_by_an_offset_within_the_bound(shape, shift):
    """Every row is its image moved by one offset in [-shift, shift] per axis (all channels
    alike, zeros shifted in); over many rows every offset occurs, and an axis one pixel long
    does not move."""
    n = 400
    images = np.random.default_rng(0).uniform(0.1, 1.0, (n, *shape)).astype(np.float32)
    rows = torch.as_tensor(images.reshape(n, -1))
    out = random_shifts(rows, shape, shift, torch.Generator().manual_seed(1))
    assert out.shape == rows.shape and out.dtype == rows.dtype
    vertical = range(-shift, shift + 1) if shape[1] > 1 else [0]
    offsets = [(dy, dx) for dy in vertical for dx in range(-shift, shift + 1)]
    seen = set()
    for image, moved in zip(images, out.numpy().reshape(n, *shape)):
        found = [o for o in offsets if np.array_equal(moved, translated(image, *o))]
        assert len(found) == 1, found
        seen.add(found[0])
    assert seen == set(offsets)


def test_random_shifts_follow_the_generator():
    rows = torch.rand(20, 16)
    first = random_shifts(rows, (1, 4, 4), 1, torch.Generator().manual_seed(3))
    again = random_shifts(rows, (1, 4, 4), 1, torch.Generator().manual_seed(3))
    other = random_shifts(rows, (1, 4, 4), 1, torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)
