"""Tests for ntknb.attacks: FGSM/PGD, losses, and the kernel attack of Eq. (8)."""

import ntknb  # noqa: F401  (must precede neural_tangents; installs the compat shim)

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntknb import attacks as A

N, SHAPE = 6, (2, 2, 1)
D = int(np.prod(SHAPE))
K = 3


def _images(seed=0, n=N, shape=SHAPE, low=0.0, high=1.0):
    return jax.random.uniform(jax.random.PRNGKey(seed), (n,) + shape, minval=low, maxval=high)


W_BIN = jax.random.normal(jax.random.PRNGKey(1), (D, 1))
W_MC = jax.random.normal(jax.random.PRNGKey(2), (D, K))
W1 = jax.random.normal(jax.random.PRNGKey(3), (D, 8))
W2 = jax.random.normal(jax.random.PRNGKey(4), (8, 1))


def f_bin(x):
    """Linear scalar model: (n, 2, 2, 1) -> (n, 1)."""
    return x.reshape(x.shape[0], -1) @ W_BIN - 0.5 * W_BIN.sum()


def f_mc(x):
    return x.reshape(x.shape[0], -1) @ W_MC


def f_tanh(x):
    """Small nonlinear scalar model."""
    return jnp.tanh(x.reshape(x.shape[0], -1) @ W1) @ W2


Y_BIN = jnp.where(jnp.arange(N)[:, None] % 2 == 0, 1.0, -1.0)
ONE_HOT = jax.nn.one_hot(jnp.arange(N) % K, K)
Y_MC = ONE_HOT - 1.0 / K  # centred one-hot (package convention)

BCE = A.predictor_loss(f_bin, "bce")
CE = A.predictor_loss(f_mc, "ce")
BCE_TANH = A.predictor_loss(f_tanh, "bce")


def _mean_loss(loss_fn, x, y):
    return float(jnp.mean(loss_fn(x, y)))


ATTACKS = {
    "fgsm": lambda lf, x, y, eps, **kw: A.fgsm(lf, x, y, eps, **kw),
    "pgd": lambda lf, x, y, eps, **kw: A.pgd(lf, x, y, eps, steps=5, **kw),
}


# ------------------------------------------------------------------ constraints


@pytest.mark.parametrize("name", sorted(ATTACKS))
@pytest.mark.parametrize("loss_fn,y", [(BCE, Y_BIN), (CE, Y_MC)], ids=["bce", "ce"])
def test_stays_in_ball_and_range(name, loss_fn, y):
    x = _images()
    eps = 0.3
    xa = ATTACKS[name](loss_fn, x, y, eps)
    assert xa.shape == x.shape and xa.dtype == x.dtype
    assert float(jnp.max(jnp.abs(xa - x))) <= eps + 1e-6
    assert float(xa.min()) >= 0.0 and float(xa.max()) <= 1.0


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_clip_none_may_leave_range(name):
    x = _images()
    eps = 0.4
    xa = ATTACKS[name](BCE, x, Y_BIN, eps, clip=None)
    assert float(jnp.max(jnp.abs(xa - x))) <= eps + 1e-6
    assert float(xa.min()) < 0.0 or float(xa.max()) > 1.0


def test_pgd_random_start_stays_in_ball():
    x = _images()
    xa = A.pgd(BCE, x, Y_BIN, 0.2, steps=3, random_start=True, key=jax.random.PRNGKey(7))
    assert float(jnp.max(jnp.abs(xa - x))) <= 0.2 + 1e-6
    assert float(xa.min()) >= 0.0 and float(xa.max()) <= 1.0


def test_pgd_from_a_given_start_is_the_ascent_from_there():
    """``init=delta0``: the iterates start at Proj(x + delta0); one step is FGSM of step alpha from there,
    the start drawn by random_start is the same as passing its draw."""
    x, eps, alpha = _images(), 0.2, 0.15
    delta0 = 0.5 * eps * jnp.sign(jax.random.normal(jax.random.PRNGKey(3), x.shape))
    x0 = A.project_linf(x + delta0, x, eps, (0.0, 1.0))
    g = jax.grad(lambda z: jnp.sum(BCE_TANH(z, Y_BIN)))(x0)
    ref = A.project_linf(x0 + alpha * jnp.sign(g), x, eps, (0.0, 1.0))
    np.testing.assert_array_equal(A.pgd(BCE_TANH, x, Y_BIN, eps, step_size=alpha, steps=1, init=delta0), ref)
    key = jax.random.PRNGKey(5)
    drawn = jax.random.uniform(key, x.shape, x.dtype, minval=-eps, maxval=eps)
    np.testing.assert_array_equal(A.pgd(BCE_TANH, x, Y_BIN, eps, steps=3, init=drawn),
                                  A.pgd(BCE_TANH, x, Y_BIN, eps, steps=3, random_start=True, key=key))
    with pytest.raises(ValueError, match="init"):
        A.pgd(BCE, x, Y_BIN, eps, init=delta0, random_start=True, key=key)
    with pytest.raises(ValueError, match="init"):
        A.pgd(BCE, x, Y_BIN, eps, init=delta0[:, :1])


def test_eps_zero_is_identity():
    x = _images()
    np.testing.assert_array_equal(A.fgsm(BCE, x, Y_BIN, 0.0), x)
    np.testing.assert_array_equal(A.pgd(BCE, x, Y_BIN, 0.0), x)


# --------------------------------------------------------------- loss increases


@pytest.mark.parametrize("loss_fn,y", [(BCE, Y_BIN), (CE, Y_MC), (BCE_TANH, Y_BIN)],
                         ids=["bce-linear", "ce-linear", "bce-tanh"])
def test_attacks_raise_loss_pgd_at_least_fgsm(loss_fn, y):
    x = _images(low=0.3, high=0.7)
    eps = 0.1
    before = _mean_loss(loss_fn, x, y)
    after_fgsm = _mean_loss(loss_fn, A.fgsm(loss_fn, x, y, eps), y)
    after_pgd = _mean_loss(loss_fn, A.pgd(loss_fn, x, y, eps, steps=10), y)
    assert after_fgsm > before
    assert after_pgd > before
    assert after_pgd >= after_fgsm - 1e-5


def test_mse_loss_attack_raises_loss():
    x = _images(low=0.3, high=0.7)
    lf = A.predictor_loss(f_mc, "mse")
    before = _mean_loss(lf, x, Y_MC)
    assert _mean_loss(lf, A.pgd(lf, x, Y_MC, 0.1), Y_MC) > before


# ------------------------------------------------------------ Eq. (8) identity


@pytest.mark.parametrize("f", [f_bin, f_tanh], ids=["linear", "tanh"])
def test_fgsm_bce_equals_eq8(f):
    x = _images(low=0.3, high=0.7)
    eps = 0.05
    grad_f = jax.grad(lambda z: jnp.sum(f(z)))(x)  # per-example ∇_x f(x)
    y_b = Y_BIN.reshape((N,) + (1,) * len(SHAPE))
    expected = x - y_b * eps * jnp.sign(grad_f)
    np.testing.assert_allclose(A.fgsm(A.predictor_loss(f, "bce"), x, Y_BIN, eps, clip=None),
                               expected, atol=1e-6)
    # x in [0.3, 0.7], eps small: box clipping is inactive
    np.testing.assert_allclose(A.kernel_fgsm(f, x, Y_BIN, eps), expected, atol=1e-6)


def test_kernel_pgd_matches_pgd_of_predictor_loss():
    x = _images()
    a = A.kernel_pgd(f_mc, x, Y_MC, 0.1, loss="ce", steps=3)
    b = A.pgd(A.predictor_loss(f_mc, "ce"), x, Y_MC, 0.1, steps=3)
    np.testing.assert_array_equal(a, b)


def test_predictor_loss_equality_for_jit_reuse():
    assert A.predictor_loss(f_bin, "bce") == A.predictor_loss(f_bin, "bce")
    assert hash(A.predictor_loss(f_bin, "bce")) == hash(A.predictor_loss(f_bin, "bce"))
    assert A.predictor_loss(f_bin, "bce") != A.predictor_loss(f_bin, "mse")


# ----------------------------------------------------------------------- losses


def test_cross_entropy_one_hot_and_centred_agree():
    logits = jax.random.normal(jax.random.PRNGKey(5), (N, K))
    a = A.cross_entropy(logits, ONE_HOT)
    b = A.cross_entropy(logits, Y_MC)
    c = A.cross_entropy(logits, jnp.arange(N) % K)
    assert a.shape == (N,)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(a, c, rtol=1e-6)
    ref = -jnp.log(jax.nn.softmax(logits)[jnp.arange(N), jnp.arange(N) % K])
    np.testing.assert_allclose(a, ref, rtol=1e-5)


def test_bce_stable_large_outputs_and_values():
    f = jnp.array([[1000.0], [-1000.0], [1000.0], [-1000.0], [0.0]])
    y = jnp.array([[1.0], [1.0], [-1.0], [-1.0], [1.0]])
    loss = A.binary_cross_entropy_pm1(f, y)
    g = jax.grad(lambda f_: jnp.sum(A.binary_cross_entropy_pm1(f_, y)))(f)
    assert loss.shape == (5,)
    assert bool(jnp.all(jnp.isfinite(loss))) and bool(jnp.all(jnp.isfinite(g)))
    np.testing.assert_allclose(loss, [0.0, 1000.0, 1000.0, 0.0, np.log(2.0)], rtol=1e-6, atol=1e-6)
    # (n,) shapes accepted too
    np.testing.assert_allclose(A.binary_cross_entropy_pm1(f[:, 0], y[:, 0]), loss)


def test_squared_error():
    f = jnp.array([[1.0, 2.0], [0.0, 0.0]])
    y = jnp.array([[0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(A.squared_error(f, y), [2.5, 1.0])


def test_accuracy_both_encodings():
    f_b = jnp.array([[0.5], [-2.0], [1.0], [0.3]])
    y_b = jnp.array([[1.0], [-1.0], [-1.0], [1.0]])
    assert A.accuracy(f_b, y_b) == pytest.approx(0.75)
    assert A.accuracy(f_b[:, 0], y_b[:, 0]) == pytest.approx(0.75)
    logits = jnp.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 2.0, 0.0]])
    y_c = jax.nn.one_hot(jnp.array([0, 1, 2]), 3)
    assert A.accuracy(logits, y_c) == pytest.approx(2 / 3)
    assert A.accuracy(logits, y_c - 1 / 3) == pytest.approx(2 / 3)


def test_robust_accuracy_not_above_clean():
    x = _images()
    clean = A.accuracy(f_bin(x), Y_BIN)
    robust = A.robust_accuracy(f_bin, lambda x_, y_: A.kernel_fgsm(f_bin, x_, y_, 0.3), x, Y_BIN)
    assert robust <= clean


# ----------------------------------------------------- randomness and chunking


def test_random_start_reproducible_and_key_dependent():
    x = _images()
    run = lambda k: A.pgd(BCE_TANH, x, Y_BIN, 0.2, steps=2, step_size=0.01,
                          random_start=True, key=jax.random.PRNGKey(k))
    a, b, c = run(0), run(0), run(1)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("name", ["fgsm", "pgd", "pgd-random"])
def test_chunked_equals_unchunked(name):
    x = _images(shape=(4, 4, 3), n=5)
    w = jax.random.normal(jax.random.PRNGKey(9), (48, K))
    lf = A.predictor_loss(lambda z: jnp.tanh(z.reshape(z.shape[0], -1) @ w), "ce")
    y = Y_MC[:5]
    if name == "fgsm":
        run = lambda bs: A.fgsm(lf, x, y, 0.1, batch_size=bs)
    else:
        kw = dict(random_start=True, key=jax.random.PRNGKey(3)) if name == "pgd-random" else {}
        run = lambda bs: A.pgd(lf, x, y, 0.1, steps=3, batch_size=bs, **kw)
    np.testing.assert_allclose(run(2), run(None), atol=1e-6)


# ------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call,param",
    [
        (lambda x, y: A.fgsm(BCE, x, y, -0.1), "eps"),
        (lambda x, y: A.pgd(BCE, x, y, -0.1), "eps"),
        (lambda x, y: A.pgd(BCE, x, y, float("nan")), "eps"),
        (lambda x, y: A.pgd(BCE, x, y, 0.1, steps=0), "steps"),
        (lambda x, y: A.pgd(BCE, x, y, 0.1, steps=2.5), "steps"),
        (lambda x, y: A.pgd(BCE, x, y, 0.1, step_size=0.0), "step_size"),
        (lambda x, y: A.pgd(BCE, x, y, 0.1, step_size=-1.0), "step_size"),
        (lambda x, y: A.pgd(BCE, x, y, 0.1, random_start=True), "key"),
        (lambda x, y: A.fgsm(BCE, x, y[:-1], 0.1), "x and y"),
        (lambda x, y: A.pgd(BCE, x[:-1], y, 0.1), "x and y"),
        (lambda x, y: A.fgsm(BCE, x, y, 0.1, clip=(1.0, 0.0)), "clip"),
        (lambda x, y: A.fgsm(BCE, x, y, 0.1, batch_size=0), "batch_size"),
        (lambda x, y: A.predictor_loss(f_bin, "hinge"), "loss"),
        (lambda x, y: A.kernel_fgsm(f_bin, x, y, 0.1, loss="l2"), "loss"),
        (lambda x, y: A.fgsm(lambda a, b: jnp.mean(f_bin(a)), x, y, 0.1), "loss_fn"),
    ],
)
def test_bad_input_raises_named_value_error(call, param):
    with pytest.raises(ValueError, match=param):
        call(_images(), Y_BIN)


def test_bad_loss_message_lists_allowed_values():
    with pytest.raises(ValueError, match=r"\['bce', 'ce', 'mse'\]"):
        A.predictor_loss(f_bin, "hinge")


def test_eq8_with_neural_tangents_kernel_predictor():
    """Eq. (8) on the infinite-width NTK predictor f_t of Eq. (7)."""
    import neural_tangents as nt
    from neural_tangents import stax

    _, _, kernel_fn = stax.serial(stax.Flatten(), stax.Dense(16), stax.Relu(), stax.Dense(1))
    x_train = _images(seed=11, n=8)
    y_train = jnp.sign(jax.random.normal(jax.random.PRNGKey(12), (8, 1)))
    predict = nt.predict.gradient_descent_mse_ensemble(kernel_fn, x_train, y_train)
    f_t = lambda x_: predict(t=10.0, x_test=x_, get="ntk")
    x = _images(low=0.3, high=0.7)
    f_t(x)  # warm nt's memoised eigendecomposition eagerly (see predictor_loss docstring)
    eps = 0.05
    grad_f = jax.grad(lambda z: jnp.sum(f_t(z)))(x)
    expected = x - Y_BIN.reshape(N, 1, 1, 1) * eps * jnp.sign(grad_f)
    np.testing.assert_allclose(A.kernel_fgsm(f_t, x, Y_BIN, eps), expected, atol=1e-6)
    lf = A.predictor_loss(f_t, "bce")
    assert _mean_loss(lf, A.kernel_pgd(f_t, x, Y_BIN, eps, batch_size=4), Y_BIN) > _mean_loss(lf, x, Y_BIN)


def test_classification_loss_resolves_auto_and_checks_fit():
    assert A.classification_loss("auto", 1) == "bce"
    assert A.classification_loss("auto", 10) == "ce"
    assert A.classification_loss("ce", 3) == "ce"
    with pytest.raises(ValueError, match="loss"):
        A.classification_loss("bce", 10)
    with pytest.raises(ValueError, match=r"\['auto', 'bce', 'ce'\]"):
        A.classification_loss("hinge", 1)


# ------------------------------------------------------------ wrong inputs (issue 14)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_images_outside_clip_range_refused(name):
    x255 = _images() * 255.0  # 0..255 images instead of [0, 1]
    with pytest.raises(ValueError, match=r"parameter 'x'.*\[0\.0, 1\.0\].*255"):
        ATTACKS[name](BCE, x255, Y_BIN, 0.1)
    with pytest.raises(ValueError, match=r"parameter 'x'"):
        A.kernel_fgsm(f_bin, x255, Y_BIN, 0.1)
    # the same images with their own range (or no range) are fine
    xa = ATTACKS[name](BCE, x255, Y_BIN, 0.1, clip=(0.0, 255.0))
    assert float(jnp.max(jnp.abs(xa - x255))) <= 0.1 + 1e-3


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_zero_one_labels_refused_where_pm1_expected(name):
    y01 = (Y_BIN + 1) / 2
    with pytest.raises(ValueError, match=r"parameter 'y'.*-1 or \+1.*2 \* y - 1"):
        ATTACKS[name](BCE, _images(), y01, 0.1)
    with pytest.raises(ValueError, match=r"parameter 'y'.*-1 or \+1"):
        A.kernel_pgd(f_bin, _images(), y01, 0.1, steps=2)
    with pytest.raises(ValueError, match=r"-1 or \+1"):
        A.binary_cross_entropy_pm1(f_bin(_images()), y01)
    with pytest.raises(ValueError, match=r"-1 or \+1"):
        A.accuracy(f_bin(_images()), y01)
    # a generic loss on (n, 1) labels: 0/1 contradicts the convention too
    with pytest.raises(ValueError, match=r"parameter 'y'"):
        ATTACKS[name](lambda a, b: A.binary_cross_entropy_pm1(f_bin(a), b), _images(), y01, 0.1)


def test_kernel_fgsm_ce_on_single_output_model_attacks():
    """loss="ce" on one logit is the binary cross-entropy (logistic loss) on ±1 labels,
    not a constant (log-softmax of a single logit is 0: no gradient, no attack)."""
    x = _images()
    xa = A.kernel_fgsm(f_bin, x, Y_BIN, 0.1, loss="ce")
    assert float(jnp.max(jnp.abs(xa - x))) > 0.05
    np.testing.assert_allclose(xa, A.kernel_fgsm(f_bin, x, Y_BIN, 0.1, loss="bce"), atol=1e-6)
    np.testing.assert_allclose(A.cross_entropy(f_bin(x), Y_BIN), A.binary_cross_entropy_pm1(f_bin(x), Y_BIN),
                               rtol=1e-6)
    assert A.robust_accuracy(f_bin, lambda a, b: A.kernel_fgsm(f_bin, a, b, 0.3, loss="ce"), x, Y_BIN) < \
        A.accuracy(f_bin(x), Y_BIN) or A.accuracy(f_bin(x), Y_BIN) == 0


def test_attacks_with_dynamic_params_equal_the_closure_and_share_one_compilation():
    import functools

    def predict(w, x):  # a linear "network" of weights w (d, 1)
        return jnp.tanh(x.reshape(x.shape[0], -1) @ w)

    key = jax.random.PRNGKey(0)
    x = jax.random.uniform(key, (6, 4))
    y = jnp.array([[1.0], [-1.0]] * 3)
    loss = A.predictor_loss(predict, "bce")
    ws = [jax.random.normal(jax.random.PRNGKey(i), (4, 1)) for i in (1, 2)]
    before = A._pgd_jit._cache_size()
    for w in ws:
        closure = A.predictor_loss(functools.partial(predict, w), "bce")
        np.testing.assert_array_equal(A.pgd(loss, x, y, 0.1, steps=3, params=w), A.pgd(closure, x, y, 0.1, steps=3))
        np.testing.assert_array_equal(A.fgsm(loss, x, y, 0.1, params=w, batch_size=4), A.fgsm(closure, x, y, 0.1))
    assert A._pgd_jit._cache_size() - before == 3  # one compilation for both weights, one per closure
