"""Adversaries as values, and the small rules every network attack shares.

Adversarial training (:func:`ntknb.training.fit`) takes the attack it trains on as a value,
``TrainConfig(mode="fgsm", adversary=FGSM(eps, random_start=True))``: an *adversary* is any
hashable callable ``adversary(loss_fn, x, y, key) -> x_adv`` (traceable: it runs inside the
jitted training step) with an ``eps`` attribute. The library provides

* :class:`FGSM` — FGSM ``goodfellow2015explaining`` from ``x`` (step ``eps`` by default), or
  from a uniform random point of the ε-ball (FGSM-RS, ``wong2020fast``);
* :class:`NFGSM` — N-FGSM ``dejorge2022make``: FGSM from a random point of the *wider* box
  ``x + U(-k eps, k eps)`` (``k`` = 2), step ``eps``, not projected back on the ε-ball;
* :class:`PGD` — PGD ``madry2018towards`` with the step of :func:`ntknb.attacks.pgd_step_size`.

A chapter defines its own adversaries next to its experiment (e.g. the noise-initialised
FGSM of chapter 06, :class:`ntknb.chapters.ch06_overfitting.variants.NoiseFGSM`); the core does not
grow a knob per chapter.

Shared rules: :func:`network_loss` (the per-example cross-entropy of a network in evaluation
mode, the loss every network attack ascends) and :func:`predicted_class`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import jax
import jax.numpy as jnp

from ntknb import attacks

__all__ = ["FGSM", "NFGSM", "PGD", "network_loss", "predicted_class", "pgd_step_size"]

pgd_step_size = attacks.pgd_step_size


def network_loss(apply_fn: Callable, params, state) -> Callable:
    """``loss(x, labels) -> (n,)``: softmax cross-entropy (:func:`ntknb.attacks.cross_entropy`)
    of ``apply_fn(params, state, x, train=False)`` — the frozen network an attack ascends."""

    def loss(xx, yy):
        return attacks.cross_entropy(apply_fn(params, state, xx, False)[0], yy)

    return loss


def predicted_class(logits) -> jnp.ndarray:
    """The predicted class of each row of ``logits`` (n, k): ``argmax`` over the last axis."""
    return jnp.argmax(logits, -1)


@dataclasses.dataclass(frozen=True)
class FGSM:
    """FGSM (``goodfellow2015explaining``) of radius ``eps`` and step ``step_size``
    (default ``eps``), from ``x`` or, with ``random_start``, from ``x + U(-eps, eps)``
    (FGSM-RS, ``wong2020fast``); projected on the ε-ball and ``[0, 1]``."""

    eps: float
    step_size: Optional[float] = None
    random_start: bool = False

    def __post_init__(self):
        if not self.eps >= 0:
            raise ValueError(f"eps must be >= 0; got {self.eps!r}")
        if self.step_size is not None and not self.step_size > 0:
            raise ValueError(f"step_size must be None (= eps) or > 0; got {self.step_size!r}")

    def __call__(self, loss_fn, x, y, key):
        alpha = self.eps if self.step_size is None else self.step_size
        if self.random_start:
            return attacks.pgd(loss_fn, x, y, self.eps, step_size=alpha, steps=1, random_start=True, key=key)
        if alpha == self.eps:
            return attacks.fgsm(loss_fn, x, y, self.eps)
        return attacks.pgd(loss_fn, x, y, self.eps, step_size=alpha, steps=1)


@dataclasses.dataclass(frozen=True)
class NFGSM:
    """N-FGSM (``dejorge2022make``, Alg. 1): ``x_adv = clip(x + η + α sign(∇_x ℓ(x + η)))`` with
    noise ``η ~ U(-k eps, k eps)`` per coordinate (``noise_factor`` ``k``, default 2), step
    ``α = step_size`` (default ``eps``) and ``clip`` onto ``[0, 1]`` only: the perturbation is
    *not* projected back on the ε-ball (it reaches up to ``(k + 1) eps``), the paper's choice
    against catastrophic overfitting. ``eps`` is the radius the run is evaluated at."""

    eps: float
    step_size: Optional[float] = None
    noise_factor: float = 2.0

    def __post_init__(self):
        if not self.eps >= 0:
            raise ValueError(f"eps must be >= 0; got {self.eps!r}")
        if self.step_size is not None and not self.step_size > 0:
            raise ValueError(f"step_size must be None (= eps) or > 0; got {self.step_size!r}")
        if not self.noise_factor >= 0:
            raise ValueError(f"noise_factor must be >= 0; got {self.noise_factor!r}")

    def __call__(self, loss_fn, x, y, key):
        alpha = self.eps if self.step_size is None else self.step_size
        k_eps = self.noise_factor * self.eps
        x0 = jnp.clip(x + jax.random.uniform(key, x.shape, x.dtype, -k_eps, k_eps), 0.0, 1.0)
        g = jax.grad(lambda xx: jnp.sum(loss_fn(xx, y)))(x0)
        return jnp.clip(x0 + alpha * jnp.sign(g), 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class PGD:
    """PGD (``madry2018towards``): ``steps`` signed-gradient steps of ``step_size`` (default
    :func:`pgd_step_size`), from a uniform random start unless ``random_start=False``."""

    eps: float
    steps: int = 10
    step_size: Optional[float] = None
    random_start: bool = True

    def __post_init__(self):
        if not self.eps >= 0:
            raise ValueError(f"eps must be >= 0; got {self.eps!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be an integer >= 1; got {self.steps!r}")
        if self.step_size is not None and not self.step_size > 0:
            raise ValueError(f"step_size must be None (default) or > 0; got {self.step_size!r}")

    @property
    def alpha(self) -> float:
        return self.step_size if self.step_size is not None else pgd_step_size(self.eps, self.steps)

    def __call__(self, loss_fn, x, y, key):
        return attacks.pgd(loss_fn, x, y, self.eps, step_size=self.alpha, steps=self.steps,
                           random_start=self.random_start, key=key)
