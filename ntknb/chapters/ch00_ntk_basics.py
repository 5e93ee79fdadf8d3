"""Chapter 00: the neural tangent kernel in practice.

Three measurements on a fully connected ReLU network in the NTK parameterisation
(``jacot2018ntk``; ``kernels_data_physics``' conventions): (1) the empirical NTK converges to the
analytic one as the width grows, (2) gradient descent on a wide network follows the kernel
predictor at the same time t, (3) spectral bias — the residual along eigenvector i decays at
the rate of eigenvalue i.

This module is the chapter's code; ``notebooks/00_ntk_basics.py`` only calls it:
:class:`Params` (the parameter schema), :func:`ntk_error_study`, :func:`lazy_study`,
:func:`spectral_study`, their glued values and figures. The claims' words, thresholds and directions
are registered in ``notebooks/claims/00_ntk_basics.yaml`` (:data:`REGISTER`), before the runs that
judge them.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ntknb import architectures, data, kernel_machines, lazy, plotting, schema, stats
from ntknb.claims import REGISTER_DIR, Claim, load_register
from ntknb.training import log_spaced_steps

__all__ = ["Params", "ntk_error_study", "plot_ntk_errors", "lazy_study", "lazy_values", "plot_lazy_gaps",
           "spectral_study", "spectral_values", "plot_spectral", "summary_text", "claims"]


@dataclasses.dataclass(frozen=True)
class Params(schema.Params):
    """The rules for the parameters of ``notebooks/00_ntk_basics.py`` (the defaults live in its
    ``parameters`` cell; field order = cell order)."""

    seed: int = schema.seed_param()
    dataset: str = schema.param(schema.Choice(["mnist", "cifar10"]))
    n_train: int = schema.param(schema.Int(min=10))
    n_test: int = schema.param(schema.Int(min=10))
    depth: int = schema.param(schema.Int(min=1, max=5))
    probe_size: int = schema.param(schema.Int(min=2, max=schema.Ref("n_train")))
    ntk_widths: list = schema.param(schema.List(schema.Int(min=1, max=schema.MAX_WIDTH), min_length=2))
    ntk_seeds: int = schema.param(schema.Int(min=1, max=100))
    train_widths: list = schema.param(schema.List(schema.Int(min=1, max=schema.MAX_WIDTH), min_length=2))
    lr_fraction: float = schema.param(schema.Float(min=0.0, max=1.0, min_inclusive=False, max_inclusive=False))
    total_steps: int = schema.param(schema.Int(min=1, max=schema.MAX_STEPS))
    n_checkpoints: int = schema.param(schema.Int(min=2, max=1000))
    modes: list = schema.param(schema.List(schema.Int(min=1, max=schema.Ref("n_train")), min_length=1))
    progress: bool = schema.param(schema.Bool())

    def check(self) -> None:
        data.check_task_sizes(self.dataset, train=[("n_train", self.n_train)], test=[("n_test", self.n_test)])
        if list(self.train_widths) != sorted(set(self.train_widths)):
            raise ValueError(f"parameter 'train_widths' must be strictly increasing (the width trend of the lazy "
                             f"gap is fitted over them), got {list(self.train_widths)!r}")


def make_net(p: Params, width: int, out_dim: int = 1):
    """The chapter's fully connected ReLU network of ``depth`` hidden layers of ``width``."""
    return architectures.fully_connected(depth=p.depth, width=width, out_dim=out_dim)


def ntk_error_study(p: Params, task):
    """Relative Frobenius error of the empirical NTK (``ntk_seeds`` initialisations per width of
    ``ntk_widths``) against the analytic one on the first ``probe_size`` training images, and the
    log-log slope of error vs width. Returns ``(errors (widths, seeds), slope, intercept)``."""
    x_probe = task.x_train[:p.probe_size]
    errors = lazy.empirical_ntk_errors(functools.partial(make_net, p), p.ntk_widths, x_probe,
                                       n_seeds=p.ntk_seeds, seed=p.seed, progress=p.progress)
    slope, intercept = lazy.loglog_slope(np.repeat(p.ntk_widths, p.ntk_seeds), errors.ravel())
    return errors, slope, intercept


def plot_ntk_errors(p: Params, errors, slope: float, intercept: float):
    """Error vs width, log-log, with the fit and the slope −1/2 of the theory."""
    fig, ax = plotting.new_figure(width=5.0)
    ax.loglog(np.repeat(p.ntk_widths, p.ntk_seeds), errors.ravel(), "o", alpha=0.5, label="one initialisation")
    ax.loglog(p.ntk_widths, errors.mean(axis=1), "-", lw=2, label="mean")
    w = np.asarray(p.ntk_widths, float)
    ax.loglog(w, np.exp(intercept) * w**slope, "k--", label=f"fit: slope {slope:.2f}")
    ax.loglog(w, errors.mean(axis=1)[0] * (w / w[0]) ** -0.5, ":", color="grey", label="slope -1/2 (theory)")
    ax.set_xlabel("width $m$")
    ax.set_ylabel(r"$\|\hat\Theta_m - \Theta\|_F \,/\, \|\Theta\|_F$")
    ax.set_title("Empirical NTK at initialisation vs analytic NTK")
    ax.legend()
    return fig


@dataclasses.dataclass
class LazyStudy:
    """Section 2: the kernel predictor and the trained networks at the same checkpoints."""

    kernel: object  #: :class:`ntknb.kernel_machines.KernelModel` of the widest network's analytic NTK
    lr: float  #: learning rate (``lr_fraction`` of the largest stable one)
    steps: np.ndarray  #: checkpoint steps (log-spaced)
    f_kernel: np.ndarray  #: (checkpoints, n_test, k) kernel predictor on the test images
    nets: dict  #: width -> trained network
    gaps: dict  #: width -> (checkpoints,) relative distance of the network's outputs to f_kernel


def lazy_study(p: Params, task) -> LazyStudy:
    """Full-batch gradient descent on networks of ``train_widths`` and the analytic NTK predictor
    at the same times t = steps × learning rate; relative output gap on the test images."""
    kernel = kernel_machines.KernelModel.build(make_net(p, p.train_widths[-1], out_dim=task.n_classes),
                                               task.x_train, task.y_train)
    lr = p.lr_fraction * kernel_machines.max_stable_learning_rate(kernel.k_train_train, task.n_classes)
    steps = log_spaced_steps(p.total_steps, p.n_checkpoints)
    k_test_train = np.asarray(kernel.test_kernel(task.x_test))
    f_kernel = np.stack([k_test_train @ np.asarray(kernel.weights(t)) for t in steps * lr])
    nets, gaps = {}, {}
    for width in p.train_widths:
        net = lazy.train_network(make_net(p, width, task.n_classes), task.x_train, task.y_train, lr, steps,
                                 seed=p.seed, progress=p.progress)
        g = np.stack([np.asarray(net.outputs(q, task.x_test)) for q in net.run.params])
        nets[width] = net
        gaps[width] = np.linalg.norm(g - f_kernel, axis=(1, 2)) / np.maximum(np.linalg.norm(f_kernel, axis=(1, 2)),
                                                                             1e-12)
    return LazyStudy(kernel, lr, steps, f_kernel, nets, gaps)


def lazy_values(p: Params, s: LazyStudy, task) -> dict:
    """Section 2's glued values: learning rate, final time, output gaps, accuracies of the widest
    network and of the kernel predictor, their agreement and the widest network's weight change."""
    widest = s.nets[p.train_widths[-1]]
    g_final = np.asarray(widest.outputs(widest.run.params[-1], task.x_test))
    labels = task.labels_test
    return {
        "lr": s.lr, "t_final": s.steps[-1] * s.lr,
        "lazy_gap_final_widest": s.gaps[p.train_widths[-1]][-1],
        "lazy_gap_final_narrowest": s.gaps[p.train_widths[0]][-1],
        "train_width_widest": p.train_widths[-1], "train_width_narrowest": p.train_widths[0],
        "clean_acc_net": float(np.mean(g_final.argmax(1) == labels)),
        "clean_acc_kernel": float(np.mean(s.f_kernel[-1].argmax(1) == labels)),
        "agreement": float(np.mean(g_final.argmax(1) == s.f_kernel[-1].argmax(1))),
        "weight_change_widest": widest.relative_weight_change(-1),
    }


def plot_lazy_gaps(p: Params, s: LazyStudy):
    """Relative gap between each network and the kernel predictor along training."""
    fig, ax = plotting.new_figure(width=5.0)
    for width in p.train_widths:
        ax.loglog(s.steps[1:] * s.lr, s.gaps[width][1:], "o-", label=f"width {width}")
    ax.set_xlabel("training time $t$ = steps × learning rate")
    ax.set_ylabel(r"$\|(f_\theta - f_{\theta_0}) - f_t\| \,/\, \|f_t\|$ on test images")
    ax.set_title("Trained network vs kernel predictor at the same $t$")
    ax.legend()
    return fig


@dataclasses.dataclass
class SpectralStudy:
    """Section 3: residual projections on the NTK eigenvectors, measured and predicted."""

    measured: np.ndarray  #: (checkpoints, n) the widest network's residual along each eigenvector
    theory_gd: np.ndarray  #: gradient descent on the linearised model
    theory_flow: np.ndarray  #: gradient flow
    idx: np.ndarray  #: 0-based indices of ``modes``
    scale: np.ndarray  #: ||v_i^T Y|| of those modes
    eigenvalues: np.ndarray


def spectral_study(p: Params, s: LazyStudy, task) -> SpectralStudy:
    """Residual modes of the widest trained network vs the linearised dynamics (Eq. 21 of the notes)."""
    pred = s.kernel.predictor
    widest = s.nets[p.train_widths[-1]]
    residuals = np.stack([np.asarray(widest.outputs(q, task.x_train)) for q in widest.run.params]) \
        - np.asarray(task.y_train)
    measured = lazy.residual_modes(np.asarray(pred.eigenvectors), residuals)  # (checkpoints, n)
    theory_gd = lazy.gradient_descent_residual_modes(pred, s.steps, s.lr)
    theory_flow = np.linalg.norm(np.asarray(pred.residual_projections(s.steps * s.lr)), axis=-1)
    idx = np.asarray(p.modes) - 1
    return SpectralStudy(measured, theory_gd, theory_flow, idx, theory_gd[0, idx], np.asarray(pred.eigenvalues))


def spectral_values(p: Params, sp: SpectralStudy) -> dict:
    """Section 3's glued values: largest deviations from discrete GD / gradient flow (in units of
    ||v_i^T Y||) and the eigenvalue ratio of the first and last mode shown."""
    idx = sp.idx
    return {
        "spectral_max_dev": (np.abs(sp.measured[:, idx] - sp.theory_gd[:, idx]) / sp.scale).max(),
        "spectral_max_dev_flow": (np.abs(sp.measured[:, idx] - sp.theory_flow[:, idx]) / sp.scale).max(),
        "lambda_ratio": sp.eigenvalues[idx[0]] / sp.eigenvalues[idx[-1]],
        "mode_first": p.modes[0], "mode_last": p.modes[-1],
    }


def plot_spectral(s: LazyStudy, sp: SpectralStudy):
    """Residual along each eigenvector shown (dots measured, lines GD, dotted flow) and the spectrum."""
    fig, axes = plotting.new_figure(ncols=2, width=4.4)
    t_axis = s.steps * s.lr
    idx, lam = sp.idx, sp.eigenvalues
    for i, colour in zip(idx, plotting.plt.cm.viridis(np.linspace(0, 0.9, len(idx)))):
        axes[0].semilogx(t_axis[1:], sp.measured[1:, i] / sp.scale[list(idx).index(i)], "o", color=colour, ms=4)
        axes[0].semilogx(t_axis[1:], sp.theory_gd[1:, i] / sp.theory_gd[0, i], "-", color=colour,
                         label=f"$i$ = {i + 1}")
        axes[0].semilogx(t_axis[1:], sp.theory_flow[1:, i] / sp.theory_gd[0, i], ":", color=colour)
    axes[0].set_xlabel("training time $t$")
    axes[0].set_ylabel(r"$\|v_i^\top R_t\| / \|v_i^\top Y\|$")
    axes[0].set_title("Residual along eigenvector $v_i$")
    axes[0].legend()
    axes[1].loglog(np.arange(1, lam.size + 1), lam, ".")
    axes[1].set_xlabel("index $i$")
    axes[1].set_ylabel(r"eigenvalue $\lambda_i$ of $\Theta(X, X)$")
    axes[1].set_title("NTK spectrum on the training set")
    return fig


def summary_text(slope: float, values: dict) -> str:
    """The headline numbers, rounded (the cell nbval compares)."""
    return "\n".join([
        f"fitted slope of the NTK error vs width:           {slope:.1f}",
        f"network vs kernel, relative output gap (widest):  {values['lazy_gap_final_widest']:.2f}",
        f"test accuracy, network / kernel predictor:        {values['clean_acc_net']:.2f} / "
        f"{values['clean_acc_kernel']:.2f}",
        f"agreement network / kernel predictor:             {values['agreement']:.2f}",
    ])


# ---------------------------------------------------------------------------------- claims

#: The chapter's claim register (issue 29): every claim's id, the source's words and where they
#: stand, threshold, direction and why, fixed before the runs that judge them.
REGISTER = REGISTER_DIR / "00_ntk_basics.yaml"


def claim_specs() -> dict:
    """``{id: ClaimSpec}`` of :data:`REGISTER` (:func:`ntknb.claims.load_register`), in register order."""
    return load_register(REGISTER)


def ntk_slope_interval(p: Params, errors):
    """t interval over initialisations of the log-log slope of NTK error vs width (``errors``:
    ``(widths, ntk_seeds)``); with one initialisation it is unbounded."""
    errors = np.asarray(errors, float)
    slopes = [lazy.loglog_slope(p.ntk_widths, errors[:, j])[0] for j in range(errors.shape[1])]
    return stats.mean_interval(slopes)


def lazy_gap_interval(f_net, f_kernel, seed: int = 0):
    """Relative distance ||f_net - f_kernel||_F / ||f_kernel||_F on the test points (arrays
    ``(n_test, k)``) with a percentile bootstrap interval over the test points."""
    d = np.sum((np.asarray(f_net, float) - np.asarray(f_kernel, float)) ** 2, axis=1)
    f = np.sum(np.asarray(f_kernel, float) ** 2, axis=1)

    def ratio(idx, axis=None):  # statistic of resampled point indices
        idx = np.asarray(idx).astype(int)
        return np.sqrt(d[idx].sum(axis=axis) / np.maximum(f[idx].sum(axis=axis), 1e-300))

    return stats.bootstrap_interval(np.arange(d.size, dtype=float), ratio, seed=seed)


def lazy_gap_slope_interval(widths, f_nets, f_kernel, seed: int = 0):
    """Least-squares slope of log(relative output distance) against log(width): the gap
    ``||f_net - f_kernel||_F / ||f_kernel||_F`` on the test points of each network of ``widths``
    (``f_nets``: one ``(n_test, k)`` array per width, ``f_kernel``: ``(n_test, k)``), with a
    percentile bootstrap interval over the test points (the same resampled points for every width;
    one network per width, so the interval reflects only the choice of test points)."""
    f_kernel = np.asarray(f_kernel, float)
    if len(widths) < 2 or len(f_nets) != len(widths):
        raise ValueError(f"parameter 'widths' must name at least two widths, one per network output; got {widths!r} "
                         f"for {len(f_nets)} outputs")
    d = np.stack([np.sum((np.asarray(g, float) - f_kernel) ** 2, axis=1) for g in f_nets])  # (widths, n)
    f = np.sum(f_kernel ** 2, axis=1)
    x = np.log(np.asarray(widths, float))
    x = x - x.mean()

    def slope(idx, axis=None):  # statistic of resampled point indices, (n,) or (n_boot, n)
        idx = np.asarray(idx).astype(int)
        log_gap = 0.5 * np.log(d[:, idx].sum(-1) / np.maximum(f[idx].sum(-1), 1e-300))  # (widths,) or (widths, B)
        b = np.tensordot(x, log_gap - log_gap.mean(0), axes=(0, 0)) / np.sum(x ** 2)
        return b if axis is not None else float(b)

    return stats.bootstrap_interval(np.arange(f.size, dtype=float), slope, seed=seed)


def claims(p: Params, errors, s: LazyStudy, task) -> list:
    """The chapter's claims (:class:`ntknb.claims.Claim`), in register order, built from
    :data:`REGISTER` (words, thresholds, directions and their justification live there): the NTK
    error slope (t interval over initialisations), the width trend of the trained networks' output
    gap to the kernel predictor (slope of log gap vs log width, bootstrap over test points) and the
    widest network's class agreement with the kernel predictor (Wilson interval)."""
    specs = claim_specs()
    nets = [s.nets[w] for w in p.train_widths]
    g_all = [np.asarray(net.outputs(net.run.params[-1], task.x_test)) for net in nets]
    g_final, f_final = g_all[-1], np.asarray(s.f_kernel[-1])
    n_test = int(g_final.shape[0])
    net = f"{p.dataset}, {p.n_train} train, FC-{p.depth} ReLU (NTK param.)"
    agree = int(np.sum(g_final.argmax(1) == f_final.argmax(1)))

    def claim(cid, iv, **fields):
        return Claim.from_register(specs[cid], measured=iv.estimate, low=iv.low, high=iv.high, **fields)

    slope = ntk_slope_interval(p, errors)
    out = [
        claim("ch00.ntk_error_slope", slope, n_seeds=slope.n, n_test=None,
              scale=f"{net}, widths {p.ntk_widths[0]}-{p.ntk_widths[-1]}, {p.probe_size} probe images"),
        claim("ch00.lazy_gap_width_trend", lazy_gap_slope_interval(p.train_widths, g_all, f_final, seed=p.seed),
              n_seeds=1, n_test=n_test,
              scale=f"{net}, widths {', '.join(map(str, p.train_widths))} (one network each), {p.total_steps} GD "
                    f"steps"),
        claim("ch00.agreement", stats.binomial_interval(agree, n_test), n_seeds=1, n_test=n_test,
              scale=f"{net}, width {p.train_widths[-1]}, {p.total_steps} GD steps"),
    ]
    order = list(specs)
    return sorted(out, key=lambda c: order.index(c.id))
