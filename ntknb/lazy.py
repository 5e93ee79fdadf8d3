"""The lazy regime: finite wide networks against their infinite-width NTK.

Lecture notes "Kernels, Data & Physics", Sec. 2:

* Eqs. (16)-(17): the empirical NTK of a width-m network converges to the analytic
  kernel as m → ∞; its fluctuations are O(m^{-1/2}) (Eq. 18), so the relative
  Frobenius error falls on a line of slope about -1/2 in log-log axes;
* Eq. (15): a wide network trained by gradient descent on the square loss follows
  the linearised dynamics, whose solution is the kernel predictor at time t
  (``tsilivis2022ntk`` Eq. 7);
* Eq. (21), spectral bias: the training residual along the Gram eigenvector v_i
  decays as exp(-η λ_i t) — in ntknb's convention (loss ½·mean over the N = n·k
  entries of Y, t = steps × learning rate) as exp(-λ_i t / N).

The networks and kernel predictors come from :mod:`ntknb.transfer`
(:func:`~ntknb.transfer.train_network`, :class:`~ntknb.transfer.KernelModel`); this
module only measures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import numpy as np
from tqdm import tqdm

from ntknb import kernels as K
from ntknb.architectures import Architecture

__all__ = ["empirical_ntk_errors", "gradient_descent_residual_modes", "loglog_slope", "residual_modes"]


def empirical_ntk_errors(
    arch_factory: Callable[[int], Architecture],
    widths: Sequence[int],
    x,
    n_seeds: int = 3,
    seed: int = 0,
    implementation: str = "auto",
    progress: bool = True,
) -> np.ndarray:
    """Relative Frobenius error ‖Θ̂_m - Θ‖_F / ‖Θ‖_F of the empirical NTK at initialisation.

    Lecture notes Eqs. (16)-(18): Θ̂_m (Eq. 16, one random initialisation of a width-m
    network) → Θ (Eq. 17) with fluctuations O(m^{-1/2}).

    Args:
      arch_factory: ``width -> Architecture`` (all widths share the analytic kernel).
      widths: the widths m to test.
      x: ``(n, H, W, C)`` inputs.
      n_seeds: independent initialisations per width.
      seed: base seed; initialisation ``s`` of every width uses ``PRNGKey(seed + s)``.
      implementation: passed to :func:`ntknb.kernels.empirical_ntk`.

    Returns:
      ``(len(widths), n_seeds)`` relative errors.
    """
    widths = [int(w) for w in widths]
    if not widths or min(widths) < 1:
        raise ValueError(f"widths must be a non-empty list of positive integers, got {widths!r}")
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or n_seeds < 1:
        raise ValueError(f"n_seeds must be a positive integer, got {n_seeds!r}")
    analytic = np.asarray(K.kernel_matrix(arch_factory(widths[0]).kernel_fn, x), np.float64)
    norm = np.linalg.norm(analytic)
    errors = np.zeros((len(widths), n_seeds))
    bar = tqdm(total=len(widths) * n_seeds, desc="empirical NTK", disable=not progress, leave=False)
    for i, width in enumerate(widths):
        arch = arch_factory(width)
        for s in range(n_seeds):
            params = arch.init(jax.random.PRNGKey(seed + s), x.shape)
            emp = np.asarray(K.empirical_ntk(arch.apply_fn, params, x, implementation=implementation), np.float64)
            errors[i, s] = np.linalg.norm(emp - analytic) / norm
            bar.update()
    bar.close()
    return errors


def loglog_slope(x, y) -> tuple[float, float]:
    """Least-squares fit of log y = a·log x + b; returns ``(a, b)`` (natural logs)."""
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"x and y must have the same length >= 2, got {x.size} and {y.size}")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("x and y must be positive for a log-log fit")
    a, b = np.polyfit(np.log(x), np.log(y), 1)
    return float(a), float(b)


def residual_modes(eigenvectors, residuals) -> np.ndarray:
    """Size of the training residual along each Gram eigenvector (lecture notes Eq. 21).

    Args:
      eigenvectors: ``(n, n)``, column i = v_i (e.g. ``KernelPredictor.eigenvectors``).
      residuals: ``(c, n, k)`` residuals f_t(X) - Y at c times.

    Returns:
      ``(c, n)``: ‖v_iᵀ R_t‖ over the k outputs, row i for the i-th largest eigenvalue.
      For the linearised dynamics this is exp(-λ_i t / N) ‖v_iᵀ R_0‖.
    """
    with K.x64():  # projections in float64: the small modes are differences of large numbers
        proj = np.asarray(K.residual_projections(np.asarray(eigenvectors, np.float64), np.asarray(residuals, np.float64)))
    if proj.ndim != 3:
        raise ValueError(f"residuals must have shape (c, n, k), got {np.shape(residuals)}")
    return np.linalg.norm(proj, axis=-1)


def gradient_descent_residual_modes(predictor: K.KernelPredictor, steps, learning_rate: float) -> np.ndarray:
    """Residual along each eigenvector for *discrete* gradient descent on the linearised model.

    With step η, R_{s+1} = (I - η Θ / N) R_s and R_0 = -Y (centred network, f_0 = 0), so
    ‖v_iᵀ R_s‖ = |1 - η λ_i / N|^s ‖v_iᵀ Y‖ — the discrete-time version of lecture notes
    Eq. (21), which it approaches, exp(-λ_i t / N) with t = s·η, when η λ_i / N ≪ 1.

    Args:
      predictor: the :class:`~ntknb.kernels.KernelPredictor` of Θ(X, X) and Y.
      steps: ``(c,)`` step counts s.
      learning_rate: η > 0.

    Returns:
      ``(c, n)``, column i for the i-th largest eigenvalue.
    """
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
    lam = np.asarray(predictor.eigenvalues, np.float64)
    factor = np.abs(1.0 - learning_rate * lam / predictor.normalization)
    steps = np.asarray(steps, np.float64)[:, None]
    return factor[None, :] ** steps * np.linalg.norm(np.asarray(predictor.proj_y, np.float64), axis=-1)[None, :]
