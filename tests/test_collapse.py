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
