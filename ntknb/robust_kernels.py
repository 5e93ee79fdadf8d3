"""Kernel machines built from chosen eigen-features, and adversarial training of a fixed kernel.

``tsilivis2022ntk``, end of Sec. 4 ("Robust features alone are not enough") and
``loo2022evolution`` (adversarial training on top of a fixed kernel).

Feature-subset machines
-----------------------
With the eigen-features ``f^(i)(x) = Theta(x, X) v_i c_i`` of ``tsilivis2022ntk`` Eq. (9)
(:mod:`ntknb.features`), keeping a subset ``S`` of them gives again a kernel machine::

    f_S(x) = sum_{i in S} f^(i)(x) = Theta(x, X) alpha_S,   alpha_S = V_S C_S   (n, k),

so it is attacked as a whole, like any kernel predictor (``tsilivis2022ntk`` Eq. 8): FGSM / PGD of
:mod:`ntknb.attacks` on the loss of ``f_S`` itself (not of its individual features). ``S`` is
chosen from a :class:`ntknb.features.FeatureSweep` by a robustness threshold
(:func:`select_by_robustness`), by eigenvalue (:func:`select_top_eigen`, spectral truncation)
or by robustness rank (:func:`select_top_robust`). With ``S`` = all features, ``f_S = f_inf``.

Many machines, one compilation
------------------------------
:func:`evaluate_machines` attacks many machines ``x -> Theta(x, X) alpha_j`` on the same
kernel and training set. :func:`ntknb.attacks.fgsm` / :func:`ntknb.attacks.pgd` take a
per-example loss ``loss_fn(x, y)`` that is a static (hashed) jit argument, so a loss that closed
over ``alpha_j`` would be recompiled for every machine, and for every step of adversarial
training. Here the dual weights travel with the labels instead: each row of ``y`` is
``[y_r, alpha.ravel()]`` and the loss computes ``f(x_r) = Theta(x_r, X) alpha``
(:class:`RowWeightedLoss`). The attack itself is exactly :func:`ntknb.attacks.fgsm` /
:func:`ntknb.attacks.pgd`; the tests check it against ``kernels.make_predict_fn`` +
``attacks.pgd`` on one machine.

Adversarial training of a fixed kernel
--------------------------------------
:func:`adversarial_train_kernel` trains the dual weights of ``f(x) = Theta(x, X) alpha`` (the
training inputs ``X`` and the kernel stay fixed) by the min-max of ``madry2018towards``: at every step, PGD
examples of a minibatch against the *current* machine, then one gradient step on
``mean_b L(Theta(x_b^adv, X) alpha, y_b)`` with respect to ``alpha``. For a fixed kernel the
robust objective ``max_delta L(Theta(x + delta, X) alpha, y)`` is a maximum of functions that
are convex in ``alpha``, hence convex in ``alpha`` (unlike for a network's weights).

Shapes: images ``(m, H, W, C)``; labels ``(m, 1)`` ``+-1`` or ``(m, k)`` centred one-hot;
dual weights ``(n, k)``; a stack of machines ``(J, n, k)``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import ntknb  # noqa: F401  (compat shim before neural_tangents)

import jax
import jax.numpy as jnp
import numpy as np

from ntknb import attacks, features, kernels
from ntknb.validation import check_float, check_int

__all__ = [
    "RowWeightedLoss",
    "MachineScores",
    "KernelATResult",
    "select_by_robustness",
    "select_top_eigen",
    "select_top_robust",
    "subset_weights",
    "evaluate_machines",
    "adversarial_train_kernel",
    "best_robust_only",
]


# --------------------------------------------------------------------------- validation


def _check_sweep(sweep):
    if not isinstance(sweep, features.FeatureSweep):
        raise ValueError(f"`sweep` must be an ntknb.features.FeatureSweep (from "
                         f"features.feature_sweep), got {type(sweep).__name__}")


def _as_alphas(alphas, n: int) -> np.ndarray:
    a = np.asarray(alphas, dtype=np.float32)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[1] != n or a.shape[0] == 0:
        raise ValueError(f"`alphas` must have shape (J, n, k) or (n, k) with n = {n} training "
                         f"points, got {np.shape(alphas)}")
    return a


def _check_xy(x, y, k: int):
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.float32)
    if y.ndim == 1 and k == 1:
        y = y[:, None]
    if x.ndim < 2 or y.ndim != 2 or x.shape[0] != y.shape[0] or y.shape[1] != k:
        raise ValueError(f"`x` (m, ...) and `y` (m, {k}) must match each other and the k = {k} "
                         f"outputs of the dual weights, got x {x.shape}, y {y.shape}")
    return x, y


# --------------------------------------------------------------------------- subsets


def select_by_robustness(sweep, gamma: float) -> np.ndarray:
    """Features whose own FGSM accuracy is at least ``gamma`` (``tsilivis2022ntk`` Sec. 4): the eigen-indices
    ``i`` of ``sweep`` with ``sweep.robust_accuracy[i] >= gamma``, ascending (possibly empty)."""
    _check_sweep(sweep)
    gamma = check_float("gamma", gamma, min=0.0)
    return np.sort(sweep.indices[sweep.robust_accuracy >= gamma]).astype(int)


def select_top_eigen(n_features: int, n_train: int | None = None) -> np.ndarray:
    """Spectral truncation: the ``n_features`` largest-eigenvalue features, ``0 .. k-1``."""
    n_features = check_int("n_features", n_features, min=1)
    if n_train is not None and n_features > n_train:
        raise ValueError(f"`n_features` must be at most n_train = {n_train}, got {n_features}")
    return np.arange(n_features)


def select_top_robust(sweep, n_features: int) -> np.ndarray:
    """The ``n_features`` swept features with the highest own-FGSM accuracy (ties: larger
    eigenvalue first), returned as ascending eigen-indices."""
    _check_sweep(sweep)
    n_features = check_int("n_features", n_features, min=1)
    if n_features > len(sweep):
        raise ValueError(f"`n_features` must be at most the {len(sweep)} swept features, "
                         f"got {n_features}")
    order = np.lexsort((sweep.indices, -sweep.robust_accuracy))  # robust desc, index asc
    return np.sort(sweep.indices[order[:n_features]]).astype(int)


def subset_weights(predictor, indices) -> np.ndarray:
    """Dual weights ``alpha_S = V_S C_S = sum_{i in S} v_i c_i^T`` ``(n, k)`` of the machine
    ``f_S = sum_{i in S} f^(i)`` (``tsilivis2022ntk`` Eq. 9), float64. An empty ``S`` gives zeros
    (the machine ``f = 0``). ``S`` = all features gives ``predictor.weights(inf)``."""
    idx = np.asarray(indices)
    if idx.size == 0:
        k = int(np.asarray(predictor.y_train).shape[1])
        return np.zeros((predictor.n_train, k))
    V, C, _ = features.feature_components(predictor, idx)
    return V @ C


# --------------------------------------------------------------------------- machines


class RowWeightedLoss:
    """``loss_fn(x, y_aug) -> (m,)`` of the machines ``x_r -> Theta(x_r, X) alpha_r``, where row
    ``r`` of ``y_aug (m, k + n k)`` is ``[y_r, alpha_r.ravel()]``.

    Hashable and equal for the same ``(kernel_fn, kind, X, k, loss)`` (``X`` by identity), so
    :func:`ntknb.attacks.fgsm` / :func:`ntknb.attacks.pgd` compile once for any number of
    machines and any dual weights. Use :meth:`augment` to build ``y_aug`` and :meth:`predict`
    for the outputs.
    """

    __slots__ = ("kernel_fn", "kind", "x_train", "k", "name")

    def __init__(self, kernel_fn, kind, x_train, k, name):
        self.kernel_fn, self.kind, self.x_train, self.k, self.name = (kernel_fn, kind, x_train,
                                                                      int(k), name)

    def outputs(self, x, y_aug):
        n = self.x_train.shape[0]
        w = y_aug[:, self.k:].reshape(y_aug.shape[0], n, self.k)
        rows = self.kernel_fn(x, self.x_train, self.kind)                  # (m, n)
        return jnp.einsum("mn,mnk->mk", rows, w)

    def __call__(self, x, y_aug):
        return attacks.LOSSES[self.name](self.outputs(x, y_aug), y_aug[:, : self.k])

    def augment(self, y, alpha):
        """``[y, alpha.ravel()]`` per row: ``y (m, k)``, ``alpha (n, k)`` -> ``(m, k + n k)``."""
        y = jnp.asarray(y, jnp.float32)
        a = jnp.asarray(alpha, jnp.float32).reshape(1, -1)
        return jnp.concatenate([y, jnp.broadcast_to(a, (y.shape[0], a.shape[1]))], axis=1)

    def predict(self, x, y_aug):
        return _rows_predict(self, x, y_aug)

    def machine(self, alpha, x):
        """``Theta(x, X) alpha`` ``(m, k)`` of one machine with ``alpha (n, k)`` an argument: the
        ``predict(params, x)`` of :func:`ntknb.evaluation.robust_evaluation` (one compilation
        for every machine of this kernel and training set)."""
        return self.kernel_fn(x, self.x_train, self.kind) @ alpha

    def __eq__(self, other):
        return (isinstance(other, RowWeightedLoss) and other.kernel_fn is self.kernel_fn
                and other.kind == self.kind and other.x_train is self.x_train
                and other.k == self.k and other.name == self.name)

    def __hash__(self):
        return hash((id(self.kernel_fn), self.kind, id(self.x_train), self.k, self.name))

    def __repr__(self):
        return (f"RowWeightedLoss(kind={self.kind!r}, n={self.x_train.shape[0]}, k={self.k}, "
                f"loss={self.name!r})")


_rows_predict = jax.jit(lambda lf, x, y_aug: lf.outputs(x, y_aug), static_argnums=0)

_LOSS_CACHE: list = []  # [(x_train input object, RowWeightedLoss)], most recent last


def _row_loss(kernel_fn, kind, x_train, k, name) -> RowWeightedLoss:
    """One :class:`RowWeightedLoss` per (kernel, training set object, k, loss), so repeated
    calls reuse the compiled attacks."""
    for src, lf in _LOSS_CACHE:
        if (src is x_train and lf.kernel_fn is kernel_fn and lf.kind == kind and lf.k == k
                and lf.name == name):
            return lf
    lf = RowWeightedLoss(kernel_fn, kind, jnp.asarray(x_train, jnp.float32), k, name)
    _LOSS_CACHE.append((x_train, lf))
    del _LOSS_CACHE[:-8]
    return lf


@dataclasses.dataclass(frozen=True)
class MachineScores:
    """Clean and robust accuracy of a stack of ``J`` kernel machines (whole-machine attacks).

    Attributes: ``clean``, ``fgsm``, ``pgd``: ``(J,)`` accuracies; ``eps``; ``pgd_steps``;
    ``n_test``; ``seconds``; ``clean_correct``, ``pgd_correct``: ``(J, n_test)`` per-point
    correctness (for paired comparisons of machines on the same points, :mod:`ntknb.stats`);
    ``standard``, ``standard_correct``: ``(J,)`` and ``(J, n_test)`` robust accuracy and
    per-point robustness under the standard evaluation (:func:`ntknb.evaluation.robust_evaluation`:
    worst case over APGD-CE, APGD-DLR / margin and PGD), ``None`` if it was not run.
    """

    clean: np.ndarray
    fgsm: np.ndarray
    pgd: np.ndarray
    eps: float
    pgd_steps: int
    n_test: int
    seconds: float = float("nan")
    clean_correct: np.ndarray | None = None
    pgd_correct: np.ndarray | None = None
    standard: np.ndarray | None = None
    standard_correct: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.clean.shape[0])


def _correct(f, y):
    f, y = np.asarray(f), np.asarray(y)
    if f.shape[1] == 1:
        return f[:, 0] * y[:, 0] > 0
    return np.argmax(f, axis=1) == np.argmax(y, axis=1)


def evaluate_machines(kernel_fn: Callable, x_train, alphas, x, y, eps: float, *,
                      pgd_steps: int = 10, pgd_step_size: float | None = None,
                      random_start: bool = False, seed: int = 0, loss: str = "auto",
                      kind: str = "ntk", clip=(0.0, 1.0), batch_size: int | None = 200,
                      fgsm: bool = True, standard: dict | None = None) -> MachineScores:
    """Clean, FGSM and PGD accuracy of each machine ``f_j(x) = Theta(x, X) alpha_j``.

    Every machine is attacked as a whole (``tsilivis2022ntk`` Eq. 8 and its multi-step version): FGSM
    (:func:`ntknb.attacks.fgsm`) and PGD (:func:`ntknb.attacks.pgd`, ``madry2018towards``) on the
    loss of ``f_j`` itself, binary cross-entropy (``k = 1``) or softmax cross-entropy.

    Args:
      kernel_fn: stax ``kernel_fn``. x_train: ``(n, ...)``.
      alphas: ``(J, n, k)`` dual weights (or one ``(n, k)``), e.g. :func:`subset_weights`.
      x: ``(m, ...)`` test inputs; y: ``(m, k)`` labels.
      eps: l-inf radius. pgd_steps: PGD iterations (``>= 1``); pgd_step_size: default
        ``2.5 eps / steps``. random_start, seed: PGD's uniform start (same noise for every
        machine). loss: ``"auto"``, ``"bce"`` or ``"ce"``. kind: ``"ntk"`` or ``"nngp"``.
      clip: valid input range or ``None``. batch_size: test points per compiled chunk
        (memory ``~ batch_size x n x k`` for the weights); ``None``: all at once.
      fgsm: also run FGSM (else ``fgsm`` is NaN).
      standard: ``None``, or the keyword arguments (``n_iter``, ``n_restarts``, ...) of
        :func:`ntknb.evaluation.robust_evaluation`, run on every machine with ``seed``
        (``{}``: its defaults). Needs the cross-entropy loss (``loss="auto"``).

    Returns: :class:`MachineScores`.
    """
    kernels.check_kind(kind)
    n = int(np.shape(x_train)[0])
    A = _as_alphas(alphas, n)
    k = A.shape[2]
    name = attacks.classification_loss(loss, k)
    eps = check_float("eps", eps, min=0.0)
    pgd_steps = check_int("pgd_steps", pgd_steps, min=1)
    x, y = _check_xy(x, y, k)
    m = x.shape[0]
    bs = m if batch_size is None else min(check_int("batch_size", batch_size, min=1), m)
    m_pad = -(-m // bs) * bs
    xp, yp = jnp.asarray(kernels.pad_rows(x, m_pad)), jnp.asarray(kernels.pad_rows(y, m_pad))
    lf = _row_loss(kernel_fn, kind, x_train, k, name)
    key = jax.random.PRNGKey(seed)
    t0 = time.perf_counter()
    clean, fg, pg = [], [], []
    for a in A:
        ya = lf.augment(yp, a)

        def correct(xx):
            outs = [lf.predict(xx[i:i + bs], ya[i:i + bs]) for i in range(0, m_pad, bs)]
            return _correct(np.concatenate(outs)[:m], y)

        clean.append(correct(xp))
        if fgsm:
            fg.append(float(np.mean(correct(attacks.fgsm(lf, xp, ya, eps, clip=clip, batch_size=bs)))))
        else:
            fg.append(float("nan"))
        pg.append(correct(attacks.pgd(lf, xp, ya, eps, step_size=pgd_step_size, steps=pgd_steps,
                                      random_start=random_start, key=key, clip=clip,
                                      batch_size=bs)))
    clean_c, pgd_c = np.asarray(clean, bool).reshape(len(A), m), np.asarray(pg, bool).reshape(len(A), m)
    std_c = None
    if standard is not None:
        from ntknb import evaluation

        std_c = np.stack([evaluation.robust_evaluation(lf.machine, np.asarray(x), np.asarray(y), eps, seed=seed,
                                                       batch_size=bs, clip=clip, params=jnp.asarray(a),
                                                       **dict(standard)).robust for a in A])
    return MachineScores(clean=clean_c.mean(axis=1), fgsm=np.asarray(fg), pgd=pgd_c.mean(axis=1),
                         eps=eps, pgd_steps=pgd_steps, n_test=m,
                         seconds=time.perf_counter() - t0, clean_correct=clean_c, pgd_correct=pgd_c,
                         standard=None if std_c is None else std_c.mean(axis=1), standard_correct=std_c)


# --------------------------------------------------------------------------- adversarial training


@dataclasses.dataclass(frozen=True)
class KernelATResult:
    """Result of :func:`adversarial_train_kernel`.

    Attributes:
      alpha: ``(n, k)`` final dual weights. alphas: ``(C, n, k)`` at the checkpoints.
      checkpoints: ``(C,)`` step counts of ``alphas`` (0 = the initial weights).
      train_loss: ``(steps,)`` minibatch adversarial loss before each update.
      learning_rate: the step size used. seconds: wall-clock time.
    """

    alpha: np.ndarray
    alphas: np.ndarray
    checkpoints: np.ndarray
    train_loss: np.ndarray
    learning_rate: float
    seconds: float


def _loss_and_grad(name):
    loss_fn = attacks.LOSSES[name]

    def mean_loss(alpha, rows, y):
        return jnp.mean(loss_fn(rows @ alpha, y))

    return jax.jit(jax.value_and_grad(mean_loss))


_LOSS_GRADS = {name: _loss_and_grad(name) for name in ("bce", "ce")}
_CURVATURE = {"bce": 0.25, "ce": 0.5}  # max second derivative of the loss in f


# Longer than 80 lines of code (tests/test_structure.py): the boundary checks of its many arguments
# and the preconditioner's spectrum come first, then one training loop that reads them all.
def adversarial_train_kernel(kernel_fn: Callable, x_train, y_train, eps: float, *,
                             steps: int = 100, batch_size: int = 200, lr_fraction: float = 0.5,
                             momentum: float = 0.9, pgd_steps: int = 5,
                             pgd_step_size: float | None = None, random_start: bool = True,
                             alpha0=None, k_train_train=None, precondition: str = "kernel",
                             loss: str = "auto",
                             kind: str = "ntk", clip=(0.0, 1.0), seed: int = 0,
                             checkpoints: Sequence[int] | None = None) -> KernelATResult:
    """Adversarial training of the dual weights of ``f(x) = Theta(x, X) alpha`` on a fixed kernel.

    ``madry2018towards`` on a kernel machine, as in ``loo2022evolution`` "adversarial training on top
    of a fixed kernel": at each step a minibatch ``(x_b, y_b)`` of the training set, PGD examples
    ``x_b^adv`` against the *current* machine (:func:`ntknb.attacks.pgd` on its loss, via
    :class:`RowWeightedLoss`), then a heavy-ball gradient step on
    ``L(alpha) = mean_b L(Theta(x_b^adv, X) alpha, y_b)`` (binary or softmax cross-entropy).

    The step size is ``lr_fraction x 2 n / (c lambda_max^2)`` with ``lambda_max`` the top
    eigenvalue of ``Theta(X, X)`` and ``c`` the loss curvature bound (1/4 for ``bce``, 1/2 for
    ``ce``): ``Theta^2 / n`` is the expected curvature of ``L`` in ``alpha`` at clean points, so
    ``lr_fraction < 1`` is stable without momentum (divide by ``1 + momentum`` for the
    heavy-ball bound). Plain gradient descent on ``alpha`` keeps a spectral bias: the component
    of ``alpha`` along ``v_i`` moves at a rate ``~ (lambda_i / lambda_max)^2``.

    Args:
      kernel_fn: stax ``kernel_fn``. x_train: ``(n, ...)``. y_train: ``(n, k)``.
      eps: l-inf radius of the training attack (``0``: standard training of ``alpha``).
      steps: gradient steps. batch_size: minibatch size (``>= n``: full batch).
      lr_fraction: step size as a fraction of the scale above. momentum: heavy-ball ``beta``.
      pgd_steps, pgd_step_size, random_start: the training attack (:func:`ntknb.attacks.pgd`).
      alpha0: ``(n, k)`` initial weights (default zeros, the untrained machine ``f = 0``).
      k_train_train: ``Theta(X, X)`` if already computed (only its top eigenvalue is used).
      loss: ``"auto"``, ``"bce"`` or ``"ce"``. kind: ``"ntk"`` / ``"nngp"``. clip: input range.
      seed: minibatch order and PGD starts. checkpoints: steps at which to store ``alpha``
        (default: 0 and ``steps``).

    Returns: :class:`KernelATResult`.
    """
    kernels.check_kind(kind)
    x_train = np.asarray(x_train, np.float32)
    n = x_train.shape[0]
    y_train = np.asarray(y_train, np.float32)
    if y_train.ndim == 1:
        y_train = y_train[:, None]
    if y_train.ndim != 2 or y_train.shape[0] != n:
        raise ValueError(f"`y_train` must have shape (n, k) with n = {n}, got {y_train.shape}")
    k = y_train.shape[1]
    name = attacks.classification_loss(loss, k)
    eps = check_float("eps", eps, min=0.0)
    steps = check_int("steps", steps, min=1)
    batch_size = min(check_int("batch_size", batch_size, min=1), n)
    lr_fraction = check_float("lr_fraction", lr_fraction, min=0.0)
    if lr_fraction == 0:
        raise ValueError("`lr_fraction` must be > 0")
    momentum = check_float("momentum", momentum, min=0.0)
    if momentum >= 1:
        raise ValueError(f"`momentum` must lie in [0, 1), got {momentum!r}")
    pgd_steps = check_int("pgd_steps", pgd_steps, min=1)
    cps = sorted({0, steps} if checkpoints is None else
                 {int(check_int("checkpoints", c, min=1) if c else 0) for c in checkpoints} | {0})
    if cps[-1] > steps:
        raise ValueError(f"`checkpoints` must lie in [0, steps = {steps}], got {checkpoints!r}")
    alpha = np.zeros((n, k), np.float32) if alpha0 is None else _as_alphas(alpha0, n)[0]
    if alpha.shape[1] != k:
        raise ValueError(f"`alpha0` must have shape ({n}, {k}), got {np.shape(alpha0)}")

    t0 = time.perf_counter()
    if k_train_train is None:
        k_train_train = kernels.kernel_matrix(kernel_fn, x_train, kind=kind)
    kt = np.asarray(k_train_train, np.float64)
    if kt.shape != (n, n):
        raise ValueError(f"`k_train_train` must have shape ({n}, {n}), got {kt.shape}")
    if precondition not in ("kernel", "none"):
        raise ValueError(f"`precondition` must be 'kernel' or 'none', got {precondition!r}")
    lam, vecs = np.linalg.eigh(kt)
    lam_max = float(lam[-1])
    if precondition == "kernel":
        tol = n * np.finfo(np.float64).eps * lam_max
        if lam[0] <= tol:
            raise ValueError("precondition='kernel' needs an invertible Theta(X, X); smallest "
                             f"eigenvalue {lam[0]:.3g}, largest {lam_max:.3g}")
        pinv = jnp.asarray((vecs / lam) @ vecs.T, jnp.float32)
        lr = lr_fraction * 2.0 * n / (_CURVATURE[name] * lam_max)
    else:
        pinv = None
        lr = lr_fraction * 2.0 * n / (_CURVATURE[name] * lam_max ** 2)

    lf = _row_loss(kernel_fn, kind, x_train, k, name)
    xtr = lf.x_train
    rng = np.random.default_rng(seed)
    key = jax.random.PRNGKey(seed)
    grad_fn = _LOSS_GRADS[name]
    alpha = jnp.asarray(alpha)
    vel = jnp.zeros_like(alpha)
    saved, losses = {0: np.asarray(alpha)}, []
    order, pos = rng.permutation(n), 0
    for step in range(1, steps + 1):
        if pos + batch_size > n:
            order, pos = rng.permutation(n), 0
        b = order[pos:pos + batch_size]
        pos += batch_size
        xb, yb = jnp.asarray(x_train[b]), jnp.asarray(y_train[b])
        if eps > 0:
            key, sub = jax.random.split(key)
            xb = attacks.pgd(lf, xb, lf.augment(yb, alpha), eps, step_size=pgd_step_size,
                             steps=pgd_steps, random_start=random_start, key=sub, clip=clip)
        rows = kernel_fn(xb, xtr, kind)                                     # (b, n)
        value, g = grad_fn(alpha, rows, yb)
        losses.append(float(value))
        if pinv is not None:
            g = pinv @ g
        vel = momentum * vel - lr * g
        alpha = alpha + vel
        if step in cps:
            saved[step] = np.asarray(alpha)
    return KernelATResult(alpha=np.asarray(alpha), alphas=np.stack([saved[c] for c in cps]),
                          checkpoints=np.asarray(cps), train_loss=np.asarray(losses),
                          learning_rate=lr, seconds=time.perf_counter() - t0)


# --------------------------------------------------------------------------- summaries


def best_robust_only(clean, robust, robust_level: float):
    """The "best" robust-only machine: the highest clean accuracy among machines whose robust
    accuracy is at least ``robust_level`` (ties: higher robust accuracy). If none reaches the
    level, the machine with the highest robust accuracy (ties: higher clean accuracy).

    Returns ``(index, qualified)``: the machine's position and whether it met the level.
    """
    c, r = np.asarray(clean, float), np.asarray(robust, float)
    if c.shape != r.shape or c.ndim != 1 or c.size == 0:
        raise ValueError(f"`clean` and `robust` must be non-empty 1-d arrays of the same length, "
                         f"got {c.shape}, {r.shape}")
    ok = r >= robust_level
    if ok.any():
        cand = np.flatnonzero(ok)
        return int(cand[np.lexsort((-r[cand], -c[cand]))[0]]), True
    return int(np.lexsort((-c, -r))[0]), False
