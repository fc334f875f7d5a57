"""Small-sample statistics used by every report: seeds and cycles are few, so the t-distribution."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None


@lru_cache(maxsize=4096)
def t_quantile(q: float, df: float) -> float:
    """Quantile of Student's t; cached because reports ask for the same (q, df) thousands of times."""
    from scipy.special import stdtrit  # imported late, and lighter than scipy.stats

    return float(stdtrit(df, q))


def _clean(values: Sequence[float | None]) -> list[float]:
    out = []
    for v in values:
        if v is None:
            continue
        f = float(v)
        if not math.isnan(f):
            out.append(f)
    return out


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """Mean, sample std and a two-sided t confidence interval; None where undefined (n < 2)."""
    vals = _clean(values)
    n = len(vals)
    if n == 0:
        return Summary(0, None, None, None, None)
    mean = math.fsum(vals) / n
    if n == 1:
        return Summary(1, mean, None, None, None)
    var = math.fsum((v - mean) ** 2 for v in vals) / (n - 1)
    std = math.sqrt(var)
    half = t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class WelchResult:
    """Welch's unequal-variance t-test. Fields are None when the test is undefined.

    `reason` says why it is undefined: fewer than two values on a side, or no spread at all.
    """

    n_a: int
    n_b: int
    mean_diff: float | None
    t: float | None
    df: float | None
    p_value: float | None
    reason: str | None = None


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> WelchResult:
    """Two-sided Welch's t-test of mean(a) == mean(b); NaN and None values are dropped.

    Matches scipy.stats.ttest_ind(a, b, equal_var=False). Undefined (p_value None) when either
    side has fewer than two values, or when both sides have zero variance (then the
    difference is exact for these seeds but no sampling model supports a p-value).
    """
    xa, xb = _clean(a), _clean(b)
    na, nb = len(xa), len(xb)
    ma = math.fsum(xa) / na if na else None
    mb = math.fsum(xb) / nb if nb else None
    sa = math.sqrt(math.fsum((x - ma) ** 2 for x in xa) / (na - 1)) if na >= 2 else None
    sb = math.sqrt(math.fsum((x - mb) ** 2 for x in xb) / (nb - 1)) if nb >= 2 else None
    return welch_from_stats(ma, sa, na, mb, sb, nb)


def welch_from_stats(
    mean_a: float | None, std_a: float | None, n_a: int, mean_b: float | None, std_b: float | None, n_b: int
) -> WelchResult:
    """Welch's t-test from each side's mean, sample std (ddof 1) and count: what a trial's
    aggregated measurement cycles keep (the cycle values themselves stay in the cycle files)."""
    na, nb = int(n_a), int(n_b)
    if na == 0 or nb == 0 or mean_a is None or mean_b is None:
        return WelchResult(na, nb, None, None, None, None, "no values on one side")
    diff = float(mean_a) - float(mean_b)
    if na < 2 or nb < 2 or std_a is None or std_b is None:
        return WelchResult(na, nb, diff, None, None, None, "fewer than 2 values on one side")
    sa, sb = float(std_a) ** 2 / na, float(std_b) ** 2 / nb
    se2 = sa + sb
    if se2 == 0:
        return WelchResult(na, nb, diff, None, None, None, "zero variance on both sides")
    t = diff / math.sqrt(se2)
    df = se2**2 / ((sa**2 / (na - 1) if sa else 0.0) + (sb**2 / (nb - 1) if sb else 0.0))
    from scipy.special import stdtr  # Student's t CDF

    p = float(2.0 * stdtr(df, -abs(t)))
    return WelchResult(na, nb, diff, t, df, min(1.0, p))


def eta_squared(groups: Sequence[Sequence[float]]) -> float | None:
    """One-way ANOVA effect size: between-group sum of squares over total sum of squares.

    `groups` holds the observations per level of one factor. Returns None when there are
    fewer than two non-empty groups or when the total sum of squares is zero.
    """
    cleaned = [g for g in (_clean(g) for g in groups) if g]
    if len(cleaned) < 2:
        return None
    allv = [v for g in cleaned for v in g]
    grand = math.fsum(allv) / len(allv)
    ss_total = math.fsum((v - grand) ** 2 for v in allv)
    if ss_total <= 0:
        return None
    ss_between = math.fsum(len(g) * (math.fsum(g) / len(g) - grand) ** 2 for g in cleaned)
    return min(1.0, max(0.0, ss_between / ss_total))


# Fewer ok values than this: no interval at all, and the reason instead of a number. With 2
# values the 95% t quantile is 12.7 (df = 1): two accuracies 0.2 and 0.4 give [-0.97, 1.57],
# an interval no reader can use; from 3 values (t = 4.30) it starts to say something.
MIN_N_FOR_CI = 3


@dataclass(frozen=True)
class Interval:
    """A mean with a usable interval, or the reason there is none (`note`)."""

    n: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    note: str | None = None
    clipped: bool = False


def usable_interval(
    values: Sequence[float | None],
    confidence: float = 0.95,
    bounds: tuple[float | None, float | None] = (None, None),
    min_n: int = MIN_N_FOR_CI,
) -> Interval:
    """The two-sided t interval of the mean, made safe to read.

    * n < ``min_n``: no interval (None) and ``note`` says "n too small", rather than a number
      like [-2.0, 2.6] for an accuracy measured on 2 seeds.
    * ``bounds``: the metric's known range (accuracy in [0, 1], latency >= 0). The t interval
      is symmetric and can leave the range; its ends are clipped to the range and ``clipped``
      is set so the report can say so (the clipped interval still covers whatever the t
      interval covered inside the range, so its coverage is not reduced).
    """
    s = mean_ci(values, confidence)
    if s.n == 0:
        return Interval(0, None, None, None, None, "no value")
    if s.n < min_n:
        return Interval(s.n, s.mean, s.std, None, None, f"n too small ({s.n} < {min_n})")
    lo, hi = s.ci_low, s.ci_high
    low, high = bounds
    clipped = False
    if low is not None and lo is not None and lo < low:
        lo, clipped = low, True
    if high is not None and hi is not None and hi > high:
        hi, clipped = high, True
    return Interval(s.n, s.mean, s.std, lo, hi, None, clipped)


def t_half_width(std, n, confidence: float = 0.95):
    """Half-width of the t interval, vectorised over numpy arrays of std and n (n >= 2)."""
    import numpy as np
    from scipy.special import stdtrit

    n = np.asarray(n, dtype=float)
    std = np.asarray(std, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = stdtrit(np.maximum(n - 1, 1), 0.5 + confidence / 2)
        return np.where(n >= 2, q * std / np.sqrt(n), np.nan)
