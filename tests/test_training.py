"""Tests for ntknb.training."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntknb  # noqa: F401  (compat shim before neural_tangents)
from ntknb._compat import x64
from ntknb import training


def test_log_spaced_steps_sorted_unique_and_bounded():
    steps = training.log_spaced_steps(1000, 20)
    assert steps[0] == 0 and steps[-1] == 1000
    assert np.all(np.diff(steps) > 0)
    assert len(steps) <= 21


def test_full_batch_gd_on_linear_model_matches_closed_form():
    # For f(x) = x @ w, GD on ½·mean((Xw - y)²) is linear: w_{s+1} = w_s - η Xᵀ(Xw_s - y)/(n·k).
    with x64():
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.normal(size=(8, 3)))
        y = jnp.asarray(rng.normal(size=(8, 1)))
        w0 = jnp.zeros((3, 1))
        eta, n_steps = 0.3, 25
        run = training.train_full_batch_gd(lambda w, xx: xx @ w, w0, x, y, eta, [0, 5, n_steps], progress=False)
        w = np.zeros((3, 1))
        for _ in range(n_steps):
            w = w - eta * np.asarray(x).T @ (np.asarray(x) @ w - np.asarray(y)) / y.size
        np.testing.assert_allclose(run.params[-1], w, rtol=1e-10)
        np.testing.assert_allclose(run.times, [0, 5 * eta, n_steps * eta])
        assert run.losses[-1] < run.losses[0]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(learning_rate=0.0, checkpoints=[0, 1]), "learning_rate"),
        (dict(learning_rate=0.1, checkpoints=[3, 1]), "checkpoints"),
        (dict(learning_rate=0.1, checkpoints=[]), "checkpoints"),
    ],
)
def test_full_batch_gd_rejects_bad_input(kwargs, name):
    x, y = jnp.ones((2, 3)), jnp.ones((2, 1))
    with pytest.raises(ValueError, match=name):
        training.train_full_batch_gd(lambda w, xx: xx @ w, jnp.zeros((3, 1)), x, y, **kwargs)


# ------------------------------------------------------------- mini-batch (adversarial) training

from ntknb import models  # noqa: E402


def _toy_data(n=32, k=2, seed=0):
    """Linearly separable 8×8×1 images: class c has a bright square in quadrant c."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % k
    x = 0.1 * rng.random((n, 8, 8, 1)).astype(np.float32)
    for i, c in enumerate(labels):
        x[i, :4, 4 * c:4 * c + 4, 0] += 0.8
    return x, labels.astype(np.int64)


def _small_cnn(k=2):
    return models.CNN(num_classes=k, width=2, hidden=8)


def test_train_config_validation():
    with pytest.raises(ValueError, match="mode"):
        training.TrainConfig(mode="bogus")
    with pytest.raises(ValueError, match="lr_decay_epochs"):
        training.TrainConfig(epochs=3, lr_decay_epochs=(3,))
    with pytest.raises(ValueError, match="clean_epochs"):
        training.TrainConfig(mode="pgd", epochs=2, clean_epochs=3)
    with pytest.raises(ValueError, match="mode must be one of"):  # the cheap schedule is pgd with clean_epochs
        training.TrainConfig(mode="clean_then_pgd", epochs=2, clean_epochs=1)
    cfg = training.TrainConfig(mode="pgd", epochs=4, clean_epochs=2, lr_decay_epochs=(3,))
    assert [cfg.epoch_mode(e) for e in (1, 2, 3, 4)] == ["standard", "standard", "pgd", "pgd"]
    fg = training.TrainConfig(mode="fgsm", epochs=3, clean_epochs=1)  # a clean warm start, any mode
    assert [fg.epoch_mode(e) for e in (1, 2, 3)] == ["standard", "fgsm", "fgsm"]
    assert training.TrainConfig(mode="fgsm", epochs=3).epoch_mode(1) == "fgsm"
    assert cfg.learning_rate_at(3) == pytest.approx(cfg.learning_rate)
    assert cfg.learning_rate_at(4) == pytest.approx(cfg.learning_rate * 0.1)


@pytest.mark.parametrize("mode", ["standard", "fgsm", "pgd", "trades"])
def test_fit_modes_run_and_are_seeded(mode):
    x, y = _toy_data()
    cfg = training.TrainConfig(mode=mode, epochs=2, batch_size=8, learning_rate=0.05, eps=0.05, attack_steps=2,
                               eval_attack_steps=2, clean_epochs=int(mode == "pgd"), augment="crop_flip",
                               crop_padding=1)
    calls = []
    r1 = training.train_model(_small_cnn(), x, y, x, y, cfg, callbacks=[lambda e, p, s: calls.append(e)], progress=False)
    r2 = training.train_model(_small_cnn(), x, y, x, y, cfg, progress=False)
    assert calls == [0, 1, 2]
    assert len(r1.history) == 2 and r1.history[-1].epoch == 2
    assert np.all(np.isfinite(r1.column("train_loss")))
    leaves1, leaves2 = jax.tree_util.tree_leaves(r1.params), jax.tree_util.tree_leaves(r2.params)
    for a, b in zip(leaves1, leaves2):
        np.testing.assert_array_equal(a, b)


def test_training_modes_are_told_apart():
    """Each mode trains on different data (different weights from the same start), and
    PGD-AT with clean epochs is standard training for them, then PGD-AT."""
    x, y = _toy_data(16)
    m = _small_cnn()
    p0, s0 = models.init_model(m, x.shape[1:])
    base = dict(epochs=1, batch_size=16, learning_rate=0.1, eps=0.1, attack_steps=2, eval_attack_steps=1)

    def weights(**cfg):
        r = training.fit(training.flax_apply_fn(m), p0, s0, x, y, x, y, training.TrainConfig(**{**base, **cfg}),
                         progress=False)
        return np.concatenate([np.ravel(a) for a in jax.tree_util.tree_leaves(r.params)]), r

    w = {mode: weights(mode=mode)[0] for mode in ("standard", "fgsm", "pgd", "trades")}
    for a in w:
        for b in w:
            if a < b:
                assert not np.allclose(w[a], w[b]), (a, b)
    w_ctp, r_ctp = weights(mode="pgd", clean_epochs=1)
    np.testing.assert_array_equal(w_ctp, w["standard"])  # its one epoch is clean
    assert [h.mode for h in weights(mode="pgd", clean_epochs=1, epochs=2)[1].history] == ["standard", "pgd"]


def test_standard_training_learns_toy_task():
    x, y = _toy_data(64)
    cfg = training.TrainConfig(epochs=15, batch_size=16, learning_rate=0.05, eps=0.0, eval_attack_steps=1)
    r = training.train_model(_small_cnn(), x, y, x, y, cfg, progress=False)
    assert r.history[-1].clean_acc >= 0.9
    assert r.history[-1].train_loss < r.history[0].train_loss


def test_pgd_training_uses_adversarial_examples():
    # A PGD-AT step differs from a standard step on the same batch (eps > 0) and equals it at eps = 0.
    x, y = _toy_data(16)
    m = _small_cnn()
    p0, s0 = models.init_model(m, x.shape[1:])
    base = dict(epochs=1, batch_size=16, learning_rate=0.1, attack_steps=2, eval_attack_steps=1)
    outs = {}
    for name, mode, eps in [("std", "standard", 0.1), ("pgd", "pgd", 0.1), ("pgd0", "pgd", 0.0)]:
        cfg = training.TrainConfig(mode=mode, eps=eps, **base)
        outs[name] = training.fit(training.flax_apply_fn(m), p0, s0, x, y, x, y, cfg, progress=False).params
    flat = {k: np.concatenate([np.ravel(a) for a in jax.tree_util.tree_leaves(v)]) for k, v in outs.items()}
    assert not np.allclose(flat["std"], flat["pgd"])
    np.testing.assert_allclose(flat["std"], flat["pgd0"], rtol=1e-5, atol=1e-6)


def test_resnet_with_batchnorm_trains_and_updates_stats():
    x, y = _toy_data(16)
    m = models.ResNet(num_classes=2, width=4, stage_sizes=(1, 1))
    cfg = training.TrainConfig(mode="pgd", epochs=1, batch_size=8, eps=0.03, attack_steps=1, eval_attack_steps=1)
    p0, s0 = models.init_model(m, x.shape[1:])
    assert "batch_stats" in s0
    r = training.fit(training.flax_apply_fn(m), p0, s0, x, y, x, y, cfg, progress=False)
    before = jax.tree_util.tree_leaves(s0)
    after = jax.tree_util.tree_leaves(r.state)
    assert any(not np.allclose(a, b) for a, b in zip(before, after))


def test_linearized_apply_fn_matches_at_expansion_point_and_is_linear():
    x, _ = _toy_data(4)
    m = _small_cnn()
    p0, s0 = models.init_model(m, x.shape[1:])
    apply_fn = training.flax_apply_fn(m)
    lin = training.linearized_apply_fn(apply_fn, p0, s0)
    np.testing.assert_allclose(lin(p0, s0, x, False)[0], apply_fn(p0, s0, x, False)[0], rtol=1e-5, atol=1e-6)
    d = jax.tree_util.tree_map(lambda a: 0.01 * jnp.ones_like(a), p0)
    f = lambda c: lin(jax.tree_util.tree_map(lambda a, b: a + c * b, p0, d), s0, x, False)[0]  # noqa: E731
    np.testing.assert_allclose(f(2.0) - f(0.0), 2 * (f(1.0) - f(0.0)), rtol=1e-4, atol=1e-5)


def test_centered_linearization_is_the_linearization_minus_the_initial_output():
    import neural_tangents as nt

    x, _ = _toy_data(4)
    m = _small_cnn()
    p0, s0 = models.init_model(m, x.shape[1:])
    apply_fn = training.flax_apply_fn(m)
    cen = training.linearized_apply_fn(apply_fn, p0, s0, centered=True)
    ref = nt.linearize(lambda p, xx: apply_fn(p, s0, xx, False)[0], p0)  # independent reference
    p1 = jax.tree_util.tree_map(lambda a: a + 0.02 * jnp.sign(a), p0)
    np.testing.assert_allclose(cen(p0, s0, x, False)[0], 0.0, atol=1e-7)
    np.testing.assert_allclose(cen(p1, s0, x, False)[0], ref(p1, x) - apply_fn(p0, s0, x, False)[0],
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="'centered'"):
        training.linearized_apply_fn(apply_fn, p0, s0, centered="yes")


def test_fit_reuses_compiled_steps_across_seeds_and_gives_the_same_numbers():
    x, y = _toy_data(16)
    m = _small_cnn()
    assert training.flax_apply_fn(m) is training.flax_apply_fn(_small_cnn())  # equal modules, one function
    cfg = training.TrainConfig(mode="pgd", epochs=2, batch_size=8, eps=0.05, attack_steps=2, eval_attack_steps=2,
                               seed=1)
    r1 = training.train_model(m, x, y, x, y, cfg, progress=False)
    n = len(training._STEP_CACHE)
    r2 = training.train_model(m, x, y, x, y, cfg.replace(seed=2), progress=False)
    assert len(training._STEP_CACHE) == n  # the second seed compiled no new step
    training._STEP_CACHE.clear()
    r2_fresh = training.train_model(m, x, y, x, y, cfg.replace(seed=2), progress=False)  # compiled anew
    for a, b in zip(jax.tree_util.tree_leaves(r2.params), jax.tree_util.tree_leaves(r2_fresh.params)):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(r1.params),
                                                        jax.tree_util.tree_leaves(r2.params)))


def test_cyclic_schedule_is_the_one_cycle_of_andriushchenko_and_wong():
    cfg = training.TrainConfig(epochs=10, learning_rate=3e-3, lr_schedule="cyclic", lr_peak_fraction=0.4)
    sched = cfg.schedule(100)
    # linear 0 -> peak at 2/5 of the 1000 steps -> 0 at the last step (closed form)
    for step, rate in [(0, 0.0), (200, 1.5e-3), (400, 3e-3), (700, 1.5e-3), (1000, 0.0)]:
        assert float(sched(step)) == pytest.approx(rate, abs=1e-9)
    assert cfg.learning_rate_at(4) == pytest.approx(3e-3 * 3999 / 4000, rel=1e-6)  # last step of epoch 4
    with pytest.raises(ValueError, match="lr_schedule"):
        training.TrainConfig(lr_schedule="cosine")
    with pytest.raises(ValueError, match="lr_decay_epochs"):
        training.TrainConfig(epochs=10, lr_schedule="cyclic", lr_decay_epochs=(5,))
    with pytest.raises(ValueError, match="lr_peak_fraction"):
        training.TrainConfig(lr_schedule="cyclic", lr_peak_fraction=1.0)
    with pytest.raises(ValueError, match="optimizer"):
        training.TrainConfig(optimizer="rmsprop")


def test_adam_step_matches_optax_adam_with_coupled_weight_decay():
    import optax

    cfg = training.TrainConfig(optimizer="adam", learning_rate=1e-2, weight_decay=0.1)
    tx = cfg.optimizer_transform(10)
    p = {"w": jnp.array([1.0, -2.0])}
    g = {"w": jnp.array([0.5, 0.25])}
    upd, _ = tx.update(g, tx.init(p), p)
    ref_tx = optax.adam(1e-2)
    ref, _ = ref_tx.update({"w": g["w"] + 0.1 * p["w"]}, ref_tx.init(p), p)  # L2 added to the gradient
    np.testing.assert_allclose(upd["w"], ref["w"], rtol=1e-6)


def test_cyclic_runs_of_different_lengths_do_not_share_a_compiled_schedule():
    from ntknb import models

    m = models.make_model("tiny_cnn", 3, filters=2)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(16, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    params, state = models.init_model(m, (8, 8, 1), seed=0)
    runs = {}
    for epochs in (2, 4):
        cfg = training.TrainConfig(epochs=epochs, batch_size=8, learning_rate=1e-2, optimizer="adam",
                                   lr_schedule="cyclic", eps=0.0)
        runs[epochs] = training.fit(training.flax_apply_fn(m), params, state, x, y, x, y, cfg, progress=False)
    lr = {e: runs[e].column("learning_rate") for e in runs}
    assert lr[2][0] == pytest.approx(training.TrainConfig(epochs=2, learning_rate=1e-2, lr_schedule="cyclic")
                                     .learning_rate_at(1))
    assert lr[4][1] == pytest.approx(training.TrainConfig(epochs=4, learning_rate=1e-2, lr_schedule="cyclic")
                                     .learning_rate_at(2))
    # a 2-epoch run ends at rate ~0: its last epoch trains less than the 4-epoch run's second epoch
    assert not np.allclose(jax.tree_util.tree_leaves(runs[2].params)[0], jax.tree_util.tree_leaves(runs[4].params)[0])
