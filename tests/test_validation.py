"""ntknb.validation: each check returns the value or raises ValueError naming the parameter."""

import functools
import math

import pytest

from ntknb.validation import check_bool, check_choice, check_clip, check_float, check_int, check_sequence


def test_check_choice():
    assert check_choice("dataset", "mnist", ["mnist", "cifar10"]) == "mnist"
    with pytest.raises(ValueError, match=r"'dataset' must be one of \['mnist', 'cifar10'\], got 'svhn'"):
        check_choice("dataset", "svhn", ["mnist", "cifar10"])
    with pytest.raises(ValueError, match="'depth'"):
        check_choice("depth", True, [1, 2])  # True == 1, but a bool is not a depth
    with pytest.raises(ValueError, match="'x'"):
        check_choice("x", [1], [1, 2])


def test_check_int():
    assert check_int("n", 5, min=1) == 5
    assert check_int("n", 4.0) == 4 and type(check_int("n", 4.0)) is int
    with pytest.raises(ValueError, match=r"'n' must be an integer >= 1, got 0"):
        check_int("n", 0, min=1)
    with pytest.raises(ValueError, match=r"'n' must be an integer in \[1, 10\], got 11"):
        check_int("n", 11, min=1, max=10)
    with pytest.raises(ValueError, match=r"'n' must be an integer <= 3"):
        check_int("n", 4, max=3)
    for bad in (True, 2.5, "3", None, math.nan):
        with pytest.raises(ValueError, match="'n'"):
            check_int("n", bad)


def test_check_float():
    assert check_float("eps", 1) == 1.0 and type(check_float("eps", 1)) is float
    assert check_float("eps", 0.0, min=0.0) == 0.0
    with pytest.raises(ValueError, match=r"'eps' must be a number in \[0.0, 1.0\], got 1.5"):
        check_float("eps", 1.5, min=0.0, max=1.0)
    with pytest.raises(ValueError, match=r"'lr' must be a number > 0"):
        check_float("lr", 0.0, min=0.0, min_inclusive=False)
    with pytest.raises(ValueError, match=r"'p' must be a number in \[0, 1\)"):
        check_float("p", 1.0, min=0, max=1, max_inclusive=False)
    for bad in (True, "0.1", None, math.inf, math.nan):
        with pytest.raises(ValueError, match="'eps'"):
            check_float("eps", bad)


def test_check_bool():
    assert check_bool("flag", False) is False
    with pytest.raises(ValueError, match="'flag' must be True or False, got 1"):
        check_bool("flag", 1)


def test_check_sequence():
    assert check_sequence("widths", (64, 128), of=int) == [64, 128]
    assert check_sequence("eps", [1, 0.5], of=float) == [1, 0.5]
    with pytest.raises(ValueError, match="'widths' must be a list, got 'abc'"):
        check_sequence("widths", "abc")
    with pytest.raises(ValueError, match="'widths' must be a list of int, item 1 is True"):
        check_sequence("widths", [1, True], of=int)
    with pytest.raises(ValueError, match="'widths' must have at least 1 items"):
        check_sequence("widths", [], min_length=1)
    with pytest.raises(ValueError, match="'pair' must have exactly 2 items"):
        check_sequence("pair", [1], length=2)
    with pytest.raises(ValueError, match="'ks' must have at most 1 items"):
        check_sequence("ks", [1, 2], max_length=1)
    with pytest.raises(ValueError, match=r"'attacks': every item must be one of \['fgsm', 'pgd'\], item 0 is 'cw'"):
        check_sequence("attacks", ["cw"], allowed=["fgsm", "pgd"])
    item = functools.partial(check_float, min=0.0)
    assert check_sequence("eps", [0, 1], item=item) == [0.0, 1.0]
    with pytest.raises(ValueError, match=r"'eps\[1\]' must be a number >= 0.0"):
        check_sequence("eps", [0, -1], item=item)


def test_check_int_none_ok_and_check_float_of_a_0d_array():
    import numpy as np

    assert check_int("batch_size", None, min=1, none_ok=True) is None
    with pytest.raises(ValueError, match="'batch_size' must be an integer >= 1, got None"):
        check_int("batch_size", None, min=1)
    assert check_float("eps", np.float32(0.5), min=0.0) == 0.5
    assert check_float("eps", np.asarray(0.25), min=0.0) == 0.25
    with pytest.raises(ValueError, match="'eps' must be a number >= 0.0"):
        check_float("eps", np.asarray([0.25]), min=0.0)


def test_check_clip():
    assert check_clip("clip", None) is None
    assert check_clip("clip", [0, 1]) == (0.0, 1.0)
    for bad in [(1.0, 0.0), (0.0,), "ab", (0.0, math.inf)]:
        with pytest.raises(ValueError, match=r"'clip' must be None or a pair \(low, high\) with low < high"):
            check_clip("clip", bad)
