"""Analytic and empirical Neural Tangent Kernels and the kernel predictor of Eq. (7).

References
----------
* ``tsilivis2022ntk``: Tsilivis & Kempe, "What can the Neural Tangent Kernel tell us about
  adversarial robustness?": Eq. (6) empirical NTK, Eq. (7) kernel predictor at time t,
  Eq. (9) eigen-features.
* [LN] "Kernels, data & physics" lecture notes: Eq. (20) eigendecomposition of the Gram
  matrix, Eq. (21) spectral bias (decay of the residual along each eigenvector).

Time convention (shared with neural-tangents and :mod:`ntknb.training`)
-----------------------------------------------------------------------
Gradient flow on the loss ``L = 1/2 * mean((f(X) - Y)^2)``, the mean taken over all
``N = n * k`` entries of ``Y`` (n training points, k outputs), with ``t = steps x
learning_rate``. For the linearised network (mean over initialisations, f_0 = 0) this gives

    f_t(x) = Theta(x, X) V diag((1 - exp(-lambda_i t / N)) / lambda_i) V^T Y,

where ``Theta(X, X) = V diag(lambda) V^T`` ([LN] Eq. 20). This is ``tsilivis2022ntk`` Eq. (7) with
``eta = 1 / N``; for ``t = inf`` it is ``Theta(x, X) Theta^{-1} Y``. It equals
``nt.predict.gradient_descent_mse_ensemble(kernel_fn, X, Y, learning_rate=lr)`` with
``predict_fn(t=steps, ...)``. Along eigenvector ``v_i`` the training residual decays as
``exp(-lambda_i t / N)`` ([LN] Eq. 21 with ``eta = 1 / N``).

Precision
---------
Functions that take ``dtype`` compute in that dtype. ``dtype=float64`` runs the computation
inside :func:`ntknb._compat.x64` (JAX's x64 mode) and returns NumPy float64 arrays, which keep their
precision outside the context. Inside an x64 context you may simply pass float64 arrays.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import ntknb  # noqa: F401  (compat shim before neural_tangents)

import jax
import jax.numpy as jnp
import numpy as np
import neural_tangents as nt

from ntknb._compat import x64
from ntknb.validation import check_choice, check_devices, check_int

__all__ = [
    "KERNEL_KINDS",
    "NTK_IMPLEMENTATIONS",
    "KernelPredictor",
    "auto_ntk_implementation",
    "check_kind",
    "empirical_ntk",
    "kernel_matrix",
    "make_predict_fn",
    "predictor_input_gradients",
    "residual_projections",
]

KERNEL_KINDS = ("ntk", "nngp")

#: Names accepted by ``implementation=`` of :func:`empirical_ntk`, best first for "auto".
NTK_IMPLEMENTATIONS = ("auto", "structured_derivatives", "ntk_vector_products",
                       "jacobian_contraction")
_NT_IMPL = {
    "structured_derivatives": nt.NtkImplementation.STRUCTURED_DERIVATIVES,
    "ntk_vector_products": nt.NtkImplementation.NTK_VECTOR_PRODUCTS,
    "jacobian_contraction": nt.NtkImplementation.JACOBIAN_CONTRACTION,
}


# --------------------------------------------------------------------------- helpers

def _is_f64(dtype) -> bool:
    return dtype is not None and np.dtype(dtype) == np.float64


@contextlib.contextmanager
def _precision(dtype):
    """Enter x64 mode if ``dtype`` is float64 and x64 is off; yield whether we did."""
    if dtype is not None and np.dtype(dtype) not in (np.float32, np.float64):
        raise ValueError(f"`dtype` must be None, float32 or float64, got {dtype!r}")
    if _is_f64(dtype) and not jax.config.jax_enable_x64:
        with x64():
            yield True
    else:
        yield False


def _concrete(a):
    """NumPy value of ``a``, or ``None`` if it is traced."""
    try:
        return np.asarray(a)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        return None


def check_kind(kind: str) -> str:
    """``kind`` if it is one of :data:`KERNEL_KINDS` (``"nngp"``, ``"ntk"``), else ``ValueError`` naming
    the parameter and the kinds: the one rule of every function that takes a kernel kind."""
    return check_choice("kind", kind, KERNEL_KINDS)


def _chunks(n: int, size: int | None):
    size = n if size is None else size
    return [(i, min(i + size, n)) for i in range(0, n, max(size, 1))] or [(0, 0)]


@functools.lru_cache(maxsize=64)
def _jit_kernel(kernel_fn):
    if hasattr(kernel_fn, "lower"):  # already jitted
        return kernel_fn
    return jax.jit(kernel_fn, static_argnames=("get",))


def _blockwise(block_fn, x1, x2, batch_size, symmetric, devices):
    """Assemble ``block_fn(x1[i:j], x2[k:l], device)`` -> (bi, bj, ...) on the host.

    Blocks are dealt round-robin to ``devices`` (a checked tuple): each wave
    dispatches one block per device (JAX runs them concurrently), then gathers them, so a
    multi-GPU machine computes ``len(devices)`` blocks at a time. Every block is the same
    computation whichever device runs it, so the result does not depend on the device count.
    ``block_fn`` receives the block's inputs already placed on ``device`` and must place
    anything else it closes over there too.
    """
    n1, n2 = x1.shape[0], x2.shape[0]
    rows, cols = _chunks(n1, batch_size), _chunks(n2, batch_size)
    if len(rows) == 1 and len(cols) == 1 and len(devices) == 1:
        return None  # caller computes in one go
    tasks = [(a, b) for a in range(len(rows)) for b in range(len(cols))
             if not (symmetric and b < a)]
    out = None
    for w0 in range(0, len(tasks), len(devices)):
        wave = []
        for (a, b), dev in zip(tasks[w0:w0 + len(devices)], devices):
            (i0, i1), (j0, j1) = rows[a], cols[b]
            # Diagonal blocks of a Gram matrix as K(x, None): neural-tangents then uses the
            # exact diagonal (arccos near 1 loses ~sqrt(eps) precision otherwise).
            second = None if symmetric and a == b else jax.device_put(x2[j0:j1], dev)
            wave.append((a, b, block_fn(jax.device_put(x1[i0:i1], dev), second, dev)))
        for a, b, blk in wave:
            (i0, i1), (j0, j1) = rows[a], cols[b]
            blk = np.asarray(blk)
            if out is None:
                out = np.empty((n1, n2) + blk.shape[2:], dtype=blk.dtype)
            out[i0:i1, j0:j1] = blk
            if symmetric and b > a:
                out[j0:j1, i0:i1] = np.swapaxes(blk, 0, 1)
                if blk.ndim == 4:  # (n1, n2, k, k): Theta(x2, x1)_{ab} = Theta(x1, x2)_{ba}
                    out[j0:j1, i0:i1] = np.swapaxes(out[j0:j1, i0:i1], 2, 3)
    return out


# --------------------------------------------------------------------------- analytic kernels

def kernel_matrix(kernel_fn: Callable, x1, x2=None, kind: str = "ntk",
                  batch_size: int | None = 256, dtype=None, devices=None):
    """Analytic Gram / cross kernel matrix, computed in bounded-memory blocks.

    The infinite-width NTK ``Theta`` (``tsilivis2022ntk`` Eq. 5) or NNGP kernel of a stax ``kernel_fn``.

    Args:
      kernel_fn: ``kernel_fn(x1, x2, get)`` (stax; jitted here if it is not already).
      x1: ``(n1, ...)`` inputs. x2: ``(n2, ...)`` inputs or ``None`` (then ``x2 = x1`` and
        only the upper block triangle is computed).
      kind: ``"ntk"`` or ``"nngp"``.
      batch_size: block size along rows and columns (``None``: one block).
      dtype: ``None`` (inputs' dtype), ``float32`` or ``float64`` (computed in x64 mode,
        returned as a NumPy array).
      devices: devices the blocks are spread over (``None``: all local devices; see
        :func:`_blockwise`). The result is the same for any number of devices.
    Returns: ``(n1, n2)`` kernel matrix (neural-tangents traces the output dimensions; the
      analytic kernel is the same for every output). ``jax.Array``, or ``np.ndarray`` when
      computed blockwise or in float64.
    """
    check_kind(kind)
    batch_size = check_int("batch_size", batch_size, min=1, none_ok=True)
    devices = check_devices("devices", devices)
    kfn = _jit_kernel(kernel_fn)
    with _precision(dtype) as entered:
        cast = (lambda a: jnp.asarray(a, dtype)) if dtype is not None else jnp.asarray
        x1 = cast(x1)
        symmetric = x2 is None
        x2 = x1 if symmetric else cast(x2)

        def block(a, b, device=None):  # b = None: Gram block K(a, a)
            k = kfn(a, b, get=kind)
            if k.ndim != 2:
                raise ValueError(f"kernel_fn returned shape {k.shape}; expected (n1, n2) - "
                                 "use a network with a scalar (flattened / pooled) readout")
            return k

        out = _blockwise(block, x1, x2, batch_size, symmetric, devices)
        if out is None:
            out = kfn(x1, None if symmetric else x2, get=kind)
            if out.ndim != 2:
                block(x1[:1], None)  # raises the shape error
        return np.asarray(out) if entered else out


# --------------------------------------------------------------------------- predictor (Eq. 7)

def _as_2d_labels(y):
    y = jnp.asarray(y)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise ValueError(f"`y_train` must have shape (n,) or (n, k), got {y.shape}")
    return y


@dataclasses.dataclass(frozen=True, eq=False)  # arrays: identity equality / hash
class KernelPredictor:
    """Kernel regression predictor f_t of ``tsilivis2022ntk`` Eq. (7) through one eigendecomposition.

    ``Theta(X, X) (+ reg) = V diag(lambda) V^T`` with eigenvalues sorted descending.
    Time convention: module docstring (``N = n * k``; ``t = steps x learning_rate``).

    Attributes:
      eigenvalues: ``(n,)`` descending. eigenvectors: ``(n, n)``, column i is ``v_i``.
      y_train: ``(n, k)`` labels. normalization: ``N = n * k``.
      proj_y: ``(n, k)`` = ``V^T Y`` (row i: ``v_i^T Y``).
      f64: whether computations run in float64 (x64 mode), returning NumPy arrays.
    """

    eigenvalues: Any
    eigenvectors: Any
    y_train: Any
    proj_y: Any
    normalization: float
    f64: bool = False

    # ---------------------------------------------------------------- construction
    @classmethod
    def fit(cls, k_train_train, y_train, *, diag_reg: float = 0.0,
            diag_reg_absolute_scale: bool = False, dtype=None,
            psd_rtol: float | None = None) -> "KernelPredictor":
        """Eigendecompose the training Gram matrix ``Theta(X, X)`` ([LN] Eq. 20).

        Args:
          k_train_train: ``(n, n)`` symmetric PSD Gram matrix.
          y_train: ``(n, k)`` or ``(n,)`` (treated as ``(n, 1)``) targets.
          diag_reg: added ``diag_reg * I``, times ``trace / n`` unless
            ``diag_reg_absolute_scale`` (as ``nt.predict.gradient_descent_mse_ensemble``).
          dtype: ``None`` (inputs' dtype), ``float32`` or ``float64``.
          psd_rtol: a Gram matrix with ``lambda_min < -psd_rtol * lambda_max`` is rejected as
            not PSD (default ``sqrt(eps)`` of the dtype); smaller negative eigenvalues are
            rounding and treated as 0.
        Raises: ``ValueError`` for bad shapes, non-symmetric or clearly non-PSD matrices.
        """
        f64 = _is_f64(dtype) or (dtype is None and jax.config.jax_enable_x64
                                 and np.dtype(getattr(k_train_train, "dtype", np.float32))
                                 == np.float64)
        if diag_reg < 0 or not math.isfinite(diag_reg):
            raise ValueError(f"`diag_reg` must be a finite number >= 0, got {diag_reg!r}")
        with _precision(dtype):
            dt = jnp.float64 if f64 else jnp.float32
            k = jnp.asarray(k_train_train, dt)
            y = _as_2d_labels(jnp.asarray(y_train, dt))
            if k.ndim != 2 or k.shape[0] != k.shape[1]:
                raise ValueError(f"`k_train_train` must be a square (n, n) matrix, got {k.shape}")
            n = k.shape[0]
            if y.shape[0] != n:
                raise ValueError(f"`y_train` has {y.shape[0]} rows but `k_train_train` is "
                                 f"{n} x {n}")
            if not bool(jnp.all(jnp.isfinite(k))):
                raise ValueError("`k_train_train` contains non-finite entries")
            eps = float(jnp.finfo(dt).eps)
            scale = float(jnp.max(jnp.abs(k))) if n else 0.0
            asym = float(jnp.max(jnp.abs(k - k.T))) if n else 0.0
            if asym > 100 * eps * max(scale, 1e-30) * max(n, 1):
                raise ValueError(f"`k_train_train` is not symmetric (max |K - K^T| = {asym:.3g},"
                                 f" max |K| = {scale:.3g})")
            k = 0.5 * (k + k.T)
            if diag_reg:
                reg = diag_reg if diag_reg_absolute_scale else diag_reg * jnp.trace(k) / n
                k = k + reg * jnp.eye(n, dtype=dt)
            evals, evecs = jnp.linalg.eigh(k)
            evals, evecs = evals[::-1], evecs[:, ::-1]
            lmax = float(evals[0]) if n else 0.0
            lmin = float(evals[-1]) if n else 0.0
            rtol = math.sqrt(eps) if psd_rtol is None else psd_rtol
            if lmin < -rtol * max(abs(lmax), 1e-30):
                raise ValueError(
                    f"`k_train_train` is not positive semi-definite: smallest eigenvalue "
                    f"{lmin:.3g}, largest {lmax:.3g} (tolerance {rtol:.1e} relative)")
            proj_y = evecs.T @ y
            conv = np.asarray if f64 else (lambda a: a)
            return cls(eigenvalues=conv(evals), eigenvectors=conv(evecs), y_train=conv(y),
                       proj_y=conv(proj_y), normalization=float(y.size), f64=f64)

    # ---------------------------------------------------------------- properties
    @property
    def n_train(self) -> int:
        return int(self.eigenvectors.shape[0])

    @property
    def condition_number(self) -> float:
        """``lambda_max / lambda_min`` (``inf`` if ``lambda_min <= 0``)."""
        lmax, lmin = float(self.eigenvalues[0]), float(self.eigenvalues[-1])
        return lmax / lmin if lmin > 0 else math.inf

    def _singular_tol(self) -> float:
        eps = float(np.finfo(np.float64 if self.f64 else np.float32).eps)
        return self.n_train * eps * float(self.eigenvalues[0])

    def _check_invertible(self, what: str):
        lmin = float(self.eigenvalues[-1])
        if not lmin > self._singular_tol():
            raise ValueError(
                f"{what} needs Theta(X, X)^-1 but `k_train_train` is singular to working "
                f"precision: smallest eigenvalue {lmin:.3g}, largest "
                f"{float(self.eigenvalues[0]):.3g}, condition number "
                f"{self.condition_number:.3g}. Use a finite t, diag_reg > 0, float64, or "
                "remove duplicate training points.")

    def _ctx(self):
        return x64() if self.f64 and not jax.config.jax_enable_x64 else contextlib.nullcontext()

    def _out(self, a):
        return np.asarray(a) if self.f64 else a

    def _time_factor(self, t):
        """``(1 - exp(-lambda t / N)) / lambda`` -> shape ``t.shape + (n,)``; t = inf -> 1/lambda.

        Written as ``(t / N) * phi(lambda t / N)`` with ``phi(x) = (1 - e^{-x}) / x``,
        ``phi(0) = 1``, so zero (or rounding-negative, clamped) eigenvalues give ``t / N``.
        """
        lam = jnp.asarray(self.eigenvalues)
        t = jnp.asarray(np.inf if t is None else t, lam.dtype)
        t_np = _concrete(t)
        if t_np is not None:
            if np.any(np.isnan(t_np)) or np.any(t_np < 0):
                raise ValueError(f"`t` must be >= 0 (or inf), got {t_np}")
            if np.any(np.isinf(t_np)):
                self._check_invertible("t = inf")
        tt = t[..., None]
        lam_pos = jnp.maximum(lam, 0.0)
        is_inf = jnp.isinf(tt)
        t_fin = jnp.where(is_inf, 0.0, tt)
        x = lam_pos * t_fin / self.normalization
        pos = x > 0
        phi = jnp.where(pos, -jnp.expm1(-x) / jnp.where(pos, x, 1.0), 1.0)
        inv = 1.0 / jnp.where(lam_pos > 0, lam_pos, 1.0)
        return jnp.where(is_inf, inv, t_fin / self.normalization * phi)

    def _gd_factor(self, t, learning_rate: float):
        """Discrete gradient descent: ``(1 - (1 - eta lambda / N)^s) / lambda`` with ``s = t / eta``
        steps of size ``eta = learning_rate`` -> ``t.shape + (n,)``; zero eigenvalues give ``s eta / N``.

        The linearised model after ``s`` steps of ``f <- f - (eta / N) Theta(., X)(f(X) - Y)``
        from ``f_0 = 0`` ([LN] Eq. 15 with a finite step); it tends to :meth:`_time_factor` as
        ``eta lambda_max / N -> 0``.
        """
        if not (isinstance(learning_rate, (int, float, np.floating)) and not isinstance(learning_rate, bool)
                and math.isfinite(learning_rate) and learning_rate > 0):
            raise ValueError(f"`learning_rate` must be a finite number > 0 (or None for gradient flow), "
                             f"got {learning_rate!r}")
        t_np = np.asarray(np.inf if t is None else t, np.float64)
        steps = t_np / float(learning_rate)
        if np.any(~np.isfinite(steps)) or np.any(steps < 0) or np.any(
                np.abs(steps - np.round(steps)) > 1e-6 * np.maximum(steps, 1.0)):
            raise ValueError(f"`t` must be a whole number of steps times learning_rate={learning_rate!r} "
                             f"(finite, >= 0); got t={t_np} ({steps} steps)")
        lam = jnp.maximum(jnp.asarray(self.eigenvalues), 0.0)
        s = jnp.asarray(np.round(steps), lam.dtype)[..., None]
        x = float(learning_rate) * lam / self.normalization
        base = 1.0 - x
        odd = jnp.mod(s, 2.0) == 1.0
        power = jnp.where((base < 0) & odd, -1.0, 1.0) * jnp.abs(base) ** s
        pos = x > 0
        return jnp.where(pos, (1.0 - power) / jnp.where(pos, lam, 1.0), s * float(learning_rate) / self.normalization)

    # ---------------------------------------------------------------- Eq. (7)
    def weights(self, t=jnp.inf, learning_rate: float | None = None):
        """Dual weights ``alpha_t = V diag((1 - e^{-lambda t/N}) / lambda) V^T Y`` (``tsilivis2022ntk`` Eq. 7).

        ``f_t(x) = Theta(x, X) alpha_t``. ``t`` (= steps x learning rate) is a scalar, an array
        (leading axes of the result) or ``jnp.inf`` / ``None`` (``alpha = Theta^{-1} Y``).
        ``learning_rate``: ``None`` for gradient flow (Eq. 7); a step ``eta`` for discrete gradient
        descent, ``s = t / eta`` steps, ``alpha = V diag((1 - (1 - eta lambda / N)^s) / lambda) V^T Y``.
        Returns ``t.shape + (n, k)``. Raises ``ValueError`` for t = inf and singular Theta.
        """
        with self._ctx():
            g = self._time_factor(t) if learning_rate is None else self._gd_factor(t, learning_rate)
            V = jnp.asarray(self.eigenvectors)
            return self._out(jnp.einsum("ij,...j,jk->...ik", V, g, jnp.asarray(self.proj_y)))

    def predict(self, k_test_train, t=jnp.inf):
        """``f_t(x) = Theta(x, X) alpha_t`` (``tsilivis2022ntk`` Eq. 7) for ``k_test_train: (m, n)``.

        Returns ``t.shape + (m, k)``.
        """
        with self._ctx():
            k = jnp.asarray(k_test_train, jnp.asarray(self.eigenvalues).dtype)
            if k.ndim != 2 or k.shape[1] != self.n_train:
                raise ValueError(f"`k_test_train` must have shape (m, {self.n_train}), "
                                 f"got {k.shape}")
            alpha = jnp.asarray(self.weights(t))
            return self._out(jnp.einsum("mn,...nk->...mk", k, alpha))

    def predict_train(self, t=jnp.inf, learning_rate: float | None = None):
        """``f_t(X) = V diag(1 - e^{-lambda t/N}) V^T Y`` on the training set, ``t.shape + (n, k)``.

        (Un-regularised Gram assumed when ``diag_reg = 0``; ``tsilivis2022ntk`` Eq. 7 with x in X.)
        ``learning_rate``: as in :meth:`weights` (discrete gradient descent: ``1 - (1 - eta lambda / N)^s``).
        """
        if learning_rate is not None:
            with self._ctx():
                lam = jnp.maximum(jnp.asarray(self.eigenvalues), 0.0)
                frac = lam * self._gd_factor(t, learning_rate)
                V = jnp.asarray(self.eigenvectors)
                return self._out(jnp.einsum("ij,...j,jk->...ik", V, frac, jnp.asarray(self.proj_y)))
        with self._ctx():
            lam = jnp.maximum(jnp.asarray(self.eigenvalues), 0.0)
            t = jnp.asarray(np.inf if t is None else t, lam.dtype)
            frac = -jnp.expm1(-lam * t[..., None] / self.normalization)
            frac = jnp.where(lam > 0, frac, 0.0)
            V = jnp.asarray(self.eigenvectors)
            return self._out(jnp.einsum("ij,...j,jk->...ik", V, frac, jnp.asarray(self.proj_y)))

    # ---------------------------------------------------------------- Eq. (9)
    def feature_weights(self):
        """``c_i = lambda_i^{-1} v_i^T Y`` of the eigen-features (``tsilivis2022ntk`` Eq. 9), ``(n, k)``.

        Row i belongs to the i-th largest eigenvalue. Raises ``ValueError`` if Theta is singular.
        """
        self._check_invertible("feature_weights (Eq. 9)")
        with self._ctx():
            lam = jnp.asarray(self.eigenvalues)
            return self._out(jnp.asarray(self.proj_y) / lam[:, None])

    def eigen_features(self, k_test_train, indices: Sequence[int] | None = None):
        """Eigen-feature outputs ``f^(i)(x) = lambda_i^{-1} Theta(x,X) v_i v_i^T Y`` (``tsilivis2022ntk`` Eq. 9).

        Args: ``k_test_train: (m, n)``; ``indices``: which features (default all, by
        descending eigenvalue). Returns ``(len(indices), m, k)``; summed over all i it is
        ``f_inf(x)``.
        """
        c = self.feature_weights()
        with self._ctx():
            V = jnp.asarray(self.eigenvectors)
            c = jnp.asarray(c)
            if indices is not None:
                idx = jnp.asarray(np.asarray(indices, dtype=int))
                V, c = V[:, idx], c[idx]
            k = jnp.asarray(k_test_train, V.dtype)
            return self._out(jnp.einsum("mn,ni,ik->imk", k, V, c))

    # ---------------------------------------------------------------- [LN] Eq. (21)
    def residual_projections(self, t):
        """Theoretical training residual along each eigenvector, ``v_i^T (f_t(X) - Y)``.

        ``= -exp(-lambda_i t / N) v_i^T Y`` ([LN] Eq. 21 with eta = 1/N; f_0 = 0).
        Returns ``t.shape + (n, k)``; row i belongs to the i-th largest eigenvalue.
        """
        with self._ctx():
            lam = jnp.maximum(jnp.asarray(self.eigenvalues), 0.0)
            t = jnp.asarray(np.inf if t is None else t, lam.dtype)
            tt = t[..., None]
            decay = jnp.where(lam > 0, jnp.exp(-lam * jnp.where(lam > 0, tt, 0.0)
                                               / self.normalization), 1.0)
            return self._out(-decay[..., None] * jnp.asarray(self.proj_y))


def residual_projections(eigenvectors, residual):
    """Components of a training residual along the Gram eigenvectors ([LN] Eq. 21).

    Args: ``eigenvectors: (n, n)`` (column i = ``v_i``, e.g. ``KernelPredictor.eigenvectors``);
      ``residual: (..., n, k)`` or ``(..., n)`` (e.g. ``f_t(X) - Y`` of a trained network).
    Returns ``V^T residual`` with the residual's shape (row i: ``v_i^T r``). Its squared norm
    summed over i equals ``||r||^2`` (V orthogonal). Compare with
    :meth:`KernelPredictor.residual_projections`.
    """
    V = jnp.asarray(eigenvectors)
    r = jnp.asarray(residual, V.dtype)
    if r.ndim == 0 or (r.shape[-1] != V.shape[0] and (r.ndim < 2 or r.shape[-2] != V.shape[0])):
        raise ValueError(f"`residual` must have shape (..., n, k) or (..., n) with "
                         f"n = {V.shape[0]}, got {r.shape}")
    if r.shape[-1] == V.shape[0] and (r.ndim < 2 or r.shape[-2] != V.shape[0]):
        return jnp.einsum("ni,...n->...i", V, r)
    return jnp.einsum("ni,...nk->...ik", V, r)


# --------------------------------------------------------------------------- differentiable f_t

def pad_rows(a, size: int):
    """``a`` (n, ...) padded to ``size`` rows by repeating its last row (one compiled shape for
    every chunk; the padded rows are discarded afterwards); unchanged if ``n >= size``. NumPy in,
    NumPy out; a JAX array stays on its device."""
    pad = size - a.shape[0]
    if pad <= 0:
        return a
    xp = jnp if isinstance(a, jax.Array) else np
    return xp.concatenate([a, xp.repeat(a[-1:], pad, axis=0)])


def _check_dual_weights(x_train, alpha):
    """``(x_train, alpha)`` as arrays, ``alpha`` as ``(n, k)`` with one row per training point."""
    x_train = jnp.asarray(x_train)
    alpha = jnp.asarray(alpha)
    if alpha.ndim == 1:
        alpha = alpha[:, None]
    if alpha.shape[0] != x_train.shape[0]:
        raise ValueError(f"`alpha` has {alpha.shape[0]} rows, `x_train` has {x_train.shape[0]}")
    return x_train, alpha


def make_predict_fn(kernel_fn: Callable, x_train, alpha, kind: str = "ntk",
                    train_batch_size: int | None = None) -> Callable:
    """Differentiable kernel predictor ``f(x) = Theta(x, X) alpha`` (``tsilivis2022ntk`` Eq. 7 / Eq. 8).

    Args:
      kernel_fn: stax ``kernel_fn``. x_train: ``(n, ...)``. alpha: ``(n, k)`` dual weights,
        e.g. ``KernelPredictor.weights(t)``. kind: ``"ntk"`` or ``"nngp"``.
      train_batch_size: sum ``Theta(x, X_j) alpha_j`` over chunks of the training set to
        bound memory (``None``: all at once).
    Returns: ``predict_fn(x_test: (m, ...)) -> (m, k)``, jit- and grad-compatible.
    """
    check_kind(kind)
    train_batch_size = check_int("train_batch_size", train_batch_size, min=1, none_ok=True)
    x_train, alpha = _check_dual_weights(x_train, alpha)
    return functools.partial(_predict, kernel_fn, kind, train_batch_size, x_train=x_train,
                             alpha=alpha)


def _predict(kernel_fn, kind, train_batch_size, x_test, *, x_train, alpha):
    out = 0.0
    for j0, j1 in _chunks(x_train.shape[0], train_batch_size):
        out = out + kernel_fn(x_test, x_train[j0:j1], kind) @ alpha[j0:j1]
    return out


@functools.lru_cache(maxsize=64)
def _grad_fn(kernel_fn, kind, train_batch_size, loss):
    def total(x, y, x_train, alpha):
        f = _predict(kernel_fn, kind, train_batch_size, x, x_train=x_train, alpha=alpha)
        if loss is None:
            return jnp.sum(f[:, 0])
        per_example = loss(f, y)
        if per_example.shape != (x.shape[0],):
            raise ValueError(f"`loss` must return per-example losses of shape ({x.shape[0]},), "
                             f"got {per_example.shape}")
        return jnp.sum(per_example)

    return jax.jit(jax.grad(total))


def predictor_input_gradients(kernel_fn: Callable, x_train, alpha, x_test, loss=None, y=None,
                              batch_size: int | None = 256, kind: str = "ntk",
                              train_batch_size: int | None = None):
    """Input gradients of the kernel predictor for all test points in batched jitted passes.

    With ``f(x) = Theta(x, X) alpha`` (``tsilivis2022ntk`` Eq. 7), returns ``grad_x f(x)`` (scalar output,
    ``loss=None``) or ``grad_x loss(f(x), y)`` — the ingredient of the kernel attack of
    ``tsilivis2022ntk`` Eq. (8). Each row of ``Theta(x_test, X)`` depends on its own x only, so one
    vjp of the summed outputs / losses gives every point's gradient.

    Args:
      kernel_fn: stax ``kernel_fn``. x_train: ``(n, ...)``. alpha: ``(n, k)`` dual weights.
      x_test: ``(m, ...)``.
      loss: ``None`` (needs k = 1) or ``loss(logits: (b, k), y: (b, ...)) -> (b,)`` per-example
        losses (hashable, e.g. a module-level function, so the jitted gradient is reused).
      y: ``(m, ...)`` labels for ``loss``.
      batch_size: test points per pass (bounds memory; the last chunk is padded to keep one
        compiled shape). kind: ``"ntk"`` or ``"nngp"``. train_batch_size: see
        :func:`make_predict_fn`.
    Returns: ``(m, ...)`` gradients, same shape as ``x_test``.
    """
    check_kind(kind)
    batch_size = check_int("batch_size", batch_size, min=1, none_ok=True)
    train_batch_size = check_int("train_batch_size", train_batch_size, min=1, none_ok=True)
    x_train, alpha = _check_dual_weights(x_train, alpha)
    if loss is None and alpha.shape[1] != 1:
        raise ValueError(f"`loss` is required for k = {alpha.shape[1]} outputs (the gradient "
                         "of the output is defined for scalar outputs only)")
    if loss is not None and y is None:
        raise ValueError("`y` is required when `loss` is given")
    x_test = jnp.asarray(x_test)
    m = x_test.shape[0]
    if y is not None:
        y = jnp.asarray(y)
        if y.shape[0] != m:
            raise ValueError(f"`y` has {y.shape[0]} rows, `x_test` has {m}")
    else:
        y = jnp.zeros((m,), x_test.dtype)
    fn = _grad_fn(kernel_fn, kind, train_batch_size, loss)
    bs = m if batch_size is None else min(batch_size, m)
    if m == 0:
        return jnp.zeros_like(x_test)
    outs = []
    for i0 in range(0, m, bs):
        i1 = min(i0 + bs, m)
        xb, yb = x_test[i0:i1], y[i0:i1]
        xb, yb = pad_rows(xb, bs), pad_rows(yb, bs)  # one compiled shape; padding discarded
        outs.append(fn(xb, yb, x_train, alpha)[: i1 - i0])
    return outs[0] if len(outs) == 1 else jnp.concatenate(outs)


# --------------------------------------------------------------------------- empirical NTK

@functools.cache
def _probe_setup():
    """A tiny stax MLP, its params, inputs and the Jacobian-contraction reference NTK."""
    from neural_tangents import stax

    init_fn, apply_fn, _ = stax.serial(stax.Flatten(), stax.Dense(8), stax.Relu(), stax.Dense(2))
    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (3, 2, 2, 1))
    _, params = init_fn(key, x.shape)
    ref = jax.jit(nt.empirical_ntk_fn(
        apply_fn, trace_axes=(), vmap_axes=0,
        implementation=_NT_IMPL["jacobian_contraction"]))(x, None, params)
    return apply_fn, params, x, ref


@functools.cache
def _probe(impl: str) -> bool:
    """Whether ``impl`` runs here and agrees with Jacobian contraction (cached per process)."""
    try:
        apply_fn, params, x, ref = _probe_setup()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0,
                                              implementation=_NT_IMPL[impl]))(x, None, params)
        return bool(jnp.allclose(got, ref, rtol=1e-4, atol=1e-5))
    except Exception:  # noqa: BLE001 - any failure means "does not work on this JAX"
        return False


def _working_implementations():
    """Lazily yield the working implementations in order of preference (probing as needed)."""
    return (name for name in NTK_IMPLEMENTATIONS[1:] if _probe(name))


def auto_ntk_implementation() -> str:
    """The implementation ``implementation="auto"`` picks: the first that works here.

    Order: structured derivatives (fastest for stax/flax MLPs and CNNs), NTK-vector
    products (memory ~ forward passes), Jacobian contraction (stores the Jacobians).
    """
    for name in _working_implementations():
        return name
    raise RuntimeError("no neural-tangents empirical NTK implementation works here")  # pragma: no cover


def _check_implementation(implementation) -> str:
    if isinstance(implementation, nt.NtkImplementation):
        for name, enum in _NT_IMPL.items():
            if enum == implementation:
                return name
        implementation = "auto"
    if implementation not in NTK_IMPLEMENTATIONS:
        raise ValueError(f"`implementation` must be one of {list(NTK_IMPLEMENTATIONS)}, "
                         f"got {implementation!r}")
    return implementation


@functools.lru_cache(maxsize=64)
def _empirical_fn(apply_fn, trace_axes, impl, vmap_axes):
    fn = nt.empirical_ntk_fn(apply_fn, trace_axes=trace_axes, vmap_axes=vmap_axes,
                             implementation=_NT_IMPL[impl])
    return jax.jit(fn)


def empirical_ntk(apply_fn: Callable, params, x1, x2=None, trace_axes=(-1,),
                  implementation: str = "auto", batch_size: int | None = 64,
                  vmap_axes: Any = 0, devices=None):
    """Empirical NTK ``Theta_hat(x1, x2) = J(x1) J(x2)^T`` of a finite network (``tsilivis2022ntk`` Eq. 6).

    Args:
      apply_fn: ``apply_fn(params, x) -> (b, k)`` (stax ``apply_fn`` or
        ``lambda p, x: model.apply(p, x)`` for flax).
      params: the parameters at which the Jacobians are taken.
      x1: ``(n1, ...)``; x2: ``(n2, ...)`` or ``None`` (``x2 = x1``, symmetric blocks reused).
      trace_axes: ``(-1,)`` -> mean over the k logits, result ``(n1, n2)``; ``()`` -> full
        per-logit kernel ``(n1, n2, k, k)``.
      implementation: one of :data:`NTK_IMPLEMENTATIONS`; ``"auto"`` uses
        :func:`auto_ntk_implementation` (structured derivatives where it works, e.g. JAX
        0.5.3; otherwise NTK-vector products), falling back to the next available one if
        it fails on this model.
      batch_size: block size along rows and columns (``None``: one block).
      vmap_axes: batch axis of inputs/outputs for neural-tangents (``0``; ``None`` for
        models that mix examples, e.g. batch norm in training mode).
      devices: devices the blocks are spread over, ``params`` replicated on each
        (``None``: all local devices). The result is the same for any number of devices.
    Returns: ``np.ndarray`` ``(n1, n2)`` or ``(n1, n2, k, k)`` in the parameters' precision.
    Raises: ``RuntimeError`` (one line) when no implementation works: what each one raised
      (e.g. ``RESOURCE_EXHAUSTED ... allocate N bytes``, a shape error), the input shapes and
      the size of one block's Jacobians.
    """
    implementation = _check_implementation(implementation)
    batch_size = check_int("batch_size", batch_size, min=1, none_ok=True)
    trace_axes = tuple(trace_axes) if isinstance(trace_axes, (tuple, list)) else (trace_axes,)
    if trace_axes not in ((-1,), ()):
        raise ValueError(f"`trace_axes` must be (-1,) or (), got {trace_axes!r}")
    x1 = jnp.asarray(x1)
    symmetric = x2 is None
    x2 = x1 if symmetric else jnp.asarray(x2)
    devices = check_devices("devices", devices)
    candidates = _working_implementations() if implementation == "auto" else [implementation]
    replicas = {}  # params placed once on each device

    def on(device):
        if device not in replicas:
            replicas[device] = jax.device_put(params, device)
        return replicas[device]

    last_err, failures = None, []
    for impl in candidates:
        fn = _empirical_fn(apply_fn, trace_axes, impl, vmap_axes)

        def block(a, b, device, fn=fn):
            return fn(a, b, on(device))

        try:
            out = _blockwise(block, x1, x2, batch_size, symmetric, devices)
            if out is None:
                out = np.asarray(fn(x1, None if symmetric else x2, params))
            return out
        except Exception as err:  # noqa: BLE001 - reported below, with what each one said
            last_err = err
            failures.append(f"{impl}: {_first_line(err)}")
    raise RuntimeError(_empirical_failure_message(apply_fn, params, x1, x2, batch_size, failures)) \
        from last_err


def _first_line(err: BaseException, limit: int = 300) -> str:
    text = " ".join(str(err).strip().splitlines()[:1]) or "(no message)"
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(err).__name__}: {text}"


def _empirical_failure_message(apply_fn, params, x1, x2, batch_size, failures) -> str:
    """One line: which implementation failed how, the size of the inputs and of one block's
    Jacobians (what the memory is asked for), and what to change."""
    leaves = jax.tree_util.tree_leaves(params)
    n_params = int(sum(np.size(leaf) for leaf in leaves))
    itemsize = max((np.dtype(getattr(leaf, "dtype", np.float32)).itemsize for leaf in leaves), default=4)
    try:
        k = int(np.prod(jax.eval_shape(apply_fn, params, x1[:1]).shape[1:]))
    except Exception:  # noqa: BLE001 - the model may not even accept x1
        k = None
    b1 = min(x1.shape[0], batch_size or x1.shape[0])
    b2 = min(x2.shape[0], batch_size or x2.shape[0])
    if k is not None:
        gib = (b1 + b2) * k * n_params * itemsize / 2**30
        size = (f"one {b1}x{b2} block's Jacobians take {b1 + b2} x {k} outputs x {n_params} parameters x "
                f"{itemsize} bytes = {gib:.3g} GiB")
    else:
        size = f"{n_params} parameters; the model could not be applied to inputs of shape {tuple(x1.shape[1:])}"
    oom = any("RESOURCE_EXHAUSTED" in f or "out of memory" in f.lower() for f in failures)
    hint = ("; out of memory: pass a smaller batch_size (now " f"{batch_size}) or fewer / smaller inputs"
            if oom else "")
    return (f"empirical NTK failed for inputs {tuple(x1.shape)} x {tuple(x2.shape)} "
            f"(batch_size={batch_size}; {size}): " + "; ".join(failures) + hint)
