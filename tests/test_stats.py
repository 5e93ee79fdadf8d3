"""ntknb.stats against exact references (textbook values and closed forms)."""

import math

import numpy as np
import pytest

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


def test_holm_reject_steps_down_and_stops_at_the_first_failure():
    # alpha = 0.05, m = 4: thresholds 0.0125, 0.0167, 0.025, 0.05 for the sorted p-values
    p = [0.04, 0.001, 0.013, 0.03]
    assert S.holm_reject(p, 0.05).tolist() == [False, True, True, False]  # 0.03 > 0.025 stops: 0.04 kept too
    assert S.holm_reject([0.01, 0.02, 0.03, 0.04], 0.05).tolist() == [True, False, False, False]  # 0.02 > 0.0167
    assert S.holm_reject([0.001, 0.002, 0.003, 0.04], 0.05).all()
    assert not S.holm_reject([0.02, 0.02], 0.03).any()  # 0.02 > 0.015: Bonferroni-like first step
    with pytest.raises(ValueError, match="pvalues"):
        S.holm_reject([0.1, 1.5])
