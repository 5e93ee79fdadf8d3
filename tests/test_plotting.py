"""ntknb.plotting: at most two panels a row, no text below 8 pt in a book figure."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ntknb import plotting  # noqa: E402


def _columns(fig) -> int:
    """Panels side by side: distinct left edges of the figure's axes."""
    return len({round(ax.get_position().x0, 3) for ax in fig.axes})


@pytest.mark.parametrize("ncols, nrows, shape, physical", [
    (1, 1, (), 1), (2, 1, (2,), 2), (3, 1, (3,), 4), (4, 1, (4,), 4), (5, 1, (5,), 6), (3, 2, (2, 3), 8),
])
def test_new_figure_wraps_wide_rows(ncols, nrows, shape, physical):
    fig, axes = plotting.new_figure(ncols=ncols, nrows=nrows)
    arr = np.asarray(axes, dtype=object)
    assert arr.shape == shape  # the logical arrangement, squeezed like plt.subplots
    assert _columns(fig) <= plotting.MAX_COLUMNS
    assert len(fig.axes) == nrows * ncols  # unused cells of the wrapped grid removed
    assert len({id(a) for a in arr.ravel()}) == nrows * ncols
    plt.close(fig)


def test_new_figure_squeeze_false_keeps_rows():
    fig, axes = plotting.new_figure(ncols=4, squeeze=False)
    assert axes.shape == (1, 4) and _columns(fig) == 2
    # logical order: row-major over the wrapped grid (panel 3 sits below panel 1)
    assert axes[0, 2].get_position().y0 < axes[0, 0].get_position().y0
    plt.close(fig)


def test_make_readable_raises_small_text():
    fig, ax = plotting.new_figure()
    ax.plot([0, 1], [0, 1], label="a line")
    ax.legend(fontsize=5)
    ax.set_title("t", fontsize=6)
    ax.annotate("note", (0.5, 0.5), fontsize=4)
    plotting.make_readable(fig)
    sizes = [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]
    assert min(sizes) >= plotting.MIN_FONT_SIZE
    assert ax.title.get_fontsize() == plotting.MIN_FONT_SIZE  # raised to the floor, not more
    plt.close(fig)


def test_library_figures_have_at_most_two_columns():
    panels = {f"p{i}": {"a": (np.array([1.0, 2.0]), np.array([0.1, 0.5]))} for i in range(4)}
    fig = plotting.plot_polar_trajectories(panels)
    assert _columns(fig) <= 2
    plt.close(fig)
    fig = plotting.plot_distance_heatmaps({f"m{i}": np.eye(3) for i in range(4)})
    heatmaps = [a for a in fig.axes if a.get_label() != "<colorbar>"]
    assert len(heatmaps) == 4 and len({round(a.get_position().x0, 3) for a in heatmaps}) == 2
    plt.close(fig)
