"""Tests for ntknb.ntk_dynamics (tiny CNN, few images)."""

import numpy as np
import pytest

import ntknb  # noqa: F401
from ntknb import kernels, metrics, models, training
from ntknb import ntk_dynamics as nd


def _data(n=12, k=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % k
    x = rng.random((n, 6, 6, 1)).astype(np.float32)
    return x, labels.astype(np.int64)


def test_balanced_probe():
    labels = np.array([0, 1, 2] * 10)
    idx = nd.balanced_probe(labels, 4, seed=0)
    assert idx.size == 12
    np.testing.assert_array_equal(labels[idx], np.repeat([0, 1, 2], 4))
    with pytest.raises(ValueError, match="n_per_class"):
        nd.balanced_probe(labels, 11)


def test_tracker_kernel_of_a_batchnorm_model_reuses_one_compiled_function():
    """With state (BatchNorm running averages) the kernel is the Jacobian w.r.t. the params at
    that state — equal to a closure over the state — and a new state does not recompile."""
    import jax

    x, y = _data(n=6)
    m = models.ResNet(num_classes=3, width=2, stage_sizes=(1,))
    params, state = models.init_model(m, x.shape[1:])
    tr = nd.KernelTracker(training.flax_apply_fn(m), x, y, eps=0.05, attack_steps=1, top_p=2)
    states = [state, jax.tree_util.tree_map(lambda a: a + 0.5, state)]
    got = [tr.per_logit_kernel(params, s, x) for s in states]
    compiled = kernels._empirical_fn.cache_info().currsize
    tr.per_logit_kernel(params, jax.tree_util.tree_map(lambda a: a * 2.0, state), x)
    assert kernels._empirical_fn.cache_info().currsize == compiled  # a new state compiles nothing new ...
    assert not np.allclose(got[0], got[1])  # ... though it matters
    for s, g in zip(states, got):
        full = kernels.empirical_ntk(lambda p, xx, s=s: m.apply({"params": p, **s}, xx), params, x,
                                     trace_axes=(), implementation="jacobian_contraction", batch_size=None)
        np.testing.assert_allclose(g, np.diagonal(full, axis1=2, axis2=3), rtol=2e-3, atol=1e-5)


def test_tracker_matches_direct_kernel_and_metrics():
    x, y = _data()
    m = models.CNN(num_classes=3, width=2, hidden=4)
    params, state = models.init_model(m, x.shape[1:])
    apply_fn = training.flax_apply_fn(m)
    tr = nd.KernelTracker(apply_fn, x, y, eps=0.05, attack_steps=2, top_p=3)
    tr(0, params, state)
    traj = tr.trajectory()
    full = kernels.empirical_ntk(lambda p, xx: m.apply({"params": p}, xx), params, x, trace_axes=(),
                                 implementation="jacobian_contraction", batch_size=None)
    traced = np.mean(np.diagonal(full, axis1=2, axis2=3), axis=-1)
    np.testing.assert_allclose(traj.kernels["clean"][0], traced, rtol=2e-3, atol=1e-5)
    assert traj.metrics["clean.frob"][0] == pytest.approx(metrics.frobenius_norm(traced), rel=2e-3)
    assert traj.metrics["clean.ks_cl"][0] == pytest.approx(metrics.kernel_specialization(full, y), rel=2e-3)
    assert traj.kernels["adv"].shape == (1, 12, 12)
    assert set(traj.metrics) >= {"adv.ks_al", "clean.ker", "clean.top_conc", "adv.acc"}
    assert "clean.top_conc_logit" not in traj.metrics


def test_tracker_per_logit_concentration():
    x, y = _data()
    m = models.CNN(num_classes=3, width=2, hidden=4)
    params, state = models.init_model(m, x.shape[1:])
    tr = nd.KernelTracker(training.flax_apply_fn(m), x, y, eps=0.05, attack_steps=1, top_p=3, track_adv=False,
                          logit_top_p=4)
    tr(0, params, state)
    full = kernels.empirical_ntk(lambda p, xx: m.apply({"params": p}, xx), params, x, trace_axes=(),
                                 implementation="jacobian_contraction", batch_size=None)
    lam = np.linalg.eigvalsh(np.asarray(full, np.float64).transpose(0, 2, 1, 3).reshape(36, 36))[::-1]
    want = np.sum(lam[:4] ** 2) / np.sum(lam ** 2)
    assert tr.trajectory().metrics["clean.top_conc_logit"][0] == pytest.approx(want, rel=2e-3)
    with pytest.raises(ValueError, match="logit_top_p"):
        nd.KernelTracker(training.flax_apply_fn(m), x, y, eps=0.05, top_p=3, logit_top_p=0)


def test_train_and_track_trajectory_shapes_and_polar():
    x, y = _data()
    cfg = training.TrainConfig(mode="pgd", epochs=3, batch_size=6, learning_rate=0.1, eps=0.05, attack_steps=1,
                               eval_attack_steps=1)
    res, traj, snaps = nd.train_and_track(models.CNN(3, width=2, hidden=4), x, y, x, y, cfg, x, y, top_p=3,
                                          snapshot_epochs=[1], progress=False)
    assert traj.epochs.tolist() == [0, 1, 2, 3]
    assert traj.distance_matrix().shape == (4, 4)
    r, theta = traj.polar()
    assert r[0] == 0 and r[-1] == pytest.approx(1.0)
    r_top, _ = traj.polar(top=True)
    assert r_top.shape == (4,)
    assert traj.consecutive_distances("adv").shape == (3,)
    assert np.isfinite(traj.lazy_epoch(1.0)) and traj.lazy_epoch(1.0) == 0.0
    assert set(snaps) == {1}
    # linearised continuation from epoch 1
    cont = nd.continue_config(cfg.replace(lr_decay_epochs=(2,)), 1)
    assert cont.epochs == 2 and cont.lr_decay_epochs == (1,)
    p1, s1 = snaps[1]
    lin = nd.train_linearized(res.apply_fn, p1, s1, x, y, x, y, cont, progress=False)
    assert len(lin.history) == 2


def test_tracker_epoch_subset():
    x, y = _data()
    cfg = training.TrainConfig(epochs=2, batch_size=6, eps=0.05, eval_attack_steps=1)
    _, traj, _ = nd.train_and_track(models.CNN(3, width=2, hidden=4), x, y, x, y, cfg, x, y, top_p=3,
                                    track_adv=False, track_epochs=[2], progress=False)
    assert traj.epochs.tolist() == [2] and "adv" not in traj.kernels
    with pytest.raises(ValueError, match="every epoch"):
        traj.lazy_epoch(0.1)


def test_trackers_of_one_network_share_their_compiled_functions():
    x, y = _data()
    apply_fn = training.flax_apply_fn(models.CNN(num_classes=3, width=2, hidden=4))
    a = nd.KernelTracker(apply_fn, x, y, eps=0.05, attack_steps=1, top_p=3)
    b = nd.KernelTracker(apply_fn, x, y, eps=0.05, attack_steps=1, top_p=3, seed=5)
    c = nd.KernelTracker(apply_fn, x, y, eps=0.1, attack_steps=1, top_p=3)
    assert a._kernel_fn is b._kernel_fn and a._attack is b._attack and c._attack is not a._attack
