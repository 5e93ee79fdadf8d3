"""The epoch of :func:`ntknb.training.fit` as one compiled ``lax.scan``: bit-identical to the per-step loop.

The reference below is the loop ``fit`` ran before (one ``jax.jit`` of the step per mini-batch, the batch
gathered outside it), written out from the documented data order and keys, independently of
``_make_epoch``, ``epoch_order`` and ``epoch_keys``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntknb  # noqa: F401  (compat shim before neural_tangents)
from ntknb import adversaries, batchnorm, models, training


def _data(n=16, k=2, side=8, seed=0):
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % k).astype(np.int64)
    x = 0.2 * rng.random((n, side, side, 1)).astype(np.float32)
    for i, c in enumerate(labels):
        x[i, : side // 2, c * side // 2:(c + 1) * side // 2, 0] += 0.7
    return x, labels


def _reference(apply_fn, params, state, x, labels, cfg):
    """The per-step loop: permutation default_rng([seed, epoch]), key fold_in(PRNGKey(seed), step), one jitted
    step per batch. Returns (params, state, opt_state, per-epoch mean losses)."""
    n, bs = x.shape[0], cfg.batch_size
    spe = n // bs
    tx = cfg.optimizer_transform(spe)
    opt_state = tx.init(params)
    key0 = jax.random.PRNGKey(cfg.seed)
    xd, yd = jnp.asarray(x), jnp.asarray(labels)
    steps = {}
    losses = []
    for epoch in range(1, cfg.epochs + 1):
        mode = cfg.epoch_mode(epoch)
        if mode not in steps:
            steps[mode] = jax.jit(training._make_step(apply_fn, tx, cfg, mode))
        order = np.random.default_rng([cfg.seed, epoch]).permutation(n)
        ls = []
        for b in range(spe):
            idx = jnp.asarray(order[b * bs:(b + 1) * bs])
            params, state, opt_state, loss = steps[mode](params, state, opt_state, xd[idx], yd[idx],
                                                         jax.random.fold_in(key0, (epoch - 1) * spe + b))
            ls.append(loss)
        losses.append(float(jnp.mean(jnp.stack(ls))))
    return params, state, opt_state, losses


def _assert_identical(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for u, v in zip(la, lb):
        assert np.array_equal(np.asarray(u), np.asarray(v)), float(np.max(np.abs(np.asarray(u) - np.asarray(v))))


_BASE = dict(epochs=2, batch_size=8, learning_rate=0.1, eps=0.1, attack_steps=2, eval_attack_steps=1, seed=3)

CASES = {
    "standard": ("cnn", dict(mode="standard", augment="crop_flip", crop_padding=1)),
    "fgsm": ("cnn", dict(mode="fgsm", augment="crop_flip_shared", crop_padding=1)),
    "fgsm_rs": ("cnn", dict(mode="fgsm", adversary=adversaries.FGSM(0.1, 0.125, random_start=True))),
    "pgd": ("cnn", dict(mode="pgd", augment="crop", crop_padding=2, lr_decay_epochs=(1,))),
    "trades": ("cnn", dict(mode="trades", optimizer="adam", lr_schedule="cyclic", learning_rate=1e-2)),
    "pgd_clean_start": ("cnn", dict(mode="pgd", clean_epochs=1)),
    "bn_buffer": ("resnet_buffer", dict(mode="pgd")),
    "bn_batch": ("resnet_batch", dict(mode="pgd")),
    "linearised": ("linearised", dict(mode="pgd", weight_decay=0.0)),
}


def _setup(kind):
    if kind == "cnn" or kind == "linearised":
        m = models.CNN(num_classes=2, width=2, hidden=8)
    else:
        m = models.ResNet(num_classes=2, width=2, stage_sizes=(1, 1))
    params, state = models.init_model(m, (8, 8, 1), seed=0)
    if kind == "linearised":
        return training.linearized_apply_fn(training.flax_apply_fn(m), params, state, centered=True), params, state
    if kind.startswith("resnet"):
        return batchnorm.bn_apply_fn(m, kind.split("_")[1]), params, state
    return training.flax_apply_fn(m), params, state


@pytest.mark.parametrize("case", list(CASES))
def test_scan_epoch_is_bit_identical_to_the_per_step_loop(case):
    kind, changes = CASES[case]
    apply_fn, params, state = _setup(kind)
    x, y = _data()
    cfg = training.TrainConfig(**{**_BASE, **changes})
    ref = _reference(apply_fn, params, state, x, y, cfg)
    got = training.fit(apply_fn, params, state, x, y, x, y, cfg, progress=False)
    _assert_identical(ref[0], got.params)
    _assert_identical(ref[1], got.state)
    _assert_identical(ref[2], got.opt_state)
    assert [r.train_loss for r in got.history] == ref[3]
    assert [r.mode for r in got.history] == [cfg.epoch_mode(e) for e in (1, 2)]


def test_callbacks_see_the_weights_of_each_epoch():
    apply_fn, params, state = _setup("cnn")
    x, y = _data()
    cfg = training.TrainConfig(**{**_BASE, "epochs": 3})
    seen = []
    training.fit(apply_fn, params, state, x, y, x, y, cfg, progress=False,
                 callbacks=[lambda e, p, s: seen.append((e, p))])
    assert [e for e, _ in seen] == [0, 1, 2, 3]
    _assert_identical(seen[0][1], params)
    for e in (1, 2):  # the weights after e epochs are those of an e-epoch run
        _assert_identical(seen[e][1], training.fit(apply_fn, params, state, x, y, x, y, cfg.replace(epochs=e),
                                                   progress=False).params)


def test_epoch_order_and_keys_are_the_documented_ones():
    order = training.epoch_order(5, 2, 10, 3)
    assert order.shape == (3, 3) and order.dtype == np.int32
    np.testing.assert_array_equal(order.ravel(), np.random.default_rng([5, 2]).permutation(10)[:9])
    key0 = jax.random.PRNGKey(5)
    keys = training.epoch_keys(key0, 2, 3)
    for b in range(3):
        np.testing.assert_array_equal(keys[b], jax.random.fold_in(key0, 3 + b))


@pytest.mark.parametrize("dims", [("NHWC", "HWIO", "NHWC"), ("NCHW", "OIHW", "NCHW"), ("HWNC", "IOHW", "CNHW")])
def test_canonical_conv_computes_the_same_convolution(dims):
    rng = np.random.default_rng(0)
    lhs = jnp.asarray(rng.normal(size=(2, 7, 6, 3)), jnp.float32)
    rhs = jnp.asarray(rng.normal(size=(3, 2, 3, 4)), jnp.float32)
    ref = jax.lax.conv_general_dilated(lhs, rhs, (2, 1), [(1, 1), (0, 1)], rhs_dilation=(1, 2),
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    perm = {"N": 0, "H": 1, "W": 2, "C": 3}
    kperm = {"H": 0, "W": 1, "I": 2, "O": 3}
    lt = jnp.transpose(lhs, [perm[c] for c in dims[0]])
    rt = jnp.transpose(rhs, [kperm[c] for c in dims[1]])
    dn = jax.lax.conv_dimension_numbers(lt.shape, rt.shape, dims)
    params = dict(window_strides=(2, 1), padding=((1, 1), (0, 1)), lhs_dilation=(1, 1), rhs_dilation=(1, 2),
                  dimension_numbers=dn, feature_group_count=1, batch_group_count=1, precision=None,
                  preferred_element_type=None)
    out = training._canonical_conv(lt, rt, **params)
    want = jnp.transpose(ref, [perm[c] for c in dims[2]])
    assert out.shape == want.shape
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_entry_form_keeps_loops_conditionals_and_calls():
    def f(x, n):
        y = jax.jit(jnp.sin)(x)
        y = jax.nn.relu(y) + jax.checkpoint(jnp.cos)(y)
        y = jax.lax.fori_loop(0, n, lambda i, a: a * 0.5 + i, y)
        return jax.lax.cond(n > 2, lambda a: a + 1.0, lambda a: a - 1.0, y), {"n": n}

    x = jnp.linspace(-2.0, 2.0, 5)
    for n in (1, 3):
        _assert_identical(jax.jit(training._in_entry_form(f))(x, n), jax.jit(f)(x, n))


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA CPU's convolution canonicalisation")
def test_without_the_entry_form_the_scan_is_not_bit_identical(monkeypatch):
    """Why :func:`ntknb.training._in_entry_form` exists: XLA CPU canonicalises (and runs as Eigen convolutions)
    only the convolutions of a program's entry computation, so inside the scan the gradients' convolutions
    take another summation order. (If a later XLA canonicalises loop bodies too, this fails: the rewrite
    is then no longer needed.)"""
    monkeypatch.setattr(training, "_in_entry_form", lambda fn: fn)
    training._STEP_CACHE.clear()
    try:
        apply_fn, params, state = _setup("cnn")
        x, y = _data()
        cfg = training.TrainConfig(**{**_BASE, "mode": "standard", "seed": 11})
        ref = _reference(apply_fn, params, state, x, y, cfg)
        got = training.fit(apply_fn, params, state, x, y, x, y, cfg, progress=False)
        assert any(not np.array_equal(u, v) for u, v in zip(jax.tree_util.tree_leaves(ref[0]),
                                                            jax.tree_util.tree_leaves(got.params)))
    finally:
        training._STEP_CACHE.clear()
