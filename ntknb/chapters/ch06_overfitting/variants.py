"""Chapter 06, the single-step variants and their measurements (``li2023rethinking`` Sec. 6).

The noise initialisation and its adversary (:func:`anisotropic_noise`, :func:`noise_initialized_fgsm`,
:class:`NoiseFGSM`), the per-epoch FGSM monitor (:class:`AttackAccuracyMonitor`), the collapse criterion
on a PGD curve (:func:`detect_collapse`), one training run and its records (:class:`VariantRun`,
:func:`run_variant`, :func:`run_seeds`), and the kernel comparisons (:func:`ae_specialization_matrix`,
:func:`distance_to_reference`). Part of :mod:`ntknb.chapters.ch06_overfitting`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import ntknb  # noqa: F401  (compat shim before neural_tangents)

import jax
import jax.numpy as jnp
import numpy as np

from ntknb import adversaries, attacks, collapse, metrics, training
from ntknb import ntk_dynamics as nd

__all__ = ["anisotropic_noise", "noise_initialized_fgsm", "NoiseFGSM", "AttackAccuracyMonitor", "Collapse",
           "detect_collapse", "VariantRun", "run_variant", "run_seeds", "ae_specialization_matrix",
           "distance_to_reference"]


def anisotropic_noise(key, shape: Sequence[int], eps: float, scale: float = 1.0) -> jnp.ndarray:
    """Per-sample anisotropic Gaussian noise in the l∞ ball of radius ``eps``.

    ``li2023rethinking`` Sec. 6 proposes to "add some anisotropy noise into every sample inside
    each mini-batch" without giving its distribution; this is our reading of it.  Each
    sample i gets its own random diagonal covariance:

        δ_i = clip(σ_i ⊙ ξ_i, −eps, eps),   σ_i = scale · eps · u_i,
        u_i ~ U(0, 1)^d,   ξ_i ~ N(0, I_d)   (independent over i and coordinates),

    so the noise differs in scale from coordinate to coordinate and from sample to
    sample — unlike the uniform random start of FGSM-RS (``wong2020fast``), which draws
    every coordinate of every sample from the same U(−eps, eps).

    Args:
      key: ``jax.random`` key.
      shape: ``(n, ...)``; the first axis indexes samples.
      eps: l∞ radius (``>= 0``).
      scale: standard deviations are at most ``scale · eps`` (``> 0``).

    Returns:
      float32 array of ``shape`` with entries in ``[−eps, eps]``.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) < 1 or any(s < 0 for s in shape):
        raise ValueError(f"shape must be (n, ...) with non-negative sizes; got {shape!r}")
    if isinstance(eps, (int, float)) and not eps >= 0:
        raise ValueError(f"eps must be >= 0; got {eps!r}")
    if isinstance(scale, (int, float)) and not scale > 0:
        raise ValueError(f"scale must be > 0; got {scale!r}")
    k_scale, k_dir = jax.random.split(key)
    sigma = scale * eps * jax.random.uniform(k_scale, shape, jnp.float32)
    return jnp.clip(sigma * jax.random.normal(k_dir, shape, jnp.float32), -eps, eps)


def noise_initialized_fgsm(loss_fn: Callable, x, y, eps, step_size, noise_scale, key,
                           clip=(0.0, 1.0)) -> jnp.ndarray:
    """FGSM from ``x + δ`` with δ = :func:`anisotropic_noise` (``li2023rethinking`` Sec. 6):

        x~ = Proj_{B∞(x, eps) ∩ [0,1]}( x + δ + α · sign ∇_x L(x + δ, y) ),

    i.e. one step of :func:`ntknb.attacks.pgd` started at δ instead of at 0 or at a
    uniform random point (FGSM-RS).  Traceable (used inside the jitted training step).

    Args:
      loss_fn: per-example loss ``(x, y) -> (n,)``.
      x: (n, ...) inputs in ``clip``; y: labels.
      eps: l∞ radius; step_size: α; noise_scale: ``scale`` of :func:`anisotropic_noise`.
      key: ``jax.random`` key of the noise.
    """
    x = jnp.asarray(x)
    delta0 = anisotropic_noise(key, x.shape, eps, noise_scale).astype(x.dtype)
    return attacks.pgd(loss_fn, x, y, eps, step_size=step_size, steps=1, clip=clip, init=delta0)


@dataclasses.dataclass(frozen=True)
class NoiseFGSM:
    """The noise-initialised FGSM as an adversary of :func:`ntknb.training.fit`
    (``TrainConfig(mode="fgsm", adversary=NoiseFGSM(eps, step_size, noise_scale))``):
    :func:`noise_initialized_fgsm` with radius ``eps``, step ``step_size`` and noise scale
    ``noise_scale``."""

    eps: float
    step_size: float
    noise_scale: float = 1.0

    def __post_init__(self):
        if not self.eps >= 0:
            raise ValueError(f"eps must be >= 0; got {self.eps!r}")
        if not self.step_size > 0:
            raise ValueError(f"step_size must be > 0; got {self.step_size!r}")
        if not self.noise_scale > 0:
            raise ValueError(f"noise_scale must be > 0; got {self.noise_scale!r}")

    def __call__(self, loss_fn, x, y, key):
        return noise_initialized_fgsm(loss_fn, x, y, self.eps, self.step_size, self.noise_scale, key)


class AttackAccuracyMonitor:
    """:func:`ntknb.training.fit` callback: accuracy on single-step adversarial examples
    of a fixed set (e.g. training images) after every epoch, epoch 0 included.

    The attack is FGSM from x with step ``step_size`` (default ``eps``), projected on the
    ε-ball — the attack FGSM-AT trains on.  ``accuracies[i]`` belongs to ``epochs[i]``.
    """

    def __init__(self, apply_fn: Callable, x, labels, eps: float, step_size: Optional[float] = None,
                 batch_size: int = 500):
        self.x = jnp.asarray(x, jnp.float32)
        self.labels = jnp.asarray(np.asarray(labels))
        self.batch_size = int(batch_size)
        alpha = float(eps if step_size is None else step_size)

        @jax.jit
        def correct(params, state, xb, yb):
            ce = adversaries.network_loss(apply_fn, params, state)
            xa = attacks.pgd(ce, xb, yb, eps, step_size=alpha, steps=1)
            return jnp.sum(adversaries.predicted_class(apply_fn(params, state, xa, False)[0]) == yb)

        self._correct = correct
        self.epochs: list[int] = []
        self.accuracies: list[float] = []

    def __call__(self, epoch: int, params: Any, state: dict) -> None:
        n = self.x.shape[0]
        c = sum(int(self._correct(params, state, self.x[s:s + self.batch_size], self.labels[s:s + self.batch_size]))
                for s in range(0, n, self.batch_size))
        self.epochs.append(int(epoch))
        self.accuracies.append(c / n)


@dataclasses.dataclass(frozen=True)
class Collapse:
    """Result of :func:`detect_collapse` on a robust-accuracy curve (epochs 1..T).

    Attributes:
      collapsed: whether the curve collapsed.
      epoch: first collapsed epoch (1-based; 0 if none).
      peak: the running peak before ``epoch`` (the overall maximum if no collapse);
        peak_epoch: its epoch.
      low: lowest robust accuracy after ``peak_epoch`` (``peak`` if it is the last epoch).
      final: robust accuracy at the last epoch.
      recovered: collapsed, and the final accuracy is back to at least ``fraction · peak``.
    """

    collapsed: bool
    epoch: int
    peak: float
    peak_epoch: int
    low: float
    final: float
    recovered: bool


def detect_collapse(robust_acc: Sequence[float], fraction: float = 0.3, min_peak: float = 0.2) -> Collapse:
    """Catastrophic-overfitting criterion on per-epoch PGD robust test accuracy.

    Epoch t *collapses* if its robust accuracy falls below ``fraction`` times the best
    accuracy of the earlier epochs, p_t = max_{s<t} r_s, and p_t ≥ ``min_peak`` (a run that
    never became robust cannot collapse).  The first such epoch is reported.

    Args:
      robust_acc: (T,) robust accuracy after epochs 1..T.
      fraction: in (0, 1).
      min_peak: in [0, 1].
    """
    r = np.asarray(robust_acc, dtype=np.float64)
    if r.ndim != 1 or r.size == 0:
        raise ValueError(f"robust_acc must be a non-empty 1-d sequence; got shape {r.shape}")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1); got {fraction!r}")
    if not 0 <= min_peak <= 1:
        raise ValueError(f"min_peak must be in [0, 1]; got {min_peak!r}")
    prev_max = np.maximum.accumulate(r)[:-1]  # p_t for t = 2..T
    hits = np.flatnonzero((r[1:] < fraction * prev_max) & (prev_max >= min_peak))
    if hits.size:
        t = int(hits[0]) + 1  # 0-based index of the collapsed epoch
        i = int(np.argmax(r[:t]))
    else:
        t, i = 0, int(np.argmax(r))
    after = r[i + 1:]
    collapsed = bool(hits.size)
    return Collapse(
        collapsed=collapsed,
        epoch=t + 1 if collapsed else 0,
        peak=float(r[i]),
        peak_epoch=i + 1,
        low=float(after.min()) if after.size else float(r[i]),
        final=float(r[-1]),
        recovered=bool(collapsed and r[-1] >= fraction * r[i]),
    )


@dataclasses.dataclass
class VariantRun:
    """One training run of the chapter.

    Attributes:
      result: the :class:`ntknb.training.TrainResult` (per-epoch clean / robust test accuracy).
      fgsm_train_acc: (T+1,) FGSM accuracy on the monitored training images, epochs 0..T.
      collapse: :func:`detect_collapse` of the robust test accuracy.
      trajectory: the :class:`ntknb.ntk_dynamics.KernelTrajectory` (``None`` if not tracked).
      strong: the :class:`ntknb.collapse.EpochMonitor` rows (epochs 0..T: clean, FGSM and strong-suite
        accuracy, loss gap, gradient alignment on fixed test points; ``None`` if not monitored).
    """

    result: Any
    fgsm_train_acc: np.ndarray
    collapse: Collapse
    trajectory: Optional[Any] = None
    strong: Optional[list] = None

    def strong_column(self, name: str) -> np.ndarray:
        """One column of :attr:`strong` (a name of :data:`ntknb.collapse.MONITOR_COLUMNS`)."""
        if self.strong is None:
            raise ValueError("this run had no strong monitor (run_variant(strong_points=...))")
        return np.asarray([r[name] for r in self.strong], float)

    @property
    def robust_acc(self) -> np.ndarray:
        return self.result.column("robust_acc")

    @property
    def clean_acc(self) -> np.ndarray:
        return self.result.column("clean_acc")

    def ended_overfitted(self, gap: float) -> bool:
        """End-state criterion: the final FGSM accuracy on the monitored training images exceeds
        the final PGD test accuracy by at least ``gap`` (in [0, 1])."""
        if not 0 <= gap <= 1:
            raise ValueError(f"gap must be in [0, 1]; got {gap!r}")
        return bool(self.fgsm_train_acc[-1] - self.robust_acc[-1] >= gap)


def run_variant(model, task, config: "training.TrainConfig", n_monitor: int = 500, probe=None,
                track_epochs: Optional[Sequence[int]] = None, probe_attack_steps: Optional[int] = None,
                top_p: int = 20, collapse_fraction: float = 0.3, collapse_min_peak: float = 0.2,
                init_seed: Optional[int] = None, monitor_step: Optional[float] = None, progress: bool = False,
                description: str = "", strong_points=None, strong_iter: int = 20) -> VariantRun:
    """Train ``model`` on ``task`` (an :class:`ntknb.data.Task`) with ``config``, monitoring
    the FGSM accuracy on the first ``n_monitor`` training images (step ``monitor_step``,
    default eps) and, if ``probe=(x_probe, labels_probe)``, the C-NTK / AE-NTK with
    :func:`ntknb.ntk_dynamics.train_and_track` at ``track_epochs``; with ``strong_points=(x, labels)``,
    also the strong per-epoch monitor :class:`ntknb.collapse.EpochMonitor` (suite of ``strong_iter``
    iterations) on them. ``init_seed`` defaults to ``config.seed``."""
    init_seed = config.seed if init_seed is None else init_seed
    n_monitor = min(int(n_monitor), task.x_train.shape[0])
    monitor = AttackAccuracyMonitor(training.flax_apply_fn(model), task.x_train[:n_monitor],
                                    task.labels_train[:n_monitor], config.eps, monitor_step)
    trajectory = None
    callbacks = [monitor]
    strong = None
    if strong_points is not None:
        strong = collapse.EpochMonitor(training.flax_apply_fn(model), *strong_points, config.eps, n_iter=strong_iter,
                                       seed=config.seed)
        callbacks.append(strong)
    if probe is None:
        result = training.train_model(model, task.x_train, task.labels_train, task.x_test, task.labels_test, config,
                                      init_seed=init_seed, callbacks=callbacks, progress=progress,
                                      description=description)
    else:
        x_probe, labels_probe = probe
        tracker = nd.KernelTracker(training.flax_apply_fn(model), x_probe, labels_probe, eps=config.eps,
                                   attack_steps=probe_attack_steps or config.eval_attack_steps,
                                   epochs=track_epochs, top_p=min(top_p, len(labels_probe)), seed=config.seed)
        result = training.train_model(model, task.x_train, task.labels_train, task.x_test, task.labels_test, config,
                                      init_seed=init_seed, callbacks=callbacks + [tracker], progress=progress,
                                      description=description)
        trajectory = tracker.trajectory()
    monitor_collapse = detect_collapse(result.column("robust_acc"), collapse_fraction, collapse_min_peak)
    return VariantRun(result=result, fgsm_train_acc=np.asarray(monitor.accuracies), collapse=monitor_collapse,
                      trajectory=trajectory, strong=None if strong is None else strong.rows)


def run_seeds(model_fn: Callable[[], Any], task_fn: Callable[[int], Any], config: "training.TrainConfig",
              seeds: Sequence[int], **kwargs) -> list:
    """:func:`run_variant` for each seed: ``task_fn(seed)`` gives the data subsample,
    ``config.replace(seed=seed)`` the data order / attack starts and the initialisation."""
    return [run_variant(model_fn(), task_fn(s), config.replace(seed=int(s)), **kwargs) for s in seeds]


def ae_specialization_matrix(result, x_probe, labels_probe, eps: float, attack_steps: int = 10,
                             seed: int = 0) -> np.ndarray:
    """Kernel specialization matrix M_ks of the final network's AE-NTK under clean labels
    (``li2023rethinking`` Fig. 8): the per-logit empirical NTK (:class:`ntknb.ntk_dynamics.KernelTracker`)
    on the network's own PGD examples of the probe images (``attack_steps`` steps, step
    2.5·eps/steps, random start), then :func:`ntknb.metrics.specialization_matrix` with the
    probe's clean labels.  Returns (k, k): row = logit, column = class."""
    tracker = nd.KernelTracker(result.apply_fn, x_probe, labels_probe, eps=eps, attack_steps=attack_steps,
                               top_p=1, seed=seed)
    x_adv = tracker.adversarial_examples(result.params, result.state, jax.random.PRNGKey(seed))
    blocks = tracker.per_logit_kernel(result.params, result.state, x_adv)
    return metrics.specialization_matrix(blocks, tracker.labels)


def distance_to_reference(trajectory, reference, kind: str = "adv") -> np.ndarray:
    """Kernel distance KD(Θ_t, Θ_t^ref) (:func:`ntknb.metrics.kernel_distance`) between two
    :class:`ntknb.ntk_dynamics.KernelTrajectory` at each epoch both tracked (``li2023rethinking``
    Fig. 9b-c: the reference is the FGSM-AT model).  Returns ``(epochs, distances)``."""
    common = np.intersect1d(trajectory.epochs, reference.epochs)
    if common.size == 0:
        raise ValueError("the two trajectories share no tracked epoch")
    d = np.array([metrics.kernel_distance(trajectory.kernel(e, kind), reference.kernel(e, kind)) for e in common])
    return common, d
