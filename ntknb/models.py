"""Finite-width flax (linen) classifiers trained in the kernel-dynamics chapters.

* :class:`CNN` — a plain ReLU convolutional net in the spirit of the 7-layer
  network of ``tsilivis2022ntk`` (Sec. 5): four 3×3 convolutions in two
  blocks (``width``, ``2·width`` channels, each block ending in 2×2 max (or
  average) pooling) followed by three dense layers (``hidden``, ``hidden``,
  ``num_classes``).  No normalisation, so examples are independent and the
  empirical NTK is a function of the parameters alone.
* :class:`TinyCNN` — one 3×3 convolution (``filters`` channels, zero padding 1, bias), ReLU,
  flatten, one dense layer: the CNN with 4 filters of ``andriushchenko2020understanding``
  (Sec. 3, "Training CNN with 4 filters"), the smallest network in which FGSM training
  overfits catastrophically on CIFAR-10.  No input normalisation, as in their code.
* :class:`ResNet` — a small pre-activation-free ResNet with BatchNorm (``he2016deep``,
  BasicBlock), ``stage_sizes`` blocks per stage and ``width·2^s`` channels
  in stage ``s``; used by the BatchNorm chapter (``li2023rethinking``,
  Sec. 4).  ``train=True`` normalises with batch statistics
  and updates the ``batch_stats`` collection; ``train=False`` uses the running
  averages.

Every model maps NHWC images in ``[0, 1]`` of shape ``(n, H, W, C)`` to logits
``(n, num_classes)`` and is called as ``model.apply(variables, x, train=...)``.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["CNN", "TinyCNN", "ResNet", "init_model", "make_model", "MODELS"]


class CNN(nn.Module):
    """conv(w)-conv(w)-pool-conv(2w)-conv(2w)-pool-dense(h)-dense(h)-dense(k), ReLU.

    Attributes:
      num_classes: k, the number of logits.
      width: w, channels of the first block (the second has 2w).
      hidden: h, units of the two hidden dense layers.
      pool: ``"avg"`` or ``"max"`` pooling at the end of each conv block.

    Inputs in [0, 1] are first centred and scaled, x ↦ (x − ½)/¼ (inside the model, so
    attacks still act in pixel space).
    """

    num_classes: int = 10
    width: int = 16
    hidden: int = 64
    pool: str = "max"

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        del train  # no batch-dependent layers
        w = self.width
        pool = {"avg": nn.avg_pool, "max": nn.max_pool}[self.pool]
        x = (x - 0.5) / 0.25
        for channels in (w, 2 * w):
            x = nn.relu(nn.Conv(channels, (3, 3))(x))
            x = nn.relu(nn.Conv(channels, (3, 3))(x))
            x = pool(x, (2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(self.hidden)(x))
        x = nn.relu(nn.Dense(self.hidden)(x))
        return nn.Dense(self.num_classes)(x)


class TinyCNN(nn.Module):
    """conv(filters, 3×3, padding 1, bias)-ReLU-flatten-dense(k) (``andriushchenko2020understanding``).

    Attributes:
      num_classes: k, the number of logits.
      filters: output channels of the single convolution (4 in the paper).

    Inputs ``(n, H, W, C)`` in [0, 1] are used as they are (no normalisation); logits ``(n, k)``.
    """

    num_classes: int = 10
    filters: int = 4

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        del train  # no batch-dependent layers
        x = nn.relu(nn.Conv(self.filters, (3, 3), padding=1)(x))
        return nn.Dense(self.num_classes)(x.reshape((x.shape[0], -1)))


class _BasicBlock(nn.Module):
    channels: int
    strides: int = 1

    @nn.compact
    def __call__(self, x, train: bool):
        norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9)  # noqa: E731
        y = nn.Conv(self.channels, (3, 3), strides=(self.strides,) * 2, use_bias=False)(x)
        y = nn.relu(norm()(y))
        y = nn.Conv(self.channels, (3, 3), use_bias=False)(y)
        y = norm()(y)
        if x.shape[-1] != self.channels or self.strides != 1:
            x = nn.Conv(self.channels, (1, 1), strides=(self.strides,) * 2, use_bias=False)(x)
            x = norm()(x)
        return nn.relu(x + y)


class ResNet(nn.Module):
    """Small BasicBlock ResNet with BatchNorm (He et al. 2016).

    stem conv(w)-BN-ReLU, then ``len(stage_sizes)`` stages of BasicBlocks with
    ``w·2^s`` channels (stride 2 at the start of every stage but the first),
    global average pooling and a dense layer to ``num_classes`` logits.
    ``stage_sizes=(2, 2, 2, 2)`` with ``width=64`` is ResNet-18.
    """

    num_classes: int = 10
    width: int = 16
    stage_sizes: Sequence[int] = (1, 1, 1)

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        x = (x - 0.5) / 0.25
        x = nn.Conv(self.width, (3, 3), use_bias=False)(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x))
        for s, n_blocks in enumerate(self.stage_sizes):
            for b in range(n_blocks):
                x = _BasicBlock(self.width * 2**s, strides=2 if (s > 0 and b == 0) else 1)(x, train)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes)(x)


MODELS = {"cnn": CNN, "tiny_cnn": TinyCNN, "resnet": ResNet}


def make_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    """The model ``MODELS[name](num_classes=num_classes, **kwargs)``.

    Raises ``ValueError`` for an unknown ``name`` (allowed: the keys of :data:`MODELS`).
    """
    if name not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}; got {name!r}")
    if not (isinstance(num_classes, int) and num_classes >= 1):
        raise ValueError(f"num_classes must be an integer >= 1; got {num_classes!r}")
    return MODELS[name](num_classes=num_classes, **kwargs)


def init_model(model: nn.Module, input_shape: Sequence[int], seed: int = 0) -> tuple[dict, dict]:
    """Initialise ``model`` for inputs of shape ``(H, W, C)``.

    Returns ``(params, state)``: the ``"params"`` collection and a dict of the
    other collections (``{"batch_stats": ...}`` for BatchNorm models, else ``{}``),
    so that ``model.apply({"params": params, **state}, x, train=False)`` works.
    """
    variables = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, *input_shape), jnp.float32), train=False)
    variables = dict(variables)
    params = variables.pop("params")
    return params, variables
