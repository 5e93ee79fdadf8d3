"""The kernel machine of an architecture fitted on a task (``tsilivis2022ntk`` Eq. 7).

:class:`KernelModel` is the one way ntknb fits a kernel predictor on a task: the analytic
(infinite-width) kernel of an :class:`~ntknb.architectures.Architecture`, its Gram matrix
``Theta(X, X)`` eigendecomposed once (:class:`ntknb.kernels.KernelPredictor`), and from it
the predictor at any training time ``t = steps x learning_rate`` — of gradient flow (Eq. 7) or,
with ``learning_rate`` set, of discrete gradient descent with that step — its dual weights, a
differentiable ``x -> f_t(x)`` for attacks (Eq. 8), the input gradients of its loss and its
test-train kernel. Chapters 00-03 and :mod:`ntknb.transfer` build on it.

Losses: binary tasks (labels ±1, shape ``(n, 1)``) use the logistic loss
:func:`ntknb.attacks.binary_cross_entropy_pm1`, multi-class tasks (centred one-hot) softmax
cross-entropy (:func:`loss_name_for`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import ntknb  # noqa: F401  (compat shim before neural_tangents)

import jax.numpy as jnp
import numpy as np

from ntknb import attacks as A
from ntknb import kernels as K
from ntknb.architectures import Architecture

__all__ = ["KernelModel", "loss_name_for", "max_stable_learning_rate"]


def loss_name_for(y) -> str:
    """``"bce"`` for binary ±1 labels of shape ``(n, 1)``, ``"ce"`` for ``(n, k)``, k > 1."""
    y = np.asarray(y)
    if y.ndim != 2:
        raise ValueError(f"y must have shape (n, 1) (binary ±1) or (n, k) (centred one-hot); got {y.shape}")
    return A.classification_loss("auto", y.shape[1])


def max_stable_learning_rate(k_train_train, n_outputs: int = 1) -> float:
    """Largest stable step of gradient descent on ``½·mean((f - Y)²)`` for the linearised model.

    With ``N = n·k`` entries the residual evolves as ``(I - η Θ / N)^s``; it is stable for
    ``η < 2 N / λ_max(Θ)``. Returns that bound (use a fraction of it, e.g. 0.5).
    """
    k = np.asarray(k_train_train, np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"k_train_train must be a square (n, n) matrix; got {k.shape}")
    if isinstance(n_outputs, bool) or not isinstance(n_outputs, (int, np.integer)) or n_outputs < 1:
        raise ValueError(f"n_outputs must be a positive integer; got {n_outputs!r}")
    lam_max = float(np.linalg.eigvalsh(k)[-1])
    return 2.0 * k.shape[0] * int(n_outputs) / lam_max


@dataclasses.dataclass(frozen=True)
class KernelModel:
    """The analytic-NTK predictor of an architecture on a task (``tsilivis2022ntk`` Eq. 7).

    Attributes:
      name: label for tables (the architecture's name).
      kernel_fn: the architecture's analytic ``kernel_fn``.
      x_train: ``(n, H, W, C)``; y_train: ``(n, k)``.
      predictor: :class:`ntknb.kernels.KernelPredictor` fitted on ``Θ(X, X)``.
      k_train_train: ``(n, n)`` Gram matrix.
      kind: ``"ntk"`` or ``"nngp"``.
      learning_rate: ``None``: gradient flow (Eq. 7); a step η: discrete gradient descent with
        that step, ``s = t / η`` steps (:meth:`ntknb.kernels.KernelPredictor.weights`).
      dtype: ``None`` (float32) or ``np.float64`` for the kernel matrices and the predictor.
      batch_size: block size of the kernel matrices.
    """

    name: str
    kernel_fn: Callable = dataclasses.field(repr=False)
    x_train: Any = dataclasses.field(repr=False)
    y_train: Any = dataclasses.field(repr=False)
    predictor: K.KernelPredictor = dataclasses.field(repr=False)
    k_train_train: Any = dataclasses.field(repr=False)
    kind: str = "ntk"
    learning_rate: float | None = None
    dtype: Any = None
    batch_size: int | None = 256

    @classmethod
    def build(cls, arch: Architecture, x_train, y_train, kind: str = "ntk", batch_size: int | None = 256,
              dtype=None, learning_rate: float | None = None) -> "KernelModel":
        """Compute ``Θ(X, X)`` of ``arch``'s infinite-width kernel and fit Eq. (7).

        ``dtype=np.float64`` computes the Gram matrix and the eigendecomposition in float64
        (for the eigen-features of Eq. 9, whose small eigenvalues need it).
        """
        x_train = jnp.asarray(x_train, jnp.float32)
        y_train = jnp.asarray(y_train, jnp.float32)
        ktt = np.asarray(K.kernel_matrix(arch.kernel_fn, x_train, None, kind=kind, batch_size=batch_size,
                                         dtype=dtype))
        pred = K.KernelPredictor.fit(ktt, y_train, dtype=dtype)
        model = cls(name=arch.name, kernel_fn=arch.kernel_fn, x_train=x_train, y_train=y_train,
                    predictor=pred, k_train_train=ktt, kind=kind, dtype=dtype, batch_size=batch_size)
        return model if learning_rate is None else model.with_learning_rate(learning_rate)

    def with_learning_rate(self, learning_rate: float | None) -> "KernelModel":
        """The same fitted kernel, as the predictor of discrete gradient descent with step
        ``learning_rate`` (``None``: gradient flow). No kernel is recomputed."""
        if learning_rate is not None:
            self.predictor.weights(0.0, learning_rate=learning_rate)  # checks the step
        return dataclasses.replace(self, learning_rate=None if learning_rate is None else float(learning_rate))

    @property
    def n_outputs(self) -> int:
        return int(self.y_train.shape[1])

    def test_kernel(self, x) -> np.ndarray:
        """``Θ(x, X)`` ``(m, n)`` in the model's dtype and block size."""
        return K.kernel_matrix(self.kernel_fn, x, self.x_train, kind=self.kind, batch_size=self.batch_size,
                               dtype=self.dtype)

    def weights(self, t) -> jnp.ndarray:
        """Dual weights ``α_t`` ``(n, k)`` of Eq. (7) (of discrete GD if ``learning_rate`` is set)."""
        return jnp.asarray(self.predictor.weights(float(t), learning_rate=self.learning_rate))

    def predict_fn(self, t) -> Callable:
        """Differentiable ``x ↦ Θ(x, X) α_t`` ``(m, ...) -> (m, k)`` (Eq. 7)."""
        return K.make_predict_fn(self.kernel_fn, self.x_train, self.weights(t), kind=self.kind)

    def loss_gradients(self, t, x, y, batch_size: int | None = 256) -> jnp.ndarray:
        """``∇ₓ L(f_t(x), y)`` for all rows of ``x`` in batched jitted passes ``(m, ...)``."""
        loss = A.LOSSES[loss_name_for(y)]
        return K.predictor_input_gradients(self.kernel_fn, self.x_train, self.weights(t), x,
                                           loss=loss, y=jnp.asarray(y), batch_size=batch_size,
                                           kind=self.kind)

    def train_loss(self, t) -> float:
        """``½·mean((f_t(X) - Y)²)`` of the kernel predictor on its training set."""
        f = np.asarray(self.predictor.predict_train(float(t), learning_rate=self.learning_rate))
        return float(0.5 * np.mean((f - np.asarray(self.y_train)) ** 2))
