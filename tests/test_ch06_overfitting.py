"""Tests for ntknb.chapters.ch06_overfitting (chapter 06: its submodules variants, search, runs and verdicts;
the ladder has tests/test_ch06_overfitting_ladder.py) and the training.py features it relies on (batch-shared
augmentation, adversaries as values)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntknb  # noqa: F401  (compat shim before neural_tangents)
from ntknb import adversaries, attacks, collapse, models, records, training
from ntknb.chapters.ch06_overfitting import runs as co_runs
from ntknb.chapters.ch06_overfitting import search as co_search
from ntknb.chapters.ch06_overfitting import variants as co_variants
from ntknb.chapters.ch06_overfitting import verdicts as co_verdicts


def _images(n=6, h=5, w=5, c=1, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.uniform(0.1, 0.9, size=(n, h, w, c)).astype(np.float32))


# ----------------------------------------------------------- batch-shared augmentation


def test_shared_augmentations_are_registered():
    assert {"crop_shared", "crop_flip_shared"} <= set(training.AUGMENTATIONS)
    training.TrainConfig(augment="crop_flip_shared")
    with pytest.raises(ValueError, match="augment"):
        training.TrainConfig(augment="crop_flip_sharedd")


def test_crop_flip_shared_applies_one_transform_to_the_whole_batch():
    # Identical images in, identical images out (one crop and one flip for all) — and for
    # some key the transform is not the identity.
    x = jnp.tile(_images(1), (8, 1, 1, 1))
    changed = False
    for s in range(10):
        out = training._augment(x, jax.random.PRNGKey(s), "crop_flip_shared", 2)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
        np.testing.assert_array_equal(np.asarray(out), np.broadcast_to(np.asarray(out[0]), out.shape))
        changed |= not np.array_equal(np.asarray(out[0]), np.asarray(x[0]))
    assert changed


def test_shared_crop_equals_per_image_crop_with_a_common_offset():
    x = _images(4)
    out = np.asarray(training._augment(x, jax.random.PRNGKey(3), "crop_shared", 1))
    xp = np.pad(np.asarray(x), ((0, 0), (1, 1), (1, 1), (0, 0)))
    matches = [(i, j) for i in range(3) for j in range(3) if np.array_equal(out, xp[:, i:i + 5, j:j + 5])]
    assert len(matches) >= 1


def test_per_image_crop_flip_still_differs_across_the_batch():
    x = jnp.tile(_images(1), (32, 1, 1, 1))
    out = np.asarray(training._augment(x, jax.random.PRNGKey(0), "crop_flip", 2))
    assert len({o.tobytes() for o in out}) > 1


# ----------------------------------------------------------------- noise initialisation


def test_anisotropic_noise_shape_range_and_per_sample_independence():
    eps = 0.1
    d = np.asarray(co_variants.anisotropic_noise(jax.random.PRNGKey(0), (64, 4, 4, 3), eps))
    assert d.shape == (64, 4, 4, 3) and d.dtype == np.float32
    assert np.all(np.abs(d) <= eps + 1e-7)
    assert np.abs(d).max() > 0.5 * eps
    # samples differ from each other ...
    flat = d.reshape(64, -1)
    assert len({row.tobytes() for row in flat}) == 64
    # ... and are uncorrelated across samples (independent draws)
    c = np.corrcoef(flat)
    off = c[~np.eye(64, dtype=bool)]
    assert np.abs(off).mean() < 0.25
    # anisotropic: per-coordinate scales vary within a sample (unlike i.i.d. uniform noise)
    big = np.asarray(co_variants.anisotropic_noise(jax.random.PRNGKey(1), (4000, 2), 1.0, scale=0.5))
    assert abs(big.mean()) < 0.02
    # the kurtosis of a Gaussian scale mixture exceeds 3 (uniform: 1.8, Gaussian: 3)
    z = big[:, 0]
    assert np.mean(z**4) / np.mean(z**2) ** 2 > 3.3


def test_anisotropic_noise_is_seeded_and_validates():
    a = co_variants.anisotropic_noise(jax.random.PRNGKey(5), (3, 2), 0.2)
    b = co_variants.anisotropic_noise(jax.random.PRNGKey(5), (3, 2), 0.2)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="eps"):
        co_variants.anisotropic_noise(jax.random.PRNGKey(0), (3, 2), -0.1)
    with pytest.raises(ValueError, match="scale"):
        co_variants.anisotropic_noise(jax.random.PRNGKey(0), (3, 2), 0.1, scale=0.0)


def test_noise_initialized_fgsm_stays_in_ball_and_range():
    x = _images(5, seed=1)
    y = jnp.asarray([0, 1, 2, 1, 0])
    w = jnp.asarray(np.random.default_rng(0).normal(size=(25, 3)).astype(np.float32))

    def loss(xx, yy):
        return attacks.cross_entropy(xx.reshape(xx.shape[0], -1) @ w, yy)

    eps = 0.1
    xa = np.asarray(co_variants.noise_initialized_fgsm(loss, x, y, eps, 1.25 * eps, 1.0, jax.random.PRNGKey(0)))
    assert xa.shape == x.shape
    assert np.all(np.abs(xa - np.asarray(x)) <= eps + 1e-6)
    assert xa.min() >= 0 and xa.max() <= 1
    # starts from noise: differs from plain FGSM for some pixels, and raises the loss
    xf = np.asarray(attacks.fgsm(loss, x, y, eps))
    assert not np.allclose(xa, xf)
    assert float(loss(jnp.asarray(xa), y).mean()) > float(loss(x, y).mean())


def test_adversaries_as_values_tell_the_training_runs_apart():
    with pytest.raises(ValueError, match="noise_scale"):
        co_variants.NoiseFGSM(0.1, 0.125, noise_scale=-1.0)
    with pytest.raises(ValueError, match="adversary"):
        training.TrainConfig(mode="standard", adversary=adversaries.FGSM(0.1))
    with pytest.raises(ValueError, match="adversary"):
        training.TrainConfig(mode="fgsm", adversary="fgsm")
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(16, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 2, 16).astype(np.int64)
    m = models.CNN(num_classes=2, width=2, hidden=8)
    p0, s0 = models.init_model(m, x.shape[1:])
    base = dict(mode="fgsm", epochs=1, batch_size=16, learning_rate=0.1, eps=0.1, eval_attack_steps=1)
    adv = {"fgsm": None, "fgsm_explicit": adversaries.FGSM(0.1), "rs": adversaries.FGSM(0.1, 0.125, random_start=True),
           "noise": co_variants.NoiseFGSM(0.1, 0.125, 1.0), "noise2": co_variants.NoiseFGSM(0.1, 0.125, 1.0),
           "pgd": adversaries.PGD(0.1, 2)}
    outs = {}
    for name, a in adv.items():
        cfg = training.TrainConfig(**base, adversary=a)
        outs[name] = training.fit(training.flax_apply_fn(m), p0, s0, x, y, x, y, cfg, progress=False).params
    flat = {k: np.concatenate([np.ravel(a) for a in jax.tree_util.tree_leaves(v)]) for k, v in outs.items()}
    np.testing.assert_array_equal(flat["fgsm"], flat["fgsm_explicit"])  # the mode's default adversary
    np.testing.assert_array_equal(flat["noise"], flat["noise2"])  # seeded
    for a, b in [("fgsm", "rs"), ("fgsm", "noise"), ("rs", "noise"), ("fgsm", "pgd"), ("rs", "pgd")]:
        assert not np.allclose(flat[a], flat[b]), (a, b)


# ------------------------------------------------------------------- collapse & runs


def test_detect_collapse():
    c = co_variants.detect_collapse([0.1, 0.3, 0.4, 0.05, 0.02, 0.2])
    assert c.collapsed and c.peak == pytest.approx(0.4) and c.peak_epoch == 3 and c.epoch == 4
    assert c.low == pytest.approx(0.02) and c.final == pytest.approx(0.2) and c.recovered
    # a transient collapse before a later, higher peak is still found
    c = co_variants.detect_collapse([0.3, 0.05, 0.5, 0.6])
    assert c.collapsed and c.epoch == 2 and c.peak_epoch == 1 and c.recovered
    c = co_variants.detect_collapse([0.2, 0.4, 0.01, 0.0])
    assert c.collapsed and not c.recovered
    assert not co_variants.detect_collapse([0.1, 0.3, 0.4, 0.35]).collapsed
    assert not co_variants.detect_collapse([0.1, 0.15, 0.0], min_peak=0.2).collapsed  # never robust
    with pytest.raises(ValueError, match="fraction"):
        co_variants.detect_collapse([0.1], fraction=1.5)
    with pytest.raises(ValueError, match="robust_acc"):
        co_variants.detect_collapse([])


def test_run_variant_with_kernel_tracking_and_comparisons():
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    labels = np.tile(np.arange(2), 8).astype(np.int64)
    x = rng.uniform(size=(16, 8, 8, 1)).astype(np.float32) * 0.5
    x[labels == 1, :4] += 0.4
    task = SimpleNamespace(x_train=x, labels_train=labels, x_test=x, labels_test=labels)
    m = models.CNN(num_classes=2, width=2, hidden=8)
    cfg = training.TrainConfig(mode="fgsm", epochs=2, batch_size=8, learning_rate=0.05, eps=0.05,
                               eval_attack_steps=1, eval_batch_size=16)
    probe = (x[:4], labels[:4])
    run = co_variants.run_variant(m, task, cfg, n_monitor=8, probe=probe, probe_attack_steps=1, top_p=2)
    assert run.fgsm_train_acc.shape == (3,)
    # accuracies over exactly the 8 monitored images (n_monitor), not the 16 training images
    assert np.all(np.asarray(run.fgsm_train_acc) * 8 == np.round(np.asarray(run.fgsm_train_acc) * 8))
    assert run.robust_acc.shape == (2,) and isinstance(run.collapse, co_variants.Collapse)
    with pytest.raises(ValueError, match="gap"):
        run.ended_overfitted(1.5)
    assert list(run.trajectory.epochs) == [0, 1, 2]
    ep, d = co_variants.distance_to_reference(run.trajectory, run.trajectory)
    np.testing.assert_allclose(d, 0.0, atol=1e-9)
    M = co_variants.ae_specialization_matrix(run.result, x[:4], labels[:4], eps=0.05, attack_steps=1)
    assert M.shape == (2, 2) and np.all(np.isfinite(M))
    # the standard evaluation and masking checks of the final network, on the first eval_n_test test points
    rep = co_runs.evaluate_run(SimpleNamespace(eval_n_test=10, eps=0.05, eval_iter=2), run, task, seed=0)
    assert rep.n == 10 and rep.eps == 0.05 and rep.eps_grid == (0.05, 0.1)
    assert 0 <= rep.iterative_accuracy <= rep.accuracy_vs_eps[0] + rep.tol
    assert rep.iterative_accuracy * 10 == pytest.approx(round(rep.iterative_accuracy * 10))  # a fraction of 10 points



def _search_dataset():
    from ntknb import data

    rng = np.random.default_rng(0)

    def split(n):
        y = np.tile(np.arange(2), n // 2).astype(np.int64)
        x = rng.uniform(size=(n, 8, 8, 1)).astype(np.float32) * 0.5
        x[y == 1, :4] += 0.4
        return x, y

    (xtr, ytr), (xte, yte) = split(24), split(8)
    return data.Dataset("toy", xtr, ytr, xte, yte, ("a", "b"), data.Provenance("toy", "/toy", "sha256", "00", lossy=False))


SETTING = dict(dataset="toy", model="cnn", width=2, hidden=4, n_train=16, n_test=8, n_monitor=8, batch_size=8,
               learning_rate=0.05, momentum=0.9, weight_decay=0.0, eps=0.05, attack_steps=1, eval_attack_steps=1,
               clean_epochs=1, epochs=2, mode="fgsm", seed=0)


def test_search_run_records_the_setting_and_its_curves_reproducibly():
    ds = _search_dataset()
    rec = co_search.search_run(dict(SETTING), dataset=ds)
    assert isinstance(rec, records.SearchRecord) and {k: getattr(rec, k) for k in SETTING} == SETTING
    assert len(rec.robust_acc) == len(rec.clean_acc) == 2 and len(rec.fgsm_train_acc) == 3
    assert co_search.search_run(dict(SETTING), dataset=ds) == rec  # same setting, same numbers on CPU
    row, = co_search.search_table([rec], fraction=0.3, min_peak=0.2)
    assert (row.mode, row.seed, row.epochs) == ("fgsm", 0, 2) and row.peak_robust == max(rec.robust_acc)
    assert (row.final_robust, row.final_clean, row.final_fgsm_train) == (rec.robust_acc[-1], rec.clean_acc[-1],
                                                                          rec.fgsm_train_acc[-1])
    assert "1 clean epoch(s) first" in row.setting and "CNN w2/h4" in row.setting


def test_search_run_adds_the_standard_evaluation_of_the_final_network():
    ds = _search_dataset()
    plain = co_search.search_run(dict(SETTING), dataset=ds)
    rec = co_search.search_run(dict(SETTING), dataset=ds, suite_iter=5)
    assert dataclasses.replace(rec, suite_robust_acc=None, suite_iter=None) == plain and rec.suite_iter == 5
    # a fraction of the 8 test points
    assert 0.0 <= rec.suite_robust_acc <= 1.0 and rec.suite_robust_acc * 8 == round(rec.suite_robust_acc * 8)
    with pytest.raises(ValueError, match="suite_iter"):
        co_search.search_run(dict(SETTING), dataset=ds, suite_iter=-1)


def test_search_table_outcomes_and_validation():
    curves = dict(clean_acc=[0.9, 0.9, 0.9, 0.95], fgsm_train_acc=[0.0, 0.5, 0.8, 0.9, 0.95])
    collapsed = dict(SETTING, epochs=4, robust_acc=[0.3, 0.6, 0.1, 0.5], **curves)
    steady = dict(collapsed, robust_acc=[0.3, 0.5, 0.55, 0.6])
    stuck = dict(steady, clean_acc=[0.1] * 4)
    recs = [records.SearchRecord.from_json(r) for r in (collapsed, steady, stuck)]
    rows = co_search.search_table(recs, fraction=0.3, min_peak=0.2)
    assert [r.outcome for r in rows] == [co_search.SearchOutcome("collapsed", 3, True), co_search.SearchOutcome("none"),
                                         co_search.SearchOutcome("stuck")]
    cells = co_search.search_cells(rows)
    assert [c[-1] for c in cells] == ["collapsed at epoch 3 (recovered)", "no collapse", "stuck at chance"]
    assert all(len(c) == len(co_search.SEARCH_COLUMNS) for c in cells)
    assert cells[0][4:8] == [0.6, 0.5, 0.95, 0.95] and np.isnan(cells[0][8])  # no standard evaluation recorded
    measured = records.SearchRecord.from_json(dict(steady, suite_robust_acc=0.25, suite_iter=20))
    assert co_search.search_table([measured])[0].suite == 0.25
    assert str(co_search.SearchOutcome("collapsed", 5)) == "collapsed at epoch 5"  # ended collapsed
    found = co_search.search_summary(recs, rows, min_seeds=1)
    assert found["common"]["eps"] == 0.05 and "seed" not in found["common"]
    assert (found["n_runs"], found["n_fgsm"], found["n_collapsed"], found["n_transient"], found["n_stuck"]) == (3, 3, 1, 1, 1)
    assert found["reliable"] == []  # the setting collapsed in one of its three runs only
    group, = found["settings"]  # one setting, one mode: its three runs
    assert (group["mode"], group["n_runs"], group["n_collapsed"], group["n_ended_collapsed"]) == ("fgsm", 3, 1, 0)
    assert group["robust"] == pytest.approx(np.mean([0.5, 0.6, 0.6])) and np.isnan(group["suite"])
    assert group["devices"] == ["cpu"] and group["n_train"] == 16 and group["epochs"] == [4]
    single = co_search.search_summary(recs[:1], rows[:1], min_seeds=1)
    assert single["reliable"] == [rows[0].setting] and single["common"]["width"] == 2
    assert co_search.search_summary(recs[:1], rows[:1], min_seeds=2)["reliable"] == []
    with pytest.raises(ValueError, match="same length"):
        co_search.search_summary(recs[:1], rows)
    with pytest.raises(ValueError, match="min_seeds"):
        co_search.search_summary(recs[:1], rows[:1], min_seeds=0)
    with pytest.raises(ValueError, match="SearchRecord"):  # the JSON dicts are read by ntknb.records
        co_search.search_table([collapsed])
    with pytest.raises(ValueError, match="model"):
        co_search.search_run(dict(SETTING, model="mlp"))
    with pytest.raises(ValueError, match="mode"):
        co_search.search_run(dict(SETTING, mode="trades"))


def test_recorded_search_file_is_valid():
    """The chapter's recorded search parses and every record has consistent curves."""
    rows = co_search.search_table(records.load_search_records(records.SEARCH_FILE))
    assert len(rows) >= 10


# ------------------------------------------------------------------ the chapter's functions


def _defaults():
    from ntknb.book.params import load_notebook, notebook_parameters
    from pathlib import Path

    nb = load_notebook(Path(__file__).resolve().parents[1] / "notebooks" / "06_catastrophic_overfitting.py")
    return {n: p.default for n, p in notebook_parameters(nb).items()}


def test_the_package_exports_exactly_what_the_notebook_calls():
    import re
    from pathlib import Path

    import ntknb.chapters.ch06_overfitting as ch

    source = (Path(__file__).resolve().parents[1] / "notebooks" / "06_catastrophic_overfitting.py").read_text()
    assert sorted(ch.__all__) == sorted(set(re.findall(r"\bch\.([A-Za-z_]\w*)", source)))
    assert len(set(ch.__all__)) == len(ch.__all__) and all(hasattr(ch, name) for name in ch.__all__)
    assert ch.claims is co_verdicts.claims and ch.Params is co_runs.Params


def test_params_defaults_and_rules():
    p = co_runs.Params.from_values(_defaults())
    assert p.seeds == [p.seed + i for i in range(p.n_seeds)]
    assert p.track_epochs[0] == 0 and p.track_epochs[-1] == p.epochs
    for change, name in [(dict(eps=3), "eps"), (dict(clean_epochs=p.epochs - 1), "clean_epochs"),
                         (dict(n_monitor=p.n_train + 1), "n_monitor"), (dict(augment="crop_shared"), "augment"),
                         (dict(lr_decay_epochs=[p.epochs]), r"lr_decay_epochs\[0\]"),
                         (dict(eval_n_test=p.n_test + 1), "eval_n_test"), (dict(eval_iter=0), "eval_iter")]:
        with pytest.raises(ValueError, match=f"'{name}'"):
            p.replace(**change)


def test_variant_configs_pick_their_adversary():
    p = co_runs.Params.from_values(_defaults())
    cfg = {v: co_runs.variant_config(p, v, 7) for v in co_runs.LABEL}
    assert cfg["fgsm"].training_adversary() == adversaries.FGSM(p.eps)
    assert cfg["fgsm_rs"].adversary == adversaries.FGSM(p.eps, p.fgsm_step * p.eps, random_start=True)
    assert cfg["noise"].adversary == co_variants.NoiseFGSM(p.eps, p.fgsm_step * p.eps, p.noise_scale)
    assert cfg["nfgsm"].adversary == adversaries.NFGSM(p.eps, None, p.nfgsm_noise) and cfg["nfgsm"].mode == "fgsm"
    assert cfg["pgd"].training_adversary() == adversaries.PGD(p.eps, p.attack_steps)
    assert cfg["pgd_shared"].augment == p.shared_augment and cfg["pgd"].augment == p.augment
    assert cfg["standard"].clean_epochs == 0 and cfg["fgsm"].clean_epochs == p.clean_epochs
    assert {c.seed for c in cfg.values()} == {7}
    with pytest.raises(ValueError, match="variant"):
        co_runs.variant_config(p, "trades", 0)


def test_collapse_rows():
    from types import SimpleNamespace

    def run(robust, fgsm_train):
        r = SimpleNamespace(robust_acc=np.asarray(robust), clean_acc=np.asarray([0.9] * len(robust)),
                            fgsm_train_acc=np.asarray(fgsm_train))
        r.collapse = co_variants.detect_collapse(robust, 0.3, 0.15)
        return r

    collapsed, steady = run([0.3, 0.5, 0.05, 0.4], [0, 0.5, 0.6, 0.9, 0.8]), run([0.3, 0.5, 0.5, 0.5], [0] * 5)
    rows = co_runs.collapse_rows({("fgsm", 0): collapsed, ("noise", 1): steady})
    assert rows[0][0] == "FGSM-AT" and rows[0][7] == 0.9 and rows[0][8] == "epoch 3 (recovered)"
    assert rows[1][:2] == ["noise-FGSM (ours)", 1] and rows[1][8] == "no"


def test_ended_overfitted_compares_final_fgsm_train_and_pgd_test_accuracy():
    from types import SimpleNamespace

    result = SimpleNamespace(column=lambda name: np.array({"robust_acc": [0.4, 0.2], "clean_acc": [0.9, 0.9]}[name]))
    run = co_variants.VariantRun(result=result, fgsm_train_acc=np.array([0.1, 0.5, 0.8]),
                                 collapse=co_variants.detect_collapse([0.4, 0.2]))
    assert run.ended_overfitted(0.5) and run.ended_overfitted(0.6)  # final gap 0.8 - 0.2 = 0.6
    assert not run.ended_overfitted(0.7)
    early = co_variants.VariantRun(result=result, fgsm_train_acc=np.array([0.1, 0.8, 0.3]), collapse=run.collapse)
    assert not early.ended_overfitted(0.5)  # only the final epoch counts (0.3 - 0.2)


def _seed_runs(p, robust_by_variant):
    """Stand-in runs: ``{variant: [robust-accuracy curve per seed]}`` -> ``{(variant, seed): run}``."""
    from types import SimpleNamespace

    runs = {}
    for v, curves in robust_by_variant.items():
        for s, curve in zip(p.seeds, curves):
            r = np.asarray(curve, float)
            runs[(v, s)] = SimpleNamespace(robust_acc=r, collapse=co_variants.detect_collapse(r))
    return runs


RULE = collapse.CollapseRule()


def _judged(p, final_by_variant, peak=0.4, fgsm=0.9, clean_by_variant=None):
    """Stand-in judgements: ``{variant: [final strong accuracy per seed]}`` by the strong rule, a strong
    curve peaking at ``peak``, final FGSM accuracy ``fgsm`` and clean accuracy 0.9 (or ``clean_by_variant``)."""
    out = {}
    for v, finals in final_by_variant.items():
        for i, (s, f) in enumerate(zip(p.seeds, finals)):
            clean = (clean_by_variant or {}).get(v, [0.9] * len(finals))[i]
            out[(v, s)] = RULE.judge([0.0, peak, f], f, fgsm, clean, 10)
    return out


def test_claims_are_well_formed_and_flip_at_the_thresholds():
    from ntknb.claims import Claim

    p = co_runs.Params.from_values({**_defaults(), "n_seeds": 3})
    cs = _claims(p, fgsm_final=[0.02, 0.03, 0.01], ks_fgsm=[0.2, 0.3, 0.1])
    assert list(cs) == list(co_verdicts.CLAIM_THRESHOLDS)
    for c in cs.values():
        assert Claim.from_json(c.to_json()) == c and c.direction == co_verdicts.CLAIM_THRESHOLDS[c.id][0]
    first = [cs[k] for k in ("ch06.fgsm_at_collapse", "ch06.noise_beats_fgsm", "ch06.rs_beats_fgsm")]
    assert all(c.n_seeds == 3 and c.n_test == min(p.eval_n_test, p.n_test) for c in first)
    assert cs["ch06.fgsm_at_collapse"].threshold == pytest.approx(1 - RULE.drop_fraction)
    assert cs["ch06.noise_beats_fgsm"].threshold == cs["ch06.rs_beats_fgsm"].threshold == 0.0
    assert cs["ch06.fgsm_at_collapse"].measured == pytest.approx(np.mean([1 - 0.02 / 0.4, 1 - 0.03 / 0.4, 1 - 0.01 / 0.4]))
    assert [c.verdict for c in first] == ["reproduced"] * 3
    cs = _claims(p, fgsm_final=[0.4, 0.4, 0.4], ks_fgsm=[0.2, 0.3, 0.1], other=[0.3] * 3)
    # no drop (final = peak) and the baselines end below FGSM-AT
    assert [cs[c.id].verdict for c in first] == ["contradicted"] * 3
    cs = _claims(p, fgsm_final=[0.02, 0.38, 0.39], ks_fgsm=[0.2, 0.3, 0.1])
    assert cs["ch06.fgsm_at_collapse"].verdict == "inconclusive"  # one seed of three collapsed: wide interval
    for c in cs.values():  # every interval stays in its quantity's range: [0, 1] drops, [-1, 1] differences
        lo_range = 0.0 if c.id in ("ch06.fgsm_at_collapse", "ch06.shared_aug_collapse") else -1.0
        assert c.low is None or (lo_range <= c.low <= c.measured <= c.high <= 1.0), c
    cs = _claims(p, fgsm_final=[0.5, 0.02, 0.01], ks_fgsm=[0.2, 0.3, 0.1])  # final above the peak: no drop, not < 0
    assert cs["ch06.fgsm_at_collapse"].measured == pytest.approx(np.mean([0.0, 1 - 0.02 / 0.4, 1 - 0.01 / 0.4]))


def _evals(p, suite_by_variant, single=0.9):
    """Stand-in masking reports: ``{variant: [suite robust accuracy per seed]}``."""
    from types import SimpleNamespace

    return {(v, s): SimpleNamespace(iterative_accuracy=a, single_step_accuracy=single, passed=True)
            for v, accs in suite_by_variant.items() for s, a in zip(p.seeds, accs)}


def _claims(p, fgsm_final, ks_fgsm, other=(0.5, 0.5, 0.5), clean=None):
    runs = _seed_runs(p, {"pgd_shared": [[0.3, 0.5, 0.05]]})
    ks = {(v, s): k for v, vals in {"fgsm": ks_fgsm, "fgsm_rs": [1.0] * 3}.items() for s, k in zip(p.seeds, vals)}
    finals = {"fgsm": fgsm_final, "noise": list(other), "fgsm_rs": list(other), "nfgsm": list(other)}
    evals = _evals(p, finals)
    judged = _judged(p, finals, clean_by_variant=clean)
    return {c.id: c for c in co_verdicts.claims(p, runs, ks, evals, judged, RULE)}


def test_claims_about_collapsed_networks_follow_the_collapse_guard():
    p = co_runs.Params.from_values({**_defaults(), "n_seeds": 3})
    cs = _claims(p, fgsm_final=[0.0, 0.01, 0.02], ks_fgsm=[0.2, 0.3, 0.1])
    assert cs["ch06.ks_collapsed_lower"].verdict == cs["ch06.noise_fix_suite"].verdict == "reproduced"
    assert cs["ch06.ks_collapsed_lower"].measured == pytest.approx(0.8) and cs["ch06.ks_collapsed_lower"].n_seeds == 3
    assert cs["ch06.noise_fix_suite"].n_test == min(p.eval_n_test, p.n_test)
    assert cs["ch06.shared_aug_collapse"].verdict == "inconclusive" and cs["ch06.shared_aug_collapse"].n_seeds == 1
    cs = _claims(p, fgsm_final=[0.05, 0.06, 0.07], ks_fgsm=[1.5, 1.6, 1.7], other=[0.0, 0.0, 0.0])
    assert cs["ch06.ks_collapsed_lower"].verdict == cs["ch06.noise_fix_suite"].verdict == "contradicted"
    # one seed ended collapsed: fewer than MIN_COLLAPSED, so unbounded (inconclusive) whatever the values
    cs = _claims(p, fgsm_final=[0.0, 0.38, 0.39], ks_fgsm=[0.2, 0.3, 0.1])
    for cid in ("ch06.ks_collapsed_lower", "ch06.noise_fix_suite"):
        assert cs[cid].verdict == "not_testable" and (cs[cid].low, cs[cid].high) == (-1.0, 1.0) and cs[cid].n_seeds == 3
        (pre,) = cs[cid].preconditions
        assert pre.name == "fgsm_at_ended_collapsed" and pre.measured == 1 and not pre.met
    assert cs["ch06.ks_collapsed_lower"].measured == pytest.approx(0.8)  # the mean over all seeds


def test_an_arm_that_failed_to_train_is_never_a_comparison():
    p = co_runs.Params.from_values({**_defaults(), "n_seeds": 3})
    # noise-FGSM at chance in two seeds: its comparisons keep one seed, too few: unbounded
    cs = _claims(p, fgsm_final=[0.0, 0.01, 0.02], ks_fgsm=[0.2, 0.3, 0.1], clean={"noise": [0.9, 0.1, 0.1]})
    for cid in ("ch06.noise_beats_fgsm", "ch06.noise_fix_suite"):
        assert cs[cid].verdict == "not_testable" and (cs[cid].low, cs[cid].high) == (-1.0, 1.0)
    assert cs["ch06.rs_beats_fgsm"].verdict == "reproduced"
    judged = _judged(p, {"fgsm": [0.0] * 3, "noise": [0.5] * 3, "fgsm_rs": [0.4] * 3, "nfgsm": [0.1] * 3},
                     clean_by_variant={"nfgsm": [0.1, 0.1, 0.1]})
    assert not co_verdicts.trained(judged, "nfgsm", p.seed) and co_verdicts.trained(judged, "fgsm", p.seed)
    rows = co_verdicts.strong_rows(p, judged)
    assert rows[0][-1] == "yes" and rows[6][:2] == ["N-FGSM", p.seed] and rows[6][-1] == "failed to train"
    assert len(rows[0]) == len(co_verdicts.STRONG_COLUMNS)
    summary = co_verdicts.strong_summary(p, judged)
    assert summary["co_fgsm_ended_collapsed"] == 3 and summary["co_nfgsm_n_failed"] == 3


def test_evaluation_tables():
    p = co_runs.Params.from_values({**_defaults(), "n_seeds": 3})
    steady = [[0.3, 0.5, 0.6]] * 3
    runs = _seed_runs(p, {"fgsm": steady, "noise": steady, "fgsm_rs": steady, "nfgsm": steady})
    finals = {"fgsm": [0.0, 0.05, 0.1], "noise": [0.5] * 3, "fgsm_rs": [0.4] * 3, "nfgsm": [0.45] * 3}
    evals = _evals(p, finals)
    rows = co_runs.evaluation_rows(p, runs, evals)
    assert len(rows) == 4 and len(rows[0]) == len(co_runs.evaluation_columns(p)) and rows[0][0] == "FGSM-AT"
    assert rows[0][1].startswith("0.600 [") and rows[0][2].startswith("0.050 [") and rows[0][5] == "3 of 3"
    assert rows[1][2] == "0.400 [0.400, 0.400]"  # FGSM-RS: no spread over seeds
    diff = co_verdicts.difference_rows(p, evals, _judged(p, finals))
    assert [r[0] for r in diff] == ["noise-FGSM (ours) − FGSM-AT", "FGSM-RS − FGSM-AT", "N-FGSM − FGSM-AT",
                                    "noise-FGSM (ours) − FGSM-RS", "noise-FGSM (ours) − N-FGSM"]
    assert diff[3][1] == "0.100 [0.100, 0.100]" and diff[4][1] == "0.050 [0.050, 0.050]"
    failed = co_verdicts.difference_rows(p, evals, _judged(p, finals, clean_by_variant={"nfgsm": [0.1] * 3}))
    assert failed[2][1].startswith("not compared: N-FGSM failed to train") and failed[4][1].startswith("not compared")
    s = co_runs.evaluation_summary(p, runs, evals)
    assert s["co_fgsm_suite_robust_acc"] == pytest.approx(0.05) and s["co_fgsm_monitor_minus_suite"] == pytest.approx(0.55)
    assert s["co_rs_single_step_acc"] == pytest.approx(0.9) and s["co_noise_n_masking_passed"] == 3


def test_gpu_section_from_recorded_runs(tmp_path):
    """The GPU section from a hand-made record file: any number of runs, none included."""
    base = dict(SETTING, dataset="cifar10", model="resnet", stage_sizes=[1, 1, 1, 1], width=32, n_train=10000,
                epochs=4, eps=8 / 255, device="NVIDIA H200", suite_iter=20, clean_acc=[0.4, 0.5, 0.5, 0.6],
                fgsm_train_acc=[0.1, 0.3, 0.5, 0.8, 0.9])
    base.pop("hidden")
    ended = dict(base, robust_acc=[0.2, 0.3, 0.02, 0.01], suite_robust_acc=0.0)
    steady = dict(base, robust_acc=[0.2, 0.25, 0.3, 0.3], suite_robust_acc=0.28, seed=1)
    wide = dict(steady, eps=16 / 255, seed=0)
    pgd = dict(steady, mode="pgd", eps=4 / 255)
    path = tmp_path / "gpu.jsonl"
    records.append_search_records(path, [ended, dict(ended, seed=1), dict(ended, seed=2), wide, pgd])
    recs = records.load_search_records(path)
    found = co_search.search_summary(recs, co_search.search_table(recs, fraction=0.3, min_peak=0.15))
    streams = co_search.gpu_streams(found)
    assert list(streams) == ["co8_n10000", "co16_n10000"]  # PGD-AT is not an FGSM stream
    rows = co_search.gpu_rows(streams)
    assert len(rows[0]) == len(co_search.GPU_COLUMNS)
    assert rows[0][:7] == ["FGSM-AT, ε 8/255", 10000, "4", "NVIDIA H200", "3 (0, 1, 2)", 3, 3]
    assert rows[0][7:] == [pytest.approx(0.01), 0.0, pytest.approx(0.6)]
    g = co_search.gpu_summary(streams)
    assert (g["gpu_fgsm_n"], g["gpu_fgsm_ended_collapsed"], g["gpu_co8_n10000_collapsed"], g["gpu_co16_n10000_n"]) \
        == (4, 3, 3, 1)
    text = co_search.gpu_text(found, streams)
    assert text.startswith("5 GPU run(s) recorded, 4 of them FGSM-AT.") and "ended collapsed in 3" in text
    assert "reliabl" not in text and "scale decides" not in text  # a description, not a verdict
    co_search.plot_gpu_curves(recs)
    none = co_search.search_summary([], [])
    assert co_search.gpu_streams(none) == {} and co_search.gpu_rows({}) == []
    assert co_search.gpu_summary({}) == {"gpu_fgsm_n": 0, "gpu_fgsm_collapsed": 0, "gpu_fgsm_ended_collapsed": 0}
    assert co_search.gpu_text(none, {}).startswith("No GPU run has been recorded yet")
    co_search.plot_gpu_curves([])


def test_recorded_gpu_file_is_valid():
    """The recorded CIFAR-10 GPU runs (if committed) parse, and each names its device."""
    if not records.GPU_SEARCH_FILE.exists():
        pytest.skip("no GPU runs recorded")
    recs = records.load_search_records(records.GPU_SEARCH_FILE)
    co_search.search_table(recs)
    assert recs and all(r.device for r in recs)
