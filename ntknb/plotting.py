"""Figures shared by the notebooks: one consistent, readable style.

Each function takes numbers already computed elsewhere in ``ntknb`` and returns
the matplotlib ``Figure`` (or draws on a given ``Axes``); none computes results.
"""

from __future__ import annotations

import sys

import matplotlib as mpl
import matplotlib.pyplot as plt


def _ensure_inline_in_kernel() -> None:
    """Inside a Jupyter kernel, draw figures inline even if ``MPLBACKEND=Agg`` is set.

    A non-interactive backend inherited from the environment (CI, papermill, nbval) would
    otherwise drop every figure from the executed notebook and the rendered book.
    """
    if "ipykernel" not in sys.modules or mpl.get_backend().lower() != "agg":
        return
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None:
        shell.run_line_magic("matplotlib", "inline")


_ensure_inline_in_kernel()

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "figure.figsize": (6.4, 4.0),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 10,
    "legend.frameon": False,
}


def use_book_style() -> None:
    """Apply the book's matplotlib style (call once at the top of a notebook)."""
    mpl.rcParams.update(STYLE)


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.4, **kwargs):
    """A figure with an ``nrows × ncols`` grid of axes sized for the book's page."""
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), constrained_layout=True, **kwargs)
