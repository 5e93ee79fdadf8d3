"""BatchNorm evaluation modes ("w buffer" / "w/o buffer") of ntknb.batchnorm."""

import ntknb  # noqa: F401

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntknb import batchnorm, kernels, models, training
from ntknb.ntk_dynamics import KernelTracker


class _OneBN(nn.Module):
    """Dense(3) -> BatchNorm -> Dense(2): one BatchNorm layer on (n, 1, 1, 4) inputs."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        h = nn.Dense(3)(x.reshape((x.shape[0], -1)))
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(h)
        return nn.Dense(2)(h)


def _tiny_resnet():
    model = models.make_model("resnet", 3, width=2, stage_sizes=(1,))
    params, state = models.init_model(model, (6, 6, 1), seed=0)
    x = jax.random.uniform(jax.random.PRNGKey(1), (8, 6, 6, 1))
    # a few training-mode passes so that the running averages are not the initial 0 / 1
    apply = training.flax_apply_fn(model)
    for i in range(3):
        _, state = apply(params, state, x + 0.1 * i, True)
    return model, params, state, x


def test_modes_identical_in_training_mode():
    model, params, state, x = _tiny_resnet()
    out_w, st_w = batchnorm.bn_apply_fn(model, "buffer")(params, state, x, True)
    out_wo, st_wo = batchnorm.bn_apply_fn(model, "batch")(params, state, x, True)
    np.testing.assert_array_equal(np.asarray(out_w), np.asarray(out_wo))
    for a, b in zip(jax.tree_util.tree_leaves(st_w), jax.tree_util.tree_leaves(st_wo)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_evaluation_running_vs_batch_statistics():
    model, params, state, x = _tiny_resnet()
    variables = {"params": params, **state}
    out_w, st_w = batchnorm.bn_apply_fn(model, "buffer")(params, state, x, False)
    out_wo, st_wo = batchnorm.bn_apply_fn(model, "batch")(params, state, x, False)
    # "w buffer" = flax eval mode (running averages), per example
    np.testing.assert_allclose(out_w, model.apply(variables, x, train=False), rtol=1e-6)
    np.testing.assert_allclose(out_w[:3], batchnorm.bn_apply_fn(model, "buffer")(params, state, x[:3], False)[0],
                               rtol=1e-5, atol=1e-6)
    # "w/o buffer" = batch statistics, running averages left untouched
    np.testing.assert_allclose(out_wo, model.apply(variables, x, train=True, mutable=["batch_stats"])[0], rtol=1e-6)
    assert st_wo is state and st_w is state
    assert not np.allclose(out_w, out_wo, atol=1e-3)
    # batch statistics couple the examples: the same images in a smaller batch give other logits
    sub = batchnorm.bn_apply_fn(model, "batch")(params, state, x[:3], False)[0]
    assert not np.allclose(sub, out_wo[:3], atol=1e-4)


def test_one_layer_formula_and_agreement_when_running_equals_batch():
    model = _OneBN()
    x = jax.random.uniform(jax.random.PRNGKey(0), (16, 1, 1, 4))
    params, state = models.init_model(model, (1, 1, 4), seed=0)
    state = {"batch_stats": {"BatchNorm_0": {"mean": jnp.array([0.3, -0.2, 1.0]),
                                              "var": jnp.array([2.0, 0.5, 1.5])}}}
    h = x.reshape(16, -1) @ params["Dense_0"]["kernel"] + params["Dense_0"]["bias"]
    bn = params["BatchNorm_0"]

    def by_hand(mu, var):
        z = (h - mu) / jnp.sqrt(var + 1e-5) * bn["scale"] + bn["bias"]
        return z @ params["Dense_1"]["kernel"] + params["Dense_1"]["bias"]

    rs = state["batch_stats"]["BatchNorm_0"]
    out_w = batchnorm.bn_apply_fn(model, "buffer")(params, state, x, False)[0]
    out_wo = batchnorm.bn_apply_fn(model, "batch")(params, state, x, False)[0]
    np.testing.assert_allclose(out_w, by_hand(rs["mean"], rs["var"]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out_wo, by_hand(h.mean(0), h.var(0)), rtol=1e-5, atol=1e-5)
    # running averages equal to this batch's statistics: both modes agree, and the gap is 0
    matched = {"batch_stats": {"BatchNorm_0": {"mean": h.mean(0), "var": h.var(0)}}}
    np.testing.assert_allclose(batchnorm.bn_apply_fn(model, "buffer")(params, matched, x, False)[0], out_wo,
                               rtol=1e-5, atol=1e-5)
    gap0 = batchnorm.bn_statistics_gap(model, params, matched, x, batch_size=16)
    assert gap0.names == ["BatchNorm_0"]
    np.testing.assert_allclose([gap0.mean_shift[0], gap0.log_std_ratio[0], gap0.norm_gap[0]], 0, atol=1e-4)
    gap = batchnorm.bn_statistics_gap(model, params, state, x, batch_size=16)
    sd_r = np.sqrt(np.asarray(rs["var"]) + 1e-5)
    expected_shift = np.sqrt(np.mean(((np.asarray(h.mean(0)) - np.asarray(rs["mean"])) / sd_r) ** 2))
    np.testing.assert_allclose(gap.mean_shift[0], expected_shift, rtol=1e-4)
    assert gap.norm_gap[0] > 0.01


def test_statistics_gap_per_layer_of_resnet():
    model, params, state, x = _tiny_resnet()
    gap = batchnorm.bn_statistics_gap(model, params, state, x, batch_size=4)
    n_bn = sum(1 for p, _ in jax.tree_util.tree_flatten_with_path(state["batch_stats"])[0]
               if p[-1].key == "mean")
    assert len(gap.names) == n_bn == gap.norm_gap.shape[0]
    assert np.all(np.isfinite(gap.norm_gap)) and np.all(gap.norm_gap > 0)
    with pytest.raises(ValueError, match="multiple of batch_size"):
        batchnorm.bn_statistics_gap(model, params, state, x, batch_size=3)


def test_bad_mode_raises():
    model, *_ = _tiny_resnet()
    with pytest.raises(ValueError, match="mode must be one of"):
        batchnorm.bn_apply_fn(model, "running")
    with pytest.raises(ValueError, match="multiple of batch_size"):
        batchnorm.ModeEvaluator(model, {"t": (np.zeros((5, 6, 6, 1)), np.zeros(5, int))}, 0.1, 1, batch_size=2)


def test_mode_evaluator_matches_make_evaluator():
    model, params, state, x = _tiny_resnet()
    labels = np.arange(8) % 3
    res = batchnorm.evaluate_modes(model, params, state, x, labels, eps=0.05, steps=2, batch_size=4)
    key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(0), 0), 0)
    for mode in batchnorm.BN_MODES:
        ev = training.make_evaluator(batchnorm.bn_apply_fn(model, mode), 0.05, 2, 4)
        assert res[mode] == ev(params, state, x, labels, key)


def test_kernel_tracker_modes():
    model, params, state, x = _tiny_resnet()
    labels = np.arange(8) % 3
    # "w buffer": the usual per-example empirical NTK, as the parent tracker computes it
    tr = batchnorm.BNKernelTracker(model, "buffer", x, labels, eps=0.05, attack_steps=2, top_p=2)
    ref = KernelTracker(training.flax_apply_fn(model), x, labels, eps=0.05, attack_steps=2, top_p=2)
    np.testing.assert_allclose(tr.per_logit_kernel(params, state, x), ref.per_logit_kernel(params, state, x),
                               rtol=1e-4, atol=1e-6)
    # "w/o buffer": J J^T of the whole-batch map theta -> f_theta(X) with batch statistics
    tb = batchnorm.BNKernelTracker(model, "batch", x, labels, eps=0.05, attack_steps=2, top_p=2)
    f = lambda p: batchnorm.bn_apply_fn(model, "batch")(p, state, x, False)[0]  # noqa: E731
    jac = jax.jacobian(f)(params)
    J = np.concatenate([np.asarray(j).reshape(8, 3, -1) for j in jax.tree_util.tree_leaves(jac)], axis=-1)
    manual = np.einsum("aip,bip->abi", J, J)
    np.testing.assert_allclose(tb.per_logit_kernel(params, state, x), manual, rtol=1e-3, atol=1e-5)
    tb(0, params, state)
    M = tb.ks_matrices[0]
    assert set(M) == {"clean.CL", "adv.CL", "adv.AL"}
    assert M["clean.CL"].shape == (3, 3)
    assert "adv.ks_al" in tb.trajectory().metrics


def test_adversarial_examples_in_ball_and_mode_specific():
    model, params, state, x = _tiny_resnet()
    labels = np.arange(8) % 3
    xa_w = batchnorm.adversarial_examples(model, "buffer", params, state, x, labels, eps=0.05, steps=2, batch_size=4)
    xa_wo = batchnorm.adversarial_examples(model, "batch", params, state, x, labels, eps=0.05, steps=2, batch_size=4)
    for xa in (xa_w, xa_wo):
        assert xa.shape == x.shape
        assert np.max(np.abs(xa - np.asarray(x))) <= 0.05 + 1e-6
        assert xa.min() >= 0.0 and xa.max() <= 1.0
    assert not np.allclose(xa_w, xa_wo)


def test_apply_and_predict_functions_are_one_object_per_model():
    model, params, state, x = _tiny_resnet()
    same = models.make_model("resnet", 3, width=2, stage_sizes=(1,))
    for mode in batchnorm.BN_MODES:
        assert batchnorm.bn_apply_fn(model, mode) is batchnorm.bn_apply_fn(same, mode)
        assert batchnorm.mode_predict(model, mode) is batchnorm.mode_predict(same, mode)
        np.testing.assert_allclose(batchnorm.mode_predict(model, mode)((params, state), x),
                                   batchnorm.bn_apply_fn(model, mode)(params, state, x, False)[0], rtol=1e-6)


def test_batch_predictions_use_each_batch_on_its_own():
    model, params, state, x = _tiny_resnet()
    got = batchnorm.batch_predictions(model, "batch", params, state, x, 4)
    apply = batchnorm.bn_apply_fn(model, "batch")
    ref = np.concatenate([np.argmax(apply(params, state, x[i:i + 4], False)[0], -1) for i in (0, 4)])
    np.testing.assert_array_equal(got, ref)
    with pytest.raises(ValueError, match="multiple of batch_size"):
        batchnorm.batch_predictions(model, "batch", params, state, x, 3)


def test_batch_mode_evaluation_runs_the_suite_on_exact_batches():
    from ntknb import evaluation

    model, params, state, x = _tiny_resnet()
    x = np.asarray(x)
    pred = batchnorm.batch_predictions(model, "batch", params, state, x, 4)
    labels = pred.copy()
    labels[[1, 6]] = (labels[[1, 6]] + 1) % 3  # two clean errors, one per batch
    # eps = 0: robust = clean correctness, in the exact batches
    rep0 = batchnorm.batch_mode_evaluation(model, params, state, x, labels, 0.0, 4, n_iter=2)
    np.testing.assert_array_equal(rep0.robust, pred == labels)
    assert rep0.clean_accuracy == rep0.robust_accuracy == 0.75 and list(rep0.broken_by[[1, 6]]) == ["clean"] * 2
    # eps > 0: the same as robust_evaluation called batch by batch with the documented seeds
    rep = batchnorm.batch_mode_evaluation(model, params, state, x, labels, 0.1, 4, seed=3, n_iter=3)
    refs = [evaluation.robust_evaluation(batchnorm.mode_predict(model, "batch"), x[i:i + 4], labels[i:i + 4], 0.1,
                                         seed=batchnorm._batch_seed(3, i // 4), n_iter=3, skip_broken=False,
                                         batch_size=4, params=(params, state)) for i in (0, 4)]
    np.testing.assert_array_equal(rep.robust, np.concatenate([r.robust for r in refs]))
    np.testing.assert_allclose(rep.x_adv, np.concatenate([r.x_adv for r in refs]))
    assert rep.n == 8 and rep.settings["batch_size"] == 4 and rep.settings["bn_mode"] == "batch"
    assert np.max(np.abs(rep.x_adv - x)) <= 0.1 + 1e-6 and rep.robust_accuracy <= rep.clean_accuracy
    with pytest.raises(ValueError, match="multiple of batch_size"):
        batchnorm.batch_mode_evaluation(model, params, state, x, labels, 0.1, 3)
    with pytest.raises(ValueError, match="sets"):
        batchnorm.batch_mode_evaluation(model, params, state, x, labels, 0.1, 4, skip_broken=True)
