"""Tests for ntknb.features: eigen-features (Tsilivis & Kempe 2022, Eq. 9), the batched
usefulness / robustness sweep against the naive per-feature autodiff loop, Eq. (10)."""

import ntknb  # noqa: F401  (compat shim before neural_tangents)

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntknb import architectures, attacks, features, kernels

N, M, SHAPE = 20, 6, (4, 4, 2)


def _setup(k=1, arch="fc2", seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(N,) + SHAPE).astype(np.float32)
    xt = rng.uniform(size=(M,) + SHAPE).astype(np.float32)
    if k == 1:
        y = np.where(np.arange(N) % 2 == 0, 1.0, -1.0)[:, None]
        yt = np.where(rng.uniform(size=M) > 0.5, 1.0, -1.0)[:, None]
    else:
        y = np.eye(k)[np.arange(N) % k] - 1.0 / k
        yt = np.eye(k)[rng.integers(0, k, M)] - 1.0 / k
    a = architectures.get_architecture(arch)
    K = kernels.kernel_matrix(a.kernel_fn, x, dtype=np.float64)
    pred = kernels.KernelPredictor.fit(K, y, dtype=np.float64)
    return a.kernel_fn, x, xt, y, yt, pred


def test_features_sum_to_infinite_time_predictor():
    kfn, x, xt, y, yt, pred = _setup()
    kt = kernels.kernel_matrix(kfn, xt, x, dtype=np.float64)
    assert features.feature_sum_error(pred, kt) < 1e-9
    # feature_components rebuilds the same features
    V, C, lam = features.feature_components(pred)
    np.testing.assert_allclose((kt @ V) @ C, np.asarray(pred.predict(kt)), atol=1e-9)
    assert np.all(np.diff(lam) <= 0)


@pytest.mark.parametrize("k,arch", [(1, "fc2"), (1, "conv1"), (3, "fc1")],
                         ids=["binary-fc2", "binary-conv1", "3class-fc1"])
def test_fast_sweep_equals_naive_autodiff(k, arch):
    kfn, x, xt, y, yt, pred = _setup(k, arch)
    kw = dict(eps=0.05, indices=range(8), dtype=np.float64)
    fast = features.feature_sweep(kfn, x, pred, xt, yt, test_batch_size=4, feature_batch_size=3,
                                  **kw)  # padding of both test points and features exercised
    naive = features.naive_feature_sweep(kfn, x, pred, xt, yt, **kw)
    np.testing.assert_array_equal(fast.clean_accuracy, naive.clean_accuracy)
    np.testing.assert_array_equal(fast.robust_accuracy, naive.robust_accuracy)
    for b in (3, None):  # batched autodiff passes (the honest competitor) give the same sweep
        batched = features.naive_feature_sweep(kfn, x, pred, xt, yt, points_per_pass=b, **kw)
        np.testing.assert_array_equal(batched.robust_accuracy, naive.robust_accuracy)
    with pytest.raises(ValueError, match="points_per_pass"):
        features.naive_feature_sweep(kfn, x, pred, xt, yt, points_per_pass=0, **kw)
    assert fast.loss == ("bce" if k == 1 else "ce")
    # the attack did something, and never helps
    assert np.all(fast.robust_accuracy <= fast.clean_accuracy + 1e-12) or k > 1
    assert fast.robust_accuracy.sum() < fast.clean_accuracy.sum()


@pytest.mark.parametrize("k,arch", [(1, "fc2"), (3, "conv2-gap")], ids=["binary-fc2", "3class-conv2-gap"])
def test_sweep_chunked_over_training_set_is_exact(k, arch):
    """Chunking X (7 does not divide N = 20: the padded last chunk is exercised) changes
    nothing but the order of the sums."""
    kfn, x, xt, y, yt, pred = _setup(k, arch)
    kw = dict(eps=0.05, indices=range(8), dtype=np.float64, test_batch_size=4, feature_batch_size=3)
    whole = features.feature_sweep(kfn, x, pred, xt, yt, **kw)
    chunked = features.feature_sweep(kfn, x, pred, xt, yt, train_batch_size=7, **kw)
    np.testing.assert_array_equal(chunked.clean_accuracy, whole.clean_accuracy)
    np.testing.assert_array_equal(chunked.robust_accuracy, whole.robust_accuracy)
    assert chunked.robust_accuracy.sum() < chunked.clean_accuracy.sum()


@pytest.mark.parametrize("k", [1, 3])
def test_naive_fgsm_is_the_package_fgsm(k):
    """The naive loop's FGSM points equal ntknb.attacks.fgsm on the feature itself."""
    kfn, x, xt, y, yt, pred = _setup(k, "fc1")
    V, C, _ = features.feature_components(pred, [0, 4])
    _, adv = features.naive_feature_sweep(kfn, x, pred, xt, yt, 0.05, indices=[0, 4],
                                          return_adversarial=True)
    for j in range(2):
        w = jnp.asarray(np.outer(V[:, j], C[j]), jnp.float32)
        xtr = jnp.asarray(x)
        f = lambda z, w=w: kfn(z, xtr, "ntk") @ w  # noqa: E731
        ref = attacks.fgsm(attacks.predictor_loss(f, "bce" if k == 1 else "ce"), xt, yt, 0.05)
        np.testing.assert_allclose(adv[j], np.asarray(ref), atol=1e-6)


def test_float32_sweep_matches_float64_on_tiny_case():
    kfn, x, xt, y, yt, pred = _setup()
    a = features.feature_sweep(kfn, x, pred, xt, yt, 0.05, indices=range(8))
    b = features.feature_sweep(kfn, x, pred, xt, yt, 0.05, indices=range(8), dtype=np.float64)
    np.testing.assert_array_equal(a.clean_accuracy, b.clean_accuracy)


def test_feature_input_gradients_match_autodiff():
    kfn, x, xt, y, yt, pred = _setup()
    g = features.feature_input_gradients(kfn, x, pred, xt[:2], indices=[0, 3])
    V, C, _ = features.feature_components(pred, [0, 3])
    for j in range(2):
        w = jnp.asarray(V[:, j] * C[j, 0], jnp.float32)
        ref = jax.grad(lambda z: jnp.sum(kfn(z, jnp.asarray(x), "ntk") @ w))(jnp.asarray(xt[:2]))
        np.testing.assert_allclose(g[j], ref, rtol=1e-4, atol=1e-6)
    chunked = features.feature_input_gradients(kfn, x, pred, xt[:2], indices=[0, 3], train_batch_size=7)
    np.testing.assert_allclose(chunked, g, rtol=1e-5, atol=1e-7)


def test_eq10_gradient_decomposition():
    kfn, x, xt, y, yt, pred = _setup()
    d = features.loss_gradient_decomposition(kfn, x, pred, xt[:3], yt[:3])
    assert d["alpha"].shape == (N, 3)
    assert d["relative_error"] < 1e-4


def test_training_time_weights_and_helpers():
    w = features.training_time_weights([4.0, 1.0], [0.0, 10.0, np.inf], normalization=10.0)
    np.testing.assert_allclose(w, [[0, 0], [1 - np.exp(-4), 1 - np.exp(-1)], [1, 1]])
    smooth = np.tile(np.linspace(0, 1, 8)[None, :, None, None], (1, 1, 8, 1))
    noise = np.random.default_rng(0).normal(size=(1, 8, 8, 1))
    assert features.gradient_coherence(smooth)[0] > 0.4 > abs(features.gradient_coherence(noise)[0])


@pytest.mark.parametrize(
    "kwargs,param",
    [
        (dict(eps=-0.1), "eps"),
        (dict(indices=[0, 99]), "indices"),
        (dict(indices=[]), "indices"),
        (dict(loss="hinge"), "loss"),
        (dict(loss="ce"), "loss"),
        (dict(test_batch_size=0), "test_batch_size"),
        (dict(feature_batch_size=-1), "feature_batch_size"),
        (dict(train_batch_size=0), "train_batch_size"),
        (dict(clip=(1.0, 0.0)), "clip"),
        (dict(kind="cntk"), "kind"),
    ],
)
def test_bad_input_names_the_parameter(kwargs, param):
    kfn, x, xt, y, yt, pred = _setup()
    args = dict(eps=0.05, indices=range(3))
    args.update(kwargs)
    with pytest.raises(ValueError, match=param):
        features.feature_sweep(kfn, x, pred, xt, yt, **args)


def test_bad_shapes_and_predictor():
    kfn, x, xt, y, yt, pred = _setup()
    with pytest.raises(ValueError, match="y_test"):
        features.feature_sweep(kfn, x, pred, xt, yt[:-1], 0.05, indices=range(3))
    with pytest.raises(ValueError, match="predictor"):
        features.feature_sweep(kfn, x, "not a predictor", xt, yt, 0.05, indices=range(3))
    with pytest.raises(ValueError, match="x_train"):
        features.feature_sweep(kfn, x[:-1], pred, xt, yt, 0.05, indices=range(3))
