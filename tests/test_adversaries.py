"""ntknb.adversaries: the adversaries training takes as values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntknb import adversaries, attacks

W = jnp.array([1.0, -2.0, 0.5, -0.25])


def linear_loss(x, y):  # per-example loss w.x * y: its input gradient is y w
    return (x @ W) * y


def test_nfgsm_is_the_closed_form_of_de_jorge_alg1():
    x = jnp.full((3, 4), 0.5)
    y = jnp.array([1.0, -1.0, 1.0])
    key = jax.random.PRNGKey(3)
    eps = 0.1
    got = adversaries.NFGSM(eps)(linear_loss, x, y, key)
    eta = jax.random.uniform(key, x.shape, x.dtype, -2 * eps, 2 * eps)
    want = np.clip(x + eta + eps * np.sign(y[:, None] * W), 0, 1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-7)
    assert float(jnp.max(jnp.abs(got - x))) > eps  # not projected back on the eps-ball
    assert float(jnp.max(jnp.abs(got - x))) <= 3 * eps + 1e-7


def test_nfgsm_stays_in_the_image_range_and_without_noise_is_fgsm():
    x = jnp.array([[0.0, 1.0, 0.02, 0.97]])
    y = jnp.array([1.0])
    out = adversaries.NFGSM(0.3)(linear_loss, x, y, jax.random.PRNGKey(0))
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    x = jnp.full((2, 4), 0.5)
    y = jnp.array([1.0, -1.0])
    np.testing.assert_allclose(adversaries.NFGSM(0.1, noise_factor=0.0)(linear_loss, x, y, jax.random.PRNGKey(1)),
                               attacks.fgsm(linear_loss, x, y, 0.1), atol=1e-7)


@pytest.mark.parametrize("kw", [dict(eps=-0.1), dict(eps=0.1, step_size=0.0), dict(eps=0.1, noise_factor=-1.0)])
def test_nfgsm_rejects_bad_settings(kw):
    with pytest.raises(ValueError, match=list(kw)[-1]):
        adversaries.NFGSM(**kw)
