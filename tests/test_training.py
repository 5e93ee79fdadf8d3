"""Tests for ntknb.training."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntknb  # noqa: F401  (compat shim before neural_tangents)
from ntknb import kernels, training


def test_log_spaced_steps_sorted_unique_and_bounded():
    steps = training.log_spaced_steps(1000, 20)
    assert steps[0] == 0 and steps[-1] == 1000
    assert np.all(np.diff(steps) > 0)
    assert len(steps) <= 21


def test_full_batch_gd_on_linear_model_matches_closed_form():
    # For f(x) = x @ w, GD on ½·mean((Xw - y)²) is linear: w_{s+1} = w_s - η Xᵀ(Xw_s - y)/(n·k).
    with kernels.x64():
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.normal(size=(8, 3)))
        y = jnp.asarray(rng.normal(size=(8, 1)))
        w0 = jnp.zeros((3, 1))
        eta, n_steps = 0.3, 25
        run = training.train_full_batch_gd(lambda w, xx: xx @ w, w0, x, y, eta, [0, 5, n_steps], progress=False)
        w = np.zeros((3, 1))
        for _ in range(n_steps):
            w = w - eta * np.asarray(x).T @ (np.asarray(x) @ w - np.asarray(y)) / y.size
        np.testing.assert_allclose(run.params[-1], w, rtol=1e-10)
        np.testing.assert_allclose(run.times, [0, 5 * eta, n_steps * eta])
        assert run.losses[-1] < run.losses[0]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(learning_rate=0.0, checkpoints=[0, 1]), "learning_rate"),
        (dict(learning_rate=0.1, checkpoints=[3, 1]), "checkpoints"),
        (dict(learning_rate=0.1, checkpoints=[]), "checkpoints"),
    ],
)
def test_full_batch_gd_rejects_bad_input(kwargs, name):
    x, y = jnp.ones((2, 3)), jnp.ones((2, 1))
    with pytest.raises(ValueError, match=name):
        training.train_full_batch_gd(lambda w, xx: xx @ w, jnp.zeros((3, 1)), x, y, **kwargs)
