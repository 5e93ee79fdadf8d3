"""Chapter 00a: why robustness is hard, in models we can solve.

Three solvable models from Sec. 3 of the lecture notes (``kernels_data_physics``):

1. **The linear argument** (notes, Sec. 3 after Eq. 28; ``goodfellow2015explaining``): for
   ``f(x) = w.x`` the worst l-inf step of size eps is ``delta = eps sign(w)`` (``y = +1``) and
   moves the output by exactly ``eps ||w||_1`` — of order ``eps d`` when ``w_i = O(1)`` —
   while a random corner of the same box moves it by about ``eps ||w||_2 sqrt(2/pi)``, of
   order ``eps sqrt(d)``. Measured on synthetic weights and on ridge-regression linear
   classifiers on MNIST at several resolutions.
2. **Robustness needs more data** (notes, Sec. 3.1; ``schmidt2018adversarially``): the
   Gaussian model ``x ~ N(y theta*, sigma^2 I)``, ``||theta*||_2 = sqrt(d)`` (here
   ``theta* = (1, ..., 1)``), ``sigma = c d^(1/4)``, classifier ``w = mean(y_i x_i)``. For a
   fixed ``w`` both errors are closed forms (:func:`gaussian_errors`), so the sample size
   ``n*(d)`` at which each falls below a level is measured without test-set noise.
3. **The accuracy-robustness trade-off** (notes, Sec. 3.2; ``tsipras2019robustness``):
   ``x_0 = y`` w.p. ``p`` else ``-y``, ``x_1..x_d ~ N(eta y, 1)``, ``eta = 10 / sqrt(d)`` in
   the notes; exact and simulated clean / robust accuracy of the ``x_0`` classifier and of the
   average of ``x_1..x_d``, then the fc1 NTK kernel machine (``tsilivis2022ntk`` Eq. 7)
   trained on the same data: where its input gradient puts its l1 mass and its robust
   accuracy under :func:`ntknb.evaluation.robust_evaluation`.

The notebook ``notebooks/00a_robustness_toy_models.py`` only calls this module. The claims' words,
thresholds, directions and preconditions are registered in
``notebooks/claims/00a_robustness_toy_models.yaml`` (:data:`REGISTER`), before the runs that judge
them.
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
from IPython.display import HTML
from scipy import stats as _st

from ntknb import architectures, data, evaluation, kernels, plotting, report, schema, stats
from ntknb.claims import REGISTER_DIR, Claim, load_register

__all__ = ["Params", "synthetic_linear_study", "mnist_linear_study", "linear_values", "plot_linear", "mnist_table",
           "schmidt_study", "schmidt_values", "plot_schmidt", "tsipras_curves", "tsipras_ntk_study",
           "tsipras_ntk_values", "plot_tsipras", "build_claims", "summary_text"]

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
#: dimensions far beyond any simulation, for the typical-value prediction's asymptotic slope
FAR_DIMS = [4 ** 13, 4 ** 14, 4 ** 15]


@dataclasses.dataclass(frozen=True)
class Params(schema.SeededParams):
    """The rules for the parameters of ``notebooks/00a_robustness_toy_models.py`` (the
    defaults live in its ``parameters`` cell; field order = cell order)."""

    seed: int = schema.seed_param()
    n_seeds: int = schema.seed_count_param(max=100)
    # (1) the linear argument
    lin_eps: float = schema.param(schema.Float(min=0.0, max=1.0, min_inclusive=False))
    lin_dims: list = schema.param(schema.List(schema.Int(min=1, max=10**6), min_length=2, increasing=True))
    lin_resolutions: list = schema.param(schema.List(schema.Choice([1, 2, 4, 7, 14, 28]), min_length=2,
                                                     increasing=True))
    lin_classes: list = schema.param(schema.List(schema.Int(min=0, max=9), min_length=2, max_length=2))
    lin_n_train: int = schema.param(schema.Int(min=10))
    n_test: int = schema.param(schema.Int(min=10))
    lin_ridge: float = schema.param(schema.Float(min=0.0, min_inclusive=False))
    # (2) robustness needs more data
    schmidt_dims: list = schema.param(schema.List(schema.Int(min=16, max=2**24), min_length=3, increasing=True))
    schmidt_c: float = schema.param(schema.Float(min=0.0, min_inclusive=False))
    schmidt_eps: float = schema.param(schema.Float(min=0.0, max=1.0, min_inclusive=False, max_inclusive=False))
    schmidt_level: float = schema.param(schema.Float(min=0.0, max=0.5, min_inclusive=False, max_inclusive=False))
    schmidt_n_max: int = schema.param(schema.Int(min=2, max=10**6))
    schmidt_grid: int = schema.param(schema.Int(min=10, max=10_000))
    # (3) the trade-off
    tsipras_d: int = schema.param(schema.Int(min=1, max=10**6))
    tsipras_p: float = schema.param(schema.Float(min=0.5, max=1.0, min_inclusive=False, max_inclusive=False))
    tsipras_eta_scale: float = schema.param(schema.Float(min=0.0, min_inclusive=False))
    tsipras_eps_grid: list = schema.param(schema.List(schema.Float(min=0.0), min_length=2, increasing=True))
    tsipras_n_sim: int = schema.param(schema.Int(min=10, max=10**6))
    ntk_seeds: int = schema.param(schema.Int(min=1, max=schema.Ref("n_seeds")))
    ntk_n_train: int = schema.param(schema.Int(min=10, max=20_000))
    ntk_n_test: int = schema.param(schema.Int(min=10, max=100_000))
    ntk_eps: float = schema.param(schema.Float(min=0.0, min_inclusive=False))
    ntk_eps_extra: list = schema.param(schema.List(schema.Float(min=0.0, min_inclusive=False), min_length=1,
                                                   increasing=True))
    attack_iters: int = schema.param(schema.Int(min=1, max=schema.MAX_ATTACK_STEPS))

    def check(self):
        data.check_task_sizes("mnist", list(self.lin_classes), train=[("lin_n_train", self.lin_n_train)],
                              test=[("n_test", self.n_test)], classes_name="lin_classes")
        if 28 % self.lin_resolutions[-1] or any(28 % r for r in self.lin_resolutions):
            raise ValueError("parameter 'lin_resolutions' must divide 28")
        if self.tsipras_eta_scale / math.sqrt(self.tsipras_d) * max(self.tsipras_eps_grid) >= 1.0:
            raise ValueError("parameter 'tsipras_eps_grid' (in units of eta = tsipras_eta_scale / sqrt(tsipras_d)) "
                             "must stay below eps = 1, where x_0 itself can be flipped")

    @property
    def tsipras_eta(self) -> float:
        return self.tsipras_eta_scale / math.sqrt(self.tsipras_d)


# ================================================================ (1) the linear argument

def linear_worst_change(w, eps: float) -> np.ndarray:
    """Largest change of ``f(x) = w.x + b`` over ``||delta||_inf <= eps``: ``eps ||w||_1``
    (notes Sec. 3 after Eq. 28; ``goodfellow2015explaining`` Sec. 3), attained at
    ``delta = eps sign(w)``. ``w``: ``(..., d)``; returns ``(...)``."""
    return eps * np.abs(np.asarray(w, float)).sum(-1)


def linear_worst_change_box(w, x, eps: float, sign: float = 1.0, clip=(0.0, 1.0)) -> np.ndarray:
    """Largest *decrease* of ``sign * w.x`` over ``{x' : ||x' - x||_inf <= eps, x' in clip}``:
    the box is a product of intervals, so the worst ``x'`` moves each coordinate to the end of
    its interval against ``sign * w_i``. ``w``: ``(d,)``; ``x``: ``(n, d)``; ``sign``: scalar
    or ``(n,)``. Returns ``(n,)`` (equal to ``eps ||w||_1`` when ``clip`` is ``None``)."""
    w = np.asarray(w, float)
    x = np.asarray(x, float)
    s = np.broadcast_to(np.asarray(sign, float), x.shape[:1])[:, None]
    lo, hi = x - eps, x + eps
    if clip is not None:
        lo, hi = np.maximum(lo, clip[0]), np.minimum(hi, clip[1])
    x_worst = np.where(s * w > 0, lo, hi)
    return (s[:, 0] * ((x - x_worst) @ w))


def avg_pool(x, resolution: int) -> np.ndarray:
    """Average-pool NHWC images ``(n, 28, 28, C)`` to ``(n, resolution * resolution * C)``, float64
    (:func:`ntknb.data.average_pool` over blocks of ``28 / resolution``, flattened)."""
    x = np.asarray(x)
    return data.average_pool(x, x.shape[1] // resolution, dtype=np.float64).reshape(len(x), -1)


def fit_ridge(x, y, ridge: float):
    """Ridge regression with an unpenalised bias: ``min ||x w + b - y||^2 + ridge ||w||^2``.
    ``x``: ``(n, d)``, ``y``: ``(n,)``. Returns ``(w (d,), b)``."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    mx, my = x.mean(0), y.mean()
    xc = x - mx
    d = x.shape[1]
    if d <= x.shape[0]:
        w = np.linalg.solve(xc.T @ xc + ridge * np.eye(d), xc.T @ (y - my))
    else:  # dual form
        w = xc.T @ np.linalg.solve(xc @ xc.T + ridge * np.eye(len(x)), y - my)
    return w, float(my - mx @ w)


def random_corner_change(w, eps: float, n_draws: int, rng) -> float:
    """Mean ``|w.delta|`` over ``n_draws`` uniformly random corners ``delta in {-eps, eps}^d``
    (about ``eps ||w||_2 sqrt(2/pi)`` for large d)."""
    w = np.asarray(w, float)
    r = rng.choice([-1.0, 1.0], size=(n_draws, w.size))
    return float(eps * np.abs(r @ w).mean())


def synthetic_linear_study(p: Params) -> dict:
    """``w ~ N(0, I_d)`` for each d of ``lin_dims`` and seed: the worst-case change
    ``eps ||w||_1`` (checked against ``w.(x + eps sign w) - w.x`` at a random x), a random
    corner's change, and the formula ``E eps ||w||_1 = eps d sqrt(2/pi)``.
    Returns arrays ``(seeds, dims)`` and the formula ``(dims,)``."""
    worst, random, direct = (np.zeros((p.n_seeds, len(p.lin_dims))) for _ in range(3))
    for i, s in enumerate(p.seeds):
        rng = np.random.default_rng([s, 1])
        for j, d in enumerate(p.lin_dims):
            w = rng.standard_normal(d)
            x = rng.standard_normal(d)
            direct[i, j] = w @ (x + p.lin_eps * np.sign(w)) - w @ x
            worst[i, j] = linear_worst_change(w, p.lin_eps)
            random[i, j] = random_corner_change(w, p.lin_eps, 200, rng)
    formula = p.lin_eps * np.asarray(p.lin_dims, float) * SQRT_2_OVER_PI
    return dict(worst=worst, random=random, direct=direct, formula=formula)


def mnist_linear_study(p: Params, dataset) -> dict:
    """Ridge linear classifiers (labels ±1) on MNIST ``lin_classes``, average-pooled to each of
    ``lin_resolutions``, one per seed (a fresh class-balanced subsample per seed).

    Per seed and resolution: clean accuracy; the worst-case output change ``eps ||w||_1`` and
    the exact one inside ``[0, 1]`` (mean over test points, :func:`linear_worst_change_box`);
    a random corner's change; their ratio; the exact robust accuracy at ``lin_eps`` (linear
    model, box constraint: exact worst case); the median smallest flipping eps
    ``|f(x)| / ||w||_1`` (unclipped). Returns arrays ``(seeds, resolutions)``."""
    keys = ["clean_acc", "robust_acc", "worst", "worst_clipped", "random", "ratio", "eps_flip", "w_l1", "w_l2"]
    out = {k: np.zeros((p.n_seeds, len(p.lin_resolutions))) for k in keys}
    for i, s in enumerate(p.seeds):
        task = data.make_task(dataset, classes=tuple(p.lin_classes), n_train=p.lin_n_train, n_test=p.n_test, seed=s)
        rng = np.random.default_rng([s, 2])
        ytr, yte = task.y_train[:, 0].astype(float), task.y_test[:, 0].astype(float)
        for j, r in enumerate(p.lin_resolutions):
            xtr, xte = avg_pool(task.x_train, r), avg_pool(task.x_test, r)
            w, b = fit_ridge(xtr, ytr, p.lin_ridge)
            margin = yte * (xte @ w + b)
            drop = linear_worst_change_box(w, xte, p.lin_eps, sign=yte)
            out["clean_acc"][i, j] = np.mean(margin > 0)
            out["robust_acc"][i, j] = np.mean(margin - drop > 0)
            out["worst"][i, j] = linear_worst_change(w, p.lin_eps)
            out["worst_clipped"][i, j] = drop.mean()
            out["random"][i, j] = random_corner_change(w, p.lin_eps, 200, rng)
            out["eps_flip"][i, j] = np.median(np.abs(xte @ w + b) / np.abs(w).sum())
            out["w_l1"][i, j], out["w_l2"][i, j] = np.abs(w).sum(), np.linalg.norm(w)
        out["ratio"][i] = out["worst"][i] / out["random"][i]
    out["dims"] = np.asarray(p.lin_resolutions) ** 2
    return out


def loglog_slopes(x, ys) -> np.ndarray:
    """Least-squares slope of ``log y`` vs ``log x`` for each row of ``ys`` ``(k, len(x))``."""
    lx = np.log(np.asarray(x, float))
    ly = np.log(np.asarray(ys, float))
    lxc = lx - lx.mean()
    return (ly - ly.mean(-1, keepdims=True)) @ lxc / (lxc @ lxc)


def linear_values(p: Params, syn: dict, mn: dict) -> dict:
    """Section 1's glued values (means over seeds; slopes per seed, then averaged)."""
    s_worst = stats.mean_interval(loglog_slopes(p.lin_dims, syn["worst"]))
    s_rand = stats.mean_interval(loglog_slopes(p.lin_dims, syn["random"]))
    s_ratio = stats.mean_interval(loglog_slopes(mn["dims"], mn["ratio"]))
    ratio_full = stats.mean_interval(mn["ratio"][:, -1])
    return {
        "lin_eps_g": p.lin_eps,
        "lin_syn_slope_worst": s_worst.estimate, "lin_syn_slope_random": s_rand.estimate,
        "lin_syn_formula_max_dev": float(np.max(np.abs(syn["worst"].mean(0) / syn["formula"] - 1))),
        "lin_syn_direct_max_dev": float(np.max(np.abs(syn["direct"] - syn["worst"]) / syn["worst"])),
        "lin_syn_dmax": p.lin_dims[-1],
        "lin_syn_worst_dmax": float(syn["worst"][:, -1].mean()),
        "lin_syn_random_dmax": float(syn["random"][:, -1].mean()),
        "lin_d_full": int(mn["dims"][-1]), "lin_d_low": int(mn["dims"][0]),
        "lin_ratio_full": ratio_full.estimate, "lin_ratio_full_low": ratio_full.low,
        "lin_ratio_full_high": ratio_full.high,
        "lin_ratio_low_res": float(mn["ratio"][:, 0].mean()),
        "lin_ratio_slope": s_ratio.estimate, "lin_ratio_slope_low": s_ratio.low, "lin_ratio_slope_high": s_ratio.high,
        "lin_clean_acc_full": float(mn["clean_acc"][:, -1].mean()),
        "lin_robust_acc_full": float(mn["robust_acc"][:, -1].mean()),
        "lin_robust_acc_low_res": float(mn["robust_acc"][:, 0].mean()),
        "lin_clip_fraction_full": float((mn["worst_clipped"][:, -1] / mn["worst"][:, -1]).mean()),
        "lin_eps_flip_full": float(mn["eps_flip"][:, -1].mean()),
        "lin_eps_flip_low_res": float(mn["eps_flip"][:, 0].mean()),
    }


def mnist_table(p: Params, mn: dict):
    """Per-resolution means over seeds, as ``IPython.display.HTML``."""
    columns = ["d", "clean acc.", f"robust acc. (eps = {p.lin_eps:g})", "eps ||w||_1", "worst change in [0, 1]",
               "random corner", "worst / random", "median flipping eps"]
    keys = ["clean_acc", "robust_acc", "worst", "worst_clipped", "random", "ratio", "eps_flip"]
    rows = [[int(d)] + [float(mn[k][:, j].mean()) for k in keys] for j, d in enumerate(mn["dims"])]
    return HTML(report.html_table(columns, rows, floatfmt=".3g"))


def plot_linear(p: Params, syn: dict, mn: dict):
    """Left: synthetic worst / random changes vs d with the formulas; right: MNIST."""
    fig, axes = plotting.new_figure(ncols=2, width=4.4)
    d = np.asarray(p.lin_dims, float)
    ax = axes[0]
    ax.loglog(d, syn["worst"].mean(0), "o", label=r"worst step: $\epsilon\|w\|_1$")
    ax.loglog(d, syn["formula"], "k--", label=r"$\epsilon d\sqrt{2/\pi}$")
    ax.loglog(d, syn["random"].mean(0), "s", label="random corner")
    ax.loglog(d, p.lin_eps * np.sqrt(d) * SQRT_2_OVER_PI, ":", color="grey",
              label=r"$\epsilon\sqrt{d}\sqrt{2/\pi}$")
    ax.set_xlabel("dimension $d$")
    ax.set_title(r"Synthetic $w \sim N(0, I_d)$")
    ax.set_ylabel(f"output change (eps = {p.lin_eps:g})")
    ax.legend()
    ax = axes[1]
    dm = np.asarray(mn["dims"], float)
    ax.loglog(dm, mn["worst"].mean(0), "o-", label=r"$\epsilon\|w\|_1$")
    ax.loglog(dm, mn["worst_clipped"].mean(0), "^-", label="worst inside [0, 1]")
    ax.loglog(dm, mn["random"].mean(0), "s-", label="random corner")
    ax.set_xticks(dm, [f"{int(v)}" for v in dm])
    ax.minorticks_off()
    ax.set_xlabel("pixels $d$ (average-pooled MNIST)")
    ax.set_title(f"Ridge linear classifier, eps = {p.lin_eps:g}")
    ax.legend()
    return fig


# ================================================================ (2) robustness needs more data

def gaussian_errors(w, theta, sigma: float, eps: float = 0.0):
    """Exact errors of ``sign(w.x)`` on the Gaussian model ``x ~ N(y theta, sigma^2 I)``,
    ``y = ±1`` uniform (``schmidt2018adversarially``; notes Sec. 3.1).

    ``y w.x ~ N(w.theta, sigma^2 ||w||_2^2)`` for either label, and the worst l-inf
    perturbation of size eps lowers it by ``eps ||w||_1`` (:func:`linear_worst_change`), so

    * standard error ``= Phi(-w.theta / (sigma ||w||_2))``,
    * robust error ``= Phi((eps ||w||_1 - w.theta) / (sigma ||w||_2))``.

    ``w``: ``(..., d)``; ``theta``: ``(d,)``. Returns ``(standard, robust)``, each ``(...)``.
    """
    w = np.asarray(w, float)
    m = w @ np.asarray(theta, float)
    s = sigma * np.linalg.norm(w, axis=-1)
    return _st.norm.cdf(-m / s), _st.norm.cdf((eps * np.abs(w).sum(-1) - m) / s)


def schmidt_grid(p: Params) -> np.ndarray:
    """Sample sizes ``1 .. schmidt_n_max``, log-spaced, ``schmidt_grid`` points (unique integers)."""
    return np.unique(np.round(np.geomspace(1, p.schmidt_n_max, p.schmidt_grid)).astype(int))


def gaussian_error_path(d: int, ns, c: float, eps: float, rng):
    """Errors of ``w_n = mean_{i <= n} y_i x_i`` along one growing sample (``ns`` increasing).

    ``y_i x_i = theta* + sigma z_i`` exactly, so ``w_n = theta* + sigma S_n / n`` with
    ``S_n`` the sum of ``n`` standard normal vectors; the sums are drawn incrementally
    (``S_{n'} = S_n + sqrt(n' - n) g``), which is the same distribution as drawing the ``n'``
    samples. ``theta* = (1, ..., 1)`` (norm sqrt(d)), ``sigma = c d^(1/4)``.
    Returns ``(standard, robust)`` errors, each ``(len(ns),)``."""
    sigma = c * d ** 0.25
    theta = np.ones(d)
    total = np.zeros(d)
    prev = 0
    std, rob = np.zeros(len(ns)), np.zeros(len(ns))
    for k, n in enumerate(ns):
        total += math.sqrt(n - prev) * rng.standard_normal(d)
        prev = n
        std[k], rob[k] = gaussian_errors(theta + sigma * total / n, theta, sigma, eps)
    return std, rob


def crossing_n(ns, errors, level: float) -> float:
    """The smallest ``n`` at which ``errors`` (along ``ns``) is at most ``level``, interpolated
    linearly in ``(log n, log error)`` between the last grid point above and the first below;
    ``nan`` if it never falls below. ``1`` if it starts below."""
    ns = np.asarray(ns, float)
    e = np.asarray(errors, float)
    below = np.flatnonzero(e <= level)
    if below.size == 0:
        return math.nan
    k = below[0]
    if k == 0:
        return float(ns[0])
    l0, l1 = math.log(max(e[k - 1], 1e-300)), math.log(max(e[k], 1e-300))
    t = (l0 - math.log(level)) / (l0 - l1) if l0 != l1 else 1.0
    return float(math.exp(math.log(ns[k - 1]) + t * (math.log(ns[k]) - math.log(ns[k - 1]))))


def mean_abs_normal(mu, s):
    """``E|mu + s g|`` for ``g ~ N(0, 1)``: ``s sqrt(2/pi) exp(-mu^2 / 2 s^2) + mu (1 - 2 Phi(-mu / s))``."""
    mu, s = np.asarray(mu, float), np.asarray(s, float)
    return s * SQRT_2_OVER_PI * np.exp(-mu ** 2 / (2 * s ** 2)) + mu * (1 - 2 * _st.norm.cdf(-mu / s))


def schmidt_mean_field_nstar(d: int, c: float, eps: float, level: float, robust: bool, n_max: float = 1e9) -> float:
    """``n*`` predicted by replacing the random quantities of :func:`gaussian_errors` by their
    typical values for ``w_n = theta* + (sigma / sqrt(n)) g``: ``w.theta ~ d``,
    ``||w||_2^2 ~ d (1 + s^2)``, ``||w||_1 ~ d E|1 + s g|``, ``s = sigma / sqrt(n)``
    (notes Eq. 32, without dropping constants). Solved by bisection in ``log n``; ``nan`` if
    the error stays above ``level`` up to ``n_max``."""
    sigma = c * d ** 0.25

    def err(n):
        sn = sigma / math.sqrt(n)
        l1 = d * float(mean_abs_normal(1.0, sn)) if robust else 0.0
        return float(_st.norm.cdf((eps * l1 - d) / (sigma * math.sqrt(d * (1 + sn ** 2)))))

    if err(1.0) <= level:
        return 1.0
    if err(n_max) > level:
        return math.nan
    lo, hi = 0.0, math.log(n_max)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if err(math.exp(mid)) > level else (lo, mid)
    return math.exp(hi)


def schmidt_study(p: Params) -> dict:
    """``n*(d)`` for the standard and the robust error, per seed and d of ``schmidt_dims``.
    Returns ``nstar_standard``, ``nstar_robust`` ``(seeds, dims)`` and one seed's error paths."""
    ns = schmidt_grid(p)
    ns_std, ns_rob = np.zeros((p.n_seeds, len(p.schmidt_dims))), np.zeros((p.n_seeds, len(p.schmidt_dims)))
    paths = {}
    for i, s in enumerate(p.seeds):
        for j, d in enumerate(p.schmidt_dims):
            std, rob = gaussian_error_path(d, ns, p.schmidt_c, p.schmidt_eps, np.random.default_rng([s, 3, d]))
            ns_std[i, j], ns_rob[i, j] = crossing_n(ns, std, p.schmidt_level), crossing_n(ns, rob, p.schmidt_level)
            if i == 0:
                paths[d] = (std, rob)
    mf = {k: np.array([schmidt_mean_field_nstar(d, p.schmidt_c, p.schmidt_eps, p.schmidt_level, robust=r)
                       for d in p.schmidt_dims]) for k, r in (("standard", False), ("robust", True))}
    return dict(ns=ns, nstar_standard=ns_std, nstar_robust=ns_rob, paths=paths, mean_field=mf)


def schmidt_values(p: Params, sc: dict) -> tuple[dict, dict]:
    """Section 2's glued values and the intervals behind the claims: per-seed log-log slopes
    of ``n*`` vs ``d``, mean with a t-interval over seeds; the per-seed difference
    robust − standard likewise (``iv``: ``"standard"``, ``"robust"``, ``"gap"``; and
    ``"mean_field_robust"``, the exponent of the typical-value prediction of Eq. 32 over
    ``schmidt_dims``, a float: the precondition of ``ch00a.schmidt_robust_exponent``). Raises
    ``ValueError`` if an error never falls below the level within ``schmidt_n_max``."""
    for name in ("nstar_standard", "nstar_robust"):
        if np.isnan(sc[name]).any():
            raise ValueError(f"an error never fell below schmidt_level within schmidt_n_max = {p.schmidt_n_max}; "
                             "raise 'schmidt_n_max' (or 'schmidt_level')")
    s_std = loglog_slopes(p.schmidt_dims, sc["nstar_standard"])
    s_rob = loglog_slopes(p.schmidt_dims, sc["nstar_robust"])
    iv = {"standard": stats.mean_interval(s_std), "robust": stats.mean_interval(s_rob),
          "gap": stats.mean_interval(s_rob - s_std)}
    values = {
        "schmidt_standard_exponent": iv["standard"].estimate,
        "schmidt_standard_exponent_low": iv["standard"].low, "schmidt_standard_exponent_high": iv["standard"].high,
        "schmidt_robust_exponent": iv["robust"].estimate,
        "schmidt_robust_exponent_low": iv["robust"].low, "schmidt_robust_exponent_high": iv["robust"].high,
        "schmidt_exponent_gap": iv["gap"].estimate,
        "schmidt_d_min": p.schmidt_dims[0], "schmidt_d_max": p.schmidt_dims[-1],
        "schmidt_nstar_std_dmin": float(np.exp(np.log(sc["nstar_standard"][:, 0]).mean())),
        "schmidt_nstar_std_dmax": float(np.exp(np.log(sc["nstar_standard"][:, -1]).mean())),
        "schmidt_nstar_rob_dmin": float(np.exp(np.log(sc["nstar_robust"][:, 0]).mean())),
        "schmidt_nstar_rob_dmax": float(np.exp(np.log(sc["nstar_robust"][:, -1]).mean())),
        "schmidt_mf_robust_exponent": float(loglog_slopes(p.schmidt_dims, sc["mean_field"]["robust"][None])[0]),
        "schmidt_mf_standard_exponent": float(loglog_slopes(p.schmidt_dims, sc["mean_field"]["standard"][None])[0]),
        "schmidt_mf_robust_last": float(np.log(sc["mean_field"]["robust"][-1] / sc["mean_field"]["robust"][-2])
                                        / np.log(p.schmidt_dims[-1] / p.schmidt_dims[-2])),
        "schmidt_mf_far_exponent": float(loglog_slopes(FAR_DIMS, np.array([[schmidt_mean_field_nstar(
            d, p.schmidt_c, p.schmidt_eps, p.schmidt_level, robust=True) for d in FAR_DIMS]]))[0]),
        "schmidt_mf_far_d": FAR_DIMS[0],
        "schmidt_c_g": p.schmidt_c, "schmidt_eps_g": p.schmidt_eps, "schmidt_level_g": p.schmidt_level,
    }
    iv["mean_field_robust"] = values["schmidt_mf_robust_exponent"]
    return values, iv


def plot_schmidt(p: Params, sc: dict):
    """Left: one seed's error paths at the smallest and largest d; right: ``n*`` vs ``d``."""
    fig, axes = plotting.new_figure(ncols=2, width=4.4)
    for d, ls in ((p.schmidt_dims[0], ":"), (p.schmidt_dims[-1], "-")):
        std, rob = sc["paths"][d]
        axes[0].loglog(sc["ns"], std, ls, color="C0", label=f"standard, d = {d}")
        axes[0].loglog(sc["ns"], rob, ls, color="C3", label=f"robust, d = {d}")
    axes[0].axhline(p.schmidt_level, color="grey", lw=0.8)
    axes[0].set_ylim(1e-4, 1)
    axes[0].set_xlabel("training samples $n$")
    axes[0].set_ylabel("exact error of $w_n$")
    axes[0].set_title(f"Gaussian model, c = {p.schmidt_c:g}, eps = {p.schmidt_eps:g}")
    axes[0].legend()
    d = np.asarray(p.schmidt_dims, float)
    for key, colour, label in (("nstar_standard", "C0", "standard"), ("nstar_robust", "C3", "robust")):
        axes[1].loglog(np.repeat(d[None], p.n_seeds, 0).ravel(), sc[key].ravel(), "o", color=colour, alpha=0.4)
        axes[1].loglog(d, np.exp(np.log(sc[key]).mean(0)), "-", color=colour, label=label)
    axes[1].loglog(d, sc["mean_field"]["robust"], ":", color="C3", label="robust, typical-value prediction")
    ref = np.exp(np.log(sc["nstar_robust"][:, -1]).mean())
    axes[1].loglog(d, ref * np.sqrt(d / d[-1]), "k--", label=r"slope 1/2")
    axes[1].set_xlabel("dimension $d$")
    axes[1].set_ylabel(f"$n^*$: error below {p.schmidt_level:g}")
    axes[1].set_title("Samples needed")
    axes[1].legend()
    return fig


# ================================================================ (3) the trade-off

def tsipras_sample(n: int, d: int, p: float, eta: float, rng):
    """``n`` draws of the notes' Sec. 3.2 data (``tsipras2019robustness`` Eq. 1): ``y`` uniform
    ±1, ``x_0 = y`` w.p. ``p`` else ``-y``, ``x_1..x_d ~ N(eta y, 1)``. Returns
    ``x (n, d + 1)`` float32, ``y (n,)``."""
    y = rng.choice([-1.0, 1.0], size=n)
    x0 = np.where(rng.random(n) < p, y, -y)
    x = np.concatenate([x0[:, None], eta * y[:, None] + rng.standard_normal((n, d))], axis=1)
    return x.astype(np.float32), y


def tsipras_exact(eps, d: int, p: float, eta: float) -> dict:
    """Exact clean / robust accuracies (l-inf radius ``eps``, array) of

    * the robust-feature classifier ``sign(x_0)``: ``p`` while ``eps < 1`` (``x_0 = ±1`` can
      only be flipped by moving it by 1), 0 after;
    * the averaged classifier ``sign(mean(x_1..x_d))``: ``y`` times the mean is
      ``N(eta, 1/d)`` and the worst step lowers it by ``eps``, so ``Phi(sqrt(d) (eta - eps))``
      (notes Sec. 3.2: > 0.99 clean, ~0 at ``eps = 2 eta``).
    """
    eps = np.asarray(eps, float)
    return {"x0": np.where(eps < 1.0, p, 0.0), "average": _st.norm.cdf(math.sqrt(d) * (eta - eps))}


def tsipras_linear_margins(x, y, eps):
    """Worst-case margins of the two linear classifiers at each eps (exact for a linear model,
    no clipping): ``y x_0 - eps`` and ``y mean(x_1..x_d) - eps``. Returns two ``(len(eps), n)``."""
    eps = np.asarray(eps, float)[:, None]
    return y * x[:, 0] - eps, y * x[:, 1:].mean(1) - eps


def tsipras_curves(p: Params) -> dict:
    """Exact and simulated accuracies on ``eps = tsipras_eps_grid * eta``; simulated over
    ``n_seeds`` seeds of ``tsipras_n_sim`` points each (pooled, Wilson intervals)."""
    eta = p.tsipras_eta
    eps = np.asarray(p.tsipras_eps_grid) * eta
    exact = tsipras_exact(eps, p.tsipras_d, p.tsipras_p, eta)
    correct = {"x0": 0, "average": 0}
    for s in p.seeds:
        x, y = tsipras_sample(p.tsipras_n_sim, p.tsipras_d, p.tsipras_p, eta, np.random.default_rng([s, 4]))
        m0, ma = tsipras_linear_margins(x.astype(float), y, eps)
        correct["x0"] = correct["x0"] + (m0 > 0).sum(1)
        correct["average"] = correct["average"] + (ma > 0).sum(1)
    n = p.tsipras_n_sim * p.n_seeds
    sim = {k: [stats.binomial_interval(int(c), n) for c in v] for k, v in correct.items()}
    return dict(eps=eps, exact=exact, sim=sim, n=n)


def plot_tsipras(p: Params, tc: dict, ntk: dict | None = None):
    """Accuracy vs eps / eta: exact curves, simulated points with intervals, the NTK machine."""
    fig, ax = plotting.new_figure(width=5.0)
    u = np.asarray(p.tsipras_eps_grid)
    fine = np.linspace(u[0], u[-1], 200)
    ex = tsipras_exact(fine * p.tsipras_eta, p.tsipras_d, p.tsipras_p, p.tsipras_eta)
    for key, colour, label in (("x0", "C0", "sign($x_0$)"), ("average", "C3", "sign(mean $x_{1..d}$)")):
        ax.plot(fine, ex[key], "-", color=colour, label=f"{label}, exact")
        est = np.array([iv.estimate for iv in tc["sim"][key]])
        err = np.array([[iv.estimate - iv.low for iv in tc["sim"][key]], [iv.high - iv.estimate for iv in tc["sim"][key]]])
        ax.errorbar(u, est, yerr=err, fmt="o", color=colour, ms=4, label=f"{label}, simulated")
    if ntk is not None:
        u_ntk = [0.0] + list(p.ntk_eps_extra) + [p.ntk_eps]
        acc = [ntk["clean"].estimate] + [ntk["extra"][u].estimate for u in p.ntk_eps_extra] + [ntk["robust"].estimate]
        ax.plot(u_ntk, acc, "k^", ms=7, label="NTK kernel machine (clean; APGD/PGD)")
    ax.set_xlabel(r"$\epsilon / \eta$")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Tsipras et al. model, d = {p.tsipras_d}, p = {p.tsipras_p:g}")
    ax.legend(loc="center right", fontsize=8)
    return fig


def tsipras_ntk_study(p: Params) -> dict:
    """The fc1 NTK kernel machine (``tsilivis2022ntk`` Eq. 7 at t = inf, labels ±1, ridge
    1e-6 tr(K)/n) trained on ``ntk_n_train`` draws, evaluated on ``ntk_n_test`` fresh draws for each
    of the first ``ntk_seeds`` seeds:
    clean accuracy, robust accuracy at ``eps = ntk_eps * eta`` (and at ``ntk_eps_extra * eta``) under
    :func:`ntknb.evaluation.robust_evaluation` (APGD-CE, APGD-margin, PGD; no clipping), and
    the share of the input gradient's l1 norm on ``x_0`` (what a first-order l-inf attack can
    exploit: ``|df/dx_0| / ||grad_x f||_1``). Pooled over seeds (Wilson intervals for the
    accuracies, t-interval over seeds for the share)."""
    eta = p.tsipras_eta
    eps = p.ntk_eps * eta
    net = architectures.fully_connected(depth=1, width=1, out_dim=1)
    clean = robust = 0
    extra = {u: 0 for u in p.ntk_eps_extra}
    shares, mass0 = [], []
    for s in p.seeds[:p.ntk_seeds]:
        rng = np.random.default_rng([s, 5])
        x_tr, y_tr = tsipras_sample(p.ntk_n_train, p.tsipras_d, p.tsipras_p, eta, rng)
        x_te, y_te = tsipras_sample(p.ntk_n_test, p.tsipras_d, p.tsipras_p, eta, rng)
        k_tt = np.asarray(net.kernel_fn(jnp.asarray(x_tr), None, "ntk"), np.float64)
        reg = 1e-6 * np.trace(k_tt) / len(k_tt)
        alpha = jnp.asarray(np.linalg.solve(k_tt + reg * np.eye(len(k_tt)), y_tr[:, None]), jnp.float32)
        predict = kernels.make_predict_fn(net.kernel_fn, jnp.asarray(x_tr), alpha)
        grads = np.asarray(kernels.predictor_input_gradients(net.kernel_fn, jnp.asarray(x_tr), alpha,
                                                             jnp.asarray(x_te)))
        g = np.abs(grads)
        shares.append(float(np.mean(g[:, 0] / g.sum(1))))
        mass0.append(float(np.mean(g[:, 0] / g[:, 1:].mean(1))))
        rep = evaluation.robust_evaluation(predict, x_te, y_te[:, None], eps, seed=s, n_iter=p.attack_iters,
                                           clip=None, batch_size=None)
        clean += int(round(rep.clean_accuracy * p.ntk_n_test))
        robust += int(np.sum(rep.robust))
        for u in p.ntk_eps_extra:
            extra[u] += int(np.sum(evaluation.robust_evaluation(predict, x_te, y_te[:, None], u * eta, seed=s,
                                                                n_iter=p.attack_iters, clip=None,
                                                                batch_size=None).robust))
    n = p.ntk_n_test * p.ntk_seeds
    return {"clean": stats.binomial_interval(clean, n), "robust": stats.binomial_interval(robust, n),
            "share_x0": stats.mean_interval(shares), "x0_vs_mean_feature": stats.mean_interval(mass0),
            "extra": {u: stats.binomial_interval(k, n) for u, k in extra.items()}, "eps": eps, "n": n}


def tsipras_ntk_values(p: Params, tc: dict, ntk: dict) -> dict:
    """Section 3's glued values."""
    u = np.asarray(p.tsipras_eps_grid)
    j2 = int(np.argmin(np.abs(u - 2.0)))
    return {
        "tsipras_d_g": p.tsipras_d, "tsipras_p_g": p.tsipras_p, "tsipras_eta": p.tsipras_eta,
        "tsipras_eps_2eta": 2 * p.tsipras_eta,
        "tsipras_avg_clean_exact": float(tc["exact"]["average"][0]),
        "tsipras_avg_clean_sim": tc["sim"]["average"][0].estimate,
        "tsipras_avg_robust_2eta_exact": float(tc["exact"]["average"][j2]),
        "tsipras_avg_robust_2eta_sim": tc["sim"]["average"][j2].estimate,
        "tsipras_x0_clean_sim": tc["sim"]["x0"][0].estimate,
        "tsipras_x0_robust_2eta_sim": tc["sim"]["x0"][j2].estimate,
        "tsipras_n_sim_total": tc["n"],
        "ntk_clean_acc": ntk["clean"].estimate, "ntk_robust_acc": ntk["robust"].estimate,
        "ntk_robust_acc_high": ntk["robust"].high, "ntk_eps_g": ntk["eps"], "ntk_eps_units": p.ntk_eps,
        "ntk_share_x0": ntk["share_x0"].estimate, "ntk_x0_vs_mean_feature": ntk["x0_vs_mean_feature"].estimate,
        "ntk_tsipras_bound": p.tsipras_p / (1 - p.tsipras_p) * (1 - ntk["clean"].estimate),
        "ntk_n_train_g": p.ntk_n_train,
        "ntk_mid_units": p.ntk_eps_extra[-1],
        "ntk_robust_acc_mid": ntk["extra"][p.ntk_eps_extra[-1]].estimate,
        "tsipras_avg_exact_mid": float(tsipras_exact(p.ntk_eps_extra[-1] * p.tsipras_eta, p.tsipras_d, p.tsipras_p,
                                                     p.tsipras_eta)["average"]),
    }


# ================================================================ claims

#: The chapter's claim register (issue 29): every claim's id, the source's words and where they
#: stand, threshold, direction, preconditions and why, fixed before the runs that judge them.
REGISTER = REGISTER_DIR / "00a_robustness_toy_models.yaml"


def claim_specs() -> dict:
    """``{id: ClaimSpec}`` of :data:`REGISTER` (:func:`ntknb.claims.load_register`), in register order."""
    return load_register(REGISTER)


def build_claims(p: Params, lin: dict, mn: dict, iv: dict, tc: dict, ntk: dict | None) -> list[Claim]:
    """The chapter's claims, in register order, built from :data:`REGISTER` (words, thresholds,
    directions, preconditions and their justification live there) with what the run measured:

    * ``ch00a.linear_*``: the worst / random change of the full-resolution MNIST classifier and the
      slope of that ratio vs d (t intervals over seeds, ``mn``);
    * ``ch00a.schmidt_*``: the exponents of ``n*`` vs ``d`` and their gap (``iv`` of
      :func:`schmidt_values`); the robust one with the precondition ``prediction_reaches_threshold``
      measured as ``iv["mean_field_robust"]``, the exponent Eq. 32 predicts over ``schmidt_dims``
      with its constants kept;
    * ``ch00a.tsipras_*``: the averaged classifier's clean and ``eps = 2 eta`` accuracy (Wilson,
      ``tc``), the NTK machine's robust accuracy (``ntk``; left out when ``ntk`` is ``None``).
    """
    specs = claim_specs()

    def claim(cid, interval, **fields):
        return Claim.from_register(specs[cid], measured=interval.estimate, low=interval.low, high=interval.high,
                                   **fields)

    scale_lin = (f"MNIST {p.lin_classes[0]} vs {p.lin_classes[1]}, ridge linear, {p.lin_n_train} train, "
                 f"eps {p.lin_eps:g}, {len(p.lin_resolutions)} resolutions")
    scale_sc = (f"Gaussian model, c = {p.schmidt_c:g}, eps = {p.schmidt_eps:g}, level {p.schmidt_level:g}, "
                f"d = {p.schmidt_dims[0]}..{p.schmidt_dims[-1]}")
    ratio = stats.mean_interval(mn["ratio"][:, -1])
    slope = stats.mean_interval(loglog_slopes(mn["dims"], mn["ratio"]))
    sc = dict(n_test=None, scale=scale_sc, section="sec-schmidt")
    claims = [
        claim("ch00a.linear_worst_vs_random", ratio, n_seeds=ratio.n, n_test=p.n_test,
              scale=scale_lin + f", d = {int(mn['dims'][-1])}", section="sec-linear"),
        claim("ch00a.linear_ratio_slope", slope, n_seeds=slope.n, n_test=p.n_test, scale=scale_lin,
              section="sec-linear"),
        claim("ch00a.schmidt_robust_exponent", iv["robust"], n_seeds=iv["robust"].n,
              conditions={"prediction_reaches_threshold": float(iv["mean_field_robust"])}, **sc),
        claim("ch00a.schmidt_standard_exponent", iv["standard"], n_seeds=iv["standard"].n, **sc),
        claim("ch00a.schmidt_exponent_gap", iv["gap"], n_seeds=iv["gap"].n, **sc),
    ]
    j2 = int(np.argmin(np.abs(np.asarray(p.tsipras_eps_grid) - 2.0)))
    scale_ts = f"d = {p.tsipras_d}, p = {p.tsipras_p:g}, eta = {p.tsipras_eta_scale:g}/sqrt(d)"
    claims += [
        claim("ch00a.tsipras_average_clean", tc["sim"]["average"][0], n_seeds=p.n_seeds, n_test=tc["n"],
              scale=scale_ts + ", simulated", section="sec-tsipras"),
        claim("ch00a.tsipras_average_robust", tc["sim"]["average"][j2], n_seeds=p.n_seeds, n_test=tc["n"],
              scale=scale_ts + f", eps = {p.tsipras_eps_grid[j2]:g} eta, simulated", section="sec-tsipras"),
    ]
    if ntk is not None:
        claims.append(claim(
            "ch00a.tsipras_ntk_robust", ntk["robust"], n_seeds=p.ntk_seeds, n_test=ntk["n"],
            scale=scale_ts + f", fc1 NTK, {p.ntk_n_train} train, eps = {p.ntk_eps:g} eta, APGD-CE/APGD-margin/PGD",
            section="sec-tsipras"))
    return claims


def summary_text(values: dict) -> str:
    """Headline numbers, rounded (the cell nbval compares)."""
    return "\n".join([
        f"MNIST linear, worst / random change at d = {values['lin_d_full']}: {values['lin_ratio_full']:.0f}",
        f"Schmidt et al. exponents, standard / robust:    {round(values['schmidt_standard_exponent'], 1) + 0.0:.1f} / "
        f"{round(values['schmidt_robust_exponent'], 1) + 0.0:.1f}",
        f"Tsipras et al., averaged classifier clean acc.:  {values['tsipras_avg_clean_sim']:.2f}",
    ])
