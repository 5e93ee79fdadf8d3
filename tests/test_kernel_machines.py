"""Tests for ntknb.kernel_machines: the kernel machine of an architecture on a task (Eq. 7 of
tsilivis2022ntk, gradient flow or discrete gradient descent), against independent references."""

import ntknb  # noqa: F401  (compat shim before neural_tangents)

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntknb import kernel_machines as KM
from ntknb import kernels as K
from ntknb import lazy as L
from ntknb.architectures import get_architecture

SHAPE = (4, 4, 1)


def _task(n_train=12, n_test=10, seed=0):
    kx, kt, kw = jax.random.split(jax.random.PRNGKey(seed), 3)
    x_tr = jax.random.uniform(kx, (n_train,) + SHAPE, minval=0.2, maxval=0.8)
    x_te = jax.random.uniform(kt, (n_test,) + SHAPE, minval=0.2, maxval=0.8)
    w = jax.random.normal(kw, (int(np.prod(SHAPE)),))
    label = lambda x: jnp.where((x.reshape(x.shape[0], -1) - 0.5) @ w > 0, 1.0, -1.0)[:, None]
    return x_tr, label(x_tr), x_te, label(x_te)


def test_loss_name_for():
    assert KM.loss_name_for(np.ones((3, 1))) == "bce"
    assert KM.loss_name_for(np.ones((3, 10))) == "ce"
    with pytest.raises(ValueError, match="y must have shape"):
        KM.loss_name_for(np.ones(3))


def test_max_stable_learning_rate_is_the_gd_stability_bound():
    x_tr, y_tr, _, _ = _task()
    arch = get_architecture("fc1", width=8)
    ktt = np.asarray(K.kernel_matrix(arch.kernel_fn, x_tr), np.float64)
    n = ktt.shape[0]
    lr = KM.max_stable_learning_rate(ktt, 1)
    lam = np.linalg.eigvalsh(ktt)
    np.testing.assert_allclose(lr, 2 * n / lam[-1], rtol=1e-10)
    # the linearised residual r <- (I - lr Θ / N) r contracts just below the bound, grows above it
    for factor, stable in ((0.99, True), (1.01, False)):
        m = np.eye(n) - factor * lr * ktt / n
        assert (np.max(np.abs(np.linalg.eigvalsh(m))) < 1) == stable


def test_float64_model_equals_direct_gram_and_fit():
    """The one fitting path gives exactly what a direct float64 Gram matrix + KernelPredictor.fit gives."""
    x_tr, y_tr, x_te, _ = _task()
    arch = get_architecture("fc1", width=8)
    m = KM.KernelModel.build(arch, x_tr, y_tr, dtype=np.float64, batch_size=5)
    ktt = K.kernel_matrix(arch.kernel_fn, np.asarray(x_tr), dtype=np.float64, batch_size=5)
    p = K.KernelPredictor.fit(ktt, np.asarray(y_tr), dtype=np.float64)
    assert m.k_train_train.dtype == np.float64
    np.testing.assert_array_equal(m.k_train_train, ktt)
    np.testing.assert_array_equal(m.predictor.eigenvalues, p.eigenvalues)
    np.testing.assert_array_equal(m.test_kernel(x_te),
                                  K.kernel_matrix(arch.kernel_fn, x_te, x_tr, dtype=np.float64, batch_size=5))


def test_discrete_predictor_matches_a_wide_network_trained_with_large_steps():
    """At 0.9 of the stability limit a very wide centred network follows the kernel predictor of
    *discrete* gradient descent (same step, same step count) much better than gradient flow."""
    x_tr, y_tr, x_te, _ = _task()
    arch = get_architecture("fc1", width=16384)
    flow = KM.KernelModel.build(arch, x_tr, y_tr)
    lr = 0.9 * KM.max_stable_learning_rate(flow.k_train_train, 1)
    gd = flow.with_learning_rate(lr)
    net = L.train_network(arch, x_tr, y_tr, lr, [3], seed=0, progress=False)
    g = np.asarray(net.predict_fn(0)(x_te))
    t = float(net.times[0])
    gap = lambda m: np.linalg.norm(g - np.asarray(m.predict_fn(t)(x_te))) / np.linalg.norm(g)
    assert gap(gd) < 0.05 < gap(flow)
    np.testing.assert_allclose(gd.train_loss(t), net.run.losses[0], rtol=0.05)
    assert flow.with_learning_rate(None).learning_rate is None
    with pytest.raises(ValueError, match="learning_rate"):
        flow.with_learning_rate(-1.0)
    with pytest.raises(ValueError, match="whole number of steps"):
        gd.weights(0.5 * lr)
