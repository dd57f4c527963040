"""The run folder's PNGs read at a glance: titles, axis labels, a legend that covers no line,
a colour scale spanning the members' correlations, full names, class names on images.

Each test inspects the matplotlib Figure the plot is drawn from (kit/training/plots.py *_figure,
kit/ensembles/report.py heatmap_figure), or the Title / Description the PNG carries.
"""

import matplotlib
import numpy as np
import pytest
from PIL import Image

matplotlib.use("Agg")

from kit.ensembles.report import heatmap_figure, off_diagonal_range, save_heatmap  # noqa: E402
from kit.training.plots import curves_figure, learning_curves, sample_grid, sample_grid_figure  # noqa: E402


def history(n=8):
    """A net's history.csv rows: the loss falls, the metric peaks at epoch 4."""
    metric = [0.40, 0.50, 0.55, 0.60, 0.70, 0.65, 0.66, 0.64][:n]
    return [{"epoch": e, "train_loss": 1.0 / (e + 1), "valid_loss": 1.2 / (e + 1) + 0.01 * e,
             "lr": 1e-3 * (1 - e / n), "valid_metric": metric[e]} for e in range(n)]


def boxes(fig, artists):
    fig.draw_without_rendering()  # lays out the constrained layout, text sizes included
    return [a.get_window_extent() for a in artists]


def test_curves_have_a_title_a_loss_label_and_a_legend_outside_every_axes():
    fig = curves_figure(history(), metric="accuracy", best_epoch=6, title="fold0")
    assert fig.get_suptitle().startswith("fold0: best epoch 6")  # the trainer's best epoch
    ax_loss, ax_metric, ax_lr = fig.axes
    assert ax_loss.get_ylabel() == "loss" and ax_lr.get_ylabel() == "learning rate"
    assert ax_metric.get_ylabel() == "accuracy" and ax_metric.get_title() == "validation accuracy"
    assert len(fig.legends) == 1 and not ax_loss.get_legend()  # one legend, on the figure
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["train loss", "valid loss", "best epoch 6", "learning rate", "valid accuracy"]
    legend, *axes = boxes(fig, [fig.legends[0], *fig.axes])
    assert not any(legend.overlaps(ax) for ax in axes)  # it covers no line, the LR's included


def test_curves_png_says_what_it_shows_and_marks_the_metric_best_without_an_epoch(tmp_path):
    path = learning_curves(history(), tmp_path / "fold3" / "curves.png", metric="f1_macro")
    assert Image.open(path).text["Title"].startswith("fold3: best epoch 4,")  # argmax f1


def test_correlation_colours_span_the_off_diagonal_range_with_full_names():
    names = ["20261207-154811_small_cnn_raw_demo_with_a_rather_long_suffix",
             "20261207-155143_mlp_raw_demo", "20261207-160002_gbdt_raw_demo_seed7"]
    corr = np.array([[1.0, 0.96, 0.97], [0.96, 1.0, 0.99], [0.97, 0.99, 1.0]])
    fig = heatmap_figure(names, corr)
    ax = fig.axes[0]
    norm = ax.get_images()[0].norm
    assert (norm.vmin, norm.vmax) == pytest.approx((0.96, 0.99))  # not -1..1
    colours = [ax.get_images()[0].to_rgba(v) for v in (0.96, 0.99)]
    assert colours[0] != colours[1]
    ticks = [*ax.get_xticklabels(), *ax.get_yticklabels()]
    assert [t.get_text() for t in ax.get_xticklabels()] == names  # never cut with "..."
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    figure_box = fig.bbox
    for box in boxes(fig, ticks):  # every name inside the figure: nothing cut at the edge
        assert box.x0 >= figure_box.x0 and box.y0 >= figure_box.y0
        assert box.x1 <= figure_box.x1 and box.y1 <= figure_box.y1


@pytest.mark.parametrize("corr, expected", [
    ([[1, 0.98], [0.98, 1]], (0.975, 0.985)),  # one value: widened to 0.01
    ([[1, np.nan, 0.5], [np.nan, 1, -0.2], [0.5, -0.2, 1]], (-0.2, 0.5)),  # NaN ignored
    ([[1.0]], (-1.0, 1.0)),  # one member: nothing to compare
])
def test_off_diagonal_range(corr, expected):
    assert off_diagonal_range(np.array(corr, dtype=float)) == pytest.approx(expected)


def test_heatmap_png_is_written_with_its_range_in_the_title(tmp_path):
    corr = np.array([[1.0, 0.9], [0.9, 1.0]])
    path = save_heatmap(tmp_path / "correlation.png", ["a", "b"], corr)
    assert Image.open(path).text["Title"] == "correlation of OOF predictions (0.895 to 0.905)"


def test_sample_grid_titles_each_image_with_its_class_name(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (10, 3, 16, 16), dtype=np.uint8)
    names = ["cat", "dog", "bird", "cat", "dog", "bird", "cat", "dog", "bird", "cat"]
    fig = sample_grid_figure(x, labels=names, ncol=4)
    shown = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title() for ax in shown] == names and len(fig.axes) == 12  # 3 rows of 4
    path = sample_grid(x, tmp_path / "sample_grid.png", labels=names)
    assert Image.open(path).text["Description"].split("\n") == names


def test_sample_grid_of_a_regression_shows_short_values_on_gray_images(tmp_path):
    x = np.random.default_rng(0).random((3, 1, 8, 8)).astype(np.float32)
    path = sample_grid(x, tmp_path / "grid.png", labels=[1.23456789, 250000.0, 3.0])
    assert Image.open(path).text["Description"].split("\n") == ["1.235", "2.5e+05", "3"]
