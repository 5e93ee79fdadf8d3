"""Checks for the book's "implement it" exercises: a student's function against the reference.

Every chapter's Exercises ask the reader to implement one method of the chapter (the empirical
NTK, the kernel attack, the KIP loss, an FGSM-AT step, ...) in a few lines. Each ``check_*``
function here draws a few small random problems, calls the student's function and the
package's own implementation on each, and compares them::

    from ntknb import exercises
    exercises.check_fgsm(my_fgsm)
    # PASS check_fgsm: largest error 0 over 3 random problems (tolerance 1e-06)

The result is a :class:`CheckResult` (``passed``, ``max_error``, ``tolerance``, ``message``);
it reads as that one line, so a check can end a notebook cell or be printed. Problems are
computed in float64 (:func:`ntknb._compat.x64`) so that rounding never hides a mistake nor
fails a correct answer; the tolerance is relative to the largest entry of the reference (at
least 1). A student function that raises, or returns the wrong shape, fails with that reason.

Each checker's docstring gives the signature the student implements; the reference is named
there too. Exercises by chapter: 00 :func:`check_empirical_ntk`, :func:`check_kernel_predictor`;
00a :func:`check_linear_worst_case`; 00b :func:`check_kip_loss`; 01 :func:`check_kernel_attack`;
02 :func:`check_eigenfeatures`; 03 :func:`check_subset_weights`; 04 :func:`check_kernel_distance`;
05 :func:`check_batch_norm`; 06 :func:`check_fgsm`, :func:`check_fgsm_at_step`,
:func:`check_gradient_alignment`.
"""

from __future__ import annotations

import dataclasses
import functools
import traceback
from collections.abc import Callable

import ntknb  # noqa: F401  (compat shim before neural_tangents)

import jax
import jax.numpy as jnp
import numpy as np

from ntknb._compat import x64
from ntknb import adversaries, architectures, attacks, collapse, kernels, kip, metrics, robust_kernels
from ntknb.validation import check_float, check_int

__all__ = [
    "CheckResult",
    "check_batch_norm",
    "check_eigenfeatures",
    "check_empirical_ntk",
    "check_fgsm",
    "check_fgsm_at_step",
    "check_gradient_alignment",
    "check_kernel_attack",
    "check_kernel_distance",
    "check_kernel_predictor",
    "check_kip_loss",
    "check_linear_worst_case",
    "check_subset_weights",
    "fgsm_at_step",
]

#: Relative tolerance of every check (float64 problems: a correct answer is ~1e-12 off).
TOLERANCE = 1e-6


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """The outcome of one ``check_*``: whether the student's function matched the reference
    on every problem, the largest absolute difference seen (``inf`` when it failed to run or
    returned the wrong shape), the tolerance it was held to and a one-line message."""

    name: str
    passed: bool
    max_error: float
    tolerance: float
    n_problems: int
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return self.message

    __repr__ = __str__


class _Mismatch(Exception):
    """The student's output cannot be compared (wrong shape, not numbers)."""


def _check_student(student_fn) -> Callable:
    if not callable(student_fn):
        raise ValueError(f"student_fn must be a callable (your implementation), got {type(student_fn).__name__}")
    return student_fn


def _as_array(value, shape: tuple, what: str) -> np.ndarray:
    """``value`` as a float64 array of ``shape``, or :class:`_Mismatch` saying why not."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise _Mismatch(f"{what} is not an array of numbers ({type(value).__name__}: {err})") from None
    if arr.shape != tuple(shape):
        raise _Mismatch(f"{what} has shape {arr.shape}, expected {tuple(shape)}")
    return arr


def _run_check(name: str, problems, student_fn, n_problems: int, seed: int) -> CheckResult:
    """Compare ``student_fn`` with the reference on ``n_problems`` problems.

    ``problems(key) -> (args, reference, what)``: the arguments of one random problem, the
    reference answer (a float64 array) and what the answer is called in messages."""
    student_fn = _check_student(student_fn)
    n_problems = check_int("n_problems", n_problems, min=1)
    seed = check_int("seed", seed)
    worst, tol = 0.0, 0.0
    with x64():
        for key in jax.random.split(jax.random.PRNGKey(seed), n_problems):
            args, reference, what = problems(key)
            reference = np.asarray(reference, dtype=np.float64)
            tol = max(tol, TOLERANCE * max(1.0, float(np.max(np.abs(reference), initial=0.0))))
            try:
                answer = _as_array(student_fn(*args), reference.shape, f"your {what}")
            except _Mismatch as err:
                return _result(name, False, np.inf, tol, n_problems, str(err))
            except Exception as err:  # noqa: BLE001 - the student's error is the message
                where = traceback.extract_tb(err.__traceback__)[-1]
                return _result(name, False, np.inf, tol, n_problems,
                               f"your function raised {type(err).__name__}: {err} (line {where.lineno})")
            worst = max(worst, float(np.max(np.abs(answer - reference), initial=0.0)))
    passed = bool(worst <= tol)
    return _result(name, passed, worst, tol, n_problems, "" if passed else "differs from the reference")


def _result(name, passed, worst, tol, n_problems, why) -> CheckResult:
    verdict = "PASS" if passed else "FAIL"
    text = f"{verdict} {name}: largest error {worst:.3g} over {n_problems} random problems (tolerance {tol:.3g})"
    if why:
        text += f": {why}"
    return CheckResult(name, passed, float(worst), float(tol), n_problems, text)


# --------------------------------------------------------------------------- random problems


def _images(key, n: int, shape=(2, 2, 1)):
    """``(n, *shape)`` float64 images in [0.05, 0.95] (inside [0, 1], away from the clip)."""
    return jax.random.uniform(key, (n, *shape), jnp.float64, 0.05, 0.95)


def _pm1(key, n: int):
    """``(n, 1)`` random ±1 labels."""
    return jnp.where(jax.random.bernoulli(key, 0.5, (n, 1)), 1.0, -1.0)


def _centred_one_hot(key, n: int, k: int):
    """``(n, k)`` centred one-hot labels (one_hot - 1/k) of random classes."""
    return jax.nn.one_hot(jax.random.randint(key, (n,), 0, k), k, dtype=jnp.float64) - 1.0 / k


def _network(key, out_dim: int, width: int = 16):
    """A small stax ReLU network (:func:`ntknb.architectures.fully_connected`, depth 2) and its
    float64 parameters for inputs of shape ``(n, 2, 2, 1)``."""
    arch = architectures.fully_connected(depth=2, width=width, out_dim=out_dim)
    return arch, arch.init(key, (1, 2, 2, 1))


def _psd_gram(key, n: int, m: int):
    """A well-conditioned NTK Gram matrix ``(n, n)`` and test rows ``(m, n)`` of the
    infinite-width kernel of a fully connected net on random images."""
    arch = architectures.fully_connected(depth=1, width=8)
    x = _images(key, n + m)
    k = np.asarray(arch.kernel_fn(x, None, "ntk"))
    return k[:n, :n], k[n:, :n]


# --------------------------------------------------------------------------- chapter 00


def check_empirical_ntk(student_fn: Callable, n_problems: int = 3, seed: int = 0) -> CheckResult:
    """Chapter 00: the empirical NTK of a finite network (``tsilivis2022ntk`` Eq. 6).

    ``student_fn(apply_fn, params, x1, x2) -> (n1, n2)``: ``Theta_hat(x1, x2) = J(x1) J(x2)^T``,
    the Jacobians taken with respect to all parameters, averaged over the ``k`` outputs
    (``(1/k) sum_j J_j(x1) J_j(x2)^T``). ``apply_fn(params, x) -> (n, k)`` is a stax network.
    Reference: :func:`ntknb.kernels.empirical_ntk`.
    """
    def problem(key):
        k_net, k1, k2 = jax.random.split(key, 3)
        arch, params = _network(k_net, 2)
        x1, x2 = _images(k1, 4), _images(k2, 3)
        ref = kernels.empirical_ntk(arch.apply_fn, params, x1, x2, batch_size=None)
        return (arch.apply_fn, params, x1, x2), ref, "kernel"

    return _run_check("check_empirical_ntk", problem, student_fn, n_problems, seed)


def check_kernel_predictor(student_fn: Callable, n_problems: int = 3, seed: int = 0) -> CheckResult:
    """Chapter 00: the kernel predictor ``f_t`` of gradient flow (``tsilivis2022ntk`` Eq. 7).

    ``student_fn(k_train_train, k_test_train, y_train, t) -> (m, k)``:
    ``f_t(x) = Theta(x, X) Theta^{-1} (I - exp(-Theta t / N)) Y`` with ``N = n k`` (the loss is
    ``1/2 mean((f - y)^2)`` over all entries). Shapes: ``(n, n)``, ``(m, n)``, ``(n, k)``, a
    float ``t > 0``. Reference: :meth:`ntknb.kernels.KernelPredictor.predict`.
    """
    def problem(key):
        k_gram, k_y, k_t = jax.random.split(key, 3)
        k_tt, k_st = _psd_gram(k_gram, 6, 3)
        y = _centred_one_hot(k_y, 6, 3)
        t = float(jax.random.uniform(k_t, (), jnp.float64, 1.0, 50.0))
        ref = kernels.KernelPredictor.fit(k_tt, y, dtype=np.float64).predict(k_st, t)
        return (k_tt, k_st, np.asarray(y), t), ref, "predictions"

    return _run_check("check_kernel_predictor", problem, student_fn, n_problems, seed)


# --------------------------------------------------------------------------- chapter 00a


def check_linear_worst_case(student_fn: Callable, n_problems: int = 3, seed: int = 0) -> CheckResult:
    """Chapter 00a: the worst l-infinity perturbation of a linear classifier (notes Eq. 28).

    ``student_fn(w, b, x, y, eps) -> (n, d)``: for ``f(x) = x w + b`` (``w: (d,)``, a float ``b``),
    inputs ``x: (n, d)`` and labels ``y: (n,)`` in {-1, +1}, the points of the ball
    ``|x' - x|_inf <= eps`` with the smallest margin ``y f(x')`` (no pixel range). The
    reference is FGSM (:func:`ntknb.attacks.fgsm`, ``clip=None``) on the logistic loss, which is
    exact for a linear model.
    """
    def problem(key):
        k_w, k_b, k_x, k_y, k_e = jax.random.split(key, 5)
        d = 7
        w, b = jax.random.normal(k_w, (d,), jnp.float64), float(jax.random.normal(k_b, ()))
        x, y = jax.random.normal(k_x, (5, d), jnp.float64), _pm1(k_y, 5)
        eps = float(jax.random.uniform(k_e, (), jnp.float64, 0.01, 0.5))
        ref = attacks.fgsm(_LinearLoss(w, b), x, y, eps, clip=None)
        return (np.asarray(w), b, np.asarray(x), np.asarray(y[:, 0]), eps), ref, "perturbed inputs"

    return _run_check("check_linear_worst_case", problem, student_fn, n_problems, seed)


@dataclasses.dataclass(frozen=True, eq=False)
class _LinearLoss:
    """Per-example logistic loss of ``f(x) = x w + b`` (a hashable loss for :func:`attacks.fgsm`)."""

    w: jnp.ndarray
    b: float

    def __call__(self, x, y):
        return attacks.binary_cross_entropy_pm1((x @ self.w + self.b)[:, None], y)


# --------------------------------------------------------------------------- chapter 00b


def check_kip_loss(student_fn: Callable, n_problems: int = 3, seed: int = 0) -> CheckResult:
    """Chapter 00b: the KIP loss (notes Eq. 27 with a ridge; ``nguyen2021dataset``).

    ``student_fn(kernel_fn, x_support, y_support, x_target, y_target, reg) -> float``:
    ``1/2 mean((K_TS (K_SS + reg tr(K_SS)/S I)^-1 Y_S - Y_T)^2)`` over all entries of ``Y_T``, where
    ``kernel_fn(x1, x2, "ntk")`` gives ``K(x1, x2)`` and ``S`` is the number of support points.
    Reference: :func:`ntknb.kip.kip_loss`.
    """
    arch = architectures.fully_connected(depth=1, width=8, out_dim=3)

    def problem(key):
        k_xs, k_ys, k_xt, k_yt, k_r = jax.random.split(key, 5)
        xs, ys = _images(k_xs, 4), _centred_one_hot(k_ys, 4, 3)
        xt, yt = _images(k_xt, 6), _centred_one_hot(k_yt, 6, 3)
        reg = float(jax.random.uniform(k_r, (), jnp.float64, 1e-3, 1e-1))
        ref = kip.kip_loss(arch.kernel_fn, xs, ys, xt, yt, reg)
        return (arch.kernel_fn, xs, ys, xt, yt, reg), ref, "loss"

    return _run_check("check_kip_loss", problem, student_fn, n_problems, seed)


# --------------------------------------------------------------------------- chapter 01


def check_kernel_attack(student_fn: Callable, n_problems: int = 3, seed: int = 0) -> CheckResult:
    """Chapter 01: the kernel (training-free) FGSM attack (``tsilivis2022ntk`` Eq. 8).

    ``student_fn(kernel_fn, x_train, alpha, x, y, eps) -> x_adv``: with the kernel predictor
    ``f(x) = K(x, X) alpha`` (``kernel_fn(x1, x2, "ntk")``, ``alpha: (n, 1)``) and labels
    ``y: (m, 1)`` in {-1, +1}, ``x_adv = clip(x - eps y sign(grad_x f(x)), 0, 1)``, same shape
    as ``x`` (images in [0, 1]). Reference: :func:`ntknb.attacks.kernel_fgsm` on
    :func:`ntknb.kernels.make_predict_fn`.
    """
    arch = architectures.fully_connected(depth=1, width=8)

    def problem(key):
        k_x, k_a, k_t, k_y, k_e = jax.random.split(key, 5)
        x_train, alpha = _images(k_x, 6), jax.random.normal(k_a, (6, 1), jnp.float64)
        x, y = _images(k_t, 4), _pm1(k_y, 4)
        eps = float(jax.random.uniform(k_e, (), jnp.float64, 0.01, 0.2))
        ref = attacks.kernel_fgsm(kernels.make_predict_fn(arch.kernel_fn, x_train, alpha), x, y, eps)
        return (arch.kernel_fn, x_train, alpha, x, y, eps), ref, "adversarial inputs"

    return _run_check("check_kernel_attack", problem, student_fn, n_problems, seed)


# --------------------------------------------------------------------------- chapter 02


def check_eigenfeatures(student_fn: Callable, n_problems: int = 3, seed: int = 0) -> CheckResult:
    """Chapter 02: the eigen-features of the trained kernel machine (``tsilivis2022ntk`` Eq. 9).

    ``student_fn(k_train_train, k_test_train, y_train) -> (n, m, k)``: with
    ``Theta(X, X) = sum_i lambda_i v_i v_i^T`` (eigenvalues in decreasing order), entry ``i`` is
    ``f^(i)(x) = lambda_i^{-1} Theta(x, X) v_i v_i^T Y`` on the ``m`` test points; summed over
    ``i`` it is ``f_inf(x) = Theta(x, X) Theta^{-1} Y``. Reference:
    :meth:`ntknb.kernels.KernelPredictor.eigen_features`.
    """
    def problem(key):
        k_gram, k_y = jax.random.split(key)
        k_tt, k_st = _psd_gram(k_gram, 6, 3)
        y = _centred_one_hot(k_y, 6, 2)
        ref = kernels.KernelPredictor.fit(k_tt, y, dtype=np.float64).eigen_features(k_st)
        return (k_tt, k_st, np.asarray(y)), ref, "eigen-feature outputs"

    return _run_check("check_eigenfeatures", problem, student_fn, n_problems, seed)


# --------------------------------------------------------------------------- chapter 03


def check_subset_weights(student_fn: Callable, n_problems: int = 3, seed: int = 0) -> CheckResult:
    """Chapter 03: the dual weights of a machine made of a subset of eigen-features
    (``tsilivis2022ntk`` Eq. 9; Sec. 5's robust-only kernels).

    ``student_fn(k_train_train, y_train, indices) -> (n, k)``: ``alpha_S = sum_{i in S} v_i c_i^T``
    with ``c_i = lambda_i^{-1} v_i^T Y``, ``S = indices`` (positions in the decreasing order of
    the eigenvalues), so that ``f_S(x) = Theta(x, X) alpha_S = sum_{i in S} f^(i)(x)``.
    Reference: :func:`ntknb.robust_kernels.subset_weights`.
    """
    def problem(key):
        k_gram, k_y, k_s = jax.random.split(key, 3)
        k_tt, _ = _psd_gram(k_gram, 7, 1)
        y = _centred_one_hot(k_y, 7, 2)
        idx = np.sort(np.asarray(jax.random.choice(k_s, 7, (3,), replace=False)))
        ref = robust_kernels.subset_weights(kernels.KernelPredictor.fit(k_tt, y, dtype=np.float64), idx)
        return (k_tt, np.asarray(y), idx), ref, "dual weights"

    return _run_check("check_subset_weights", problem, student_fn, n_problems, seed)


# --------------------------------------------------------------------------- chapter 04


def check_kernel_distance(student_fn: Callable, n_problems: int = 4, seed: int = 0) -> CheckResult:
    """Chapter 04: the scale-invariant kernel distance (``tsilivis2022ntk`` Sec. 5; Loo et al.).

    ``student_fn(K1, K2) -> float``: ``1 - Tr(K1 K2^T) / (|K1|_F |K2|_F)``; 0 for kernels equal
    up to a positive factor (every other problem compares a kernel with a scaled copy of
    itself). Reference: :func:`ntknb.metrics.kernel_distance`.
    """
    def problem(key):
        k1, k2, k_c, k_s = jax.random.split(key, 4)
        a, b = (np.asarray(jax.random.normal(k, (5, 5), jnp.float64)) for k in (k1, k2))
        c = float(jax.random.uniform(k_c, (), jnp.float64, 0.1, 10.0))
        K1 = a @ a.T
        K2 = c * K1 if bool(jax.random.bernoulli(k_s)) else b @ b.T + K1
        return (K1, K2), metrics.kernel_distance(K1, K2), "distance"

    return _run_check("check_kernel_distance", problem, student_fn, n_problems, seed)


# --------------------------------------------------------------------------- chapter 05


def check_batch_norm(student_fn: Callable, n_problems: int = 3, seed: int = 0) -> CheckResult:
    """Chapter 05: a BatchNorm layer with and without its running buffers (``ioffe2015batch``).

    ``student_fn(x, scale, bias, running_mean, running_var, use_buffers) -> y``: ``x: (n, H, W, C)``,
    the others ``(C,)``; ``y = scale (x - mu) / sqrt(var + 1e-5) + bias`` per channel, where
    ``(mu, var)`` are the running buffers when ``use_buffers`` ("w buffer", evaluation as usual)
    and otherwise the batch's own mean and (biased) variance over ``n, H, W`` ("w/o buffer":
    every example's output depends on the whole batch). Reference: the layer of
    :mod:`ntknb.models`, ``flax.linen.BatchNorm(momentum=0.9)`` (epsilon 1e-5).
    """
    import flax.linen as nn

    layer = {flag: nn.BatchNorm(use_running_average=flag, momentum=0.9) for flag in (True, False)}

    def problem(key):
        k_x, k_s, k_b, k_m, k_v, k_f = jax.random.split(key, 6)
        x = 2.0 + jax.random.normal(k_x, (4, 3, 3, 2), jnp.float64)
        scale = jax.random.uniform(k_s, (2,), jnp.float64, 0.5, 2.0)
        bias, mean = jax.random.normal(k_b, (2,), jnp.float64), jax.random.normal(k_m, (2,), jnp.float64)
        var = jax.random.uniform(k_v, (2,), jnp.float64, 0.5, 2.0)
        flag = bool(jax.random.bernoulli(k_f))
        variables = {"params": {"scale": scale, "bias": bias}, "batch_stats": {"mean": mean, "var": var}}
        ref, _ = layer[flag].apply(variables, x, mutable=["batch_stats"])
        return (x, scale, bias, mean, var, flag), ref, "layer output"

    return _run_check("check_batch_norm", problem, student_fn, n_problems, seed)


# --------------------------------------------------------------------------- chapter 06


def check_fgsm(student_fn: Callable, n_problems: int = 3, seed: int = 0) -> CheckResult:
    """Chapter 06: the FGSM attack (``goodfellow2015explaining``) on any differentiable loss.

    ``student_fn(loss_fn, x, y, eps) -> x_adv``: ``loss_fn(x, y) -> (n,)`` is a per-example
    loss; ``x_adv = clip(x + eps sign(grad_x sum loss_fn(x, y)), 0, 1)`` (images in [0, 1]).
    The problems attack a small network's cross-entropy (centred one-hot labels). Reference:
    :func:`ntknb.attacks.fgsm`.
    """
    def problem(key):
        k_net, k_x, k_y, k_e = jax.random.split(key, 4)
        arch, params = _network(k_net, 3)
        loss_fn = attacks.predictor_loss(functools.partial(arch.apply_fn, params), "ce")
        x, y = _images(k_x, 5), _centred_one_hot(k_y, 5, 3)
        eps = float(jax.random.uniform(k_e, (), jnp.float64, 0.01, 0.2))
        return (loss_fn, x, y, eps), attacks.fgsm(loss_fn, x, y, eps), "adversarial inputs"

    return _run_check("check_fgsm", problem, student_fn, n_problems, seed)


def fgsm_at_step(apply_fn: Callable, params, x, y, eps: float, lr: float):
    """One step of FGSM adversarial training (``wong2020fast`` without the random start) with
    plain gradient descent: ``x_adv = FGSM(x)`` of the current network's cross-entropy
    (:class:`ntknb.adversaries.FGSM`, projected on the eps-ball and [0, 1]), then
    ``params - lr * grad_params mean CE(apply_fn(params, x_adv), y)``.

    ``apply_fn(params, x) -> (n, k)`` logits (a stax network), ``y: (n, k)`` centred one-hot.
    This is the update of :func:`ntknb.training.fit`'s ``"fgsm"`` mode for a network without
    state, without augmentation and with SGD. Returns the new parameters (same pytree).
    """
    eps = check_float("eps", eps, min=0.0, min_inclusive=True)
    lr = check_float("lr", lr, min=0.0)

    attack_loss = attacks.predictor_loss(functools.partial(apply_fn, params), "ce")  # the current network
    x_adv = adversaries.FGSM(eps)(attack_loss, x, y, None)
    grads = jax.grad(lambda p: jnp.mean(attacks.cross_entropy(apply_fn(p, x_adv), y)))(params)
    return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)


def check_fgsm_at_step(student_fn: Callable, n_problems: int = 3, seed: int = 0) -> CheckResult:
    """Chapter 06: one FGSM adversarial-training step (the method of the chapter).

    ``student_fn(apply_fn, params, x, y, eps, lr) -> new_params``: attack the current network
    with FGSM (cross-entropy, radius ``eps``, clipped to [0, 1]), then take one gradient-descent
    step of size ``lr`` on the mean cross-entropy at the adversarial points. ``apply_fn(params, x)
    -> (n, k)``; ``y: (n, k)`` centred one-hot; ``params`` a pytree (return the same structure).
    Reference: :func:`fgsm_at_step`; the error is the largest difference over all parameters.
    """
    def problem(key):
        k_net, k_x, k_y, k_e = jax.random.split(key, 4)
        arch, params = _network(k_net, 3)
        x, y = _images(k_x, 5), _centred_one_hot(k_y, 5, 3)
        eps = float(jax.random.uniform(k_e, (), jnp.float64, 0.01, 0.2))
        ref = _flat(fgsm_at_step(arch.apply_fn, params, x, y, eps, 0.5))
        return (arch.apply_fn, params, x, y, eps, 0.5), ref, "new parameters"

    _check_student(student_fn)

    def flat_student(*args):
        new = student_fn(*args)
        if jax.tree_util.tree_structure(new) != jax.tree_util.tree_structure(args[1]):
            raise _Mismatch("your new parameters do not have the structure of `params`")
        return _flat(new)

    return _run_check("check_fgsm_at_step", problem, flat_student, n_problems, seed)


def check_gradient_alignment(student_fn: Callable, n_problems: int = 3, seed: int = 0) -> CheckResult:
    """Chapter 06: the gradient alignment of ``andriushchenko2020understanding`` (Sec. 4), the
    chapter's per-epoch sign of catastrophic overfitting.

    ``student_fn(loss_fn, x, y, eta) -> (n,)``: per example, the cosine between the input gradient
    of the loss at ``x`` and at the noisy point ``clip(x + eta, 0, 1)``; ``loss_fn(x, y) -> (n,)``
    is a per-example loss, ``eta`` has the shape of ``x``. The problems use a small network's
    cross-entropy and ``eta ~ U([-eps, eps])``. Reference: :func:`ntknb.collapse.gradient_alignment_at`.
    """
    def problem(key):
        k_net, k_x, k_y, k_e = jax.random.split(key, 4)
        arch, params = _network(k_net, 3)
        loss_fn = attacks.predictor_loss(functools.partial(arch.apply_fn, params), "ce")
        x, y = _images(k_x, 5), _centred_one_hot(k_y, 5, 3)
        eta = jax.random.uniform(k_e, x.shape, jnp.float64, -0.1, 0.1)
        return (loss_fn, x, y, eta), collapse.gradient_alignment_at(loss_fn, x, y, eta), "cosines"

    return _run_check("check_gradient_alignment", problem, student_fn, n_problems, seed)


def _flat(tree) -> np.ndarray:
    """All leaves of a pytree, flattened into one float64 vector."""
    return np.concatenate([np.ravel(np.asarray(leaf, dtype=np.float64)) for leaf in jax.tree_util.tree_leaves(tree)])
