"""Chapter 06, the page's runs: the parameter schema (:class:`Params`), the training variants
(:data:`LABEL`, :func:`variant_config`), the data (:class:`ChapterData`, :func:`prepare_data`), every run
(:func:`run_all`), the standard evaluation (:func:`evaluate_run`, :func:`evaluate_all`), and the tables,
figures and summaries the page glues (descriptions, no verdicts). Part of
:mod:`ntknb.chapters.ch06_overfitting`.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from ntknb import adversaries, data, training
from ntknb import ntk_dynamics as nd
from ntknb import replicas, schema, stats
from ntknb.chapters.ch06_overfitting.variants import (NoiseFGSM, VariantRun, ae_specialization_matrix,
                                                      distance_to_reference, run_variant)
from ntknb.validation import SEED_LIMIT

__all__ = ["Params", "LABEL", "SEEDED_VARIANTS", "FIRST_SEED_VARIANTS", "setting_text", "make_model",
           "variant_config", "ChapterData", "prepare_data", "run_one", "strong_points", "run_all", "evaluate_run",
           "evaluate_all", "interval_text", "evaluation_columns", "evaluation_rows", "evaluation_summary",
           "COLLAPSE_COLUMNS", "collapse_rows", "fgsm_runs", "fgsm_summary", "plot_fgsm_runs", "KERNEL_VARIANTS",
           "specialization_matrices", "ks_strengths", "ks_over_seeds", "plot_distances_to_fgsm",
           "plot_shared_augmentation", "plot_all_variants", "variant_stats", "fix_summary"]


# ----------------------------------------------------------------------------- the chapter

#: The probe set is drawn with seed ``seed + PROBE_SEED_OFFSET`` (apart from every training seed).
PROBE_SEED_OFFSET = 1000


@dataclasses.dataclass(frozen=True)
class Params(schema.Params):
    """The rules for the parameters of ``notebooks/06_catastrophic_overfitting.py`` (the
    defaults live in its ``parameters`` cell; field order = cell order)."""

    seed: int = schema.param(schema.Int(min=0, max=SEED_LIMIT - 1))
    n_seeds: int = schema.param(schema.Int(min=1, max=20))
    dataset: str = schema.param(schema.Choice(["cifar10", "mnist"]))
    model_name: str = schema.param(schema.Choice(["cnn", "resnet"]))
    width: int = schema.param(schema.Int(min=1, max=schema.MAX_WIDTH))
    hidden: int = schema.param(schema.Int(min=1, max=schema.MAX_WIDTH))
    resnet_stages: list = schema.param(schema.List(schema.Int(min=1, max=128), min_length=1, max_length=6))
    n_train: int = schema.param(schema.Int(min=20))
    n_test: int = schema.param(schema.Int(min=10))
    n_monitor: int = schema.param(schema.Int(min=1, max=schema.Ref("n_train")))
    kernel_every: int = schema.param(schema.Int(min=1))
    probe_per_class: int = schema.param(schema.Int(min=1, max=100))
    epochs: int = schema.param(schema.Int(min=3, max=schema.MAX_EPOCHS))
    clean_epochs: int = schema.param(schema.Int(min=0, max=schema.Ref("epochs", -2)))
    learning_rate: float = schema.param(schema.Float(min=0.0, min_inclusive=False))
    lr_decay_epochs: list = schema.param(schema.List(schema.Int(min=1, max=schema.Ref("epochs", -1)), max_length=4,
                                                     increasing=True))
    lr_decay_factor: float = schema.param(schema.Float(min=0.0, max=1.0, min_inclusive=False))
    momentum: float = schema.param(schema.Float(min=0.0, max=1.0, max_inclusive=False))
    weight_decay: float = schema.param(schema.Float(min=0.0))
    batch_size: int = schema.param(schema.Int(min=1, max=schema.Ref("n_train")))
    eps: float = schema.param(schema.Float(min=0.0, max=1.0, min_inclusive=False))
    fgsm_step: float = schema.param(schema.Float(min=0.0, min_inclusive=False))
    noise_scale: float = schema.param(schema.Float(min=0.0, min_inclusive=False))
    nfgsm_noise: float = schema.param(schema.Float(min=0.0))
    attack_steps: int = schema.param(schema.Int(min=1, max=schema.MAX_ATTACK_STEPS))
    eval_attack_steps: int = schema.param(schema.Int(min=1, max=schema.MAX_ATTACK_STEPS))
    eval_n_test: int = schema.param(schema.Int(min=10, max=schema.Ref("n_test")))
    eval_iter: int = schema.param(schema.Int(min=1, max=schema.MAX_ATTACK_STEPS))
    strong_iter: int = schema.param(schema.Int(min=1, max=schema.Ref("eval_iter")))
    augment: str = schema.param(schema.Choice(["none", "crop", "crop_flip"]))
    shared_augment: str = schema.param(schema.Choice(["crop_shared", "crop_flip_shared"]))
    crop_padding: int = schema.param(schema.Int(min=1, max=14))  # at most half the smaller image side (MNIST, 28 px)
    collapse_fraction: float = schema.param(schema.Float(min=0.0, max=1.0, min_inclusive=False,
                                                         max_inclusive=False))
    collapse_min_peak: float = schema.param(schema.Float(min=0.0, max=1.0))
    co_gap: float = schema.param(schema.Float(min=0.0, max=1.0))
    stuck_below: float = schema.param(schema.Float(min=0.0, max=1.0, min_inclusive=False, max_inclusive=False))

    def derived_seeds(self) -> dict:
        return {"the probe's seed (seed + 1000)": self.seed + PROBE_SEED_OFFSET,
                "the strong monitor's second seed (seed + n_seeds)": self.seed + self.n_seeds}

    def check(self) -> None:
        data.check_task_sizes(self.dataset, train=[("n_train", self.n_train)], test=[("n_test", self.n_test)])

    @property
    def seeds(self) -> list:
        """The seeds of the repeated runs: ``seed .. seed + n_seeds - 1``."""
        return [self.seed + i for i in range(self.n_seeds)]

    @property
    def track_epochs(self) -> list:
        """The epochs at which the kernel is computed: every ``kernel_every``-th and the last."""
        return sorted(set(range(0, self.epochs + 1, self.kernel_every)) | {self.epochs})


#: The training variants, as the page names them.
LABEL = {"standard": "standard", "fgsm": "FGSM-AT", "fgsm_rs": "FGSM-RS", "nfgsm": "N-FGSM", "noise": "noise-FGSM (ours)",
         "pgd": "PGD-AT", "pgd_shared": "PGD-AT, batch-shared aug."}
#: Variants repeated over every seed / run on the first seed only.
SEEDED_VARIANTS = ("fgsm", "fgsm_rs", "nfgsm", "noise")
FIRST_SEED_VARIANTS = ("standard", "pgd", "pgd_shared")


def setting_text(p: Params) -> str:
    """The one-line description of the page's setting (glued as ``setting_md``)."""
    return (f"{p.dataset}, {p.n_train} training images, "
            + (f"the CNN (width {p.width}, hidden {p.hidden})" if p.model_name == "cnn"
               else f"the BatchNorm ResNet {tuple(p.resnet_stages)} (width {p.width})")
            + f", ε = {p.eps:.4g}, learning rate {p.learning_rate:g}, batch {p.batch_size}, {p.epochs} epochs of which "
              f"{p.clean_epochs} clean")


def make_model(p: Params):
    """The chapter's network: the CNN of chapter 04 or a BatchNorm ResNet (10 classes)."""
    from ntknb import models

    if p.model_name == "cnn":
        return models.CNN(num_classes=10, width=p.width, hidden=p.hidden)
    return models.ResNet(num_classes=10, width=p.width, stage_sizes=tuple(p.resnet_stages))


def _variant_step(p: Params, variant: str) -> Optional[float]:
    """The FGSM step of the randomly started variants (``fgsm_step`` · eps); ``None`` = eps."""
    return (p.fgsm_step * p.eps) if variant in ("fgsm_rs", "noise") else None


def variant_config(p: Params, variant: str, s: int) -> "training.TrainConfig":
    """The :class:`ntknb.training.TrainConfig` of ``variant`` (a key of :data:`LABEL`) for seed ``s``:
    FGSM-AT from x, FGSM-RS (:class:`ntknb.adversaries.FGSM` with a random start), N-FGSM
    (:class:`ntknb.adversaries.NFGSM`, noise ``nfgsm_noise`` eps, step eps: ``dejorge2022make``),
    noise-FGSM (:class:`NoiseFGSM`), PGD-AT and PGD-AT with batch-shared augmentation; every
    adversarial run starts with ``clean_epochs`` clean epochs."""
    if variant not in LABEL:
        raise ValueError(f"variant must be one of {list(LABEL)}; got {variant!r}")
    mode = {"fgsm_rs": "fgsm", "nfgsm": "fgsm", "noise": "fgsm", "pgd_shared": "pgd"}.get(variant, variant)
    step = _variant_step(p, variant)
    adversary = {"fgsm_rs": lambda: adversaries.FGSM(p.eps, step, random_start=True),
                 "nfgsm": lambda: adversaries.NFGSM(p.eps, None, p.nfgsm_noise),
                 "noise": lambda: NoiseFGSM(p.eps, step, p.noise_scale)}.get(variant, lambda: None)()
    return training.TrainConfig(
        mode=mode, epochs=p.epochs, batch_size=p.batch_size, learning_rate=p.learning_rate, momentum=p.momentum,
        weight_decay=p.weight_decay, lr_decay_epochs=tuple(p.lr_decay_epochs), lr_decay_factor=p.lr_decay_factor,
        eps=p.eps, attack_steps=p.attack_steps, eval_attack_steps=p.eval_attack_steps, eval_batch_size=p.n_test,
        adversary=adversary, clean_epochs=0 if variant == "standard" else p.clean_epochs,
        augment=p.shared_augment if variant == "pgd_shared" else p.augment, crop_padding=p.crop_padding, seed=s,
    )


@dataclasses.dataclass
class ChapterData:
    """The data of the chapter's runs: one class-balanced subsample per seed and the probe set."""

    tasks: dict  #: seed -> :class:`ntknb.data.Task`
    probe: tuple  #: (x_probe, labels_probe), class-balanced held-out images sorted by class


def prepare_data(p: Params, ds) -> ChapterData:
    """Each seed's training / test subsample of ``ds`` and the probe set (seed ``seed + 1000``)."""
    tasks = {s: data.make_task(ds, n_train=p.n_train, n_test=p.n_test, seed=s) for s in p.seeds}
    probe_idx = nd.balanced_probe(ds.labels_test, p.probe_per_class, num_classes=ds.n_classes, seed=p.seed + PROBE_SEED_OFFSET)
    return ChapterData(tasks, (ds.x_test[probe_idx], ds.labels_test[probe_idx].astype(np.int64)))


def run_one(p: Params, d: ChapterData, variant: str, s: int, track: bool = False) -> VariantRun:
    """:func:`run_variant` of ``variant`` on seed ``s`` (kernel tracked on the probe if ``track``)."""
    return run_variant(make_model(p), d.tasks[s], variant_config(p, variant, s), n_monitor=p.n_monitor,
                       probe=d.probe if track else None, track_epochs=p.track_epochs,
                       collapse_fraction=p.collapse_fraction, collapse_min_peak=p.collapse_min_peak,
                       monitor_step=_variant_step(p, variant), description=f"{variant} seed {s}",
                       strong_points=strong_points(p, d, s) if variant in SEEDED_VARIANTS else None,
                       strong_iter=p.strong_iter)


def strong_points(p: Params, d: ChapterData, s: int) -> tuple:
    """The fixed test points of seed ``s``'s strong monitor and standard evaluation: the first
    ``eval_n_test`` of its test subsample, ``(x, labels)``."""
    task = d.tasks[s]
    n = min(p.eval_n_test, len(task.labels_test))
    return task.x_test[:n], task.labels_test[:n]


def run_all(p: Params, d: ChapterData) -> dict:
    """Every run of the page: ``{(variant, seed): VariantRun}``. The single-step variants on
    every seed (the first seed's FGSM-AT with the kernel tracked), a seed's variants one replica of
    :func:`ntknb.replicas.run_replicas` (a loop on one device, spread over several devices or
    processes), then standard training, PGD-AT and batch-shared PGD-AT on the first seed, kernel
    tracked."""
    per_seed = replicas.run_replicas(
        lambda s: {v: run_one(p, d, v, s, track=(s == p.seed and v == "fgsm")) for v in SEEDED_VARIANTS}, p.seeds)
    runs = {(v, s): run for s, seed_runs in zip(p.seeds, per_seed) for v, run in seed_runs.items()}
    for v in FIRST_SEED_VARIANTS:
        runs[(v, p.seed)] = run_one(p, d, v, p.seed, track=True)
    return runs


def evaluate_run(p: Params, run: VariantRun, task, seed: int):
    """The standard evaluation and the gradient-masking checks of a trained network
    (:func:`ntknb.masking.gradient_masking_checks`, ``carlini2019evaluating``; its suite is
    :func:`ntknb.evaluation.robust_evaluation`, APGD-CE / APGD-DLR / PGD of ``croce2020reliable``,
    ``eval_iter`` iterations each) on the first ``eval_n_test`` test points of ``task``, at the
    radii eps, 2 eps and 1. Catastrophic overfitting is gradient masking at the clean
    point (``wong2020fast``, ``andriushchenko2020understanding``): a collapsed network keeps a
    high single-step FGSM accuracy while the suite breaks it."""
    import functools

    from ntknb import masking

    n = min(p.eval_n_test, len(task.labels_test))
    predict = functools.partial(run.result.logits_fn(), run.result.params)  # x -> logits, evaluation mode
    return masking.gradient_masking_checks(predict, task.x_test[:n], task.labels_test[:n], p.eps,
                                           eps_grid=[p.eps, 2 * p.eps], seed=seed, n_iter=p.eval_iter,
                                           batch_size=n)


def evaluate_all(p: Params, d: ChapterData, runs: dict) -> dict:
    """:func:`evaluate_run` of every single-step run: ``{(variant, seed): MaskingReport}``, a seed's
    evaluations one replica of :func:`ntknb.replicas.run_replicas`."""
    per_seed = replicas.run_replicas(
        lambda s: [evaluate_run(p, runs[(v, s)], d.tasks[s], s) for v in SEEDED_VARIANTS], p.seeds)
    by_key = {(v, s): rep for s, reports in zip(p.seeds, per_seed) for v, rep in zip(SEEDED_VARIANTS, reports)}
    return {(v, s): by_key[(v, s)] for v in SEEDED_VARIANTS for s in p.seeds}


def interval_text(values) -> str:
    """``"0.123 [0.045, 0.201]"``: mean and Student-t interval over seeds (:func:`ntknb.stats.mean_interval`),
    written by :meth:`ntknb.stats.Interval.text` (one seed: the mean alone)."""
    return stats.mean_interval(np.asarray(values, float)).text()


def evaluation_columns(p: Params) -> list:
    """The header of :func:`evaluation_rows`."""
    return ["training", f"PGD-{p.eval_attack_steps} monitor, final ({p.n_test} points)",
            f"standard evaluation ({p.eval_n_test} points, {p.eval_iter} it.)",
            f"single-step FGSM ({p.eval_n_test} points)", "monitor − standard eval.", "masking checks passed"]


def evaluation_rows(p: Params, runs: dict, evals: dict) -> list:
    """Per single-step variant, mean [95% t interval] over the seeds: final PGD monitor accuracy,
    robust accuracy under the standard evaluation, accuracy under single-step FGSM (check 2 of
    the masking checks), the monitor minus the standard evaluation, and in how many seeds every
    gradient-masking check passed."""
    rows = []
    for v in SEEDED_VARIANTS:
        mon = np.array([runs[(v, s)].robust_acc[-1] for s in p.seeds], float)
        suite = np.array([evals[(v, s)].iterative_accuracy for s in p.seeds], float)
        single = [evals[(v, s)].single_step_accuracy for s in p.seeds]
        rows.append([LABEL[v], interval_text(mon), interval_text(suite), interval_text(single),
                     interval_text(mon - suite), f"{sum(evals[(v, s)].passed for s in p.seeds)} of {p.n_seeds}"])
    return rows


def evaluation_summary(p: Params, runs: dict, evals: dict) -> dict:
    """Section 5's numbers (glued under these names): per variant the mean standard-evaluation
    and single-step accuracy and the mean monitor minus standard evaluation; the paired
    differences of the standard evaluation between variants (:data:`DIFFERENCE_PAIRS`)."""
    suite = {v: np.array([evals[(v, s)].iterative_accuracy for s in p.seeds], float) for v in SEEDED_VARIANTS}
    out = {}
    for v, key in (("fgsm", "fgsm"), ("fgsm_rs", "rs"), ("nfgsm", "nfgsm"), ("noise", "noise")):
        mon = np.array([runs[(v, s)].robust_acc[-1] for s in p.seeds], float)
        out[f"co_{key}_suite_robust_acc"] = float(suite[v].mean())
        out[f"co_{key}_single_step_acc"] = float(np.mean([evals[(v, s)].single_step_accuracy for s in p.seeds]))
        out[f"co_{key}_monitor_minus_suite"] = float(np.mean(mon - suite[v]))
        out[f"co_{key}_n_masking_passed"] = int(sum(evals[(v, s)].passed for s in p.seeds))
    return out


COLLAPSE_COLUMNS = ["training", "seed", "peak robust", "at epoch", "lowest after peak", "final robust",
                    "final clean", "FGSM train acc. (at collapse, else final)", "collapsed"]


def collapse_rows(runs: dict) -> list:
    """One row of :data:`COLLAPSE_COLUMNS` per run."""
    rows = []
    for (v, s), r in runs.items():
        c = r.collapse
        rows.append([LABEL[v], s, c.peak, c.peak_epoch, c.low, c.final, r.clean_acc[-1],
                     r.fgsm_train_acc[c.epoch] if c.collapsed else r.fgsm_train_acc[-1],
                     f"epoch {c.epoch}" + (" (recovered)" if c.recovered else "") if c.collapsed else "no"])
    return rows


def fgsm_runs(p: Params, runs: dict, variant: str = "fgsm") -> list:
    """The runs of ``variant`` over the seeds, in seed order."""
    return [runs[(variant, s)] for s in p.seeds]


def fgsm_summary(p: Params, runs: dict) -> dict:
    """Section 1's numbers (glued under these names): FGSM-AT collapses (``co_n_collapsed``; of
    them not recovered by the last epoch, i.e. ending collapsed: ``co_fgsm_collapsed_count``), mean peak / final /
    lowest robust accuracy, final FGSM training and clean accuracy, recoveries, and how many
    FGSM-AT / FGSM-RS runs ended overfitted by the end-state criterion (gap ``co_gap``)."""
    fg = fgsm_runs(p, runs)
    return {
        "co_n_collapsed": sum(r.collapse.collapsed for r in fg),
        "co_fgsm_collapsed_count": sum(r.collapse.collapsed and not r.collapse.recovered for r in fg),
        "co_fgsm_peak_robust_acc": float(np.mean([r.collapse.peak for r in fg])),
        "co_fgsm_final_robust_acc": float(np.mean([r.robust_acc[-1] for r in fg])),
        "co_fgsm_low_robust_acc": float(np.mean([r.collapse.low for r in fg])),
        "co_fgsm_final_train_fgsm_acc": float(np.mean([r.fgsm_train_acc[-1] for r in fg])),
        "co_fgsm_final_clean_acc": float(np.mean([r.clean_acc[-1] for r in fg])),
        "co_n_recovered": sum(r.collapse.recovered for r in fg),
        "co_n_gap": sum(r.ended_overfitted(p.co_gap) for r in fg),
        "co_n_gap_rs": sum(r.ended_overfitted(p.co_gap) for r in fgsm_runs(p, runs, "fgsm_rs")),
    }


def plot_fgsm_runs(p: Params, runs: dict):
    """FGSM-AT over the seeds: PGD robust test and FGSM training accuracy (left), clean test
    accuracy (right). Returns the figure."""
    from ntknb import plotting

    fig, axes = plotting.new_figure(ncols=2, width=4.2, height=3.1)
    for s in p.seeds:
        r = runs[("fgsm", s)]
        ep = np.arange(1, p.epochs + 1)
        line, = axes[0].plot(ep, r.robust_acc, "o-", ms=3, label=f"seed {s}: PGD-{p.eval_attack_steps} test")
        axes[0].plot(np.arange(0, p.epochs + 1), r.fgsm_train_acc, "--", color=line.get_color(),
                     label=f"seed {s}: FGSM train")
        axes[1].plot(ep, r.clean_acc, "o-", ms=3, color=line.get_color(), label=f"seed {s}")
    axes[0].set(title="FGSM-AT: robust accuracy", xlabel="epoch", ylabel="accuracy", ylim=(-0.02, 1.02))
    axes[1].set(title="FGSM-AT: clean test accuracy", xlabel="epoch", ylim=(-0.02, 1.02))
    axes[0].legend(fontsize=6)
    axes[1].legend(fontsize=6)
    return fig


KERNEL_VARIANTS = ("standard", "fgsm", "pgd", "pgd_shared")


def specialization_matrices(p: Params, runs: dict, probe) -> dict:
    """``{variant: M_ks}`` of the final AE-NTK (clean labels) of the first seed's runs
    (:func:`ae_specialization_matrix`, PGD-``eval_attack_steps``)."""
    return {v: ae_specialization_matrix(runs[(v, p.seed)].result, *probe, eps=p.eps,
                                        attack_steps=p.eval_attack_steps, seed=p.seed) for v in KERNEL_VARIANTS}


def ks_strengths(mks: dict) -> dict:
    """KS strength (mean diagonal of M_ks) of each variant."""
    return {v: float(np.nanmean(np.diag(m))) for v, m in mks.items()}


def ks_over_seeds(p: Params, runs: dict, probe) -> dict:
    """KS strength of the final AE-NTK (clean labels) of FGSM-AT and FGSM-RS on every seed:
    ``{(variant, seed): KS}`` (the Fig. 8 comparison of collapsed and robust networks with seeds)."""
    return {(v, s): float(np.nanmean(np.diag(ae_specialization_matrix(
        runs[(v, s)].result, *probe, eps=p.eps, attack_steps=p.eval_attack_steps, seed=s))))
        for v in ("fgsm", "fgsm_rs") for s in p.seeds}


def plot_distances_to_fgsm(p: Params, runs: dict) -> dict:
    """Fig. 9b-c: KD of the standard, PGD-AT and batch-shared PGD-AT kernels to the FGSM-AT
    kernel (first seed) per tracked epoch, C-NTK (left) and AE-NTK (right), plotted.
    Returns ``{(variant, "clean" | "adv"): distances}``."""
    from ntknb import plotting

    ref = runs[("fgsm", p.seed)]
    fig, axes = plotting.new_figure(ncols=2, width=4.2, height=3.1)
    kd = {}
    for ax, kind, title in ((axes[0], "clean", "C-NTK"), (axes[1], "adv", "AE-NTK")):
        curves = {}
        for v in ("standard", "pgd", "pgd_shared"):
            ep, d = distance_to_reference(runs[(v, p.seed)].trajectory, ref.trajectory, kind)
            curves[LABEL[v]] = (ep, d)
            kd[(v, kind)] = d
        plotting.plot_curves(ax, curves, ylabel="KD to the FGSM-AT kernel", title=f"{title}: distance to FGSM-AT")
    return kd


def plot_shared_augmentation(p: Params, runs: dict):
    """Clean and PGD test accuracy of PGD-AT, batch-shared PGD-AT and FGSM-AT (first seed)."""
    from ntknb import plotting

    fig, ax = plotting.new_figure(width=5.0, height=3.2)
    ep = np.arange(1, p.epochs + 1)
    for v in ("pgd", "pgd_shared", "fgsm"):
        r = runs[(v, p.seed)]
        line, = ax.plot(ep, r.clean_acc, "-", label=f"{LABEL[v]}: clean")
        ax.plot(ep, r.robust_acc, "--", color=line.get_color(), label=f"{LABEL[v]}: PGD-{p.eval_attack_steps}")
    ax.set(xlabel="epoch", ylabel="test accuracy", title=f"Batch-shared augmentation (seed {p.seed})",
           ylim=(-0.02, 1.02))
    ax.legend(fontsize=6)
    return fig


def plot_all_variants(p: Params, runs: dict):
    """PGD robust test accuracy of every variant (single-step methods: mean over seeds, thin
    lines the seeds)."""
    from ntknb import plotting

    fig, ax = plotting.new_figure(width=5.6, height=3.4)
    ep = np.arange(1, p.epochs + 1)
    for v in SEEDED_VARIANTS:
        curves = np.stack([runs[(v, s)].robust_acc for s in p.seeds])
        line, = ax.plot(ep, curves.mean(0), "o-", ms=3, lw=2, label=f"{LABEL[v]} (mean of {p.n_seeds})")
        for c in curves:
            ax.plot(ep, c, "-", lw=0.6, alpha=0.5, color=line.get_color())
    for v in ("pgd", "pgd_shared", "standard"):
        ax.plot(ep, runs[(v, p.seed)].robust_acc, "s--", ms=3, label=LABEL[v])
    ax.set(xlabel="epoch", ylabel=f"PGD-{p.eval_attack_steps} robust test accuracy", ylim=(-0.02, 1.02),
           title=f"{p.dataset}, eps = {p.eps:.3g}")
    ax.legend(fontsize=6)
    return fig


def variant_stats(p: Params, runs: dict) -> dict:
    """Per single-step variant: mean final robust and clean accuracy and number collapsed."""
    stats = {}
    for v in SEEDED_VARIANTS:
        rs = fgsm_runs(p, runs, v)
        stats[v] = dict(final=float(np.mean([r.robust_acc[-1] for r in rs])),
                        clean=float(np.mean([r.clean_acc[-1] for r in rs])),
                        n_collapsed=int(sum(r.collapse.collapsed for r in rs)))
    return stats


def fix_summary(p: Params, runs: dict, stats: dict) -> dict:
    """Section 4's numbers (glued under these names)."""
    return {
        "co_noise_final_robust_acc": stats["noise"]["final"],
        "co_noise_final_clean_acc": stats["noise"]["clean"],
        "co_noise_n_collapsed": stats["noise"]["n_collapsed"],
        "co_rs_final_robust_acc": stats["fgsm_rs"]["final"],
        "co_rs_final_clean_acc": stats["fgsm_rs"]["clean"],
        "co_rs_n_collapsed": stats["fgsm_rs"]["n_collapsed"],
        "co_nfgsm_final_robust_acc": stats["nfgsm"]["final"],
        "co_nfgsm_final_clean_acc": stats["nfgsm"]["clean"],
        "co_nfgsm_n_collapsed": stats["nfgsm"]["n_collapsed"],
        "co_pgd_final_robust_acc": runs[("pgd", p.seed)].robust_acc[-1],
        "co_pgd_final_clean_acc": runs[("pgd", p.seed)].clean_acc[-1],
        "co_std_final_robust_acc": runs[("standard", p.seed)].robust_acc[-1],
    }
