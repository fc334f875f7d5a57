"""Hyperband's selection rules (Li et al., JMLR 18(185), 2018, Algorithm 1): pure functions, no I/O.

Hyperband runs several successive-halving brackets side by side, from the most aggressive
(many configurations at a small budget) to the most conservative (a few at the top budget).
With budgets counted in units of `min_budget`, R = max_budget / min_budget:

- s_max = floor(log_eta(R)); brackets s = s_max, s_max - 1, ..., 0 (s_max + 1 of them).
- bracket s starts n = ceil((s_max + 1) / (s + 1) * eta**s) configurations at r = R * eta**-s;
- its rung i (i = 0..s) keeps n_i = floor(n * eta**-i) configurations at r_i = r * eta**i,
  so every bracket's last rung trains at exactly `max_budget`.

For R = 81, eta = 3 (the paper's Table 1): n = 81, 34, 15, 8, 5 and r = 1, 3, 9, 27, 81.

In the workflow every bracket's rung i is chosen by round i (a Snakemake checkpoint): round 0
starts every bracket, round i promotes, within each bracket s >= i, the best n_i of rung i - 1
(:func:`round_plan`, :func:`promote`). A bracket's configurations are drawn from the space with
a seed of its own (:func:`bracket_seed`) and are distinct across brackets, so a configuration at
a budget names one trial and the trial it continues from (its previous rung) is unambiguous.

Budgets follow snakesweep.search.ladder: top-down from `max_budget` (r_i = max / eta**(s - i)),
whole numbers when both bounds are whole (epochs), so bracket s_max's rungs are halving's ladder.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .space import contains, dims, round_value, sample

Budget = int | float


@dataclass(frozen=True)
class Rung:
    """Rung `index` of a bracket: how many configurations it trains, and to which budget."""

    index: int
    configs: int
    budget: Budget


@dataclass(frozen=True)
class Bracket:
    """Bracket `s`: `n` configurations start at budget `r`; `rungs` are its s + 1 rungs."""

    s: int
    n: int
    r: Budget
    rungs: tuple[Rung, ...]

    @property
    def work(self) -> float:
        """The budget the bracket spends if every rung trains from scratch (sum of n_i * r_i)."""
        return float(sum(rung.configs * rung.budget for rung in self.rungs))

    @property
    def work_continued(self) -> float:
        """The budget it spends when a promoted configuration continues from its previous rung's
        checkpoint (each rung trains only the increment r_i - r_{i-1})."""
        total, before = 0.0, 0.0
        for rung in self.rungs:
            total += rung.configs * (rung.budget - before)
            before = rung.budget
        return total


def _check(min_budget: float, max_budget: float, eta: int) -> None:
    if isinstance(eta, bool) or not isinstance(eta, int) or eta < 2:
        raise ValueError(f"eta (the reduction factor) must be a whole number >= 2, got {eta!r}")
    for name, value in (("min_budget", min_budget), ("max_budget", max_budget)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if not min_budget < max_budget:
        raise ValueError(f"min_budget ({min_budget:g}) must be below max_budget ({max_budget:g})")


def s_max(min_budget: float, max_budget: float, eta: int) -> int:
    """floor(log_eta(max_budget / min_budget)), computed without a floating-point logarithm:
    the largest s with min_budget * eta**s <= max_budget (a relative 1e-9 of slack absorbs
    decimal budgets such as 0.1 .. 0.9)."""
    _check(min_budget, max_budget, eta)
    ratio = max_budget / min_budget
    s = 0
    while eta ** (s + 1) <= ratio * (1 + 1e-9):
        s += 1
    return s


def n_brackets(min_budget: float, max_budget: float, eta: int) -> int:
    """The number of brackets, Optuna's HyperbandPruner formula (optuna/pruners/_hyperband.py,
    from the paper's s_max + 1 and the ASHA paper's min resource):

        n_brackets = floor(log_{reduction_factor}(max_resource / min_resource)) + 1

    Optuna evaluates the logarithm in floating point, which undercounts where the ratio is an
    exact power of eta but the logarithm rounds down (math.log(243, 3) = 4.999999999999999:
    Optuna gets 5 brackets for max 243, min 1, eta 3, the formula says 6). Here the floor is exact
    (:func:`s_max`); everywhere else the two agree (tests/test_hyperband.py checks both)."""
    return s_max(min_budget, max_budget, eta) + 1


def _budget(min_budget: float, max_budget: float, eta: int, k: int) -> Budget:
    """max_budget / eta**k, as search.ladder rounds it: an int (at least min) when both bounds are
    whole, else 6 significant digits, never below min_budget."""
    b = max_budget / eta**k
    if float(min_budget).is_integer() and float(max_budget).is_integer():
        return max(int(min_budget), int(round(b)))
    return round_value(max(b, min_budget))


def brackets(min_budget: float, max_budget: float, eta: int = 3) -> list[Bracket]:
    """Hyperband's brackets, s = s_max first (the paper's order), each with its rungs.

    n = ceil((s_max + 1) * eta**s / (s + 1)) in integer arithmetic (Optuna's per-bracket trial
    allocation, `_calculate_trial_allocation_budget`, is the same expression); rung i keeps
    n // eta**i configurations (never 0: n >= eta**s) at budget max / eta**(s - i)."""
    top = s_max(min_budget, max_budget, eta)
    out = []
    for s in range(top, -1, -1):
        n = -(-(top + 1) * eta**s // (s + 1))
        rungs = tuple(Rung(i, n // eta**i, _budget(min_budget, max_budget, eta, s - i)) for i in range(s + 1))
        out.append(Bracket(s=s, n=n, r=rungs[0].budget, rungs=rungs))
    return out


def round_plan(plan: Sequence[Bracket]) -> list[list[tuple[int, Rung]]]:
    """Which (bracket s, rung) each round runs: round i holds rung i of every bracket with s >= i,
    so round 0 starts all brackets and there are s_max + 1 rounds (the last holds bracket s_max's
    top rung only)."""
    rounds = max((len(b.rungs) for b in plan), default=0)
    return [[(b.s, b.rungs[i]) for b in plan if i < len(b.rungs)] for i in range(rounds)]


def total_work(plan: Sequence[Bracket], continued: bool = True) -> float:
    """All brackets' budget (per seed): with continuation (increments only) or from scratch."""
    return sum(b.work_continued if continued else b.work for b in plan)


# ---------------------------------------------------------------------------- sampling


def bracket_seed(seed: int, s: int) -> int:
    """A fixed seed per (sweep seed, bracket): brackets draw different points, reproducibly."""
    return int(hashlib.sha256(f"{seed}:hyperband:{s}".encode()).hexdigest()[:8], 16)


def _key(config: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), repr(v)) for k, v in config.items()))


def sample_brackets(space: Mapping[str, Any], plan: Sequence[Bracket], seed: int,
                    tries: int = 20) -> dict[int, list[dict[str, Any]]]:
    """Each bracket's starting configurations (bracket s -> its n points of the space), drawn
    with :func:`bracket_seed` through snakesweep.space.sample ("random"), in the order of `plan`.

    A point already drawn, by this bracket or an earlier one of `plan`, is skipped and the next
    point of the same seed's stream taken (the i-th point never depends on how many are drawn),
    up to `tries` * n points: a small space (choices only) may leave a bracket with fewer than
    n, never with a configuration another bracket has."""
    seen: set[tuple[tuple[str, str], ...]] = set()
    out: dict[int, list[dict[str, Any]]] = {}
    for b in plan:
        chosen: list[dict[str, Any]] = []
        for point in sample(dict(space), tries * b.n, bracket_seed(seed, b.s), "random"):
            if len(chosen) == b.n:
                break
            key = _key(point)
            if key not in seen:
                seen.add(key)
                chosen.append(point)
        out[b.s] = chosen
    return out


def in_space(space: Mapping[str, Any], config: Mapping[str, Any]) -> bool:
    """Whether a configuration read back from a round file is a point of the space."""
    return all(name in config and contains(dim, config[name]) for name, dim in dims(dict(space)))


# ---------------------------------------------------------------------------- promotion


def score_of(value: Any) -> float | None:
    """A usable score: a finite int/float (not a bool); anything else (None, NaN, inf) is failed."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def rank(scores: Iterable[tuple[Any, Any]], direction: str) -> list[tuple[Any, float | None]]:
    """(key, score) best first: finite scores by the objective (`direction` "max" or "min"), ties
    by key; then every failed/missing score (None, NaN, inf) by key. Keys must be unique and
    sortable among themselves (canonical JSON strings, member ids)."""
    if direction not in ("max", "min"):
        raise ValueError(f"direction must be 'max' or 'min', got {direction!r}")
    items = [(k, score_of(v)) for k, v in scores]
    keys = [k for k, _ in items]
    if len(set(keys)) != len(keys):
        raise ValueError("scores name a key twice")
    sign = -1.0 if direction == "max" else 1.0
    ok = sorted(((k, v) for k, v in items if v is not None), key=lambda kv: (sign * kv[1], kv[0]))
    failed = sorted(((k, v) for k, v in items if v is None), key=lambda kv: kv[0])
    return ok + failed


def promote(scores: Iterable[tuple[Any, Any]], k: int, direction: str) -> list[Any]:
    """The keys of the best `k` configurations by score, best first (:func:`rank`). A failed or
    missing score is never promoted: with fewer than k finite scores, fewer go on."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return [key for key, v in rank(scores, direction) if v is not None][:k]


def rung_outcomes(scores: Iterable[tuple[Any, Any]], k: int, direction: str) -> list[dict[str, Any]]:
    """The round file's record of one rung's promotion: per key, in rank order, its score,
    `outcome` ("promoted", "stopped" or "failed") and, when promoted, its `rank` (0 = best)."""
    scores = list(scores)
    kept = promote(scores, k, direction)
    position = {key: i for i, key in enumerate(kept)}
    out = []
    for key, v in rank(scores, direction):
        entry: dict[str, Any] = {"key": key, "score": v,
                                 "outcome": "failed" if v is None else "promoted" if key in position else "stopped"}
        if key in position:
            entry["rank"] = position[key]
        out.append(entry)
    return out


def promote_brackets(plan: Sequence[Bracket], r: int, scores: Mapping[int, Iterable[tuple[Any, Any]]],
                     direction: str) -> dict[int, list[Any]]:
    """Round r >= 1: for each bracket s >= r, the keys promoted from its rung r - 1 to rung r
    (the best rungs[r].configs of `scores[s]`, that rung's (key, score) pairs). A bracket
    missing from `scores` promotes nothing (all its configurations failed or none was drawn)."""
    if r < 1:
        raise ValueError("round 0 samples (sample_brackets); promotion starts at round 1")
    return {b.s: promote(scores.get(b.s, ()), b.rungs[r].configs, direction) for b in plan if r < len(b.rungs)}
