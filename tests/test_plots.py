"""Plots checked by content: sizes, tiles, and a title that stays clear of the images."""

import numpy as np
import pytest

from deepbelief.plots import plot_filters, save_image_grid, tile_images

plt_image = pytest.importorskip("matplotlib.image")


def test_tile_images_places_each_image_scaled_to_unit_range():
    images = np.arange(6 * 4, dtype=float).reshape(6, 4)  # six 2x2 images
    grid = tile_images(images, (2, 2), columns=3)
    assert grid.shape == (2 * 3 + 1, 3 * 3 + 1)  # 1-pixel borders
    np.testing.assert_allclose(grid[1:3, 1:3], [[0, 1 / 3], [2 / 3, 1]])
    assert grid[0].min() == 1.0 and grid[:, 0].min() == 1.0  # white borders


@pytest.mark.parametrize("title", [None, "ten samples per digit"])
def test_image_grid_png_size_and_title_clear_of_the_top_row(tmp_path, title):
    # ten rows of 28x28 images, as the MNIST sample grids (a tall figure)
    grid = tile_images(np.random.RandomState(0).rand(100, 784), (28, 28), columns=10)
    path = tmp_path / "grid.png"
    save_image_grid(grid, path, title=title, scale=4)
    png = plt_image.imread(path)[..., :3].mean(-1)
    band = 30 if title else 0  # 0.3 inch at 100 dpi
    assert png.shape == (grid.shape[0] * 4 + band, grid.shape[1] * 4)
    image = png[band:]
    assert np.allclose(image[:4], 1.0, atol=0.02)  # the grid's white top border, untouched
    assert image.std() > 0.1  # not constant
    if title:
        assert png[:band].min() < 0.5  # the title's dark text is in its band
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically


def test_plot_filters_tiles_the_first_hidden_units(tmp_path):
    weight = np.random.RandomState(1).randn(16, 30)  # 4x4 inputs, 30 hidden units
    plot_filters(weight, (4, 4), tmp_path / "filters.png", n_filters=9)
    png = plt_image.imread(tmp_path / "filters.png")
    assert png.shape[:2] == ((3 * 5 + 1) * 4,) * 2  # 3x3 tiles of 4x4 pixels, scale 4
