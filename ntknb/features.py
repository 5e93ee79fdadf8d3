"""Eigen-features of the NTK and a fast usefulness / robustness sweep over them.

``tsilivis2022ntk``, Sec. 4; lecture notes "Kernels, data & physics",
Sec. 3.3 ([LN] Eq. 36). With the training Gram matrix ``Theta(X, X) = sum_i lambda_i v_i v_i^T``
(eigenvalues descending, :class:`ntknb.kernels.KernelPredictor`) the t = inf predictor splits
into *features* (``tsilivis2022ntk`` Eq. 9)::

    f^(i)(x) = lambda_i^{-1} Theta(x, X) v_i v_i^T Y = s_i(x) c_i,
    s_i(x) = Theta(x, X) v_i  (a scalar),   c_i = lambda_i^{-1} v_i^T Y  (in R^k),

and ``sum_i f^(i) = f_inf``. A feature's **usefulness** is its held-out accuracy, its
**robustness** its accuracy under FGSM on the loss of *that feature* (``tsilivis2022ntk`` Sec. 4):
binary cross-entropy for ``y = +-1`` (``k = 1``), softmax cross-entropy (argmax accuracy) for
``k > 1`` classes.

The fast sweep
--------------
Every feature is rank one in the output, so the input gradient of its loss is

    grad_x L(f^(i)(x), y) = gamma_i(x) J(x) v_i,   gamma_i(x) = c_i . dL/df (s_i(x) c_i, y),

with ``J(x) = d Theta(x, X) / dx`` (shape ``(n, d)`` per test point; for ``k = 10`` classes
this is ``J_i(x)^T (softmax(f_i(x)) - e_y)`` with the rank-one ``J_i = c_i (J v_i)^T``). All
``p`` gradients at a test point are ``J(x)^T [v_1 gamma_1, ..., v_p gamma_p]``: ONE
linearisation of the kernel rows ``x -> Theta(x, X)`` (``jax.vjp``) pulled back along ``p``
cotangents at once (``jax.vmap`` of the pullback, so the contractions with the training set
become matrix-matrix products instead of ``p`` separate autodiff passes). The FGSM points
``x + eps sign(.)`` of all features are then evaluated in one batched kernel call
``Theta(x + delta_i, X)`` contracted with ``v_i``. Test points are processed in jitted chunks
(padded to one compiled shape), features in blocks and, optionally, the training set in chunks
(``train_batch_size``, for Myrtle-style kernels), to bound memory.

:func:`naive_feature_sweep` is the reference: one jitted autodiff pass per feature per test
point (the FGSM step of :func:`ntknb.attacks.fgsm` written out for a weight vector passed as an
argument, so nothing is recompiled per feature). The tests check that both give the same
accuracies, and that the naive gradients equal :func:`ntknb.attacks.fgsm` on the feature.

Shapes: images ``(m, H, W, C)`` (any trailing shape works); labels ``(m, 1)`` ``+-1`` or
``(m, k)`` centred one-hot (package conventions, DEVELOPERS.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable, Sequence

import ntknb  # noqa: F401  (compat shim before neural_tangents)

import jax
import jax.numpy as jnp
import numpy as np

from ntknb._compat import x64
from ntknb import attacks, kernels
from ntknb.validation import check_clip, check_float, check_int

__all__ = [
    "FeatureSweep",
    "feature_sweep",
    "naive_feature_sweep",
    "feature_components",
    "feature_input_gradients",
    "feature_sum_error",
    "loss_gradient_decomposition",
    "gradient_coherence",
    "training_time_weights",
]


# --------------------------------------------------------------------------- result


@dataclasses.dataclass(frozen=True)
class FeatureSweep:
    """Usefulness and robustness of eigen-features (``tsilivis2022ntk`` Sec. 4, Fig. 2 right).

    Attributes:
      indices: ``(p,)`` 0-based eigen-indices (0 = largest eigenvalue).
      eigenvalues: ``(p,)`` ``lambda_i``.
      clean_accuracy: ``(p,)`` held-out accuracy of each feature (usefulness).
      robust_accuracy: ``(p,)`` accuracy under FGSM on the feature's own loss (robustness).
      eps: the l-inf radius. loss: ``"bce"`` or ``"ce"``. n_test: test points used.
      seconds: wall-clock time of the sweep.
    """

    indices: np.ndarray
    eigenvalues: np.ndarray
    clean_accuracy: np.ndarray
    robust_accuracy: np.ndarray
    eps: float
    loss: str
    n_test: int
    seconds: float = float("nan")

    def __len__(self) -> int:
        return int(self.indices.shape[0])


# --------------------------------------------------------------------------- validation


def _check_predictor(predictor) -> None:
    if not isinstance(predictor, kernels.KernelPredictor):
        raise ValueError(f"`predictor` must be an ntknb.kernels.KernelPredictor (from "
                         f"KernelPredictor.fit), got {type(predictor).__name__}")


def _check_indices(indices, n: int) -> np.ndarray:
    if indices is None:
        return np.arange(n)
    try:
        idx = np.asarray(indices)
    except Exception:  # noqa: BLE001
        idx = None
    if idx is None or idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"`indices` must be a non-empty 1-d sequence of integers in "
                         f"[0, {n - 1}], got {indices!r}")
    if idx.min() < 0 or idx.max() >= n:
        raise ValueError(f"`indices` must lie in [0, {n - 1}] (0 = largest eigenvalue), got "
                         f"min {idx.min()}, max {idx.max()}")
    return idx.astype(int)


def _check_train_batch_size(train_batch_size, x_train, predictor) -> int:
    """``None`` -> n; else a positive int, capped at n. Also checks x_train's length."""
    n = predictor.n_train
    if np.shape(x_train)[:1] != (n,):
        raise ValueError(f"x_train must hold the predictor's {n} training inputs; got shape "
                         f"{np.shape(x_train)}")
    if train_batch_size is None:
        return n
    return min(check_int("train_batch_size", train_batch_size, min=1), n)


def _sweep_arguments(predictor, kind, indices, eps, loss, clip, x_test, y_test, dtype):
    """The checks shared by :func:`feature_sweep` and :func:`naive_feature_sweep`: (indices, eps, k,
    loss, clip, x_test, y_test, dtype, precision context)."""
    _check_predictor(predictor)
    kernels.check_kind(kind)
    idx = _check_indices(indices, predictor.n_train)
    eps = check_float("eps", eps, min=0.0)
    k = int(np.asarray(predictor.y_train).shape[1])
    loss = attacks.classification_loss(loss, k)
    clip = check_clip("clip", clip)
    x_np, y_np = _check_xy(x_test, y_test, k)
    f64 = dtype is not None and np.dtype(dtype) == np.float64
    ctx = x64() if f64 and not jax.config.jax_enable_x64 else contextlib.nullcontext()
    return idx, eps, k, loss, clip, x_np, y_np, (jnp.float64 if f64 else jnp.float32), ctx


def _check_xy(x_test, y_test, k: int):
    x = np.asarray(x_test)
    y = np.asarray(y_test)
    if y.ndim == 1 and k == 1:
        y = y[:, None]
    if x.ndim < 2 or y.ndim != 2 or x.shape[0] != y.shape[0] or y.shape[1] != k:
        raise ValueError(f"`x_test` (m, ...) and `y_test` (m, {k}) must match the predictor's "
                         f"k = {k} outputs and each other, got x_test {x.shape}, y_test {y.shape}")
    return x, y


# --------------------------------------------------------------------------- building blocks


def feature_components(predictor, indices=None):
    """``(V_p, C_p, lambda_p)``: eigenvectors ``(n, p)``, weights ``c_i`` ``(p, k)``
    (``tsilivis2022ntk`` Eq. 9, ``c_i = lambda_i^{-1} v_i^T Y``) and eigenvalues ``(p,)``, as NumPy float64."""
    _check_predictor(predictor)
    idx = _check_indices(indices, predictor.n_train)
    V = np.asarray(predictor.eigenvectors, dtype=np.float64)[:, idx]
    C = np.asarray(predictor.feature_weights(), dtype=np.float64)[idx]
    lam = np.asarray(predictor.eigenvalues, dtype=np.float64)[idx]
    return V, C, lam


def _correct(F, y):
    """``F (..., k)``, ``y (k,)`` broadcastable -> bool ``(...)``; same rule as
    :func:`ntknb.attacks.accuracy` (binary: ``f y > 0``; else argmax agreement)."""
    if F.shape[-1] == 1:
        return F[..., 0] * y[..., 0] > 0
    return jnp.argmax(F, axis=-1) == jnp.argmax(y, axis=-1)


def _dloss_ds(loss: str, s, C, y):
    """``gamma = c . dL/df (s c, y)`` for every (test point, feature); s ``(m, p)``,
    C ``(p, k)``, y ``(m, k)`` -> ``(m, p)``. Uses the losses of :mod:`ntknb.attacks`."""
    loss_fn = attacks.LOSSES[loss]

    def single(f, yy):  # f (k,), yy (k,)
        return loss_fn(f[None], yy[None])[0]

    g = jax.vmap(jax.vmap(jax.grad(single), in_axes=(0, None)), in_axes=(0, 0))
    F = s[:, :, None] * C[None]
    return jnp.einsum("mpk,pk->mp", g(F, y), C)


def _pullback_scan(x, Xc, vb, gb, rows):
    """``sum_j J_j(x)^T [gb_i(x) vb_i[j]]`` for q features at once: ``(q, m, ...)``.

    ``J_j(x) = d Theta(x, X_j) / dx`` (one ``jax.vjp`` per training chunk ``X_j``, pulled back
    along the q cotangents by ``jax.vmap``); ``Xc (J, b, ...)``, ``vb (J, q, b)`` eigenvector
    rows of the chunks, ``gb (q, m)`` per-(feature, test point) weights; ``rows(z, xj)``
    evaluates ``Theta(z, X_j)``.
    """
    def add_grads(g, chunk):
        xj, vj = chunk
        _, pullback = jax.vjp(lambda z: rows(z, xj), x)
        (gj,) = jax.vmap(pullback)(gb[:, :, None] * vj[:, None, :])   # (q, m, ...)
        return g + gj, None

    grads, _ = jax.lax.scan(add_grads, jnp.zeros((gb.shape[0],) + x.shape, x.dtype), (Xc, vb))
    return grads


def _feature_blocks(Vc, block: int):
    """Chunked eigenvector rows ``(J, b, p)`` -> per feature block ``(p / block, J, block, b)``."""
    J, b, p = Vc.shape
    return Vc.reshape(J, b, p // block, block).transpose(2, 0, 3, 1)


@functools.partial(jax.jit, static_argnames=("kernel_fn", "kind", "loss", "block", "clip"))
def _sweep_chunk(x, y, Xc, Vc, C, eps, *, kernel_fn, kind, loss, block, clip):
    """One chunk of test points x ``(m, ...)`` against all p features (p = blocks x block).

    The training set arrives in J chunks, ``Xc (J, b, ...)`` with the matching rows of the
    eigenvectors ``Vc (J, b, p)`` (zero rows for padding), and every kernel evaluation runs
    one training chunk at a time (``lax.scan``), so at most ``m x b`` (clean) or
    ``block x m x b`` (FGSM points) kernel entries live at once.

    Returns (clean_correct ``(p, m)``, robust_correct ``(p, m)``).
    """
    m, p = x.shape[0], Vc.shape[2]

    def rows(z, xj):  # Theta(z, X_j): (len(z), b)
        return kernel_fn(z, xj, kind)

    def add_scores(s, chunk):  # s_i(x) = sum_j Theta(x, X_j) v_i[j]
        xj, vj = chunk
        return s + rows(x, xj) @ vj, None

    S, _ = jax.lax.scan(add_scores, jnp.zeros((m, p), x.dtype), (Xc, Vc))    # (m, p)
    clean = _correct(S.T[:, :, None] * C[:, None, :], y[None])                # (p, m)
    gamma = _dloss_ds(loss, S, C, y)                                           # (m, p)
    Gb = gamma.T.reshape(p // block, block, m)
    Cb = C.reshape(p // block, block, C.shape[1])

    def one_block(args):
        vb, gb, cb = args                                    # (J, q, b), (q, m), (q, k)
        grads = _pullback_scan(x, Xc, vb, gb, rows)          # (q, m, ...): loss gradients
        x_adv = attacks.project_linf(x[None] + eps * jnp.sign(grads), x[None], eps, clip)
        x_adv = x_adv.reshape((block * m,) + x.shape[1:])

        def add_adv(s, chunk):  # s_i(x~_i) over the training chunks
            xj, vj = chunk
            return s + jnp.einsum("qmb,qb->qm", rows(x_adv, xj).reshape(block, m, -1), vj), None

        s_adv, _ = jax.lax.scan(add_adv, jnp.zeros((block, m), x.dtype), (Xc, vb))
        return _correct(s_adv[:, :, None] * cb[:, None, :], y[None])        # (q, m)

    robust = jax.lax.map(one_block, (_feature_blocks(Vc, block), Gb, Cb)).reshape(p, m)
    return clean, robust


def _train_chunks(x_train, V, size: int):
    """Training inputs ``(n, ...)`` and eigenvector rows ``(n, p)`` -> ``(J, size, ...)`` and
    ``(J, size, p)``, J = ceil(n / size). Padding repeats the last input (so every kernel value
    stays finite) with zero eigenvector rows (so it contributes nothing)."""
    n = x_train.shape[0]
    J = -(-n // size)
    x = kernels.pad_rows(x_train, J * size)
    V = np.concatenate([V, np.zeros((J * size - n, V.shape[1]), V.dtype)])
    return x.reshape((J, size) + x.shape[1:]), V.reshape(J, size, V.shape[1])


def feature_sweep(kernel_fn: Callable, x_train, predictor, x_test, y_test, eps: float,
                  indices: Sequence[int] | None = range(100), loss: str = "auto",
                  kind: str = "ntk", test_batch_size: int = 50, feature_batch_size: int = 100,
                  train_batch_size: int | None = None, clip=(0.0, 1.0), dtype=None) -> FeatureSweep:
    """Usefulness and FGSM robustness of eigen-features, batched (``tsilivis2022ntk`` Sec. 4, Fig. 2).

    For each feature ``f^(i) = s_i c_i`` (Eq. 9) and test point: clean prediction, FGSM on the
    feature's own loss (``x~ = Proj(x + eps sign(grad_x L(f^(i)(x), y)))``, ``goodfellow2015explaining``,
    as :func:`ntknb.attacks.fgsm`) and the prediction at ``x~``; see the module docstring
    for how all features share one kernel linearisation per chunk.

    Args:
      kernel_fn: stax ``kernel_fn(x1, x2, get)`` (e.g. ``Architecture.kernel_fn``).
      x_train: ``(n, ...)`` training inputs of ``predictor``.
      predictor: :class:`ntknb.kernels.KernelPredictor` fitted on ``Theta(x_train, x_train)``.
      x_test: ``(m, ...)``; y_test: ``(m, k)`` (``+-1`` if ``k = 1``, centred one-hot else).
      eps: l-inf radius ``>= 0``.
      indices: eigen-indices to sweep (0-based, 0 = largest eigenvalue; default the first 100).
      loss: ``"auto"`` (``"bce"`` for k = 1, ``"ce"`` otherwise), ``"bce"`` or ``"ce"``.
      kind: ``"ntk"`` or ``"nngp"`` (must match the predictor's Gram matrix).
      test_batch_size: test points per jitted chunk (padded; bounds memory with
        ``feature_batch_size`` and ``train_batch_size``: about ``test_batch_size x
        feature_batch_size x train_batch_size`` kernel entries live).
      feature_batch_size: features per block inside a chunk.
      train_batch_size: training images per kernel evaluation (``None``: all at once). Set it
        for kernels whose entries are expensive in memory, e.g. Myrtle / GAP kernels, whose
        every entry carries an ``(H W)^2`` spatial covariance.
      clip: valid input range or ``None``.
      dtype: ``None`` (float32) or ``float64`` (x64 mode, for exact comparisons).

    Returns:
      :class:`FeatureSweep`.
    """
    idx, eps, k, loss, clip, x_np, y_np, dt, ctx = _sweep_arguments(predictor, kind, indices, eps, loss, clip,
                                                                x_test, y_test, dtype)
    test_batch_size = check_int("test_batch_size", test_batch_size, min=1)
    feature_batch_size = check_int("feature_batch_size", feature_batch_size, min=1)
    train_batch_size = _check_train_batch_size(train_batch_size, x_train, predictor)
    V, C, lam = feature_components(predictor, idx)
    p = idx.size
    q = min(feature_batch_size, p)
    p_pad = -(-p // q) * q
    if p_pad > p:  # zero features: s = 0, discarded afterwards
        V = np.concatenate([V, np.zeros((V.shape[0], p_pad - p))], axis=1)
        C = np.concatenate([C, np.zeros((p_pad - p, k))], axis=0)
    m = x_np.shape[0]
    bs = min(test_batch_size, m)
    t0 = time.perf_counter()
    with ctx:
        Xc, Vc = _train_chunks(np.asarray(x_train), V, train_batch_size)
        Xc, Vc, Cj = jnp.asarray(Xc, dt), jnp.asarray(Vc, dt), jnp.asarray(C, dt)
        clean = np.zeros(p_pad)
        robust = np.zeros(p_pad)
        for i0 in range(0, m, bs):
            i1 = min(i0 + bs, m)
            xb = jnp.asarray(kernels.pad_rows(x_np[i0:i1], bs), dt)
            yb = jnp.asarray(kernels.pad_rows(y_np[i0:i1], bs), dt)
            c_ok, r_ok = _sweep_chunk(xb, yb, Xc, Vc, Cj, jnp.asarray(eps, dt),
                                      kernel_fn=kernel_fn, kind=kind, loss=loss, block=q,
                                      clip=clip)
            clean += np.asarray(c_ok)[:, : i1 - i0].sum(axis=1)
            robust += np.asarray(r_ok)[:, : i1 - i0].sum(axis=1)
    seconds = time.perf_counter() - t0
    return FeatureSweep(indices=idx, eigenvalues=lam, clean_accuracy=clean[:p] / m,
                        robust_accuracy=robust[:p] / m, eps=eps, loss=loss, n_test=m,
                        seconds=seconds)


# --------------------------------------------------------------------------- naive reference


@functools.lru_cache(maxsize=16)
def _naive_fns(kernel_fn, kind, loss):
    loss_fn = attacks.LOSSES[loss]

    def feature(x, x_train, w):  # w = v_i c_i^T, (n, k)
        return kernel_fn(x, x_train, kind) @ w

    def total_loss(x, y, x_train, w):
        return jnp.sum(loss_fn(feature(x, x_train, w), y))

    grad = jax.jit(jax.grad(total_loss))
    return jax.jit(feature), grad


def naive_feature_sweep(kernel_fn: Callable, x_train, predictor, x_test, y_test, eps: float,
                        indices: Sequence[int] | None = range(100), loss: str = "auto",
                        kind: str = "ntk", clip=(0.0, 1.0), dtype=None,
                        return_adversarial: bool = False, points_per_pass: int | None = 1):
    """Reference for :func:`feature_sweep`: for every feature and every test point, one jitted
    autodiff pass ``grad_x L(f^(i)(x), y)`` of ``f^(i)(x) = Theta(x, X) (v_i c_i^T)``, the FGSM
    step of :func:`ntknb.attacks.fgsm`, and one evaluation at the perturbed point.

    Same arguments and result as :func:`feature_sweep`; with ``return_adversarial=True`` also
    returns the FGSM points, ``(p, m, ...)``. ``points_per_pass``: test points per autodiff pass
    (1: the per-point loop; ``None``: all of them, i.e. per feature one jitted gradient batched
    over the test points — what a JAX user would write).
    """
    if points_per_pass is not None and (isinstance(points_per_pass, bool) or not isinstance(points_per_pass, int)
                                        or points_per_pass < 1):
        raise ValueError(f"points_per_pass must be a positive integer or None; got {points_per_pass!r}")
    idx, eps, k, loss, clip, x_np, y_np, dt, ctx = _sweep_arguments(predictor, kind, indices, eps, loss, clip,
                                                                x_test, y_test, dtype)
    V, C, lam = feature_components(predictor, idx)
    feature, grad = _naive_fns(kernel_fn, kind, loss)
    m = x_np.shape[0]
    t0 = time.perf_counter()
    clean, robust, advs = [], [], []
    with ctx:
        xtr = jnp.asarray(x_train, dt)
        b = m if points_per_pass is None else points_per_pass
        xs = [jnp.asarray(x_np[j:j + b], dt) for j in range(0, m, b)]
        ys = [jnp.asarray(y_np[j:j + b], dt) for j in range(0, m, b)]
        e = jnp.asarray(eps, dt)
        for i in range(idx.size):
            w = jnp.asarray(np.outer(V[:, i], C[i]), dt)
            f_adv, adv_i = [], []
            for xj, yj in zip(xs, ys):
                g = grad(xj, yj, xtr, w)  # one autodiff pass per feature per chunk of test points
                xa = attacks.project_linf(xj + e * jnp.sign(g), xj, e, clip)
                f_adv.append(feature(xa, xtr, w))
                if return_adversarial:
                    adv_i.append(xa)
            y_all = jnp.asarray(y_np, dt)
            f_clean = feature(jnp.asarray(x_np, dt), xtr, w)  # clean outputs: one batched call
            # attacks.accuracy is a float32 mean: back to exact counts / m
            clean.append(round(attacks.accuracy(f_clean, y_all) * m) / m)
            robust.append(round(attacks.accuracy(jnp.concatenate(f_adv), y_all) * m) / m)
            if return_adversarial:
                advs.append(np.asarray(jnp.concatenate(adv_i)))
    res = FeatureSweep(indices=idx, eigenvalues=lam, clean_accuracy=np.asarray(clean),
                       robust_accuracy=np.asarray(robust), eps=eps, loss=loss, n_test=m,
                       seconds=time.perf_counter() - t0)
    return (res, np.stack(advs)) if return_adversarial else res


# --------------------------------------------------------------------------- gradients, Eq. 10


@functools.partial(jax.jit, static_argnames=("kernel_fn", "kind"))
def _feature_grads(x, Xc, vb, C, *, kernel_fn, kind):
    """grad_x f^(i)(x) = c_i J(x)^T v_i for scalar features (k = 1): ``(q, m, ...)``."""
    gb = jnp.broadcast_to(C[:, :1], (C.shape[0], x.shape[0]))
    return _pullback_scan(x, Xc, vb, gb, lambda z, xj: kernel_fn(z, xj, kind))


def feature_input_gradients(kernel_fn: Callable, x_train, predictor, x, indices=range(5),
                            kind: str = "ntk", feature_batch_size: int = 256,
                            train_batch_size: int | None = None):
    """Input gradients ``grad_x f^(i)(x)`` of binary eigen-features (``tsilivis2022ntk`` Fig. 2 left, Fig. 5).

    Args: ``x (m, ...)``; ``indices`` 0-based eigen-indices; ``train_batch_size`` as in
    :func:`feature_sweep`. The predictor must be binary (``k = 1``). Returns NumPy ``(p, m, ...)``.
    """
    _check_predictor(predictor)
    kernels.check_kind(kind)
    if np.asarray(predictor.y_train).shape[1] != 1:
        raise ValueError("`predictor` must be binary (k = 1) for feature_input_gradients; "
                         f"got k = {np.asarray(predictor.y_train).shape[1]}")
    feature_batch_size = check_int("feature_batch_size", feature_batch_size, min=1)
    train_batch_size = _check_train_batch_size(train_batch_size, x_train, predictor)
    V, C, _ = feature_components(predictor, indices)
    x = jnp.asarray(x, jnp.float32)
    if x.ndim < 2:
        raise ValueError(f"`x` must have shape (m, ...), got {x.shape}")
    Xc, Vc = _train_chunks(np.asarray(x_train, np.float32), V.astype(np.float32), train_batch_size)
    Xc = jnp.asarray(Xc)
    out = []
    for j0 in range(0, V.shape[1], feature_batch_size):
        j1 = min(j0 + feature_batch_size, V.shape[1])
        vb = _feature_blocks(Vc[:, :, j0:j1], j1 - j0)[0]
        out.append(np.asarray(_feature_grads(x, Xc, jnp.asarray(vb), jnp.asarray(C[j0:j1], jnp.float32),
                                             kernel_fn=kernel_fn, kind=kind)))
    return np.concatenate(out)


def feature_sum_error(predictor, k_test_train) -> float:
    """``max |sum_i f^(i)(x) - f_inf(x)|`` over test points and outputs (``tsilivis2022ntk`` Eq. 9 vs
    ``KernelPredictor.predict(t=inf)``); ``k_test_train (m, n)``."""
    _check_predictor(predictor)
    feats = np.asarray(predictor.eigen_features(k_test_train))
    total = np.asarray(predictor.predict(k_test_train, np.inf))
    return float(np.max(np.abs(feats.sum(axis=0) - total)))


def loss_gradient_decomposition(kernel_fn: Callable, x_train, predictor, x, y,
                                kind: str = "ntk") -> dict:
    """The binary gradient decomposition of ``tsilivis2022ntk`` Eq. (10) at test points ``x (m, ...)``.

    With ``L(f, y) = softplus(-y f)``: ``grad L(f_inf) = -y sigma(-y f_inf) sum_i grad f^(i)``
    and ``grad L(f^(i)) = -y sigma(-y f^(i)) grad f^(i)``, so
    ``grad L(f_inf) = sum_i alpha_i grad L(f^(i))`` with
    ``alpha_i = sigma(-y f_inf) / sigma(-y f^(i))``.

    Returns a dict: ``alpha (n, m)``, ``feature_loss_grads (n, m, ...)``, ``loss_grad (m, ...)``
    (from :func:`ntknb.kernels.predictor_input_gradients` on ``f_inf``), ``reconstruction``
    (``sum_i alpha_i grad L(f^(i))``) and ``relative_error`` (max abs difference over max abs).
    """
    _check_predictor(predictor)
    if np.asarray(predictor.y_train).shape[1] != 1:
        raise ValueError("Eq. (10) is the binary decomposition: `predictor` must have k = 1")
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.float32).reshape(-1, 1)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"`x` and `y` must have the same number of rows, got {x.shape[0]}, "
                         f"{y.shape[0]}")
    n = predictor.n_train
    grads_f = feature_input_gradients(kernel_fn, x_train, predictor, x, indices=range(n),
                                      kind=kind)                           # (n, m, ...)
    k_xt = np.asarray(kernels.kernel_matrix(kernel_fn, x, x_train, kind=kind, dtype=np.float64))
    feats = np.asarray(predictor.eigen_features(k_xt))[..., 0]           # (n, m)
    f_inf = feats.sum(axis=0)                                              # (m,)
    yy = y[:, 0]
    sig = lambda z: 0.5 * (1.0 + np.tanh(0.5 * z))  # noqa: E731  (stable logistic)
    s_inf, s_i = sig(-yy * f_inf), sig(-yy[None] * feats)
    alpha = s_inf[None] / s_i
    bshape = (n, x.shape[0]) + (1,) * (x.ndim - 1)
    feature_loss_grads = (-yy[None] * s_i).reshape(bshape) * grads_f
    reconstruction = np.sum(alpha.reshape(bshape) * feature_loss_grads, axis=0)
    alpha_inf = np.asarray(predictor.weights(np.inf), np.float32)
    loss_grad = np.asarray(kernels.predictor_input_gradients(
        kernel_fn, x_train, alpha_inf, x, loss=attacks.binary_cross_entropy_pm1, y=y, kind=kind))
    err = float(np.max(np.abs(reconstruction - loss_grad)) / np.max(np.abs(loss_grad)))
    return dict(alpha=alpha, feature_loss_grads=feature_loss_grads, loss_grad=loss_grad,
                reconstruction=reconstruction, relative_error=err)


# --------------------------------------------------------------------------- analysis helpers


def training_time_weights(eigenvalues, t, normalization: float) -> np.ndarray:
    """Weight of feature i in ``f_t`` (``tsilivis2022ntk`` Eq. 7): ``1 - exp(-lambda_i t / N)``,
    ``N = n k`` (the package's time convention). ``t`` scalar or ``(T,)`` -> ``t.shape + (p,)``."""
    lam = np.asarray(eigenvalues, np.float64)
    t = np.asarray(t, np.float64)
    if np.any(t < 0):
        raise ValueError(f"`t` must be >= 0, got {t}")
    return -np.expm1(-np.multiply.outer(t, lam) / float(normalization))


def gradient_coherence(grads) -> np.ndarray:
    """Spatial coherence of input gradients ``(m, H, W, C)``: the correlation between
    horizontally and vertically neighbouring pixels of each gradient image (after removing its
    mean), averaged over both directions and channels. About 0 for pixel noise, near 1 for
    smooth, image-like gradients (the "coherence to noise" of ``tsilivis2022ntk`` Sec. 4 / Fig. A1).
    Returns ``(m,)``."""
    g = np.asarray(grads, np.float64)
    if g.ndim != 4:
        raise ValueError(f"`grads` must have shape (m, H, W, C), got {g.shape}")
    g = g - g.mean(axis=(1, 2, 3), keepdims=True)
    var = np.sum(g * g, axis=(1, 2, 3))
    h = np.sum(g[:, :, 1:] * g[:, :, :-1], axis=(1, 2, 3)) / np.maximum(
        np.sum(g[:, :, 1:] ** 2, axis=(1, 2, 3)) ** 0.5 * np.sum(g[:, :, :-1] ** 2, axis=(1, 2, 3)) ** 0.5, 1e-300)
    v = np.sum(g[:, 1:] * g[:, :-1], axis=(1, 2, 3)) / np.maximum(
        np.sum(g[:, 1:] ** 2, axis=(1, 2, 3)) ** 0.5 * np.sum(g[:, :-1] ** 2, axis=(1, 2, 3)) ** 0.5, 1e-300)
    return np.where(var > 0, 0.5 * (h + v), 0.0)
