"""Chapter 06, the recorded search for a setting that collapses, and the recorded GPU runs.

:func:`search_run` trains one setting and returns its record (a :class:`ntknb.records.SearchRecord`;
``scripts/co_search.py`` appends them to :data:`ntknb.records.SEARCH_FILE`); :func:`search_table`
(one :class:`SearchRow` a run, its :class:`SearchOutcome`), :func:`search_cells`, :func:`search_summary`
and the texts tabulate the recorded runs (:func:`ntknb.records.load_search_records`) for the page;
:func:`gpu_streams`, :func:`gpu_rows`, :func:`gpu_summary`, :func:`gpu_text`, :func:`plot_gpu_curves`
do the same for the CIFAR-10 GPU runs (:data:`ntknb.records.GPU_SEARCH_FILE`). Part of
:mod:`ntknb.chapters.ch06_overfitting`.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from ntknb import data, evaluation, models, training
from ntknb.chapters.ch06_overfitting.variants import detect_collapse, run_variant
from ntknb.records import SEARCH_CURVES, SEARCH_SETTINGS, SearchRecord, check_search_setting
from ntknb.validation import check_int

__all__ = ["search_run", "SearchOutcome", "SearchRow", "search_table", "search_cells", "search_summary",
           "SEARCH_COLUMNS", "search_common_text", "search_summary_text", "GPU_COLUMNS", "gpu_streams", "gpu_rows",
           "gpu_summary", "gpu_text", "plot_gpu_curves"]


# --------------------------------------------------------------------------- settings search

def search_run(setting: dict, dataset=None, progress: bool = False, suite_iter: int = 0) -> SearchRecord:
    """Train one setting of the catastrophic-overfitting search and record its curves.

    ``setting`` holds :data:`SEARCH_SETTINGS` plus ``hidden`` (CNN) or ``stage_sizes``
    (ResNet); the run is :func:`run_variant` of that model on ``data.make_task(dataset,
    n_train, n_test, seed)`` with ``TrainConfig(mode, epochs, ...)``, no augmentation,
    PGD-AT step ``2.5 eps / attack_steps``, FGSM step ``eps`` from ``x``.

    Args:
      setting: the settings (checked before any work).
      dataset: an already loaded :class:`ntknb.data.Dataset` (default: load ``setting["dataset"]``).
      suite_iter: if > 0, the final network is also evaluated on the ``n_test`` test points with the
        standard evaluation (:func:`ntknb.evaluation.robust_accuracy`, ``suite_iter`` iterations per
        attack, seed ``setting["seed"]``): a collapsed FGSM-AT network must score about 0 there too.

    Returns:
      the record: the setting plus the per-epoch curves ``robust_acc`` (T,), ``clean_acc`` (T,) and
      ``fgsm_train_acc`` (T+1,), rounded to 4 decimals; with ``suite_iter`` also ``suite_robust_acc``
      and ``suite_iter``.
    """
    s = check_search_setting(setting)
    suite_iter = check_int("suite_iter", suite_iter, min=0)
    ds = dataset if dataset is not None else data.load_dataset(s["dataset"])
    task = data.make_task(ds, n_train=s["n_train"], n_test=s["n_test"], seed=s["seed"])
    kwargs = ({"hidden": s["hidden"]} if s["model"] == "cnn" else {"stage_sizes": tuple(s["stage_sizes"])})
    model = models.make_model(s["model"], ds.n_classes, width=s["width"], **kwargs)
    config = training.TrainConfig(
        mode=s["mode"], epochs=s["epochs"], batch_size=s["batch_size"], learning_rate=s["learning_rate"],
        momentum=s["momentum"], weight_decay=s["weight_decay"], eps=s["eps"], attack_steps=s["attack_steps"],
        eval_attack_steps=s["eval_attack_steps"], eval_batch_size=s["n_test"], clean_epochs=s["clean_epochs"],
        seed=s["seed"])
    run = run_variant(model, task, config, n_monitor=s["n_monitor"], progress=progress)
    curves = (run.robust_acc, run.clean_acc, run.fgsm_train_acc)
    record = {**s, **{k: [round(float(v), 4) for v in c] for k, c in zip(SEARCH_CURVES, curves)}}
    if suite_iter:
        logits = run.result.logits_fn()
        acc = evaluation.robust_accuracy(logits, task.x_test, task.labels_test, s["eps"], seed=s["seed"],
                                         n_iter=suite_iter, params=run.result.params)
        record.update(suite_robust_acc=round(float(acc), 4), suite_iter=suite_iter)
    return SearchRecord.from_json(record)


@dataclasses.dataclass(frozen=True)
class SearchOutcome:
    """How a recorded search run ended: ``"stuck"`` (the final clean accuracy at chance: it never left a
    constant prediction), ``"collapsed"`` (:func:`detect_collapse`: at ``epoch``, 1-based; ``recovered``
    by the last epoch or not) or ``"none"`` (no collapse). ``str()`` is the page's text."""

    kind: str
    epoch: Optional[int] = None
    recovered: bool = False

    def __str__(self) -> str:
        if self.kind == "stuck":
            return "stuck at chance"
        if self.kind == "collapsed":
            return f"collapsed at epoch {self.epoch}" + (" (recovered)" if self.recovered else "")
        return "no collapse"


@dataclasses.dataclass(frozen=True)
class SearchRow:
    """The summary of one recorded search run (:func:`search_table`): the ``setting`` in words, the
    training ``mode``, ``seed`` and ``epochs``; the PGD monitor's ``peak_robust`` and ``final_robust``
    accuracy, the ``final_clean`` and ``final_fgsm_train`` accuracy, the standard evaluation ``suite``
    (NaN where it was not measured) and the :class:`SearchOutcome`."""

    setting: str
    mode: str
    seed: int
    epochs: int
    peak_robust: float
    final_robust: float
    final_clean: float
    final_fgsm_train: float
    suite: float
    outcome: SearchOutcome

    def cells(self) -> list:
        """The row under :data:`SEARCH_COLUMNS` (the outcome as text)."""
        return [self.setting, self.mode, self.seed, self.epochs, self.peak_robust, self.final_robust,
                self.final_clean, self.final_fgsm_train, self.suite, str(self.outcome)]


def search_table(records: Sequence[SearchRecord], fraction: float = 0.3, min_peak: float = 0.2,
                 stuck_below: float = 0.15) -> list[SearchRow]:
    """One :class:`SearchRow` per recorded run of :func:`search_run` (the records checked by
    :class:`ntknb.records.SearchRecord`). The outcome is "stuck" if the final clean accuracy is at most
    ``stuck_below``, else the :func:`detect_collapse` verdict (``fraction``, ``min_peak``)."""
    if not 0 < stuck_below < 1:
        raise ValueError(f"stuck_below must be in (0, 1); got {stuck_below!r}")
    rows = []
    for rec in records:
        if not isinstance(rec, SearchRecord):
            raise ValueError(f"records must be SearchRecord runs (ntknb.records.load_search_records); "
                             f"got {type(rec).__name__}")
        robust, clean, fgsm_train = (np.asarray(getattr(rec, k), float) for k in SEARCH_CURVES)
        net = (f"CNN w{rec.width}/h{rec.hidden}" if rec.model == "cnn"
               else f"ResNet{tuple(rec.stage_sizes)} w{rec.width}")
        setting = (f"{net}, ε {rec.eps:g}, lr {rec.learning_rate:g}, batch {rec.batch_size}, {rec.n_train} images"
                   + (f", {rec.clean_epochs} clean epoch(s) first" if rec.clean_epochs else ""))
        c = detect_collapse(robust, fraction, min_peak)
        if clean[-1] <= stuck_below:
            outcome = SearchOutcome("stuck")
        elif c.collapsed:
            outcome = SearchOutcome("collapsed", c.epoch, bool(c.recovered))
        else:
            outcome = SearchOutcome("none")
        suite = rec.suite_robust_acc if rec.suite_robust_acc is not None else np.nan
        rows.append(SearchRow(setting, rec.mode, rec.seed, rec.epochs, float(robust.max()), float(robust[-1]),
                              float(clean[-1]), float(fgsm_train[-1]), float(suite), outcome))
    return rows


def search_cells(rows: Sequence[SearchRow]) -> list:
    """The :func:`search_table` rows as the page's table (:data:`SEARCH_COLUMNS`, :meth:`SearchRow.cells`)."""
    return [r.cells() for r in rows]


def search_summary(records: Sequence[SearchRecord], rows: Sequence[SearchRow], min_seeds: int = 3) -> dict:
    """What a recorded search shows, from its records and their :func:`search_table` rows.

    Returns a dict with ``common`` (the settings shared by every record, e.g. ``n_test``),
    ``n_runs``, ``n_fgsm`` (FGSM-AT runs), ``n_collapsed`` / ``n_transient`` (FGSM-AT runs
    that collapsed / of those, recovered by the last epoch), ``n_stuck`` (runs stuck at
    chance), ``reliable``: the FGSM-AT settings run with at least ``min_seeds`` seeds that
    collapsed in every one of them, and ``settings``: one dict per (setting, mode), in the order of
    first appearance, with ``setting``, ``mode``, ``eps``, ``n_train``, ``epochs`` (the distinct
    values), ``seeds``, ``n_runs``, ``n_collapsed``,
    ``n_ended_collapsed`` (collapsed and not recovered by the last epoch), the means over its runs
    of the final ``robust`` / ``clean`` accuracy and of ``suite`` (the standard evaluation; NaN if
    no run has one; ``n_suite`` runs have it), and ``devices`` (the records' ``device``; "cpu"
    where a record has none: the runs made before the GPU runs ran on the CPU machine).
    """
    if len(records) != len(rows):
        raise ValueError(f"records and rows must have the same length; got {len(records)} and {len(rows)}")
    if isinstance(min_seeds, bool) or not isinstance(min_seeds, int) or min_seeds < 1:
        raise ValueError(f"min_seeds must be an integer >= 1; got {min_seeds!r}")
    keys = [k for k in SEARCH_SETTINGS if k not in ("mode", "seed")]
    common = {k: getattr(records[0], k) for k in keys
              if records and all(getattr(r, k) == getattr(records[0], k) for r in records)}
    fgsm = [r for r in rows if r.mode == "fgsm"]
    collapsed = [r for r in fgsm if r.outcome.kind == "collapsed"]
    by_setting: dict = {}
    for r in fgsm:
        by_setting.setdefault(r.setting, []).append(r.outcome.kind == "collapsed")
    groups: dict = {}
    for rec, r in zip(records, rows):
        groups.setdefault((r.setting, r.mode), []).append((rec, r))
    settings = []
    for (name, mode), members in groups.items():
        suite = [r.suite for _, r in members if not np.isnan(r.suite)]
        outcomes = [r.outcome for _, r in members]
        settings.append(dict(
            setting=name, mode=mode, eps=float(members[0][0].eps), n_train=int(members[0][0].n_train),
            epochs=sorted({int(rec.epochs) for rec, _ in members}), seeds=[r.seed for _, r in members],
            n_runs=len(members), n_collapsed=sum(o.kind == "collapsed" for o in outcomes),
            n_ended_collapsed=sum(o.kind == "collapsed" and not o.recovered for o in outcomes),
            robust=float(np.mean([r.final_robust for _, r in members])),
            clean=float(np.mean([r.final_clean for _, r in members])),
            suite=float(np.mean(suite)) if suite else float("nan"), n_suite=len(suite),
            devices=sorted({str(rec.device or "cpu") for rec, _ in members})))
    return dict(common=common, n_runs=len(rows), n_fgsm=len(fgsm), n_collapsed=len(collapsed),
                n_transient=sum(r.outcome.recovered for r in collapsed),
                n_stuck=sum(r.outcome.kind == "stuck" for r in rows),
                reliable=[k for k, v in by_setting.items() if len(v) >= min_seeds and all(v)], settings=settings)


SEARCH_COLUMNS = ["setting", "training", "seed", "epochs", "peak robust", "final robust", "final clean",
                  "final FGSM train acc.", "standard eval.", "outcome"]


def search_common_text(found: dict) -> str:
    """The settings shared by every recorded search run, as Markdown."""
    return ", ".join(f"`{k}` = {v}" for k, v in found["common"].items())


def search_summary_text(found: dict) -> str:
    """What the recorded search shows (:func:`search_summary`), in one paragraph."""
    return (f"Of the {found['n_fgsm']} recorded FGSM-AT runs, {found['n_collapsed']} collapsed by the criterion of "
            f"section 1, {found['n_transient']} of them only transiently (recovered by the last epoch); "
            f"{found['n_stuck']} of all {found['n_runs']} runs never left a constant prediction. "
            + (f"Settings that collapsed in every one of at least three seeds: {'; '.join(found['reliable'])}."
               if found["reliable"] else "No FGSM-AT setting run with at least three seeds collapsed in all of them."))


# ------------------------------------------------------------------------------ GPU scale

GPU_COLUMNS = ["stream", "training images", "epochs", "device", "runs (seeds)", "collapsed", "ended collapsed",
               "final PGD monitor", "standard eval.", "final clean"]


def gpu_streams(found: dict) -> dict:
    """The FGSM-AT streams of a :func:`search_summary` of the GPU records, keyed ``co<k>_n<n>`` for
    eps = k/255 and n training images (e.g. ``co8_n10000``): its ``settings`` entries of mode ``fgsm``."""
    return {f"co{round(g['eps'] * 255)}_n{g['n_train']}": g for g in found["settings"] if g["mode"] == "fgsm"}


def gpu_rows(streams: dict) -> list:
    """One row of :data:`GPU_COLUMNS` per stream (means over its runs; NaN: not measured)."""
    return [[f"FGSM-AT, ε {round(g['eps'] * 255)}/255", g["n_train"], ", ".join(str(e) for e in g["epochs"]),
             ", ".join(g["devices"]),
             f"{g['n_runs']} ({', '.join(str(s) for s in g['seeds'])})", g["n_collapsed"], g["n_ended_collapsed"],
             g["robust"], g["suite"], g["clean"]] for g in streams.values()]


def gpu_summary(streams: dict) -> dict:
    """Numbers of the GPU section (glued under these names): over all FGSM-AT streams the runs
    (``gpu_fgsm_n``), collapsed and ended-collapsed runs (``gpu_fgsm_collapsed``,
    ``gpu_fgsm_ended_collapsed``); per stream ``name`` (:func:`gpu_streams`) the same
    (``gpu_<name>_n``, ``gpu_<name>_collapsed``, ``gpu_<name>_ended_collapsed``) and the means of
    the final PGD monitor, standard evaluation and clean accuracy (``gpu_<name>_robust``,
    ``gpu_<name>_suite``, ``gpu_<name>_clean``; NaN: not measured)."""
    out = {"gpu_fgsm_n": sum(g["n_runs"] for g in streams.values()),
           "gpu_fgsm_collapsed": sum(g["n_collapsed"] for g in streams.values()),
           "gpu_fgsm_ended_collapsed": sum(g["n_ended_collapsed"] for g in streams.values())}
    for name, g in streams.items():
        out.update({f"gpu_{name}_n": g["n_runs"], f"gpu_{name}_collapsed": g["n_collapsed"],
                    f"gpu_{name}_ended_collapsed": g["n_ended_collapsed"], f"gpu_{name}_robust": g["robust"],
                    f"gpu_{name}_suite": g["suite"], f"gpu_{name}_clean": g["clean"]})
    return out


def gpu_text(found: dict, streams: dict) -> str:
    """What the recorded GPU runs are and what their monitor curves and final evaluations read, in
    words (a description: the GPU runs are not a claim of this page)."""
    if found["n_runs"] == 0:
        return "No GPU run has been recorded yet (the file is missing or empty)."
    parts = []
    for g in streams.values():
        parts.append(f"FGSM-AT at ε = {round(g['eps'] * 255)}/255 on {g['n_train']} images ({g['n_runs']} run(s) on "
                     f"{', '.join(g['devices'])}): collapsed by the PGD monitor in {g['n_collapsed']}, ended collapsed "
                     f"in {g['n_ended_collapsed']}; mean final PGD monitor {g['robust']:.3f}, standard evaluation "
                     + (f"{g['suite']:.3f}" if g["n_suite"] else "not measured") + f", clean {g['clean']:.3f}")
    return (f"{found['n_runs']} GPU run(s) recorded, {found['n_fgsm']} of them FGSM-AT. "
            + ("; ".join(parts) + "." if parts else "No FGSM-AT stream.")
            + " Their clean accuracies show how far these networks were from trained when they stopped.")


def plot_gpu_curves(records: Sequence[SearchRecord]):
    """PGD monitor (solid) and clean (dotted) test accuracy per epoch of each recorded FGSM-AT GPU
    run, one colour per stream (eps and training-set size). Returns the figure."""
    from ntknb import plotting

    fig, ax = plotting.new_figure(width=5.6, height=3.4)
    colours = {}
    for rec in records:
        if rec.mode != "fgsm":
            continue
        k = (round(rec.eps * 255), rec.n_train)
        name = f"ε {k[0]}/255, {k[1]} images"
        ep = np.arange(1, len(rec.robust_acc) + 1)
        first = k not in colours
        line, = ax.plot(ep, rec.robust_acc, "o-", ms=3, color=colours.get(k),
                        label=f"{name}: PGD monitor" if first else None)
        colours.setdefault(k, line.get_color())
        ax.plot(ep, rec.clean_acc, ":", color=colours[k], label=f"{name}: clean" if first else None)
    ax.set(xlabel="epoch", ylabel="test accuracy", ylim=(-0.02, 1.02), title="CIFAR-10 on the GPU: FGSM-AT runs")
    if colours:
        ax.legend(fontsize=6)
    return fig
