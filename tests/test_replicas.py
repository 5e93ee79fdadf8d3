"""ntknb.replicas: batched (vmap) replicas equal the sequential runs, seed by seed."""

import ntknb  # noqa: F401

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntknb import replicas as R

X = jnp.linspace(-1.0, 1.0, 32)[:, None]
Y = jnp.sin(3.0 * X)


def tiny_training(key):
    """A 1-16-1 tanh network trained by 20 steps of full-batch GD (lax loop): pure in key."""
    k1, k2 = jax.random.split(key)
    params = (jax.random.normal(k1, (1, 16)), jax.random.normal(k2, (16, 1)) / 4.0)

    def loss(p):
        return jnp.mean((jnp.tanh(X @ p[0]) @ p[1] - Y) ** 2)

    def step(_, p):
        g = jax.grad(loss)(p)
        return jax.tree_util.tree_map(lambda a, b: a - 0.1 * b, p, g)

    params = jax.lax.fori_loop(0, 20, step, params)
    return {"loss": loss(params), "w_norm": jnp.sum(params[0] ** 2)}


def test_vmap_equals_sequential_seed_by_seed():
    b = R.run_replicas(tiny_training, seeds=[3, 1, 4], mode="vmap")
    s = R.run_replicas(jax.jit(tiny_training), seeds=[3, 1, 4], mode="sequential")
    assert b.mode == "vmap" and s.mode == "sequential" and b.seeds == (3, 1, 4)
    assert b.values["loss"].shape == (3,)
    np.testing.assert_allclose(b.values["loss"], s.values["loss"], rtol=1e-4)
    one = tiny_training(jax.random.PRNGKey(4))  # replica i is the run with seed seeds[i]
    np.testing.assert_allclose(b.values["w_norm"][2], one["w_norm"], rtol=1e-4)
    assert len(set(np.round(b.values["loss"], 6))) == 3  # different seeds differ


def test_batch_size_chunks_and_interval():
    full = R.run_replicas(tiny_training, seeds=3)  # auto: vmap on an accelerator, jit loop on CPU
    chunked = R.run_replicas(tiny_training, seeds=3, mode="vmap", batch_size=2)  # 2 + 1 (padded)
    np.testing.assert_allclose(full.values["loss"], chunked.values["loss"], rtol=1e-4)
    iv = full.interval(lambda v: v["loss"])
    assert iv.n == 3 and iv.low < iv.estimate < iv.high
    assert iv.estimate == pytest.approx(float(np.mean(full.values["loss"])))
    with pytest.raises(ValueError, match="shape"):
        full.interval()


def test_auto_falls_back_for_untraceable_experiments():
    """vmap (accelerator) or jit (CPU) fails to trace a Python branch: a plain loop runs."""
    def python_branch(key):
        u = jax.random.uniform(key)
        return {"u": u, "big": 1.0 if u > 0.5 else 0.0}  # Python bool of a traced value

    r = R.run_replicas(python_branch, seeds=3)
    assert r.mode == "sequential" and "TracerBoolConversionError" in r.note
    assert r.values["u"].shape == (3,)
    with pytest.raises(jax.errors.TracerBoolConversionError):
        R.run_replicas(python_branch, seeds=3, mode="vmap")


@pytest.mark.parametrize("kwargs, match", [
    (dict(seeds=0), "'seeds'"),
    (dict(seeds=[1, 1]), "must not repeat"),
    (dict(seeds="abc"), "'seeds'"),
    (dict(mode="parallel"), "'mode'"),
    (dict(batch_size=0), "'batch_size'"),
])
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        R.run_replicas(tiny_training, **kwargs)


_TWO_DEVICE_BODY = """
import jax.numpy as jnp
from ntknb import replicas
x = jax.random.normal(jax.random.PRNGKey(123), (16, 4))

def experiment(key):
    w = jax.random.normal(key, (4,))
    y = x @ jnp.ones(4)
    def step(w, _):
        return w - 0.05 * x.T @ (x @ w - y) / 16, None
    w, _ = jax.lax.scan(step, w, None, length=20)
    return {"loss": jnp.mean((x @ w - y) ** 2), "w": w}

for mode in ("vmap", "auto"):
    for name, devices in (("one", devs[:1]), ("two", devs)):
        r = replicas.run_replicas(experiment, seeds=[3, 5, 8, 13, 21], mode=mode, batch_size=3,
                                  devices=devices)
        out[f"{mode}-{name}"] = [r.values["loss"].tolist(), r.values["w"].tolist()]
"""


def test_replicas_spread_over_two_devices_give_the_same_numbers(on_two_host_devices):
    """Forced two host devices: sharded vmap and round-robin replicas equal one device's."""
    out = on_two_host_devices(_TWO_DEVICE_BODY)
    assert out["used"] == [0, 1]
    for mode in ("vmap", "auto"):
        np.testing.assert_array_equal(np.asarray(out[f"{mode}-one"][0]), np.asarray(out[f"{mode}-two"][0]))
        np.testing.assert_array_equal(np.asarray(out[f"{mode}-one"][1]), np.asarray(out[f"{mode}-two"][1]))
    np.testing.assert_allclose(np.asarray(out["vmap-one"][0]), np.asarray(out["auto-one"][0]), rtol=1e-5)


def test_devices_must_be_jax_devices():
    with pytest.raises(ValueError, match="parameter 'devices'"):
        R.run_replicas(lambda key: key, seeds=2, devices=["gpu:0"])
