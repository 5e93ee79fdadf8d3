"""Chapter 03: kernel machines built from robust features only (``tsilivis2022ntk``).

Three families of feature subsets of the analytic NTK predictor — (a) robustness threshold,
(b) spectral truncation, (c) robustness rank — each attacked as a whole machine, against the
full kernel and against adversarial training of the dual weights on the fixed kernel; on binary
CIFAR-10 and on MNIST.

Three disjoint sets of each CIFAR-10 seed's held-out images (issue 29, item 4):

* the **selection** points (``n_select``): each eigen-feature's own FGSM accuracy
  (:func:`ntknb.features.feature_sweep`), which builds the robust-only sets of families (a), (c);
* the **choice** points (``n_choose``): every choice of a machine, and nothing else — the "best"
  robust-only machine (:func:`best_robust_only`), the machine of the trade-off shortfall
  (:func:`tradeoff_choice`) and the early stop of standard training;
* the **evaluation** points (``n_eval``): only measured on — the chosen machines' clean and robust
  accuracy, the shortfall against the full kernel, the claims, the frontier table.

The choice has its own points rather than reusing the selection points: the robust-only sets were
built from their features' FGSM accuracy *on the selection points*, so every robust-only machine
looks more robust there than on fresh points, and by different amounts (most for sets whose
features barely passed a threshold); a choice made there would favour machines by that bias. On
the choice points no machine was built, so the maximum over the families is an honest pick, and
the evaluation points, on which nothing is chosen, measure the picked machine without the
selection effect of a maximum over about 25 machines.

The claims' words, thresholds, directions and preconditions are registered in
``notebooks/claims/03_robust_only_kernels.yaml`` (:data:`REGISTER`), before the runs that judge
them; the robustness bars :data:`ROBUST_LEVEL` and :data:`ROBUST_FRACTION` are fixed there too.

This module is the chapter's code; ``notebooks/03_robust_only_kernels.py`` only calls it:
:class:`Params` (the parameter schema), :func:`setup`, :func:`build_families`,
:func:`evaluate_families`, :func:`best_robust_only`, :func:`kernel_training`, :func:`mnist_study`
and the tables, figures and verdicts the page glues.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ntknb import architectures, data, features, kernel_machines, replicas, schema
from ntknb import robust_kernels as rk
from ntknb.claims import REGISTER_DIR, Claim, load_register
from ntknb.validation import SEED_LIMIT

__all__ = ["Params", "FAMILIES", "FINAL", "ROBUST_LEVEL", "ROBUST_FRACTION", "setup", "build_families",
           "evaluate_families", "best_robust_only", "tradeoff_choice", "shortfall", "kernel_training", "SeedRun",
           "cifar_seed_run", "cifar_seed_runs", "frontier_rows", "final_rows", "cifar_values", "plot_frontier", "mnist_study",
           "plot_mnist", "mnist_summary", "summary_text", "tradeoff_shortfall", "REGISTER", "claim_specs",
           "claims",
           "AT_COLUMNS", "FINAL_COLUMNS", "FRONTIER_COLUMNS", "MNIST_COLUMNS", "at_table"]

FAMILIES = ("(a) threshold", "(b) top-k eigenvalue", "(c) top-k robust")
ROBUST_ONLY = ("(a) threshold", "(c) top-k robust")

#: The robustness bar of the "best" robust-only machine: PGD accuracy at least this on the choice
#: points (two classes: the attacker does not push it below chance). Registered with
#: ``ch03.robust_only_pgd`` (its threshold) and ``ch03.robust_only_clean_shortfall``.
ROBUST_LEVEL = 0.5
#: Uncompromised robustness of ``ch03.robust_only_tradeoff``: robust accuracy at least this x clean
#: accuracy (the attack takes at most a quarter of the correct points); registered there.
ROBUST_FRACTION = 0.75


@dataclasses.dataclass(frozen=True)
class Params(schema.Params):
    """The rules for the parameters of ``notebooks/03_robust_only_kernels.py`` (the defaults
    live in its ``parameters`` cell; field order = cell order)."""

    seed: int = schema.param(schema.Int(min=0, max=SEED_LIMIT - 1))
    n_seeds: int = schema.param(schema.Int(min=1, max=100))
    classes: list = schema.param(schema.List(min_length=2, max_length=2))  # CIFAR-10 class names (check)
    architecture: str = schema.param(schema.Choice(architectures.ARCHITECTURE_NAMES))
    n_train: int = schema.param(schema.Int(min=20))
    n_select: int = schema.param(schema.Int(min=2))
    n_choose: int = schema.param(schema.Int(min=2))
    n_eval: int = schema.param(schema.Int(min=2))
    n_features: int = schema.param(schema.Int(min=2, max=schema.Ref("n_train")))
    eps: float = schema.param(schema.Float(min=0.0, max=1.0))
    gammas: list = schema.param(schema.List(schema.Float(min=0.0, max=1.0), min_length=1))
    top_k: list = schema.param(schema.List(schema.Int(min=1, max=schema.Ref("n_train")), min_length=1))
    robust_k: list = schema.param(schema.List(schema.Int(min=1, max=schema.Ref("n_features")), min_length=1))
    pgd_steps: int = schema.param(schema.Int(min=1, max=schema.MAX_ATTACK_STEPS))
    eval_iters: int = schema.param(schema.Int(min=1, max=schema.MAX_ATTACK_STEPS))
    standard_all: bool = schema.param(schema.Bool())
    at_steps: int = schema.param(schema.Int(min=1, max=schema.MAX_STEPS))
    at_batch_size: int = schema.param(schema.Int(min=1, max=schema.Ref("n_train")))
    at_lr_fraction: float = schema.param(schema.Float(min=0.0, max=1.0, min_inclusive=False))
    at_momentum: float = schema.param(schema.Float(min=0.0, max=1.0, max_inclusive=False))
    at_pgd_steps: int = schema.param(schema.Int(min=1, max=schema.MAX_ATTACK_STEPS))
    at_checkpoints: list = schema.param(schema.List(schema.Int(min=1, max=schema.Ref("at_steps")), min_length=1))
    mnist_n_train: int = schema.param(schema.Int(min=20))
    mnist_n_select: int = schema.param(schema.Int(min=10))
    mnist_n_eval: int = schema.param(schema.Int(min=10))
    mnist_eps: list = schema.param(schema.List(schema.Float(min=0.0, max=1.0)))
    mnist_gammas: list = schema.param(schema.List(schema.Float(min=0.0, max=1.0), min_length=1))
    mnist_top_k: list = schema.param(schema.List(schema.Int(min=1, max=schema.Ref("mnist_n_train")), min_length=1))
    mnist_robust_k: list = schema.param(schema.List(schema.Int(min=1, max=schema.Ref("n_features")), min_length=1))
    test_batch_size: int = schema.param(schema.Int(min=1))
    feature_batch_size: int = schema.param(schema.Int(min=1))

    def check(self) -> None:
        if any(not isinstance(c, str) for c in self.classes):
            raise ValueError(f"parameter 'classes' must be a list of 2 CIFAR-10 class names, got {self.classes!r}")
        # the CIFAR-10 pair of every replica and the notebook's MNIST task (data.make_task)
        data.check_task_sizes("cifar10", self.classes, train=[("n_train", self.n_train)],
                              test=[("n_select + n_eval + n_choose", self.n_select + self.n_eval + self.n_choose)])
        data.check_task_sizes("mnist", train=[("mnist_n_train", self.mnist_n_train)],
                              test=[("mnist_n_select + mnist_n_eval", self.mnist_n_select + self.mnist_n_eval)])
        if self.n_features > self.mnist_n_train and self.mnist_eps:
            raise ValueError(f"parameter 'n_features' must be at most mnist_n_train={self.mnist_n_train}, "
                             f"got {self.n_features}")

    @property
    def seeds(self) -> list:
        """The seeds of the replicas: ``seed, seed + 1, ..., seed + n_seeds - 1`` (data subsample,
        training minibatches and attack starts of each)."""
        return [self.seed + i for i in range(self.n_seeds)]

    @property
    def standard(self) -> dict:
        """Keyword arguments of :func:`ntknb.evaluation.robust_evaluation` (the standard evaluation:
        APGD-CE, APGD-margin and PGD with ``eval_iters`` iterations each, worst case per point)."""
        return dict(n_iter=self.eval_iters)

    @property
    def evaluated_checkpoints(self) -> list:
        """The training steps at which the kernel machines are evaluated: ``at_checkpoints``,
        plus the last step ``at_steps`` if it is not among them (the final machine is always
        evaluated)."""
        cps = list(self.at_checkpoints)
        return cps if self.at_steps in cps else cps + [self.at_steps]


def setup(p: Params, task, n_sel: int, out_dim: int, n_choose: int = 0) -> dict:
    """The analytic-NTK predictor of ``task`` (:class:`ntknb.kernel_machines.KernelModel`, float64
    Gram matrix, eigendecomposed) and the split of its (shuffled) held-out images into three
    disjoint sets (module docstring): the first ``n_sel`` (selection: ``x_sel``, ``y_sel``), the next
    ``n_choose`` (choice: ``x_choose``, ``y_choose``; empty for ``0``) and the rest (evaluation:
    ``x_eval``, ``y_eval``)."""
    arch = architectures.get_architecture(p.architecture, out_dim=out_dim)
    model = kernel_machines.KernelModel.build(arch, task.x_train, task.y_train, dtype=np.float64)
    cut = n_sel + n_choose
    return dict(arch=arch, k_train=model.k_train_train, pred=model.predictor, x_train=model.x_train,
                x_sel=task.x_test[:n_sel], y_sel=task.y_test[:n_sel],
                x_choose=task.x_test[n_sel:cut], y_choose=task.y_test[n_sel:cut],
                x_eval=task.x_test[cut:], y_eval=task.y_test[cut:])


def sweep(p: Params, s: dict, eps: float):
    """Clean and FGSM accuracy of each of the first ``n_features`` features on the selection set
    (:func:`ntknb.features.feature_sweep`)."""
    return features.feature_sweep(s["arch"].kernel_fn, s["x_train"], s["pred"], s["x_sel"], s["y_sel"], eps,
                                  indices=range(p.n_features), test_batch_size=p.test_batch_size,
                                  feature_batch_size=p.feature_batch_size)


def build_families(pred, sw, gammas, top_k, robust_k) -> dict:
    """``{family: [(tag, feature indices)]}`` of the three families."""
    fams = {f: [] for f in FAMILIES}
    for g in gammas:
        fams["(a) threshold"].append((f"γ={g:g}", rk.select_by_robustness(sw, g)))
    for k in top_k:
        fams["(b) top-k eigenvalue"].append((f"k={k}", rk.select_top_eigen(k, pred.n_train)))
    for k in robust_k:
        fams["(c) top-k robust"].append((f"k={k}", rk.select_top_robust(sw, k)))
    return fams


POINTS = ("eval", "choose")


def evaluate_families(p: Params, s: dict, fams: dict, eps: float, standard: dict | None = None,
                      seed: int | None = None, on: str = "eval", fgsm: bool = True) -> tuple:
    """Clean, FGSM (``fgsm``; else ``nan``) and PGD accuracy of every machine of ``fams`` and of the
    full kernel (last row) on the evaluation points (``on="eval"``) or the choice points
    (``on="choose"``) of :func:`setup`; with ``standard`` (keyword arguments of the standard
    evaluation) also its robust accuracy there (else ``nan``). Returns ``(rows, seconds)``, rows as
    dicts (``S``: the machine's feature indices), in the order of ``fams``."""
    if on not in POINTS:
        raise ValueError(f"parameter 'on' must be one of {list(POINTS)}, got {on!r}")
    machines = [(fam, tag, S) for fam, items in fams.items() for tag, S in items]
    machines.append(("full kernel", "all", np.arange(s["pred"].n_train)))
    A = np.stack([rk.subset_weights(s["pred"], S) for _, _, S in machines])
    sc = rk.evaluate_machines(s["arch"].kernel_fn, s["x_train"], A, s[f"x_{on}"], s[f"y_{on}"], eps,
                              pgd_steps=p.pgd_steps, batch_size=p.test_batch_size, standard=standard,
                              seed=p.seed if seed is None else seed, fgsm=fgsm)
    std = sc.standard if sc.standard is not None else np.full(len(machines), np.nan)
    rows = [dict(family=fam, tag=tag, n=len(S), clean=c, fgsm=f, pgd=q, standard=float(a), S=S)
            for (fam, tag, S), c, f, q, a in zip(machines, sc.clean, sc.fgsm, sc.pgd, std)]
    return rows, sc.seconds


def _robust_only(rows) -> list:
    """The candidate machines: families (a) and (c), non-empty feature sets."""
    return [r for r in rows if r["family"] in ROBUST_ONLY and r["n"] > 0]


def best_robust_only(rows) -> tuple:
    """The "best" robust-only machine (fixed in the register before computing it): among families
    (a) and (c), the highest clean accuracy with PGD accuracy at least :data:`ROBUST_LEVEL` (else the
    highest PGD accuracy), judged on the points of ``rows`` — the choice points in
    :func:`cifar_seed_run`, never the evaluation points. Returns ``(row, qualified)``."""
    robust_only = _robust_only(rows)
    j, qualified = rk.best_robust_only([r["clean"] for r in robust_only], [r["pgd"] for r in robust_only],
                                       ROBUST_LEVEL)
    return robust_only[j], qualified


def nontrivial_level(full_clean: float) -> float:
    """Half of the full kernel's gain over chance (0.5): ``0.5 * (0.5 + full clean accuracy)``."""
    return 0.5 * (0.5 + full_clean)


def shortfall(clean: float, robust: float, full_clean: float) -> float:
    """The trade-off shortfall of a machine (register, ``ch03.robust_only_tradeoff``):
    ``d = min(clean - nontrivial_level(full_clean), robust - ROBUST_FRACTION x clean)``, ``>= 0``
    exactly for a machine both non-trivial and uncompromised."""
    return float(min(clean - nontrivial_level(full_clean), robust - ROBUST_FRACTION * clean))


def _robust(r: dict) -> float:
    """A row's robust accuracy: the standard evaluation where it ran, else PGD."""
    return r["standard"] if np.isfinite(r["standard"]) else r["pgd"]


def tradeoff_choice(rows) -> tuple:
    """``(d, row)``: the robust-only machine of ``rows`` with the largest :func:`shortfall` on the
    points of ``rows`` (the choice points in :func:`cifar_seed_run`; the level from the full kernel,
    last row, on the same points; robust accuracy by :func:`_robust`) and that largest ``d``."""
    cands = _robust_only(rows)
    d = [shortfall(r["clean"], _robust(r), rows[-1]["clean"]) for r in cands]
    j = int(np.argmax(d))
    return float(d[j]), cands[j]


@dataclasses.dataclass
class KernelTraining:
    """Adversarial and standard training of the dual weights on the fixed kernel, evaluated at
    the checkpoints."""

    at: object  #: rk.KernelATRun of adversarial training
    std: object  #: the same optimiser on clean examples (eps 0)
    sc_at: object  #: rk.MachineScores of the adversarially trained checkpoints (None: not evaluated)
    sc_std: object


def kernel_training(p: Params, s: dict, y_train, seed: int | None = None, curves: bool = True) -> KernelTraining:
    """:func:`ntknb.robust_kernels.adversarial_train_kernel` at ``eps`` and at 0 with the same
    optimiser; with ``curves``, each checkpoint attacked as a whole machine on the evaluation set
    (the page's table and figure along training), else ``sc_at`` / ``sc_std`` are ``None``."""
    kw = dict(steps=p.at_steps, batch_size=p.at_batch_size, lr_fraction=p.at_lr_fraction, momentum=p.at_momentum,
              pgd_steps=p.at_pgd_steps, k_train_train=s["k_train"], seed=p.seed if seed is None else seed,
              checkpoints=p.evaluated_checkpoints)
    at = rk.adversarial_train_kernel(s["arch"].kernel_fn, s["x_train"], y_train, p.eps, **kw)
    std = rk.adversarial_train_kernel(s["arch"].kernel_fn, s["x_train"], y_train, 0.0, **kw)
    if not curves:
        return KernelTraining(at, std, None, None)
    sc_at, sc_std = (rk.evaluate_machines(s["arch"].kernel_fn, s["x_train"], run.alphas[1:], s["x_eval"],
                                          s["y_eval"], p.eps, pgd_steps=p.pgd_steps, batch_size=p.test_batch_size,
                                          fgsm=False)
                     for run in (at, std))
    return KernelTraining(at, std, sc_at, sc_std)


AT_COLUMNS = ["step", "AT clean", "AT PGD", "standard clean", "standard PGD"]


def at_table(kt: KernelTraining) -> list:
    return [[int(s), a, b, c, d] for s, a, b, c, d in
            zip(kt.at.checkpoints[1:], kt.sc_at.clean, kt.sc_at.pgd, kt.sc_std.clean, kt.sc_std.pgd)]


def mnist_study(p: Params, mn: dict) -> dict:
    """``{eps: rows}`` of :func:`evaluate_families` on MNIST for every ``mnist_eps`` (features
    selected at that eps); prints the time of each sweep and attack."""
    out = {}
    for e in p.mnist_eps:
        sw = sweep(p, mn, e)
        fams = build_families(mn["pred"], sw, p.mnist_gammas, p.mnist_top_k, p.mnist_robust_k)
        out[e], secs = evaluate_families(p, mn, fams, e)
        print(f"MNIST eps {e}: sweep {sw.seconds:.1f} s, attacked {len(out[e])} machines in {secs:.1f} s")
    return out


def plot_mnist(p: Params, mnist_rows: dict):
    """Clean vs PGD accuracy of the three families on MNIST, one panel per eps."""
    from ntknb import plotting

    fig, axes = plotting.new_figure(ncols=len(p.mnist_eps), width=4.4, height=4.0, squeeze=False)
    for ax, e in zip(axes[0], p.mnist_eps):
        rows = mnist_rows[e]
        curves = {}
        for fam in FAMILIES:
            rr = [r for r in rows if r["family"] == fam]
            curves[fam] = ([r["pgd"] for r in rr], [r["clean"] for r in rr], None)
        plotting.plot_clean_robust_frontier(ax, curves, {"full kernel": (rows[-1]["pgd"], rows[-1]["clean"])},
                                            title=f"MNIST, {p.architecture}, PGD eps {e:g}")
        ax.axhline(0.1, color="grey", lw=0.6, ls=":")
    return fig


MNIST_COLUMNS = ["eps", "full clean", "full PGD", "most robust robust-only machine", "features", "its clean",
                 "its PGD"]


def mnist_summary(p: Params, mnist_rows: dict) -> tuple:
    """``(glued values, table rows)``: per eps, the full kernel and the most robust robust-only machine."""
    values, table = {}, []
    for i, e in enumerate(p.mnist_eps):
        rows = mnist_rows[e]
        ro = [r for r in rows if r["family"] in ROBUST_ONLY and r["n"] > 0]
        jm = int(np.argmax([r["pgd"] for r in ro]))
        values.update({f"mnist_full_clean_{i}": rows[-1]["clean"], f"mnist_full_pgd_{i}": rows[-1]["pgd"],
                       f"mnist_most_robust_clean_{i}": ro[jm]["clean"], f"mnist_most_robust_pgd_{i}": ro[jm]["pgd"],
                       f"mnist_eps_{i}": e})
        table.append([e, rows[-1]["clean"], rows[-1]["pgd"], f"{ro[jm]['family']} {ro[jm]['tag']}", ro[jm]["n"],
                      ro[jm]["clean"], ro[jm]["pgd"]])
    return values, table


# ------------------------------------------------------------------------------ seeds


@dataclasses.dataclass
class SeedRun:
    """One replica of the CIFAR-10 experiment (its own data subsample, minibatches, attack starts).

    ``rows``: every machine of the three families and the full kernel (last) on the *evaluation*
    points, as in :func:`evaluate_families` (the frontier table; nothing is chosen on them);
    ``choice_rows``: the candidates (families (a), (c) and the full kernel, last) on the *choice*
    points, on which every choice is made:
    ``best`` / ``qualified`` (:func:`best_robust_only`), ``trade`` (the machine of
    :func:`tradeoff_choice`), ``early`` (the step of standard training with the highest PGD accuracy
    there: early stopping); ``kt``: the kernel training; ``final``:
    :class:`ntknb.robust_kernels.MachineScores` of the five machines of :data:`FINAL` on the
    evaluation points, with the standard evaluation."""

    seed: int
    sweep: object
    fams: dict
    rows: list
    choice_rows: list
    best: dict
    qualified: bool
    trade: dict
    kt: KernelTraining
    early: int
    final: object


#: The machines of every replica evaluated with the standard evaluation (order of ``SeedRun.final``).
FINAL = ("full kernel", "best robust-only", "trade-off choice", "kernel AT (last step)", "standard, early-stopped")


def cifar_seed_run(p: Params, cifar, seed: int) -> SeedRun:
    """The CIFAR-10 experiment for one seed: subsample, kernel, per-feature sweep (selection points),
    the families attacked on the choice points and on the evaluation points, the best robust-only
    machine and the trade-off machine chosen on the choice points, adversarial and standard training
    of the dual weights, early stopping of the standard training on the choice points, and the
    standard evaluation of :data:`FINAL` on the evaluation points. On the choice points only the
    candidates of a choice are attacked (families (a) and (c), PGD; the full kernel for the level);
    the checkpoints along training are evaluated for the first replica only (``p.seeds[0]``: the
    page's table and figure show it)."""
    task = data.make_task(cifar, classes=tuple(p.classes), n_train=p.n_train,
                          n_test=p.n_select + p.n_choose + p.n_eval, seed=seed)
    s = setup(p, task, p.n_select, 1, n_choose=p.n_choose)
    sw = sweep(p, s, p.eps)
    fams = build_families(s["pred"], sw, p.gammas, p.top_k, p.robust_k)
    std = p.standard if p.standard_all else None
    choice_rows, _ = evaluate_families(p, s, {f: fams[f] for f in ROBUST_ONLY}, p.eps, standard=std, seed=seed,
                                       on="choose", fgsm=False)
    rows, _ = evaluate_families(p, s, fams, p.eps, standard=std, seed=seed)
    best, qualified = best_robust_only(choice_rows)
    _, trade = tradeoff_choice(choice_rows)
    kt = kernel_training(p, s, task.y_train, seed=seed, curves=seed == p.seeds[0])
    kf, xt = s["arch"].kernel_fn, s["x_train"]
    on_choice = rk.evaluate_machines(kf, xt, kt.std.alphas[1:], s["x_choose"], s["y_choose"], p.eps,
                                     pgd_steps=p.pgd_steps, batch_size=p.test_batch_size, fgsm=False)
    early = int(np.argmax(on_choice.pgd))
    alphas = np.stack([rk.subset_weights(s["pred"], S) for S in (rows[-1]["S"], best["S"], trade["S"])]
                      + [kt.at.alphas[-1], kt.std.alphas[1:][early]])
    final = rk.evaluate_machines(kf, xt, alphas, s["x_eval"], s["y_eval"], p.eps, pgd_steps=p.pgd_steps,
                                 batch_size=p.test_batch_size, standard=p.standard, seed=seed)
    print(f"seed {seed}: best robust-only {best['family']} {best['tag']}; trade-off choice {trade['family']} "
          f"{trade['tag']}; early stop at step {int(kt.std.checkpoints[1:][early])}; standard evaluation "
          f"{final.seconds:.0f} s")
    return SeedRun(seed, sw, fams, rows, choice_rows, best, qualified, trade, kt, int(kt.std.checkpoints[1:][early]),
                   final)


def cifar_seed_runs(p: Params, cifar) -> list:
    """:func:`cifar_seed_run` for every seed of :attr:`Params.seeds`, in their order, through
    :func:`ntknb.replicas.run_replicas`: one after the other on one device, spread over the devices
    and ``jax.distributed`` processes when there are several (the same numbers)."""
    return replicas.run_replicas(lambda seed: cifar_seed_run(p, cifar, seed), p.seeds)


def _accuracy(values):
    """Mean accuracy over the seeds with its 95 % logit-t interval, inside [0, 1]
    (:func:`ntknb.stats.mean_interval` with ``bounds=(0, 1)``): an :class:`ntknb.stats.Interval`."""
    from ntknb import stats

    return stats.mean_interval(values, bounds=(0, 1))


def frontier(runs: list) -> list:
    """Per machine (family, setting), on the evaluation points: ``{"family", "tag", "n"`` (mean
    number of features), ``"clean", "pgd"`` (:func:`_accuracy` intervals over the seeds),
    ``"fgsm", "standard"`` (means; ``nan`` where the standard evaluation was not run)``}``."""
    out = []
    for j, r0 in enumerate(runs[0].rows):
        col = lambda key: [run.rows[j][key] for run in runs]  # noqa: E731
        out.append({"family": r0["family"], "tag": r0["tag"], "n": float(np.mean(col("n"))),
                    "clean": _accuracy(col("clean")), "pgd": _accuracy(col("pgd")),
                    "fgsm": float(np.mean(col("fgsm"))), "standard": float(np.mean(col("standard")))})
    return out


FRONTIER_COLUMNS = ["family", "setting", "features (mean)", "clean [95 % interval]", "FGSM",
                    "PGD [95 % interval]", "standard eval."]


def frontier_rows(runs: list) -> list:
    """:func:`frontier` as table rows (:data:`FRONTIER_COLUMNS`)."""
    return [[m["family"], m["tag"], m["n"], m["clean"].text(), m["fgsm"], m["pgd"].text(), m["standard"]]
            for m in frontier(runs)]


FINAL_COLUMNS = ["machine", "clean [95 % interval]", "PGD [95 % interval]", "standard eval. [95 % interval]",
                 "max |PGD - standard|"]


def final_rows(runs: list) -> list:
    """The machines of :data:`FINAL`: means over the seeds (evaluation points) with 95 % logit-t
    intervals inside [0, 1], and the largest gap between PGD and the standard evaluation over the
    seeds."""
    out = []
    for j, name in enumerate(FINAL):
        c = [run.final.clean[j] for run in runs]
        q = [run.final.pgd[j] for run in runs]
        a = [run.final.standard[j] for run in runs]
        out.append([name, _accuracy(c).text(), _accuracy(q).text(), _accuracy(a).text(),
                    float(np.max(np.abs(np.subtract(q, a))))])
    return out


def _modal(names: list) -> tuple:
    """``(name, count)`` of the most frequent name; ties: the first seed's (never set order, which
    varies with the hash seed)."""
    name = max(names, key=names.count)
    return name, names.count(name)


def cifar_values(p: Params, runs: list) -> dict:
    """The glued CIFAR-10 numbers: means over the seeds (standard evaluation for "robust")."""
    fin = lambda attr, j: float(np.mean([getattr(run.final, attr)[j] for run in runs]))  # noqa: E731
    best_name, best_count = _modal([f"{run.best['family']} {run.best['tag']}" for run in runs])
    trade_name, trade_count = _modal([f"{run.trade['family']} {run.trade['tag']}" for run in runs])
    return {
        "full_kernel_clean_acc": fin("clean", 0), "full_kernel_robust_acc": fin("standard", 0),
        "full_kernel_pgd_acc": fin("pgd", 0),
        "full_kernel_fgsm_acc": float(np.mean([run.rows[-1]["fgsm"] for run in runs])),
        "best_robust_only_clean_acc": fin("clean", 1), "best_robust_only_robust_acc": fin("standard", 1),
        "best_robust_only_name": best_name, "best_robust_only_name_count": best_count,
        "best_qualified_count": int(sum(run.qualified for run in runs)),
        "trade_choice_name": trade_name, "trade_choice_name_count": trade_count,
        "trade_choice_clean_acc": fin("clean", 2), "trade_choice_robust_acc": fin("standard", 2),
        "trade_shortfall_choice": float(np.mean([tradeoff_choice(run.choice_rows)[0] for run in runs])),
        "trade_shortfall_eval": float(np.mean([tradeoff_shortfall(run) for run in runs])),
        "kernel_at_clean_acc": fin("clean", 3), "kernel_at_robust_acc": fin("standard", 3),
        "kernel_early_clean_acc": fin("clean", 4), "kernel_early_robust_acc": fin("standard", 4),
        "early_stop_steps": ", ".join(str(run.early) for run in runs),
        "pgd_standard_max_gap": float(np.max([np.max(np.abs(run.final.pgd - run.final.standard)) for run in runs])),
        "nontrivial_level": float(np.mean([nontrivial_level(run.final.clean[0]) for run in runs])),
        "robust_level_glued": ROBUST_LEVEL, "robust_fraction_glued": ROBUST_FRACTION,
        "eval_iters_glued": p.eval_iters, "n_eval_glued": p.n_eval, "n_choose_glued": p.n_choose,
        "n_select_glued": p.n_select,
    }


def plot_frontier(p: Params, runs: list):
    """Clean vs PGD accuracy (evaluation points; means over seeds, logit-t error bars) of every family, of
    the kernel-training checkpoints (first seed) and of the full kernel (left); the training losses
    of the first seed (right). Returns the figure."""
    from ntknb import plotting

    fig, axes = plotting.new_figure(ncols=2, width=4.6, height=4.0)
    rows = frontier(runs)
    curves = {}

    def bars(ivs):  # asymmetric error bars: the logit-t intervals stay inside [0, 1]
        return [[iv.estimate - iv.low for iv in ivs], [iv.high - iv.estimate for iv in ivs]]

    for fam in FAMILIES:
        rr = [r for r in rows if r["family"] == fam]
        pgd, clean = [r["pgd"] for r in rr], [r["clean"] for r in rr]
        curves[fam] = ([iv.estimate for iv in pgd], [iv.estimate for iv in clean], [r["tag"] for r in rr])
        axes[0].errorbar(curves[fam][0], curves[fam][1], xerr=bars(pgd), yerr=bars(clean), fmt="none",
                         ecolor="grey", lw=0.6)
    kt = runs[0].kt
    curves["adversarial training (checkpoints, seed 1)"] = (kt.sc_at.pgd, kt.sc_at.clean, kt.at.checkpoints[1:])
    curves["standard training (checkpoints, seed 1)"] = (kt.sc_std.pgd, kt.sc_std.clean, kt.std.checkpoints[1:])
    plotting.plot_clean_robust_frontier(
        axes[0], curves, {"full kernel": (rows[-1]["pgd"].estimate, rows[-1]["clean"].estimate)},
        title=f"CIFAR-10 {p.classes[0]} vs {p.classes[1]}, {p.architecture}, PGD eps {p.eps * 255:.0f}/255")
    axes[0].axhline(0.5, color="grey", lw=0.6, ls=":")
    axes[1].plot(kt.at.train_loss, lw=0.8, label="adversarial (PGD examples)")
    axes[1].plot(kt.std.train_loss, lw=0.8, label="standard (clean examples)")
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("minibatch training loss")
    axes[1].legend(fontsize=8)
    axes[1].set_title("training the dual weights on a fixed kernel (seed 1)", fontsize=9)
    return fig


def summary_text(p: Params, runs: list, mnist_rows: dict) -> str:
    """The headline numbers (the cell nbval compares): means over the seeds."""
    v = cifar_values(p, runs)
    lines = [
        f"CIFAR-10 ({len(runs)} seeds x {p.n_eval} evaluation points), clean / standard-evaluation robust accuracy:",
        f"  full kernel              {v['full_kernel_clean_acc']:.2f} / {v['full_kernel_robust_acc']:.2f}",
        f"  best robust-only machine {v['best_robust_only_clean_acc']:.2f} / {v['best_robust_only_robust_acc']:.2f}",
        f"  trade-off choice         {v['trade_choice_clean_acc']:.2f} / {v['trade_choice_robust_acc']:.2f}",
        f"  kernel AT (last step)    {v['kernel_at_clean_acc']:.2f} / {v['kernel_at_robust_acc']:.2f}",
        f"  standard, early-stopped  {v['kernel_early_clean_acc']:.2f} / {v['kernel_early_robust_acc']:.2f}",
    ]
    for e in p.mnist_eps:
        lines.append(f"MNIST eps {e:g} full kernel (seed {p.seed}): clean {mnist_rows[e][-1]['clean']:.2f}, "
                     f"PGD {mnist_rows[e][-1]['pgd']:.2f}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- claims

#: The chapter's claim register (issue 29): every claim's id, the paper's words and where they
#: stand, threshold, direction, preconditions and why, fixed before the runs that judge them.
REGISTER = REGISTER_DIR / "03_robust_only_kernels.yaml"


def claim_specs() -> dict:
    """``{id: ClaimSpec}`` of :data:`REGISTER` (:func:`ntknb.claims.load_register`), in register order."""
    return load_register(REGISTER)


def tradeoff_shortfall(run: SeedRun) -> float:
    """The trade-off shortfall ``d`` (:func:`shortfall`) of one seed's trade-off machine — chosen on the
    choice points (:func:`tradeoff_choice`) — measured on the evaluation points: its clean accuracy
    and standard-evaluation robust accuracy there, the level from the full kernel's clean accuracy
    on the same points (``run.final``, :data:`FINAL` rows 0 and 2)."""
    return shortfall(float(run.final.clean[2]), float(run.final.standard[2]), float(run.final.clean[0]))


def claims(p: Params, runs: list) -> list:
    """The chapter's claims, in register order, built from :data:`REGISTER` (words, thresholds,
    directions, preconditions and their justification live there) with what the replicas of
    :func:`cifar_seed_run` measured on the evaluation points (every machine chosen on the choice points):

    * ``ch03.full_kernel_not_robust``: the full kernel's standard-evaluation robust accuracy pooled over
      seeds and points (:func:`ntknb.stats.pooled_proportion_interval`);
    * ``ch03.robust_only_clean_shortfall``: per seed, clean accuracy of the best robust-only machine minus
      :func:`nontrivial_level` of the full kernel, logit-t interval over the seeds in ``[-1, 1]``;
    * ``ch03.robust_only_pgd``: the best robust-only machine's robust accuracy, pooled;
    * ``ch03.robust_only_tradeoff``: :func:`tradeoff_shortfall` per seed, logit-t in ``[-1, 1]``;
    * ``ch03.kernel_at_vs_standard``: paired bootstrap of AT minus early-stopped standard training over
      the evaluation points of all seeds.

    Preconditions: ``full_kernel_accurate`` (the full kernel's mean clean accuracy),
    ``robust_machine_at_bar`` (the number of seeds in which no robust-only machine reached
    :data:`ROBUST_LEVEL` on the choice points), ``at_nontrivial`` (mean over the seeds of AT's clean
    accuracy minus the non-trivial level)."""
    from ntknb import stats

    specs = claim_specs()
    n = int(runs[0].final.n_test)
    k = len(runs)
    per = lambda attr, j: np.array([float(getattr(run.final, attr)[j]) for run in runs])  # noqa: E731
    pooled = lambda j: stats.pooled_proportion_interval([run.final.standard_correct[j] for run in runs])  # noqa: E731
    full_clean = per("clean", 0)
    levels = np.array([nontrivial_level(c) for c in full_clean])
    scale = (f"CIFAR-10 {' vs '.join(p.classes)}, {p.n_train} train, {p.architecture} analytic NTK, eps {p.eps:.4g}, "
             f"standard evaluation ({p.eval_iters} iterations), {k} seeds x {n} points")
    chosen = f"chosen on {p.n_choose} choice points per seed, apart from the {p.n_select} selection points"
    best = f"{scale}; best robust-only machine per seed, {chosen}"
    accurate = {"full_kernel_accurate": float(np.mean(full_clean))}
    at_bar = {"robust_machine_at_bar": float(sum(not run.qualified for run in runs))}
    paired = stats.paired_comparison(np.concatenate([run.final.standard_correct[3] for run in runs]),
                                     np.concatenate([run.final.standard_correct[4] for run in runs]), seed=p.seed)

    def claim(cid, iv, scale_, conditions, n_seeds=k):
        return Claim.from_register(specs[cid], measured=iv.estimate, low=iv.low, high=iv.high, n_seeds=n_seeds,
                                   n_test=n * k, scale=scale_, conditions=conditions)

    out = [
        claim("ch03.full_kernel_not_robust", pooled(0), scale, accurate),
        claim("ch03.robust_only_clean_shortfall", stats.mean_interval(per("clean", 1) - levels, bounds=(-1, 1)),
              best, {**accurate, **at_bar}),
        claim("ch03.robust_only_pgd", pooled(1), best, at_bar),
        claim("ch03.robust_only_tradeoff", stats.mean_interval([tradeoff_shortfall(run) for run in runs],
                                                               bounds=(-1, 1)),
              f"{scale}; families (a) and (c), the machine of the largest shortfall {chosen} (PGD-{p.pgd_steps})",
              accurate),
        claim("ch03.kernel_at_vs_standard", paired.difference,
              f"{scale}; {p.at_steps} steps of dual-weight training, early stop {chosen}",
              {"at_nontrivial": float(np.mean(per("clean", 3) - levels))}),
    ]
    order = list(specs)
    return sorted(out, key=lambda c: order.index(c.id))
