"""l-infinity adversarial attacks (FGSM, PGD), classification losses, and the
training-free *kernel attack* of ``tsilivis2022ntk``, Eq. (8).

The attacks are generic over any differentiable **per-example** loss
``loss_fn(x, y) -> (n,)``.  The input gradient is taken of ``sum(loss_fn(x, y))``
in one batched pass; because examples are independent (no batch statistics), row
``i`` of that gradient is example ``i``'s own gradient.

* :func:`fgsm` — Fast Gradient Sign Method, ``goodfellow2015explaining``:
  ``x~ = Proj(x + eps * sign(grad_x L(x, y)))``.
* :func:`pgd` — Projected Gradient Descent (ascent) on the loss, ``madry2018towards``:
  ``x_{s+1} = Proj_{B_inf(x, eps) ∩ [0,1]^d}(x_s + alpha * sign(grad L(x_s, y)))``,
  default ``alpha = 2.5 * eps / steps``, optional uniform random start in the ball.
* Kernel attack, ``tsilivis2022ntk``, Eq. (8): treat the outputs of any predictor
  (e.g. the NTK predictor ``f_t`` of Eq. (7), see :mod:`ntknb.kernels`) as logits and
  attack them with FGSM/PGD::

      fgsm(predictor_loss(f_t, "bce"), x, y, eps)      # == Eq. (8)

  For binary labels ``y = ±1`` and ``L = softplus(-y f)`` (sigmoid + cross-entropy),
  ``dL/df = -y * sigmoid(-y f)`` has the sign of ``-y``, so
  ``sign(grad_x L) = -y * sign(grad_x f)`` and FGSM gives exactly
  ``x~ = x - y * eps * sign(grad_x f_t(x))`` (before clipping to ``[0, 1]``).
  :func:`kernel_fgsm` / :func:`kernel_pgd` are thin wrappers of :func:`fgsm` / :func:`pgd`.

Conventions (see DEVELOPERS.md): images float32 in ``[0, 1]``, NHWC (any trailing
shape works); binary labels ``±1`` of shape ``(n, 1)``; multi-class labels centred
one-hot ``one_hot - 1/k`` of shape ``(n, k)`` (plain one-hot is accepted too).

Jit: the core of each attack is ``jax.jit``-compiled with ``loss_fn`` static (it is
hashed, so pass the *same* loss object to reuse the compilation; :func:`predictor_loss`
returns objects that compare equal for the same predictor and loss name).  The PGD loop
is a ``jax.lax.fori_loop``.  ``batch_size`` splits ``x`` into chunks (to bound memory
for kernel predictors whose cost grows with the number of test points); the random
start is drawn for the whole batch first, so chunked and unchunked runs agree.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from ntknb.validation import check_clip, check_int

__all__ = [
    "LOSSES",
    "classification_loss",
    "binary_cross_entropy_pm1",
    "cross_entropy",
    "squared_error",
    "accuracy",
    "fgsm",
    "pgd",
    "pgd_step_size",
    "project_linf",
    "check_in_clip",
    "predictor_loss",
    "kernel_fgsm",
    "kernel_pgd",
    "robust_accuracy",
]

LossFn = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]
Clip = Optional[Tuple[float, float]]


# --------------------------------------------------------------------------- losses


def _per_example_sum(a: jnp.ndarray) -> jnp.ndarray:
    """Sum over all axes but the leading one: ``(n, ...) -> (n,)``."""
    return jnp.sum(jnp.reshape(a, (a.shape[0], -1)), axis=1)


def binary_cross_entropy_pm1(f: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """Logistic (sigmoid + cross-entropy) loss for labels ``±1``.

    ``L_i = log(1 + exp(-y_i f_i)) = softplus(-y_i f_i)``, computed stably
    (finite for ``|f| = 1000``).  This is the binary loss behind Eq. (8) of
    ``tsilivis2022ntk``.

    Args:
      f: scalar outputs (logits), shape ``(n, 1)`` or ``(n,)``.
      y: labels in ``{-1, +1}``, same shape as ``f`` (``(n, 1)`` or ``(n,)``).

    Returns:
      per-example losses, shape ``(n,)``.
    """
    f = jnp.asarray(f)
    y = jnp.asarray(y, dtype=f.dtype)
    n = f.shape[0]
    f = jnp.reshape(f, (n, -1))
    y = jnp.reshape(y, (y.shape[0], -1))
    if f.shape[1] != 1 or y.shape != f.shape:
        raise ValueError(
            "binary_cross_entropy_pm1: f and y must both have shape (n, 1) or (n,); "
            f"got f {f.shape}, y {y.shape}"
        )
    _check_pm1(y)
    return jax.nn.softplus(-y * f)[:, 0]


def _class_index(y: jnp.ndarray, k: int) -> jnp.ndarray:
    """Class indices from one-hot, centred one-hot (``one_hot - 1/k``: argmax is
    unchanged by the shift) or integer labels."""
    y = jnp.asarray(y)
    if y.ndim == 1 and jnp.issubdtype(y.dtype, jnp.integer):
        return y
    if y.ndim != 2 or y.shape[1] != k:
        raise ValueError(
            f"cross_entropy: y must be one-hot or centred one-hot of shape (n, {k}) "
            f"or integer class indices of shape (n,); got shape {y.shape}"
        )
    return jnp.argmax(y, axis=-1)


def cross_entropy(logits: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """Softmax cross-entropy ``L_i = -log softmax(logits_i)[c_i]``.

    The class ``c_i = argmax_j y_ij``, so ``y`` may be one-hot **or** the package's
    centred one-hot ``one_hot - 1/k`` (same argmax, same loss); integer class
    indices of shape ``(n,)`` are accepted too.  With a single logit (``k = 1``) the
    softmax would be constant (no loss, no gradient): the binary cross-entropy
    :func:`binary_cross_entropy_pm1` on ±1 labels is used instead.  Multi-class form of the kernel
    attack of ``tsilivis2022ntk``, Sec. 3.1 / Appendix.

    Args:
      logits: shape ``(n, k)``.
      y: shape ``(n, k)`` (one-hot / centred one-hot) or ``(n,)`` int.

    Returns:
      per-example losses, shape ``(n,)``.
    """
    logits = jnp.asarray(logits)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must have shape (n, k); got {logits.shape}")
    if logits.shape[1] == 1:  # one logit: softmax over one class is constant; binary CE instead
        return binary_cross_entropy_pm1(logits, jnp.reshape(jnp.asarray(y), (-1, 1)))
    c = _class_index(y, logits.shape[1])
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logp, c[:, None], axis=-1)[:, 0]


def squared_error(f: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """``L_i = ½ ‖f_i − y_i‖²`` (sum over output entries), shape ``(n,)``.

    Args:
      f, y: same shape ``(n, ...)``.
    """
    f = jnp.asarray(f)
    y = jnp.asarray(y, dtype=f.dtype)
    if f.shape != y.shape:
        raise ValueError(f"squared_error: f and y must have the same shape; got {f.shape}, {y.shape}")
    return 0.5 * _per_example_sum((f - y) ** 2)


#: Loss names accepted by :func:`predictor_loss` / :func:`kernel_fgsm` / :func:`kernel_pgd`.
LOSSES = {
    "bce": binary_cross_entropy_pm1,
    "ce": cross_entropy,
    "mse": squared_error,
}


def classification_loss(loss: str, k: int) -> str:
    """The classification loss for ``k`` outputs: ``"bce"`` (±1 labels, ``k = 1``) or ``"ce"``.

    ``loss="auto"`` picks by ``k``; an explicit ``"bce"`` / ``"ce"`` must fit ``k``.
    Raises ``ValueError`` naming ``loss`` and the allowed values otherwise.
    """
    if loss == "auto":
        return "bce" if k == 1 else "ce"
    if loss not in ("bce", "ce"):
        raise ValueError(f"`loss` must be one of ['auto', 'bce', 'ce'], got {loss!r}")
    if (loss == "bce") != (k == 1):
        raise ValueError(f"`loss`={loss!r} does not fit k = {k} outputs ('bce' needs binary "
                         "labels of shape (n, 1), 'ce' needs k > 1 classes)")
    return loss


def accuracy(f: jnp.ndarray, y: jnp.ndarray) -> float:
    """Fraction of correct predictions, for either label encoding, as a Python ``float``
    (computed from integer counts: exact ``correct / n`` whatever the dtype of ``f``).

    * binary (``f`` of shape ``(n,)`` or ``(n, 1)``, ``y = ±1`` of shape ``(n,)`` or ``(n, 1)``):
      correct iff ``f_i * y_i > 0`` (``f = 0`` counts as wrong);
    * multi-class (``f`` of shape ``(n, k)``, ``k > 1``): ``argmax f == argmax y``
      (``y`` one-hot, centred one-hot ``(n, k)``, or integer indices ``(n,)``).

    Refused (``ValueError``): an empty batch (``n = 0``), NaN or infinite predictions (a
    diverged model has no accuracy), labels whose number of examples differs from ``f``'s
    (no broadcasting: ``(1, 1)`` labels for ``n`` predictions are an error), integer labels
    outside ``[0, k)`` and NaN / infinite one-hot labels (either would count as wrong silently).
    """
    f = jnp.asarray(f)
    y = jnp.asarray(y)
    if f.ndim not in (1, 2):
        raise ValueError(f"accuracy: f must have shape (n,), (n, 1) or (n, k); got {f.shape}")
    n = f.shape[0]
    if n == 0:
        raise ValueError("accuracy: f holds no predictions (n = 0); the accuracy of an empty batch is undefined")
    if y.ndim not in (1, 2) or y.shape[0] != n:
        raise ValueError(f"accuracy: y must hold one label per prediction ({n}), shape ({n},) or ({n}, k); "
                         f"got shape {y.shape} for f of shape {f.shape}")
    if _concrete(f) and jnp.issubdtype(f.dtype, jnp.inexact):
        bad = int(np.sum(~np.isfinite(np.asarray(f))))
        if bad:
            raise ValueError(f"accuracy: f holds {bad} NaN or infinite prediction(s) of {f.size}; "
                             "a diverged model has no accuracy")
    if f.ndim == 1 or f.shape[1] == 1:
        if y.ndim == 2 and y.shape[1] != 1:
            raise ValueError(f"accuracy: binary predictions of shape {f.shape} need labels of shape ({n},) or "
                             f"({n}, 1); got {y.shape}")
        _check_pm1(y)
        correct = jnp.reshape(f, (-1,)) * jnp.reshape(y, (-1,)).astype(f.dtype) > 0
    else:
        k = f.shape[1]
        if _concrete(y) and y.ndim == 1 and jnp.issubdtype(y.dtype, jnp.integer) and \
                not bool(np.all((np.asarray(y) >= 0) & (np.asarray(y) < k))):
            raise ValueError(f"accuracy: integer labels must be class indices in [0, {k}) for {k} classes; "
                             f"got values in [{int(np.min(y))}, {int(np.max(y))}]")
        if y.ndim != 2 or y.shape[1] != k:
            if y.ndim == 2 or not jnp.issubdtype(y.dtype, jnp.integer):
                raise ValueError(f"accuracy: y must be (centred) one-hot of shape ({n}, {k}) or integer class "
                                 f"indices of shape ({n},); got shape {y.shape}, dtype {y.dtype}")
        elif _concrete(y) and jnp.issubdtype(y.dtype, jnp.inexact) and not bool(np.all(np.isfinite(np.asarray(y)))):
            raise ValueError("accuracy: y holds NaN or infinite labels")
        correct = jnp.argmax(f, axis=-1) == _class_index(y, k)
    return int(jnp.sum(correct)) / n


# ----------------------------------------------------------------------- validation


def _concrete(v) -> bool:
    return not isinstance(v, jax.core.Tracer)


def _check_eps(eps) -> None:
    if _concrete(eps):
        e = float(eps)
        if not (math.isfinite(e) and e >= 0):
            raise ValueError(f"eps must be a finite number >= 0; got {eps!r}")


def _check_xy(x, y) -> Tuple[jnp.ndarray, jnp.ndarray]:
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    if x.ndim < 1 or y.ndim < 1 or x.shape[0] != y.shape[0]:
        raise ValueError(
            "x and y must have the same leading (batch) dimension n; "
            f"got x {x.shape}, y {y.shape}"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    return x, y


def _check_pm1(y, name: str = "y") -> None:
    """Binary labels must be ±1 (DEVELOPERS.md): 0/1 labels make ``y * f`` vanish for half
    the examples (no loss gradient, no attack). Checked on concrete arrays only."""
    if not _concrete(y):
        return
    v = np.asarray(y)
    if v.size and not np.all(np.abs(v) == 1):
        values = np.unique(v)
        shown = values[:5].tolist() + (["..."] if values.size > 5 else [])
        hint = "; for 0/1 labels pass 2 * y - 1" if np.isin(values, (0, 1)).all() else ""
        raise ValueError(f"parameter {name!r}: binary labels must be -1 or +1, got values {shown}{hint}")


def check_in_clip(x, clip: Clip) -> None:
    """``ValueError`` unless ``x`` (any shape) lies inside the ``clip`` range ``(low, high)`` it is projected
    back onto (images in [0, 1]; 1e-6 of the range's width tolerated) and holds no NaN / inf: otherwise the
    projection moves every pixel far beyond ``eps``. Nothing is checked for ``clip=None``, an empty ``x``
    or a traced ``x`` (inside ``jax.jit``). Shared by these attacks and :mod:`ntknb.evaluation`."""
    if clip is None or not _concrete(x) or x.size == 0:
        return
    lo, hi = float(jnp.min(x)), float(jnp.max(x))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("parameter 'x' holds NaN or infinite values")
    tol = 1e-6 * max(1.0, clip[1] - clip[0])
    if lo < clip[0] - tol or hi > clip[1] + tol:
        raise ValueError(
            f"parameter 'x' must lie in the clip range [{clip[0]}, {clip[1]}] (images are float in [0, 1]), "
            f"got values in [{lo:.4g}, {hi:.4g}]; rescale x (e.g. x / 255) or pass the matching clip=(low, high) "
            "or clip=None"
        )


def _check_labels(loss_fn, y) -> None:
    """±1 labels where the loss expects them: ``"bce"``, ``"ce"`` on one output, and any loss
    given ``(n, 1)`` labels that are all 0/1 (binary labels are ±1 of shape (n, 1))."""
    if not _concrete(y):
        return
    name = loss_fn.name if isinstance(loss_fn, _PredictorLoss) else None
    binary = (y.ndim == 2 and y.shape[1] == 1) or (y.ndim == 1 and jnp.issubdtype(y.dtype, jnp.floating))
    if name == "bce" or (name == "ce" and binary):
        _check_pm1(y)
    elif name is None and binary and y.size and bool(jnp.all((y == 0) | (y == 1))):
        _check_pm1(y)


# -------------------------------------------------------------------------- attacks


def _input_grad(loss_fn: LossFn, x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """Per-example input gradients of ``loss_fn`` in one batched pass."""

    def total(x_):
        l = loss_fn(x_, y)
        if l.shape != (x_.shape[0],):
            raise ValueError(
                f"loss_fn must return per-example losses of shape (n,) = ({x_.shape[0]},); "
                f"got shape {l.shape}"
            )
        return jnp.sum(l)

    return jax.grad(total)(x)


def project_linf(x_adv, x, eps, clip: Clip):
    """Projection onto ``B_inf(x, eps)``, then onto ``[low, high]`` (both boxes, so
    the composition is the exact projection onto their intersection when ``x`` is
    inside the range). The one l-inf projection of the package (traceable)."""
    x_adv = jnp.clip(x_adv, x - eps, x + eps)
    if clip is not None:
        x_adv = jnp.clip(x_adv, clip[0], clip[1])
    return x_adv


_project = project_linf


def _bind(loss_fn, params):
    """``loss_fn`` itself, or ``(x, y) -> loss_fn(params, x, y)`` when ``params`` is given."""
    return loss_fn if params is None else functools.partial(loss_fn, params)


def _fgsm_impl(loss_fn, x, y, eps, clip, params=None):
    g = _input_grad(_bind(loss_fn, params), x, y)
    return _project(x + eps * jnp.sign(g), x, eps, clip)


_fgsm_jit = jax.jit(_fgsm_impl, static_argnames=("loss_fn", "clip"))


def _pgd_impl(loss_fn, x, y, eps, step_size, delta0, steps, clip, params=None):
    x_adv = _project(x + delta0, x, eps, clip)
    loss_fn = _bind(loss_fn, params)

    def body(_, xa):
        g = _input_grad(loss_fn, xa, y)
        return _project(xa + step_size * jnp.sign(g), x, eps, clip)

    return jax.lax.fori_loop(0, steps, body, x_adv)


_pgd_jit = jax.jit(_pgd_impl, static_argnames=("loss_fn", "steps", "clip"))


def pgd_step_size(eps, steps: int):
    """The PGD step of ``madry2018towards``: ``2.5 * eps / steps``, so that
    ``steps`` steps can cross the ε-ball from a random start. The one place this rule lives."""
    return 2.5 * eps / steps


def _chunks(n: int, batch_size: Optional[int]):
    if batch_size is None or batch_size >= n:
        yield slice(0, n)
        return
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def fgsm(
    loss_fn: LossFn,
    x: jnp.ndarray,
    y: jnp.ndarray,
    eps: float,
    clip: Clip = (0.0, 1.0),
    batch_size: Optional[int] = None,
    params: Any = None,
) -> jnp.ndarray:
    """l-infinity FGSM (``goodfellow2015explaining``).

    ``x~ = Proj(x + eps * sign(grad_x L(x, y)))`` where ``Proj`` clips to
    ``[x - eps, x + eps]`` and then to ``clip`` (the valid pixel range).  With
    ``loss_fn = predictor_loss(f_t, "bce")`` this is the kernel attack, Eq. (8) of
    ``tsilivis2022ntk``.

    Args:
      loss_fn: differentiable per-example loss ``(x (n, ...), y (n, ...)) -> (n,)``;
        hashable (it is a static jit argument).
      x: inputs, shape ``(n, ...)`` (images NHWC in ``[0, 1]``); inputs outside ``clip``
        (e.g. 0..255 images) raise ``ValueError``.
      y: labels, shape ``(n, ...)``; binary labels must be ±1 (0/1 labels raise ``ValueError``).
      eps: l-inf radius, ``>= 0``.
      clip: ``(low, high)`` valid input range, or ``None`` for no range projection.
      batch_size: optional chunk size over ``n`` (same result as unchunked).
      params: ``None`` (``loss_fn(x, y)``), or a pytree of arrays passed as
        ``loss_fn(params, x, y)``: a *dynamic* jit argument, so many models of one form (the
        checkpoints of one network) share one compilation instead of compiling their weights
        in as constants.

    Returns:
      adversarial inputs, shape and dtype of ``x``.
    """
    _check_eps(eps)
    clip = check_clip("clip", clip)
    batch_size = check_int("batch_size", batch_size, min=1, none_ok=True)
    x, y = _check_xy(x, y)
    check_in_clip(x, clip)
    _check_labels(loss_fn, y)
    eps = jnp.asarray(eps, x.dtype)
    out = [_fgsm_jit(loss_fn, x[s], y[s], eps, clip, params) for s in _chunks(x.shape[0], batch_size)]
    return out[0] if len(out) == 1 else jnp.concatenate(out, axis=0)


def pgd(
    loss_fn: LossFn,
    x: jnp.ndarray,
    y: jnp.ndarray,
    eps: float,
    step_size: Optional[float] = None,
    steps: int = 10,
    random_start: bool = False,
    key: Optional[jax.Array] = None,
    clip: Clip = (0.0, 1.0),
    batch_size: Optional[int] = None,
    params: Any = None,
    init: Optional[jnp.ndarray] = None,
) -> jnp.ndarray:
    """l-infinity PGD (``madry2018towards``): ``steps`` signed-gradient ascent
    steps on the loss, each followed by projection onto ``B_inf(x, eps)`` and onto
    ``clip``.

    Args:
      loss_fn: differentiable per-example loss ``(x, y) -> (n,)``; hashable (static
        jit argument).
      x: inputs ``(n, ...)``; y: labels ``(n, ...)``.
      eps: l-inf radius, ``>= 0``.
      step_size: ``alpha > 0``; default ``2.5 * eps / steps`` (``madry2018towards``).
      steps: number of iterations, integer ``>= 1``.
      random_start: start from ``x + U(-eps, eps)`` (projected); requires ``key``.
        The noise is drawn for the whole batch, so it does not depend on ``batch_size``.
      key: ``jax.random`` key, used only when ``random_start``.
      clip: ``(low, high)`` valid input range, or ``None``.
      batch_size: optional chunk size over ``n`` (same result as unchunked).
      params: as in :func:`fgsm` (``loss_fn(params, x, y)``, one compilation for many models).
      init: the starting perturbation ``delta_0``, shape of ``x``: the ascent starts at
        ``Proj(x + delta_0)`` (e.g. a chapter's own noise; with ``steps=1`` FGSM from there);
        ``None``: ``0``, or the uniform draw of ``random_start`` (the two exclude each other).

    Returns:
      adversarial inputs, shape and dtype of ``x``.
    """
    _check_eps(eps)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}")
    steps = int(steps)
    if step_size is None:
        step_size = pgd_step_size(eps, steps)
    elif _concrete(step_size):
        s = float(step_size)
        if not (math.isfinite(s) and s > 0):
            raise ValueError(f"step_size must be None (default 2.5*eps/steps) or a finite number > 0; got {step_size!r}")
    if random_start and key is None:
        raise ValueError("key must be a jax.random key when random_start=True; got None")
    if init is not None and random_start:
        raise ValueError("init must be None when random_start=True (the start is either drawn or given)")
    clip = check_clip("clip", clip)
    batch_size = check_int("batch_size", batch_size, min=1, none_ok=True)
    x, y = _check_xy(x, y)
    check_in_clip(x, clip)
    _check_labels(loss_fn, y)
    eps = jnp.asarray(eps, x.dtype)
    step_size = jnp.asarray(step_size, x.dtype)
    if init is not None:
        delta0 = jnp.asarray(init, x.dtype)
        if delta0.shape != x.shape:
            raise ValueError(f"init must have the shape of x {x.shape}; got {delta0.shape}")
    elif random_start:
        delta0 = jax.random.uniform(key, x.shape, x.dtype, minval=-eps, maxval=eps)
    else:
        delta0 = jnp.zeros_like(x)
    out = [
        _pgd_jit(loss_fn, x[s], y[s], eps, step_size, delta0[s], steps, clip, params)
        for s in _chunks(x.shape[0], batch_size)
    ]
    return out[0] if len(out) == 1 else jnp.concatenate(out, axis=0)


# --------------------------------------------------------------------- kernel attack


class _PredictorLoss:
    """``loss_fn(x, y) = LOSSES[name](predict_fn(x), y)`` (or, for a ``predict_fn(params, x)``,
    ``loss_fn(params, x, y)``); equal (and equal-hashing) for the same ``predict_fn`` and
    ``name``, so jit reuses its compilation."""

    __slots__ = ("predict_fn", "name")

    def __init__(self, predict_fn, name):
        self.predict_fn = predict_fn
        self.name = name

    def __call__(self, *args):
        *params, x, y = args
        return LOSSES[self.name](self.predict_fn(*params, x), y)

    def __eq__(self, other):
        return (
            isinstance(other, _PredictorLoss)
            and other.predict_fn is self.predict_fn
            and other.name == self.name
        )

    def __hash__(self):
        return hash((id(self.predict_fn), self.name))

    def __repr__(self):
        return f"predictor_loss({self.predict_fn!r}, {self.name!r})"


def predictor_loss(predict_fn: Callable[[jnp.ndarray], jnp.ndarray], loss: str = "bce") -> LossFn:
    """Per-example loss of a predictor's outputs used as logits (``tsilivis2022ntk``
    2022, Sec. 3.1): ``loss_fn(x, y) = L(predict_fn(x), y)``.

    Args:
      predict_fn: ``x (n, ...) -> outputs (n, k)``, differentiable in ``x``; e.g. the
        NTK predictor ``f_t`` of Eq. (7) or a network's apply function. It must treat
        examples independently, and be jit-traceable without side effects. Note:
        ``neural_tangents.predict.gradient_descent_mse_ensemble`` memoises its
        train-kernel eigendecomposition on first call; call the predictor once
        eagerly before attacking, or the first (jitted) call caches a tracer and
        later calls fail with ``UnexpectedTracerError``.
      loss: ``"bce"`` (:func:`binary_cross_entropy_pm1`, labels ±1, ``k = 1``),
        ``"ce"`` (:func:`cross_entropy`, one-hot / centred one-hot) or ``"mse"``
        (:func:`squared_error`).

    ``fgsm(predictor_loss(f_t, "bce"), x, y, eps)`` is Eq. (8).
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}; got {loss!r}")
    if not callable(predict_fn):
        raise ValueError(f"predict_fn must be callable x -> outputs; got {type(predict_fn).__name__}")
    return _PredictorLoss(predict_fn, loss)


def kernel_fgsm(predict_fn, x, y, eps, loss: str = "bce", **kwargs) -> jnp.ndarray:
    """Kernel (training-free) attack of ``tsilivis2022ntk``, Eq. (8):
    ``fgsm(predictor_loss(predict_fn, loss), x, y, eps, **kwargs)``.  For binary
    labels and ``loss="bce"``: ``x~ = x - y * eps * sign(grad_x f_t(x))`` (then clipped)."""
    return fgsm(predictor_loss(predict_fn, loss), x, y, eps, **kwargs)


def kernel_pgd(predict_fn, x, y, eps, loss: str = "bce", **kwargs) -> jnp.ndarray:
    """Multi-step version of the kernel attack:
    ``pgd(predictor_loss(predict_fn, loss), x, y, eps, **kwargs)``."""
    return pgd(predictor_loss(predict_fn, loss), x, y, eps, **kwargs)


def robust_accuracy(predict_fn, attack_fn, x, y) -> float:
    """Accuracy of ``predict_fn`` on ``attack_fn(x, y)`` (e.g.
    ``lambda x, y: kernel_fgsm(f_t, x, y, eps)`` for a transfer or white-box
    evaluation); see :func:`accuracy` for the label encodings."""
    return accuracy(predict_fn(attack_fn(x, y)), y)
