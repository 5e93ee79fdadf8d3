"""Intervals for the book's measurements: over seeds, over test points, and for paired
comparisons of two models on the same points.

* :func:`mean_interval` — mean over ``n`` seeds with the Student-t interval
  ``mean ± t_{1-α/2, n-1} s / sqrt(n)`` (``s`` the sample standard deviation).
* :func:`binomial_interval` — an accuracy ``k / n`` on ``n`` test points: the Wilson score
  interval (default; Wilson 1927) or the exact Clopper-Pearson interval (from the beta
  quantiles). Wilson: with ``p = k/n`` and ``z = z_{1-α/2}``,
  ``(p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)``.
* :func:`bootstrap_interval` — percentile bootstrap of any statistic of a sample (Efron).
* :func:`paired_comparison` — two models' per-point correctness on the *same* points:
  difference of accuracies with a paired bootstrap interval (the points are resampled,
  each keeping its pair), and McNemar's exact test on the discordant pairs
  (``b`` = only A right, ``c`` = only B right; ``p = min(1, 2 P[Bin(b + c, 1/2) <= min(b, c)])``).

Every function returns a frozen dataclass with ``estimate``, ``low``, ``high`` (and more);
``confidence`` is the two-sided level (default 0.95). Intervals that do not exist (one seed:
no standard deviation) are ``(-inf, inf)``, so a claim built on them stays inconclusive.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats as _st

from ntknb.validation import check_choice, check_float, check_int

__all__ = [
    "Interval",
    "PairedComparison",
    "mean_interval",
    "binomial_interval",
    "bootstrap_interval",
    "paired_comparison",
    "binomial_test_greater",
    "holm_reject",
]


@dataclasses.dataclass(frozen=True)
class Interval:
    """An estimate with a two-sided interval.

    Attributes:
      estimate: the point estimate (a mean, an accuracy, a statistic).
      low, high: the interval (``-inf`` / ``inf`` where it does not exist).
      n: sample size behind it (seeds, test points, ...).
      confidence: two-sided level, e.g. 0.95.
      method: ``"t"``, ``"wilson"``, ``"clopper-pearson"``, ``"bootstrap"``.
      se: standard error where defined (``nan`` otherwise).
    """

    estimate: float
    low: float
    high: float
    n: int
    confidence: float
    method: str
    se: float = math.nan

    def __str__(self) -> str:
        return (f"{self.estimate:.4g} [{self.low:.4g}, {self.high:.4g}] "
                f"({100 * self.confidence:g}% {self.method}, n = {self.n})")

    def to_json(self) -> dict:
        """Plain JSON values (non-finite numbers as ``None``)."""
        def num(v):
            return float(v) if math.isfinite(v) else None
        return dict(estimate=num(self.estimate), low=num(self.low), high=num(self.high), n=int(self.n),
                    confidence=float(self.confidence), method=self.method, se=num(self.se))


@dataclasses.dataclass(frozen=True)
class PairedComparison:
    """Model A vs model B on the same ``n`` points (see :func:`paired_comparison`).

    Attributes:
      accuracy_a, accuracy_b: the two accuracies.
      difference: ``accuracy_a - accuracy_b`` with its paired-bootstrap interval.
      only_a, only_b: discordant counts (A right and B wrong; B right and A wrong).
      mcnemar_p: exact two-sided McNemar p-value (1.0 when there is no discordant pair).
    """

    accuracy_a: float
    accuracy_b: float
    difference: Interval
    only_a: int
    only_b: int
    mcnemar_p: float

    def __str__(self) -> str:
        return (f"A {self.accuracy_a:.4f} vs B {self.accuracy_b:.4f}: difference {self.difference}; "
                f"discordant {self.only_a} (only A) / {self.only_b} (only B), "
                f"McNemar exact p = {self.mcnemar_p:.3g}")


def _confidence(confidence) -> float:
    return check_float("confidence", confidence, min=0.0, max=1.0, min_inclusive=False, max_inclusive=False)


def _sample(values, name: str = "values") -> np.ndarray:
    try:
        a = np.asarray(values, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"parameter {name!r} must be a sequence of numbers; got {values!r}") from None
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise ValueError(f"parameter {name!r} must hold at least one finite number and no nan/inf; got {values!r}")
    return a


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean over seeds (or any i.i.d. replicas) with the Student-t interval.

    ``values``: shape ``(n,)``. ``se = s / sqrt(n)`` with ``s`` the sample standard deviation
    (``ddof = 1``); the interval is ``mean ± t_{(1+confidence)/2, n-1} se``. With ``n = 1``
    there is no interval: ``(-inf, inf)``, ``se = nan``."""
    a = _sample(values)
    confidence = _confidence(confidence)
    n = a.size
    mean = float(np.mean(a))
    if n < 2:
        return Interval(mean, -math.inf, math.inf, n, confidence, "t")
    se = float(np.std(a, ddof=1) / math.sqrt(n))
    half = float(_st.t.ppf(0.5 + confidence / 2, n - 1)) * se
    return Interval(mean, mean - half, mean + half, n, confidence, "t", se)


def binomial_interval(k: int, n: int, confidence: float = 0.95, method: str = "wilson") -> Interval:
    """Interval for a proportion ``k / n`` (e.g. an accuracy: ``k`` correct of ``n`` points).

    ``method``: ``"wilson"`` (score interval) or ``"clopper-pearson"`` (exact:
    ``[Beta_{α/2}(k, n-k+1), Beta_{1-α/2}(k+1, n-k)]``, with 0 and 1 at the ends)."""
    n = check_int("n", n, min=1)
    k = check_int("k", k, min=0, max=n)
    confidence = _confidence(confidence)
    method = check_choice("method", method, ["wilson", "clopper-pearson"])
    p = k / n
    se = math.sqrt(p * (1 - p) / n)
    alpha = 1 - confidence
    if method == "wilson":
        z = float(_st.norm.ppf(1 - alpha / 2))
        den = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / den
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
        # clipped to contain p: rounding leaves 1 - 1e-16 at k = n (and 1e-17 at k = 0)
        low, high = max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))
    else:
        low = 0.0 if k == 0 else float(_st.beta.ppf(alpha / 2, k, n - k + 1))
        high = 1.0 if k == n else float(_st.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return Interval(p, low, high, n, confidence, method, se)


def bootstrap_interval(
    values: Sequence[float],
    statistic: Callable[[np.ndarray], float] = np.mean,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of ``statistic(values)``.

    ``values``: shape ``(n,)``; ``statistic`` maps an ``(n,)`` array to a number and must accept
    ``axis=1`` on ``(n_boot, n)`` resamples (as ``np.mean`` / ``np.median`` do); the interval is
    the ``(1 ± confidence)/2`` quantiles of the ``n_boot`` resampled statistics."""
    a = _sample(values)
    confidence = _confidence(confidence)
    n_boot = check_int("n_boot", n_boot, min=10)
    seed = check_int("seed", seed, min=0)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(n_boot, a.size))
    boot = np.asarray(statistic(a[idx], axis=1), dtype=float)
    lo, hi = np.quantile(boot, [0.5 - confidence / 2, 0.5 + confidence / 2])
    return Interval(float(statistic(a)), float(lo), float(hi), a.size, confidence, "bootstrap",
                    float(np.std(boot, ddof=1)))


def _correct(values, name: str) -> np.ndarray:
    a = np.asarray(values).reshape(-1)
    if a.size == 0 or not np.all(np.isin(a, (0, 1))):
        raise ValueError(f"parameter {name!r} must be a non-empty sequence of booleans / 0-1 "
                         f"(per-point correctness); got {values!r}")
    return a.astype(bool)


def paired_comparison(
    correct_a: Sequence[bool],
    correct_b: Sequence[bool],
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> PairedComparison:
    """Compare models A and B evaluated on the same ``n`` points.

    ``correct_a``, ``correct_b``: per-point correctness, shape ``(n,)`` each (same points in the
    same order). Returns the accuracies, their difference ``A - B`` with a paired bootstrap
    interval (points resampled with their pair), the discordant counts and McNemar's exact
    p-value ``min(1, 2 P[Bin(b + c, 1/2) <= min(b, c)])``."""
    a = _correct(correct_a, "correct_a")
    b = _correct(correct_b, "correct_b")
    if a.shape != b.shape:
        raise ValueError(f"correct_a and correct_b must hold the same points; got {a.size} and {b.size}")
    confidence = _confidence(confidence)
    diff = a.astype(float) - b.astype(float)
    iv = bootstrap_interval(diff, np.mean, confidence=confidence, n_boot=n_boot, seed=seed)
    only_a = int(np.sum(a & ~b))
    only_b = int(np.sum(b & ~a))
    m = only_a + only_b
    p = 1.0 if m == 0 else min(1.0, 2.0 * float(_st.binom.cdf(min(only_a, only_b), m, 0.5)))
    return PairedComparison(float(a.mean()), float(b.mean()), dataclasses.replace(iv, method="paired bootstrap"),
                            only_a, only_b, p)


def binomial_test_greater(k: int, n: int, p0: float) -> float:
    """One-sided exact binomial test: ``P[Bin(n, p0) >= k]``, the p-value of "accuracy above
    ``p0``" for ``k`` correct of ``n`` (e.g. a classifier against chance)."""
    n = check_int("n", n, min=1)
    k = check_int("k", k, min=0, max=n)
    p0 = check_float("p0", p0, min=0.0, max=1.0)
    return float(_st.binom.sf(k - 1, n, p0))


def holm_reject(pvalues: Sequence[float], alpha: float = 0.05) -> np.ndarray:
    """Holm's step-down correction for ``m`` tests (family-wise error at most ``alpha``): the
    hypotheses rejected, ``(m,)`` bool. Sorted ascending, ``p_(j)`` is rejected while
    ``p_(j) <= alpha / (m - j)`` (j = 0, 1, ...); the first failure stops the procedure."""
    p = _sample(pvalues, "pvalues")
    alpha = check_float("alpha", alpha, min=0.0, max=1.0, min_inclusive=False)
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"parameter 'pvalues' must lie in [0, 1]; got {p.tolist()}")
    m = p.size
    order = np.argsort(p, kind="stable")
    passed = p[order] <= alpha / (m - np.arange(m))
    n_rej = m if passed.all() else int(np.argmin(passed))
    out = np.zeros(m, bool)
    out[order[:n_rej]] = True
    return out
