"""snakesweep.stats: t intervals, Welch's test and eta squared against scipy and by hand."""

import math

import pytest
from scipy import stats as sps

from snakesweep.stats import eta_squared, mean_ci, t_quantile, welch_t_test


def test_mean_ci_matches_scipy_t_interval():
    vals = [0.91, 0.93, 0.90, 0.94]
    s = mean_ci(vals)
    lo, hi = sps.t.interval(0.95, len(vals) - 1, loc=sps.tmean(vals), scale=sps.sem(vals))
    assert s.n == 4
    assert s.mean == pytest.approx(sum(vals) / 4)
    assert s.std == pytest.approx(sps.tstd(vals))
    assert (s.ci_low, s.ci_high) == (pytest.approx(lo), pytest.approx(hi))


def test_mean_ci_undefined_parts_are_none_and_nan_is_dropped():
    assert mean_ci([]) == mean_ci([None, float("nan")])
    assert mean_ci([]).mean is None
    one = mean_ci([2.0, float("nan")])
    assert (one.n, one.mean, one.std, one.ci_low) == (1, 2.0, None, None)


def test_t_quantile_is_the_t_ppf():
    for df in (1, 2, 5, 30):
        assert t_quantile(0.975, df) == pytest.approx(sps.t.ppf(0.975, df))


@pytest.mark.parametrize(
    "a,b",
    [
        ([0.91, 0.92, 0.90], [0.85, 0.86, 0.84, 0.87]),
        ([1.0, 2.0, 3.0, 4.0, 5.0], [2.5, 2.6, 2.4]),
        ([0.5, 0.51], [0.49, 0.5]),
    ],
)
def test_welch_matches_scipy(a, b):
    w = welch_t_test(a, b)
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert w.t == pytest.approx(ref.statistic)
    assert w.p_value == pytest.approx(ref.pvalue)
    assert w.mean_diff == pytest.approx(sum(a) / len(a) - sum(b) / len(b))


def test_welch_undefined_cases_say_why():
    assert welch_t_test([0.9], [0.8, 0.7]).p_value is None
    assert "fewer than 2" in welch_t_test([0.9], [0.8, 0.7]).reason
    zero = welch_t_test([0.9, 0.9], [0.8, 0.8])
    assert zero.p_value is None and "zero variance" in zero.reason
    assert welch_t_test([], [1.0, 2.0]).mean_diff is None


def test_eta_squared_by_hand():
    # groups {1,3} and {5,7}: grand mean 4, SS_total = 9+1+1+9 = 20,
    # SS_between = 2*(2-4)^2 + 2*(6-4)^2 = 16 -> 0.8
    assert eta_squared([[1, 3], [5, 7]]) == pytest.approx(0.8)
    assert eta_squared([[1, 1], [5, 5]]) == pytest.approx(1.0)
    assert eta_squared([[1, 5], [1, 5]]) == pytest.approx(0.0)
    assert eta_squared([[1, 2, 3]]) is None  # one level
    assert eta_squared([[2, 2], [2]]) is None  # no variance at all
    assert not math.isnan(eta_squared([[1, float("nan")], [3]]))
