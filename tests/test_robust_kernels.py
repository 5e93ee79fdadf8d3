"""Tests for ntknb.robust_kernels: feature-subset machines, whole-machine attacks and
adversarial training of a fixed kernel."""

import ntknb  # noqa: F401  (must precede neural_tangents)

import jax
import numpy as np
import pytest

from ntknb._compat import x64
from ntknb import architectures, attacks, features, kernels
from ntknb import robust_kernels as rk

ARCH = architectures.get_architecture("fc1")


def _problem(n=24, m=16, seed=0, shape=(3, 3, 1)):
    """Binary task on tiny images: the label is the sign of a brightness contrast."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.2, 0.8, size=(n + m,) + shape).astype(np.float32)
    score = x[:, 0].mean(axis=(1, 2)) - x[:, -1].mean(axis=(1, 2))
    y = np.where(score > 0, 1.0, -1.0).astype(np.float32)[:, None]
    return x[:n], y[:n], x[n:], y[n:]


@pytest.fixture(scope="module")
def fitted():
    x, y, xt, yt = _problem()
    with x64():
        k = kernels.kernel_matrix(ARCH.kernel_fn, x, dtype=np.float64)
        pred = kernels.KernelPredictor.fit(k, y, dtype=np.float64)
    return x, y, xt, yt, np.asarray(k), pred


def test_subset_of_all_features_is_the_full_predictor(fitted):
    x, y, xt, yt, k, pred = fitted
    n = pred.n_train
    alpha_all = rk.subset_weights(pred, np.arange(n))
    np.testing.assert_allclose(alpha_all, np.asarray(pred.weights(np.inf)), rtol=1e-8,
                               atol=1e-8 * np.abs(alpha_all).max())


def test_subset_machine_is_sum_of_its_features(fitted):
    x, y, xt, yt, k, pred = fitted
    S = [0, 2, 5]
    k_test = np.asarray(kernels.kernel_matrix(ARCH.kernel_fn, xt, x, dtype=np.float64))
    feats = np.asarray(pred.eigen_features(k_test, indices=S)).sum(axis=0)
    np.testing.assert_allclose(k_test @ rk.subset_weights(pred, S), feats, rtol=1e-8, atol=1e-10)
    assert np.all(rk.subset_weights(pred, []) == 0)


def _sweep(rob, clean=None):
    rob = np.asarray(rob, float)
    return features.FeatureSweep(indices=np.arange(rob.size), eigenvalues=np.arange(rob.size, 0, -1.0),
                                 clean_accuracy=np.full(rob.size, 0.6) if clean is None else clean,
                                 robust_accuracy=rob, eps=0.1, loss="bce", n_test=10)


def test_selection_rules():
    sw = _sweep([0.5, 0.1, 0.4, 0.4, 0.0])
    assert list(rk.select_by_robustness(sw, 0.4)) == [0, 2, 3]
    assert list(rk.select_by_robustness(sw, 0.9)) == []
    assert list(rk.select_top_robust(sw, 2)) == [0, 2]  # tie 2/3 -> larger eigenvalue (index 2)
    assert list(rk.select_top_eigen(3)) == [0, 1, 2]
    with pytest.raises(ValueError, match="n_features"):
        rk.select_top_robust(sw, 6)
    with pytest.raises(ValueError, match="sweep"):
        rk.select_by_robustness([0.1], 0.1)
    with pytest.raises(ValueError, match="gamma"):
        rk.select_by_robustness(sw, -1)


def test_evaluate_machines_matches_direct_attacks(fitted):
    x, y, xt, yt, k, pred = fitted
    eps = 0.05
    S = [0, 1, 2, 3]
    alphas = np.stack([rk.subset_weights(pred, S), np.asarray(pred.weights(np.inf))])
    sc = rk.evaluate_machines(ARCH.kernel_fn, x, alphas, xt, yt, eps, pgd_steps=5, batch_size=5)
    for j, a in enumerate(alphas):
        f = kernels.make_predict_fn(ARCH.kernel_fn, x, np.asarray(a, np.float32))
        loss = attacks.predictor_loss(f, "bce")
        assert sc.clean[j] == pytest.approx(attacks.accuracy(f(xt), yt))
        assert sc.fgsm[j] == pytest.approx(attacks.accuracy(f(attacks.fgsm(loss, xt, yt, eps)), yt))
        assert sc.pgd[j] == pytest.approx(
            attacks.accuracy(f(attacks.pgd(loss, xt, yt, eps, steps=5)), yt))
        assert sc.clean_correct[j].tolist() == (np.asarray(f(xt))[:, 0] * yt[:, 0] > 0).tolist()
        adv = attacks.pgd(loss, xt, yt, eps, steps=5)
        assert sc.pgd_correct[j].tolist() == (np.asarray(f(adv))[:, 0] * yt[:, 0] > 0).tolist()
    assert len(sc) == 2 and sc.n_test == xt.shape[0]
    assert sc.pgd_correct.shape == (2, xt.shape[0]) and sc.pgd_correct.dtype == bool
    assert sc.pgd.tolist() == sc.pgd_correct.mean(axis=1).tolist()


def test_row_weighted_loss_gives_the_same_adversarial_points(fitted):
    x, y, xt, yt, k, pred = fitted
    a = np.asarray(pred.weights(np.inf), np.float32)
    f = kernels.make_predict_fn(ARCH.kernel_fn, x, a)
    lf = rk.RowWeightedLoss(ARCH.kernel_fn, "ntk", jax.numpy.asarray(x), 1, "bce")
    ya = lf.augment(yt, a)
    np.testing.assert_allclose(np.asarray(lf.predict(xt, ya)), np.asarray(f(xt)), rtol=1e-5,
                               atol=1e-5)
    x1 = attacks.pgd(lf, xt, ya, 0.05, steps=3)
    x2 = attacks.kernel_pgd(f, xt, yt, 0.05, steps=3)
    assert np.mean(np.isclose(np.asarray(x1), np.asarray(x2), atol=1e-6)) > 0.99


def test_multiclass_machines_run():
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(12, 2, 2, 1)).astype(np.float32)
    lab = rng.integers(0, 3, size=12)
    y = (np.eye(3)[lab] - 1 / 3).astype(np.float32)
    arch = architectures.get_architecture("fc1", out_dim=3)
    k = kernels.kernel_matrix(arch.kernel_fn, x[:8], dtype=np.float64)
    pred = kernels.KernelPredictor.fit(k, y[:8], dtype=np.float64)
    sc = rk.evaluate_machines(arch.kernel_fn, x[:8], rk.subset_weights(pred, range(8)), x[8:],
                              y[8:], 0.1, pgd_steps=2)
    f = kernels.make_predict_fn(arch.kernel_fn, x[:8], np.asarray(pred.weights(np.inf), np.float32))
    assert sc.clean[0] == pytest.approx(attacks.accuracy(f(x[8:]), y[8:]))
    # at eps = 0 the attacks cannot move the inputs: robust accuracy is the clean accuracy
    sc0 = rk.evaluate_machines(arch.kernel_fn, x[:8], rk.subset_weights(pred, range(8)), x[8:], y[8:], 0.0,
                               pgd_steps=2)
    assert sc0.pgd[0] == sc0.fgsm[0] == sc0.clean[0] == sc.clean[0]


def test_first_step_of_standard_training_is_the_ntk_flow(fitted):
    """At eps = 0, full batch, no momentum, kernel-preconditioned: alpha_1 = -lr * dL/df / n."""
    x, y, xt, yt, k, pred = fitted
    n = x.shape[0]
    res = rk.adversarial_train_kernel(ARCH.kernel_fn, x, y, 0.0, steps=1, batch_size=n,
                                      momentum=0.0, k_train_train=k)
    expected = res.learning_rate * (0.5 * y) / n  # d softplus(-y f)/df at f = 0 is -y/2
    np.testing.assert_allclose(res.alpha, expected, rtol=2e-3, atol=1e-6 * np.abs(expected).max())
    assert res.train_loss[0] == pytest.approx(np.log(2.0), rel=1e-5)


def _robust_vs_nonrobust_problem(n, m, seed):
    """A useful non-robust feature (a checkerboard of amplitude 0.03, perfectly predictive) and
    a robust one (brightness shifted by 0.1 y, with noise of standard deviation 0.1)."""
    rng = np.random.default_rng(seed)
    y = np.where(np.arange(n + m) % 2 == 0, 1.0, -1.0)
    rng.shuffle(y)
    p = np.array([[1, -1, 1], [-1, 1, -1], [1, -1, 1]], float)[None, :, :, None]
    b = 0.1 * y + 0.1 * rng.standard_normal(n + m)
    x = (0.5 + 0.03 * y[:, None, None, None] * p + b[:, None, None, None]
         + 0.005 * rng.standard_normal((n + m, 3, 3, 1)))
    x, y = x.astype(np.float32), y[:, None].astype(np.float32)
    return x[:n], y[:n], x[n:], y[n:]


def test_adversarial_training_raises_robust_accuracy():
    x, y, xt, yt = _robust_vs_nonrobust_problem(40, 100, seed=0)
    eps = 0.04  # larger than the checkerboard's amplitude: it can be erased
    k = np.asarray(kernels.kernel_matrix(ARCH.kernel_fn, x, dtype=np.float64))
    pred = kernels.KernelPredictor.fit(k, y, dtype=np.float64)
    clean_alpha = np.asarray(pred.weights(np.inf))
    at = rk.adversarial_train_kernel(ARCH.kernel_fn, x, y, eps, steps=50, batch_size=40,
                                     k_train_train=k, seed=0)
    sc = rk.evaluate_machines(ARCH.kernel_fn, x, np.stack([clean_alpha, at.alpha]), xt, yt, eps,
                              pgd_steps=10)
    assert sc.pgd[0] < 0.3, (sc.clean, sc.pgd)  # the clean-trained machine is not robust
    assert sc.pgd[1] > sc.pgd[0] + 0.4, (sc.clean, sc.pgd)
    assert sc.pgd[1] > 0.65 and sc.clean[1] > 0.75


def test_best_robust_only():
    clean = [0.9, 0.8, 0.7, 0.5]
    robust = [0.1, 0.5, 0.4, 0.6]
    assert rk.best_robust_only(clean, robust, 0.45) == (1, True)
    assert rk.best_robust_only(clean, robust, 0.9) == (3, False)
    with pytest.raises(ValueError):
        rk.best_robust_only([], [], 0.5)


def test_bad_arguments(fitted):
    x, y, xt, yt, k, pred = fitted
    a = rk.subset_weights(pred, [0])
    with pytest.raises(ValueError, match="alphas"):
        rk.evaluate_machines(ARCH.kernel_fn, x, a[:3], xt, yt, 0.1)
    with pytest.raises(ValueError, match="eps"):
        rk.evaluate_machines(ARCH.kernel_fn, x, a, xt, yt, -0.1)
    with pytest.raises(ValueError, match="loss"):
        rk.evaluate_machines(ARCH.kernel_fn, x, a, xt, yt, 0.1, loss="ce")
    with pytest.raises(ValueError, match="precondition"):
        rk.adversarial_train_kernel(ARCH.kernel_fn, x, y, 0.1, precondition="adam", k_train_train=k)
    with pytest.raises(ValueError, match="momentum"):
        rk.adversarial_train_kernel(ARCH.kernel_fn, x, y, 0.1, momentum=1.0)
    with pytest.raises(ValueError, match="checkpoints"):
        rk.adversarial_train_kernel(ARCH.kernel_fn, x, y, 0.1, steps=2, checkpoints=[5])


def test_standard_evaluation_of_every_machine_matches_a_direct_one(fitted):
    """``standard=``: each machine under ntknb.evaluation's suite equals the suite run directly on
    ``kernels.make_predict_fn`` of that machine, and is never above its PGD accuracy by more than
    rounding (the suite contains a PGD run and APGD)."""
    from ntknb import evaluation

    x, y, xt, yt, k, pred = fitted
    eps = 0.08
    alphas = np.stack([rk.subset_weights(pred, [0, 1]), np.asarray(pred.weights(np.inf))])
    sc = rk.evaluate_machines(ARCH.kernel_fn, x, alphas, xt, yt, eps, pgd_steps=5, batch_size=8,
                              standard=dict(n_iter=10), seed=3)
    assert sc.standard_correct.shape == (2, xt.shape[0]) and sc.standard_correct.dtype == bool
    for j, a in enumerate(alphas):
        f = kernels.make_predict_fn(ARCH.kernel_fn, x, np.asarray(a, np.float32))
        rep = evaluation.robust_evaluation(f, xt, yt, eps, seed=3, n_iter=10, batch_size=8)
        assert sc.standard[j] == pytest.approx(rep.robust_accuracy, abs=1.5 / xt.shape[0])
        assert not np.any(sc.standard_correct[j] & ~sc.clean_correct[j])
    assert np.all(sc.standard <= sc.pgd + 1e-9)
    assert rk.evaluate_machines(ARCH.kernel_fn, x, alphas, xt, yt, eps, pgd_steps=5).standard is None
