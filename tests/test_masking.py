"""ntknb.masking: the gradient-masking checks pass on a healthy model and catch masked ones."""

import ntknb  # noqa: F401

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntknb import masking as M

D, N, EPS = 4, 60, 0.1
RNG = np.random.default_rng(0)
X = RNG.uniform(size=(N, D)).astype(np.float32)
W = RNG.normal(size=(D, 1)).astype(np.float32)
B = np.float32(-0.5 * W.sum())  # the boundary crosses the cube's centre
Y = np.where(X @ W[:, 0] + B > 0, 1, -1)  # clean accuracy 1
KW = dict(n_iter=10, batch_size=32)


def f_lin(x):
    return x @ W + B


def f_surrogate(x):
    return x @ (W + 0.1) + B


def f_saturated(x):
    """Same decisions, logits x 1e4: the cross-entropy's gradient underflows to exactly 0."""
    return 1e4 * (x @ W + B)


def f_blocked(x):
    """Same decisions, no gradient at all (a non-differentiable defence, BPDA-style)."""
    return jax.lax.stop_gradient(x @ W + B)


def f_constant(x):
    return jnp.ones((x.shape[0], 1))


@pytest.mark.slow
def test_healthy_model_passes():
    """Seven suite runs (eps grid, eps = 1, surrogate) plus FGSM (~10 s)."""
    r = M.gradient_masking_checks(f_lin, X, Y, EPS, surrogate=f_surrogate, **KW)
    assert r.passed, r.text
    assert r.eps_grid[0] == 0 and EPS in r.eps_grid and r.accuracy_vs_eps[0] == 1.0
    assert r.accuracy_large_eps == 0.0
    assert r.iterative_accuracy == pytest.approx(r.single_step_accuracy)  # FGSM is exact for linear
    assert r.transfer_accuracy >= r.iterative_accuracy
    assert r.zero_grad_fraction == 0
    js = r.to_json()
    assert js["passed"] is True and js["eps_grid"] == list(r.eps_grid)
    assert "passed" in r.text.splitlines()[0]


def test_saturated_logits_are_flagged_but_not_fooling_the_suite():
    r = M.gradient_masking_checks(f_saturated, X, Y, EPS, eps_grid=[0.0, EPS], **KW)
    assert r.zero_grad_fraction > 0.5 and not r.zero_grad_ok and not r.passed
    # FGSM sees sign(0) = 0 and does not move; the suite's margin loss still breaks the model
    assert r.single_step_accuracy > r.iterative_accuracy + 0.3
    healthy = M.gradient_masking_checks(f_lin, X, Y, EPS, eps_grid=[0.0, EPS], **KW)
    assert r.iterative_accuracy == healthy.iterative_accuracy < 1.0
    assert "FAIL" in r.text


def test_blocked_gradients_lose_to_transfer():
    r = M.gradient_masking_checks(f_blocked, X, Y, EPS, eps_grid=[0.0, EPS], surrogate=f_lin, **KW)
    assert r.whitebox_stronger is False and r.transfer_accuracy < r.iterative_accuracy
    assert r.zero_grad_fraction == 1.0 and not r.passed


def test_constant_classifier_never_reaches_zero():
    y = np.ones(N, int)
    r = M.gradient_masking_checks(f_constant, X, y, EPS, eps_grid=[0.0, EPS], **KW)
    assert r.accuracy_large_eps == 1.0 and not r.reaches_zero and not r.passed


@pytest.mark.parametrize("kwargs, match", [
    (dict(eps_grid=[-0.1]), "'eps_grid'"),
    (dict(large_eps=0.0), "'large_eps'"),
    (dict(surrogate=3), "'surrogate'"),
    (dict(tol=-1), "'tol'"),
])
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        M.gradient_masking_checks(f_lin, X, Y, EPS, **kwargs)
