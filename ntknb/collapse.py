"""Catastrophic overfitting (CO) of single-step adversarial training, measured with a strong attack.

FGSM adversarial training (``goodfellow2015explaining``) can *collapse*: within an epoch or two the
accuracy under a multi-step attack falls to about zero while the accuracy under the single-step
FGSM the network is trained on jumps up (``wong2020fast``; ``andriushchenko2020understanding``,
Fig. 1 and Sec. 3: PGD accuracy about 0.18 -> 0, FGSM accuracy above clean accuracy, the PGD loss
far above the FGSM loss, gradient alignment 0.95 -> 0.1). This module measures it:

* :func:`gradient_alignment` — ``E_x cos(∇_x ℓ(x), ∇_x ℓ(x + η))``, ``η ~ U([-ε, ε]^d)``
  (``andriushchenko2020understanding``, Sec. 4, the quantity their GradAlign regulariser keeps high).
* :class:`EpochMonitor` — a callback for :func:`ntknb.training.fit` that records, after every epoch
  and on fixed test points: clean accuracy, FGSM accuracy (from ``x``, step ``ε``), the *strong*
  robust accuracy (the suite of :func:`ntknb.evaluation.robust_evaluation`: APGD-CE, APGD-DLR and
  PGD, worst case per point, ``n_iter`` iterations), the loss gap ``mean ℓ(x_PGD) - mean
  ℓ(x_FGSM)`` (PGD with a random start, ``pgd_steps`` steps) and the gradient alignment.
* :class:`CollapseRule` — the end-state rule, fixed before any run that it judges: a run *ended
  collapsed* when its final strong robust accuracy (the 100-iteration suite) is below
  ``drop_fraction`` of the peak of its per-epoch strong curve, its final FGSM accuracy exceeds that
  final strong accuracy by at least ``fgsm_gap``, and its clean accuracy stays ``clean_margin``
  above chance (a network that learned nothing has not overfitted, it failed). The epoch of
  collapse is the first epoch after the peak at which the strong curve falls below
  ``drop_fraction`` of the peak.
* :class:`InjectedFeature` — the class-wise low-frequency pattern of ``ortiz2023catastrophic``
  (Sec. 3), ``x̃ = clip(x + β v(y), 0, 1)``, which induces CO at smaller ε than natural images.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ntknb import adversaries as _adv
from ntknb.attacks import cross_entropy, pgd
from ntknb.evaluation import robust_evaluation
from ntknb.validation import check_float, check_int

__all__ = ["gradient_alignment", "gradient_alignment_at", "EpochMonitor", "CollapseRule", "Judgement", "MONITOR_COLUMNS", "InjectedFeature",
           "FEATURE_FREQUENCIES"]

#: The per-epoch columns of :class:`EpochMonitor` (``epoch`` 0 is the initial network).
MONITOR_COLUMNS = ("epoch", "clean_acc", "fgsm_acc", "strong_acc", "loss_gap", "grad_align")


#: The 2-D DCT frequencies (row, column) of the carriers of :class:`InjectedFeature`: class ``k < 5``
#: carries ``+sign(DCT basis k)``, class ``k + 5`` its negative (``ortiz2023catastrophic``, code
#: ``data/injection.py``: the five lowest non-constant frequencies, both signs, for 10 classes).
FEATURE_FREQUENCIES = ((0, 1), (1, 0), (1, 1), (2, 1), (1, 2))


@functools.lru_cache(maxsize=8)
def _carriers(height: int, width: int, channels: int) -> np.ndarray:
    """``(10, H, W, C)`` carriers ``v(y) = ±sign(b_{ij})`` with the orthonormal DCT-II basis image
    ``b_{ij}[m, n] ∝ cos(π (2m + 1) i / 2H) cos(π (2n + 1) j / 2W)`` (every entry ±1: ``‖v‖_∞ = 1``),
    the same on every channel."""
    m = np.arange(height)[:, None]
    n = np.arange(width)[None, :]
    basis = [np.sign(np.cos(np.pi * (2 * m + 1) * i / (2 * height)) * np.cos(np.pi * (2 * n + 1) * j / (2 * width)))
             for i, j in FEATURE_FREQUENCIES]
    v = np.stack(basis + [-b for b in basis]).astype(np.float32)
    if np.any(v == 0):  # pragma: no cover - no zero for the sizes of CIFAR-10 / MNIST
        raise ValueError(f"the DCT carriers of a {height}x{width} image have zeros; the pattern needs ±1 entries")
    return np.repeat(v[..., None], channels, axis=-1)


@dataclasses.dataclass(frozen=True)
class InjectedFeature:
    """A class-wise non-robust feature injected into images (``ortiz2023catastrophic``, Sec. 3, Eq. 2):
    ``x̃ = clip(x + β v(y), 0, 1)`` with the ±1 low-frequency carriers of :data:`FEATURE_FREQUENCIES`
    (``‖v(y)‖_∞ = 1``, so an l∞ perturbation of radius ``ε ≥ β`` can erase it). The clip onto the image
    box is this package's (the attacks clip there too; the source's data stay unclipped).

    Hashable (scalars only), so a :class:`ntknb.training.TrainConfig` that carries it as
    ``injection`` keeps its compiled step cached; ``__call__`` works on numpy and (inside jit) jax arrays.

    Attributes:
      beta: the feature's strength β in [0, 1] (pixel units: 8/255 in the source's configuration).
      image_shape: ``(H, W, C)``.
      n_classes: 10 (the carriers are five frequencies with both signs).
    """

    beta: float
    image_shape: tuple
    n_classes: int = 10

    def __post_init__(self):
        object.__setattr__(self, "beta", check_float("beta", self.beta, min=0.0, max=1.0))
        shape = tuple(int(v) for v in self.image_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"parameter 'image_shape' must be (H, W, C) with positive sizes; got {self.image_shape!r}")
        object.__setattr__(self, "image_shape", shape)
        if self.n_classes != 10:
            raise ValueError(f"parameter 'n_classes' must be 10 (five DCT frequencies, both signs); got {self.n_classes!r}")

    def carriers(self) -> np.ndarray:
        """``(10, H, W, C)`` ±1 patterns ``v(y)``."""
        return _carriers(*self.image_shape)

    def __call__(self, x, labels):
        """``clip(x + β v(labels), 0, 1)`` for ``x (n, H, W, C)`` and integer ``labels (n,)``."""
        xp = jnp if isinstance(x, jax.Array) or isinstance(labels, jax.Array) else np
        v = xp.asarray(self.carriers())
        return xp.clip(x + self.beta * v[labels], 0.0, 1.0).astype(x.dtype)


def _per_example_grad(loss: Callable, x, y):
    return jax.grad(lambda xx: jnp.sum(loss(xx, y)))(x)


def _cosine_rows(a, b):
    a = a.reshape(a.shape[0], -1)
    b = b.reshape(b.shape[0], -1)
    den = jnp.linalg.norm(a, axis=1) * jnp.linalg.norm(b, axis=1)
    return jnp.sum(a * b, axis=1) / jnp.maximum(den, 1e-30)


def gradient_alignment_at(loss: Callable, x, y, eta) -> jnp.ndarray:
    """Per-example ``cos(∇_x ℓ(x, y), ∇_x ℓ(clip(x + η, 0, 1), y))`` for a given noise ``η`` (same
    shape as ``x``); ``andriushchenko2020understanding``, Sec. 4. ``loss(x, y) -> (n,)``; returns
    ``(n,)``. A zero gradient counts as cosine 0."""
    g0 = _per_example_grad(loss, x, y)
    g1 = _per_example_grad(loss, jnp.clip(x + eta, 0.0, 1.0), y)
    return _cosine_rows(g0, g1)


def gradient_alignment(loss: Callable, x, y, eps: float, key) -> jnp.ndarray:
    """:func:`gradient_alignment_at` with ``η ~ U([-ε, ε]^d)`` drawn from ``key``: the alignment
    their GradAlign regulariser keeps high, and which falls at catastrophic overfitting (their
    Fig. 1: 0.95 -> 0.1). ``loss(x, y) -> (n,)``; returns ``(n,)``."""
    return gradient_alignment_at(loss, x, y, jax.random.uniform(key, x.shape, x.dtype, -eps, eps))


@functools.lru_cache(maxsize=16)
def _monitor_functions(apply_fn: Callable, eps: float):
    """``(logits, light, loss)`` of :class:`EpochMonitor`, cached per network form and radius so that
    every seed and epoch reuses one compilation (the weights are arguments)."""

    def logits(p, xx):
        params, state = p
        return apply_fn(params, state, xx, False)[0]

    def light(p, xx, yy, key):
        loss = lambda x_, y_: cross_entropy(logits(p, x_), y_)  # noqa: E731
        x_fgsm = jnp.clip(xx + eps * jnp.sign(_per_example_grad(loss, xx, yy)), 0.0, 1.0)
        clean = _adv.predicted_class(logits(p, xx)) == yy
        fgsm = _adv.predicted_class(logits(p, x_fgsm)) == yy
        return clean, fgsm, loss(x_fgsm, yy), gradient_alignment(loss, xx, yy, eps, key)

    def loss_of(p, xx, yy):
        return cross_entropy(logits(p, xx), yy)

    return logits, jax.jit(light), loss_of


@functools.lru_cache(maxsize=16)
def _jitted(fn: Callable) -> Callable:
    return jax.jit(fn)


@dataclasses.dataclass
class EpochMonitor:
    """Per-epoch CO measurements on fixed points (module docstring); pass it to
    :func:`ntknb.training.fit` as a callback (``cb(epoch, params, state)``).

    Attributes:
      apply_fn: ``apply_fn(params, state, x, train) -> (logits, state)``.
      x: ``(n, H, W, C)`` fixed test points in [0, 1]; labels: ``(n,)`` int classes.
      eps: l∞ radius of FGSM, the strong attack and the alignment noise.
      n_iter: iterations of each attack of the strong suite (its strength is checked against the
        100-iteration suite on the final networks; see the chapter's validation).
      seed: seeds the suite's random starts and the alignment noise (the same every epoch).
      batch_size: chunk size of the strong suite.
      pgd_steps: steps of the PGD (random start, step ``2.5 ε / steps``) whose loss the loss gap uses.
      rows: one dict per call, keys :data:`MONITOR_COLUMNS`.
    """

    apply_fn: Callable
    x: Any
    labels: Any
    eps: float
    n_iter: int = 20
    seed: int = 0
    batch_size: int = 500
    pgd_steps: int = 10
    rows: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        self.eps = check_float("eps", self.eps, min=0.0, max=1.0)
        self.n_iter = check_int("n_iter", self.n_iter, min=1)
        self.seed = check_int("seed", self.seed, min=0, max=2**32 - 2)  # the loss gap's PGD uses seed + 1
        self.x = jnp.asarray(self.x, jnp.float32)
        self.labels = jnp.asarray(self.labels, jnp.int32)
        if self.x.ndim != 4 or self.labels.shape != (self.x.shape[0],):
            raise ValueError(f"EpochMonitor: x must be (n, H, W, C) and labels (n,); got {self.x.shape} and "
                             f"{self.labels.shape}")
        self.pgd_steps = check_int("pgd_steps", self.pgd_steps, min=1)
        self.logits_fn, self._light, self._loss = _monitor_functions(self.apply_fn, self.eps)
        self._loss_jit = _jitted(self._loss)

    def measure(self, params, state) -> dict:
        """The measurements of :data:`MONITOR_COLUMNS` (without ``epoch``) for one network."""
        p = (params, state)
        clean, fgsm, fgsm_loss, align = self._light(p, self.x, self.labels, jax.random.PRNGKey(self.seed))
        rep = robust_evaluation(self.logits_fn, self.x, self.labels, self.eps, seed=self.seed, n_iter=self.n_iter,
                                batch_size=self.batch_size, params=p)
        key = jax.random.PRNGKey(self.seed + 1)
        x_pgd = pgd(self._loss, self.x, self.labels, self.eps, steps=self.pgd_steps, random_start=True, key=key,
                    batch_size=self.batch_size, params=p)
        strong_loss = self._loss_jit(p, x_pgd, self.labels)
        return dict(clean_acc=float(jnp.mean(clean)), fgsm_acc=float(jnp.mean(fgsm)),
                    strong_acc=float(rep.robust_accuracy),
                    loss_gap=float(jnp.mean(strong_loss) - jnp.mean(fgsm_loss)),
                    grad_align=float(jnp.mean(align)))

    def __call__(self, epoch: int, params, state) -> None:
        self.rows.append({"epoch": int(epoch), **self.measure(params, state)})

    def column(self, name: str) -> np.ndarray:
        """One column of :attr:`rows` as an array (``name`` in :data:`MONITOR_COLUMNS`)."""
        if name not in MONITOR_COLUMNS:
            raise ValueError(f"parameter 'name' must be one of {list(MONITOR_COLUMNS)}; got {name!r}")
        return np.asarray([r[name] for r in self.rows], dtype=float)


@dataclasses.dataclass(frozen=True)
class Judgement:
    """What :meth:`CollapseRule.judge` found for one run.

    Attributes:
      ended_collapsed: all three conditions of the rule hold.
      peak: the highest per-epoch strong accuracy, and peak_epoch its epoch.
      final_strong, final_fgsm, final_clean: the final network's accuracies (strong: the
        100-iteration suite).
      collapse_epoch: first epoch after the peak with strong accuracy below ``drop_fraction ×
        peak`` (``None`` if none).
      failed: the names of the conditions that do not hold (``"drop"``, ``"fgsm_gap"``, ``"learned"``).
    """

    ended_collapsed: bool
    peak: float
    peak_epoch: int
    final_strong: float
    final_fgsm: float
    final_clean: float
    collapse_epoch: Optional[int]
    failed: tuple

    def to_json(self) -> dict:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}


@dataclasses.dataclass(frozen=True)
class CollapseRule:
    """The end-state rule of CO (module docstring), its three thresholds fixed before the runs.

    Attributes:
      drop_fraction: final strong accuracy must be below this fraction of the curve's peak
        (0.25: ``andriushchenko2020understanding`` Fig. 1 shows PGD accuracy falling from its peak
        to about 0, i.e. far below a quarter of it; a plain fluctuation over seeds stays well
        above).
      fgsm_gap: final FGSM accuracy minus final strong accuracy, at least (0.2: after collapse
        their FGSM accuracy exceeds even the clean one while PGD accuracy is about 0).
      clean_margin: final clean accuracy at least chance + this (0.1): the network learned.
    """

    drop_fraction: float = 0.25
    fgsm_gap: float = 0.2
    clean_margin: float = 0.1

    def __post_init__(self):
        check_float("drop_fraction", self.drop_fraction, min=0.0, max=1.0, min_inclusive=False)
        check_float("fgsm_gap", self.fgsm_gap, min=0.0, max=1.0)
        check_float("clean_margin", self.clean_margin, min=0.0, max=1.0)

    def judge(self, strong_curve: Sequence[float], final_strong: float, final_fgsm: float,
              final_clean: float, n_classes: int, epochs: Optional[Sequence[int]] = None) -> Judgement:
        """Judge one run from its per-epoch strong curve (``(E,)``, e.g. ``EpochMonitor.column
        ("strong_acc")``, epochs ``epochs`` (default ``0 .. E-1``)) and its final accuracies."""
        curve = np.asarray(strong_curve, dtype=float).reshape(-1)
        if curve.size == 0 or not np.all(np.isfinite(curve)):
            raise ValueError(f"parameter 'strong_curve' must be a non-empty sequence of finite numbers; got {curve}")
        epochs = np.arange(curve.size) if epochs is None else np.asarray(epochs, dtype=int)
        if epochs.shape != curve.shape:
            raise ValueError(f"parameter 'epochs' must have the curve's length {curve.size}; got {epochs.shape}")
        n_classes = check_int("n_classes", n_classes, min=2)
        for name, v in (("final_strong", final_strong), ("final_fgsm", final_fgsm), ("final_clean", final_clean)):
            check_float(name, v, min=0.0, max=1.0)
        i_peak = int(np.argmax(curve))
        peak = float(curve[i_peak])
        below = np.nonzero(curve[i_peak:] < self.drop_fraction * peak)[0]
        collapse_epoch = int(epochs[i_peak + below[0]]) if below.size else None
        failed = []
        if not final_strong < self.drop_fraction * peak:
            failed.append("drop")
        if not final_fgsm - final_strong >= self.fgsm_gap:
            failed.append("fgsm_gap")
        if not final_clean >= 1.0 / n_classes + self.clean_margin:
            failed.append("learned")
        return Judgement(not failed, peak, int(epochs[i_peak]), float(final_strong), float(final_fgsm),
                         float(final_clean), collapse_epoch, tuple(failed))

    def describe(self) -> str:
        """The rule in one sentence (for a page or a protocol file)."""
        return (f"ended collapsed: final strong robust accuracy < {self.drop_fraction:g} x the peak of the "
                f"per-epoch strong curve, final FGSM accuracy >= final strong accuracy + {self.fgsm_gap:g}, and "
                f"final clean accuracy >= chance + {self.clean_margin:g}")
