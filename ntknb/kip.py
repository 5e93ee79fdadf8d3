"""Kernel Inducing Points (KIP): learning a small support set for a kernel machine, and its
adversarial variant.

References (bib keys of ``book/references.bib``):

* ``kernels_data_physics`` — the lecture notes, Sec. 2.3.2, Eq. (27): with the square loss,
  data distillation for a kernel machine is ``argmin_{X_S} ||Y_T - K(X_T, X_S) K(X_S, X_S)^-1 Y_S||^2``;
  Sec. 3, the Adversarial KIP loss ``L_AdvKIP``.
* ``nguyen2021dataset`` — Nguyen, Chen & Lee, "Dataset Meta-Learning from Kernel
  Ridge-Regression" (ICLR 2021): KIP, the ridge ``reg * tr(K_SS) / |S|`` and Adam on the
  support images (labels fixed or learned); each step a fresh class-balanced target batch.
* ``tsilivis2022robustness`` — Tsilivis, Su & Kempe, "Can we achieve robustness from data
  alone?" (2022): Adversarial KIP, the target points replaced by adversarial points of the
  kernel machine trained on the support set.

**The loss (Eq. 27).** For a support set ``(X_S, Y_S)`` (``|S|`` points, ``k`` outputs) and a
target set ``(X_T, Y_T)``, the kernel machine trained on the support set predicts

    f_S(x) = K(T(x), X_S) alpha,   alpha = (K_SS + lambda I)^-1 Y_S,   lambda = reg tr(K_SS) / |S|,

with ``K_SS = K(X_S, X_S)`` the NTK (or NNGP) Gram matrix and ``T`` an optional input map of the
target / test points (e.g. the per-channel standardisation the support set lives in). The KIP
loss is the square loss of ``f_S`` on the targets, normalised as everywhere in this package
(DEVELOPERS.md): ``L = 1/2 mean((f_S(X_T) - Y_T)^2)`` over all ``|T| k`` entries.

**Adversarial KIP** (notes' ``L_AdvKIP``): ``L_adv(X_S) = L(X_S; X_T + delta~)`` with
``delta~ = argmax_{||delta||_inf <= eps} CE(f_S(X_T + delta), Y_T)`` (cross-entropy on the
kernel machine's outputs as logits; ``x + delta`` kept in ``clip``), approximated by PGD
(:class:`PGDTargets`). The gradient in ``X_S`` is taken at the maximiser with ``delta~`` held fixed
(Danskin's theorem), as in adversarial training. The notes write the outer loss as an l2 norm;
its square (as here) has the same minimisers.

**Learning loop** (:func:`learn_support`): Adam (``optax.adam``) on ``X_S`` (and ``Y_S`` if
``learn_labels``), one jitted step per iteration that draws a class-balanced target batch on the
device, computes (PGD and) the loss and its gradient, and updates. A large target batch can be
processed in chunks (``target_chunk``: loss and gradient accumulated with ``lax.scan``, each chunk
a ``|chunk| x |S|`` kernel block) to bound memory.

**Precision.** ``lambda = 1e-6 tr(K)/|S|`` allows condition numbers up to about ``1e6 |S|``,
beyond float32. ``dtype=np.float64`` runs a whole step inside JAX's x64 mode
(:func:`ntknb._compat.x64`), as the authors' notebook does; ``np.float32`` is about four times
faster on a CPU and agrees while ``K_SS + lambda I`` stays well conditioned (check it with
:func:`support_condition_number`). The evaluation functions (:func:`support_weights`,
:func:`predict`) solve in float64 by default.

Shapes: support ``x_support (S, ...)``, ``y_support (S, k)``; targets ``x_target (B, ...)``,
``y_target (B, k)`` (the package's centred one-hot labels for classification).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Optional

import ntknb  # noqa: F401  (compat shim before neural_tangents)

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ntknb._compat import x64
from ntknb import kernels
from ntknb.attacks import cross_entropy, pgd_step_size, project_linf
from ntknb.validation import SEED_LIMIT, check_bool, check_clip, check_float, check_int

__all__ = [
    "PGDTargets",
    "KIPResult",
    "regularized_gram",
    "kip_loss",
    "adversarial_targets",
    "learn_support",
    "class_table",
    "target_indices",
    "support_weights",
    "support_condition_number",
    "predict",
    "support_predictor",
]

_DTYPES = (np.float32, np.float64)


# ------------------------------------------------------------------------------ checks


def _check_dtype(dtype) -> type:
    try:
        dt = np.dtype(dtype).type
    except TypeError:
        dt = None
    if dt not in _DTYPES:
        raise ValueError(f"parameter 'dtype' must be float32 or float64, got {dtype!r}")
    return dt


def _check_reg(reg) -> float:
    return check_float("reg", reg, min=0.0)


def _check_support(x_support, y_support):
    xs, ys = np.shape(x_support), np.shape(y_support)
    if len(xs) < 2 or xs[0] < 1:
        raise ValueError(f"parameter 'x_support' must have shape (S, ...) with S >= 1, got {xs}")
    if len(ys) != 2 or ys[0] != xs[0]:
        raise ValueError(f"parameter 'y_support' must have shape (S, k) = ({xs[0]}, k), got {ys}")


def _check_pairs(x_name, x, y_name, y, k: int):
    xs, ys = np.shape(x), np.shape(y)
    if len(xs) < 2 or xs[0] < 1:
        raise ValueError(f"parameter {x_name!r} must have shape (n, ...) with n >= 1, got {xs}")
    if ys != (xs[0], k):
        raise ValueError(f"parameter {y_name!r} must have shape ({xs[0]}, {k}) like the support labels, got {ys}")


def _check_callable(name, fn, none_ok=False):
    if fn is None and none_ok:
        return None
    if not callable(fn):
        raise ValueError(f"parameter {name!r} must be callable, got {fn!r}")
    return fn


def _identity(x):
    return x


def _check_args(kernel_fn, x_support, y_support, x_target, y_target, reg, kind, transform):
    """The checks of the traceable functions: shapes (static under tracing), ``kind``, callables,
    and ``reg`` when it is a concrete number."""
    _check_callable("kernel_fn", kernel_fn)
    _check_callable("transform", transform, none_ok=True)
    kernels.check_kind(kind)
    _check_support(x_support, y_support)
    _check_pairs("x_target", x_target, "y_target", y_target, np.shape(y_support)[1])
    if isinstance(reg, (int, float, np.integer, np.floating)):  # a traced reg is checked by its caller
        _check_reg(reg)


# ------------------------------------------------------------------------------ core (traceable)


def regularized_gram(k_ss, reg: float):
    """``K_SS + reg tr(K_SS) / S * I`` (``nguyen2021dataset``'s ridge, relative to the mean
    diagonal). ``k_ss``: ``(S, S)``; returns ``(S, S)`` (symmetrised). Traceable."""
    k_ss = 0.5 * (k_ss + k_ss.T)
    n = k_ss.shape[0]
    return k_ss + (reg * jnp.trace(k_ss) / n) * jnp.eye(n, dtype=k_ss.dtype)


def _weights(kernel_fn, kind, x_support, y_support, reg):
    k_ss = kernel_fn(x_support, None, kind)
    a = regularized_gram(k_ss, reg)
    return jax.scipy.linalg.solve(a, y_support.astype(a.dtype), assume_a="pos")


def _outputs(kernel_fn, kind, transform, x_support, alpha, x):
    return kernel_fn(transform(x), x_support, kind) @ alpha


def kip_loss(kernel_fn: Callable, x_support, y_support, x_target, y_target, reg: float = 1e-6, *,
             transform: Optional[Callable] = None, kind: str = "ntk"):
    """The KIP loss (notes Eq. 27 with a ridge; ``nguyen2021dataset``), traceable and
    differentiable in ``x_support`` and ``y_support``:

        L = 1/2 mean((K(T(X_T), X_S) (K_SS + reg tr(K_SS)/S I)^-1 Y_S - Y_T)^2)

    over all ``B k`` entries of ``Y_T``.

    Args:
      kernel_fn: ``kernel_fn(x1, x2, get) -> (n1, n2)`` (a stax / :mod:`ntknb.architectures`
        kernel; ``x2 = None`` means ``x1``).
      x_support: ``(S, ...)``; y_support: ``(S, k)``.
      x_target: ``(B, ...)`` (mapped by ``transform`` first); y_target: ``(B, k)``.
      reg: ridge relative to the mean diagonal of ``K_SS`` (>= 0).
      transform: input map of the target points (default: identity).
      kind: ``"ntk"`` or ``"nngp"``.
    Returns: a scalar.
    """
    _check_args(kernel_fn, x_support, y_support, x_target, y_target, reg, kind, transform)
    transform = transform or _identity
    alpha = _weights(kernel_fn, kind, x_support, y_support, reg)
    f = _outputs(kernel_fn, kind, transform, x_support, alpha, x_target)
    return 0.5 * jnp.mean((f - y_target.astype(f.dtype)) ** 2)


@dataclasses.dataclass(frozen=True)
class PGDTargets:
    """The inner maximisation of Adversarial KIP: PGD (``madry2018towards``) on the
    cross-entropy of the kernel machine trained on the support set.

    Attributes:
      eps: l-inf radius (in the units of the target points, before ``transform``), > 0.
      steps: PGD steps (>= 1).
      step_size: PGD step (default ``2.5 eps / steps``, :func:`ntknb.attacks.pgd_step_size`).
      clip: valid range of the target points (default ``(0, 1)``) or ``None``.
      random_start: start from a uniform point of the eps-box (else from the target point).
    """

    eps: float
    steps: int = 10
    step_size: Optional[float] = None
    clip: Optional[tuple] = (0.0, 1.0)
    random_start: bool = True

    def __post_init__(self):
        object.__setattr__(self, "eps", check_float("eps", self.eps, min=0.0, min_inclusive=False))
        object.__setattr__(self, "steps", check_int("steps", self.steps, min=1))
        step = pgd_step_size(self.eps, self.steps) if self.step_size is None else self.step_size
        object.__setattr__(self, "step_size", check_float("step_size", step, min=0.0, min_inclusive=False))
        object.__setattr__(self, "clip", check_clip("clip", self.clip))
        object.__setattr__(self, "random_start", check_bool("random_start", self.random_start))


def _pgd(kernel_fn, kind, transform, x_support, alpha, x, y, key, adv: PGDTargets):
    """PGD on ``CE(f_S(x + delta), y)``; ``alpha`` and ``x_support`` are constants here."""
    x_support = jax.lax.stop_gradient(x_support)
    alpha = jax.lax.stop_gradient(alpha)

    def loss(xa):
        return jnp.sum(cross_entropy(_outputs(kernel_fn, kind, transform, x_support, alpha, xa), y))

    grad = jax.grad(loss)
    eps = jnp.asarray(adv.eps, x.dtype)
    step = jnp.asarray(adv.step_size, x.dtype)
    if adv.random_start:
        x0 = x + jax.random.uniform(key, x.shape, x.dtype, minval=-eps, maxval=eps)
    else:
        x0 = x
    x0 = project_linf(x0, x, eps, adv.clip)

    def body(_, xa):
        return project_linf(xa + step * jnp.sign(grad(xa)), x, eps, adv.clip)

    return jax.lax.stop_gradient(jax.lax.fori_loop(0, adv.steps, body, x0))


def adversarial_targets(kernel_fn: Callable, x_support, y_support, x_target, y_target, adversary: PGDTargets,
                        key, reg: float = 1e-6, *, transform: Optional[Callable] = None, kind: str = "ntk"):
    """``X_T + delta~``: the inner maximisation of ``L_AdvKIP`` (notes Sec. 3;
    ``tsilivis2022robustness``) by PGD on the cross-entropy of ``f_S`` (traceable).

    Args: as :func:`kip_loss`; ``adversary``: a :class:`PGDTargets`; ``key``: PRNG key of the
    random start. Returns ``(B, ...)``, held constant for differentiation."""
    _check_args(kernel_fn, x_support, y_support, x_target, y_target, reg, kind, transform)
    if not isinstance(adversary, PGDTargets):
        raise ValueError(f"parameter 'adversary' must be a PGDTargets, got {adversary!r}")
    transform = transform or _identity
    alpha = _weights(kernel_fn, kind, x_support, y_support, reg)
    return _pgd(kernel_fn, kind, transform, x_support, alpha, x_target, y_target, key, adversary)


# ------------------------------------------------------------------------------ learning loop


@dataclasses.dataclass(frozen=True, eq=False)
class KIPResult:
    """The result of :func:`learn_support`.

    Attributes:
      x_support, y_support: the learned support set (NumPy, the run's dtype).
      losses: ``(steps,)`` the loss of each step's target batch (before its update).
      checkpoints: step counts at which snapshots were kept (0 = the initial set).
      snapshots: ``[(x_support, y_support)]`` at each checkpoint.
      seconds: wall time of the loop (compilation included).
      settings: the run's settings (JSON values).
    """

    x_support: np.ndarray
    y_support: np.ndarray
    losses: np.ndarray
    checkpoints: tuple
    snapshots: list
    seconds: float
    settings: dict


def target_indices(key, table, per_class: int):
    """A class-balanced target batch: ``per_class`` distinct indices drawn uniformly from each row
    of ``table`` (``(k, m)``, row ``c`` = pool indices of class ``c``), classes interleaved
    (``[c_0, c_1, ..., c_{k-1}, c_0, ...]``). Traceable; returns ``(k * per_class,)``."""
    keys = jax.random.split(key, table.shape[0])
    cols = jax.vmap(lambda kk: jax.random.permutation(kk, table.shape[1])[:per_class])(keys)
    return jnp.take_along_axis(table, cols, axis=1).T.reshape(-1)


def class_table(labels, target_batch: int):
    """``(k, m)`` pool indices of each class (the first ``m`` of each, ``m`` the smallest class
    count) and the per-class batch ``target_batch / k``; ``labels``: ``(n,)`` integer classes.
    Raises ``ValueError`` if ``target_batch`` is not a multiple of ``k`` or exceeds ``k m``."""
    labels = np.asarray(labels)
    n = labels.shape[0] if labels.ndim else 0
    if n == 0 or labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"parameter 'labels_pool' must be non-empty integer classes of shape (n,), got "
                         f"{labels.shape} {labels.dtype}")
    classes = np.unique(labels)
    k = len(classes)
    if target_batch % k:
        raise ValueError(f"parameter 'target_batch' must be a multiple of the {k} classes of labels_pool, "
                         f"got {target_batch}")
    groups = [np.flatnonzero(labels == c) for c in classes]
    m = min(len(g) for g in groups)
    if target_batch // k > m:
        raise ValueError(f"parameter 'target_batch' asks for {target_batch // k} points per class; the "
                         f"smallest class of labels_pool has {m}; allowed: multiples of {k} up to {k * m}")
    return np.stack([g[:m] for g in groups]).astype(np.int32), target_batch // k


@functools.lru_cache(maxsize=32)
def _make_step(kernel_fn, kind, transform, reg, adversary, learning_rate, learn_labels, class_balanced, per_class,
               target_batch, n_pool, chunk):
    """The jitted KIP / Adversarial KIP step for one static configuration (cached: replicas with
    other seeds and data of the same shapes reuse its compilation)."""
    tx = optax.adam(learning_rate)

    def loss_fn(params, y_fixed, xt, yt, key):
        x_s = params["x"]
        y_s = params["y"] if learn_labels else y_fixed
        alpha = _weights(kernel_fn, kind, x_s, y_s, reg)
        if adversary is not None:
            xt = _pgd(kernel_fn, kind, transform, x_s, alpha, xt, yt, key, adversary)
        f = _outputs(kernel_fn, kind, transform, x_s, alpha, xt)
        return 0.5 * jnp.mean((f - yt.astype(f.dtype)) ** 2)

    value_and_grad = jax.value_and_grad(loss_fn)

    def sample(key, table):
        if not class_balanced:
            if target_batch == n_pool:
                return jnp.arange(n_pool)
            return jax.random.choice(key, n_pool, (target_batch,), replace=False)
        return target_indices(key, table, per_class)

    def step(params, opt_state, y_fixed, x_pool, y_pool, table, key):
        k_sample, k_adv = jax.random.split(key)
        idx = sample(k_sample, table)
        xt, yt = x_pool[idx], y_pool[idx]
        if chunk is None or chunk >= target_batch:
            loss, grads = value_and_grad(params, y_fixed, xt, yt, k_adv)
        else:
            n_chunks = target_batch // chunk
            xt = xt.reshape((n_chunks, chunk) + xt.shape[1:])
            yt = yt.reshape((n_chunks, chunk) + yt.shape[1:])
            keys = jax.random.split(k_adv, n_chunks)

            def body(acc, inputs):
                xc, yc, kc = inputs
                lc, gc = value_and_grad(params, y_fixed, xc, yc, kc)
                return jax.tree_util.tree_map(jnp.add, acc, (lc, gc)), None

            zero = (jnp.zeros((), params["x"].dtype), jax.tree_util.tree_map(jnp.zeros_like, params))
            (loss, grads), _ = jax.lax.scan(body, zero, (xt, yt, keys))
            loss = loss / n_chunks
            grads = jax.tree_util.tree_map(lambda g: g / n_chunks, grads)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return tx, jax.jit(step)


# Longer than 80 lines of code (tests/test_structure.py): the boundary checks of its many arguments
# (one per argument, before the heavy work) and one optimisation loop; split, the loop would take them all.
def learn_support(kernel_fn: Callable, x_support, y_support, x_pool, y_pool, *, steps: int,
                  learning_rate: float = 0.04, target_batch: Optional[int] = None, labels_pool=None,
                  reg: float = 1e-6, learn_labels: bool = False, adversary: Optional[PGDTargets] = None,
                  transform: Optional[Callable] = None, target_chunk: Optional[int] = None,
                  checkpoints: Sequence[int] = (), seed: int = 0, dtype=np.float32, kind: str = "ntk",
                  progress: bool = False) -> KIPResult:
    """Learn a support set by Adam on the KIP loss (``nguyen2021dataset``; notes Eq. 27) or,
    with ``adversary``, on the Adversarial KIP loss (notes' ``L_AdvKIP``; ``tsilivis2022robustness``).

    Each step draws a target batch of ``target_batch`` pool points (class-balanced when
    ``labels_pool`` is given, otherwise uniform without replacement; the whole pool when
    ``None``), optionally replaces it by its PGD points against the current support set, and
    takes one Adam step on the loss. The step (sampling, PGD, kernel blocks, solve, gradient,
    update) is one jitted function.

    Args:
      kernel_fn: ``kernel_fn(x1, x2, get)`` (e.g. ``ntknb.architectures.fully_connected().kernel_fn``).
      x_support: ``(S, ...)`` initial support points (e.g. a natural subset); y_support: ``(S, k)``.
      x_pool: ``(n, ...)`` target pool (mapped by ``transform`` inside the kernel); y_pool: ``(n, k)``.
      steps: Adam steps (>= 0).
      learning_rate: Adam's step size (``nguyen2021dataset``'s notebook: 0.04 on standardised images).
      target_batch: target points per step (<= n; a multiple of the classes if ``labels_pool``).
      labels_pool: ``(n,)`` integer classes for class-balanced batches, or ``None``.
      reg: ridge relative to ``tr(K_SS)/S`` (the authors: 1e-6).
      learn_labels: also learn ``Y_S``.
      adversary: ``None`` (KIP) or a :class:`PGDTargets` (Adversarial KIP).
      transform: input map of target points (the support lives in its image), or ``None``.
      target_chunk: process the target batch in chunks of this size (must divide it), or ``None``.
      checkpoints: step counts (in ``[0, steps]``) at which to keep a snapshot of the support set.
      seed: PRNG seed of the batches and the PGD starts.
      dtype: ``np.float32`` or ``np.float64`` (the whole step in x64 mode).
      kind: ``"ntk"`` or ``"nngp"``.
      progress: print the loss every tenth of the run.
    Returns: a :class:`KIPResult`.
    """
    _check_callable("kernel_fn", kernel_fn)
    transform = _check_callable("transform", transform, none_ok=True)
    kind = kernels.check_kind(kind)
    dt = _check_dtype(dtype)
    _check_support(x_support, y_support)
    k = np.shape(y_support)[1]
    _check_pairs("x_pool", x_pool, "y_pool", y_pool, k)
    n_pool = np.shape(x_pool)[0]
    if transform is None and np.shape(x_pool)[1:] != np.shape(x_support)[1:]:
        raise ValueError(f"parameter 'x_pool' must have the support points' shape (n, "
                         f"{', '.join(map(str, np.shape(x_support)[1:]))}) without a transform, got {np.shape(x_pool)}")
    steps = check_int("steps", steps, min=0)
    learning_rate = check_float("learning_rate", learning_rate, min=0.0, min_inclusive=False)
    target_batch = check_int("target_batch", n_pool if target_batch is None else target_batch, min=1, max=n_pool)
    reg = _check_reg(reg)
    learn_labels = check_bool("learn_labels", learn_labels)
    if adversary is not None and not isinstance(adversary, PGDTargets):
        raise ValueError(f"parameter 'adversary' must be None or a PGDTargets, got {adversary!r}")
    if adversary is not None and adversary.clip is not None:
        lo, hi = float(np.min(x_pool)), float(np.max(x_pool))
        if lo < adversary.clip[0] or hi > adversary.clip[1]:
            raise ValueError(f"parameter 'x_pool' must lie in the adversary's clip range {adversary.clip} (the PGD "
                             f"points are kept there), got values in [{lo:.3g}, {hi:.3g}]")
    target_chunk = check_int("target_chunk", target_chunk, min=1, none_ok=True)
    if target_chunk is not None and target_chunk < target_batch and target_batch % target_chunk:
        raise ValueError(f"parameter 'target_chunk' must divide target_batch = {target_batch}, got {target_chunk}")
    seed = check_int("seed", seed, min=0, max=SEED_LIMIT - 1)
    checkpoints = sorted({check_int(f"checkpoints[{i}]", c, min=0, max=steps) for i, c in enumerate(checkpoints)})
    table, per_class = (None, None)
    if labels_pool is not None:
        if np.shape(labels_pool) != (n_pool,):
            raise ValueError(f"parameter 'labels_pool' must have shape ({n_pool},) like x_pool, "
                             f"got {np.shape(labels_pool)}")
        table, per_class = class_table(labels_pool, target_batch)

    t0 = time.perf_counter()
    ctx = x64() if dt is np.float64 and not jax.config.jax_enable_x64 else contextlib.nullcontext()
    with ctx:
        jdt = jnp.float64 if dt is np.float64 else jnp.float32
        params = {"x": jnp.asarray(x_support, jdt)}
        y_fixed = jnp.asarray(y_support, jdt)
        if learn_labels:
            params["y"] = y_fixed
        x_pool_d = jnp.asarray(x_pool, jdt)
        y_pool_d = jnp.asarray(y_pool, jdt)
        table_d = jnp.zeros((1, 1), jnp.int32) if table is None else jnp.asarray(table)
        tx, step = _make_step(kernel_fn, kind, transform or _identity, reg, adversary, learning_rate, learn_labels,
                              table is not None, per_class, target_batch, n_pool, target_chunk)
        opt_state = tx.init(params)
        key = jax.random.PRNGKey(seed)
        losses, snapshots = [], []

        def snap():
            y_now = params["y"] if learn_labels else y_fixed
            snapshots.append((np.asarray(params["x"]), np.asarray(y_now)))

        if 0 in checkpoints:
            snap()
        for i in range(1, steps + 1):
            params, opt_state, loss = step(params, opt_state, y_fixed, x_pool_d, y_pool_d, table_d,
                                           jax.random.fold_in(key, i))
            losses.append(loss)
            if i in checkpoints:
                snap()
            if progress and steps >= 10 and i % (steps // 10) == 0:
                print(f"step {i}: loss {float(loss):.5f}", flush=True)
        x_out = np.asarray(params["x"])
        y_out = np.asarray(params["y"] if learn_labels else y_fixed)
        losses = np.asarray(jnp.stack(losses)) if losses else np.zeros(0, dt)
    settings = dict(steps=steps, learning_rate=learning_rate, target_batch=target_batch, reg=reg,
                    learn_labels=learn_labels, class_balanced=labels_pool is not None, target_chunk=target_chunk,
                    seed=seed, dtype=np.dtype(dt).name, kind=kind,
                    adversary=None if adversary is None else dict(
                        eps=adversary.eps, steps=adversary.steps, step_size=adversary.step_size,
                        clip=None if adversary.clip is None else list(adversary.clip),
                        random_start=adversary.random_start))
    return KIPResult(x_support=x_out, y_support=y_out, losses=losses, checkpoints=tuple(checkpoints),
                     snapshots=snapshots, seconds=time.perf_counter() - t0, settings=settings)


# ------------------------------------------------------------------------------ evaluation


def support_weights(kernel_fn: Callable, x_support, y_support, reg: float = 1e-6, *, kind: str = "ntk",
                    dtype=np.float64) -> np.ndarray:
    """``alpha = (K_SS + reg tr(K_SS)/S I)^-1 Y_S``, ``(S, k)`` NumPy, solved in ``dtype``
    (default float64: the kernel and the solve in x64 mode)."""
    _check_callable("kernel_fn", kernel_fn)
    _check_support(x_support, y_support)
    reg, kind, dt = _check_reg(reg), kernels.check_kind(kind), _check_dtype(dtype)
    k_ss = np.asarray(kernels.kernel_matrix(kernel_fn, x_support, None, kind=kind, batch_size=None, dtype=dt),
                      np.float64)
    return np.linalg.solve(_regularized_np(k_ss, reg).astype(dt), np.asarray(y_support, dt))


def _regularized_np(k_ss: np.ndarray, reg: float) -> np.ndarray:
    k_ss = 0.5 * (k_ss + k_ss.T)
    return k_ss + reg * np.trace(k_ss) / len(k_ss) * np.eye(len(k_ss))


def support_condition_number(kernel_fn: Callable, x_support, reg: float = 1e-6, *, kind: str = "ntk") -> float:
    """Condition number of ``K_SS + reg tr(K_SS)/S I`` in float64: above about ``1e4`` a
    float32 solve loses digits (float32 carries about 7)."""
    _check_callable("kernel_fn", kernel_fn)
    reg, kind = _check_reg(reg), kernels.check_kind(kind)
    k_ss = np.asarray(kernels.kernel_matrix(kernel_fn, x_support, None, kind=kind, batch_size=None,
                                            dtype=np.float64), np.float64)
    ev = np.linalg.eigvalsh(_regularized_np(k_ss, reg))
    return float(ev[-1] / ev[0]) if ev[0] > 0 else math.inf


def predict(kernel_fn: Callable, x_support, y_support, x, reg: float = 1e-6, *, transform: Optional[Callable] = None,
            kind: str = "ntk", batch_size: Optional[int] = 1000, dtype=np.float64) -> np.ndarray:
    """Outputs ``f_S(x) = K(T(x), X_S) alpha`` of the kernel machine trained on the support set,
    ``(n, k)`` NumPy, in blocks of ``batch_size`` points, in ``dtype`` (default float64)."""
    transform = _check_callable("transform", transform, none_ok=True) or _identity
    batch_size = check_int("batch_size", batch_size, min=1, none_ok=True)
    dt = _check_dtype(dtype)
    alpha = support_weights(kernel_fn, x_support, y_support, reg, kind=kind, dtype=dt)
    n = np.shape(x)[0]
    bs = n if batch_size is None else min(batch_size, n)
    ctx = x64() if dt is np.float64 and not jax.config.jax_enable_x64 else contextlib.nullcontext()
    with ctx:
        jdt = jnp.float64 if dt is np.float64 else jnp.float32
        xs, a = jnp.asarray(x_support, jdt), jnp.asarray(alpha, jdt)
        fn = _outputs_jit(kernel_fn, kind, transform)
        outs = []
        for i in range(0, n, bs):
            xb = kernels.pad_rows(np.asarray(x[i:i + bs], dt), bs)
            outs.append(np.asarray(fn(xs, a, jnp.asarray(xb)))[: min(bs, n - i)])
    return np.concatenate(outs) if outs else np.zeros((0, np.shape(y_support)[1]), dt)


@functools.lru_cache(maxsize=32)
def _outputs_jit(kernel_fn, kind, transform):
    """``(x_support, alpha, x) -> f_S(x)`` jitted once per kernel, kind and transform (the support
    set and weights are arguments, so every support set of one shape shares the compilation)."""
    return jax.jit(lambda xs, a, xb: _outputs(kernel_fn, kind, transform, xs, a, xb))


def support_predictor(kernel_fn: Callable, x_support, y_support, reg: float = 1e-6, *,
                      transform: Optional[Callable] = None, kind: str = "ntk") -> Callable:
    """``predict(x) = K(T(x), X_S) alpha`` in float32 (``alpha`` solved in float64), a
    differentiable function of ``x (b, ...) -> (b, k)`` for :func:`ntknb.evaluation.robust_evaluation`
    (pass the same object to every call to reuse its compilation)."""
    transform = _check_callable("transform", transform, none_ok=True) or _identity
    alpha = jnp.asarray(support_weights(kernel_fn, x_support, y_support, reg, kind=kind), jnp.float32)
    xs = jnp.asarray(x_support, jnp.float32)

    def predict_fn(x):
        return _outputs(kernel_fn, kind, transform, xs, alpha, x)

    return predict_fn
