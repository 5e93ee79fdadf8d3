"""Tests for ntknb.lazy: the finite-width vs infinite-width measurements of chapter 00."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntknb  # noqa: F401  (compat shim before neural_tangents)
from ntknb import architectures, kernels, lazy


def test_loglog_slope_recovers_power_law():
    x = np.array([1.0, 4.0, 16.0, 64.0])
    slope, intercept = lazy.loglog_slope(x, 3.0 * x**-0.5)
    assert slope == pytest.approx(-0.5, abs=1e-12)
    assert np.exp(intercept) == pytest.approx(3.0, rel=1e-12)


@pytest.mark.parametrize("x, y", [([1.0], [1.0]), ([1.0, -2.0], [1.0, 2.0]), ([1.0, 2.0], [1.0, 2.0, 3.0])])
def test_loglog_slope_rejects_bad_input(x, y):
    with pytest.raises(ValueError, match="x and y"):
        lazy.loglog_slope(x, y)


def test_empirical_ntk_error_shrinks_with_width():
    x = jax.random.uniform(jax.random.PRNGKey(0), (6, 3, 3, 1))
    errors = lazy.empirical_ntk_errors(
        lambda w: architectures.fully_connected(depth=1, width=w), [16, 4096], x, n_seeds=2, progress=False
    )
    assert errors.shape == (2, 2)
    assert errors[1].mean() < 0.3 * errors[0].mean()


def test_empirical_ntk_errors_rejects_bad_input():
    x = jnp.ones((2, 2, 2, 1))
    with pytest.raises(ValueError, match="widths"):
        lazy.empirical_ntk_errors(lambda w: architectures.fully_connected(width=w), [], x)
    with pytest.raises(ValueError, match="n_seeds"):
        lazy.empirical_ntk_errors(lambda w: architectures.fully_connected(width=w), [4], x, n_seeds=0)


def test_residual_modes_follow_explicit_linearised_gradient_descent():
    # Linear model in function space: R_{s+1} = (I - eta Theta / N) R_s, R_0 = -Y.
    rng = np.random.default_rng(1)
    a = rng.normal(size=(7, 7))
    theta = a @ a.T + 0.5 * np.eye(7)
    y = rng.normal(size=(7, 2))
    pred = kernels.KernelPredictor.fit(theta, y, dtype=np.float64)
    eta = 0.8 * 2 * y.size / np.linalg.eigvalsh(theta)[-1]
    steps = np.array([0, 1, 3, 10])
    r, residuals = -y, []
    for s in range(steps[-1] + 1):
        if s in steps:
            residuals.append(r.copy())
        r = r - eta * theta @ r / y.size
    measured = lazy.residual_modes(np.asarray(pred.eigenvectors), np.stack(residuals))
    theory = lazy.gradient_descent_residual_modes(pred, steps, eta)
    np.testing.assert_allclose(measured, theory, rtol=1e-8, atol=1e-12)
    # and the gradient-flow limit of the same predictor at small steps
    flow = np.linalg.norm(np.asarray(pred.residual_projections(np.array([0.0]))), axis=-1)
    np.testing.assert_allclose(theory[0], flow[0], rtol=1e-10)


def test_gradient_descent_residual_modes_rejects_bad_learning_rate():
    pred = kernels.KernelPredictor.fit(np.eye(3), np.ones((3, 1)))
    with pytest.raises(ValueError, match="learning_rate"):
        lazy.gradient_descent_residual_modes(pred, [0, 1], 0.0)
