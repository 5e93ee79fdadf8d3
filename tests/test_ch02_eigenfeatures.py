"""Tests for ntknb.chapters.ch02_eigenfeatures (chapter 02): schema and the values it glues."""

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ntknb import data, features
from ntknb.book.params import load_notebook, notebook_parameters
from ntknb.chapters import ch02_eigenfeatures as ch

NB = Path(__file__).resolve().parents[1] / "notebooks" / "02_eigenfeatures.py"


def params(**changes):
    defaults = {n: p.default for n, p in notebook_parameters(load_notebook(NB)).items()}
    return ch.Params.from_values({**defaults, **changes})


def test_params_rules():
    p = params()
    for change, name in [(dict(fc_architectures=["fc2"]), "fc_architectures"), (dict(conv_pool=3), "conv_pool"),
                         (dict(conv_n_train=p.n_features - 1), "conv_n_train"), (dict(classes=["a", 1]), "classes"),
                         (dict(mnist_architectures=["nope"]), r"mnist_architectures\[0\]"), (dict(paper_indices=[-1]), r"paper_indices\[0\]"),
                         (dict(n_seeds=0), "n_seeds"), (dict(seed=2**32 - 2, n_seeds=3), "n_seeds"),
                         (dict(n_heldout=1), "n_heldout"), (dict(heldout_split="val"), "heldout_split"),
                         (dict(n_heldout=8002), r"n_train \+ n_heldout"), (dict(n_train=10002), "n_train"),
                         (dict(heldout_split="test", n_heldout=1700), r"n_test \+ n_heldout")]:
        with pytest.raises(ValueError, match=name if "+" in name else f"'{name}'"):  # sums: "parameters a + b"
            params(**change)
    assert params(seed=7, n_seeds=3).seeds == [7, 8, 9]


def _sweep(clean, robust, indices=None, n_test=500):
    clean, robust = np.asarray(clean, float), np.asarray(robust, float)
    idx = np.arange(clean.size) if indices is None else np.asarray(indices)
    return features.FeatureSweep(indices=idx, eigenvalues=np.ones(clean.size), clean_accuracy=clean,
                                 robust_accuracy=robust, eps=0.03, loss="bce", n_test=n_test)


def _signs(acc, m, rng):
    """(p, m) feature signs right on each of m points with probability acc[i], and m labels +-1."""
    y = rng.choice([-1, 1], size=m).astype(np.int8)
    right = rng.uniform(size=(len(acc), m)) < np.asarray(acc)[:, None]
    return np.where(right, y, -y).astype(np.int8), y


def _run(seed, sweeps, mnist_sweeps=None, full_fgsm=0.0, picked=None, late=None, heldout=None, clean=0.8):
    signs, labels = heldout if heldout is not None else (np.ones((len(next(iter(sweeps.values()))), 4), np.int8),
                                                          np.array([1, -1, 1, -1], np.int8))
    return ch.SeedRun(seed, sweeps, mnist_sweeps or {}, {k: clean for k in sweeps} | {f"mnist_{k}": 0.9 for k in
                      (mnist_sweeps or {})}, full_fgsm, 0.0, late, picked or {"early": None, "late": None},
                      signs, labels)


def test_best_useful_nonrobust():
    sw = _sweep([0.9, 0.7, 0.8, 0.4], [0.5, 0.05, 0.02, 0.0], indices=[10, 11, 12, 13])
    assert ch.best_useful_nonrobust(sw) == (12, 0.8, 0.02)  # most useful among the non-robust (0.5, 0.1)
    assert ch.best_useful_nonrobust(_sweep([0.9], [0.5])) is None


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
    p = params(mnist_useful_above=0.1, mnist_nonrobust_below=0.02)
    sw = _sweep([0.9, 0.7, 0.6, 0.4], [0.5, 0.3, 0.05, 0.0], n_test=250)  # robustness falls with the index
    msw = _sweep([0.5, 0.2, 0.05], [0.3, 0.01, 0.0], n_test=7)
    runs = [_run(0, {"fc1": sw}, {"fc1": msw}), _run(1, {"fc1": sw}, {"fc1": msw})]
    values, rows = ch.sweep_values(p, runs, {"fc1": "fc", "mnist_fc1": "fc"})
    assert values["useful_fc1"] == 3 and values["useful_nonrobust_fc1"] == 1
    # against chance on 2 x 250 points, BH over 4 features: 0.9, 0.7, 0.6 are far above 0.5
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


def _runs(robust_of_index, full_fgsm, picked=None, clean=None, n_test=340, heldout_acc=None, full_clean=0.8):
    idx = np.arange(60)
    rng = np.random.default_rng(1)
    out = []
    for k, f in enumerate(full_fgsm):
        rob = np.clip(robust_of_index(idx, k), 0, 1)
        cl = np.full(60, 0.5) if clean is None else clean
        held = _signs(np.full(60, 0.5) if heldout_acc is None else heldout_acc, 2000, rng)
        out.append(_run(k, {"fc1": _sweep(cl, rob, n_test=n_test)}, full_fgsm=f,
                        picked=picked[k] if picked else None, heldout=held, clean=full_clean))
    return out


def _pick(index, acc, m=2000, seed=0):
    correct = np.random.default_rng(seed).uniform(size=m) < acc
    return ch.Pick(index, float(correct.mean()), 0.0, acc + 0.1, correct)


def test_claims_are_registered_well_formed_and_flip_at_the_thresholds():
    from ntknb.claims import Claim

    p = params()
    falling = lambda i, k: np.linspace(0.6, 0.0, 60) + 0.01 * np.sin(i * (k + 1))  # noqa: E731
    picked = [{"early": _pick(11, 0.56, seed=k), "late": _pick(301, 0.5, seed=10 + k)} for k in range(3)]
    held = np.where(np.arange(60) >= 40, 0.58, 0.5)  # 20 useful features, the 9 of index >= 51 non-robust
    runs = _runs(falling, [0.01, 0.012, 0.014], picked, heldout_acc=held)
    cs = {c.id: c for c in ch.claims(p, runs)}
    assert list(cs) == ["ch02.full_kernel_not_robust", "ch02.robust_features_on_top.fc1", "ch02.useful_nonrobust_count",
                        "ch02.fig5_early_useful", "ch02.fig5_late_useful"]
    specs = ch.claim_specs()
    for c in cs.values():
        assert Claim.from_json(c.to_json()) == c and c.n_seeds == 3
        assert (c.claim, c.threshold, c.direction) == (specs[c.id].claim, specs[c.id].threshold, specs[c.id].direction)
        assert [pre.name for pre in c.preconditions] == ["kernel_learns_task"]
    assert cs["ch02.full_kernel_not_robust"].n_test == 3 * p.n_test
    full = cs["ch02.full_kernel_not_robust"]
    assert full.verdict == "reproduced" and 0 < full.low < full.measured < full.high < 0.1  # logit-t, in [0, 1]
    near0 = ch.claims(p, _runs(falling, [0.0, 0.0, 0.03], picked, heldout_acc=held))[0]
    assert near0.low >= 0  # a plain t interval would reach below 0
    assert cs["ch02.robust_features_on_top.fc1"].verdict == "reproduced"
    count = cs["ch02.useful_nonrobust_count"]
    nonrobust = int(np.sum(ch.pooled([r.sweeps["fc1"] for r in runs]).robust_accuracy < 0.1))  # indices >= 51
    assert count.high == pytest.approx(nonrobust / 60) and count.n_test == 6000
    assert 0.1 < count.low <= count.measured <= nonrobust / 60 and count.verdict == "reproduced"
    assert cs["ch02.fig5_early_useful"].n_test == 6000 and cs["ch02.fig5_early_useful"].verdict == "reproduced"
    assert cs["ch02.fig5_late_useful"].verdict == "inconclusive"  # at chance
    # the same with every held-out feature at chance: nothing found, not contradicted (|S| > 6)
    cs = {c.id: c for c in ch.claims(p, _runs(falling, [0.0, 0.01, 0.02], picked))}
    assert cs["ch02.useful_nonrobust_count"].verdict == "inconclusive" and cs["ch02.useful_nonrobust_count"].low < 0.1
    rising = lambda i, k: np.linspace(0.08, 0.6, 60) + 0.01 * np.sin(i * (k + 1))  # noqa: E731
    cs = {c.id: c for c in ch.claims(p, _runs(rising, [0.3, 0.31, 0.29], heldout_acc=held))}
    assert cs["ch02.full_kernel_not_robust"].verdict == "contradicted"
    assert cs["ch02.robust_features_on_top.fc1"].verdict == "contradicted"
    assert cs["ch02.useful_nonrobust_count"].verdict == "contradicted"  # 2-3 of 60 non-robust: at most 0.05
    assert "ch02.fig5_early_useful" not in cs  # no pick, no claim
    rng = np.random.default_rng(0)
    flat = lambda i, k: rng.uniform(size=60)  # noqa: E731
    cs = {c.id: c for c in ch.claims(p, _runs(flat, [0.05, 0.2, 0.1]))}
    assert cs["ch02.robust_features_on_top.fc1"].verdict == "inconclusive"
    assert cs["ch02.full_kernel_not_robust"].verdict == "inconclusive"
    cs = {c.id: c for c in ch.claims(p, _runs(falling, [0.0, 0.01, 0.02], picked, heldout_acc=held, full_clean=0.55))}
    assert {c.verdict for c in cs.values()} == {"not_testable"}  # the kernel did not learn the task


def test_every_architecture_has_its_registered_ordering_claim():
    specs = ch.claim_specs()
    for name in ch.architectures.ARCHITECTURE_NAMES:
        assert f"ch02.robust_features_on_top.{name}" in specs and f"ch02.robust_features_on_top.mnist_{name}" in specs


def test_feature_pvalues_match_scipy():
    from scipy import stats as st

    k = np.array([0, 250, 270, 300, 500])
    ref = [st.binomtest(int(x), 500, 0.5, alternative="greater").pvalue for x in k]
    assert ch.feature_pvalues(k, 500, 0.5) == pytest.approx(ref, rel=1e-9)
    assert ch.feature_pvalues([3], 10, 0.1)[0] == pytest.approx(st.binomtest(3, 10, 0.1, alternative="greater").pvalue)
    with pytest.raises(ValueError, match="'correct'"):
        ch.feature_pvalues([11], 10, 0.5)


def test_useful_significant_is_bh_against_chance():
    from scipy import stats as st

    sw = _sweep([0.6] + [0.5] * 99, [0.0] * 100)
    assert ch.useful_significant(sw, 0.5).tolist() == [True] + [False] * 99
    acc = np.linspace(0.45, 0.6, 100)
    pv = ch.feature_pvalues(np.round(acc * 500).astype(int), 500, 0.5)
    assert ch.useful_significant(_sweep(acc, np.zeros(100)), 0.5).tolist() == (
        st.false_discovery_control(pv, method="bh") <= 0.05).tolist()


def _null_run(rng, m=500, p=100, n_seeds=3, common=None):
    signs, labels = [], []
    for _ in range(n_seeds):
        g, y = _signs(np.full(p, 0.5), m, rng)
        if common is not None:  # features that mostly agree with one shared random direction: dependent
            c = rng.choice([-1, 1], size=m)
            g = np.where(rng.uniform(size=(p, m)) < common, c, g).astype(np.int8)
        signs.append(g)
        labels.append(y)
    return signs, labels


@pytest.mark.slow
@pytest.mark.parametrize("common", [None, 0.8])
def test_useful_count_holds_its_level_when_no_feature_is_useful(common):
    """By simulation (fixed seed): with every feature at chance, the 95 % lower bound is above 0 in
    about 5 % of the runs or fewer (measured: 2.5 % independent, 4.0 % dependent, 200 runs), also
    when the features depend on each other through the points, where the bound from the binomial
    quantile of independent features, Binomial(100, 0.05), is not (13.5 %)."""
    from scipy import stats as st

    rng = np.random.default_rng(0)
    reps = 200
    ucs = [ch.useful_count(*_null_run(rng, common=common), np.ones(100, bool), n_perm=200, seed=r)
           for r in range(reps)]
    assert np.mean([uc.low > 0 for uc in ucs]) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / reps)
    if common is not None:
        assert np.mean([uc.significant > st.binom.ppf(0.95, 100, 0.05) for uc in ucs]) > 0.1


def test_useful_count_null_is_the_binomial_for_independent_features():
    from scipy import stats as st

    rng = np.random.default_rng(1)
    uc = ch.useful_count(*_null_run(rng), np.ones(100, bool), n_perm=2000)
    n = 1500
    k = np.arange(n + 1)
    size = st.binom.sf(k[np.argmax(st.binom.sf(k - 1, n, 0.5) <= 0.05)] - 1, n, 0.5)  # the exact test's size
    assert uc.null_mean == pytest.approx(100 * size, abs=0.5)
    assert abs(uc.null_quantile - st.binom.ppf(0.95, 100, size)) <= 1
    assert uc.n_points == 1500 and uc.high == 100 and uc.low <= uc.estimate <= uc.high


def test_useful_count_finds_a_strong_signal_and_no_more():
    rng = np.random.default_rng(2)
    acc = np.where(np.arange(100) < 30, 0.56, 0.5)  # 30 useful features
    signs, labels = zip(*[_signs(acc, 2000, rng) for _ in range(3)])
    nonrobust = np.arange(100) >= 10  # 20 of the useful ones are non-robust
    uc = ch.useful_count(list(signs), list(labels), nonrobust, n_perm=500)
    assert 12 <= uc.low <= 20 and uc.high == 90 and uc.significant >= 20
    assert uc.bh[:30].all() and uc.bh[30:].sum() <= 3
    with pytest.raises(ValueError, match="'signs'"):
        ch.useful_count(list(signs), list(labels)[:2], nonrobust)


def test_split_training_indices_disjoint_balanced_seeded():
    labels = np.repeat([0, 1, 2], 20)
    train, held = ch.split_training_indices(labels, [0, 2], n_train=10, n_heldout=6, seed=3)
    assert not set(train) & set(held)
    assert np.bincount(labels[train], minlength=3).tolist() == [5, 0, 5]
    assert np.bincount(labels[held], minlength=3).tolist() == [3, 0, 3]
    again = ch.split_training_indices(labels, [0, 2], n_train=10, n_heldout=6, seed=3)
    assert np.array_equal(train, again[0]) and np.array_equal(held, again[1])
    assert not np.array_equal(train, ch.split_training_indices(labels, [0, 2], 10, 6, seed=4)[0])
    with pytest.raises(ValueError, match=r"parameters n_train \+ n_heldout"):
        ch.split_training_indices(labels, [0, 2], n_train=30, n_heldout=12, seed=0)


def _toy(name, classes, n_train, n_test, offset):
    """A dataset whose every image is constant and unique (its pixel value names it)."""
    k = len(classes)
    n = n_train + n_test
    x = ((np.arange(n, dtype=np.float32) + offset) / 1e4)[:, None, None, None] * np.ones((1, 4, 4, 1), np.float32)
    lab = np.arange(n) % k
    return data.Dataset(name, x[:n_train], lab[:n_train], x[n_train:], lab[n_train:], tuple(classes),
                        data.Provenance(name, "/toy", "sha256", "00", lossy=False))


@pytest.mark.parametrize("split", ["train", "test"])
def test_load_tasks_heldout_images_are_not_training_images(split):
    names = data.CLASS_NAMES["cifar10"]
    cifar = _toy("cifar10", names[:3], 300, 120, 0)
    mnist = _toy("mnist", [str(i) for i in range(10)], 200, 100, 5000)
    p = params(n_train=40, n_test=20, n_heldout=60, n_features=10, conv_n_train=20, conv_n_test=10,
               mnist_n_train=20, mnist_n_test=10, heldout_split=split, classes=list(names[1:3]))
    task, (x_held, y_held), _, _ = ch.load_tasks(p, 7, cifar, mnist)
    assert task.x_train.shape[0] == 40 and task.x_test.shape[0] == 20 and x_held.shape[0] == 60
    train_ids, held_ids, test_ids = (set(np.rint(a[:, 0, 0, 0] * 1e4).astype(int)) for a in (task.x_train, x_held,
                                                                                             task.x_test))
    assert not train_ids & held_ids and not test_ids & held_ids and len(held_ids) == 60
    source = cifar.labels_train if split == "train" else cifar.labels_test
    ids = np.array(sorted(held_ids)) - (0 if split == "train" else 300)
    assert set(source[ids]) == {1, 2}  # only the task's two classes, labelled +1 for classes[1]
    assert np.sum(y_held == 1) == 30 or split == "test"  # unused training images: class-balanced
    order = np.rint(x_held[:, 0, 0, 0] * 1e4).astype(int) - (0 if split == "train" else 300)
    assert np.array_equal(np.where(source[order] == 2, 1.0, -1.0), y_held[:, 0])


def test_late_study_reports_the_picks_on_heldout_images(monkeypatch):
    monkeypatch.setattr(ch, "NONROBUST_BELOW", 1.0)  # every feature counts as non-robust,
    monkeypatch.setattr(ch, "USEFUL_ABOVE", 0.0)  # and as useful: a pick always exists
    rng = np.random.default_rng(0)
    p = params(n_train=40, n_test=30, n_heldout=20, n_features=10, late_stride=5)
    x = rng.uniform(size=(90, 4, 4, 3)).astype(np.float32)
    y = np.sign(x[:, :2].mean(axis=(1, 2, 3)) - 0.5)[:, None].astype(np.float32)
    fc1 = ch.fit_kernel("fc1", x[:40], y[:40], x[40:70], batch_size=64)
    fc1["y_test"] = y[40:70]
    k_held = np.asarray(ch.kernels.kernel_matrix(fc1["arch"].kernel_fn, x[70:], fc1["x_train"], dtype=np.float64))
    early = features.feature_sweep(fc1["arch"].kernel_fn, fc1["x_train"], fc1["pred"], x[40:70], y[40:70], p.eps,
                                   indices=range(10))
    late, picked = ch.late_study(p, fc1, (x[70:], y[70:], k_held), early)
    assert late.indices.tolist() == list(range(10, 40, 5)) and late.n_test == 30
    for where, sw in (("early", early), ("late", late)):
        pk = picked[where]
        assert (pk.index, pk.picked_accuracy) == ch.best_useful_nonrobust(sw)[:2]
        fresh = features.feature_sweep(fc1["arch"].kernel_fn, fc1["x_train"], fc1["pred"], x[70:], y[70:], p.eps,
                                       indices=[pk.index])
        assert (pk.accuracy, pk.fgsm) == pytest.approx((fresh.clean_accuracy[0], fresh.robust_accuracy[0]))
        assert pk.correct.shape == (20,) and pk.correct.mean() == pytest.approx(pk.accuracy)


def test_recorded_data_files(tmp_path):
    runs = {(r["kernel"], r["conv_pool"]): r for r in ch.conv_resolution_runs()}
    assert {("conv1", 4), ("conv1", 2)} <= set(runs)  # the notebook glues their ratio
    at = {"seed": 0, "n_seeds": 3, "n_heldout": 2000}
    assert ch.load_seed_check(at, tmp_path / "none.json") is None
    records = [{"seeds": [6000], "claims": []},  # parameters not recorded: never compared
               {"seeds": [7000, 7001, 7002], "parameters": {**at, "seed": 7000}, "claims": []},
               {"seeds": [7100, 7101, 7102], "parameters": {**at, "seed": 7100}, "claims": []},
               {"seeds": [7200, 7201, 7202], "parameters": {**at, "seed": 7200, "n_heldout": 1000}, "claims": []}]
    (tmp_path / "check.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    assert ch.load_seed_check(at, tmp_path / "check.jsonl")["seeds"][0] == 7100  # the latest at the parameters
    assert ch.load_seed_check({**at, "n_heldout": 1000}, tmp_path / "check.jsonl")["seeds"][0] == 7200
    assert ch.load_seed_check({**at, "n_heldout": 500}, tmp_path / "check.jsonl") is None


def test_spearman_and_useful_nonrobust_count_of_a_sweep():
    """The chapter's two statistics of a feature sweep: robustness falling with the eigen-index gives a
    rank correlation of -1; one feature is useful (clean > 0.5) and non-robust (robust < 0.1)."""
    sw = features.FeatureSweep(indices=np.arange(4), eigenvalues=np.ones(4),
                               clean_accuracy=np.array([0.9, 0.8, 0.7, 0.4]),
                               robust_accuracy=np.array([0.6, 0.3, 0.05, 0.0]), eps=0.1, loss="bce", n_test=10)
    assert ch.spearman_index_robustness(sw) == pytest.approx(-1.0)
    assert ch.count_useful_nonrobust(sw, 0.5, 0.1) == 1
    flat = dataclasses.replace(sw, robust_accuracy=np.zeros(4))
    with pytest.warns(Warning, match="constant"):  # constant robustness: no rank correlation, said by scipy
        assert np.isnan(ch.spearman_index_robustness(flat))
