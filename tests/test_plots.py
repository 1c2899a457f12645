"""Plots checked by content: sizes, tiles, and a title that stays clear of the images."""

import matplotlib.image as plt_image
import numpy as np
import pytest
import torch

from deepbelief.plots import plot_filters, save_image_grid, tile_images


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
    # 3x3 tiles of 4x4 pixels, a 16-pixel grid: enlarged 15 times, to 240 pixels
    assert png.shape[:2] == ((3 * 5 + 1) * 15,) * 2
    plot_filters(weight, (4, 4), tmp_path / "many.png", n_filters=30)  # 5 rows of 6 tiles
    assert plt_image.imread(tmp_path / "many.png").shape[:2] == (26 * 8, 31 * 8)


# ------------------------------------------------------------------ learning curves
def _histories():
    layer1 = [
        {
            "epoch": e,
            "reconstruction_error": 1.0 / e,
            "pseudo_log_likelihood": -50.0 + e,
            "learning_rate": 0.1,
            "seconds": 0.5,
        }
        for e in range(1, 6)
    ]
    layer2 = [{"epoch": e, "reconstruction_error": 2.0 / e} for e in range(1, 4)]
    finetune = [
        {"epoch": 1, "loss": 1.2, "val_loss": 1.3, "val_accuracy": 0.6, "seconds": 1.0},
        {"epoch": 2, "loss": 0.8, "val_loss": float("nan"), "val_accuracy": 0.7},
        {"epoch": 3, "loss": 0.5, "val_accuracy": 0.8},
    ]
    return {"pretrain layer 1": layer1, "pretrain layer 2": layer2, "fine-tune": finetune}


def test_learning_curves_one_axes_per_metric_one_line_per_phase(tmp_path):
    from deepbelief.plots import _learning_curves_figure

    fig = _learning_curves_figure(_histories(), title="digits")
    titles = {ax.get_title(): ax for ax in fig.axes}
    # five metrics: epoch, seconds and learning_rate are not curves
    assert set(titles) == {
        "Reconstruction error",
        "Pseudo-log-likelihood",
        "Training loss",
        "Validation loss",
        "Validation accuracy",
    }
    recon = titles["Reconstruction error"]
    assert [line.get_label() for line in recon.get_lines()] == [
        "pretrain layer 1",
        "pretrain layer 2",
    ]
    assert recon.get_legend() is not None
    np.testing.assert_allclose(recon.get_lines()[1].get_xdata(), [1, 2, 3])
    (val_loss,) = titles["Validation loss"].get_lines()
    np.testing.assert_allclose(val_loss.get_ydata(), [1.3])  # the NaN is skipped
    assert fig._suptitle.get_text() == "digits"
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    assert isinstance(fig.canvas, FigureCanvasAgg)  # its own Agg canvas, not pyplot's backend
    assert fig.canvas.get_width_height() == (1000, 3 * 340 + 40)  # 3x2 subplots, title band


def test_learning_curves_png_grows_with_the_number_of_metrics(tmp_path):
    from deepbelief.plots import plot_learning_curves

    one = {"fine-tune": [{"epoch": e, "loss": 1.0 / e} for e in range(1, 4)]}
    path = plot_learning_curves(one, tmp_path / "one.png")
    assert path == tmp_path / "one.png"
    small = plt_image.imread(path)[..., :3].mean(-1)
    assert small.shape == (340, 500)  # one 5x3.4-inch subplot at 100 dpi
    assert small.std() > 0.05  # not constant: axes, line and text drawn
    big = plt_image.imread(plot_learning_curves(_histories(), tmp_path / "five.png"))
    assert big.shape[:2] == (3 * 340, 2 * 500)  # five subplots in a 3x2 layout
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize(
    "histories",
    [
        {},
        {"fine-tune": []},
        {"fine-tune": [{"epoch": 1, "seconds": 2.0, "learning_rate": 0.1}]},
        {"fine-tune": [{"epoch": 1, "loss": float("nan"), "note": "text"}]},
    ],
)
def test_learning_curves_refuse_nothing_plottable(tmp_path, histories):
    from deepbelief.plots import plot_learning_curves

    with pytest.raises(ValueError, match="nothing to plot"):
        plot_learning_curves(histories, tmp_path / "curves.png")
    assert not list(tmp_path.iterdir())  # no file, not even a temporary one


# ------------------------------------------------------------------ confusion matrix
def test_confusion_matrix_png_is_annotated_and_not_constant(tmp_path):
    from deepbelief.plots import plot_confusion_matrix

    rng = np.random.RandomState(0)
    matrix = rng.randint(0, 5, size=(30, 30)) + np.diag(rng.randint(50, 100, size=30))
    labels = [f"class {i}" for i in range(30)]
    path = plot_confusion_matrix(matrix, labels, tmp_path / "cm.png")
    assert path == tmp_path / "cm.png"
    png = plt_image.imread(path)[..., :3]
    height, width = png.shape[:2]
    assert height >= 30 * 40 and width >= height  # at least ~40 pixels per class
    assert png.std() > 0.1
    # the dark diagonal: the heat map's cells differ in colour from the off-diagonal ones
    assert len(np.unique(png.reshape(-1, 3).round(2), axis=0)) > 10


def test_confusion_matrix_text_cells_and_labels(tmp_path, monkeypatch):
    from deepbelief import plots

    saved = {}
    monkeypatch.setattr(plots, "_save_figure", lambda fig, path: saved.setdefault("fig", fig))
    plots.plot_confusion_matrix([[5, 1], [2, 7]], ["cat", "dog"], tmp_path / "cm.png")
    fig = saved["fig"]
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["5", "1", "2", "7"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cat", "dog"]
    assert ax.get_xlabel() == "predicted" and ax.get_ylabel() == "true"
    assert "80.0%" in ax.get_title()  # accuracy 12 / 15


@pytest.mark.parametrize(
    ("matrix", "labels", "message"),
    [
        (np.ones((2, 3)), ["a", "b"], "square"),
        (np.ones(4), ["a", "b"], "square"),
        (np.ones((3, 3)), ["a", "b"], "3 labels|2 labels"),
        (np.ones((2, 2)), ["a", "b", "c"], "3 labels"),
        (np.array([[1.0, np.nan], [0, 1]]), ["a", "b"], "finite"),
        (np.array([[1, -1], [0, 1]]), ["a", "b"], "non-negative"),
    ],
)
def test_confusion_matrix_refuses_bad_shapes(tmp_path, matrix, labels, message):
    from deepbelief.plots import plot_confusion_matrix

    with pytest.raises(ValueError, match=message):
        plot_confusion_matrix(matrix, labels, tmp_path / "cm.png")
    assert not (tmp_path / "cm.png").exists()


# ------------------------------------------------------------------ predicted vs actual
def test_predicted_vs_actual_one_panel_per_target_with_its_fit(tmp_path, monkeypatch):
    from deepbelief import plots

    saved = {}
    monkeypatch.setattr(plots, "_save_figure", lambda fig, path: saved.setdefault("fig", fig))
    actual = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 2.0], [4.0, 3.0]])
    predicted = actual + np.array([[0.0, 1.0], [0.0, -1.0], [0.0, 1.0], [0.0, -1.0]])
    plots.plot_predicted_vs_actual(actual, predicted, tmp_path / "p.png", names=["x", "y"])
    panels = [ax for ax in saved["fig"].axes if ax.axison]
    assert len(panels) == 2
    # exact: x is predicted perfectly; y's residuals are all 1 against a variance of 1.25
    assert panels[0].get_title() == "x: R\N{SUPERSCRIPT TWO} 1.000, RMSE 0 (4 rows)"
    assert panels[1].get_title() == "y: R\N{SUPERSCRIPT TWO} 0.200, RMSE 1 (4 rows)"
    points = panels[1].collections[0].get_offsets()
    np.testing.assert_array_equal(points, np.column_stack([actual[:, 1], predicted[:, 1]]))


def test_predicted_vs_actual_png_and_refusals(tmp_path):
    from deepbelief.plots import plot_predicted_vs_actual

    rng = np.random.default_rng(0)
    truth = rng.normal(size=200)
    path = plot_predicted_vs_actual(truth, truth + rng.normal(size=200), tmp_path / "p.png")
    assert path == tmp_path / "p.png" and plt_image.imread(path)[..., :3].std() > 0.05
    for actual, predicted, names, message in [
        (np.ones(3), np.ones(4), None, "same"),
        (np.ones(0), np.ones(0), None, "non-empty"),
        (np.array([1.0, np.inf]), np.ones(2), None, "finite"),
        (np.ones((3, 2)), np.ones((3, 2)), ["only one"], "1 names for 2 targets"),
    ]:
        with pytest.raises(ValueError, match=message):
            plot_predicted_vs_actual(actual, predicted, tmp_path / "bad.png", names)
    assert not (tmp_path / "bad.png").exists()


# ------------------------------------------------------------------ class samples
@pytest.mark.parametrize("title", [None, "samples per class"])
def test_class_samples_grid_has_one_row_per_class(tmp_path, title):
    from deepbelief.plots import plot_class_samples

    n_classes, per_row, h, w, scale = 4, 5, 6, 7, 4
    images = np.random.RandomState(2).rand(n_classes * per_row, h * w)
    labels = ["zero", "one", "two", "three"]
    path = plot_class_samples(images, labels, (h, w), tmp_path / "s.png", title=title)
    assert path == tmp_path / "s.png"
    png = plt_image.imread(path)[..., :3].mean(-1)
    band = 30 if title else 0
    grid_h, grid_w = (n_classes * (h + 1) + 1) * scale, (per_row * (w + 1) + 1) * scale
    assert png.shape[0] == grid_h + band
    label_w = png.shape[1] - grid_w
    assert label_w > 0  # a label band left of the grid
    grid = png[band:, label_w:]
    # white separators exactly every (h + 1) * scale pixels, image rows in between
    white_rows = np.flatnonzero(np.all(grid > 0.98, axis=1))
    expected = [r * (h + 1) * scale + k for r in range(n_classes + 1) for k in range(scale)]
    assert white_rows.tolist() == expected
    # each class row has its name written at its left: dark text in the label band
    for r in range(n_classes):
        top = band + r * (h + 1) * scale + scale
        strip = png[top : top + h * scale, :label_w]
        assert strip.min() < 0.5, f"no label drawn left of row {r}"
    assert not list(tmp_path.glob(".*tmp*"))


def test_class_samples_scales_each_image_and_accepts_tensors(tmp_path):
    from deepbelief.plots import plot_class_samples

    # two classes of one 2x2 image each, with very different value ranges
    images = torch.tensor([[0.0, 1.0, 2.0, 3.0], [100.0, 100.0, 100.0, 400.0]])
    plot_class_samples(images, [0, 1], (2, 2), tmp_path / "s.png", scale=10)
    png = plt_image.imread(tmp_path / "s.png")[..., :3].mean(-1)
    assert png.shape[0] == (2 * 3 + 1) * 10
    grid = png[:, -(1 * 3 + 1) * 10 :]  # the grid is the right part, after the labels
    # both images span black to white: each was scaled to [0, 1] on its own
    first, second = grid[10:30, 10:30], grid[40:60, 10:30]
    for tile in (first, second):
        assert tile.min() < 0.05 and tile.max() > 0.95


@pytest.mark.parametrize(
    ("n_images", "labels", "shape", "message"),
    [
        (7, ["a", "b"], (2, 2), "split"),
        (0, ["a"], (2, 2), "split"),
        (4, [], (2, 2), "empty"),
        (4, ["a", "b"], (3, 3), "shape"),
    ],
)
def test_class_samples_refuse_uneven_rows(tmp_path, n_images, labels, shape, message):
    from deepbelief.plots import plot_class_samples

    with pytest.raises(ValueError, match=message):
        plot_class_samples(np.ones((n_images, 4)), labels, shape, tmp_path / "s.png")


def test_save_image_grid_and_plot_filters_return_the_path(tmp_path):
    grid = tile_images(np.random.RandomState(3).rand(4, 9), (3, 3))
    assert save_image_grid(grid, tmp_path / "g.png") == tmp_path / "g.png"
    weight = np.random.RandomState(4).randn(9, 4)
    assert plot_filters(weight, (3, 3), tmp_path / "f.png") == tmp_path / "f.png"
    assert (tmp_path / "g.png").stat().st_size > 0 and (tmp_path / "f.png").stat().st_size > 0
