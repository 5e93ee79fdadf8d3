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
    if shell is not None and getattr(shell, "kernel", None) is not None:  # a kernel's shell, not a bare one
        shell.run_line_magic("matplotlib", "inline")


_ensure_inline_in_kernel()

#: Smallest font size (points) of any text in a book figure: a figure is at most two panels
#: wide and scaled into the book's column, so 8 pt stays readable there.
MIN_FONT_SIZE = 8.0
#: Most panels side by side in one row of a figure (:func:`new_figure` wraps wider grids).
MAX_COLUMNS = 2

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "figure.figsize": (6.4, 4.0),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 10,
    "axes.titlesize": 10,
    "legend.fontsize": 8.5,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.frameon": False,
}


def use_book_style() -> None:
    """Apply the book's matplotlib style (call once at the top of a notebook). Inside a
    Jupyter kernel, every figure shown under a cell is first made readable
    (:func:`make_readable`)."""
    mpl.rcParams.update(STYLE)
    _register_readability_hook()


def make_readable(fig, min_size: float = MIN_FONT_SIZE):
    """Raise every text of ``fig`` (titles, labels, tick labels, legends, annotations,
    colour bars) to at least ``min_size`` points; returns ``fig``. Chapter code may pass
    small explicit font sizes; this is the floor the book guarantees."""
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        if text.get_text() and text.get_fontsize() < min_size:
            text.set_fontsize(min_size)
    return fig


def _make_open_figures_readable() -> None:
    for num in plt.get_fignums():
        make_readable(plt.figure(num))


def _register_readability_hook() -> None:
    """Run :func:`_make_open_figures_readable` after each cell, before the inline backend
    shows the open figures (its ``flush_figures`` is also a ``post_execute`` callback)."""
    if "ipykernel" not in sys.modules:
        return
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return
    callbacks = shell.events.callbacks["post_execute"]
    if _make_open_figures_readable not in callbacks:
        callbacks.insert(0, _make_open_figures_readable)


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.4, **kwargs):
    """A figure with an ``nrows × ncols`` grid of axes sized for the book's page.

    At most :data:`MAX_COLUMNS` panels stand side by side: a row of more panels is wrapped onto
    several rows of two (a 1 × 4 grid is drawn 2 × 2). The axes are returned in the *logical*
    ``nrows × ncols`` arrangement, squeezed like :func:`matplotlib.pyplot.subplots` (pass
    ``squeeze=False`` for a 2-D array), so ``axes[i]`` / ``axes[r, c]`` mean the same panel
    whatever the layout.
    """
    import numpy as np

    squeeze = kwargs.pop("squeeze", True)
    if ncols <= MAX_COLUMNS:
        return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), constrained_layout=True,
                            squeeze=squeeze, **kwargs)
    per_row = -(-ncols // MAX_COLUMNS)  # physical rows per logical row
    fig, grid = plt.subplots(nrows * per_row, MAX_COLUMNS, figsize=(width * MAX_COLUMNS, height * nrows * per_row),
                             constrained_layout=True, squeeze=False, **kwargs)
    axes = np.empty((nrows, ncols), dtype=object)
    for r in range(nrows):
        for c in range(ncols):
            axes[r, c] = grid[r * per_row + c // MAX_COLUMNS, c % MAX_COLUMNS]
        for c in range(ncols, per_row * MAX_COLUMNS):  # unused cells of the last physical row
            grid[r * per_row + c // MAX_COLUMNS, c % MAX_COLUMNS].remove()
    if squeeze:
        return fig, (axes[0] if nrows == 1 else axes)
    return fig, axes


# ----------------------------------------------------------- kernel dynamics (chapter 04)


def plot_distance_heatmaps(matrices: dict, epochs=None, vmax: float | None = None):
    """One heat-map per entry of ``{title: (T, T) kernel-distance matrix}`` (``tsilivis2022ntk`` Fig. 3 left).

    ``epochs`` labels the axes (default 0..T−1). Shared colour scale (``vmax`` default:
    the largest entry). Returns the figure.
    """
    import numpy as np

    fig, axes = new_figure(ncols=len(matrices), width=3.0, height=2.8, squeeze=False)
    vmax = vmax if vmax is not None else max(float(np.max(m)) for m in matrices.values())
    for ax, (title, m) in zip(axes[0], matrices.items()):
        m = np.asarray(m)
        ticks = np.arange(m.shape[0]) if epochs is None else np.asarray(epochs)
        im = ax.imshow(m, cmap="viridis", vmin=0, vmax=vmax, origin="upper",
                       extent=(ticks[0] - 0.5, ticks[-1] + 0.5, ticks[-1] + 0.5, ticks[0] - 0.5))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(False)
    axes[0][0].set_ylabel("epoch")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="kernel distance")
    return fig


def plot_polar_trajectories(panels: dict):
    """Polar plots ``{panel title: {label: (r, theta)}}`` (``tsilivis2022ntk`` Eq. 12, Fig. 3 right).

    Each trajectory is a line with markers, darker = earlier epoch (as in the paper).
    Returns the figure.
    """
    import numpy as np

    n = len(panels)
    ncols = min(n, MAX_COLUMNS)
    nrows = -(-n // ncols)
    fig = plt.figure(figsize=(3.9 * ncols, 3.9 * nrows), constrained_layout=True)
    colors = ["tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange"]
    for i, (title, trajs) in enumerate(panels.items()):
        ax = fig.add_subplot(nrows, ncols, i + 1, projection="polar")
        for c, (label, (r, theta)) in zip(colors, trajs.items()):
            r, theta = np.asarray(r), np.asarray(theta)
            ax.plot(theta, r, "-", color=c, alpha=0.6, label=label)
            alphas = np.linspace(1.0, 0.3, r.size)
            for t in range(r.size):
                ax.plot(theta[t], r[t], "o", color=c, alpha=float(alphas[t]), ms=4)
        ax.set_thetamin(0)
        ax.set_thetamax(90)
        ax.set_title(title, fontsize=10)
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, -0.3))
    return fig


def plot_curves(ax, curves: dict, xlabel: str = "epoch", ylabel: str = "", logy: bool = False,
                vlines=(), title: str = ""):
    """Draw ``{label: (x, y)}`` on ``ax`` (dashed grey vertical lines at ``vlines``, e.g.
    learning-rate decays). Returns ``ax``."""
    for label, (x, y) in curves.items():
        ax.plot(x, y, "o-", ms=3, label=label)
    for v in vlines:
        ax.axvline(v, color="grey", ls="--", lw=0.8)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend()
    return ax


def gradient_to_image(g):
    """An input gradient ``(H, W, C)`` as an RGB / grey image in [0, 1]: scaled linearly by its
    own min and max (how ``tsilivis2022ntk`` shows feature gradients, Figs. 2 and 5)."""
    import numpy as np

    g = np.asarray(g, dtype=np.float64)
    lo, hi = g.min(), g.max()
    g = (g - lo) / (hi - lo) if hi > lo else np.zeros_like(g)
    return g[..., 0] if g.shape[-1] == 1 else g


def plot_image_grid(rows: dict, col_titles=(), cell: float = 1.25):
    """A grid of images: ``{row_label: [image (H, W, C) in [0, 1], ...]}``, one row per key
    (rows may differ in resolution). Returns the figure."""
    import numpy as np

    ncols = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(rows), ncols, figsize=(cell * ncols + 0.6, cell * len(rows)),
                             squeeze=False, constrained_layout=True)
    for r, (label, images) in enumerate(rows.items()):
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if c < len(images):
                im = np.asarray(images[c])
                ax.imshow(im[..., 0] if im.shape[-1] == 1 else im, cmap="gray",
                          interpolation="nearest")
            else:
                ax.axis("off")
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
            if r == 0 and c < len(col_titles):
                ax.set_title(col_titles[c], fontsize=8)
    return fig


def plot_usefulness_robustness(ax, robust, useful, eigenvalues, title: str = "",
                               useful_above=None, nonrobust_below=None):
    """Features in usefulness-robustness space (``tsilivis2022ntk``, Fig. 2 right): x =
    robust accuracy, y = clean accuracy, size and colour by eigenvalue (larger / darker =
    larger eigenvalue). Optional dashed lines at the usefulness / non-robustness thresholds."""
    import numpy as np

    lam = np.asarray(eigenvalues, dtype=np.float64)
    rel = np.log10(lam / lam.max())
    rel = (rel - rel.min()) / max(rel.max() - rel.min(), 1e-12)  # 1 = largest eigenvalue
    order = np.argsort(rel)  # large eigenvalues drawn on top
    sc = ax.scatter(np.asarray(robust)[order], np.asarray(useful)[order], s=8 + 60 * rel[order],
                    c=rel[order], cmap="viridis_r", vmin=0, vmax=1, alpha=0.8, edgecolors="none")
    if useful_above is not None:
        ax.axhline(useful_above, color="grey", ls="--", lw=0.8)
    if nonrobust_below is not None:
        ax.axvline(nonrobust_below, color="grey", ls=":", lw=0.8)
    ax.set_xlabel("robustness (FGSM accuracy)")
    ax.set_ylabel("usefulness (accuracy)")
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    if title:
        ax.set_title(title, fontsize=10)
    return sc


# ------------------------------------------------------- BatchNorm buffers (chapter 05)


def plot_specialization_matrices(panels: dict, vmin: float | None = None, vmax: float | None = None,
                                 cmap: str = "viridis"):
    """Grid of kernel specialization matrices M_ks (``li2023rethinking`` Figs. 3-4):
    ``{(row, col): (k, k) matrix}`` (rows e.g. BN mode and kernel, columns epochs); one
    shared colour scale; row i = logit, column j = class. Returns the figure."""
    import numpy as np

    rows = list(dict.fromkeys(r for r, _ in panels))
    cols = list(dict.fromkeys(c for _, c in panels))
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(1.9 * len(cols) + 1.6, 1.9 * len(rows)),
                             squeeze=False, constrained_layout=True)
    vals = np.concatenate([np.ravel(m) for m in panels.values()])
    vals = vals[np.isfinite(vals)]
    vmin = float(vals.min()) if vmin is None else vmin
    vmax = float(vals.max()) if vmax is None else vmax
    im = None
    for ax in axes.ravel():
        ax.axis("off")
    for (r, c), m in panels.items():
        ax = axes[rows.index(r), cols.index(c)]
        ax.axis("on")
        im = ax.imshow(np.asarray(m), cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        if rows.index(r) == 0:
            ax.set_title(str(c), fontsize=8)
        if cols.index(c) == 0:
            ax.set_ylabel(str(r), fontsize=8)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="$M_{ks}$")
    return fig


def plot_layer_gaps(ax, gaps: dict, ylabel: str = "", title: str = ""):
    """``{label: (L,) per-BatchNorm-layer values}`` against the layer index (depth). Returns ``ax``."""
    import numpy as np

    for label, v in gaps.items():
        ax.plot(np.arange(1, len(v) + 1), v, "o-", ms=3, label=label)
    ax.set_xlabel("BatchNorm layer (input → output)")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend()
    return ax


def plot_transfer_curves(curves, eps_labels=None, title: str = ""):
    """``tsilivis2022ntk`` Fig. 4 for a :class:`ntknb.transfer.TransferCurves`: (a) cosine
    similarity of the loss gradients of network and NTK predictor (mean, 10-90 % band),
    (b) clean accuracy of both and their agreement, (c, d) robust accuracy of the network
    under its own white-box attack (solid), under the NTK attack of Eq. (8) (dashed), and
    of the kernel machine under its own attack (dotted), for FGSM and PGD; one colour per eps.
    x axis: training time t = steps x learning rate (log scale)."""
    import numpy as np

    t = np.asarray(curves.times, dtype=float)
    eps_labels = eps_labels or [f"{e:.3g}" for e in curves.eps]
    attacks = sorted({k[2] for k in curves.robust_acc}, key=["fgsm", "pgd"].index)
    fig, axes = new_figure(ncols=2 + len(attacks), width=3.6, height=3.0)
    ax = axes[0]
    q10, q50, q90 = curves.cos_sim_quantiles((0.1, 0.5, 0.9))
    ax.fill_between(t, q10, q90, alpha=0.25, color="C0", label="10-90 %")
    ax.plot(t, curves.cos_sim_mean, "o-", ms=3, color="C0", label="mean")
    ax.set_ylim(min(0.0, float(np.nanmin(q10)) - 0.05), 1.0)
    ax.set_title("(a) cos(grad L net, grad L NTK)", fontsize=10)
    ax.legend()
    ax = axes[1]
    ax.plot(t, curves.clean_acc_net, "o-", ms=3, label="network")
    ax.plot(t, curves.clean_acc_kernel, "s--", ms=3, label="NTK predictor")
    ax.plot(t, curves.agreement, ":", color="grey", label="agreement")
    ax.set_ylim(0, 1.02)
    ax.set_title("(b) clean test accuracy", fontsize=10)
    ax.legend()
    styles = {("net", "net"): ("-", "net, white-box"), ("net", "kernel"): ("--", "net, NTK attack"),
              ("kernel", "kernel"): (":", "NTK, own attack")}
    for a, attack in enumerate(attacks):
        ax = axes[2 + a]
        for j, lab in enumerate(eps_labels):
            for (model, source), (ls, _) in styles.items():
                key = (model, source, attack)
                if key in curves.robust_acc and not np.all(np.isnan(curves.robust_acc[key][:, j])):
                    ax.plot(t, curves.robust_acc[key][:, j], ls, color=f"C{j}", lw=1.4)
        handles = [mpl.lines.Line2D([], [], color="k", ls=ls, label=lab) for ls, lab in styles.values()]
        handles += [mpl.lines.Line2D([], [], color=f"C{j}", label=f"eps={lab}") for j, lab in enumerate(eps_labels)
                    if not np.all(np.isnan(curves.robust_acc[("net", "kernel", attack)][:, j]))]
        ax.legend(handles=handles)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"({'cd'[a]}) robust accuracy, {attack.upper()}", fontsize=10)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("training time t")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# ------------------------------------------------- robust-only kernel machines (chapter 03)


def plot_clean_robust_frontier(ax, families: dict, references: dict | None = None,
                               xlabel: str = "robust accuracy (PGD)",
                               ylabel: str = "clean accuracy", title: str = "",
                               annotate: bool = False):
    """Clean vs robust accuracy of families of machines, each drawn as a connected curve.

    ``families``: ``{label: (robust (J,), clean (J,), tags (J,) or None)}`` in the family's own
    order (e.g. increasing number of features); ``tags`` are written next to the points when
    ``annotate``. ``references``: ``{label: (robust, clean)}`` single machines (stars).
    """
    import numpy as np

    markers = "osD^v<>"
    for j, (label, (robust, clean, tags)) in enumerate(families.items()):
        r, c = np.asarray(robust, float), np.asarray(clean, float)
        ax.plot(r, c, marker=markers[j % len(markers)], ms=4, lw=1.0, alpha=0.85, label=label)
        if annotate and tags is not None:
            for x, y, t in zip(r, c, tags):
                ax.annotate(str(t), (x, y), fontsize=MIN_FONT_SIZE, xytext=(2, 2), textcoords="offset points")
    for label, (r, c) in (references or {}).items():
        ax.plot([r], [c], marker="*", ms=11, ls="none", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend()
    return ax
