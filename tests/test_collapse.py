"""Tests for ntknb.collapse: gradient alignment (closed forms), the epoch monitor, the end-state rule."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntknb  # noqa: F401
from ntknb import collapse, models, training
from ntknb.evaluation import robust_evaluation


def test_gradient_alignment_is_one_for_a_linear_loss_and_matches_a_direct_cosine():
    w = jnp.arange(12.0).reshape(1, 12) - 5.0
    x = jnp.full((3, 12), 0.5)
    y = jnp.zeros(3, jnp.int32)
    linear = lambda xx, yy: (xx @ w.T)[:, 0]  # noqa: E731  constant gradient -> cosine 1
    np.testing.assert_allclose(collapse.gradient_alignment(linear, x, y, 0.1, jax.random.PRNGKey(0)), 1.0, rtol=1e-6)
    quad = lambda xx, yy: jnp.sum((xx - 0.3) ** 2, axis=1)  # noqa: E731  gradient 2(x - 0.3)
    key = jax.random.PRNGKey(1)
    got = collapse.gradient_alignment(quad, x, y, 0.1, key)
    eta = jax.random.uniform(key, x.shape, x.dtype, -0.1, 0.1)
    g0, g1 = 2 * (x - 0.3), 2 * (jnp.clip(x + eta, 0, 1) - 0.3)
    want = jnp.sum(g0 * g1, 1) / (jnp.linalg.norm(g0, axis=1) * jnp.linalg.norm(g1, axis=1))
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.fixture(scope="module")
def tiny_run():
    m = models.make_model("tiny_cnn", 3, filters=2)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(48, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 3, 48)
    params, state = models.init_model(m, (8, 8, 1), seed=0)
    mon = collapse.EpochMonitor(training.flax_apply_fn(m), x[:32], y[:32], 0.1, n_iter=5, pgd_steps=3)
    cfg = training.TrainConfig(mode="fgsm", epochs=2, batch_size=16, learning_rate=1e-2, optimizer="adam",
                               lr_schedule="cyclic", eps=0.1, eval_attack_steps=2)
    res = training.fit(training.flax_apply_fn(m), params, state, x, y, x[:16], y[:16], cfg, callbacks=[mon],
                       progress=False)
    return m, x, y, mon, res


def test_epoch_monitor_records_every_epoch_and_its_strong_accuracy_is_the_suite(tiny_run):
    m, x, y, mon, res = tiny_run
    assert [r["epoch"] for r in mon.rows] == [0, 1, 2]
    assert set(mon.rows[0]) == set(collapse.MONITOR_COLUMNS)
    for r in mon.rows:
        assert 0 <= r["strong_acc"] <= r["clean_acc"] <= 1 and -1 <= r["grad_align"] <= 1
    rep = robust_evaluation(mon.logits_fn, x[:32], y[:32], 0.1, seed=0, n_iter=5, params=(res.params, res.state))
    assert mon.rows[-1]["strong_acc"] == rep.robust_accuracy
    assert mon.rows[-1]["clean_acc"] == pytest.approx(rep.clean_accuracy)
    assert mon.column("epoch").tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="name"):
        mon.column("nope")


def test_epoch_monitor_rejects_bad_input(tiny_run):
    m, x, y, _, _ = tiny_run
    with pytest.raises(ValueError, match="labels"):
        collapse.EpochMonitor(training.flax_apply_fn(m), x[:4], y[:3], 0.1)
    with pytest.raises(ValueError, match="eps"):
        collapse.EpochMonitor(training.flax_apply_fn(m), x[:4], y[:4], 2.0)


@pytest.mark.parametrize("curve, final, fgsm, clean, collapsed, failed, epoch", [
    ([0.0, 0.15, 0.2, 0.01, 0.0], 0.0, 0.6, 0.3, True, (), 3),      # A&F Fig. 1: PGD 0.18 -> 0, FGSM high
    ([0.0, 0.15, 0.2, 0.18, 0.17], 0.17, 0.3, 0.4, False, ("drop", "fgsm_gap"), None),  # no collapse
    ([0.0, 0.15, 0.2, 0.01, 0.0], 0.0, 0.1, 0.3, False, ("fgsm_gap",), 3),   # fell, but FGSM fell too
    ([0.0, 0.15, 0.2, 0.01, 0.0], 0.0, 0.6, 0.15, False, ("learned",), 3),  # clean at chance: failed run
])
def test_collapse_rule(curve, final, fgsm, clean, collapsed, failed, epoch):
    j = collapse.CollapseRule().judge(curve, final, fgsm, clean, 10)
    assert (j.ended_collapsed, j.failed, j.collapse_epoch, j.peak, j.peak_epoch) == (collapsed, failed, epoch, 0.2, 2)
    assert j.to_json()["failed"] == list(failed)


def test_collapse_rule_rejects_bad_input():
    rule = collapse.CollapseRule()
    with pytest.raises(ValueError, match="strong_curve"):
        rule.judge([], 0.0, 0.0, 0.5, 10)
    with pytest.raises(ValueError, match="final_fgsm"):
        rule.judge([0.1], 0.0, 1.5, 0.5, 10)
    with pytest.raises(ValueError, match="drop_fraction"):
        collapse.CollapseRule(drop_fraction=0.0)
    assert "0.25" in rule.describe()


def test_injected_feature_carriers_are_the_signs_of_the_orthonormal_dct_basis():
    from scipy.fft import idctn  # an independent implementation of the 2-D DCT-III (inverse DCT-II)

    feat = collapse.InjectedFeature(8 / 255, (32, 32, 3))
    v = feat.carriers()
    assert v.shape == (10, 32, 32, 3) and set(np.unique(v)) == {-1.0, 1.0}
    for k, (i, j) in enumerate(collapse.FEATURE_FREQUENCIES):
        basis = np.zeros((32, 32))
        basis[i, j] = 1.0
        want = np.sign(idctn(basis, norm="ortho"))
        for c in range(3):
            np.testing.assert_array_equal(v[k, :, :, c], want)
            np.testing.assert_array_equal(v[k + 5, :, :, c], -want)
    gram = v.reshape(10, -1) @ v.reshape(10, -1).T / v[0].size  # classes k and k + 5 opposite, others orthogonal
    np.testing.assert_allclose(gram, np.block([[np.eye(5), -np.eye(5)], [-np.eye(5), np.eye(5)]]), atol=1e-6)


def test_injected_feature_adds_beta_times_the_class_carrier_inside_the_box_in_numpy_and_jax():
    feat = collapse.InjectedFeature(0.1, (8, 8, 1))
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(20, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 10, 20)
    got = feat(x, y)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.clip(x + 0.1 * feat.carriers()[y], 0, 1), atol=0)
    np.testing.assert_allclose(np.asarray(jax.jit(feat)(jnp.asarray(x), jnp.asarray(y))), got, atol=1e-7)
    assert hash(feat) == hash(collapse.InjectedFeature(0.1, (8, 8, 1)))  # keeps the compiled step cached


@pytest.mark.parametrize("kwargs, match", [
    (dict(beta=1.5, image_shape=(8, 8, 1)), "beta"),
    (dict(beta=0.1, image_shape=(8, 8)), "image_shape"),
    (dict(beta=0.1, image_shape=(8, 8, 1), n_classes=3), "n_classes"),
])
def test_injected_feature_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        collapse.InjectedFeature(**kwargs)


def test_training_with_an_injection_equals_training_on_the_injected_images_without_augmentation():
    m = models.make_model("tiny_cnn", 10, filters=2)
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(32, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 10, 32)
    feat = collapse.InjectedFeature(0.2, (8, 8, 1))
    apply_fn = training.flax_apply_fn(m)
    params, state = models.init_model(m, (8, 8, 1), seed=0)
    base = dict(mode="fgsm", epochs=1, batch_size=16, learning_rate=1e-2, optimizer="adam", eps=0.1,
                eval_attack_steps=2)
    a = training.fit(apply_fn, params, state, x, y, x[:8], y[:8], training.TrainConfig(injection=feat, **base),
                     progress=False)
    b = training.fit(apply_fn, params, state, feat(x, y), y, x[:8], y[:8], training.TrainConfig(**base),
                     progress=False)
    for u, w in zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(w), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="injection"):
        training.TrainConfig(injection=3)


def test_epoch_monitor_refuses_the_last_seed_its_loss_gap_would_wrap(tiny_run):
    m, x, y, _, _ = tiny_run
    with pytest.raises(ValueError, match="seed"):
        collapse.EpochMonitor(training.flax_apply_fn(m), x[:4], y[:4], 0.1, seed=2**32 - 1)
