"""Intervals for the book's measurements: over seeds, over test points, and for paired
comparisons of two models on the same points.

* :func:`mean_interval` — mean over ``n`` seeds with the Student-t interval
  ``mean ± t_{1-α/2, n-1} s / sqrt(n)`` (``s`` the sample standard deviation).
* :func:`binomial_interval` — an accuracy ``k / n`` on ``n`` test points: the Wilson score
  interval (default; Wilson 1927) or the exact Clopper-Pearson interval (from the beta
  quantiles). Wilson: with ``p = k/n`` and ``z = z_{1-α/2}``,
  ``(p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)``.
* :func:`bootstrap_interval` — percentile bootstrap of any statistic of a sample (Efron).
* :func:`pooled_proportion_interval` — an accuracy (or any fraction) pooled over ``k`` seeds and
  their points, never outside ``[0, 1]``: ``"logit"`` (default), the cluster-robust (seeds as
  clusters) delta-method interval on the logit scale, ``logit(p) ± t_{k-1} se / (p (1 - p))``
  with ``se² = k/(k-1) Σ_i (c_i - p n_i)² / N²`` (``c_i`` correct of ``n_i`` points of seed ``i``,
  ``N = Σ n_i``), mapped back with the logistic function; or ``"cluster-bootstrap"``, the
  two-stage percentile bootstrap (seeds resampled, then each drawn seed's points; Davison &
  Hinkley 1997, Sec. 3.8). One seed, or no spread to estimate (``p`` at 0 or 1, or equal seeds):
  the Wilson interval on the ``N`` pooled points.
* :func:`mean_interval` with ``bounds=(lo, hi)`` — a quantity with a known range (a fraction
  per seed): the t interval on the logit scale of ``(x - lo) / (hi - lo)`` (delta method), which
  stays inside the range.
* :func:`paired_comparison` — two models' per-point correctness on the *same* points:
  difference of accuracies with a paired bootstrap interval (the points are resampled,
  each keeping its pair), and McNemar's exact test on the discordant pairs
  (``b`` = only A right, ``c`` = only B right; ``p = min(1, 2 P[Bin(b + c, 1/2) <= min(b, c)])``).

Every function returns a frozen dataclass with ``estimate``, ``low``, ``high`` (and more);
``confidence`` is the two-sided level (default 0.95). Intervals that do not exist (one seed:
no standard deviation) are ``(-inf, inf)`` — or the whole declared range ``bounds`` — so a
claim built on them stays inconclusive.
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
    "pooled_proportion_interval",
    "paired_comparison",
    "binomial_test_greater",
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

    def text(self, fmt: str = ".3f") -> str:
        """``"0.812 [0.790, 0.833]"`` in format ``fmt``; the estimate alone where the interval does
        not exist (a single replica: both ends infinite); an infinite end as ``-inf`` / ``inf``."""
        if math.isinf(self.low) and math.isinf(self.high):
            return f"{self.estimate:{fmt}}"
        return f"{self.estimate:{fmt}} [{self.low:{fmt}}, {self.high:{fmt}}]"

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


def _bounds(bounds) -> tuple[float, float] | None:
    if bounds is None:
        return None
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"parameter 'bounds' must be None or a pair (low, high) of finite numbers with "
                         f"low < high; got {bounds!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"parameter 'bounds' must be None or a pair (low, high) of finite numbers with "
                         f"low < high; got {bounds!r}")
    return lo, hi


def _logit_t(p: float, se: float, dof: int, confidence: float) -> tuple[float, float]:
    """``expit(logit(p) ± t_{dof} se / (p (1 - p)))`` for ``0 < p < 1`` (the delta method)."""
    half = float(_st.t.ppf(0.5 + confidence / 2, dof)) * se / (p * (1 - p))
    centre = math.log(p / (1 - p))
    return float(_st.logistic.cdf(centre - half)), float(_st.logistic.cdf(centre + half))


def mean_interval(values: Sequence[float], confidence: float = 0.95,
                  bounds: tuple[float, float] | None = None) -> Interval:
    """Mean over seeds (or any i.i.d. replicas) with the Student-t interval.

    ``values``: shape ``(n,)``. ``se = s / sqrt(n)`` with ``s`` the sample standard deviation
    (``ddof = 1``); the interval is ``mean ± t_{(1+confidence)/2, n-1} se``. With ``n = 1``
    there is no interval: ``(-inf, inf)``, ``se = nan``.

    ``bounds``: the quantity's range ``(lo, hi)`` (e.g. ``(0, 1)`` for a fraction per seed);
    every value must lie in it. The interval is then taken on the logit scale of
    ``u = (x - lo) / (hi - lo)``, ``expit(logit(ū) ± t se_u / (ū (1 - ū)))`` mapped back
    (``method "logit-t"``), so it never leaves the range; with ``n = 1`` it is the whole range,
    and where the values do not vary (``s = 0``, e.g. all at a bound) it is the point."""
    a = _sample(values)
    confidence = _confidence(confidence)
    rng = _bounds(bounds)
    n = a.size
    mean = float(np.mean(a))
    if rng is None:
        if n < 2:
            return Interval(mean, -math.inf, math.inf, n, confidence, "t")
        se = float(np.std(a, ddof=1) / math.sqrt(n))
        half = float(_st.t.ppf(0.5 + confidence / 2, n - 1)) * se
        return Interval(mean, mean - half, mean + half, n, confidence, "t", se)
    lo, hi = rng
    if np.any((a < lo) | (a > hi)):
        raise ValueError(f"parameter 'values' must lie within bounds [{lo}, {hi}]; got {a.tolist()}")
    if n < 2:
        return Interval(mean, lo, hi, n, confidence, "logit-t")
    se = float(np.std(a, ddof=1) / math.sqrt(n))
    u = (mean - lo) / (hi - lo)
    if se == 0 or not 0 < u < 1:
        return Interval(mean, mean, mean, n, confidence, "logit-t", se)
    ul, uh = _logit_t(u, se / (hi - lo), n - 1, confidence)
    # min / max: with a spread at rounding level (equal values whose mean rounds off them) the mapped-back
    # ends can miss the mean by an ulp
    return Interval(mean, min(lo + ul * (hi - lo), mean), max(lo + uh * (hi - lo), mean), n, confidence, "logit-t", se)


def _groups(correct) -> list[np.ndarray]:
    """Per-seed 0/1 correctness: a ``(k, n)`` array or a sequence of ``k`` 1-D sequences."""
    rows = list(correct) if isinstance(correct, (Sequence, np.ndarray)) else []
    if any(np.ndim(r) != 1 for r in rows):
        raise ValueError("parameter 'correct' must be seeds x points: a (k, n) array or k sequences of 0/1; "
                         f"got {correct!r}")
    out = [_correct(r, "correct") for r in rows]
    if not out:
        raise ValueError(f"parameter 'correct' must hold at least one seed's per-point correctness; got {correct!r}")
    return out


def pooled_proportion_interval(correct, confidence: float = 0.95, method: str = "logit",
                               n_boot: int = 2000, seed: int = 0) -> Interval:
    """An accuracy pooled over ``k`` seeds and their points (module docstring), inside ``[0, 1]``.

    ``correct``: per-point correctness per seed, a ``(k, n)`` 0/1 array or ``k`` 0/1 sequences
    (of possibly different lengths). The estimate is ``p = Σ c_i / Σ n_i``. ``method``:
    ``"logit"`` (cluster-robust delta method on the logit scale, ``t`` with ``k - 1`` degrees of
    freedom; ``method "logit-t"``, ``n = k``) or ``"cluster-bootstrap"`` (seeds resampled, then
    points within each drawn seed, ``n_boot`` times; the resampled points of a seed are
    ``Bin(n_i, p_i)``-distributed, which is how they are drawn; ``n = k``). With one seed, or when
    the seeds show no spread or ``p`` is 0 or 1, the Wilson interval on the ``N`` pooled points
    (``method "wilson"``, ``n = N``)."""
    groups = _groups(correct)
    confidence = _confidence(confidence)
    method = check_choice("method", method, ["logit", "cluster-bootstrap"])
    c = np.array([g.sum() for g in groups], float)
    m = np.array([g.size for g in groups], float)
    k, total = len(groups), float(m.sum())
    p = float(c.sum() / total)
    se = math.sqrt(k / (k - 1) * float(np.sum((c - p * m) ** 2))) / total if k > 1 else 0.0
    if k == 1 or se == 0 or p in (0.0, 1.0):
        return binomial_interval(int(c.sum()), int(total), confidence)
    if method == "logit":
        low, high = _logit_t(p, se, k - 1, confidence)
        return Interval(p, min(low, p), max(high, p), k, confidence, "logit-t", se)
    n_boot = check_int("n_boot", n_boot, min=10)
    rng = np.random.default_rng(check_int("seed", seed, min=0))
    pick = rng.integers(0, k, size=(n_boot, k))
    boot = rng.binomial(m[pick].astype(int), (c / m)[pick]).sum(axis=1) / m[pick].sum(axis=1)
    low, high = np.quantile(boot, [0.5 - confidence / 2, 0.5 + confidence / 2])
    return Interval(p, float(min(low, p)), float(max(high, p)), k, confidence, "cluster-bootstrap",
                    float(np.std(boot, ddof=1)))


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


