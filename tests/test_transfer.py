"""Tests for ntknb.transfer (network vs NTK predictor, the transfer of kernel attacks), with the
networks of ntknb.lazy.train_network and the kernel machines of ntknb.kernel_machines."""

import ntknb  # noqa: F401  (must precede neural_tangents; installs the compat shim)

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntknb import attacks as A
from ntknb import kernels as K
from ntknb import kernel_machines as KM
from ntknb import lazy as L
from ntknb import transfer as T
from ntknb.architectures import get_architecture

SHAPE = (4, 4, 1)


def _task(n_train=12, n_test=10, k=1, seed=0):
    """Tiny synthetic task: uniform images, labels from the sign of a fixed linear rule."""
    key = jax.random.PRNGKey(seed)
    kx, kt, kw = jax.random.split(key, 3)
    x_tr = jax.random.uniform(kx, (n_train,) + SHAPE, minval=0.2, maxval=0.8)
    x_te = jax.random.uniform(kt, (n_test,) + SHAPE, minval=0.2, maxval=0.8)
    w = jax.random.normal(kw, (int(np.prod(SHAPE)), max(k, 2)))

    def labels(x):
        s = (x.reshape(x.shape[0], -1) - 0.5) @ w
        if k == 1:
            c = (s[:, 0] > s[:, 1]).astype(jnp.float32)
            return (2.0 * c - 1.0)[:, None]
        return jax.nn.one_hot(jnp.argmax(s, axis=1), k) - 1.0 / k

    return x_tr, labels(x_tr), x_te, labels(x_te)


def _setup(width=256, k=1, steps=(5, 40), seed=0, centre=True, lr_fraction=0.5):
    x_tr, y_tr, x_te, y_te = _task(k=k)
    arch = get_architecture("fc1", width=width, out_dim=k)
    kern = KM.KernelModel.build(arch, x_tr, y_tr)
    lr = lr_fraction * KM.max_stable_learning_rate(kern.k_train_train, k)
    net = L.train_network(arch, x_tr, y_tr, lr, list(steps), seed=seed, centre=centre, progress=False)
    return net, kern, x_te, y_te


# ------------------------------------------------------------------------ helpers


def test_cosine_similarity_values():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [2.0, 0.0]])
    b = np.array([[3.0, 0.0], [-1.0, -1.0], [1.0, 0.0], [0.0, 5.0]])
    c = T.cosine_similarity(a, b)
    np.testing.assert_allclose(c[[0, 1, 3]], [1.0, -1.0, 0.0], atol=1e-12)
    assert np.isnan(c[2])
    # image-shaped inputs are flattened per example
    x = np.random.default_rng(0).normal(size=(3,) + SHAPE)
    np.testing.assert_allclose(T.cosine_similarity(x, 2 * x), 1.0, atol=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        T.cosine_similarity(a, b[:, :1])


# -------------------------------------------------------------- network vs kernel


def test_centred_network_starts_at_zero_and_matches_kernel_time_zero():
    net, kern, x_te, y_te = _setup(steps=(0, 5))
    np.testing.assert_allclose(net.predict_fn(0)(x_te), 0.0, atol=1e-6)
    np.testing.assert_allclose(net.run.losses[0], kern.train_loss(0.0), rtol=1e-5)


@pytest.mark.slow
def test_centred_output_tracks_kernel_predictor_as_width_grows():
    """‖g_t − f_t‖ / ‖f_t‖ on test points shrinks with width (lazy regime, Eq. 7)."""
    dist = {}
    for width in (32, 512, 8192):
        d = []
        for seed in (0, 1):
            net, kern, x_te, y_te = _setup(width=width, steps=(40,), seed=seed)
            g = np.asarray(net.predict_fn(0)(x_te))
            f = np.asarray(kern.predict_fn(net.times[0])(x_te))
            d.append(np.linalg.norm(g - f) / np.linalg.norm(f))
        dist[width] = float(np.mean(d))
    assert dist[8192] < dist[512] < dist[32]
    assert dist[8192] < 0.1


def test_loss_gradients_align_better_when_wider():
    cos = {}
    for width in (32, 8192):
        net, kern, x_te, y_te = _setup(width=width, steps=(40,))
        cos[width] = np.nanmean(T.cosine_similarity(net.loss_gradients(0, x_te, y_te),
                                                    kern.loss_gradients(net.times[0], x_te, y_te)))
    assert cos[8192] > cos[32]
    assert cos[8192] > 0.8


# --------------------------------------------------------------- kernel attack


@pytest.mark.parametrize("k", [1, 3], ids=["binary", "multiclass"])
@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_kernel_attack_raises_kernel_loss(k, attack):
    x_tr, y_tr, x_te, y_te = _task(k=k)
    kern = KM.KernelModel.build(get_architecture("fc1", out_dim=k), x_tr, y_tr)
    t = 50.0
    f_t = kern.predict_fn(t)
    loss_fn = A.LOSSES[T.loss_name_for(y_te)]
    before = float(jnp.mean(loss_fn(f_t(x_te), y_te)))
    x_adv = T.kernel_attack(kern, t, x_te, y_te, 0.05, attack, pgd_steps=5, predict_fn=f_t)
    after = float(jnp.mean(loss_fn(f_t(x_adv), y_te)))
    assert after > before
    assert float(jnp.max(jnp.abs(x_adv - x_te))) <= 0.05 + 1e-6


def test_kernel_fgsm_is_eq8_for_binary_labels():
    """x̃ − x = −y·eps·sign(∇ₓ f_t(x)) (Tsilivis & Kempe Eq. 8)."""
    x_tr, y_tr, x_te, y_te = _task(k=1)
    kern = KM.KernelModel.build(get_architecture("fc1"), x_tr, y_tr)
    t, eps = 30.0, 0.03
    grad_f = K.predictor_input_gradients(kern.kernel_fn, kern.x_train, kern.weights(t), x_te)
    expected = -jnp.reshape(y_te, (-1, 1, 1, 1)) * eps * jnp.sign(grad_f)
    assert float(jnp.min(jnp.abs(grad_f))) > 0  # the sign is well defined everywhere
    delta = T.kernel_attack(kern, t, x_te, y_te, eps, "fgsm", clip=None) - x_te
    np.testing.assert_allclose(delta, expected, atol=1e-6)
    # x in [0.2, 0.8] and eps small: the [0, 1] clip is inactive, same result
    np.testing.assert_allclose(T.kernel_attack(kern, t, x_te, y_te, eps, "fgsm") - x_te, expected, atol=1e-6)


# -------------------------------------------------------------------- curves


@pytest.mark.slow
def test_evaluate_transfer_shapes_ranges_and_keys():
    net, kern, x_te, y_te = _setup(k=3, steps=(2, 40))
    eps = [0.01, 0.05]
    c = T.evaluate_transfer(net, kern, x_te, y_te, eps, pgd_eps=[0.05], pgd_steps=3, progress=False)
    n_c, m = 2, x_te.shape[0]
    np.testing.assert_allclose(c.times, net.times)
    for arr in (c.clean_acc_net, c.clean_acc_kernel, c.agreement, c.train_loss_net, c.train_loss_kernel,
                c.output_rel_distance, c.relative_weight_change, c.cos_sim_mean):
        assert arr.shape == (n_c,)
    assert c.cos_sim.shape == (n_c, m)
    assert np.all((c.cos_sim >= -1 - 1e-9) & (c.cos_sim <= 1 + 1e-9))
    assert set(c.robust_acc) == {(mo, so, at) for at in ("fgsm", "pgd")
                                 for mo, so in (("net", "net"), ("net", "kernel"), ("kernel", "kernel"))}
    for key, acc in c.robust_acc.items():
        assert acc.shape == (n_c, 2)
        if key[2] == "pgd":
            assert np.all(np.isnan(acc[:, 0])) and not np.any(np.isnan(acc[:, 1]))
        else:
            assert not np.any(np.isnan(acc))
    assert np.all((c.robust("net", "net", "fgsm") >= 0) & (c.robust("net", "net", "fgsm") <= 1))
    # GD on the centred network and the kernel flow reduce the training loss alike
    assert np.all(np.diff(c.train_loss_net) < 0) and np.all(np.diff(c.train_loss_kernel) < 0)
    final = c.final(0.05, "pgd")
    assert {"clean_acc_net", "clean_acc_kernel", "cos_sim_mean", "robust_acc_net_by_net",
            "robust_acc_net_by_kernel", "robust_acc_kernel_by_kernel"} <= set(final)
    with pytest.raises(ValueError, match="eps must be one of"):
        c.final(0.3)


def test_evaluate_transfer_rejects_bad_input():
    net, kern, x_te, y_te = _setup(steps=(5,))
    with pytest.raises(ValueError, match="eps"):
        T.evaluate_transfer(net, kern, x_te, y_te, [-0.1], progress=False)
    with pytest.raises(ValueError, match="pgd_eps"):
        T.evaluate_transfer(net, kern, x_te, y_te, [0.1], pgd_eps=[0.2], progress=False)
    with pytest.raises(ValueError, match="attacks"):
        T.evaluate_transfer(net, kern, x_te, y_te, [0.1], attacks=["cw"], progress=False)
    with pytest.raises(ValueError, match="columns"):
        T.evaluate_transfer(net, kern, x_te, jnp.ones((x_te.shape[0], 3)), [0.1], progress=False)
    with pytest.raises(ValueError, match="attack"):
        T.kernel_attack(kern, 1.0, x_te, y_te, 0.1, "deepfool")
    with pytest.raises(ValueError, match="out_dim"):
        L.train_network(get_architecture("fc1", out_dim=2), kern.x_train, kern.y_train, 0.1, [1], progress=False)
    with pytest.raises(ValueError, match="seed"):
        L.train_network(net.arch, kern.x_train, kern.y_train, 0.1, [1], seed=-1, progress=False)


@pytest.mark.slow
def test_width_sweep_reuses_pretrained_and_cross_architecture():
    net, kern, x_te, y_te = _setup(width=64, steps=(5, 20))
    lr = net.learning_rate
    factory = lambda w: get_architecture("fc1", width=w)
    rows = T.width_sweep(factory, [16, 64], kern, x_te, y_te, lr, 20, [0.05], attacks=["fgsm"],
                         pretrained={64: net}, progress=False)
    assert [r.info["width"] for r in rows] == [16, 64]
    direct = T.evaluate_transfer(net, kern, x_te, y_te, [0.05], attacks=["fgsm"], checkpoints=[1], progress=False)
    np.testing.assert_allclose(rows[1].cos_sim, direct.cos_sim)
    with pytest.raises(ValueError, match="checkpoint at step"):
        T.width_sweep(factory, [64], kern, x_te, y_te, lr, 7, [0.05], pretrained={64: net}, progress=False)

    other = KM.KernelModel.build(get_architecture("conv1", channels=8), kern.x_train, kern.y_train)
    res = T.cross_architecture({"fc1": net}, {"fc1": kern, "conv1": other}, x_te, y_te, eps=0.05,
                               checkpoints={"fc1": 1})
    assert res["t"]["fc1"] == pytest.approx(net.times[1])
    assert set(res["transfer"]["fc1"]) == {"fc1", "conv1"}
    assert res["transfer"]["fc1"]["fc1"] == pytest.approx(direct.robust("net", "kernel", "fgsm")[0, 0])
    assert res["white_box"]["fc1"] == pytest.approx(direct.robust("net", "net", "fgsm")[0, 0])
    with pytest.raises(ValueError, match="attack"):
        T.cross_architecture({"fc1": net}, {"fc1": kern}, x_te, y_te, eps=0.05, attack="cw")
