"""Tests for ntknb.chapters.ch05_bn_buffers (chapter 05): schema and the values it glues."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ntknb import runner
from ntknb.chapters import ch05_bn_buffers as ch

NB = Path(__file__).resolve().parents[1] / "notebooks" / "05_bn_buffers.py"


def params(**changes):
    defaults = {n: p.default for n, p in runner.notebook_parameters(runner.load_notebook(NB)).items()}
    return ch.Params.from_values({**defaults, **changes})


def test_params_rules():
    p = params()
    assert p.eval_epochs[-1] == p.epochs
    for change, name in [(dict(eval_batch_size=p.n_test - 1), "eval_batch_size"), (dict(batch_sizes=[3, 500]), "batch_sizes"),
                         (dict(ks_epochs=[2, 1]), "ks_epochs"), (dict(ks_epochs=[p.epochs + 1]), r"ks_epochs\[0\]"),
                         (dict(lr_decay_epochs=[p.epochs]), r"lr_decay_epochs\[0\]"), (dict(stage_sizes=[0]), r"stage_sizes\[0\]")]:
        with pytest.raises(ValueError, match=f"'{name}'"):
            params(**change)


def _trained(acc):
    """A stand-in Trained whose evaluators return acc[(strategy, split, mode, kind)] as the last value."""
    evals = {s: SimpleNamespace(curves=lambda split, mode, s=s: {k: [0.0, acc[(s, split, mode, k)]]
                                                                  for k in ("clean", "robust")}) for s in ch.STRATEGIES}
    return ch.Trained(runs={}, evals=evals, trackers={}, splits={"train": None, "test": None})


def test_accuracy_values_and_verdicts():
    p = params(n_test=500)
    acc = {(s, sp, m, k): 0.5 for s in ch.STRATEGIES for sp in ("train", "test") for m in ("buffer", "batch")
           for k in ("clean", "robust")}
    acc[("pgd", "test", "buffer", "robust")] = 0.6  # w buffer more robust by 0.1 > 2 * sqrt(0.5 / 500) ~ 0.063
    v = ch.accuracy_values(p, _trained(acc))
    assert v["robust_gap"] == pytest.approx(0.1) and v["clean_gap"] == 0.0
    assert v["robust_verdict"].startswith("clearly lower") and v["fig2_verdict"] == "reproduces"
    assert v["std_robust_verdict"] == "about the same" and v["robust_acc_w_buffer"] == 0.6
    acc[("pgd", "test", "buffer", "robust")] = 0.52
    v = ch.accuracy_values(p, _trained(acc))
    assert v["robust_verdict"].startswith("lower, but") and v["fig2_verdict"] == "does not clearly reproduce"
    rows = ch.accuracy_rows(_trained(acc))
    assert rows[0][:2] == ["standard training", "w buffer"] and len(rows) == 4


def test_gap_batch_size_and_ks_values():
    g = lambda v: SimpleNamespace(norm_gap=np.asarray(v))  # noqa: E731
    gaps = {("standard", "clean"): g([0.1, 0.1]), ("standard", "adversarial"): g([0.05, 0.05]),
            ("pgd", "clean"): g([0.1, 0.3]), ("pgd", "adversarial"): g([0.4, 0.4])}
    v = ch.gap_values(gaps)
    assert v["pgd_gap_ratio"] == pytest.approx(2.0) and v["pgd_gap_verdict"] == "farther from"
    assert v["standard_gap_verdict"] == "closer to" and v["pgd_first_layer_adv_gap"] == 0.4
    p = params(batch_sizes=[20, 100])
    by_bs = {"pgd": {20: {"buffer": (0.9, 0.5), "batch": (0.9, 0.3)}, 100: {"buffer": (0.9, 0.5), "batch": (0.9, 0.6)}}}
    bv = ch.batch_size_values(p, by_bs)
    assert bv["bs_verdict"] == "not at every batch size" and bv["bs_robust_gap_max"] == pytest.approx(0.2)
    assert (bv["bs_smallest"], bv["bs_largest"], bv["bs_wo_robust_largest"]) == (20, 100, 0.6)
    p = params(ks_epochs=[1, 4])
    ks = {(m, kind, e): 1.02 for m in ("buffer", "batch") for kind in ch.KINDS for e in (1, 4)}
    kv = ch.ks_values(p, ks)
    assert kv["ks_last_epoch"] == 4 and kv["ks_verdict"].startswith("every KS is within 0.1 of 1")
    ks[("batch", "adv.AL", 4)] = 0.5
    assert ch.ks_values(p, ks)["ks_verdict"].startswith("some kernels have specialised")
