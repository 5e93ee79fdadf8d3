"""Tests for ntknb.chapters.ch05_bn_buffers (chapter 05): schema, measurements, claims, and a
tiny end-to-end run of both arms."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ntknb import claims as C
from ntknb.book.params import load_notebook, notebook_parameters
from ntknb.chapters import ch05_bn_buffers as ch

NB = Path(__file__).resolve().parents[1] / "notebooks" / "05_bn_buffers.py"


def params(**changes):
    defaults = {n: p.default for n, p in notebook_parameters(load_notebook(NB)).items()}
    return ch.Params.from_values({**defaults, **changes})


def test_params_rules():
    p = params()
    assert p.seeds == list(range(p.seed, p.seed + p.n_seeds)) and p.n_seeds >= 3
    for change, name in [(dict(eval_batch_size=p.n_test - 1), "eval_batch_size"), (dict(batch_sizes=[3, p.n_test]),
                                                                                      "batch_sizes"),
                         (dict(batch_sizes=[100, 20]), "batch_sizes"), (dict(ks_epochs=[2, 1]), "ks_epochs"),
                         (dict(ks_epochs=[p.epochs + 1]), r"ks_epochs\[0\]"),
                         (dict(lr_decay_epochs=[p.epochs]), r"lr_decay_epochs\[0\]"), (dict(stage_sizes=[0]),
                                                                                       r"stage_sizes\[0\]")]:
        with pytest.raises(ValueError, match=f"'{name}'"):
            params(**change)


def test_paper_yaml_is_valid():
    import yaml

    values = yaml.safe_load((NB.parent / "05_bn_buffers.paper.yaml").read_text())
    p = params(**values)
    assert p.dataset == "cifar10" and p.stage_sizes == [2, 2, 2, 2] and p.width == 64


def test_abs_interval():
    iv = SimpleNamespace(estimate=-0.01, low=-0.03, high=0.01)
    assert ch.abs_interval(iv) == (0.01, 0.0, 0.03)
    assert ch.abs_interval(SimpleNamespace(estimate=-0.05, low=-0.07, high=-0.02)) == (0.05, 0.02, 0.07)


# ------------------------------------------------------------------ stand-in replicas

def _report(robust, broken_by, x_adv=None, acc=None):
    robust = np.asarray(robust, bool)
    return SimpleNamespace(robust=robust, broken_by=np.asarray(broken_by), x_adv=x_adv,
                           robust_accuracy=float(robust.mean()) if acc is None else acc)


def _gap(v):
    return SimpleNamespace(norm_gap=np.asarray(v, float))


def _run(seed, shift=0.0):
    """Four test points; w buffer: 3 clean-correct, 2 robust; w/o buffer: 3 clean-correct, 1 robust."""
    ks = {}
    for arm, ae in (("buffer", 1.2), ("batch", 1.0)):
        for e in ((1, 4) if arm == "buffer" else (4,)):  # w/o buffer: the last epoch only
            ks[arm, "clean.CL", e] = np.diag([1.5 + shift] * 3) + 0.0
            ks[arm, "adv.CL", e] = np.diag([ae + shift] * 3)
            ks[arm, "adv.AL", e] = np.diag([ae + 0.1 + shift] * 3)
    return ch.SeedRun(
        seed=seed, history={},
        suite={"buffer": _report([1, 1, 0, 0], ["", "", "apgd-ce", "clean"]),
               "batch": _report([1, 1, 1, 0], ["", "", "", "clean"])},
        transfer={"buffer": np.array([1, 1, 1, 0], bool), "batch": np.array([1, 0, 1, 0], bool)},
        surrogate={"buffer": np.array([1, 1, 1, 1], bool), "batch": np.array([1, 1, 0, 1], bool)},
        gaps={"clean": _gap([0.1, 0.1]), "adversarial": _gap([0.2 + shift, 0.2])},
        by_batch_size={20: (0.9, 0.4), 100: (0.9, 0.5 + shift), 200: (0.9, 0.6), "buffer": (0.9, 0.7)},
        ks=ks, train_seconds=1.0, seconds=2.0)


def test_robust_is_the_worst_case_and_measurements_follow():
    p = params(ks_epochs=[1, 4], batch_sizes=[20, 100, 200])
    runs = [_run(0), _run(1, 0.01), _run(2, -0.01)]
    r = runs[0]
    np.testing.assert_array_equal(r.clean("buffer"), [1, 1, 1, 0])
    np.testing.assert_array_equal(r.robust("buffer"), [1, 1, 0, 0])
    np.testing.assert_array_equal(r.robust("batch"), [1, 0, 0, 0])  # suite & transfer & surrogate
    m = ch.measurements(p, runs)
    np.testing.assert_allclose(m["robust_w"], 0.5)
    np.testing.assert_allclose(m["robust_wo"], 0.25)
    np.testing.assert_allclose(m["robust_gap"], 0.25)
    np.testing.assert_allclose(m["clean_gap"], 0.0)
    np.testing.assert_allclose(m["masking_wo"], 0.75 - 0.5)  # white-box 3/4 vs transfer 2/4
    np.testing.assert_allclose(m["gap_ratio"], [2.0, 2.05, 1.95])  # mean over layers / clean 0.1
    np.testing.assert_allclose(m["bs_pgd_change"], 0.2)
    np.testing.assert_allclose(m["ks_ae_cl_diff"], 0.2)
    np.testing.assert_allclose(m["ks_al_minus_cl_first"], 0.1)
    np.testing.assert_allclose(m["ks_cntk_min"], [1.5, 1.51, 1.49])
    assert len(ch.accuracy_rows(m)) == 2 and len(ch.accuracy_rows(m)[0]) == len(ch.ACCURACY_COLUMNS)
    assert len(ch.batch_size_rows(p, m)) == 3 and len(ch.ks_rows(p, m)) == 6
    assert ch.ks_rows(p, m)[1][2] == "–" and ch.ks_rows(p, m)[1][3] != "–"  # w/o buffer, epochs 1 and 4
    assert len(ch.seed_rows(runs)[0]) == len(ch.SEED_COLUMNS)
    assert "robust acc w / w/o buffer: 0.500 / 0.250" in ch.summary_text(p, m)


def test_claims_are_well_formed_and_verdicts_follow_the_data():
    p = params(ks_epochs=[1, 4], batch_sizes=[20, 100, 200])
    runs = [_run(0), _run(1, 0.01), _run(2, -0.01)]
    cl = ch.claims(p, ch.measurements(p, runs))
    assert [c.id for c in cl] == list(ch.CLAIM_THRESHOLDS)
    for c in cl:
        assert (c.direction, c.threshold) == ch.CLAIM_THRESHOLDS[c.id] and c.n_seeds == 3
        C.Claim.from_json(c.to_json())  # the verdict follows from the stored fields
    v = {c.id: c.verdict for c in cl}
    # identical clean accuracies: |0| within 0.02; robust gap 0.25 > 0.02; masking 0.25 > 0.01
    assert v["ch05.prop1_clean_close"] == "reproduced" and v["ch05.prop2_robust_lower"] == "reproduced"
    assert v["ch05.no_masking_transfer"] == "contradicted"
    assert v["ch05.props_statistics_gap"] == "reproduced" and v["ch05.fig3_cntk_aligned"] == "reproduced"
    assert v["ch05.fig4_al_earlier"] == "reproduced"
    # one replica: no interval, every verdict inconclusive
    one = ch.claims(p, ch.measurements(p, runs[:1]))
    assert {c.verdict for c in one} == {"inconclusive"}


def test_clean_close_uses_the_absolute_difference():
    p = params()
    m = {k: np.zeros(3) for k in ("ks_cntk_min", "ks_ae_cl_diff", "ks_ae_al_diff", "ks_al_minus_cl_first",
                                  "masking_wo", "bs_pgd_change", "robust_gap")}
    m["gap_ratio"] = np.ones(3)
    m["clean_w"] = np.ones(3)
    m["clean_gap"] = np.array([-0.05, -0.06, -0.055])  # clearly farther than 0.02, with the sign reversed
    c = {x.id: x for x in ch.claims(p, m)}["ch05.prop1_clean_close"]
    assert c.verdict == "contradicted" and c.measured == pytest.approx(0.055)
    m["clean_gap"] = np.array([0.001, -0.002, 0.0])
    assert {x.id: x for x in ch.claims(p, m)}["ch05.prop1_clean_close"].verdict == "reproduced"


# ------------------------------------------------------------------ a tiny end-to-end run

def _toy_dataset():
    from ntknb import data

    rng = np.random.default_rng(0)

    def split(n):
        labels = np.arange(n) % 3
        x = rng.uniform(0.0, 0.3, (n, 8, 8, 1)).astype(np.float32)
        for c in range(3):  # class c: a bright stripe in rows 2c..2c+1
            x[labels == c, 2 * c:2 * c + 2] += 0.6
        return x, labels.astype(np.int64)

    xtr, ytr = split(60)
    xte, yte = split(30)
    return data.Dataset("toy", xtr, ytr, xte, yte, ("a", "b", "c"),
                        data.Provenance("toy", "/toy", "sha256", "00", lossy=False))


def test_tiny_run_of_both_arms():
    # n_test: a multiple of the toy's 3 classes and of MNIST's 10 (the schema checks the sizes against p.dataset)
    p = params(n_seeds=2, downsample=1, masking_points=6, n_train=30, n_test=30, width=2, stage_sizes=[1], epochs=2, batch_size=10,
               lr_decay_epochs=[1], eval_iter=2, eval_attack_steps=2, attack_steps=1, eval_batch_size=6,
               batch_sizes=[3, 6, 15], probe_per_class=2, ks_epochs=[1, 2])
    ds = _toy_dataset()
    model = ch.make_model(p, ds.n_classes)
    runs = ch.run_seeds(p, model, ds)
    assert [r.seed for r in runs] == p.seeds
    for r in runs:
        for arm in ch.ARMS:
            assert r.suite[arm].n == p.n_test and r.robust(arm).shape == (p.n_test,)
            assert np.all(r.robust(arm) <= r.clean(arm))
            epochs = p.ks_epochs if arm == "buffer" else p.ks_epochs[-1:]
            assert set(k for k in r.ks if k[0] == arm) == {(arm, kind, e) for kind in ch.KINDS for e in epochs}
        assert r.suite["batch"].settings["bn_mode"] == "batch"
        assert set(r.by_batch_size) == {3, 6, 15, "buffer"}
        assert {"training", "standard evaluation", "transfer", "statistics gap", "batch sizes"} <= set(r.timings)
    assert runs[0].masking is not None and runs[0].masking.n == 6 and runs[1].masking is None
    m = ch.measurements(p, runs)
    cl = ch.claims(p, m)
    assert len(cl) == len(ch.CLAIM_THRESHOLDS) and all(c.n_seeds == 2 for c in cl)
    assert set(ch.ks_panels(p, runs)) == {(a, k) for a in ch.ARMS.values() for k in ch.KINDS.values()}
    fig = ch.plot_ks(p, runs)
    assert "$" not in fig.axes[-1].get_ylabel()  # no mathtext: no font look-ups logged under the cell
