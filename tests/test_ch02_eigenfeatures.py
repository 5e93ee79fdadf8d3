"""Tests for ntknb.chapters.ch02_eigenfeatures (chapter 02): schema and the values it glues."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ntknb import features, runner
from ntknb.chapters import ch02_eigenfeatures as ch

NB = Path(__file__).resolve().parents[1] / "notebooks" / "02_eigenfeatures.py"


def params(**changes):
    defaults = {n: p.default for n, p in runner.notebook_parameters(runner.load_notebook(NB)).items()}
    return ch.Params.from_values({**defaults, **changes})


def test_params_rules():
    p = params()
    for change, name in [(dict(fc_architectures=["fc2"]), "fc_architectures"), (dict(conv_pool=3), "conv_pool"),
                         (dict(conv_n_train=p.n_features - 1), "conv_n_train"), (dict(classes=["a", 1]), "classes"),
                         (dict(mnist_architectures=["nope"]), r"mnist_architectures\[0\]"), (dict(paper_indices=[-1]), r"paper_indices\[0\]"),
                         (dict(n_seeds=0), "n_seeds"), (dict(seed=2**32 - 2, n_seeds=3), "n_seeds"),
                         (dict(n_heldout=1), "n_heldout")]:
        with pytest.raises(ValueError, match=f"'{name}'"):
            params(**change)
    assert params(seed=7, n_seeds=3).seeds == [7, 8, 9]


def _sweep(clean, robust, indices=None, n_test=500):
    clean, robust = np.asarray(clean, float), np.asarray(robust, float)
    idx = np.arange(clean.size) if indices is None else np.asarray(indices)
    return features.FeatureSweep(indices=idx, eigenvalues=np.ones(clean.size), clean_accuracy=clean,
                                 robust_accuracy=robust, eps=0.03, loss="bce", n_test=n_test)


def _run(seed, sweeps, mnist_sweeps=None, full_fgsm=0.0, picked=None, late=None):
    return ch.SeedRun(seed, sweeps, mnist_sweeps or {}, {k: 0.8 for k in sweeps} | {f"mnist_{k}": 0.9 for k in
                      (mnist_sweeps or {})}, full_fgsm, 0.0, late, picked or {"early": None, "late": None})


def test_best_useful_nonrobust():
    p = params(useful_above=0.5, nonrobust_below=0.1)
    sw = _sweep([0.9, 0.7, 0.8, 0.4], [0.5, 0.05, 0.02, 0.0], indices=[10, 11, 12, 13])
    assert ch.best_useful_nonrobust(p, sw) == (12, 0.8, 0.02)  # most useful among the non-robust
    assert ch.best_useful_nonrobust(p, _sweep([0.9], [0.5])) is None


def test_pooled_weights_the_seeds_by_their_test_points():
    a, b = _sweep([0.6, 0.4], [0.2, 0.0], n_test=100), _sweep([0.3, 0.7], [0.5, 0.3], n_test=300)
    pool = ch.pooled([a, b])
    assert pool.n_test == 400 and pool.clean_accuracy.tolist() == pytest.approx([0.375, 0.625])
    assert pool.robust_accuracy.tolist() == pytest.approx([0.425, 0.225])


def test_spearman_over_seeds_stays_in_range():
    falling = [_sweep(np.zeros(20), np.linspace(0.6, 0.0, 20) + 0.02 * np.sin(np.arange(20) * k)) for k in (1, 2, 3)]
    iv = ch.spearman_over_seeds(falling)
    assert -1 <= iv.low < iv.estimate < iv.high < -0.9 and iv.n == 3
    assert ch.spearman_over_seeds([_sweep(np.zeros(20), -np.arange(20.0))] * 3).low == -1.0  # clipped
    one = ch.spearman_over_seeds(falling[:1])  # one seed: no interval
    assert (one.low, one.high) == (-1.0, 1.0)


def test_sweep_values_counts_and_rows():
    p = params(useful_above=0.5, nonrobust_below=0.1, mnist_useful_above=0.1, mnist_nonrobust_below=0.02)
    sw = _sweep([0.9, 0.7, 0.6, 0.4], [0.5, 0.3, 0.05, 0.0], n_test=250)  # robustness falls with the index
    msw = _sweep([0.5, 0.2, 0.05], [0.3, 0.01, 0.0], n_test=7)
    runs = [_run(0, {"fc1": sw}, {"fc1": msw}), _run(1, {"fc1": sw}, {"fc1": msw})]
    values, rows = ch.sweep_values(p, runs, {"fc1": "fc", "mnist_fc1": "fc"})
    assert values["useful_fc1"] == 3 and values["useful_nonrobust_fc1"] == 1
    # against chance on 2 x 250 points, Holm over 4 features: 0.9, 0.7, 0.6 are far above 0.5
    assert values["useful_sig_fc1"] == 3 and values["useful_nonrobust_sig_fc1"] == 1
    assert values["useful_mnist_fc1"] == 2 and values["useful_nonrobust_mnist_fc1"] == 1
    assert values["spearman_index_robustness_fc1"] == pytest.approx(-1.0, abs=1e-6)
    assert values["spearman_mean_cifar"] == pytest.approx(-1.0, abs=1e-6)
    assert rows[0][:4] == ["CIFAR-10 fc1", "fc", 500, 0.8] and rows[1][:4] == ["MNIST fc1", "fc", 14, 0.9]


def test_training_time_values():
    tt = ch.TrainingTime(idx_t=np.array([0, 4, 9]), times=np.array([1.0, 2.0, 3.0]),
                         clean=np.array([0.6, 0.8, 0.85, 0.9]), robust=np.array([0.5, 0.6, 0.2, 0.01]),
                         coherence=np.array([0.9, 0.5, 0.3, 0.2]), weights=None)
    v = ch.training_time_values(tt)
    assert v["robust_t_max"] == 0.6 and v["robust_t_argmax_index"] == 5 and v["robust_t_inf"] == 0.01
    assert v["clean_t_max"] == 0.85 and v["clean_t_inf"] == 0.9 and v["coherence_t_first"] == 0.9


def _runs(robust_of_index, full_fgsm, picked=None, clean=None, n_test=340):
    idx = np.arange(60)
    out = []
    for k, f in enumerate(full_fgsm):
        rob = np.clip(robust_of_index(idx, k), 0, 1)
        cl = np.full(60, 0.5) if clean is None else clean
        out.append(_run(k, {"fc1": _sweep(cl, rob, n_test=n_test)}, full_fgsm=f,
                        picked=picked[k] if picked else None))
    return out


def test_claims_are_well_formed_and_flip_at_the_thresholds():
    from ntknb.claims import Claim

    p = params()
    falling = lambda i, k: np.linspace(0.6, 0.0, 60) + 0.01 * np.sin(i * (k + 1))  # noqa: E731
    picked = [{"early": (11, 0.62, 0.02, 0.7), "late": (301, 0.52, 0.0, 0.6)} for _ in range(3)]
    clean = np.where(np.arange(60) < 10, 0.7, 0.5)  # 10 of 60 useful; the non-robust ones (FGSM < 0.1): index >= 50
    clean[50:] = 0.7
    runs = _runs(falling, [0.0, 0.01, 0.02], picked, clean=clean)
    cs = {c.id: c for c in ch.claims(p, runs)}
    assert list(cs) == ["ch02.full_kernel_not_robust", "ch02.robust_features_on_top.fc1", "ch02.useful_nonrobust_many",
                        "ch02.useful_nonrobust_early", "ch02.useful_nonrobust_late"]
    for c in cs.values():
        assert Claim.from_json(c.to_json()) == c and c.n_seeds == 3
    assert cs["ch02.full_kernel_not_robust"].n_test == 3 * p.n_test
    assert cs["ch02.full_kernel_not_robust"].verdict == "reproduced"  # 0.00-0.02, below 0.1
    assert cs["ch02.robust_features_on_top.fc1"].verdict == "reproduced"
    assert cs["ch02.robust_features_on_top.fc1"].threshold == -0.3
    assert cs["ch02.useful_nonrobust_many"].measured == pytest.approx(10 / 60)  # indices 50-59
    assert cs["ch02.useful_nonrobust_early"].n_test == 3 * p.n_heldout
    assert cs["ch02.useful_nonrobust_early"].verdict == "reproduced"  # 0.62 on 1020 fresh images
    assert cs["ch02.useful_nonrobust_late"].verdict == "inconclusive"  # 0.52 on 1020: Wilson [0.49, 0.55]
    assert cs["ch02.useful_nonrobust_early"].threshold == p.useful_above
    rising = lambda i, k: np.linspace(0.0, 0.6, 60) + 0.01 * np.sin(i * (k + 1))  # noqa: E731
    cs = {c.id: c for c in ch.claims(p, _runs(rising, [0.3, 0.31, 0.29]))}
    assert cs["ch02.full_kernel_not_robust"].verdict == "contradicted"
    assert cs["ch02.robust_features_on_top.fc1"].verdict == "contradicted"
    assert cs["ch02.useful_nonrobust_many"].verdict == "contradicted"  # nothing above chance: [0, 0.06]
    assert "ch02.useful_nonrobust_early" not in cs  # no pick, no claim
    rng = np.random.default_rng(0)
    flat = lambda i, k: rng.uniform(size=60)  # noqa: E731
    cs = {c.id: c for c in ch.claims(p, _runs(flat, [0.05, 0.2, 0.1]))}
    assert cs["ch02.robust_features_on_top.fc1"].verdict == "inconclusive"
    assert cs["ch02.full_kernel_not_robust"].verdict == "inconclusive"


def test_useful_significant_is_holm_corrected_against_chance():
    # 500 points: 0.54 (270 correct) has one-sided p = 0.04, not enough among 100 features; 0.6 (p < 1e-5) is
    sw = _sweep([0.6] + [0.54] * 99, [0.0] * 100)
    assert ch.useful_significant(sw, 0.5).tolist() == [True] + [False] * 99
    assert ch.useful_significant(_sweep([0.54], [0.0]), 0.5).tolist() == [True]  # alone it passes at 5 %


def test_late_study_reports_the_picks_on_fresh_images():
    rng = np.random.default_rng(0)
    p = params(n_train=40, n_test=30, n_heldout=20, n_features=10, late_stride=5, nonrobust_below=1.0,
               useful_above=0.0)
    x = rng.uniform(size=(90, 4, 4, 3)).astype(np.float32)
    y = np.sign(x[:, :2].mean(axis=(1, 2, 3)) - 0.5)[:, None].astype(np.float32)
    fc1 = ch.fit_kernel("fc1", x[:40], y[:40], x[40:70], batch_size=64)
    task = SimpleNamespace(x_test=x[40:], y_test=y[40:])
    early = features.feature_sweep(fc1["arch"].kernel_fn, fc1["x_train"], fc1["pred"], x[40:70], y[40:70], p.eps,
                                   indices=range(10))
    late, picked = ch.late_study(p, fc1, task, early)
    assert late.indices.tolist() == list(range(10, 40, 5)) and late.n_test == 30
    for where, sw in (("early", early), ("late", late)):
        i, acc, fgsm, acc_sel = picked[where]
        assert (i, acc_sel) == ch.best_useful_nonrobust(p, sw)[:2]
        fresh = features.feature_sweep(fc1["arch"].kernel_fn, fc1["x_train"], fc1["pred"], x[70:], y[70:], p.eps,
                                       indices=[i])
        assert (acc, fgsm) == pytest.approx((fresh.clean_accuracy[0], fresh.robust_accuracy[0]))


def test_recorded_data_files(tmp_path):
    runs = {(r["kernel"], r["conv_pool"]): r for r in ch.conv_resolution_runs()}
    assert {("conv1", 4), ("conv1", 2)} <= set(runs)  # the notebook glues their ratio
    assert ch.load_seed_check(tmp_path / "none.json") is None
    (tmp_path / "check.json").write_text('{"seed": 6000, "claims": []}')
    assert ch.load_seed_check(tmp_path / "check.json")["seed"] == 6000
