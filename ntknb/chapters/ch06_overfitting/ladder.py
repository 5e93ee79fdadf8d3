"""Chapter 06, the collapse ladder: the pre-registered search for a setting in which FGSM-AT
overfits catastrophically in at least 4 of 5 never-used seeds (issue 27).

The protocol, ``notebooks/data/06_co_protocol.yaml``, is written and committed before the runs it
judges: the recipe (the CNN with 4 filters of ``andriushchenko2020understanding`` on CIFAR-10),
the monitor (:class:`ntknb.collapse.EpochMonitor`) and its validation against the 100-iteration
suite, the end-state rule (:class:`ntknb.collapse.CollapseRule`) and the ladder of rungs with
their seeds. :func:`ladder_run` makes one run of one rung and returns its record (appended to
``notebooks/data/06_co_ladder.jsonl`` by ``scripts/co_ladder.py``; read by
:func:`ntknb.records.load_ladder_records`); :func:`rung_status` says
whether a rung passed, failed or is still open; :func:`ladder_rows` / :func:`monitor_rows` tabulate
the records for the page.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import jax
import numpy as np
import yaml

from ntknb import collapse, models, paths, training
from ntknb.evaluation import robust_evaluation
from ntknb.stats import binomial_interval

__all__ = ["PROTOCOL_FILES", "load_protocol", "rung", "collapse_rule", "test_points", "injection",
           "ladder_run", "rung_status", "ladder_rows", "LADDER_COLUMNS", "monitor_rows", "MONITOR_TABLE_COLUMNS",
           "ladder_summary", "ladder_text", "plot_ladder_curves"]

#: The protocols in the order they were written (each later one follows an earlier one whose rungs all
#: failed); their runs are recorded in :data:`ntknb.records.LADDER_FILE`.
PROTOCOL_FILES = tuple(paths.DATA / f"06_co_protocol{n}.yaml" for n in ("", "_2", "_3"))

_SECTIONS = {"id": str, "recipe": dict, "monitor": dict, "rule": dict, "ladder": dict}


def load_protocol(path: str | Path) -> dict:
    """The protocol file (plain YAML data, ``yaml.safe_load``), checked for its sections and rungs."""
    text = Path(path).read_text(encoding="utf-8")
    if len(text) > 100_000:
        raise ValueError(f"{path}: a protocol file is at most 100 kB; got {len(text)} characters")
    proto = yaml.safe_load(text)
    if not isinstance(proto, dict):
        raise ValueError(f"{path}: the protocol must be a mapping; got {type(proto).__name__}")
    for name, kind in _SECTIONS.items():
        if not isinstance(proto.get(name), kind):
            raise ValueError(f"{path}: section {name!r} must be a {kind.__name__}; got {proto.get(name)!r}")
    names = [r.get("name") for r in proto["ladder"].get("rungs", [])]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"{path}: ladder.rungs must name each rung once; got {names}")
    seeds = [s for r in proto["ladder"]["rungs"] for s in r["seeds"]]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{path}: every rung needs seeds of its own (never used); repeated in {seeds}")
    return proto


def rung(protocol: Mapping, name: str) -> dict:
    """The rung called ``name`` of the protocol's ladder."""
    rungs = {r["name"]: r for r in protocol["ladder"]["rungs"]}
    if name not in rungs:
        raise ValueError(f"parameter 'rung' must be one of {list(rungs)}; got {name!r}")
    return rungs[name]


def collapse_rule(protocol: Mapping) -> collapse.CollapseRule:
    """The protocol's :class:`ntknb.collapse.CollapseRule`."""
    return collapse.CollapseRule(**protocol["rule"])


def test_points(protocol: Mapping, ds) -> tuple[np.ndarray, np.ndarray]:
    """The protocol's ``n_final`` fixed test points of the dataset ``ds``: ``(x (n, H, W, C), labels (n,))``;
    the monitor uses the first ``n_monitor`` of them."""
    m = protocol["monitor"]
    idx = np.random.default_rng(int(m["points_seed"])).permutation(ds.x_test.shape[0])[: int(m["n_final"])]
    return np.asarray(ds.x_test[idx]), np.asarray(ds.labels_test[idx])


def injection(rung_spec: Mapping, ds) -> Optional[collapse.InjectedFeature]:
    """The rung's injected feature (``beta_255``: its strength β·255, ``ortiz2023catastrophic``), or ``None``."""
    if rung_spec.get("beta_255") is None:
        return None
    return collapse.InjectedFeature(float(rung_spec["beta_255"]) / 255, ds.image_shape, ds.n_classes)


def _config(recipe: Mapping, eps: float, seed: int, inject=None) -> training.TrainConfig:
    return training.TrainConfig(injection=inject,
        mode="fgsm", epochs=int(recipe["epochs"]), batch_size=int(recipe["batch_size"]),
        learning_rate=float(recipe["learning_rate"]), weight_decay=float(recipe["weight_decay"]),
        optimizer=recipe["optimizer"], lr_schedule="cyclic", lr_peak_fraction=float(recipe["lr_peak_fraction"]),
        eps=eps, augment=recipe["augment"], crop_padding=int(recipe["crop_padding"]), eval_attack_steps=10,
        seed=seed)


def ladder_run(protocol: Mapping, rung_name: str, seed: int, ds, *, n_train: Optional[int] = None,
               epochs: Optional[int] = None, progress: bool = False) -> dict:
    """One FGSM-AT run of rung ``rung_name`` at ``seed`` (initialisation, data order, augmentation,
    attack starts), judged by the protocol's rule; returns the JSON record.

    ``n_train`` / ``epochs`` shrink the run for tests only (the record then says so: ``"reduced"``).
    The record holds the setting, the per-epoch monitor rows, the training history, the final
    network's clean / FGSM / 100-iteration-suite accuracies on the ``n_final`` points, the monitor's
    suite on the same points (validation), the judgement, the device and the timings."""
    r = rung(protocol, rung_name)
    if seed not in r["seeds"]:
        raise ValueError(f"parameter 'seed' must be one of rung {rung_name!r}'s seeds {r['seeds']}; got {seed!r}")
    recipe, mon = dict(protocol["recipe"]), protocol["monitor"]
    if recipe["dataset"] != ds.name:
        raise ValueError(f"the protocol trains on {recipe['dataset']!r}; got the dataset {ds.name!r}")
    reduced = n_train is not None or epochs is not None
    if epochs is not None:
        recipe["epochs"] = int(epochs)
    eps = float(r["eps_255"]) / 255
    x_train, labels_train = ds.x_train, ds.labels_train
    if n_train is not None:  # a seeded subset (the image-folder copy is ordered by class)
        keep = np.sort(np.random.default_rng(seed).permutation(x_train.shape[0])[:n_train])
        x_train, labels_train = x_train[keep], labels_train[keep]
    x_pts, labels_pts = test_points(protocol, ds)
    inject = injection(r, ds)
    if inject is not None:  # the feature is part of the distribution: the test points carry it too (as the source's)
        x_pts = inject(x_pts, labels_pts)
    n_mon = int(mon["n_monitor"])
    model = models.make_model(recipe["model"], ds.n_classes, filters=int(recipe["filters"]))
    apply_fn = training.flax_apply_fn(model)
    params, state = models.init_model(model, ds.image_shape, seed=seed)
    monitor = collapse.EpochMonitor(apply_fn, x_pts[:n_mon], labels_pts[:n_mon], eps, n_iter=int(mon["monitor_iter"]),
                                    seed=seed)
    cfg = _config(recipe, eps, seed, inject)
    t0 = time.perf_counter()
    result = training.fit(apply_fn, params, state, x_train, labels_train, x_pts[:200], labels_pts[:200], cfg,
                          callbacks=[monitor], progress=progress, description=f"{rung_name} seed {seed}")
    t_train = time.perf_counter() - t0
    final = collapse.EpochMonitor(apply_fn, x_pts, labels_pts, eps, n_iter=int(mon["monitor_iter"]), seed=seed)
    light = final.measure(result.params, result.state)
    t1 = time.perf_counter()
    suite = robust_evaluation(final.logits_fn, x_pts, labels_pts, eps, seed=seed, n_iter=int(mon["final_iter"]),
                              batch_size=500, params=(result.params, result.state))
    t_suite = time.perf_counter() - t1
    judged = collapse_rule(protocol).judge(monitor.column("strong_acc"), suite.robust_accuracy, light["fgsm_acc"],
                                           suite.clean_accuracy, ds.n_classes, epochs=monitor.column("epoch"))
    return {
        "protocol": protocol["id"], "rung": rung_name, "seed": int(seed), "eps": eps, "reduced": reduced,
        "beta": None if inject is None else inject.beta,
        "setting": {**recipe, "n_train": int(x_train.shape[0])},
        "monitor": monitor.rows,
        "history": [{"epoch": h.epoch, "learning_rate": h.learning_rate, "train_loss": h.train_loss,
                     "pgd10_acc_200": h.robust_acc, "seconds": h.seconds} for h in result.history],
        "final": {"clean_acc": suite.clean_accuracy, "fgsm_acc": light["fgsm_acc"],
                  "suite_acc": suite.robust_accuracy, "suite_after": suite.accuracy_after,
                  "monitor_acc": light["strong_acc"], "loss_gap": light["loss_gap"],
                  "grad_align": light["grad_align"], "n_points": int(x_pts.shape[0])},
        "judgement": judged.to_json(),
        "device": f"{jax.devices()[0].platform} ({platform.processor() or platform.machine()})",
        "seconds": {"train_and_monitor": round(t_train, 1), "final_suite": round(t_suite, 1)},
    }


def rung_status(protocol: Mapping, rung_name: str, records: Sequence[Mapping]) -> dict:
    """``{"runs", "collapsed", "status", "rate" (a Clopper-Pearson interval), "seeds_left"}`` of one rung
    from the full-size records of this protocol: ``status`` is ``"passed"`` (at least ``pass_at``
    collapsed), ``"failed"`` (too many not collapsed to reach it) or ``"open"``."""
    lad, r = protocol["ladder"], rung(protocol, rung_name)
    mine = [rec for rec in records if rec.get("protocol") == protocol["id"] and rec.get("rung") == rung_name
            and not rec.get("reduced")]
    done = {rec["seed"] for rec in mine}
    n_col = sum(bool(rec["judgement"]["ended_collapsed"]) for rec in mine)
    n_not = len(mine) - n_col
    status = ("passed" if n_col >= lad["pass_at"] else
              "failed" if n_not > lad["runs"] - lad["pass_at"] else "open")
    rate = binomial_interval(n_col, len(mine), method="clopper-pearson") if mine else None
    return {"runs": len(mine), "collapsed": n_col, "status": status, "rate": rate,
            "seeds_left": [s for s in r["seeds"] if s not in done]}


LADDER_COLUMNS = ["rung", "eps", "feature β", "seed", "peak strong (epoch)", "final strong (100 it.)", "final FGSM",
                  "final clean", "collapse epoch", "ended collapsed", "monitor - suite"]


def _f(v: Any) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def ladder_rows(records: Sequence[Mapping]) -> list:
    """One row a record (:data:`LADDER_COLUMNS`)."""
    rows = []
    for rec in records:
        j, fin = rec["judgement"], rec["final"]
        beta = "—" if rec.get("beta") is None else f"{round(rec['beta'] * 255)}/255"
        rows.append([rec["rung"], f"{round(rec['eps'] * 255)}/255", beta, rec["seed"], f"{_f(j['peak'])} ({j['peak_epoch']})",
                     _f(fin["suite_acc"]), _f(fin["fgsm_acc"]), _f(fin["clean_acc"]),
                     "—" if j["collapse_epoch"] is None else j["collapse_epoch"],
                     "yes" if j["ended_collapsed"] else f"no ({', '.join(j['failed'])})",
                     f"{fin['monitor_acc'] - fin['suite_acc']:+.3f}"])
    return rows


MONITOR_TABLE_COLUMNS = list(collapse.MONITOR_COLUMNS)


def monitor_rows(record: Mapping) -> list:
    """The per-epoch monitor of one record as rows (:data:`MONITOR_TABLE_COLUMNS`)."""
    return [[row["epoch"]] + [round(float(row[c]), 4) for c in MONITOR_TABLE_COLUMNS[1:]] for row in record["monitor"]]


def ladder_summary(protocols: Sequence[Mapping], records: Sequence[Mapping]) -> dict:
    """The ladders' numbers over all ``protocols`` (glued under these names): ``ladder_n_runs``
    (full-size runs of these protocols), ``ladder_n_collapsed``, ``ladder_passed`` (the first passing
    rung, protocols and rungs in their order, as ``"protocol/rung"``, or ``"none"``),
    ``ladder_monitor_max_diff`` (the largest |monitor - 100-iteration suite| over the final networks)
    and ``ladder_monitor_ok`` (within every protocol's ``monitor_tolerance``)."""
    ids = {p["id"] for p in protocols}
    mine = [r for r in records if r.get("protocol") in ids and not r.get("reduced")]
    diffs = [abs(r["final"]["monitor_acc"] - r["final"]["suite_acc"]) for r in mine]
    passed = [f"{p['id']}/{r['name']}" for p in protocols for r in p["ladder"]["rungs"]
              if rung_status(p, r["name"], mine)["status"] == "passed"]
    worst = max(diffs) if diffs else float("nan")
    tolerance = min(float(p["monitor"]["monitor_tolerance"]) for p in protocols)
    return {"ladder_n_runs": len(mine), "ladder_n_collapsed": sum(bool(r["judgement"]["ended_collapsed"]) for r in mine),
            "ladder_passed": passed[0] if passed else "none", "ladder_monitor_max_diff": worst,
            "ladder_monitor_ok": bool(diffs) and worst <= tolerance}


def ladder_text(protocols: Sequence[Mapping], records: Sequence[Mapping]) -> str:
    """Each protocol's rungs in words: their runs, how many ended collapsed, the status under the
    stopping rule and the collapse rate with its exact (Clopper-Pearson) 95% interval."""
    out = []
    for protocol in protocols:
        parts = []
        for r in protocol["ladder"]["rungs"]:
            st = rung_status(protocol, r["name"], records)
            what = f"ε = {r['eps_255']}/255" + ("" if r.get("beta_255") is None else f", feature β = {r['beta_255']}/255")
            if not st["runs"]:
                parts.append(f"rung `{r['name']}` ({what}): not run")
                continue
            iv = st["rate"]
            parts.append(f"rung `{r['name']}` ({what}): {st['collapsed']} of {st['runs']} ended collapsed, "
                         f"{st['status']} (collapse rate {iv.text('.2f')})")
        out.append(f"Protocol `{protocol['id']}`: " + "; ".join(parts) + ".")
    return " ".join(out)


def plot_ladder_curves(records: Sequence[Mapping]):
    """Per-epoch strong (solid) and FGSM (dashed) accuracy of every full-size ladder run, one colour
    per rung (left), and the gradient alignment (right). Returns the figure."""
    from ntknb import plotting

    fig, axes = plotting.new_figure(ncols=2, width=4.2, height=3.1)
    colours = {}
    for rec in records:
        if rec.get("reduced"):
            continue
        ep = [row["epoch"] for row in rec["monitor"]]
        first = rec["rung"] not in colours
        line, = axes[0].plot(ep, [row["strong_acc"] for row in rec["monitor"]], "-", lw=1.2,
                             color=colours.get(rec["rung"]), label=f"{rec['rung']}: strong" if first else None)
        colours.setdefault(rec["rung"], line.get_color())
        c = colours[rec["rung"]]
        axes[0].plot(ep, [row["fgsm_acc"] for row in rec["monitor"]], "--", lw=0.9, color=c,
                     label=f"{rec['rung']}: FGSM" if first else None)
        axes[1].plot(ep, [row["grad_align"] for row in rec["monitor"]], "-", lw=1.0, color=c,
                     label=rec["rung"] if first else None)
    axes[0].set(title="FGSM-AT, CIFAR-10, 4-filter CNN", xlabel="epoch", ylabel="test accuracy", ylim=(-0.02, 1.02))
    axes[1].set(title="gradient alignment", xlabel="epoch", ylabel="cos(∇ℓ(x), ∇ℓ(x+η))", ylim=(-0.05, 1.05))
    if colours:
        axes[0].legend(fontsize=6)
        axes[1].legend(fontsize=6)
    return fig
