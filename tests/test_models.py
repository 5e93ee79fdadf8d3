"""Tests for ntknb.models."""

import jax.numpy as jnp
import numpy as np
import pytest

from ntknb import models


@pytest.mark.parametrize("name, kwargs", [("cnn", dict(width=2, hidden=4)), ("resnet", dict(width=2, stage_sizes=(1, 1)))])
def test_models_output_shape(name, kwargs):
    m = models.make_model(name, 3, **kwargs)
    params, state = models.init_model(m, (8, 8, 1))
    out = m.apply({"params": params, **state}, jnp.zeros((5, 8, 8, 1)), train=False)
    assert out.shape == (5, 3)
    assert ("batch_stats" in state) == (name == "resnet")


def test_cnn_is_seven_layers():
    params, _ = models.init_model(models.CNN(10, width=2, hidden=4), (8, 8, 3))
    assert len(params) == 7  # 4 conv + 3 dense


def test_make_model_rejects_unknown():
    with pytest.raises(ValueError, match="model"):
        models.make_model("vgg", 10)


def test_cnn_examples_are_independent():
    m = models.CNN(4, width=2, hidden=4)
    params, _ = models.init_model(m, (8, 8, 1))
    x = np.random.default_rng(0).random((3, 8, 8, 1)).astype(np.float32)
    full = m.apply({"params": params}, x)
    single = m.apply({"params": params}, x[1:2])
    np.testing.assert_allclose(full[1:2], single, rtol=1e-5, atol=1e-6)
