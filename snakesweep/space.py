"""`sweep.space`: distributions, and the one mapping from the unit cube onto parameter values.

Random points (numpy), scrambled Sobol points (scipy.stats.qmc) and halving's first round are all
points of the unit cube [0, 1)^d mapped through each dimension here, so the three agree on what a
space means. Optuna gets the same dimensions as its own distributions (:func:`to_optuna`).

Why these choices:

- Dimensions are taken in sorted name order, so reordering keys in the YAML file (formatting, not
  meaning) never changes the points.
- The i-th point of a seed never depends on how many points are asked for: numpy fills
  ``random((n, d))`` row by row and Sobol is a sequence, so growing ``n_trials`` keeps every
  earlier point (and its trial id, and its finished results) and only adds new ones.
- Continuous values are rounded to 6 significant digits: trial ids hash parameters, CSVs show
  them, and 0.00123457 reads better than 0.0012345678901234 at no cost to the search.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from typing import Any

from .config import ChoiceDim, IntDim, LogUniformDim, UniformDim

Dim = UniformDim | LogUniformDim | IntDim | ChoiceDim
SIGNIFICANT = 6


def dims(space: dict[str, Dim]) -> list[tuple[str, Dim]]:
    """The space's dimensions in the order every sampler uses (sorted by name)."""
    return sorted(space.items())


def round_value(x: float) -> float:
    return float(f"{x:.{SIGNIFICANT}g}")


def _clamp(x: float, lo: float, hi: float) -> float:
    return min(max(x, lo), hi)


def from_unit(dim: Dim, u: float) -> Any:
    """The value at quantile `u` in [0, 1) of one dimension."""
    u = _clamp(float(u), 0.0, math.nextafter(1.0, 0.0))
    if isinstance(dim, UniformDim):
        lo, hi = dim.uniform
        return _clamp(round_value(lo + u * (hi - lo)), lo, hi)
    if isinstance(dim, LogUniformDim):
        lo, hi = dim.loguniform
        return _clamp(round_value(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))), lo, hi)
    if isinstance(dim, IntDim):
        lo, hi = dim.int_
        if dim.log:  # evenly in log space over [lo, hi + 1), floored: each integer gets its log-width
            v = math.exp(math.log(lo) + u * (math.log(hi + 1) - math.log(lo)))
        else:
            v = lo + u * (hi - lo + 1)
        return int(_clamp(math.floor(v), lo, hi))
    if isinstance(dim, ChoiceDim):
        return dim.choice[min(int(u * len(dim.choice)), len(dim.choice) - 1)]
    raise TypeError(f"unknown space dimension {dim!r}")


def unit_points(method: str, n: int, d: int, seed: int):
    """`n` points of [0, 1)^d: `random` (numpy PCG64) or `sobol` (scrambled, scipy.stats.qmc)."""
    import numpy as np

    if n == 0:
        return np.zeros((0, d))
    if method == "random":
        return np.random.default_rng(seed).random((n, d))
    if method == "sobol":
        from scipy.stats import qmc

        with warnings.catch_warnings():
            # n need not be a power of two (config/README.md says why powers of two are better)
            warnings.filterwarnings("ignore", message=".*balance properties of Sobol.*")
            return qmc.Sobol(d, scramble=True, rng=seed).random(n)
    raise ValueError(f"unknown sampler {method!r}")


def sample(space: dict[str, Dim], n: int, seed: int, method: str) -> list[dict[str, Any]]:
    """`n` points of the space (dicts name -> value), deterministic for (space, seed, method)."""
    names = dims(space)
    return [{name: from_unit(dim, u) for (name, dim), u in zip(names, row)} for row in unit_points(method, n, len(names), seed)]


def probe(space: dict[str, Dim]) -> list[dict[str, Any]]:
    """The space's corner points (every low end, every high end): what parse-time checks of a
    workload's parameters see before any round has chosen a trial."""
    names = dims(space)
    return [{name: from_unit(dim, u) for name, dim in names} for u in (0.0, 1.0)]


def to_optuna(dim: Dim):
    """The same dimension as an Optuna distribution (for rebuilding a study from results)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(dim, UniformDim):
        return FloatDistribution(*dim.uniform)
    if isinstance(dim, LogUniformDim):
        return FloatDistribution(*dim.loguniform, log=True)
    if isinstance(dim, IntDim):
        return IntDistribution(*dim.int_, log=dim.log)
    if isinstance(dim, ChoiceDim):
        return CategoricalDistribution(tuple(dim.choice))
    raise TypeError(f"unknown space dimension {dim!r}")


def contains(dim: Dim, value: Any) -> bool:
    """Whether `value` (read back from a result file) is a point of the dimension."""
    if isinstance(dim, ChoiceDim):
        return any(type(value) is type(c) and value == c for c in dim.choice)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(dim, IntDim):
        return float(value).is_integer() and dim.int_[0] <= value <= dim.int_[1]
    lo, hi = dim.uniform if isinstance(dim, UniformDim) else dim.loguniform
    return lo <= value <= hi


def describe(space: dict[str, Dim]) -> Iterable[str]:
    for name, dim in dims(space):
        if isinstance(dim, ChoiceDim):
            yield f"{name} in {dim.choice}"
        elif isinstance(dim, IntDim):
            yield f"{name} int [{dim.int_[0]}, {dim.int_[1]}]{' log' if dim.log else ''}"
        elif isinstance(dim, LogUniformDim):
            yield f"{name} loguniform [{dim.loguniform[0]:g}, {dim.loguniform[1]:g}]"
        else:
            yield f"{name} uniform [{dim.uniform[0]:g}, {dim.uniform[1]:g}]"
