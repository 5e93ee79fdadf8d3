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
    assert p.seeds == list(range(p.seed, p.seed + p.n_seeds))
    assert p.n_seeds >= 8 and p.n_test >= 1000  # issue 28: evidence scale at the defaults
    for change, name in [(dict(eval_batch_size=p.n_test - 1), "eval_batch_size"), (dict(batch_sizes=[3, p.n_test]),
                                                                                      "batch_sizes"),
                         (dict(batch_sizes=[100, 20]), "batch_sizes"), (dict(ks_epochs=[2, 1]), "ks_epochs"),
                         (dict(ks_epochs=[p.epochs + 1]), r"ks_epochs\[0\]"),
                         (dict(lr_decay_epochs=[p.epochs]), r"lr_decay_epochs\[0\]"), (dict(stage_sizes=[0]),
                                                                                       r"stage_sizes\[0\]")]:
        with pytest.raises(ValueError, match=f"'{name}'"):
            params(**change)


@pytest.mark.parametrize("preset", ["paper", "quick", "ci"])
def test_presets_are_valid(preset):
    import yaml

    values = yaml.safe_load((NB.parent / f"05_bn_buffers.{preset}.yaml").read_text())
    p = params(**values)
    if preset == "paper":
        assert p.dataset == "cifar10" and p.stage_sizes == [2, 2, 2, 2] and p.width == 64
    if preset == "quick":
        assert p.n_seeds >= 3


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


class _History:
    """The per-epoch monitor of a stand-in arm (:meth:`ntknb.training.TrainResult.column`)."""

    def __init__(self, robust_acc):
        self.cols = {"epoch": np.arange(1, len(robust_acc) + 1), "robust_acc": np.asarray(robust_acc, float)}

    def column(self, name):
        return self.cols[name]


def _run(seed, shift=0.0):
    """Four test points; w buffer: 3 clean-correct, 2 robust; w/o buffer: 3 clean-correct, 1 robust.
    KS at the last epoch: C-NTK 1.5 in both arms, AE-NTK 1.2 (w) vs 1.0 (w/o) under CL, +0.1 under AL."""
    ks = {}
    for arm, ae in (("buffer", 1.2), ("batch", 1.0)):
        for e in ((1, 4) if arm == "buffer" else (4,)):  # w/o buffer: the last epoch only
            ks[arm, "clean.CL", e] = np.diag([1.5 + shift] * 3) + 0.0
            ks[arm, "adv.CL", e] = np.diag([ae + shift] * 3)
            ks[arm, "adv.AL", e] = np.diag([ae + 0.1 + shift] * 3)
    return ch.SeedRun(
        seed=seed, history={"buffer": _History([0.6, 0.7, 0.7, 0.8]), "batch": _History([0.5, 0.6, 0.6, 0.7])},
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
    assert m["points_robust_w"].shape == (3, 4) and m["points_robust_w"].dtype == bool
    np.testing.assert_allclose(m["robust_w"], 0.5)
    np.testing.assert_allclose(m["robust_wo"], 0.25)
    np.testing.assert_allclose(m["robust_gap"], 0.25)
    np.testing.assert_allclose(m["clean_gap"], 0.0)
    np.testing.assert_allclose(m["masking_wo"], 0.75 - 0.5)  # white-box 3/4 vs transfer 2/4
    np.testing.assert_allclose(m["gap_ratio"], [2.0, 2.05, 1.95])  # mean over layers / clean 0.1
    np.testing.assert_allclose(m["bs_pgd_change"], 0.2)
    np.testing.assert_allclose(m["ks_ae_cl_diff"], 0.2)
    np.testing.assert_allclose(m["ks_cntk_diff"], 0.0)
    np.testing.assert_allclose(m["ks_ae_cl_vs_cntk"], 0.2)  # the C-NTK has no gap here: contrast = AE gap
    np.testing.assert_allclose(m["ks_al_minus_cl_first"], 0.1)
    np.testing.assert_allclose(m["ks_cntk_min"], [1.5, 1.51, 1.49])
    np.testing.assert_allclose(m["monitor_pgd_w_first"], 0.6)  # the w-buffer monitor at epoch ks_epochs[0] = 1
    assert len(ch.accuracy_rows(m)) == 2 and len(ch.accuracy_rows(m)[0]) == len(ch.ACCURACY_COLUMNS)
    assert len(ch.batch_size_rows(p, m)) == 3 and len(ch.ks_rows(p, m)) == 6 + 3 + 2
    assert ch.ks_rows(p, m)[1][2] == "–" and ch.ks_rows(p, m)[1][3] != "–"  # w/o buffer, epochs 1 and 4
    assert all(len(row) == 2 + len(p.ks_epochs) for row in ch.ks_rows(p, m))
    assert len(ch.seed_rows(runs)[0]) == len(ch.SEED_COLUMNS)
    assert "robust acc w / w/o buffer: 0.500 / 0.250" in ch.summary_text(p, m)


# ------------------------------------------------------------------ claims on hand-made measurements

def _m(k=4, **changes):
    """A hand-made measurement dict (the keys :func:`ch.claims` reads, ``k`` seeds) in the regime
    every precondition needs: both arms learn, the w-buffer arm robust above the bar, the AE-NTK
    specialised, the attack flipping labels, the white-box attack above the tolerance."""
    rng = np.random.default_rng(0)
    jitter = lambda: rng.normal(0, 0.002, k)  # noqa: E731
    m = {"clean_w": 0.95 + jitter(), "clean_wo": 0.94 + jitter(), "robust_w": 0.75 + jitter(),
         "suite_wo": 0.70 + jitter(), "monitor_pgd_w_first": 0.6 + jitter(),
         "clean_gap": 0.005 + jitter(), "robust_gap": 0.15 + jitter(), "gap_ratio": 1.5 + jitter(),
         "ks_cntk_min": 1.3 + jitter(), "ks_al_minus_cl_first": 0.1 + jitter(), "masking_wo": -0.1 + jitter(),
         "bs_pgd_change": 0.05 + jitter()}
    for kind, w, wo in (("clean.CL", 1.3, 1.1), ("adv.CL", 1.4, 1.0), ("adv.AL", 1.5, 1.0)):
        m[f"ks_{kind}_w_4"], m[f"ks_{kind}_wo_4"] = w + jitter(), wo + jitter()
    m.update({key: np.asarray(v, float) for key, v in changes.items()})
    return m


def _claims(m):
    return {c.id: c for c in ch.claims(params(ks_epochs=[1, 4]), m)}


def test_register_loads_and_matches_the_claims_built():
    specs = ch.claim_specs()
    assert ch.REGISTER.name == "05_bn_buffers.yaml" and len(specs) == 9
    assert all(s.quote and s.justification and s.preconditions for s in specs.values())
    assert {"ch05.fig4_fainter_cl", "ch05.fig4_fainter_al"}.isdisjoint(specs)  # replaced by the controlled ones
    p = params(ks_epochs=[1, 4])
    cl = ch.claims(p, _m())
    assert [c.id for c in cl] == list(specs)
    for c in cl:
        s = specs[c.id]
        assert (c.direction, c.threshold, c.source, c.claim) == (s.direction, s.threshold, s.source, s.claim)
        assert [q.name for q in c.preconditions] == [q["name"] for q in s.preconditions]
        assert c.n_seeds == 4 and c.n_test in (4 * p.n_test, ch.N_CLASSES * p.probe_per_class)
        assert C.Claim.from_json(c.to_json()).verdict == c.verdict  # the verdict follows from the stored fields
    # Prop. 2's bar is the paper's Table 1 (AA of TE 160: 7.28 points), not the 0.02 of the words-only reading
    assert specs["ch05.prop2_robust_lower"].threshold == pytest.approx(0.073)
    assert "CLAIM_THRESHOLDS" not in vars(ch)  # the register is the one place of the bars


def test_verdicts_follow_the_measurements():
    v = {cid: c.verdict for cid, c in _claims(_m()).items()}
    assert v == {cid: "reproduced" for cid in ch.claim_specs()}
    v = {cid: c.verdict for cid, c in _claims(_m(robust_gap=[0.04, 0.05, 0.045, 0.05], masking_wo=[0.1] * 4)).items()}
    assert v["ch05.prop2_robust_lower"] == "contradicted"  # a gap of 4-5 points is below the 7.3-point bar
    assert v["ch05.no_masking_transfer"] == "contradicted"
    one = ch.claims(params(ks_epochs=[1, 4]), _m(k=1))  # one replica: no interval, nothing decided
    assert {c.verdict for c in one} == {"inconclusive"}
    # bounded differences: the whole range [-1, 1]; unbounded KS quantities: no interval at all
    assert all(c.n_seeds == 1 and any(s in c.explanation for s in ("no interval", "[-1, 1]", "[0, 1]")) for c in one)


def test_the_fig4_claims_are_differenced_against_the_cntk():
    m = _m()
    np.testing.assert_allclose(ch.control_contrast(m, "CL", 4), (m["ks_adv.CL_w_4"] - m["ks_adv.CL_wo_4"])
                               - (m["ks_clean.CL_w_4"] - m["ks_clean.CL_wo_4"]))
    np.testing.assert_allclose(ch.control_contrast(m, "CL", 4), 0.2, atol=0.02)  # (1.4 - 1.0) - (1.3 - 1.1)
    np.testing.assert_allclose(ch.control_contrast(m, "AL", 4), 0.3, atol=0.02)  # (1.5 - 1.0) - (1.3 - 1.1)
    with pytest.raises(ValueError, match="'labels'"):
        ch.control_contrast(m, "XL", 4)
    # the AE-NTK's gap (0.4 under CL) no larger than the C-NTK's: an uncontrolled w - w/o would reproduce
    same = _m(**{"ks_clean.CL_w_4": [1.5] * 4, "ks_clean.CL_wo_4": [1.0, 1.02, 1.04, 1.06]})
    c = _claims(same)
    assert c["ch05.fig4_fainter_cl_vs_cntk"].verdict == "contradicted"  # 0.4 - (0.5 ... 0.44) < 0, every seed
    assert c["ch05.fig4_fainter_cl_vs_cntk"].measured == pytest.approx(0.4 - 0.47, abs=0.01)
    assert c["ch05.fig4_fainter_al_vs_cntk"].measured == pytest.approx(0.5 - 0.47, abs=0.01)


def test_intervals_stay_in_their_ranges():
    # accuracies near the ends of [0, 1] and differences near the ends of [-1, 1]
    m = _m(clean_gap=[0.99, 1.0, 0.97, 1.0], robust_gap=[-0.999, -0.98, -1.0, -0.99],
           masking_wo=[0.98, 1.0, 0.99, 0.97], bs_pgd_change=[-1.0, -0.97, -0.99, -0.995])
    c = _claims(m)
    for cid in ("ch05.prop2_robust_lower", "ch05.no_masking_transfer", "ch05.theorem2_batch_size"):
        assert -1 <= c[cid].low <= c[cid].measured <= c[cid].high <= 1, cid
    assert 0 <= c["ch05.prop1_clean_close"].low <= c["ch05.prop1_clean_close"].high <= 1
    # the tables: pooled accuracies inside [0, 1] (a symmetric t half-width would leave it here)
    p = params(ks_epochs=[1, 4], batch_sizes=[20, 100, 200])
    runs = [_run(s) for s in range(3)]
    for r in runs:
        r.suite["buffer"].robust[:] = True  # every point robust in every seed: accuracy 1
    mm = ch.measurements(p, runs)
    for row in ch.accuracy_rows(mm):
        for cell in row[1:]:
            est, rest = cell.split(" ", 1) if " " in cell else (cell, "")
            nums = [float(x) for x in rest.strip("[]").split(", ")] if rest else []
            assert all(0.0 <= x <= 1.0 for x in [float(est), *nums]), cell
    iv = ch.pooled(mm["points_suite_w"])
    assert (iv.estimate, iv.high) == (1.0, 1.0) and 0 < iv.low < 1
    mm["bs_pgd_w"] = np.array([1.0, 0.999, 1.0])
    for row in ch.batch_size_rows(p, mm):
        assert all(0 <= float(x) <= 1 for x in row[3].replace("[", "").replace("]", "").replace(",", "").split())


@pytest.mark.parametrize("change, cid, failed", [
    (dict(clean_wo=[0.3] * 4), "ch05.prop1_clean_close", "both_arms_learn"),
    (dict(clean_w=[0.3] * 4), "ch05.props_statistics_gap", "w_buffer_learns"),
    (dict(robust_w=[0.05] * 4), "ch05.prop2_robust_lower", "w_buffer_robust_above_bar"),
    (dict(suite_wo=[0.0] * 4), "ch05.no_masking_transfer", "wo_white_box_above_tolerance"),
    (dict(monitor_pgd_w_first=[1.0] * 4), "ch05.fig4_al_earlier", "adversarial_labels_differ"),
    ({"ks_adv.CL_w_4": [0.9] * 4}, "ch05.fig4_fainter_cl_vs_cntk", "w_buffer_ae_kernel_specialises"),
    ({"ks_adv.AL_w_4": [0.95] * 4}, "ch05.fig4_fainter_al_vs_cntk", "w_buffer_ae_kernel_specialises"),
    (dict(clean_wo=[0.2] * 4), "ch05.theorem2_batch_size", "wo_buffer_learns"),
])
def test_preconditions_make_claims_not_testable(change, cid, failed):
    before = _claims(_m())[cid]
    c = _claims(_m(**change))[cid]
    assert before.verdict == "reproduced" and c.verdict == "not_testable"
    assert [q.name for q in c.failed_preconditions] == [failed]
    assert failed in c.explanation and "not testable at this scale" in c.explanation
    assert c.n_seeds == 4 and c.n_test is not None  # the sample size travels with the claim


def test_each_fig4_claim_reads_its_own_label_kind():
    # the AL kernel not specialised: only the AL claim loses its precondition
    c = _claims(_m(**{"ks_adv.AL_w_4": [0.95] * 4}))
    assert c["ch05.fig4_fainter_cl_vs_cntk"].verdict == "reproduced"


def test_clean_close_uses_the_absolute_difference():
    c = _claims(_m(clean_gap=[-0.05, -0.06, -0.055, -0.05]))["ch05.prop1_clean_close"]
    assert c.verdict == "contradicted" and c.measured == pytest.approx(0.05375)  # farther than 0.02, sign reversed
    assert _claims(_m(clean_gap=[0.001, -0.002, 0.0, 0.001]))["ch05.prop1_clean_close"].verdict == "reproduced"


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
    assert [c.id for c in cl] == list(ch.claim_specs()) and all(c.n_seeds == 2 for c in cl)
    assert set(ch.ks_panels(p, runs)) == {(a, k) for a in ch.ARMS.values() for k in ch.KINDS.values()}
    fig = ch.plot_ks(p, runs)
    assert "$" not in fig.axes[-1].get_ylabel()  # no mathtext: no font look-ups logged under the cell
