"""Chapter 05: BatchNorm with and without its buffers (``li2023rethinking`` Sec. 4).

One ResNet (``he2016deep``, BatchNorm ``ioffe2015batch``) per training strategy (standard
training, PGD-AT ``madry2018towards``), each evaluated in two BatchNorm modes: "w buffer"
(running averages) and "w/o buffer" (the statistics of the evaluation batch), on clean and PGD
inputs; the per-layer distance between batch and running statistics; the dependence on the
evaluation batch size; and the kernel specialization matrices in both modes.

This module is the chapter's code; ``notebooks/05_bn_buffers.py`` only calls it:
:class:`Params` (the parameter schema), :func:`train_strategies`, :func:`accuracy_values`,
:func:`statistics_gaps`, :func:`batch_size_check`, :func:`ks_strengths` and the verdicts.
"""

from __future__ import annotations

import dataclasses

import ntknb  # noqa: F401  (compat shim before neural_tangents)

import jax
import numpy as np

from ntknb import batchnorm, ntk_dynamics, schema, training
from ntknb.validation import SEED_LIMIT

__all__ = ["Params", "MODE_LABELS", "STRATEGIES", "train_config", "make_model", "model_size", "train_strategies",
           "final", "accuracy_values", "accuracy_rows", "statistics_gaps", "gap_rows", "gap_values",
           "batch_size_check", "ks_strengths", "ks_values", "summary_text"]

MODE_LABELS = {"buffer": "w buffer", "batch": "w/o buffer"}
STRATEGIES = {"standard": "standard training", "pgd": "PGD-AT"}
#: Kernels of the KS matrices: C-NTK / AE-NTK under clean labels, AE-NTK under adversarial labels.
KINDS = {"clean.CL": "C-NTK, CL", "adv.CL": "AE-NTK, CL", "adv.AL": "AE-NTK, AL"}


@dataclasses.dataclass(frozen=True)
class Params(schema.Params):
    """The rules for the parameters of ``notebooks/05_bn_buffers.py`` (the defaults live in its
    ``parameters`` cell; field order = cell order)."""

    seed: int = schema.param(schema.Int(min=0, max=SEED_LIMIT - 1))
    dataset: str = schema.param(schema.Choice(["mnist", "cifar10"]))
    n_train: int = schema.param(schema.Int(min=20))
    n_test: int = schema.param(schema.Int(min=10))
    n_eval_train: int = schema.param(schema.Int(min=1, max=schema.Ref("n_train")))
    width: int = schema.param(schema.Int(min=1))
    stage_sizes: list = schema.param(schema.List(schema.Int(min=1), min_length=1, max_length=6))
    epochs: int = schema.param(schema.Int(min=1))
    batch_size: int = schema.param(schema.Int(min=2, max=schema.Ref("n_train")))
    learning_rate: float = schema.param(schema.Float(min=0.0, min_inclusive=False))
    momentum: float = schema.param(schema.Float(min=0.0, max=1.0, max_inclusive=False))
    weight_decay: float = schema.param(schema.Float(min=0.0))
    lr_decay_epochs: list = schema.param(schema.List(schema.Int(min=1, max=schema.Ref("epochs", -1)), max_length=4,
                                                     increasing=True))
    lr_decay_factor: float = schema.param(schema.Float(min=0.0, max=1.0, min_inclusive=False))
    augment: str = schema.param(schema.Choice(training.AUGMENTATIONS))
    eps: float = schema.param(schema.Float(min=0.0, max=1.0, min_inclusive=False))
    attack_steps: int = schema.param(schema.Int(min=1))
    eval_attack_steps: int = schema.param(schema.Int(min=1))
    eval_batch_size: int = schema.param(schema.Int(min=2, max=schema.Ref("n_test")))
    eval_every: int = schema.param(schema.Int(min=1))
    probe_per_class: int = schema.param(schema.Int(min=1, max=100))
    ks_epochs: list = schema.param(schema.List(schema.Int(min=1, max=schema.Ref("epochs")), min_length=1,
                                               max_length=6, increasing=True))
    batch_sizes: list = schema.param(schema.List(schema.Int(min=2), min_length=2, max_length=5))

    def check(self) -> None:
        if self.n_test % self.eval_batch_size or self.n_eval_train % self.eval_batch_size:
            raise ValueError(f"parameter 'eval_batch_size'={self.eval_batch_size} must divide n_test={self.n_test} "
                             f"and n_eval_train={self.n_eval_train}")
        if any(self.n_test % b for b in self.batch_sizes):
            raise ValueError(f"parameter 'batch_sizes' must hold divisors (>= 2) of n_test={self.n_test}, "
                             f"got {self.batch_sizes}")

    @property
    def eval_epochs(self) -> list:
        """Every ``eval_every``-th epoch and the last."""
        return sorted(set(range(self.eval_every, self.epochs + 1, self.eval_every)) | {self.epochs})


def train_config(p: Params, mode: str = "standard") -> "training.TrainConfig":
    """The :class:`ntknb.training.TrainConfig` of the chapter (``mode``: ``"standard"`` / ``"pgd"``)."""
    return training.TrainConfig(
        mode=mode, epochs=p.epochs, batch_size=p.batch_size, learning_rate=p.learning_rate, momentum=p.momentum,
        weight_decay=p.weight_decay, lr_decay_epochs=tuple(p.lr_decay_epochs), lr_decay_factor=p.lr_decay_factor,
        eps=p.eps, attack_steps=p.attack_steps, eval_attack_steps=p.eval_attack_steps,
        eval_batch_size=p.eval_batch_size, augment=p.augment, seed=p.seed,
    )


def make_model(p: Params, n_classes: int):
    """The chapter's BatchNorm ResNet."""
    from ntknb import models

    return models.make_model("resnet", n_classes, width=p.width, stage_sizes=tuple(p.stage_sizes))


def model_size(params0, state0) -> tuple:
    """(number of parameters, number of BatchNorm layers)."""
    n_params = sum(int(np.prod(q.shape)) for q in jax.tree_util.tree_leaves(params0))
    n_bn = sum(1 for path, _ in jax.tree_util.tree_flatten_with_path(state0["batch_stats"])[0] if path[-1].key == "mean")
    return n_params, n_bn


@dataclasses.dataclass
class Trained:
    """The two trained networks, their per-epoch evaluations in both modes and the PGD-AT
    network's kernel trackers (one per mode)."""

    runs: dict  #: strategy -> TrainResult
    evals: dict  #: strategy -> batchnorm.ModeEvaluator
    trackers: dict  #: mode -> batchnorm.BNKernelTracker (PGD-AT)
    splits: dict  #: "train" / "test" -> (x, labels)


def train_strategies(p: Params, model, params0, state0, task) -> Trained:
    """Standard training and PGD-AT from the same initialisation; both BatchNorm modes are
    evaluated every ``eval_epochs`` on ``n_eval_train`` training and all test images, and the
    PGD-AT network's per-logit kernels tracked at ``ks_epochs`` on a class-balanced probe."""
    splits = {"train": (task.x_train[:p.n_eval_train], task.labels_train[:p.n_eval_train]),
              "test": (task.x_test, task.labels_test)}
    probe = ntk_dynamics.balanced_probe(task.labels_test, p.probe_per_class, task.n_classes, seed=p.seed)
    x_probe, labels_probe = task.x_test[probe], task.labels_test[probe]
    runs, evals, trackers = {}, {}, {}
    config = train_config(p)
    for strategy in STRATEGIES:
        evals[strategy] = batchnorm.ModeEvaluator(model, splits, p.eps, p.eval_attack_steps,
                                                  batch_size=p.eval_batch_size, epochs=p.eval_epochs, seed=p.seed)
        callbacks = [evals[strategy]]
        if strategy == "pgd":
            trackers = {mode: batchnorm.BNKernelTracker(model, mode, x_probe, labels_probe, p.eps,
                                                        attack_steps=p.eval_attack_steps, epochs=p.ks_epochs,
                                                        top_p=min(10, len(probe)), seed=p.seed)
                        for mode in batchnorm.BN_MODES}
            callbacks += list(trackers.values())
        # fit's own per-epoch evaluation (w buffer) is not used here (the ModeEvaluator measures
        # both modes on the full splits): it gets one evaluation batch of test images to stay cheap.
        runs[strategy] = training.fit(training.flax_apply_fn(model), params0, state0, task.x_train,
                                      task.labels_train, task.x_test[:p.eval_batch_size],
                                      task.labels_test[:p.eval_batch_size], config.replace(mode=strategy),
                                      callbacks=callbacks, progress=False)
    return Trained(runs, evals, trackers, splits)


def final(t: Trained, strategy: str, split: str, mode: str, kind: str) -> float:
    """Last evaluated accuracy (``kind``: "clean" / "robust") of ``strategy`` in BN ``mode``."""
    return float(t.evals[strategy].curves(split, mode)[kind][-1])


def accuracy_values(p: Params, t: Trained) -> dict:
    """Section 1's glued values: final accuracies in both modes, the gaps w − w/o buffer, the
    sampling noise sqrt(0.5 / n_test) and the verdict words of the text."""
    f = lambda *a: final(t, *a)  # noqa: E731
    v = {}
    for strategy, prefix in (("pgd", ""), ("standard", "std_")):
        for kind in ("clean", "robust"):
            v[f"{prefix}{kind}_acc_w_buffer"] = f(strategy, "test", "buffer", kind)
            v[f"{prefix}{kind}_acc_wo_buffer"] = f(strategy, "test", "batch", kind)
    v["train_robust_acc_w_buffer"] = f("pgd", "train", "buffer", "robust")
    v["train_robust_acc_wo_buffer"] = f("pgd", "train", "batch", "robust")
    clean_gap = f("pgd", "test", "buffer", "clean") - f("pgd", "test", "batch", "clean")
    robust_gap = f("pgd", "test", "buffer", "robust") - f("pgd", "test", "batch", "robust")
    noise = float(np.sqrt(0.5 / p.n_test))
    std_gap = f("standard", "test", "buffer", "robust") - f("standard", "test", "batch", "robust")
    v.update(clean_gap=clean_gap, robust_gap=robust_gap, acc_noise=noise)
    v["robust_verdict"] = ("clearly lower (by more than twice the sampling noise)" if robust_gap > 2 * noise else
                           "lower, but by less than twice the sampling noise" if robust_gap > 0 else "not lower")
    v["clean_verdict"] = ("about the same (within twice the sampling noise)" if abs(clean_gap) <= 2 * noise
                          else "different by more than twice the sampling noise")
    reproduced = robust_gap > 2 * noise and abs(clean_gap) <= 2 * noise
    v["fig2_verdict"] = "reproduces" if reproduced else "does not clearly reproduce"
    v["std_robust_verdict"] = ("higher" if std_gap < -2 * noise else "lower" if std_gap > 2 * noise
                               else "about the same")
    return v


ACCURACY_COLUMNS = ["model", "mode", "clean (test)", "PGD (test)", "clean (train)", "PGD (train)"]


def accuracy_rows(t: Trained) -> list:
    return [[STRATEGIES[s], MODE_LABELS[m]] + [final(t, s, sp, m, k) for sp in ("test", "train")
                                                for k in ("clean", "robust")]
            for s in STRATEGIES for m in batchnorm.BN_MODES]


def accuracy_curves(t: Trained) -> dict:
    """``{(strategy label, split): {mode: curves}}`` for :func:`ntknb.plotting.plot_bn_accuracy_curves`."""
    return {(STRATEGIES[s], split): {m: t.evals[s].curves(split, m) for m in batchnorm.BN_MODES}
            for s in STRATEGIES for split in t.splits}


def statistics_gaps(p: Params, model, t: Trained, task) -> dict:
    """``{(strategy, "clean" | "adversarial"): LayerGap}`` (:func:`ntknb.batchnorm.bn_statistics_gap`)
    on the test images and on their PGD examples against the network w/o buffer."""
    gaps = {}
    for strategy, run in t.runs.items():
        x_adv = batchnorm.adversarial_examples(model, "batch", run.params, run.state, task.x_test, task.labels_test,
                                               p.eps, p.eval_attack_steps, p.eval_batch_size, seed=p.seed)
        for kind, xx in (("clean", task.x_test), ("adversarial", x_adv)):
            gaps[strategy, kind] = batchnorm.bn_statistics_gap(model, run.params, run.state, xx, p.eval_batch_size)
    return gaps


def plot_gaps(gaps: dict):
    """Per-layer rms change of the normalised activations, one panel per strategy."""
    from ntknb import plotting

    fig, axes = plotting.new_figure(ncols=2, sharey=True)
    for ax, strategy in zip(axes, STRATEGIES):
        plotting.plot_layer_gaps(ax, {f"{kind} batches": gaps[strategy, kind].norm_gap
                                      for kind in ("clean", "adversarial")},
                                 ylabel="rms of normalised-activation change", title=STRATEGIES[strategy])
    return fig


GAP_COLUMNS = ["model", "batches", "mean gap (norm. act.)", "mean shift", "log std ratio", "accuracy w − w/o"]


def gap_rows(t: Trained, gaps: dict) -> list:
    rows = []
    for strategy in STRATEGIES:
        for kind in ("clean", "adversarial"):
            g = gaps[strategy, kind]
            acc_key = "clean" if kind == "clean" else "robust"
            acc_gap = final(t, strategy, "test", "buffer", acc_key) - final(t, strategy, "test", "batch", acc_key)
            rows.append([STRATEGIES[strategy], kind, float(g.norm_gap.mean()), float(g.mean_shift.mean()),
                         float(g.log_std_ratio.mean()), acc_gap])
    return rows


def gap_values(gaps: dict) -> dict:
    """Section 2's glued values (mean gaps, their ratio for PGD-AT, verdict words, first layer)."""
    v = {f"{s}_{kind}_norm_gap": float(gaps[s, kind].norm_gap.mean())
         for s in STRATEGIES for kind in ("clean", "adversarial")}
    v["pgd_gap_ratio"] = float(gaps["pgd", "adversarial"].norm_gap.mean() / gaps["pgd", "clean"].norm_gap.mean())
    for s in STRATEGIES:
        larger = gaps[s, "adversarial"].norm_gap.mean() > gaps[s, "clean"].norm_gap.mean()
        v[f"{s}_gap_verdict"] = "farther from" if larger else "closer to"
    v["pgd_first_layer_clean_gap"] = float(gaps["pgd", "clean"].norm_gap[0])
    v["pgd_first_layer_adv_gap"] = float(gaps["pgd", "adversarial"].norm_gap[0])
    return v


BATCH_SIZE_COLUMNS = ["model", "eval batch", "clean w", "clean w/o", "PGD w", "PGD w/o"]


def batch_size_check(p: Params, model, t: Trained, task) -> dict:
    """``{strategy: {batch size: {mode: (clean, robust)}}}`` (:func:`ntknb.batchnorm.evaluate_modes`)."""
    return {s: {b: batchnorm.evaluate_modes(model, t.runs[s].params, t.runs[s].state, task.x_test, task.labels_test,
                                            p.eps, p.eval_attack_steps, b, seed=p.seed) for b in p.batch_sizes}
            for s in STRATEGIES}


def batch_size_rows(p: Params, by_bs: dict) -> list:
    return [[STRATEGIES[s], b] + [by_bs[s][b][m][i] for i in (0, 1) for m in batchnorm.BN_MODES]
            for s in STRATEGIES for b in p.batch_sizes]


def batch_size_gaps(p: Params, by_bs: dict) -> np.ndarray:
    """PGD-AT's robust accuracy w − w/o buffer at each evaluation batch size."""
    return np.array([by_bs["pgd"][b]["buffer"][1] - by_bs["pgd"][b]["batch"][1] for b in p.batch_sizes])


def batch_size_values(p: Params, by_bs: dict) -> dict:
    bs_gaps = batch_size_gaps(p, by_bs)
    first, last = p.batch_sizes[0], p.batch_sizes[-1]
    return {"bs_robust_gap_min": float(bs_gaps.min()), "bs_robust_gap_max": float(bs_gaps.max()),
            "bs_smallest": first, "bs_largest": last,
            "bs_verdict": "at every batch size" if np.all(bs_gaps > 0) else "not at every batch size",
            "bs_wo_robust_smallest": by_bs["pgd"][first]["batch"][1],
            "bs_wo_robust_largest": by_bs["pgd"][last]["batch"][1],
            "bs_w_robust_largest": by_bs["pgd"][last]["buffer"][1]}


def ks_panels(p: Params, t: Trained) -> dict:
    """The M_ks matrices per (mode and kernel, epoch) for :func:`ntknb.plotting.plot_specialization_matrices`."""
    return {(f"{MODE_LABELS[m]}\n{label}", f"epoch {e}"): t.trackers[m].ks_matrices[e][kind]
            for m in batchnorm.BN_MODES for kind, label in KINDS.items() for e in p.ks_epochs}


def ks_strengths(p: Params, t: Trained) -> dict:
    """KS (mean diagonal of M_ks) per (mode, kernel, epoch)."""
    return {(m, kind, e): float(np.nanmean(np.diag(t.trackers[m].ks_matrices[e][kind])))
            for m in batchnorm.BN_MODES for kind in KINDS for e in p.ks_epochs}


def ks_rows(p: Params, ks: dict) -> list:
    return [[MODE_LABELS[m], KINDS[kind]] + [ks[m, kind, e] for e in p.ks_epochs]
            for m in batchnorm.BN_MODES for kind in KINDS]


def ks_values(p: Params, ks: dict) -> dict:
    """Section 4's glued values: KS at the last epoch per mode and kernel, its largest deviation
    from 1 and the verdict sentence."""
    last = p.ks_epochs[-1]
    v = {f"ks_{ktag}_{tag}_buffer": ks[m, kind, last] for m, tag in (("buffer", "w"), ("batch", "wo"))
         for kind, ktag in (("clean.CL", "c_cl"), ("adv.CL", "ae_cl"), ("adv.AL", "ae_al"))}
    v["ks_last_epoch"] = last
    ks_dev = max(abs(ks[m, kind, last] - 1) for m in batchnorm.BN_MODES for kind in KINDS)
    v["ks_max_dev"] = ks_dev
    v["ks_verdict"] = ("every KS is within 0.1 of 1: at this scale the per-logit kernels have barely specialised, "
                       "in either mode, so the matrices cannot show the difference between the modes that the "
                       "paper's Figs. 3-4 show" if ks_dev < 0.1 else
                       "some kernels have specialised (KS away from 1); compare the two modes' rows above")
    return v


def summary_text(p: Params, t: Trained, gaps: dict, by_bs: dict) -> str:
    """The headline numbers (the cell nbval compares)."""
    lines = []
    for name in ("clean_acc_w_buffer", "clean_acc_wo_buffer", "robust_acc_w_buffer", "robust_acc_wo_buffer"):
        kind = "robust" if name.startswith("robust") else "clean"
        mode = "buffer" if name.endswith("_w_buffer") else "batch"
        lines.append(f"{name}: {final(t, 'pgd', 'test', mode, kind):.3f}")
    lines.append(f"pgd norm gap clean / adversarial: {gaps['pgd', 'clean'].norm_gap.mean():.3f} / "
                 f"{gaps['pgd', 'adversarial'].norm_gap.mean():.3f}")
    lines.append("robust gap by eval batch size: "
                 + str({b: round(float(g), 3) for b, g in zip(p.batch_sizes, batch_size_gaps(p, by_bs))}))
    return "\n".join(lines)


def show_table(rows, columns, floatfmt: str = ".3f") -> None:
    """Display a result table of the page (rendered as Markdown, not glued)."""
    from IPython.display import Markdown, display

    from ntknb.report import markdown_table

    display(Markdown(markdown_table(rows, columns, floatfmt=floatfmt)))
