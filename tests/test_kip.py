"""Tests for ntknb.kip against independent references: neural-tangents' own infinite-time
predictor (nt.predict.gradient_descent_mse_ensemble) and an explicit NumPy solve for the KIP
loss, float64 central finite differences for its gradient, ntknb.attacks.pgd for the inner
maximisation of Adversarial KIP, and plain counting for the class-balanced batches."""

import numpy as np
import pytest

import ntknb  # noqa: F401

import jax
import jax.numpy as jnp
import neural_tangents as nt

from ntknb._compat import x64
from ntknb import architectures, attacks, kernels, kip

K = 3  # classes of the toy problems


@pytest.fixture(scope="module")
def net():
    return architectures.fully_connected(depth=1, width=8, out_dim=K)


def toy(seed=0, s=5, b=12, d=7):
    """Support / target points in [0, 1]^d with centred one-hot labels."""
    rng = np.random.default_rng(seed)
    xs, xt = rng.random((s, d)), rng.random((b, d))
    ls, lt = np.arange(s) % K, rng.integers(0, K, b)
    return xs, np.eye(K)[ls] - 1 / K, xt, np.eye(K)[lt] - 1 / K, lt


# ------------------------------------------------------------------ the loss (Eq. 27)

@pytest.mark.parametrize("reg", [0.0, 1e-6, 0.1])
def test_kip_loss_matches_neural_tangents_predictor(net, reg):
    """Eq. 27 with the ridge reg * tr(K)/n: neural-tangents' t = inf mean predictor with
    diag_reg = reg (relative to the mean diagonal) gives the same predictions and loss."""
    xs, ys, xt, yt, _ = toy(1)
    with x64():
        predict_fn = nt.predict.gradient_descent_mse_ensemble(net.kernel_fn, jnp.asarray(xs), jnp.asarray(ys),
                                                               diag_reg=reg)
        f_nt = np.asarray(predict_fn(t=None, x_test=jnp.asarray(xt), get="ntk"))
        loss = float(kip.kip_loss(net.kernel_fn, jnp.asarray(xs), jnp.asarray(ys), jnp.asarray(xt), jnp.asarray(yt),
                                  reg))
    assert loss == pytest.approx(0.5 * np.mean((f_nt - yt) ** 2), rel=1e-9)
    f = kip.predict(net.kernel_fn, xs, ys, xt, reg)
    assert np.allclose(f, f_nt, rtol=1e-9, atol=1e-12)


def test_kip_loss_matches_explicit_solve_with_transform(net):
    """An input map of the targets: f(x) = K(T(x), X_S) (K_SS + lambda I)^-1 Y_S, solved with NumPy."""
    xs, ys, xt, yt, _ = toy(2)

    def transform(x):
        return 2.0 * x - 1.0

    with x64():
        k_ss = np.asarray(net.kernel_fn(jnp.asarray(xs), None, "ntk"))
        k_ts = np.asarray(net.kernel_fn(jnp.asarray(2 * xt - 1), jnp.asarray(xs), "ntk"))
        loss = float(kip.kip_loss(net.kernel_fn, jnp.asarray(xs), jnp.asarray(ys), jnp.asarray(xt), jnp.asarray(yt),
                                  1e-3, transform=transform))
    lam = 1e-3 * np.trace(k_ss) / len(k_ss)
    f = k_ts @ np.linalg.solve(k_ss + lam * np.eye(len(k_ss)), ys)
    assert loss == pytest.approx(0.5 * np.mean((f - yt) ** 2), rel=1e-10)


def test_nngp_kind(net):
    xs, ys, xt, yt, _ = toy(3)
    with x64():
        k_ss = np.asarray(net.kernel_fn(jnp.asarray(xs), None, "nngp"))
        k_ts = np.asarray(net.kernel_fn(jnp.asarray(xt), jnp.asarray(xs), "nngp"))
        loss = float(kip.kip_loss(net.kernel_fn, jnp.asarray(xs), jnp.asarray(ys), jnp.asarray(xt), jnp.asarray(yt),
                                  1e-2, kind="nngp"))
    f = k_ts @ np.linalg.solve(k_ss + 1e-2 * np.trace(k_ss) / 5 * np.eye(5), ys)
    assert loss == pytest.approx(0.5 * np.mean((f - yt) ** 2), rel=1e-10)


@pytest.mark.parametrize("kind, wrt, h, rel", [("nngp", "x", 1e-5, 1e-7), ("nngp", "y", 1e-5, 1e-7),
                                                ("ntk", "x", 1e-4, 3e-5), ("ntk", "y", 1e-5, 1e-7)])
def test_kip_gradient_matches_float64_finite_differences(net, kind, wrt, h, rel):
    """Directional derivative of the KIP loss in X_S (and Y_S) vs central differences, float64.

    The NTK's diagonal K(x, x) goes through arccos(cos) at cos = 1, where float64 rounding of the
    cosine (1e-16) becomes an angle of 1e-8: differences of the loss in X_S carry that noise
    divided by h, so the NTK case uses h = 1e-4 and a looser tolerance (autodiff is exact there:
    the NNGP case, without the angle, agrees to 1e-7)."""
    xs, ys, xt, yt, _ = toy(4)
    rng = np.random.default_rng(5)
    with x64():
        args = [jnp.asarray(a) for a in (xs, ys, xt, yt)]

        def loss(a, b):
            return kip.kip_loss(net.kernel_fn, a, b, args[2], args[3], 1e-4, kind=kind)

        g = jax.grad(loss, argnums=0 if wrt == "x" else 1)(args[0], args[1])
        v = rng.standard_normal(g.shape)
        if wrt == "x":
            fd = (loss(args[0] + h * v, args[1]) - loss(args[0] - h * v, args[1])) / (2 * h)
        else:
            fd = (loss(args[0], args[1] + h * v) - loss(args[0], args[1] - h * v)) / (2 * h)
        assert float(jnp.sum(g * v)) == pytest.approx(float(fd), rel=rel, abs=1e-12)


def test_regularized_gram_and_condition_number(net):
    k = jnp.asarray([[2.0, 1.0], [1.0, 4.0]])
    assert np.allclose(kip.regularized_gram(k, 0.5), [[3.5, 1.0], [1.0, 5.5]])
    xs, *_ = toy(6)
    dup = np.concatenate([xs, xs[:1]])
    assert kip.support_condition_number(net.kernel_fn, dup, reg=0.0) > 1e10  # duplicate: singular
    assert kip.support_condition_number(net.kernel_fn, dup, reg=1e-6) < 1e8


# ------------------------------------------------------------------ Adversarial KIP

def test_adversarial_targets_equal_ntknb_pgd_on_the_kernel_machine(net):
    """The inner maximisation is PGD on the cross-entropy of f_S: the same points as
    ntknb.attacks.pgd on the support predictor (same start, steps and step size)."""
    xs, ys, xt, yt, lt = toy(7, b=16)
    adv = kip.PGDTargets(eps=0.1, steps=4)
    key = jax.random.PRNGKey(3)
    with x64():
        ours = np.asarray(kip.adversarial_targets(net.kernel_fn, jnp.asarray(xs), jnp.asarray(ys), jnp.asarray(xt),
                                                  jnp.asarray(yt), adv, key, 1e-6))
        alpha = jnp.asarray(kip.support_weights(net.kernel_fn, xs, ys, 1e-6))
        xs_j = jnp.asarray(xs)
        predict = kernels.make_predict_fn(net.kernel_fn, xs_j, alpha)
        ref = np.asarray(attacks.pgd(attacks.predictor_loss(predict, "ce"), jnp.asarray(xt), jnp.asarray(yt), 0.1,
                                     steps=4, random_start=True, key=key))
    assert np.allclose(ours, ref, atol=1e-12)
    assert np.all(np.abs(ours - xt) <= 0.1 + 1e-12) and ours.min() >= 0 and ours.max() <= 1
    # the attack raises the cross-entropy of the kernel machine
    f_clean = kip.predict(net.kernel_fn, xs, ys, xt)
    f_adv = kip.predict(net.kernel_fn, xs, ys, ours)
    ce = lambda f: np.asarray(attacks.cross_entropy(jnp.asarray(f), jnp.asarray(lt)))  # noqa: E731
    assert ce(f_adv).mean() > ce(f_clean).mean()


def test_pgd_targets_defaults_and_rules():
    adv = kip.PGDTargets(eps=0.3, steps=6)
    assert adv.step_size == pytest.approx(2.5 * 0.3 / 6) and adv.clip == (0.0, 1.0)
    for bad, name in [(dict(eps=0.0), "eps"), (dict(eps=0.1, steps=0), "steps"),
                      (dict(eps=0.1, step_size=-1.0), "step_size"), (dict(eps=0.1, clip=(1.0, 0.0)), "clip"),
                      (dict(eps=0.1, random_start=1), "random")]:
        with pytest.raises(ValueError, match=name):
            kip.PGDTargets(**bad)


# ------------------------------------------------------------------ the learning loop

def test_class_balanced_batches():
    labels = np.repeat(np.arange(4), [5, 7, 6, 9])
    rng = np.random.default_rng(0)
    labels = labels[rng.permutation(len(labels))]
    table, per = kip.class_table(labels, 12)
    assert table.shape == (4, 5) and per == 3
    assert all(np.all(labels[row] == c) for c, row in enumerate(table))
    idx = np.asarray(kip.target_indices(jax.random.PRNGKey(1), jnp.asarray(table), per))
    assert len(set(idx.tolist())) == 12
    assert np.array_equal(labels[idx], np.tile(np.arange(4), 3))  # interleaved, 3 per class
    with pytest.raises(ValueError, match="multiple"):
        kip.class_table(labels, 10)
    with pytest.raises(ValueError, match="points per class"):
        kip.class_table(labels, 24)


def _problem(seed=0, n=60, s=6, d=5):
    """K classes in [0, 1]^d, class c scattered around a random centre; a support start of s / K per class."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % K
    centres = rng.random((K, d))
    x = np.clip(centres[labels] + 0.15 * rng.standard_normal((n, d)), 0, 1)
    y = np.eye(K)[labels] - 1 / K
    init = np.concatenate([np.flatnonzero(labels == c)[: s // K] for c in range(K)])
    return x, y, labels, init


# F32_HOST_NOTE: how closely a float32 run follows float64 depends on the host CPU (OpenBLAS picks its
# kernels per CPU, XLA its code): on one 2-core AMD EPYC the support points of the test below differ by
# 6e-4 (1.2e-3 with OPENBLAS_CORETYPE=Haswell) and the initial loss by 2e-7 relative, while the CI host
# of stop 38 gave 2e-4 relative on the initial loss and more than 1e-3 on the support points. The
# float32 checks allow a few times those; a wrong formula moves them by far more.


def test_learn_support_lowers_the_loss_and_keeps_snapshots(net):
    x, y, labels, init = _problem()
    xs0 = x[init] + 0.3  # a poor start
    res = kip.learn_support(net.kernel_fn, xs0, y[init], x, y, steps=30, learning_rate=0.05, checkpoints=[0, 10, 30],
                            seed=1)
    assert res.losses.shape == (30,) and res.checkpoints == (0, 10, 30)
    assert np.allclose(res.snapshots[0][0], xs0) and np.allclose(res.snapshots[-1][0], res.x_support)
    with x64():
        before = float(kip.kip_loss(net.kernel_fn, jnp.asarray(xs0), jnp.asarray(y[init]), jnp.asarray(x),
                                    jnp.asarray(y)))
        after = float(kip.kip_loss(net.kernel_fn, jnp.asarray(res.x_support, jnp.float64), jnp.asarray(y[init]),
                                   jnp.asarray(x), jnp.asarray(y)))
    assert after < 0.7 * before
    # full pool: step 1's loss is the initial one, up to float32 (see F32_HOST_NOTE)
    assert res.losses[0] == pytest.approx(before, rel=1e-3)
    assert np.array_equal(res.y_support, y[init].astype(np.float32))  # labels fixed
    again = kip.learn_support(net.kernel_fn, xs0, y[init], x, y, steps=0)
    assert np.allclose(again.x_support, xs0) and again.losses.shape == (0,)


def test_learn_support_float64_matches_float32_and_chunks_match(net):
    x, y, labels, init = _problem(1)
    common = dict(steps=5, target_batch=30, labels_pool=labels, seed=3, reg=1e-2)  # well conditioned for float32
    r32 = kip.learn_support(net.kernel_fn, x[init], y[init], x, y, **common)
    r64 = kip.learn_support(net.kernel_fn, x[init], y[init], x, y, dtype=np.float64, **common)
    rch = kip.learn_support(net.kernel_fn, x[init], y[init], x, y, dtype=np.float64, target_chunk=10, **common)
    assert r64.x_support.dtype == np.float64 and r32.x_support.dtype == np.float32
    # same batches; float32 differs by ~1e-4 relative: the pool holds the support points, where the
    # NTK's arccos(cos ~ 1) turns float32 rounding (6e-8) of the cosine into angles of ~3e-4; five
    # Adam steps carry that into the support points (F32_HOST_NOTE). The float64 runs below are the
    # exact check.
    assert np.allclose(r32.x_support, r64.x_support, atol=5e-3)
    assert np.allclose(r32.losses, r64.losses, rtol=5e-3)
    assert np.allclose(rch.x_support, r64.x_support, atol=1e-10)
    assert np.allclose(rch.losses, r64.losses, rtol=1e-10)


def test_learn_support_labels_and_adversary(net):
    x, y, labels, init = _problem(2)
    res = kip.learn_support(net.kernel_fn, x[init], y[init], x, y, steps=5, learn_labels=True, target_batch=30,
                            labels_pool=labels, adversary=kip.PGDTargets(eps=0.05, steps=2), seed=0)
    assert not np.allclose(res.y_support, y[init])
    assert res.settings["adversary"]["eps"] == 0.05 and res.settings["learn_labels"]


def test_predict_and_support_predictor_agree(net):
    x, y, labels, init = _problem(3)
    f64 = kip.predict(net.kernel_fn, x[init], y[init], x, 1e-3, batch_size=7)
    f_once = kip.predict(net.kernel_fn, x[init], y[init], x, 1e-3, batch_size=None)
    assert f64.dtype == np.float64 and np.allclose(f64, f_once)
    predict = kip.support_predictor(net.kernel_fn, x[init], y[init], 1e-3)
    # float32 kernel at the support points themselves: see the float32 / float64 test above
    assert np.allclose(np.asarray(predict(jnp.asarray(x, jnp.float32))), f64, atol=1e-3)
    k = np.asarray(kernels.kernel_matrix(net.kernel_fn, x[init], dtype=np.float64))
    alpha = np.linalg.solve(k + 1e-6 * np.trace(k) / len(k) * np.eye(len(k)), y[init])
    assert np.allclose(kip.support_weights(net.kernel_fn, x[init], y[init]), alpha, rtol=1e-8)


# ------------------------------------------------------------------ bad parameters

def test_bad_parameters_raise(net):
    x, y, labels, init = _problem(4)
    xs, ys = x[init], y[init]
    kf = net.kernel_fn
    cases = [
        (dict(steps=-1), "steps"),
        (dict(steps=1, learning_rate=0.0), "learning_rate"),
        (dict(steps=1, reg=-1e-6), "reg"),
        (dict(steps=1, target_batch=61), "target_batch"),
        (dict(steps=1, target_batch=30, target_chunk=7), "target_chunk"),
        (dict(steps=1, target_batch=31, labels_pool=labels), "target_batch"),
        (dict(steps=1, labels_pool=labels[:-1]), "labels_pool"),
        (dict(steps=1, dtype=np.float16), "dtype"),
        (dict(steps=1, kind="ntkk"), "kind"),
        (dict(steps=1, adversary=0.1), "adversary"),
        (dict(steps=1, checkpoints=[2]), "checkpoints"),
        (dict(steps=1, transform=3), "transform"),
        (dict(steps=1, seed=-1), "seed"),
        (dict(steps=1, learn_labels=1), "learn_labels"),
    ]
    for kwargs, name in cases:
        with pytest.raises(ValueError, match=name):
            kip.learn_support(kf, xs, ys, x, y, **kwargs)
    with pytest.raises(ValueError, match="y_support"):
        kip.learn_support(kf, xs, ys[:-1], x, y, steps=1)
    with pytest.raises(ValueError, match="y_pool"):
        kip.learn_support(kf, xs, ys, x, y[:, :2], steps=1)
    with pytest.raises(ValueError, match="x_pool"):
        kip.learn_support(kf, xs, ys, x[:, :3], y, steps=1)
    with pytest.raises(ValueError, match="kernel_fn"):
        kip.learn_support(None, xs, ys, x, y, steps=1)
    with pytest.raises(ValueError, match="x_pool"):
        kip.learn_support(kf, xs, ys, x + 1.0, y, steps=1, adversary=kip.PGDTargets(eps=0.1))
    with pytest.raises(ValueError, match="reg"):
        kip.support_weights(kf, xs, ys, reg=float("nan"))
    with pytest.raises(ValueError, match="reg"):
        kip.kip_loss(kf, xs, ys, x, y, reg=-1.0)
    with pytest.raises(ValueError, match="y_target"):
        kip.kip_loss(kf, xs, ys, x, y[:-1])
    with pytest.raises(ValueError, match="kind"):
        kip.kip_loss(kf, xs, ys, x, y, kind="cntk")
    with pytest.raises(ValueError, match="adversary"):
        kip.adversarial_targets(kf, xs, ys, x, y, 0.1, jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="dtype"):
        kip.predict(kf, xs, ys, x, dtype="float16")
    with pytest.raises(ValueError, match="batch_size"):
        kip.predict(kf, xs, ys, x, batch_size=0)
