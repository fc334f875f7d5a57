"""Small-sample statistics used by every report: seeds and cycles are few, so the t-distribution."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """Mean, sample std and a two-sided t confidence interval; None where undefined (n < 2)."""
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(vals)
    if n == 0:
        return Summary(0, None, None, None, None)
    mean = math.fsum(vals) / n
    if n == 1:
        return Summary(1, mean, None, None, None)
    var = math.fsum((v - mean) ** 2 for v in vals) / (n - 1)
    std = math.sqrt(var)
    from scipy.stats import t  # imported late: only reports pay for scipy

    half = t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)
