"""ntknb.evaluation: the APGD-CE / APGD-DLR / PGD suite against exact references.

* linear models: the worst case over the l-inf ball intersected with [0, 1]^d is closed form
  (binary: the margin is separable per coordinate; multi-class: the smallest margin is
  min over j != y of a separable linear function, each minimised at a box corner);
* a 2-D nonlinear classifier: an exhaustive grid over each eps-box gives the exact robust
  accuracy; the suite comes within 0.02 of it, FGSM and PGD-10 (ntknb.attacks) do not.
"""

import ntknb  # noqa: F401

import jax.numpy as jnp
import numpy as np
import pytest

from ntknb import attacks as A
from ntknb import evaluation as E

D, N, EPS = 5, 120, 0.1
RNG = np.random.default_rng(0)
X = RNG.uniform(size=(N, D)).astype(np.float32)
W_BIN = RNG.normal(size=(D, 1)).astype(np.float32)
B_BIN = np.float32(-0.5 * W_BIN.sum())
K = 4
W_MC = RNG.normal(size=(D, K)).astype(np.float32)
B_MC = (0.3 * RNG.normal(size=K)).astype(np.float32)


def f_bin(x):
    """Linear single-output model (n, 5) -> (n, 1)."""
    return x @ W_BIN + B_BIN


def f_mc(x):
    """Linear 4-class model (n, 5) -> (n, 4)."""
    return x @ W_MC + B_MC


Y_PM = np.where(RNG.uniform(size=N) < 0.5, -1, 1)  # ±1 labels, clean accuracy about 1/2
C_MC = np.argmax(np.asarray(f_mc(X)) + 0.5 * RNG.normal(size=(N, K)), axis=1)
LO, HI = np.clip(X - EPS, 0, 1), np.clip(X + EPS, 0, 1)


def _min_linear(w, b):
    """min over the box [LO, HI] of w_i . x + b_i, rows i: w (N, D), b (N,)."""
    return b + np.minimum(w * LO, w * HI).sum(axis=1)


def exact_margin_binary():
    return _min_linear(Y_PM[:, None] * W_BIN[:, 0][None, :], Y_PM * B_BIN)


def exact_margin_multiclass():
    ms = []
    for j in range(K):
        m = _min_linear(W_MC[:, C_MC].T - W_MC[:, j][None, :], B_MC[C_MC] - B_MC[j])
        ms.append(np.where(C_MC == j, np.inf, m))
    return np.min(ms, axis=0)


def test_checkpoints_follow_croce_hein():
    # p = 0, .22, .41, .57, .70, .80, .87, .93, .99 -> ceil(p * 100)
    assert E.apgd_checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]
    w = E.apgd_checkpoints(10)
    assert w[0] == 0 and all(b > a for a, b in zip(w, w[1:])) and w[-1] <= 10


def test_losses():
    z = jnp.array([[3.0, 1.0, 0.0, -1.0], [0.0, 2.0, 1.0, 5.0]])
    c = jnp.array([0, 1])
    np.testing.assert_allclose(E.margin(z, c), [2.0, -3.0])
    # DLR = -(z_y - max_{i != y} z_i) / (z_(1) - z_(3))
    np.testing.assert_allclose(E.dlr_loss(z, c), [-2.0 / 3.0, 3.0 / 4.0], rtol=1e-6)
    np.testing.assert_allclose(E.dlr_loss(10 * z + 7, c), E.dlr_loss(z, c), rtol=1e-5)  # invariance
    with pytest.raises(ValueError, match="k >= 3"):
        E.dlr_loss(z[:, :2], c)
    f = jnp.array([[0.7], [-2.0]])
    two = E.two_class_logits(f)
    np.testing.assert_allclose(E.margin(two, jnp.array([1, 1])), [0.7, -2.0])
    np.testing.assert_allclose(A.cross_entropy(two, jnp.array([1, 0])),
                               A.binary_cross_entropy_pm1(f, jnp.array([[1.0], [-1.0]])), rtol=1e-6)


def test_linear_binary_matches_closed_form():
    m = exact_margin_binary()
    assert np.min(np.abs(m)) > 1e-4  # no ties at the decision boundary
    rep = E.robust_evaluation(f_bin, X, Y_PM, EPS, n_iter=10, batch_size=32)
    np.testing.assert_array_equal(rep.robust, m > 0)
    assert rep.robust_accuracy == pytest.approx(np.mean(m > 0))
    clean = Y_PM * np.asarray(f_bin(X))[:, 0] > 0
    np.testing.assert_allclose(rep.margin[clean], m[clean], atol=1e-5)  # the exact minimum is found
    assert np.all(rep.x_adv >= LO - 1e-7) and np.all(rep.x_adv <= HI + 1e-7)
    assert rep.attacks == ("apgd-ce", "apgd-margin", "pgd") and rep.k == 2
    # {0, 1} labels and (n, 1) ±1 labels mean the same classes
    rep01 = E.robust_evaluation(f_bin, X, (Y_PM > 0).astype(int), EPS, n_iter=10, batch_size=32)
    np.testing.assert_array_equal(rep01.robust, rep.robust)


def test_linear_multiclass_matches_closed_form():
    m = exact_margin_multiclass()
    assert np.min(np.abs(m)) > 1e-4
    rep = E.robust_evaluation(f_mc, X, C_MC, EPS, n_iter=10, batch_size=32)
    np.testing.assert_array_equal(rep.robust, m > 0)
    assert np.all(rep.margin >= m - 1e-5)  # never below the true minimum: stays in the box
    assert rep.attacks == ("apgd-ce", "apgd-dlr", "pgd") and rep.k == K
    assert 0 < rep.robust_accuracy < rep.clean_accuracy


def test_batch_size_and_eps_zero():
    # chunks of 32 rows and of 8 rows (each padded to its full size): same results
    a = E.robust_evaluation(f_mc, X, C_MC, EPS, n_iter=10, batch_size=32)
    b = E.robust_evaluation(f_mc, X, C_MC, EPS, n_iter=10, batch_size=8)
    np.testing.assert_array_equal(a.robust, b.robust)
    np.testing.assert_allclose(a.margin, b.margin, atol=1e-6)
    z = E.robust_evaluation(f_mc, X, C_MC, 0.0, n_iter=10, batch_size=32)
    assert z.robust_accuracy == z.clean_accuracy
    assert E.robust_accuracy(f_mc, X, C_MC, EPS, n_iter=10, batch_size=32) == a.robust_accuracy


def test_report_fields_and_skip_broken():
    rep = E.robust_evaluation(f_mc, X, C_MC, EPS, n_iter=10, skip_broken=False, batch_size=32)
    assert set(rep.accuracy_after) == set(rep.attacks) == set(rep.attack_accuracy)
    after = [rep.accuracy_after[a] for a in rep.attacks]
    assert after == sorted(after, reverse=True) and after[-1] == rep.robust_accuracy
    assert all(v >= rep.robust_accuracy for v in rep.attack_accuracy.values())
    assert set(np.unique(rep.broken_by)) <= {"", "clean", *rep.attacks}
    assert np.all((rep.broken_by == "") == rep.robust)
    js = rep.to_json()
    assert js["robust_accuracy"] == rep.robust_accuracy and js["settings"]["n_iter"] == 10
    assert "robust accuracy at eps = 0.1" in rep.summary()
    iv = rep.interval()
    assert iv.estimate == rep.robust_accuracy and iv.n == N and iv.low < iv.estimate < iv.high
    one = E.robust_evaluation(f_mc, X, C_MC, EPS, n_iter=10, attacks=["pgd"], pgd_restarts=2,
                              batch_size=32)
    assert one.attacks == ("pgd",)


@pytest.mark.parametrize("kwargs, match", [
    (dict(eps=-0.1), "'eps'"),
    (dict(n_iter=0), "'n_iter'"),
    (dict(attacks=["apgd-t"]), "'attacks'"),
    (dict(attacks=["pgd", "pgd"]), "must not repeat"),
    (dict(batch_size=0), "'batch_size'"),
    (dict(y=np.full(N, 7)), "classes in \\[0, 4\\)"),
    (dict(x=X + 2.0), "must lie in the clip range"),
])
def test_bad_input(kwargs, match):
    args = dict(x=X, y=C_MC, eps=EPS)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        E.robust_evaluation(f_mc, args.pop("x"), args.pop("y"), args.pop("eps"), **args)


# ------------------------------------------------------------- the exact 2-D reference

AMP, OMEGA = 0.05, 60.0  # ripple period 2 pi / 60 = 0.105 < 2 eps: several troughs per box
N2, EPS2 = 200, 0.1


def f_ripple(x):
    """2-D binary classifier: a trend across the boundary x_1 = 1/2 plus a ripple along x_2,
    ``f(x) = (x_1 - 1/2) + 0.05 sin(60 x_2)``, shape (n, 2) -> (n, 1). Along x_2 the margin
    has many local minima of equal depth, a quarter period (0.026) apart from the maxima:
    FGSM lands at a random phase of the ripple and PGD-10's fixed step of 0.025 keeps
    oscillating around a trough, while APGD halves its step into the trough."""
    return ((x[:, 0] - 0.5) + AMP * jnp.sin(OMEGA * x[:, 1]))[:, None]


def exact_robust_2d(f, x, y, eps, grid=401):
    """Robust per example by an exhaustive grid over [x - eps, x + eps] ∩ [0, 1]^2
    (spacing 2 eps / 400 = 5e-4: the ripple's minimum is missed by at most
    0.05 (1 - cos(60 * 2.5e-4)) < 1e-5)."""
    t = np.linspace(-1.0, 1.0, grid)
    out = np.empty(len(x), bool)
    for i in range(len(x)):
        g1 = np.clip(x[i, 0] + eps * t, 0, 1)
        g2 = np.clip(x[i, 1] + eps * t, 0, 1)
        pts = np.stack(np.meshgrid(g1, g2, indexing="ij"), -1).reshape(-1, 2)
        out[i] = np.min(y[i] * np.asarray(f(jnp.asarray(pts, jnp.float32)))[:, 0]) > 0
    return out


@pytest.mark.slow
def test_2d_exact_grid_reference():
    """Suite within 0.02 of the exact robust accuracy; FGSM and PGD-10 are not (~10 s)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0.1, 0.9, size=(N2, 2)).astype(np.float32)
    y = np.where(x[:, 0] > 0.5, 1, -1)
    exact = np.mean(exact_robust_2d(f_ripple, x, y, EPS2))
    suite = E.robust_accuracy(f_ripple, x, y, EPS2)
    loss = A.predictor_loss(f_ripple, "bce")
    ypm = y[:, None].astype(np.float32)
    fgsm = A.accuracy(f_ripple(A.fgsm(loss, x, ypm, EPS2)), ypm)
    pgd10 = A.accuracy(f_ripple(A.pgd(loss, x, ypm, EPS2, steps=10)), ypm)
    print(f"exact {exact:.3f}  suite {suite:.3f}  FGSM {fgsm:.3f}  PGD-10 {pgd10:.3f}")
    assert suite >= exact - 1e-9  # an attack can never beat the exact worst case
    assert suite - exact <= 0.02
    assert fgsm - exact > 0.02 and pgd10 - exact > 0.02


def f_well(x):
    """1-D binary model with a narrow well: margin of label -1 is (x - 0.537)^2 - 1e-6, so an
    example is broken only within 1e-3 of 0.537 (every point below is within eps of it)."""
    return (1e-6 - (x[:, :1] - 0.537) ** 2) * 1e3


def test_apgd_step_halving_reaches_a_narrow_optimum():
    x = np.linspace(0.45, 0.62, 64, dtype=np.float32)[:, None]
    x = x[np.abs(x[:, 0] - 0.537) > 2e-3]  # all clean-correct
    y = -np.ones(len(x), int)
    rep = E.robust_evaluation(f_well, x, y, EPS, attacks=["apgd-ce"], n_restarts=1, batch_size=64)
    assert rep.clean_accuracy == 1.0 and rep.robust_accuracy == 0.0  # halving 0.2 -> < 1e-3
    loss = A.predictor_loss(f_well, "bce")
    ypm = y[:, None].astype(np.float32)
    pgd10 = A.accuracy(f_well(A.pgd(loss, x, ypm, EPS, steps=10)), ypm)
    assert pgd10 > 0.5  # fixed steps of 0.025 jump over the well


def _f_params(params, x):
    """Linear 4-class model with its weights as a dynamic argument."""
    return x @ params["w"] + params["b"]


def test_params_are_dynamic_and_give_the_closed_form_for_each_model():
    """``predict(params, x)``: two different linear models through one function object each give
    their own exact worst case (so the weights are not baked into a shared compilation)."""
    params = {"w": jnp.asarray(W_MC), "b": jnp.asarray(B_MC)}
    rep = E.robust_evaluation(_f_params, X, C_MC, EPS, n_iter=10, batch_size=32, params=params)
    np.testing.assert_array_equal(rep.robust, exact_margin_multiclass() > 0)
    direct = E.robust_evaluation(f_mc, X, C_MC, EPS, n_iter=10, batch_size=32)
    np.testing.assert_array_equal(rep.margin, direct.margin)
    flipped = {"w": -params["w"], "b": -params["b"]}  # another model, same predict object
    rep2 = E.robust_evaluation(_f_params, X, C_MC, EPS, n_iter=10, batch_size=32, params=flipped)
    ref2 = E.robust_evaluation(lambda x: -f_mc(x), X, C_MC, EPS, n_iter=10, batch_size=32)
    np.testing.assert_array_equal(rep2.robust, ref2.robust)
    assert rep2.clean_accuracy != rep.clean_accuracy
