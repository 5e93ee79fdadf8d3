"""Empirical-NTK dynamics of a network along (adversarial) training.

A :class:`KernelTracker` is a training callback (see :func:`ntknb.training.fit`): after
each epoch it computes the empirical NTK of the current network on a fixed,
class-balanced probe set

* on the clean probe images — the **C-NTK**, and
* on the network's own PGD adversarial examples of those images — the **AE-NTK**
  (``li2023rethinking``, Sec. 3.1),

as the full per-logit kernel Θ(X, X) of shape (n, n, k, k) with
:func:`ntknb.kernels.empirical_ntk` (``trace_axes=()``; neural-tangents' structured
derivatives where available, which costs about as much as the traced kernel).  It keeps

* the traced kernel Θ̂ = (1/k) Σ_i Θ^{i,i}, shape (n, n), of every tracked epoch (small:
  the distance heat-map and polar plots need them all), and
* online metrics of :mod:`ntknb.metrics`: Frobenius norm, top-p concentration, kernel
  effective rank of Θ̂; kernel specialization KS of the per-logit blocks Θ^{i,i} under
  clean labels (CL) and, for the AE-NTK, under adversarial labels (AL: the network's
  predictions on its adversarial examples).

The full (n, n, k, k) kernels are discarded after the metrics are computed.
The resulting :class:`KernelTrajectory` gives the ``tsilivis2022ntk`` (Sec. 5)
quantities: the epoch-by-epoch distance matrix (Fig. 3 left), polar coordinates of
the whole kernel and of its top-p eigenspace (Eq. 12, Fig. 3 right), and the epoch
at which the kernel becomes lazy.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Collection, Sequence
from typing import Any, Optional

import ntknb  # noqa: F401  (compat shim before neural_tangents)

import jax
import jax.numpy as jnp
import numpy as np

from ntknb import adversaries, attacks, kernels, metrics, training

__all__ = [
    "balanced_probe",
    "KernelTracker",
    "KernelTrajectory",
    "ParamsSnapshots",
    "train_and_track",
    "continue_config",
    "train_linearized",
]

KINDS = ("clean", "adv")


def balanced_probe(labels, n_per_class: int, num_classes: Optional[int] = None, seed: int = 0) -> np.ndarray:
    """Indices of a class-balanced probe set: ``n_per_class`` examples of each class.

    Args:
      labels: (N,) integer class labels.
      n_per_class: examples per class (≥ 1, at most the smallest class size).
      num_classes: k (default ``labels.max() + 1``).
      seed: seeds the choice.

    Returns:
      (k·n_per_class,) int indices into ``labels``, sorted by class (class 0 first),
      so kernels on the probe show the class block structure.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-d integer array; got {labels.shape} {labels.dtype}")
    k = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    counts = np.bincount(labels, minlength=k)[:k]
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, (int, np.integer)) or not (
        1 <= n_per_class <= counts.min()
    ):
        raise ValueError(f"n_per_class must be an integer in [1, {int(counts.min())}] (smallest class); got {n_per_class!r}")
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [np.sort(rng.choice(np.flatnonzero(labels == c), n_per_class, replace=False)) for c in range(k)]
    )


@dataclasses.dataclass
class KernelTrajectory:
    """Kernels and online metrics recorded by a :class:`KernelTracker`.

    Attributes:
      epochs: (T,) tracked epochs (0 = initialisation).
      kernels: ``{"clean": (T, n, n), "adv": (T, n, n)}`` traced empirical NTKs
        (``"adv"`` only if tracked), float64.
      metrics: ``{"clean.frob": (T,), ...}`` — for each kind ``frob``, ``top_conc``
        (top-``top_p`` concentration), ``ker`` (effective rank), ``ks_cl`` (KS under
        clean labels), ``acc`` (probe accuracy); for ``adv`` also ``ks_al`` (KS under
        adversarial labels).
      labels: (n,) clean probe labels.
      top_p: the p of the top eigenspace.
    """

    epochs: np.ndarray
    kernels: dict
    metrics: dict
    labels: np.ndarray
    top_p: int

    def kernel(self, epoch: int, kind: str = "clean") -> np.ndarray:
        """The traced kernel at ``epoch`` (one of :attr:`epochs`)."""
        idx = np.flatnonzero(self.epochs == epoch)
        if idx.size == 0:
            raise ValueError(f"epoch {epoch} was not tracked; tracked: {self.epochs.tolist()}")
        return self.kernels[kind][idx[0]]

    @property
    def final(self) -> dict:
        """``{kind: traced kernel at the last tracked epoch}``."""
        return {k: v[-1] for k, v in self.kernels.items()}

    def distance_matrix(self, kind: str = "clean") -> np.ndarray:
        """(T, T) kernel distances between tracked epochs (``tsilivis2022ntk`` Fig. 3 left)."""
        return metrics.distance_matrix(self.kernels[kind])

    def consecutive_distances(self, kind: str = "clean") -> np.ndarray:
        """(T−1,) KD between consecutive tracked epochs (``li2023rethinking`` Fig. 1)."""
        return metrics.consecutive_distances(self.kernels[kind])

    def polar(self, kind: str = "clean", top: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(r_t, θ_t) of ``tsilivis2022ntk`` Eq. (12) for the whole kernel or (``top=True``) for its
        restriction to the top-``top_p`` eigenspace (each K_t projected on its own top space)."""
        K = self.kernels[kind]
        if top:
            K = np.stack([metrics.top_eigenspace(k, self.top_p) for k in K])
        return metrics.polar_coordinates(K)

    def lazy_epoch(self, threshold: float, kind: str = "clean", until: Optional[int] = None) -> float:
        """First epoch after which the consecutive kernel distance stays below
        ``threshold`` (up to epoch ``until``), see :func:`ntknb.metrics.lazy_epoch`;
        requires consecutive epochs to be tracked."""
        if not np.array_equal(self.epochs, np.arange(self.epochs.size)):
            raise ValueError("lazy_epoch needs every epoch 0..T tracked")
        return metrics.lazy_epoch(self.consecutive_distances(kind), threshold, until)


@functools.lru_cache(maxsize=32)
def _tracker_functions(apply_fn: Callable, eps: float, attack_steps: int):
    """``(kernel_fn, attack, logits)`` of a :class:`KernelTracker`, cached per (apply_fn, eps, steps) so
    trackers of the same network (e.g. one per seed) reuse the compiled kernel and attack."""

    def kernel_fn(ps, x):  # (params, state) -> logits; the Jacobian w.r.t. params only
        return apply_fn(ps[0], jax.lax.stop_gradient(ps[1]), x, False)[0]

    alpha = adversaries.pgd_step_size(eps, attack_steps) if eps > 0 else 1.0

    @jax.jit
    def attack(params, state, x, y, key):
        ce = adversaries.network_loss(apply_fn, params, state)
        xa = attacks.pgd(ce, x, y, eps, step_size=alpha, steps=attack_steps, random_start=True, key=key)
        return xa, apply_fn(params, state, x, False)[0], apply_fn(params, state, xa, False)[0]

    @jax.jit
    def logits(params, state, x):
        return apply_fn(params, state, x, False)[0]

    return kernel_fn, attack, logits


class KernelTracker:
    """Training callback recording the C-NTK and AE-NTK on a probe set (see module doc).

    Args:
      apply_fn: ``apply_fn(params, state, x, train) -> (logits, state)``
        (:func:`ntknb.training.flax_apply_fn`).
      x_probe: (n, H, W, C) probe images; labels_probe: (n,) int labels (class-balanced,
        e.g. from :func:`balanced_probe`).
      eps: l∞ radius of the PGD examples of the AE-NTK.
      attack_steps: PGD steps (α = 2.5·eps/steps, random start, seeded per epoch).
      track_adv: also compute the AE-NTK.
      epochs: epochs at which to compute kernels (``None``: all, including 0).
      top_p: p of the top-p concentration and top-space polar plots.
      implementation, batch_size: passed to :func:`ntknb.kernels.empirical_ntk`.
      seed: seeds the PGD random starts.
      logit_top_p: if given, also record ``{kind}.top_conc_logit``: the top-``logit_top_p``
        concentration of the whole per-logit kernel, the (n·k, n·k) matrix
        :func:`ntknb.metrics.logit_matrix` (``tsilivis2022ntk`` Fig. 6b: top 20 of 256 images ×
        10 logits).
    """

    def __init__(
        self,
        apply_fn: Callable,
        x_probe,
        labels_probe,
        eps: float,
        attack_steps: int = 10,
        track_adv: bool = True,
        epochs: Optional[Collection[int]] = None,
        top_p: int = 20,
        implementation: str = "auto",
        batch_size: Optional[int] = None,
        seed: int = 0,
        logit_top_p: Optional[int] = None,
    ):
        self.apply_fn = apply_fn
        self.x = jnp.asarray(x_probe, jnp.float32)
        self.labels = np.asarray(labels_probe)
        if self.x.shape[0] != self.labels.shape[0]:
            raise ValueError(f"x_probe and labels_probe must have the same length; got {self.x.shape[0]} and {self.labels.shape[0]}")
        if not 1 <= top_p <= self.x.shape[0]:
            raise ValueError(f"top_p must be in [1, n_probe={self.x.shape[0]}]; got {top_p!r}")
        self.eps, self.attack_steps, self.track_adv = float(eps), int(attack_steps), bool(track_adv)
        self.epochs_to_track = None if epochs is None else set(int(e) for e in epochs)
        self.top_p, self.implementation, self.batch_size, self.seed = int(top_p), implementation, batch_size, seed
        if logit_top_p is not None and not (isinstance(logit_top_p, (int, np.integer)) and not isinstance(
                logit_top_p, bool) and logit_top_p >= 1):
            raise ValueError(f"logit_top_p must be None or an integer >= 1; got {logit_top_p!r}")
        self.logit_top_p = logit_top_p
        self._epochs: list[int] = []
        self._kernels: dict[str, list] = {k: [] for k in KINDS}
        self._metrics: dict[str, list] = {}
        self.vmap_axes = 0  # per-example kernel; None: the whole probe set as one batch

        self._kernel_fn, self._attack, self._logits = _tracker_functions(apply_fn, self.eps, self.attack_steps)

    def _record(self, name: str, value: float) -> None:
        self._metrics.setdefault(name, []).append(float(value))

    def full_kernel(self, params, state, x) -> np.ndarray:
        """The empirical NTK Θ(x, x) with all logit pairs, shape (n, n, k, k), float64.

        The kernel is taken with respect to ``params`` only; ``state`` (e.g. BatchNorm running
        averages) enters as a constant (``stop_gradient``) second argument, so one compiled
        kernel function serves every epoch."""
        full = kernels.empirical_ntk(self._kernel_fn, (params, state), x, trace_axes=(),
                                     implementation=self.implementation,
                                     batch_size=None if self.vmap_axes is None else self.batch_size,
                                     vmap_axes=self.vmap_axes)
        return np.asarray(full, dtype=np.float64)

    def per_logit_kernel(self, params, state, x) -> np.ndarray:
        """Diagonal blocks Θ^{i,i}(x, x) of :meth:`full_kernel`, shape (n, n, k), float64."""
        return np.diagonal(self.full_kernel(params, state, x), axis1=2, axis2=3)

    def adversarial_examples(self, params, state, key) -> jnp.ndarray:
        """The probe's PGD examples against the network ``(params, state)``, shape of the probe ``(n, H, W, C)``:
        the attack of the AE-NTK (``attack_steps`` steps of 2.5·eps/steps from a uniform random start drawn
        with ``key``)."""
        return self._attack(params, state, self.x, jnp.asarray(self.labels), key)[0]

    def __call__(self, epoch: int, params: Any, state: dict) -> None:
        if self.epochs_to_track is not None and epoch not in self.epochs_to_track:
            return
        self._epochs.append(int(epoch))
        if self.track_adv:
            key = jax.random.fold_in(jax.random.PRNGKey(self.seed), epoch)
            x_adv, logits, logits_adv = self._attack(params, state, self.x, jnp.asarray(self.labels), key)
        else:  # no AE-NTK: no attack
            logits = self._logits(params, state, self.x)
        todo = [("clean", self.x, np.asarray(adversaries.predicted_class(logits)))]
        if self.track_adv:
            todo.append(("adv", x_adv, np.asarray(adversaries.predicted_class(logits_adv))))
        for kind, x, pred in todo:
            full = self.full_kernel(params, state, x)  # (n, n, k, k)
            blocks = np.diagonal(full, axis1=2, axis2=3)  # (n, n, k)
            traced = blocks.mean(axis=-1)
            if self.logit_top_p is not None:
                self._record(f"{kind}.top_conc_logit", metrics.concentration(metrics.logit_matrix(full),
                                                                             self.logit_top_p))
            self._kernels[kind].append(traced)
            self._record(f"{kind}.frob", metrics.frobenius_norm(traced))
            self._record(f"{kind}.top_conc", metrics.concentration(traced, self.top_p))
            self._record(f"{kind}.ker", metrics.effective_rank(traced))
            self._record(f"{kind}.ks_cl", metrics.kernel_specialization(blocks, self.labels))
            self._record(f"{kind}.acc", np.mean(pred == self.labels))
            if kind == "adv":
                self._record("adv.ks_al", metrics.kernel_specialization(blocks, pred.astype(np.int64)))

    def trajectory(self) -> KernelTrajectory:
        """The recorded :class:`KernelTrajectory`."""
        return KernelTrajectory(
            epochs=np.asarray(self._epochs),
            kernels={k: np.stack(v) for k, v in self._kernels.items() if v},
            metrics={k: np.asarray(v) for k, v in self._metrics.items()},
            labels=self.labels.copy(),
            top_p=self.top_p,
        )


class ParamsSnapshots:
    """Training callback keeping ``(params, state)`` at the given epochs: ``snapshots[epoch]``."""

    def __init__(self, epochs: Collection[int]):
        self.epochs = set(int(e) for e in epochs)
        self.snapshots: dict[int, tuple] = {}

    def __call__(self, epoch, params, state):
        if epoch in self.epochs:
            self.snapshots[epoch] = (params, state)


def train_and_track(
    model,
    x_train,
    labels_train,
    x_test,
    labels_test,
    config,
    x_probe,
    labels_probe,
    track_adv: bool = True,
    track_epochs: Optional[Collection[int]] = None,
    top_p: int = 20,
    probe_attack_steps: Optional[int] = None,
    snapshot_epochs: Sequence[int] = (),
    init_seed: int = 0,
    ntk_batch_size: Optional[int] = None,
    progress: bool = True,
    description: str = "",
    logit_top_p: Optional[int] = None,
):
    """Train the flax ``model`` with :func:`ntknb.training.train_model` while a
    :class:`KernelTracker` records its kernels on the probe set.

    The probe PGD uses ``config.eps`` and ``probe_attack_steps`` (default
    ``config.eval_attack_steps``); ``logit_top_p`` as for :class:`KernelTracker`.  Returns ``(TrainResult, KernelTrajectory,
    snapshots)`` where ``snapshots[epoch] = (params, state)`` for ``snapshot_epochs``.
    """
    tracker = KernelTracker(
        training.flax_apply_fn(model), x_probe, labels_probe, eps=config.eps,
        attack_steps=probe_attack_steps or config.eval_attack_steps, track_adv=track_adv,
        epochs=track_epochs, top_p=top_p, batch_size=ntk_batch_size, seed=config.seed, logit_top_p=logit_top_p,
    )
    snaps = ParamsSnapshots(snapshot_epochs)
    result = training.train_model(model, x_train, labels_train, x_test, labels_test, config, init_seed=init_seed,
                                  callbacks=[tracker, snaps], progress=progress, description=description)
    return result, tracker.trajectory(), snaps.snapshots


def continue_config(config, start_epoch: int):
    """The :class:`ntknb.training.TrainConfig` for epochs ``start_epoch+1 .. config.epochs``
    of ``config``, renumbered from 1: same schedule (learning-rate decays shifted, those
    already passed applied to the initial rate; ``clean_epochs`` shifted)."""
    if not 0 <= start_epoch < config.epochs:
        raise ValueError(f"start_epoch must be in [0, epochs-1={config.epochs - 1}]; got {start_epoch!r}")
    passed = sum(e <= start_epoch for e in config.lr_decay_epochs)
    return config.replace(
        epochs=config.epochs - start_epoch,
        learning_rate=config.learning_rate * config.lr_decay_factor**passed,
        lr_decay_epochs=tuple(e - start_epoch for e in config.lr_decay_epochs if e > start_epoch),
        clean_epochs=max(0, config.clean_epochs - start_epoch),
    )


def train_linearized(
    apply_fn: Callable,
    params0: Any,
    state0: dict,
    x_train,
    labels_train,
    x_test,
    labels_test,
    config,
    progress: bool = True,
    description: str = "linearised",
    centered: bool = False,
):
    """Freeze the empirical kernel at ``params0`` and train the linearised network
    (``loo2022evolution``): f_lin(θ, x) = f(θ_0, x) + J(θ_0, x)(θ − θ_0) with
    ``neural_tangents.linearize`` (:func:`ntknb.training.linearized_apply_fn`), from
    θ = θ_0, in ``config.mode`` (e.g. PGD-AT: the attacks target f_lin); ``centered=True``
    drops f(θ_0, x) (the model starts from the zero function: only the kernel carries over).
    Returns the :class:`ntknb.training.TrainResult`."""
    lin = training.linearized_apply_fn(apply_fn, params0, state0, centered=centered)
    return training.fit(lin, params0, state0, x_train, labels_train, x_test, labels_test, config,
                        progress=progress, description=description)
