"""Kernel metrics for empirical-NTK dynamics during standard and adversarial training.

All functions take NumPy-compatible arrays and return NumPy floats / arrays; they
compute in float64.  A "kernel" is a symmetric PSD matrix ``K`` of shape ``(n, n)``
(the traced empirical NTK on a probe set) unless stated otherwise; per-logit
kernels are ``(n, n, k)`` (the diagonal blocks Θ^{i,i}) or ``(n, n, k, k)``.

Sources:

* ``tsilivis2022ntk``, "What Can the Neural Tangent Kernel Tell Us About Adversarial
  Robustness?", NeurIPS 2022, Sec. 5: kernel distance, polar coordinates (Eq. 12),
  concentration on the top eigenspace (Fig. 6).
* ``li2023rethinking`` ("Rethinking Adversarial Training with Neural Tangent Kernel"), Sec. 3.1: kernel
  distance KD (``loo2022evolution``), kernel effective rank KER (``roy2007effective``),
  kernel specialization M_ks / KS (Shan & Bordelon 2021).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

__all__ = [
    "frobenius_norm",
    "kernel_alignment",
    "kernel_distance",
    "distance_matrix",
    "consecutive_distances",
    "eigenvalues",
    "top_eigenspace",
    "polar_coordinates",
    "concentration",
    "logit_matrix",
    "effective_rank",
    "specialization_matrix",
    "kernel_specialization",
    "lazy_epoch",
]


def _as_square(K, name: str = "K") -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"{name} must be a square matrix of shape (n, n); got shape {K.shape}")
    return K


def frobenius_norm(K) -> float:
    """‖K‖_F = sqrt(Σ_ij K_ij²) = sqrt(Tr(K Kᵀ)) (any shape: all entries)."""
    return float(np.sqrt(np.sum(np.asarray(K, dtype=np.float64) ** 2)))


def kernel_alignment(K1, K2) -> float:
    """Kernel alignment A(K1, K2) = Tr(K1 K2ᵀ) / (‖K1‖_F ‖K2‖_F) (Cortes et al. 2012).

    ``Tr(K1 K2ᵀ) = Σ_ij (K1)_ij (K2)_ij``, so any two arrays of the same shape are
    accepted.  A = 1 iff K2 = c·K1 with c > 0.  Raises ``ValueError`` for shape
    mismatch or a zero kernel.
    """
    K1 = np.asarray(K1, dtype=np.float64)
    K2 = np.asarray(K2, dtype=np.float64)
    if K1.shape != K2.shape:
        raise ValueError(f"K1 and K2 must have the same shape; got {K1.shape} and {K2.shape}")
    n1, n2 = frobenius_norm(K1), frobenius_norm(K2)
    if n1 == 0 or n2 == 0:
        raise ValueError("kernel_alignment is undefined for a zero kernel (‖K‖_F = 0)")
    return float(np.sum(K1 * K2) / (n1 * n2))


def kernel_distance(K1, K2) -> float:
    """Scale-invariant kernel distance (``tsilivis2022ntk``, Sec. 5; KD of Loo et al. 2022):

    d(K1, K2) = 1 − Tr(K1 K2ᵀ) / (‖K1‖_F ‖K2‖_F) = 1 − A(K1, K2).

    0 for kernels equal up to a positive scale, 1 for orthogonal ones; in [0, 1]
    for PSD kernels (their Frobenius inner product is ≥ 0).
    """
    return 1.0 - kernel_alignment(K1, K2)


def distance_matrix(kernels: Sequence) -> np.ndarray:
    """D_ij = d(K_i, K_j) for a sequence of T kernels; shape (T, T) (Fig. 3 left of ``tsilivis2022ntk``)."""
    K = np.asarray(kernels, dtype=np.float64)
    flat = K.reshape(K.shape[0], -1)
    norms = np.sqrt(np.sum(flat**2, axis=1))
    if np.any(norms == 0):
        raise ValueError("distance_matrix is undefined for a zero kernel (‖K‖_F = 0)")
    gram = flat @ flat.T / np.outer(norms, norms)
    D = 1.0 - gram
    np.fill_diagonal(D, 0.0)
    return D


def consecutive_distances(kernels: Sequence) -> np.ndarray:
    """d(K_{t−1}, K_t) for t = 1..T−1 ("KD between epochs t and t−1", ``li2023rethinking`` Fig. 1); shape (T−1,)."""
    return np.array([kernel_distance(kernels[t - 1], kernels[t]) for t in range(1, len(kernels))])


def eigenvalues(K) -> np.ndarray:
    """Eigenvalues λ_1 ≥ … ≥ λ_n of the symmetric part (K + Kᵀ)/2; shape (n,)."""
    K = _as_square(K)
    return np.linalg.eigvalsh(0.5 * (K + K.T))[::-1]


def top_eigenspace(K, p: int) -> np.ndarray:
    """Restriction of K to its top-p eigenspace: K_p = Σ_{i≤p} λ_i u_i u_iᵀ (λ descending); shape (n, n).

    Used for the polar dynamics "of the top space only" (``tsilivis2022ntk`` Sec. 5).
    """
    K = _as_square(K)
    if not (isinstance(p, (int, np.integer)) and 1 <= p <= K.shape[0]):
        raise ValueError(f"p must be an integer in [1, n={K.shape[0]}]; got {p!r}")
    lam, U = np.linalg.eigh(0.5 * (K + K.T))
    lam, U = lam[::-1][:p], U[:, ::-1][:, :p]
    return (U * lam) @ U.T


def polar_coordinates(kernels: Sequence, K0=None, Kf=None) -> tuple[np.ndarray, np.ndarray]:
    """Polar coordinates of a kernel trajectory, ``tsilivis2022ntk`` Eq. (12):

    r_t = ‖K_t − K_0‖_F / ‖K_f − K_0‖_F,   θ_t = arccos(1 − d(K_t, K_0)).

    Args:
      kernels: sequence of T kernels K_t (same shape).
      K0, Kf: initial and final kernels; default ``kernels[0]`` and ``kernels[-1]``.

    Returns:
      (r, theta), each of shape (T,); θ in radians (the argument of arccos is
      clipped to [−1, 1] against round-off).
    """
    K = np.asarray(kernels, dtype=np.float64)
    K0 = K[0] if K0 is None else np.asarray(K0, dtype=np.float64)
    Kf = K[-1] if Kf is None else np.asarray(Kf, dtype=np.float64)
    scale = frobenius_norm(Kf - K0)
    if scale == 0:
        raise ValueError("polar_coordinates: the final kernel equals the initial one (‖K_f − K_0‖_F = 0)")
    r = np.array([frobenius_norm(k - K0) for k in K]) / scale
    theta = np.arccos(np.clip(np.array([1.0 - kernel_distance(k, K0) for k in K]), -1.0, 1.0))
    return r, theta


def concentration(K, p: int = 20) -> float:
    """Concentration on the top-p eigenspace (``tsilivis2022ntk`` Sec. 5, Fig. 6 right):

    Σ_{i≤p} λ_i² / Σ_{i≤n} λ_i²   (λ indexed from largest to smallest),

    i.e. ‖K_p‖_F² / ‖K‖_F², the share of the squared Frobenius norm in the top-p space.
    """
    lam = eigenvalues(K)
    if not (isinstance(p, (int, np.integer)) and 1 <= p <= lam.size):
        raise ValueError(f"p must be an integer in [1, n={lam.size}]; got {p!r}")
    total = np.sum(lam**2)
    if total == 0:
        raise ValueError("concentration is undefined for a zero kernel")
    return float(np.sum(lam[:p] ** 2) / total)


def logit_matrix(K) -> np.ndarray:
    """The per-logit empirical NTK Θ(X, X) of shape (n, n, k, k) as one (n·k, n·k) matrix,
    row / column index ``i·k + a`` for example i and logit a (``tsilivis2022ntk`` Sec. 5: the
    kernel of a 10-class network on a batch of 256 images is 2560 × 2560)."""
    K = np.asarray(K)
    if K.ndim != 4 or K.shape[0] != K.shape[1] or K.shape[2] != K.shape[3]:
        raise ValueError(f"K must have shape (n, n, k, k); got {K.shape}")
    n, _, k, _ = K.shape
    return K.transpose(0, 2, 1, 3).reshape(n * k, n * k)


def effective_rank(K) -> float:
    """Kernel effective rank KER (``roy2007effective``; ``li2023rethinking`` Sec. 3.1):

    KER(K) = exp(−Σ_i p_i log p_i),   p_i = σ_i / Σ_j σ_j,

    with σ_i the singular values of K (= eigenvalues for PSD K); terms with p_i = 0
    contribute 0.  Ranges from 1 (rank one) to n (K ∝ I).
    """
    K = _as_square(K)
    s = np.linalg.svd(K, compute_uv=False)
    total = np.sum(s)
    if total == 0:
        raise ValueError("effective_rank is undefined for a zero kernel")
    p = s / total
    p = p[p > 0]
    return float(np.exp(-np.sum(p * np.log(p))))


def _per_logit(kernels) -> np.ndarray:
    """(n, n, k) diagonal blocks Θ^{i,i} from (n, n, k) or (n, n, k, k)."""
    K = np.asarray(kernels, dtype=np.float64)
    if K.ndim == 4:
        if K.shape[2] != K.shape[3]:
            raise ValueError(f"a full per-logit kernel must have shape (n, n, k, k); got {K.shape}")
        K = np.diagonal(K, axis1=2, axis2=3)  # (n, n, k)
    if K.ndim != 3 or K.shape[0] != K.shape[1]:
        raise ValueError(f"per-logit kernels must have shape (n, n, k) or (n, n, k, k); got {K.shape}")
    return K


def specialization_matrix(kernels, labels, num_classes: Optional[int] = None) -> np.ndarray:
    """Kernel specialization matrix M_ks (``shan2021theory``; ``li2023rethinking`` Sec. 3.1):

    M_ks^{i,j} = A(Θ^{i,i}, Y_j Y_jᵀ) / ( (1/k) Σ_l A(Θ^{l,l}, Y_j Y_jᵀ) ),

    where Θ^{i,i} is the (n, n) kernel of logit i, Y_j ∈ {0,1}^n indicates the probe
    points with label j, and A = 1 − KD is the kernel alignment
    (so A(Θ, Y_j Y_jᵀ) = Y_jᵀ Θ Y_j / (‖Θ‖_F · n_j)).  Row i = logit, column j = class.

    Args:
      kernels: per-logit kernels, (n, n, k) (diagonal blocks) or (n, n, k, k).
      labels: (n,) integer labels — clean labels (CL) or the model's predictions on
        adversarial examples (adversarial labels, AL).
      num_classes: k (default: from ``kernels``).

    Returns:
      M_ks, shape (k, k).  A class absent from ``labels`` gives a NaN column.
    """
    K = _per_logit(kernels)
    n, _, k = K.shape
    if num_classes is not None and num_classes != k:
        raise ValueError(f"num_classes={num_classes} does not match the kernels' k={k}")
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers of shape (n,) = ({n},); got {labels.shape} {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"labels must lie in [0, {k - 1}]")
    Y = (labels[:, None] == np.arange(k)[None, :]).astype(np.float64)  # (n, k)
    norms = np.sqrt(np.sum(K**2, axis=(0, 1)))  # (k,)
    if np.any(norms == 0):
        raise ValueError("specialization_matrix: a per-logit kernel is zero")
    counts = Y.sum(axis=0)  # n_j = ‖Y_j Y_jᵀ‖_F
    # quad[i, j] = Y_jᵀ Θ^{i,i} Y_j
    quad = np.einsum("aj,abi,bj->ij", Y, K, Y)
    with np.errstate(invalid="ignore", divide="ignore"):
        A = quad / (norms[:, None] * counts[None, :])
        return A / A.mean(axis=0, keepdims=True)


def kernel_specialization(kernels, labels, num_classes: Optional[int] = None) -> float:
    """KS(Θ) = Tr(M_ks(Θ)) / k (``li2023rethinking`` Sec. 3.1); see :func:`specialization_matrix`.

    KS = 1 when every logit's kernel is equally aligned with every class; KS > 1 when
    logit i's kernel aligns most with its own class i (specialization).  Classes
    absent from ``labels`` are left out of the mean.
    """
    M = specialization_matrix(kernels, labels, num_classes)
    d = np.diag(M)
    return float(np.nanmean(d))


def lazy_epoch(distances: Sequence[float], threshold: float, until: Optional[int] = None) -> float:
    """First epoch after which the kernel stops moving ("becomes lazy").

    With ``distances[t−1] = d(K_{t−1}, K_t)`` for epochs t = 1..T (see
    :func:`consecutive_distances`), returns the smallest epoch e ∈ {0, …, T'−1} such
    that d(K_{t−1}, K_t) < ``threshold`` for every t = e+1, …, T', where T' = ``until``
    (default T; use it to stop before a learning-rate decay).  Returns NaN if the
    last distance considered is ≥ threshold (not lazy within the window).
    """
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError("distances must be a non-empty 1-d sequence")
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0; got {threshold!r}")
    T = d.size if until is None else int(until)
    if not 1 <= T <= d.size:
        raise ValueError(f"until must be an epoch in [1, {d.size}]; got {until!r}")
    above = np.nonzero(d[:T] >= threshold)[0]
    if above.size == 0:
        return 0.0
    last = int(above[-1]) + 1  # epoch t whose step d(K_{t-1}, K_t) is still large
    return float("nan") if last >= T else float(last)
