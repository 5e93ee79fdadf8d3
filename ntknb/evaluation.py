"""A standard l-inf robustness evaluation: the worst case, per example, over APGD-CE,
APGD-DLR (with restarts) and PGD with random restarts.

References (bib keys of ``book/references.bib``):

* ``croce2020reliable`` — Croce & Hein, "Reliable evaluation of adversarial robustness with
  an ensemble of diverse parameter-free attacks", ICML 2020. Algorithm 1 (APGD), Sec. 3.1
  (step-size schedule), Eq. (5) (the DLR loss). Their AutoAttack runs APGD-CE and
  APGD-DLR (the latter targeted) plus FAB and Square; this module ports APGD only.
* ``madry2018towards`` — PGD with a uniform random start in the eps-ball.

**APGD** (``croce2020reliable``, Alg. 1), for the loss ``L`` to be *maximised* over the
feasible set ``S = B_inf(x, eps) ∩ [0, 1]^d`` with projection ``P_S``::

    z^{k+1} = P_S(x^k + eta^k sign(grad L(x^k)))
    x^{k+1} = P_S(x^k + a (z^{k+1} - x^k) + (1 - a)(x^k - x^{k-1}))   a = 0.75 (a = 1 at k = 0)

with ``eta^0 = 2 eps`` per example. At the checkpoints ``w_j = ceil(p_j N)``,
``p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``, the step of an
example is halved, and its iterate reset to the best point ``x_max`` found so far, when

1. the loss increased in fewer than ``rho (w_j - w_{j-1})`` of the steps since the last
   checkpoint (``rho = 0.75``), or
2. the step was not halved at the last checkpoint and the best loss has not improved
   since then.

(On a reset the momentum term restarts at zero.) Every random (re)start is a point on the
boundary of the eps-ball, ``x + eps t / ||t||_inf`` with ``t ~ U(-1, 1)^d``, clipped to
``[0, 1]``, as in the reference implementation.

**Usage** (define ``predict`` once and reuse it: it is a static jit argument)::

    predict = functools.partial(model.apply, params)        # flax; or a kernel predictor
    rep = robust_evaluation(predict, x_test, y_test, eps=8 / 255, seed=0)
    rep.robust_accuracy, rep.accuracy_after, rep.robust     # overall, per attack, per example
    rep.interval()                                           # Wilson interval on the n points
    ntknb.stats.paired_comparison(rep.robust, rep_other.robust)   # two models, same points

**Losses.** ``"ce"``: softmax cross-entropy (:func:`ntknb.attacks.cross_entropy`).
``"dlr"`` (``croce2020reliable`` Eq. 5, :func:`dlr_loss`):
``-(z_y - max_{i != y} z_i) / (z_(1) - z_(3) + 1e-12)`` with ``z_(1) >= z_(2) >= ...`` the
sorted logits; it needs ``k >= 3`` classes. **With two classes DLR is undefined**: the suite
then uses the margin loss ``-(z_y - z_other)`` instead (reported as ``"apgd-margin"``). For
two classes the margin is a monotone function of the cross-entropy (``CE = softplus(-margin)``)
and the sign of its gradient is the same, so APGD-margin and APGD-CE take the same steps
and differ only through their random starts: for binary models the suite is effectively
APGD-CE with twice the restarts, plus PGD.

**Binary single-output models.** A ``predict`` returning ``f`` of shape ``(n, 1)`` (the
package's ±1 convention: class ``+1`` iff ``f > 0``) is evaluated as the two-class logits
``[-f/2, f/2]`` (class 0 = label ``-1``, class 1 = label ``+1``); cross-entropy on those is
exactly :func:`ntknb.attacks.binary_cross_entropy_pm1` and the margin is ``y f``. Labels may
then be ±1 (shape ``(n,)`` or ``(n, 1)``) or ``{0, 1}``: both map to class ``y > 0``.

**Correctness** of a prediction is ``margin > 0`` with ``margin = z_y - max_{i != y} z_i``
(ties count as errors; for binary models this is ``y f > 0``, as in
:func:`ntknb.attacks.accuracy`). An example is *robust* when it is classified correctly
and no iterate of any attack (starts included) has ``margin <= 0``. The suite tracks the
smallest margin found per example and the point where it was found (``x_adv``).

**Cost and memory.** Every iteration is one forward and one backward pass of ``predict``
(as for :func:`ntknb.attacks.pgd`); the loop is a jitted ``jax.lax.fori_loop`` with
``predict`` a *static* argument (pass the same function object to reuse compilations).
Examples are processed in chunks of ``batch_size`` (padded to ``batch_size / 4^j``, at
least 64 rows, so few shapes are compiled; loss and schedule are dynamic arguments, so APGD-CE, APGD-DLR and
PGD with ``pgd_steps == n_iter`` share one compilation); by default (``skip_broken=True``) each attack
and restart only runs on the examples that are still robust, as AutoAttack does.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ntknb.attacks import check_in_clip, cross_entropy
from ntknb.attacks import pgd_step_size as pgd_step_size_rule
from ntknb.validation import check_bool, check_clip, check_float, check_int, check_sequence

__all__ = [
    "ATTACKS",
    "dlr_loss",
    "margin",
    "two_class_logits",
    "apgd_checkpoints",
    "model_logits",
    "label_classes",
    "run_in_chunks",
    "clean_margins",
    "RobustReport",
    "robust_evaluation",
    "robust_accuracy",
]

#: The attacks of the suite, in the order they run.
ATTACKS = ("apgd-ce", "apgd-dlr", "pgd")


# ---------------------------------------------------------------------------- losses


def two_class_logits(f: jnp.ndarray) -> jnp.ndarray:
    """Single-output logits ``f`` of shape ``(n, 1)`` as two-class logits ``[-f/2, f/2]``,
    shape ``(n, 2)``: ``softmax`` of them is ``[sigmoid(-f), sigmoid(f)]``, class 1 is ``f > 0``."""
    f = jnp.asarray(f)
    return jnp.concatenate([-0.5 * f, 0.5 * f], axis=1)


def margin(logits: jnp.ndarray, c: jnp.ndarray) -> jnp.ndarray:
    """``z_c - max_{i != c} z_i`` per example; ``logits (n, k)`` with ``k >= 2``, ``c (n,)``
    integer classes. Shape ``(n,)``; ``> 0`` iff the prediction is (strictly) correct."""
    k = logits.shape[1]
    own = jnp.take_along_axis(logits, c[:, None], axis=1)[:, 0]
    other = jnp.max(jnp.where(jax.nn.one_hot(c, k, dtype=bool), -jnp.inf, logits), axis=1)
    return own - other


def dlr_loss(logits: jnp.ndarray, c: jnp.ndarray) -> jnp.ndarray:
    """Difference-of-logits-ratio loss, ``croce2020reliable`` Eq. (5), to be maximised:
    ``-(z_c - max_{i != c} z_i) / (z_(1) - z_(3) + 1e-12)``, shape ``(n,)``.

    Invariant to shifting and (positively) rescaling the logits. Requires ``k >= 3``
    classes (``logits (n, k)``, ``c (n,)`` integer); raises ``ValueError`` otherwise."""
    k = logits.shape[1]
    if k < 3:
        raise ValueError(f"dlr_loss needs logits with k >= 3 classes; got k = {k} (use the margin loss)")
    z = jnp.sort(logits, axis=1)
    return -margin(logits, c) / (z[:, -1] - z[:, -3] + 1e-12)


#: Loss indices of the jitted loop (a dynamic argument: one compilation serves every attack).
_LOSS_INDEX = {"ce": 0, "dlr": 1, "margin": 2}


def _loss(index, logits: jnp.ndarray, c: jnp.ndarray) -> jnp.ndarray:
    """Loss ``index`` of :data:`_LOSS_INDEX` (a traced integer); DLR falls back to the
    margin loss for ``k < 3`` classes (it is undefined there). All three are computed on the
    ``(b, k)`` logits (negligible next to ``predict``) and one is selected: one graph, so one
    quick compilation, and the backward pass through ``predict`` runs once."""
    neg_margin = -margin(logits, c)
    dlr = dlr_loss(logits, c) if logits.shape[1] >= 3 else neg_margin
    return jnp.where(index == 0, cross_entropy(logits, c), jnp.where(index == 1, dlr, neg_margin))


# -------------------------------------------------------------------------- schedule


def apgd_checkpoints(n_iter: int) -> list[int]:
    """The checkpoints ``0 = w_0 < w_1 < ... <= n_iter`` of APGD (``croce2020reliable``
    Sec. 3.1): ``w_j = ceil(p_j n_iter)``, ``p_0 = 0``, ``p_1 = 0.22``,
    ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``; duplicates dropped."""
    n_iter = check_int("n_iter", n_iter, min=1)
    p = [0.0, 0.22]
    while p[-1] < 1.0:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    w = []
    for pj in p:
        wj = math.ceil(round(pj * n_iter, 9))
        if wj > n_iter:
            break
        if not w or wj > w[-1]:
            w.append(wj)
    return w


def _windows(n_iter: int, checkpoints: Sequence[int]) -> np.ndarray:
    """``window[i] = w_j - w_{j-1}`` if iteration ``i`` (0-based, producing ``x^{i+1}``)
    ends at checkpoint ``w_j``, else 0."""
    window = np.zeros(n_iter, np.int32)
    for prev, w in zip(checkpoints[:-1], checkpoints[1:]):
        window[w - 1] = w - prev
    return window


# ---------------------------------------------------------------------------- kernel


def model_logits(predict: Callable, binary: bool, x, params=None) -> jnp.ndarray:
    """The logits the suite attacks: ``predict(x)`` (or ``predict(params, x)``), ``(b, k)``; for a
    single-output model (``binary``) the two-class logits :func:`two_class_logits` of its ``(b, 1)``
    output. Traceable."""
    z = predict(x) if params is None else predict(params, x)
    return two_class_logits(z) if binary else z


def _bshape(v, x):
    return jnp.reshape(v, (v.shape[0],) + (1,) * (x.ndim - 1))


def _ascent_impl(predict, binary, loss, x, c, eps, x0, step0, momentum, rho, window, clip, params=None):
    """One run of APGD (checkpoints in ``window``) or of PGD (all-zero ``window``, momentum
    1), ``len(window)`` iterations: returns the smallest margin over all iterates ``(b,)``
    and where it was found ``(b, ...)``. ``loss``: an index of :data:`_LOSS_INDEX`."""

    def evaluate(xa):
        def total(x_):
            z = model_logits(predict, binary, x_, params)
            l = _loss(loss, z, c)
            return jnp.sum(l), (l, margin(z, c))

        (_, (l, m)), g = jax.value_and_grad(total, has_aux=True)(xa)
        return l, m, g

    n_iter = window.shape[0]
    # the feasible box B_inf(x, eps) ∩ clip, computed once: the projection of
    # ntknb.attacks.project_linf as a single clip (about 3x faster per iteration on CPU
    # than projecting with x - eps, x + eps and clip inside the loop)
    lo, hi = x - eps, x + eps
    if clip is not None:
        lo, hi = jnp.maximum(lo, clip[0]), jnp.minimum(hi, clip[1])
    proj = lambda z: jnp.clip(z, lo, hi)  # noqa: E731
    x0 = proj(x0)
    l0, m0, g0 = evaluate(x0)
    b = x.shape[0]
    state = dict(
        x=x0, x_prev=x0, g=g0, l=l0,
        x_best=x0, g_best=g0, l_best=l0,
        eta=jnp.full((b,), step0, x.dtype),
        n_up=jnp.zeros((b,), jnp.int32),
        l_best_check=l0, halved_check=jnp.zeros((b,), bool),
        m_min=m0, x_worst=x0,
    )

    def body(i, s):
        a = jnp.where(i == 0, 1.0, momentum).astype(x.dtype)
        xk = s["x"]
        z = proj(xk + _bshape(s["eta"], x) * jnp.sign(s["g"]))
        x_new = proj(xk + a * (z - xk) + (1 - a) * (xk - s["x_prev"]))
        l, m, g = evaluate(x_new)
        worse = m < s["m_min"]
        better = l > s["l_best"]
        n_up = s["n_up"] + (l > s["l"]).astype(jnp.int32)
        x_best = jnp.where(_bshape(better, x), x_new, s["x_best"])
        g_best = jnp.where(_bshape(better, x), g, s["g_best"])
        l_best = jnp.where(better, l, s["l_best"])
        # at a checkpoint (window[i] > 0): halve where condition 1 (too few increases) or 2
        # (no halving at the last checkpoint and no improvement since) holds
        w = window[i]
        chk = w > 0
        cond1 = n_up.astype(x.dtype) < rho * w.astype(x.dtype)
        cond2 = ~s["halved_check"] & (l_best <= s["l_best_check"])
        halve = chk & (cond1 | cond2)
        hb = _bshape(halve, x)
        return dict(
            x=jnp.where(hb, x_best, x_new),
            x_prev=jnp.where(hb, x_best, xk),
            g=jnp.where(hb, g_best, g),
            l=jnp.where(halve, l_best, l),
            x_best=x_best, g_best=g_best, l_best=l_best,
            eta=jnp.where(halve, 0.5 * s["eta"], s["eta"]),
            n_up=jnp.where(chk, 0, n_up),
            l_best_check=jnp.where(chk, l_best, s["l_best_check"]),
            halved_check=jnp.where(chk, halve, s["halved_check"]),
            m_min=jnp.where(worse, m, s["m_min"]),
            x_worst=jnp.where(_bshape(worse, x), x_new, s["x_worst"]),
        )

    s = jax.lax.fori_loop(0, n_iter, body, state)
    return s["m_min"], s["x_worst"]


_ascent_jit = jax.jit(_ascent_impl, static_argnames=("predict", "binary", "clip"))


def _clean_margin_impl(predict, binary, x, c, params=None):
    return margin(model_logits(predict, binary, x, params), c)


_clean_margin_jit = jax.jit(_clean_margin_impl, static_argnames=("predict", "binary"))


# ---------------------------------------------------------------------------- report


@dataclasses.dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class RobustReport:
    """Result of :func:`robust_evaluation` on ``n`` examples at radius ``eps``.

    Attributes:
      eps: the l-inf radius.
      n: number of examples.
      k: number of classes (2 for a single-output model).
      clean_accuracy, robust_accuracy: fractions of the ``n`` examples.
      attacks: the attacks run, in order (``"apgd-dlr"`` reads ``"apgd-margin"`` for ``k = 2``).
      accuracy_after: robust accuracy after each attack, cumulative (worst case over that
        attack and all before it), ``{attack: float}``.
      attack_accuracy: each attack's own robust accuracy (with ``skip_broken=False``; with
        ``skip_broken=True`` later attacks only see survivors, so these are ``None``).
      robust: ``(n,)`` bool, per example.
      margin: ``(n,)`` smallest margin ``z_y - max_{i != y} z_i`` found (clean one included).
      x_adv: ``(n, ...)`` the point where that margin was found (``x`` itself when no
        attack lowered the clean margin).
      broken_by: ``(n,)`` name of the attack that first broke the example, ``"clean"`` for
        clean errors, ``""`` for robust examples.
      settings: the evaluation's parameters (JSON values).
    """

    eps: float
    n: int
    k: int
    clean_accuracy: float
    robust_accuracy: float
    attacks: tuple
    accuracy_after: dict
    attack_accuracy: dict
    robust: np.ndarray = dataclasses.field(repr=False)
    margin: np.ndarray = dataclasses.field(repr=False)
    x_adv: np.ndarray = dataclasses.field(repr=False)
    broken_by: np.ndarray = dataclasses.field(repr=False)
    settings: dict = dataclasses.field(default_factory=dict)

    def summary(self) -> str:
        """One line per attack: cumulative robust accuracy."""
        lines = [f"robust accuracy at eps = {self.eps:.4g}: {self.robust_accuracy:.4f} "
                 f"(clean {self.clean_accuracy:.4f}, n = {self.n}, k = {self.k})"]
        for a in self.attacks:
            own = self.attack_accuracy.get(a)
            own_text = "" if own is None else f", alone {own:.4f}"
            lines.append(f"  after {a:<12s} {self.accuracy_after[a]:.4f}{own_text}")
        return "\n".join(lines)

    def interval(self, confidence: float = 0.95, method: str = "wilson"):
        """Binomial interval of the robust accuracy on the ``n`` examples
        (:func:`ntknb.stats.binomial_interval`)."""
        from ntknb.stats import binomial_interval

        return binomial_interval(int(np.sum(self.robust)), self.n, confidence=confidence, method=method)

    def to_json(self) -> dict:
        """The scalar fields as plain JSON values (no per-example arrays)."""
        return dict(eps=float(self.eps), n=int(self.n), k=int(self.k),
                    clean_accuracy=float(self.clean_accuracy),
                    robust_accuracy=float(self.robust_accuracy), attacks=list(self.attacks),
                    accuracy_after={a: float(v) for a, v in self.accuracy_after.items()},
                    attack_accuracy={a: (None if v is None else float(v))
                                     for a, v in self.attack_accuracy.items()},
                    settings=dict(self.settings))


# ------------------------------------------------------------------------ evaluation


def label_classes(y, n: int, k_out: int) -> np.ndarray:
    """Integer classes ``(n,)`` (int32) of the labels ``y`` of ``n`` examples for a model with ``k_out``
    outputs: int labels ``(n,)`` in ``[0, k_out)``, one-hot / centred one-hot ``(n, k_out)`` (argmax), or
    for one output (``k_out = 1``) ±1 / {0, 1} labels of shape ``(n,)`` or ``(n, 1)`` (class 1 iff
    ``y > 0``). ``ValueError`` naming ``y`` otherwise."""
    y = np.asarray(y)
    if y.shape[0] != n:
        raise ValueError(f"parameter 'y' must have n = {n} rows like x; got shape {y.shape}")
    if k_out == 1:
        if y.shape not in ((n,), (n, 1)):
            raise ValueError(f"parameter 'y' must have shape (n,) or (n, 1) for a single-output "
                             f"model; got {y.shape}")
        y = y.reshape(n)
        if not np.all(np.isin(y, (-1, 0, 1))):
            raise ValueError("parameter 'y' of a single-output model must hold labels ±1 or {0, 1}")
        return (y > 0).astype(np.int32)
    if y.ndim == 2 and y.shape[1] == k_out:
        return np.argmax(y, axis=1).astype(np.int32)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"parameter 'y' must be integer classes of shape (n,) = ({n},) or one-hot "
                         f"of shape ({n}, {k_out}); got shape {y.shape}, dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= k_out):
        raise ValueError(f"parameter 'y' must hold classes in [0, {k_out}); got range "
                         f"[{y.min()}, {y.max()}]")
    return y.astype(np.int32)


#: Chunks are never padded to fewer rows than this (small chunks cost little to run, each
#: new shape costs a compilation).
_MIN_BUCKET = 64


def _bucket(m: int, batch: int) -> int:
    """Chunk size for ``m`` remaining examples: the smallest of ``batch, ceil(batch / 4),
    ceil(batch / 16), ...`` (but not below :data:`_MIN_BUCKET`) that holds them: few distinct
    shapes, so few compilations, and at most 4x padding above the minimum."""
    size = batch
    while math.ceil(size / 4) >= max(m, _MIN_BUCKET):
        size = math.ceil(size / 4)
    return size


def run_in_chunks(fn: Callable, idx: np.ndarray, batch: int, *arrays) -> list:
    """``fn(*(a[idx] for a in arrays))`` in chunks of at most ``batch`` rows of ``idx (m,)``, each padded (by
    repeating its last index) to a size of :func:`_bucket` so that few shapes are compiled: ``fn`` returns a
    tuple of per-row arrays, and the outputs of the chunks are concatenated (numpy, ``m`` rows each, padding
    dropped). ``arrays``: numpy arrays, gathered on the host."""
    outs = []
    for start in range(0, len(idx), batch):
        sel = idx[start:start + batch]
        # pad the index by repeating its last entry (as ntknb.kernels.pad_rows does for rows;
        # not imported, so that evaluating a network does not import neural-tangents)
        pad = np.concatenate([sel, np.repeat(sel[-1:], _bucket(len(sel), batch) - len(sel))])
        res = fn(*(jnp.asarray(a[pad]) for a in arrays))
        outs.append([np.asarray(r)[: len(sel)] for r in res])
    return [np.concatenate(parts, axis=0) for parts in zip(*outs)]


def clean_margins(predict: Callable, x: np.ndarray, c: np.ndarray, *, binary: bool, batch: int,
                  params=None) -> np.ndarray:
    """The margins :func:`margin` of :func:`model_logits` at the clean inputs ``x (n, ...)`` for the classes
    ``c (n,)`` (:func:`label_classes`), in chunks of ``batch`` (:func:`run_in_chunks`): ``(n,)``, ``> 0``
    where the model is correct. ``predict``, ``params``: as in :func:`robust_evaluation`."""
    m, = run_in_chunks(lambda xb, cb: (_clean_margin_jit(predict, binary, xb, cb, params),),
                       np.arange(len(x)), batch, x, c)
    return m


def _boundary_start(key, x: np.ndarray, eps: float) -> np.ndarray:
    """``x + eps t / ||t||_inf``, ``t ~ U(-1, 1)^d`` per example (``croce2020reliable``)."""
    t = np.asarray(jax.random.uniform(key, x.shape, jnp.float32, -1.0, 1.0)).astype(x.dtype)
    scale = np.max(np.abs(t.reshape(len(t), -1)), axis=1) if t.size else np.zeros(0)
    return x + eps * t / scale.reshape((-1,) + (1,) * (x.ndim - 1))


def _run_restarts(predict, binary, x, c, eps, attack, runs, loss, window, step0, mom, rho, clip, params, root,
                  batch, skip_broken, m_clean, m_min, x_adv, broken_by, name) -> np.ndarray:
    """The ``runs`` restarts of one attack of :func:`robust_evaluation` (its start, its loss ``loss``, its
    schedule ``window``, step ``step0`` and momentum ``mom``), each on the examples still robust (all
    examples correct when clean, unless ``skip_broken``): lowers ``m_min`` (n,), moves ``x_adv`` (n, ...)
    to where the margin was lowered and names ``name`` in ``broken_by`` (n,) where an example broke, in
    place. Returns the examples this attack alone left robust, ``(n,)`` bool."""
    dt = x.dtype
    eps_a = jnp.asarray(eps, dt)
    own_robust = m_clean > 0
    for r in range(runs):
        key = jax.random.fold_in(jax.random.fold_in(root, ATTACKS.index(attack)), r)
        if attack == "pgd":
            noise = jax.random.uniform(key, x.shape, jnp.float32, -1.0, 1.0)
            x0 = x + eps * np.asarray(noise).astype(dt)
        else:
            x0 = _boundary_start(key, x, eps)
        alive = own_robust & (m_min > 0) if skip_broken else own_robust
        idx = np.flatnonzero(alive)
        if idx.size == 0:
            break

        def run(xb, cb, x0b, loss=_LOSS_INDEX[loss], window=window, step0=step0, mom=mom):
            return _ascent_jit(predict, binary, jnp.asarray(loss, jnp.int32), xb, cb, eps_a, x0b,
                               jnp.asarray(step0, dt), jnp.asarray(mom, dt), jnp.asarray(rho, dt),
                               window, clip=clip, params=params)

        m_run, x_run = run_in_chunks(run, idx, batch, x, c, x0)
        own_robust[idx] &= m_run > 0
        lower = m_run < m_min[idx]
        newly = (m_run <= 0) & (m_min[idx] > 0)
        broken_by[idx[newly]] = name
        m_min[idx[lower]] = m_run[lower]
        x_adv[idx[lower]] = x_run[lower]
    return own_robust


# Longer than 80 lines of code (tests/test_structure.py): the boundary checks of its 16 arguments (about 35
# lines) come first, then the suite: clean margins and the loop over the attacks (their restarts: _run_restarts).
def robust_evaluation(
    predict: Callable,
    x,
    y,
    eps: float,
    *,
    seed: int = 0,
    n_iter: int = 100,
    n_restarts: int = 1,
    pgd_steps: Optional[int] = None,
    pgd_restarts: int = 1,
    pgd_step_size: Optional[float] = None,
    attacks: Sequence[str] = ATTACKS,
    skip_broken: bool = True,
    batch_size: Optional[int] = 256,
    clip=(0.0, 1.0),
    rho: float = 0.75,
    momentum: float = 0.75,
    params: Any = None,
) -> RobustReport:
    """Worst case per example over APGD-CE, APGD-DLR and PGD (see the module docstring).

    Args:
      predict: ``x (b, ...) -> logits (b, k)`` (``k >= 2``) or ``(b, 1)`` (binary, class
        ``+1`` iff ``> 0``). Differentiable in ``x``, no batch coupling; a *static* jit
        argument (hashable; reuse the same object to reuse the compilation).
      x: inputs ``(n, ...)`` in ``clip`` (default ``[0, 1]``).
      y: integer classes ``(n,)`` in ``[0, k)``, or one-hot / centred one-hot ``(n, k)``;
        for single-output models ±1 or ``{0, 1}`` labels, shape ``(n,)`` or ``(n, 1)``.
      eps: l-inf radius, ``>= 0``.
      seed: seed of every random start (results do not depend on ``batch_size``).
      n_iter: APGD iterations per run (``croce2020reliable``: 100).
      n_restarts: runs of each APGD attack from random starts.
      pgd_steps: PGD steps (default ``n_iter``); pgd_restarts: PGD runs, each from
        ``x + U(-eps, eps)``; pgd_step_size: default ``2.5 eps / pgd_steps``
        (``madry2018towards``).
      attacks: a subset of :data:`ATTACKS`, run in this order.
      skip_broken: run each attack / restart only on examples still robust (AutoAttack's
        practice; same robust accuracy, less work). ``False`` also measures each attack alone.
      batch_size: examples per chunk (bounds memory); ``None``: all at once.
      clip: valid input range ``(low, high)`` or ``None``.
      rho, momentum: APGD's checkpoint fraction (0.75) and momentum ``a`` (0.75).
      params: ``None`` (``predict(x)``), or a pytree of arrays passed as ``predict(params, x)``:
        a *dynamic* argument, so many models of one form (the dual weights of several kernel
        machines, checkpoints of one network) share one compilation of ``predict``.

    Returns:
      a :class:`RobustReport`.
    """
    if not callable(predict):
        raise ValueError(f"parameter 'predict' must be callable x -> logits; got {type(predict).__name__}")
    eps = check_float("eps", eps, min=0.0)
    seed = check_int("seed", seed, min=0, max=2**32 - 1)  # 32-bit: 2**32 would be seed 0 again
    n_iter = check_int("n_iter", n_iter, min=1)
    n_restarts = check_int("n_restarts", n_restarts, min=0)
    pgd_steps = check_int("pgd_steps", n_iter if pgd_steps is None else pgd_steps, min=1)
    pgd_restarts = check_int("pgd_restarts", pgd_restarts, min=0)
    if pgd_step_size is None:
        pgd_step_size = pgd_step_size_rule(eps, pgd_steps)
    else:
        pgd_step_size = check_float("pgd_step_size", pgd_step_size, min=0.0, min_inclusive=False)
    attacks = tuple(check_sequence("attacks", list(attacks), allowed=ATTACKS))
    if len(set(attacks)) != len(attacks):
        raise ValueError(f"parameter 'attacks' must not repeat an attack; got {list(attacks)!r}")
    skip_broken = check_bool("skip_broken", skip_broken)
    batch_size = check_int("batch_size", batch_size, min=1, none_ok=True)
    clip = check_clip("clip", clip)
    rho = check_float("rho", rho, min=0.0, max=1.0)
    momentum = check_float("momentum", momentum, min=0.0, max=1.0)

    x = np.asarray(x)
    if x.ndim < 1:
        raise ValueError(f"parameter 'x' must have shape (n, ...); got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    n = x.shape[0]
    if n == 0:
        raise ValueError("parameter 'x' must hold at least one example")
    check_in_clip(x, clip)  # also rejects NaN / inf
    out = jax.eval_shape(lambda x_: model_logits(predict, False, x_, params),
                         jax.ShapeDtypeStruct((1,) + x.shape[1:], x.dtype))
    if len(out.shape) != 2 or out.shape[0] != 1:
        raise ValueError(f"predict must map (b, ...) to logits (b, k) or (b, 1); got output "
                         f"shape {out.shape} for a batch of 1")
    k_out = out.shape[1]
    binary = k_out == 1
    k = 2 if binary else k_out
    c = label_classes(y, n, k_out)
    batch = n if batch_size is None else min(batch_size, n)

    m_clean = clean_margins(predict, x, c, binary=binary, batch=batch, params=params)
    m_min = m_clean.copy()
    x_adv = x.copy()
    broken_by = np.where(m_clean > 0, "", "clean").astype(object)
    names = {"apgd-ce": "apgd-ce", "apgd-dlr": "apgd-dlr" if k >= 3 else "apgd-margin", "pgd": "pgd"}
    accuracy_after, attack_accuracy = {}, {}
    root = jax.random.PRNGKey(seed)
    apgd_window = jnp.asarray(_windows(n_iter, apgd_checkpoints(n_iter)))
    pgd_window = jnp.zeros((pgd_steps,), jnp.int32)

    for a_index, attack in enumerate(attacks):
        name = names[attack]
        if attack == "pgd":
            runs, loss, window, step0, mom = pgd_restarts, "ce", pgd_window, pgd_step_size, 1.0
        else:
            runs, loss, window, step0, mom = (n_restarts, "ce" if attack == "apgd-ce" else "dlr",
                                              apgd_window, 2.0 * eps, momentum)
        own_robust = _run_restarts(predict, binary, x, c, eps, attack, runs, loss, window, step0, mom, rho, clip,
                                   params, root, batch, skip_broken, m_clean, m_min, x_adv, broken_by, name)
        accuracy_after[name] = float(np.mean(m_min > 0))
        attack_accuracy[name] = None if skip_broken and a_index > 0 else float(np.mean(own_robust))

    settings = dict(seed=seed, n_iter=n_iter, n_restarts=n_restarts, pgd_steps=pgd_steps,
                    pgd_restarts=pgd_restarts, pgd_step_size=float(pgd_step_size),
                    skip_broken=skip_broken, rho=rho, momentum=momentum,
                    clip=None if clip is None else list(clip), binary=binary)
    return RobustReport(
        eps=eps, n=n, k=k, clean_accuracy=float(np.mean(m_clean > 0)),
        robust_accuracy=float(np.mean(m_min > 0)), attacks=tuple(names[a] for a in attacks),
        accuracy_after=accuracy_after, attack_accuracy=attack_accuracy,
        robust=m_min > 0, margin=m_min, x_adv=x_adv, broken_by=broken_by.astype(str),
        settings=settings,
    )


def robust_accuracy(predict: Callable, x, y, eps: float, *, seed: int = 0, **kwargs: Any) -> float:
    """Robust accuracy under the suite: ``robust_evaluation(...).robust_accuracy``.

    See :func:`robust_evaluation` for the arguments and :class:`RobustReport` for the
    per-example result."""
    return robust_evaluation(predict, x, y, eps, seed=seed, **kwargs).robust_accuracy
