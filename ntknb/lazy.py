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

The wide networks are trained here (:func:`train_network`, :class:`TrainedNetwork`: full-batch
gradient descent on ``½·mean((f - y)²)``, optionally centred, ``g_θ = f_θ - f_θ0``, footnote 2 of
``tsilivis2022ntk``, so that as width → ∞ its outputs converge to Eq. (7) exactly); the kernel
predictors they are compared with are :class:`ntknb.kernel_machines.KernelModel`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from ntknb._compat import x64
from ntknb import attacks as A
from ntknb import kernels as K
from ntknb.architectures import Architecture
from ntknb.kernel_machines import loss_name_for
from ntknb.training import GradientDescentRun, train_full_batch_gd

__all__ = ["TrainedNetwork", "empirical_ntk_errors", "gradient_descent_residual_modes", "loglog_slope",
           "network_outputs", "residual_modes", "train_network"]


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
    with x64():  # projections in float64: the small modes are differences of large numbers
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


# --------------------------------------------------------------------------- trained wide networks


@dataclasses.dataclass(frozen=True)
class TrainedNetwork:
    """A network trained by full-batch GD, with its initial parameters for centring.

    Attributes:
      arch: the :class:`~ntknb.architectures.Architecture`.
      params0: initial parameters θ_0.
      run: :class:`~ntknb.training.GradientDescentRun` (checkpoint steps, times, params).
      centre: whether the model is ``g_θ = f_θ - f_θ0`` (trained and attacked as such).
      learning_rate: η.
    """

    arch: Architecture
    params0: Any = dataclasses.field(repr=False)
    run: GradientDescentRun = dataclasses.field(repr=False)
    centre: bool = True
    learning_rate: float = 0.0

    @property
    def times(self) -> np.ndarray:
        return np.asarray(self.run.times, dtype=float)

    def outputs(self, params, x) -> jnp.ndarray:
        """Model outputs ``(m, k)``: ``f_θ(x) - f_θ0(x)`` if centred, else ``f_θ(x)``."""
        return network_outputs(self.arch.apply_fn, self.centre, params, self.params0, x)

    def predict_fn(self, i: int) -> Callable:
        """``x ↦ outputs(θ at checkpoint i, x)``, jitted once per architecture (for attacks
        and evaluation)."""
        return functools.partial(_outputs_jit, self.arch.apply_fn, self.centre, self.run.params[i], self.params0)

    def checkpoint_index(self, t: float) -> int:
        """Index of the checkpoint at time ``t`` (relative tolerance 1e-6)."""
        times = self.times
        i = int(np.argmin(np.abs(times - float(t))))
        if not abs(times[i] - float(t)) <= 1e-6 * max(abs(float(t)), 1.0):
            raise ValueError(f"t={t!r} is not a checkpoint time; checkpoint times are {times.tolist()}")
        return i

    def loss_gradients(self, i: int, x, y) -> jnp.ndarray:
        """``∇ₓ L(model_i(x), y)`` for all rows of ``x`` in one jitted pass ``(m, ...)``."""
        fn = _net_loss_grad(self.arch.apply_fn, self.centre, loss_name_for(y))
        return fn(self.run.params[i], self.params0, jnp.asarray(x), jnp.asarray(y))

    def relative_weight_change(self, i: int = -1) -> float:
        """``‖θ_i - θ_0‖ / ‖θ_0‖`` (small in the lazy regime)."""
        d = jax.tree_util.tree_map(lambda a, b: a - b, self.run.params[i], self.params0)
        norm = lambda tree: math.sqrt(sum(float(jnp.sum(jnp.square(l))) for l in jax.tree_util.tree_leaves(tree)))
        return norm(d) / norm(self.params0)


def network_outputs(apply_fn: Callable, centre: bool, params, params0, x) -> jnp.ndarray:
    """Outputs ``(m, k)`` of the network ``apply_fn(params, x)`` at the inputs ``x (m, ...)``, centred
    ``g_θ(x) = f_θ(x) - f_θ0(x)`` (``params0`` = θ_0) if ``centre``: the model :class:`TrainedNetwork`
    trains and attacks, with its weights as arguments (traceable; differentiable in ``params`` and ``x``)."""
    out = apply_fn(params, x)
    return out - apply_fn(params0, x) if centre else out


_outputs_jit = jax.jit(network_outputs, static_argnums=(0, 1))


@functools.lru_cache(maxsize=32)
def _net_loss_grad(apply_fn, centre: bool, loss: str):
    loss_fn = A.LOSSES[loss]

    def total(x, params, params0, y):
        return jnp.sum(loss_fn(network_outputs(apply_fn, centre, params, params0, x), y))

    grad = jax.grad(total)
    return jax.jit(lambda params, params0, x, y: grad(x, params, params0, y))


def train_network(arch: Architecture, x_train, y_train, learning_rate: float, checkpoints: Sequence[int],
                  seed: int = 0, centre: bool = True, progress: bool = True,
                  description: str | None = None) -> TrainedNetwork:
    """Initialise ``arch`` with ``PRNGKey(seed)`` and train it by full-batch GD on ½·MSE.

    With ``centre=True`` the trained model is ``g_θ = f_θ - f_θ0``: gradient descent on
    ``½·mean((g_θ(X) - Y)²)``, run as :func:`ntknb.training.train_full_batch_gd` of ``f_θ`` on
    the targets ``Y + f_θ0(X)`` (same gradients). Times are ``t = step × learning_rate``.

    Args:
      arch: network (its ``out_dim`` must equal ``y_train.shape[1]``).
      x_train: ``(n, H, W, C)``; y_train: ``(n, k)``.
      learning_rate: η > 0; checkpoints: increasing step counts.
      seed: initialisation seed (non-negative int).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    x_train = jnp.asarray(x_train, jnp.float32)
    y_train = jnp.asarray(y_train, jnp.float32)
    if arch.out_dim != y_train.shape[1]:
        raise ValueError(f"arch.out_dim ({arch.out_dim}) must equal the number of label columns "
                         f"y_train.shape[1] ({y_train.shape[1]})")
    params0 = arch.init(jax.random.PRNGKey(int(seed)), x_train.shape)
    targets = y_train + arch.apply_fn(params0, x_train) if centre else y_train
    run = train_full_batch_gd(arch.apply_fn, params0, x_train, targets, learning_rate, checkpoints,
                              progress=progress, description=description or f"GD {arch.name}")
    return TrainedNetwork(arch=arch, params0=params0, run=run, centre=bool(centre),
                          learning_rate=float(learning_rate))
