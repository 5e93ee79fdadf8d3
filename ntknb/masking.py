"""Gradient-masking checks for a robustness evaluation (``carlini2019evaluating``:
Carlini et al., "On evaluating adversarial robustness", 2019, Sec. 5 checklist).

A model whose gradients are masked (saturated, shattered, flat around the data) looks robust
to gradient attacks without being robust. :func:`gradient_masking_checks` runs the sanity
checks of that checklist on ``predict`` at radius ``eps`` and returns a
:class:`MaskingReport`:

1. **Robust accuracy falls with eps** (non-increasing along ``eps_grid``, within ``tol``)
   **and reaches about 0 at a large eps** (``<= zero_tol`` at ``large_eps``; with
   ``large_eps = 1`` every input in ``[0, 1]^d`` is reachable, so only a constant classifier
   could stay robust).
2. **Iterative attacks are at least as strong as single-step ones**: the suite's robust
   accuracy (:func:`ntknb.evaluation.robust_evaluation`) is at most FGSM's
   (:func:`ntknb.attacks.fgsm`, cross-entropy) plus ``tol``.
3. **White-box is at least as strong as transfer** from a surrogate model (when one is given):
   the suite's robust accuracy is at most the accuracy on the surrogate's adversarial points
   (the suite run against the surrogate) plus ``tol``.
4. **Few zero input gradients**: the fraction of examples whose input gradient of the
   cross-entropy at the clean point is exactly zero is at most ``max_zero_grad``.

Every accuracy uses the suite's definition of correct (``margin > 0``) and labels
(:func:`ntknb.evaluation.robust_evaluation`). ``passed`` is the conjunction of the checks run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ntknb import evaluation as _ev
from ntknb.attacks import cross_entropy, fgsm
from ntknb.validation import check_float, check_sequence

__all__ = ["MaskingReport", "gradient_masking_checks"]


@dataclasses.dataclass(frozen=True)
class MaskingReport:
    """Result of :func:`gradient_masking_checks` (fields in the order of the checks).

    Attributes:
      eps: the radius under evaluation; n: number of examples.
      eps_grid, accuracy_vs_eps: the suite's robust accuracy along increasing radii.
      falls_with_eps: ``accuracy_vs_eps`` is non-increasing within ``tol``.
      large_eps, accuracy_large_eps, reaches_zero: robust accuracy at ``large_eps`` and
        whether it is ``<= zero_tol``.
      single_step_accuracy, iterative_accuracy, iterative_stronger: FGSM vs the suite at ``eps``.
      transfer_accuracy, whitebox_stronger: accuracy on the surrogate's adversarial points and
        whether the white-box suite is at least as strong (``None`` without a surrogate).
      zero_grad_fraction, zero_grad_ok: fraction of examples with an all-zero input gradient.
      passed: every check that ran passed.
      tol, zero_tol, max_zero_grad: the tolerances used.
    """

    eps: float
    n: int
    eps_grid: tuple
    accuracy_vs_eps: tuple
    falls_with_eps: bool
    large_eps: float
    accuracy_large_eps: float
    reaches_zero: bool
    single_step_accuracy: float
    iterative_accuracy: float
    iterative_stronger: bool
    transfer_accuracy: Optional[float]
    whitebox_stronger: Optional[bool]
    zero_grad_fraction: float
    zero_grad_ok: bool
    tol: float
    zero_tol: float
    max_zero_grad: float

    @property
    def passed(self) -> bool:
        checks = [self.falls_with_eps, self.reaches_zero, self.iterative_stronger, self.zero_grad_ok]
        if self.whitebox_stronger is not None:
            checks.append(self.whitebox_stronger)
        return all(checks)

    @property
    def text(self) -> str:
        """A short account of each check, one line each."""
        mark = {True: "ok  ", False: "FAIL", None: "n/a "}
        curve = ", ".join(f"{e:.3g}: {a:.3f}" for e, a in zip(self.eps_grid, self.accuracy_vs_eps))
        lines = [
            f"gradient-masking checks at eps = {self.eps:.4g} (n = {self.n}): "
            f"{'passed' if self.passed else 'FAILED'}",
            f"[{mark[self.falls_with_eps]}] robust accuracy falls with eps ({curve})",
            f"[{mark[self.reaches_zero]}] robust accuracy at eps = {self.large_eps:.3g} is "
            f"{self.accuracy_large_eps:.3f} (must be <= {self.zero_tol:.3g})",
            f"[{mark[self.iterative_stronger]}] iterative suite {self.iterative_accuracy:.3f} <= "
            f"single-step FGSM {self.single_step_accuracy:.3f} (+{self.tol:.3g})",
        ]
        if self.transfer_accuracy is None:
            lines.append(f"[{mark[None]}] white-box vs transfer: no surrogate given")
        else:
            lines.append(f"[{mark[self.whitebox_stronger]}] white-box {self.iterative_accuracy:.3f} <= "
                         f"transfer from the surrogate {self.transfer_accuracy:.3f} (+{self.tol:.3g})")
        lines.append(f"[{mark[self.zero_grad_ok]}] examples with an all-zero input gradient: "
                     f"{self.zero_grad_fraction:.3f} (must be <= {self.max_zero_grad:.3g})")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text

    def to_json(self) -> dict:
        """Plain JSON values (``passed`` included)."""
        out = dataclasses.asdict(self)
        out["eps_grid"] = [float(e) for e in self.eps_grid]
        out["accuracy_vs_eps"] = [float(a) for a in self.accuracy_vs_eps]
        out["passed"] = self.passed
        return out


class _CE:
    """Cross-entropy of ``predict``'s logits (two-class logits for one output) with integer
    classes, as a hashable per-example loss for :func:`ntknb.attacks.fgsm`; equal for the
    same ``predict`` so FGSM's compilation is reused."""

    __slots__ = ("predict", "binary")

    def __init__(self, predict, binary):
        self.predict, self.binary = predict, binary

    def __call__(self, x, c):
        return cross_entropy(_ev.model_logits(self.predict, self.binary, x), c)

    def __eq__(self, other):
        return isinstance(other, _CE) and other.predict is self.predict and other.binary == self.binary

    def __hash__(self):
        return hash((id(self.predict), self.binary))


def _correct(predict, binary, x, c, batch) -> np.ndarray:
    """``margin > 0`` per example, ``(n,)`` bool, in chunks."""
    return _ev.clean_margins(predict, np.asarray(x), c, binary=binary, batch=batch) > 0


def _zero_grad_impl(loss, x, c):
    """Per example: is the input gradient of the loss exactly zero everywhere? ``(b,)`` bool."""
    g = jax.grad(lambda z: jnp.sum(loss(z, c)))(x)
    return jnp.all(jnp.reshape(g, (g.shape[0], -1)) == 0, axis=1)


_zero_grad_jit = jax.jit(_zero_grad_impl, static_argnames=("loss",))


def gradient_masking_checks(
    predict: Callable,
    x,
    y,
    eps: float,
    *,
    eps_grid: Optional[Sequence[float]] = None,
    large_eps: float = 1.0,
    surrogate: Optional[Callable] = None,
    tol: float = 0.01,
    zero_tol: float = 0.05,
    max_zero_grad: float = 0.01,
    seed: int = 0,
    **suite_kwargs: Any,
) -> MaskingReport:
    """Run the gradient-masking checks of ``carlini2019evaluating`` (module docstring).

    Args:
      predict, x, y, eps: as for :func:`ntknb.evaluation.robust_evaluation`.
      eps_grid: increasing radii for check 1 (default ``(0, eps/4, eps/2, eps, 2 eps)``; ``eps``
        is added if missing).
      large_eps: the radius at which robust accuracy must be about 0 (default 1: all of
        ``[0, 1]^d`` reachable).
      surrogate: optional second model (same inputs and classes) for the transfer check.
      tol: slack of the monotonicity / strength comparisons (accuracy units).
      zero_tol: robust accuracy counted as "about 0" at ``large_eps``.
      max_zero_grad: largest acceptable fraction of examples with an all-zero input gradient.
      seed: seed of the suite's random starts.
      **suite_kwargs: passed to every :func:`~ntknb.evaluation.robust_evaluation` call
        (``n_iter``, ``n_restarts``, ``batch_size``, ...).

    Returns:
      a :class:`MaskingReport`.
    """
    eps = check_float("eps", eps, min=0.0)
    large_eps = check_float("large_eps", large_eps, min=0.0, min_inclusive=False)
    tol = check_float("tol", tol, min=0.0)
    zero_tol = check_float("zero_tol", zero_tol, min=0.0, max=1.0)
    max_zero_grad = check_float("max_zero_grad", max_zero_grad, min=0.0, max=1.0)
    if eps_grid is None:
        eps_grid = [0.0, eps / 4, eps / 2, eps, 2 * eps]
    grid = sorted(set(check_sequence("eps_grid", list(eps_grid), of=float, min_length=1)) | {eps})
    if grid[0] < 0:
        raise ValueError(f"parameter 'eps_grid' must hold radii >= 0; got {list(eps_grid)!r}")
    if surrogate is not None and not callable(surrogate):
        raise ValueError(f"parameter 'surrogate' must be None or callable x -> logits; got {surrogate!r}")

    def suite(model, e):
        return _ev.robust_evaluation(model, x, y, e, seed=seed, **suite_kwargs)

    reports = {e: suite(predict, e) for e in grid}
    main = reports[eps]
    acc = [reports[e].robust_accuracy for e in grid]
    falls = all(b <= a + tol for a, b in zip(acc, acc[1:]))
    acc_large = reports[large_eps].robust_accuracy if large_eps in reports else suite(predict, large_eps).robust_accuracy

    x_np = np.asarray(x)
    if not np.issubdtype(x_np.dtype, np.floating):
        x_np = x_np.astype(np.float32)
    binary = bool(main.settings["binary"])
    n = x_np.shape[0]
    c = _ev.label_classes(y, n, 1 if binary else main.k)
    batch = suite_kwargs.get("batch_size", 256)
    batch = n if batch is None else min(batch, n)
    loss = _CE(predict, binary)
    clean_ok = _correct(predict, binary, x_np, c, batch)

    clip = main.settings.get("clip")
    clip = None if clip is None else tuple(clip)
    x_fgsm = np.asarray(fgsm(loss, x_np, c, eps, clip=clip, batch_size=batch))
    single = float(np.mean(clean_ok & _correct(predict, binary, x_fgsm, c, batch)))
    iterative = main.robust_accuracy

    transfer = whitebox = None
    if surrogate is not None:
        x_sur = suite(surrogate, eps).x_adv
        transfer = float(np.mean(clean_ok & _correct(predict, binary, x_sur, c, batch)))
        whitebox = iterative <= transfer + tol

    zero_rows, = _ev.run_in_chunks(lambda xb, cb: (_zero_grad_jit(loss, xb, cb),), np.arange(n), batch, x_np, c)
    zero = float(np.mean(zero_rows))

    return MaskingReport(
        eps=eps, n=int(x_np.shape[0]), eps_grid=tuple(grid), accuracy_vs_eps=tuple(acc),
        falls_with_eps=falls, large_eps=large_eps, accuracy_large_eps=float(acc_large),
        reaches_zero=acc_large <= zero_tol, single_step_accuracy=single, iterative_accuracy=iterative,
        iterative_stronger=iterative <= single + tol, transfer_accuracy=transfer,
        whitebox_stronger=whitebox, zero_grad_fraction=zero, zero_grad_ok=zero <= max_zero_grad,
        tol=tol, zero_tol=zero_tol, max_zero_grad=max_zero_grad,
    )
