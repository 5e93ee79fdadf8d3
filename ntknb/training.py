"""Training loops.

Full-batch gradient descent on the mean squared error — the "lazy" setting in
which a wide network in NTK parameterisation follows its linearisation (Lee et
al. 2019; lecture notes Eq. 15) and its centred output f_t - f_0 tracks the
kernel predictor of Tsilivis & Kempe Eq. 7 at the same time t.

Time convention (shared with :mod:`ntknb.kernels` and neural-tangents): the loss
is L = ½·mean((f(X) - Y)²) over all n·k entries of Y, and after ``s`` steps of
size ``learning_rate`` the training time is t = s · learning_rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm


def mse_loss(apply_fn: Callable, params: Any, x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """L(θ) = ½·mean((f_θ(x) - y)²) over all entries; x (n, ...), y (n, k)."""
    return 0.5 * jnp.mean((apply_fn(params, x) - y) ** 2)


def log_spaced_steps(total_steps: int, num: int, include_zero: bool = True) -> np.ndarray:
    """About ``num`` distinct integer steps log-spaced in [1, total_steps] (plus 0).

    Returns a sorted int array ending at ``total_steps``.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}")
    if num < 1:
        raise ValueError(f"num must be a positive integer, got {num!r}")
    steps = np.unique(np.round(np.geomspace(1, total_steps, num)).astype(int))
    if include_zero:
        steps = np.concatenate([[0], steps])
    return steps


@dataclass(frozen=True)
class GradientDescentRun:
    """Parameters saved at the checkpoints of a full-batch GD run.

    Attributes:
      steps: (c,) int, the checkpoint steps (ascending).
      times: (c,) float, t = step · learning_rate.
      params: list of c parameter pytrees, ``params[i]`` after ``steps[i]`` steps.
      losses: (c,) training loss ½·mean((f - y)²) at each checkpoint.
    """

    steps: np.ndarray
    times: np.ndarray
    params: list
    losses: np.ndarray


def train_full_batch_gd(
    apply_fn: Callable,
    params: Any,
    x_train: jnp.ndarray,
    y_train: jnp.ndarray,
    learning_rate: float,
    checkpoints: Sequence[int],
    progress: bool = True,
    description: str = "full-batch GD",
) -> GradientDescentRun:
    """Full-batch gradient descent θ ← θ - η ∇L(θ) on L = ½·mean((f_θ(X) - Y)²).

    The steps between consecutive checkpoints run in one jitted ``fori_loop``.

    Args:
      apply_fn: ``apply_fn(params, x) -> (n, k)`` (a stax or flax apply function).
      params: initial parameters θ_0.
      x_train: (n, ...) training inputs.
      y_train: (n, k) targets.
      learning_rate: η > 0.
      checkpoints: increasing non-negative step counts at which to save θ.
      progress: show a progress bar over checkpoints.

    Returns:
      A :class:`GradientDescentRun` with t = step · η for each checkpoint.
    """
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
    checkpoints = np.asarray(checkpoints, dtype=int)
    if checkpoints.ndim != 1 or checkpoints.size == 0 or checkpoints[0] < 0 or np.any(np.diff(checkpoints) <= 0):
        raise ValueError(
            "checkpoints must be a non-empty, strictly increasing sequence of non-negative "
            f"step counts, got {checkpoints.tolist()!r}"
        )
    if x_train.shape[0] != y_train.shape[0]:
        raise ValueError(
            f"x_train and y_train must have the same number of rows, got {x_train.shape[0]} and {y_train.shape[0]}"
        )

    loss_and_grad = jax.value_and_grad(lambda p: mse_loss(apply_fn, p, x_train, y_train))

    @jax.jit
    def run_steps(p, n_steps):
        def body(_, q):
            _, g = loss_and_grad(q)
            return jax.tree_util.tree_map(lambda a, b: a - learning_rate * b, q, g)

        return jax.lax.fori_loop(0, n_steps, body, p)

    loss_fn = jax.jit(lambda p: mse_loss(apply_fn, p, x_train, y_train))

    saved, losses = [], []
    current, done = params, 0
    for step in tqdm(checkpoints, desc=description, disable=not progress, leave=False):
        current = run_steps(current, int(step - done))
        done = int(step)
        saved.append(current)
        losses.append(float(loss_fn(current)))
    return GradientDescentRun(
        steps=checkpoints,
        times=checkpoints * float(learning_rate),
        params=saved,
        losses=np.asarray(losses),
    )
