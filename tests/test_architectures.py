"""Tests of ntknb.architectures: registry, shapes on NHWC inputs, valid analytic kernels."""

import ntknb  # noqa: F401  (compat shim before neural_tangents)

import dataclasses

import jax
import numpy as np
import pytest

from ntknb import architectures as A

KEY = jax.random.PRNGKey(0)
# cheap widths: the analytic kernel does not depend on them
SMALL = {"fc": dict(width=16), "conv": dict(channels=4), "myrtle": dict(channels=4)}


def _small(name):
    return next(v for k, v in SMALL.items() if name.startswith(k))


@pytest.mark.parametrize("name", A.ARCHITECTURE_NAMES)
def test_registry_entry_shapes_and_kernel(name):
    arch = A.get_architecture(name, out_dim=3, **_small(name))
    assert isinstance(arch, A.Architecture) and arch.out_dim == 3 and arch.description
    hw = 4  # myrtle: 4x4 -> pool -> 2x2 -> pool -> 1x1 -> global pool
    x = jax.random.uniform(KEY, (4, hw, hw, 2))
    out_shape, params = arch.init_fn(KEY, (-1, hw, hw, 2))
    assert out_shape[-1] == 3
    assert arch.apply_fn(params, x).shape == (4, 3)
    assert jax.tree_util.tree_structure(arch.init(KEY, x.shape)) == \
        jax.tree_util.tree_structure(params)
    both = arch.kernel_fn(x, None, ("nngp", "ntk"))  # one compilation for both kernels
    for kind in ("ntk", "nngp"):
        k = np.asarray(getattr(both, kind), dtype=np.float64)
        assert k.shape == (4, 4)
        np.testing.assert_allclose(k, k.T, rtol=1e-5, atol=1e-6)
        lam = np.linalg.eigvalsh(0.5 * (k + k.T))
        assert lam.min() > -1e-4 * lam.max(), (name, kind, lam)
    if not name.startswith("myrtle"):  # (compiling deep myrtle kernels again is slow)
        cross = np.asarray(arch.kernel_fn(x[:2], x, "ntk"))
        np.testing.assert_allclose(cross, np.asarray(both.ntk)[:2], rtol=1e-3, atol=1e-5)


def test_fully_connected_structure_and_defaults():
    arch = A.fully_connected(depth=3, width=8)
    assert arch.name == "fc3"
    hp = arch.hyperparameters
    assert hp["parameterization"] == "ntk" and hp["b_std"] == 0.1
    assert np.isclose(hp["W_std"], np.sqrt(2))
    _, params = arch.init_fn(KEY, (-1, 2, 2, 1))
    dense = [p for p in params if p]  # Flatten / Relu have empty params
    assert [p[0].shape for p in dense] == [(4, 8), (8, 8), (8, 8), (8, 1)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        arch.name = "x"
    with pytest.raises(TypeError):
        arch.hyperparameters["depth"] = 5


def test_registry_names_and_overrides():
    assert {"fc1", "fc2", "fc3", "conv1", "conv2", "myrtle5"} <= set(A.ARCHITECTURE_NAMES)
    assert A.get_architecture("fc2").hyperparameters["depth"] == 2
    assert A.get_architecture("fc2", width=32).hyperparameters["width"] == 32
    assert A.get_architecture("conv2-gap").hyperparameters["readout"] == "gap"
    assert A.get_architecture("fc1", depth=2).name == "fc1(depth=2)"


def test_bad_name_lists_allowed_names():
    with pytest.raises(ValueError, match="'name' must be one of") as err:
        A.get_architecture("resnet50")
    for name in A.ARCHITECTURE_NAMES:
        assert repr(name) in str(err.value)
    with pytest.raises(ValueError, match="unknown parameter.*'widht'.*allowed"):
        A.get_architecture("fc1", widht=3)


@pytest.mark.parametrize("factory, kwargs, param", [
    (A.fully_connected, dict(depth=0), "depth"),
    (A.fully_connected, dict(depth=1.5), "depth"),
    (A.fully_connected, dict(width=0), "width"),
    (A.fully_connected, dict(width=True), "width"),
    (A.fully_connected, dict(out_dim=0), "out_dim"),
    (A.fully_connected, dict(W_std=-1.0), "W_std"),
    (A.fully_connected, dict(b_std="a"), "b_std"),
    (A.fully_connected, dict(parameterization="mup"), "parameterization"),
    (A.convolutional, dict(channels=0), "channels"),
    (A.convolutional, dict(kernel_size=0), "kernel_size"),
    (A.convolutional, dict(readout="max"), "readout"),
    (A.myrtle, dict(depth=6), "depth"),
])
def test_bad_hyperparameters_name_the_parameter(factory, kwargs, param):
    with pytest.raises(ValueError, match=f"'{param}'"):
        factory(**kwargs)


def test_no_bias_allowed():
    arch = A.fully_connected(depth=1, width=8, b_std=None)
    x = jax.random.uniform(KEY, (3, 2, 2, 1))
    assert np.all(np.isfinite(arch.kernel_fn(x, None, "ntk")))
