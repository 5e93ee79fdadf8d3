"""ntknb.stats against exact references (textbook values and closed forms)."""

import math

import numpy as np
import pytest
from scipy import stats as st

from ntknb import stats as S


def test_t_interval_textbook():
    # 1..5: mean 3, s = sqrt(2.5), se = sqrt(0.5); t_{0.975, 4} = 2.7764451
    iv = S.mean_interval([1, 2, 3, 4, 5])
    assert iv.estimate == 3 and iv.se == pytest.approx(math.sqrt(0.5))
    half = 2.7764451051977987 * math.sqrt(0.5)
    assert (iv.low, iv.high) == pytest.approx((3 - half, 3 + half), abs=1e-9)
    assert iv.n == 5 and iv.method == "t"
    one = S.mean_interval([0.7])
    assert one.estimate == 0.7 and one.low == -math.inf and one.high == math.inf
    assert one.to_json()["low"] is None
    with pytest.raises(ValueError, match="'values'"):
        S.mean_interval([])
    with pytest.raises(ValueError, match="'confidence'"):
        S.mean_interval([1, 2], confidence=1.0)


def test_wilson_closed_forms():
    z = 1.959963984540054
    # k = 0: [0, z^2 / (n + z^2)]
    iv = S.binomial_interval(0, 10)
    assert iv.low == 0 and iv.high == pytest.approx(z * z / (10 + z * z))
    # symmetric: k = n/2 is centred on 1/2
    iv = S.binomial_interval(50, 100)
    assert (iv.low + iv.high) / 2 == pytest.approx(0.5)
    assert iv.high - 0.5 == pytest.approx(z * math.sqrt(0.25 / 100 + z * z / 40000) / (1 + z * z / 100))
    # a published value: 81 of 263 -> Wilson 95% [0.2553, 0.3662] (Newcombe 1998, Table I)
    iv = S.binomial_interval(81, 263)
    assert (iv.low, iv.high) == pytest.approx((0.2553, 0.3662), abs=1e-4)


def test_clopper_pearson():
    # k = 0: upper = 1 - (alpha/2)^(1/n); k = n: lower = (alpha/2)^(1/n)
    iv = S.binomial_interval(0, 20, method="clopper-pearson")
    assert iv.low == 0 and iv.high == pytest.approx(1 - 0.025 ** (1 / 20))
    iv = S.binomial_interval(20, 20, method="clopper-pearson")
    assert iv.high == 1 and iv.low == pytest.approx(0.025 ** (1 / 20))
    # exact is wider than Wilson
    w, cp = S.binomial_interval(7, 30), S.binomial_interval(7, 30, method="clopper-pearson")
    assert cp.low < w.low and cp.high > w.high
    with pytest.raises(ValueError, match="'k'"):
        S.binomial_interval(11, 10)


def test_bootstrap_agrees_with_t_on_normal_data():
    rng = np.random.default_rng(1)
    v = rng.normal(2.0, 1.0, size=400)
    b = S.bootstrap_interval(v, n_boot=4000)
    t = S.mean_interval(v)
    assert b.estimate == pytest.approx(t.estimate)
    assert b.low == pytest.approx(t.low, abs=0.02) and b.high == pytest.approx(t.high, abs=0.02)
    assert S.bootstrap_interval(v, seed=3) == S.bootstrap_interval(v, seed=3)  # reproducible
    med = S.bootstrap_interval(v, np.median)
    assert med.low < np.median(v) < med.high


def test_paired_comparison_mcnemar_exact():
    # 1 point only A right, 9 only B right, 40 both right: p = 2 * (1 + 10) / 2^10
    a = np.array([1] * 1 + [0] * 9 + [1] * 40, bool)
    b = np.array([0] * 1 + [1] * 9 + [1] * 40, bool)
    r = S.paired_comparison(a, b)
    assert (r.only_a, r.only_b) == (1, 9)
    assert r.mcnemar_p == pytest.approx(22 / 1024)
    assert r.accuracy_a == pytest.approx(41 / 50) and r.accuracy_b == pytest.approx(49 / 50)
    assert r.difference.estimate == pytest.approx(-8 / 50)
    assert r.difference.low < -8 / 50 < r.difference.high < 0
    same = S.paired_comparison(a, a)
    assert same.mcnemar_p == 1.0 and same.difference.low == same.difference.high == 0
    with pytest.raises(ValueError, match="same points"):
        S.paired_comparison(a, b[:-1])
    with pytest.raises(ValueError, match="'correct_a'"):
        S.paired_comparison([0.5, 1], [1, 1])


@pytest.mark.parametrize("k, n", [(0, 400), (400, 400), (7, 7), (0, 1)])
def test_wilson_interval_contains_the_estimate_at_the_ends(k, n):
    iv = S.binomial_interval(k, n)
    assert iv.low <= iv.estimate <= iv.high and 0.0 <= iv.low and iv.high <= 1.0


def test_binomial_test_greater_matches_the_tail_sum():
    from math import comb

    n, k, p0 = 20, 14, 0.5
    tail = sum(comb(n, j) * p0**j * (1 - p0) ** (n - j) for j in range(k, n + 1))
    assert S.binomial_test_greater(k, n, p0) == pytest.approx(tail, rel=1e-12)
    assert S.binomial_test_greater(0, n, p0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="'k'"):
        S.binomial_test_greater(21, 20, 0.5)


# ------------------------------------------------- intervals that respect their range (issue 28)


def _seed_points(rng, k, n, mean=0.8, concentration=80.0):
    """``k`` seeds x ``n`` points of 0/1 correctness; per-seed accuracies ~ Beta around ``mean``
    (between-seed spread as seeds give it)."""
    p = rng.beta(concentration * mean, concentration * (1 - mean), size=k)
    return [(rng.random(n) < pi).astype(int) for pi in p]


@pytest.mark.parametrize("method, k, reps", [("logit", 5, 300), ("cluster-bootstrap", 5, 150),
                                             ("cluster-bootstrap", 20, 150)])
def test_pooled_proportion_covers_and_stays_in_range(method, k, reps):
    """Monte Carlo (fixed seed, < 1 s): the 95% interval of an accuracy pooled over k seeds x 100
    points covers the population accuracy about 95% of the time and never leaves [0, 1]."""
    rng = np.random.default_rng(1)
    covered = 0
    for _ in range(reps):
        iv = S.pooled_proportion_interval(_seed_points(rng, k, 100), method=method, n_boot=500)
        assert 0.0 <= iv.low <= iv.estimate <= iv.high <= 1.0
        covered += iv.low <= 0.8 <= iv.high
    assert 0.88 <= covered / reps <= 0.99


def test_pooled_proportion_near_the_ends_and_edge_cases():
    rng = np.random.default_rng(2)
    x = _seed_points(rng, 3, 100, mean=0.97)  # the t interval on seed means would pass 1
    for method in ("logit", "cluster-bootstrap"):
        iv = S.pooled_proportion_interval(x, method=method)
        assert 0 <= iv.low < iv.estimate < iv.high <= 1 and iv.n == 3
    assert S.pooled_proportion_interval(x).method == "logit-t"
    ones = S.pooled_proportion_interval([[1, 1, 1], [1, 1]])  # p = 1: Wilson on the 5 pooled points
    assert (ones.method, ones.n, ones.high) == ("wilson", 5, 1.0) and ones.low == S.binomial_interval(5, 5).low
    single = S.pooled_proportion_interval([[1, 0, 1, 1]])
    assert single == S.binomial_interval(3, 4)
    with pytest.raises(ValueError, match="'method'"):
        S.pooled_proportion_interval(x, method="t")
    with pytest.raises(ValueError, match="'correct'"):
        S.pooled_proportion_interval([1, 0, 1])
    with pytest.raises(ValueError, match="'correct'"):
        S.pooled_proportion_interval([[1, 2]])


def test_mean_interval_with_bounds_stays_in_range_and_covers():
    iv = S.mean_interval([0.9, 1.0, 0.87], bounds=(0, 1))
    assert iv.method == "logit-t" and 0 < iv.low < iv.estimate < iv.high < 1
    assert S.mean_interval([0.9, 1.0, 0.87]).high > 1  # what the plain t interval does
    ends = lambda iv: (iv.low, iv.high)  # noqa: E731
    assert ends(S.mean_interval([0.4], bounds=(0, 1))) == (0, 1)  # one seed: the whole range
    assert ends(S.mean_interval([0.0, 0.0], bounds=(0, 1))) == (0, 0)  # no spread
    lo, hi = ends(S.mean_interval([2.0, 3.0, 4.0], bounds=(0, 10)))
    assert 0 < lo < 3 < hi < 10
    rng = np.random.default_rng(3)
    covered = sum((lambda iv: iv.low <= 0.9 <= iv.high)(S.mean_interval(rng.beta(18, 2, size=5), bounds=(0, 1)))
                  for _ in range(400))
    assert 0.9 <= covered / 400 <= 0.99
    with pytest.raises(ValueError, match="'bounds'"):
        S.mean_interval([0.5, 0.6], bounds=(1, 0))
    with pytest.raises(ValueError, match="within bounds"):
        S.mean_interval([0.5, 1.6], bounds=(0, 1))


def _exact_coverage(n, p, method):
    """P[the interval covers p] for k ~ Bin(n, p), summed exactly over k."""
    ks = np.arange(n + 1)
    cover = np.array([(lambda iv: iv.low <= p <= iv.high)(S.binomial_interval(int(k), n, method=method)) for k in ks])
    return float(np.sum(st.binom.pmf(ks, n, p) * cover))


def test_binomial_intervals_exact_coverage():
    """Exact coverage over a grid of p (no simulation): Clopper-Pearson never below 95%, Wilson
    95% on average (it oscillates around the nominal level)."""
    grid = np.linspace(0.02, 0.98, 49)
    cp = [_exact_coverage(40, p, "clopper-pearson") for p in grid]
    wilson = [_exact_coverage(40, p, "wilson") for p in grid]
    assert min(cp) >= 0.95 - 1e-12
    assert 0.94 <= float(np.mean(wilson)) <= 0.96 and min(wilson) > 0.83


@pytest.mark.parametrize("k, n", [(0, 20), (3, 20), (17, 40), (40, 40), (512, 1000)])
def test_binomial_intervals_match_scipy(k, n):
    res = st.binomtest(k, n)
    for ours, theirs in (("wilson", "wilson"), ("clopper-pearson", "exact")):
        ci = res.proportion_ci(confidence_level=0.95, method=theirs)
        iv = S.binomial_interval(k, n, method=ours)
        assert iv.low == pytest.approx(ci.low, abs=1e-12) and iv.high == pytest.approx(ci.high, abs=1e-12)


def test_bootstrap_matches_scipy_percentile():
    x = np.random.default_rng(4).normal(0.3, 1.0, size=60)
    ours = S.bootstrap_interval(x, n_boot=20000, seed=1)
    theirs = st.bootstrap((x,), np.mean, n_resamples=20000, method="percentile", random_state=1).confidence_interval
    assert ours.low == pytest.approx(theirs.low, abs=0.02) and ours.high == pytest.approx(theirs.high, abs=0.02)


def test_interval_text():
    iv = S.mean_interval([0.8, 0.82, 0.79], bounds=(0, 1))
    assert iv.text() == f"{iv.estimate:.3f} [{iv.low:.3f}, {iv.high:.3f}]" and 0 <= iv.low <= iv.high <= 1
    assert S.mean_interval([0.5]).text(".2f") == "0.50"  # one replica: no interval
    assert S.Interval(0.5, 0.1, math.inf, 2, 0.95, "t").text(".1f") == "0.5 [0.1, inf]"


def test_bounded_mean_interval_contains_the_mean_at_rounding_spread():
    # five equal differences whose mean rounds off them (spread ~1e-17): the logit-t ends, mapped back,
    # used to miss the mean by an ulp (chapter 04's concentration difference)
    iv = S.mean_interval([0.8 - 0.6] * 5, bounds=(-1, 1))
    assert iv.low <= iv.estimate <= iv.high
