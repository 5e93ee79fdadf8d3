"""Chapter 06, the recorded search for a setting that collapses, and the recorded GPU runs.

:func:`search_run` trains one setting and returns its record (``scripts/co_search.py`` appends them
with :func:`append_search_records`); :func:`search_table` / :func:`search_summary` and the texts
tabulate a search file for the page; :func:`gpu_streams`, :func:`gpu_rows`, :func:`gpu_summary`,
:func:`gpu_text`, :func:`plot_gpu_curves` do the same for the CIFAR-10 GPU runs
(:data:`GPU_SEARCH_FILE`). Part of :mod:`ntknb.chapters.ch06_overfitting`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ntknb import training
from ntknb.chapters.ch06_overfitting.variants import detect_collapse, run_variant
from ntknb.validation import check_int

__all__ = ["SEARCH_SETTINGS", "SEARCH_CURVES", "check_search_setting", "search_run", "load_search_records",
           "append_search_records", "search_table", "search_summary", "SEARCH_COLUMNS", "search_common_text",
           "search_summary_text", "GPU_SEARCH_FILE", "GPU_COLUMNS", "gpu_streams", "gpu_rows", "gpu_summary",
           "gpu_text", "plot_gpu_curves"]


# --------------------------------------------------------------------------- settings search

#: The settings of one recorded search run (:func:`search_run`); ``stage_sizes`` only for the ResNet,
#: ``hidden`` only for the CNN.
SEARCH_SETTINGS = ("dataset", "model", "width", "n_train", "n_test", "n_monitor", "batch_size", "learning_rate",
                   "momentum", "weight_decay", "eps", "attack_steps", "eval_attack_steps", "clean_epochs", "epochs",
                   "mode", "seed")
SEARCH_CURVES = ("robust_acc", "clean_acc", "fgsm_train_acc")


def check_search_setting(setting) -> dict:
    if not isinstance(setting, dict):
        raise ValueError(f"setting must be a dict of {SEARCH_SETTINGS}; got {type(setting).__name__}")
    extra = {"cnn": "hidden", "resnet": "stage_sizes"}.get(setting.get("model"))
    if extra is None:
        raise ValueError(f"setting['model'] must be 'cnn' or 'resnet'; got {setting.get('model')!r}")
    missing = [k for k in SEARCH_SETTINGS + (extra,) if k not in setting]
    if missing:
        raise ValueError(f"setting lacks {missing}; a search setting has {SEARCH_SETTINGS + (extra,)}")
    if setting["mode"] not in ("standard", "fgsm", "pgd"):
        raise ValueError(f"setting['mode'] must be 'standard', 'fgsm' or 'pgd'; got {setting['mode']!r}")
    return {k: setting[k] for k in SEARCH_SETTINGS + (extra,)}


def search_run(setting: dict, dataset=None, progress: bool = False, suite_iter: int = 0) -> dict:
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
      the setting plus the per-epoch curves ``robust_acc`` (T,), ``clean_acc`` (T,) and
      ``fgsm_train_acc`` (T+1,), rounded to 4 decimals (a JSON-ready record); with ``suite_iter``
      also ``suite_robust_acc`` and ``suite_iter``.
    """
    from ntknb import data, evaluation, models

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
    return record


def load_search_records(path) -> list:
    """The records of a search file (JSON lines, one :func:`search_run` record each;
    :func:`ntknb.report.load_records`)."""
    from ntknb import report

    return report.load_records(path)


def append_search_records(path, records: Sequence[dict]) -> None:
    """Append ``records`` to the JSON-lines file ``path`` atomically (the old file is replaced
    only once the new one is complete; :func:`ntknb.report.append_records`)."""
    from ntknb import report

    for rec in records:
        check_search_setting(rec)
    report.append_records(path, records)


def search_table(records: Sequence[dict], fraction: float = 0.3, min_peak: float = 0.2,
                 stuck_below: float = 0.15) -> list:
    """One summary row per recorded run of :func:`search_run`.

    Row: ``[setting, mode, seed, epochs, peak robust, final robust, final clean, final FGSM
    train acc., standard eval., outcome]`` (standard eval.: the record's ``suite_robust_acc``, NaN
    where it was not measured); the outcome is "stuck at chance" if the final clean accuracy is at
    most ``stuck_below``, else the :func:`detect_collapse` verdict (``fraction``, ``min_peak``).
    """
    if not 0 < stuck_below < 1:
        raise ValueError(f"stuck_below must be in (0, 1); got {stuck_below!r}")
    rows = []
    for rec in records:
        s = check_search_setting(rec)
        missing = [k for k in SEARCH_CURVES if k not in rec]
        if missing:
            raise ValueError(f"record lacks the curves {missing}")
        robust, clean, fgsm_train = (np.asarray(rec[k], float) for k in SEARCH_CURVES)
        if not (robust.size == clean.size == s["epochs"] and fgsm_train.size == s["epochs"] + 1):
            raise ValueError(f"record curves must have epochs={s['epochs']} entries (fgsm_train_acc one more); got "
                             f"{robust.size}, {clean.size}, {fgsm_train.size}")
        net = (f"CNN w{s['width']}/h{s['hidden']}" if s["model"] == "cnn"
               else f"ResNet{tuple(s['stage_sizes'])} w{s['width']}")
        setting = (f"{net}, ε {s['eps']:g}, lr {s['learning_rate']:g}, batch {s['batch_size']}, {s['n_train']} images"
                   + (f", {s['clean_epochs']} clean epoch(s) first" if s["clean_epochs"] else ""))
        c = detect_collapse(robust, fraction, min_peak)
        if clean[-1] <= stuck_below:
            outcome = "stuck at chance"
        elif c.collapsed:
            outcome = f"collapsed at epoch {c.epoch}" + (" (recovered)" if c.recovered else "")
        else:
            outcome = "no collapse"
        rows.append([setting, s["mode"], s["seed"], s["epochs"], float(robust.max()), float(robust[-1]),
                     float(clean[-1]), float(fgsm_train[-1]), float(rec.get("suite_robust_acc", np.nan)), outcome])
    return rows


def search_summary(records: Sequence[dict], rows: Sequence[list], min_seeds: int = 3) -> dict:
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
    common = {k: records[0][k] for k in keys if records and all(r[k] == records[0][k] for r in records)}
    fgsm = [r for r in rows if r[1] == "fgsm"]
    collapsed = [r for r in fgsm if r[-1].startswith("collapsed")]
    by_setting: dict = {}
    for r in fgsm:
        by_setting.setdefault(r[0], []).append(r[-1].startswith("collapsed"))
    groups: dict = {}
    for rec, r in zip(records, rows):
        groups.setdefault((r[0], r[1]), []).append((rec, r))
    settings = []
    for (name, mode), members in groups.items():
        suite = [r[8] for _, r in members if not np.isnan(r[8])]
        settings.append(dict(
            setting=name, mode=mode, eps=float(members[0][0]["eps"]), n_train=int(members[0][0]["n_train"]),
            epochs=sorted({int(rec["epochs"]) for rec, _ in members}), seeds=[r[2] for _, r in members],
            n_runs=len(members), n_collapsed=sum(r[-1].startswith("collapsed") for _, r in members),
            n_ended_collapsed=sum(r[-1].startswith("collapsed") and "recovered" not in r[-1] for _, r in members),
            robust=float(np.mean([r[5] for _, r in members])), clean=float(np.mean([r[6] for _, r in members])),
            suite=float(np.mean(suite)) if suite else float("nan"), n_suite=len(suite),
            devices=sorted({str(rec.get("device", "cpu")) for rec, _ in members})))
    return dict(common=common, n_runs=len(rows), n_fgsm=len(fgsm), n_collapsed=len(collapsed),
                n_transient=sum("recovered" in r[-1] for r in collapsed),
                n_stuck=sum(r[-1] == "stuck at chance" for r in rows),
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

#: The recorded CIFAR-10 GPU runs (``scripts/gpu_cifar_search``), relative to ``notebooks/``.
GPU_SEARCH_FILE = "data/gpu/cifar10_search.jsonl"
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


def plot_gpu_curves(records: Sequence[dict]):
    """PGD monitor (solid) and clean (dotted) test accuracy per epoch of each recorded FGSM-AT GPU
    run, one colour per stream (eps and training-set size). Returns the figure."""
    from ntknb import plotting

    fig, ax = plotting.new_figure(width=5.6, height=3.4)
    colours = {}
    for rec in records:
        if rec["mode"] != "fgsm":
            continue
        k = (round(rec["eps"] * 255), rec["n_train"])
        name = f"ε {k[0]}/255, {k[1]} images"
        ep = np.arange(1, len(rec["robust_acc"]) + 1)
        first = k not in colours
        line, = ax.plot(ep, rec["robust_acc"], "o-", ms=3, color=colours.get(k),
                        label=f"{name}: PGD monitor" if first else None)
        colours.setdefault(k, line.get_color())
        ax.plot(ep, rec["clean_acc"], ":", color=colours[k], label=f"{name}: clean" if first else None)
    ax.set(xlabel="epoch", ylabel="test accuracy", ylim=(-0.02, 1.02), title="CIFAR-10 on the GPU: FGSM-AT runs")
    if colours:
        ax.legend(fontsize=6)
    return fig
