"""Population-based training's selection rules (Jaderberg et al., 2017): pure functions, no I/O.

A population of members trains in generations of a fixed budget step (generation g trains each
member from its checkpoint at g * step to (g + 1) * step). Between generations, from the scores
of generation g - 1 (:func:`next_generation`):

- rank the members: finite scores by the objective, ties by member id, then every member whose
  score is missing or failed (None, NaN, inf), by id;
- k = :func:`quantile_count` (floor(quantile * N), at least 1 when N >= 2, 0 for N = 1); the top
  k members (finite scores only) are the donors; the bottom is the last max(k, failed) members
  of the ranking, never a donor: a failed member always counts as bottom, and it fills a slot;
- exploit: each bottom member, in id order, copies the checkpoint of a donor chosen uniformly
  with the generation's RNG; explore: the donor's parameters, each space dimension perturbed
  (:func:`perturb`); keys outside the space (fixed parameters) are copied;
- every other member continues from its own checkpoint with its own parameters;
- with no donor (every member failed) a failed member is "dead": it has no next trial.

The RNG is numpy's PCG64 seeded by (sweep seed, generation) (:func:`generation_seed`) and draws
a fixed amount per decision (one number per donor, three per dimension), so the same (seed,
generation, population, scores) always give the same next generation: kill -9 and resume
re-choose it identically from the result files.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .hyperband import rank
from .space import contains, dims, from_unit, round_value, sample

if TYPE_CHECKING:
    from .space import Dim

QUANTILE = 0.25  # Ray Tune's quantile_fraction
FACTORS = (0.8, 1.2)  # Ray Tune's perturbation_factors
RESAMPLE_PROBABILITY = 0.25  # Ray Tune's resample_probability


def quantile_count(n: int, quantile: float = QUANTILE) -> int:
    """How many members are the top (donors) and, at least, the bottom of a population of n:
    floor(quantile * n), at least 1 when n >= 2, 0 when n < 2 (nobody to copy from). The floor
    takes 1e-9 of slack so 0.29 * 100 (28.999999999999996 in floating point) gives 29.
    quantile is in (0, 0.5], so top and bottom never overlap."""
    _check_quantile(quantile)
    if n < 2:
        return 0
    return max(1, math.floor(quantile * n + 1e-9))


def _check_quantile(quantile: float) -> None:
    if isinstance(quantile, bool) or not isinstance(quantile, (int, float)) or not 0 < quantile <= 0.5:
        raise ValueError(f"quantile must be in (0, 0.5], got {quantile!r}")


def generation_seed(seed: int, generation: int) -> int:
    """A fixed seed per (sweep seed, generation)."""
    return int(hashlib.sha256(f"{seed}:pbt:{generation}".encode()).hexdigest()[:8], 16)


def generation_budget(generation: int, step: float) -> float | int:
    """The total budget a member has trained after generation g: (g + 1) * step (an int when
    step is whole). Generation g's trial trains the increment `step` from generation g - 1's
    checkpoint."""
    if generation < 0:
        raise ValueError(f"generation must be >= 0, got {generation}")
    total = (generation + 1) * step
    return int(total) if float(step).is_integer() else round_value(total)


def _key(config: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), repr(v)) for k, v in config.items()))


def initial_population(space: Mapping[str, Any], size: int, seed: int, tries: int = 20) -> dict[int, dict[str, Any]]:
    """Generation 0: member id (0..) -> a point of the space, drawn with generation_seed(seed, 0)
    through snakesweep.space.sample ("random"); a point drawn before is skipped for the next of
    the same stream (up to tries * size points), so a small space (choices only) may give fewer
    members than `size`, never two members with the same parameters."""
    if size < 1:
        raise ValueError(f"the population size must be >= 1, got {size}")
    seen: set[tuple[tuple[str, str], ...]] = set()
    members: dict[int, dict[str, Any]] = {}
    for point in sample(dict(space), tries * size, generation_seed(seed, 0), "random"):
        if len(members) == size:
            break
        key = _key(point)
        if key not in seen:
            seen.add(key)
            members[len(members)] = point
    return members


# ---------------------------------------------------------------------------- explore


def _kind(dim: Any) -> str:
    """The dimension's kind, read from its fields (the config models are not imported here)."""
    for kind, attr in (("choice", "choice"), ("int", "int_"), ("loguniform", "loguniform"), ("uniform", "uniform")):
        if getattr(dim, attr, None) is not None:
            return kind
    raise TypeError(f"unknown space dimension {dim!r}")


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def perturb(dim: Dim, value: Any, draws: Sequence[float], factors: Sequence[float] = FACTORS,
            resample_probability: float = RESAMPLE_PROBABILITY) -> tuple[Any, str]:
    """One dimension's explore step from three uniform draws in [0, 1): (new value, how).

    - draws[0] < resample_probability, or `value` not a point of the dimension (a space edited
      since): resample, snakesweep.space.from_unit(dim, draws[1]); how = "resample";
    - continuous (uniform, loguniform): value * factor, factor = factors[int(draws[2] * len)],
      6 significant digits, clipped to the bounds (loguniform bounds are > 0, so the value stays
      positive; a uniform value of 0 stays 0); how = "x<factor>";
    - int: value * factor rounded half up; when that leaves it unchanged the value moves by 1 in
      the factor's direction (small ints do not get stuck); clipped to the bounds; how = "x<factor>";
    - choice: a neighbour in the list, the lower one when draws[2] < 0.5 else the upper one; at an
      end of the list, the only neighbour; a one-element list stays; how = "neighbour".
    """
    kind = _kind(dim)
    if draws[0] < resample_probability or not contains(dim, value):
        return from_unit(dim, draws[1]), "resample"
    if kind == "choice":
        options = list(dim.choice)
        i = next(j for j, c in enumerate(options) if type(c) is type(value) and c == value)
        neighbours = [j for j in (i - 1, i + 1) if 0 <= j < len(options)]
        if not neighbours:
            return value, "neighbour"
        j = neighbours[0] if len(neighbours) == 1 else neighbours[0 if draws[2] < 0.5 else 1]
        return options[j], "neighbour"
    factor = float(factors[min(int(draws[2] * len(factors)), len(factors) - 1)])
    how = f"x{factor:g}"
    if kind == "int":
        lo, hi = dim.int_
        new = _round_half_up(value * factor)
        if new == value and factor != 1.0:
            new = value + (1 if factor > 1.0 else -1)
        return int(min(max(new, lo), hi)), how
    lo, hi = dim.loguniform if kind == "loguniform" else dim.uniform
    return min(max(round_value(value * factor), lo), hi), how


def explore(space: Mapping[str, Any], params: Mapping[str, Any], rng: Any, factors: Sequence[float] = FACTORS,
            resample_probability: float = RESAMPLE_PROBABILITY) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A donor's parameters perturbed, dimension by dimension in sorted name order (three draws
    of `rng` each, a numpy Generator): (new params, {dim: {"from", "to", "how"}}). Keys outside
    the space are copied."""
    new = dict(params)
    changes: dict[str, dict[str, Any]] = {}
    for name, dim in dims(dict(space)):
        draws = [float(x) for x in rng.random(3)]
        old = params.get(name)
        value, how = perturb(dim, old, draws, factors, resample_probability)
        new[name] = value
        changes[name] = {"from": old, "to": value, "how": how}
    return new, changes


# ---------------------------------------------------------------------------- exploit


@dataclass(frozen=True)
class Member:
    """One member's next generation. `outcome`: "kept" (continues its own checkpoint with its
    own parameters), "exploited" (continues `continued_from`'s checkpoint with explored
    parameters) or "dead" (failed with no donor: `params` None, no next trial)."""

    member: int
    generation: int
    params: dict[str, Any] | None
    continued_from: int | None
    outcome: str
    score: float | None
    rank: int
    explore: dict[str, dict[str, Any]] = field(default_factory=dict)

    def lineage(self) -> dict[str, Any]:
        """The round file's lineage entry: which member's checkpoint (of generation - 1) this
        member continues from, its score there, and its parameters for this generation."""
        return {
            "member": self.member, "generation": self.generation, "outcome": self.outcome,
            "continued_from": None if self.continued_from is None
            else {"member": self.continued_from, "generation": self.generation - 1},
            "score": self.score, "rank": self.rank, "params": self.params, "explore": self.explore,
        }


def next_generation(
    space: Mapping[str, Any],
    population: Mapping[int, Mapping[str, Any]],
    scores: Mapping[int, Any],
    generation: int,
    seed: int,
    direction: str,
    quantile: float = QUANTILE,
    factors: Sequence[float] = FACTORS,
    resample_probability: float = RESAMPLE_PROBABILITY,
) -> list[Member]:
    """Generation `generation` (>= 1) of the live `population` (member id -> its parameters in
    generation - 1), from `scores` (member id -> that generation's objective; a member missing
    here failed). One :class:`Member` per member of `population`, in id order. See the module
    docstring for the rule; deterministic for (seed, generation, population, scores)."""
    import numpy as np  # lazy: the module's import stays light for the plan

    if generation < 1:
        raise ValueError("generation 0 is initial_population; exploitation starts at generation 1")
    _check_quantile(quantile)
    if not factors or any(isinstance(f, bool) or not isinstance(f, (int, float)) or not f > 0 for f in factors):
        raise ValueError(f"perturbation factors must be numbers > 0, got {list(factors)!r}")
    if not 0 <= resample_probability <= 1:
        raise ValueError(f"resample_probability must be in [0, 1], got {resample_probability!r}")
    ids = sorted(population)
    ranking = rank([(m, scores.get(m)) for m in ids], direction)
    position = {m: i for i, (m, _v) in enumerate(ranking)}
    score = dict(ranking)
    k = quantile_count(len(ids), quantile)
    top = [m for m, v in ranking if v is not None][:k]
    failed = sum(v is None for _m, v in ranking)
    bottom = {m for m, _v in ranking[len(ranking) - max(k, failed):]} - set(top) if ranking else set()
    rng = np.random.default_rng(generation_seed(seed, generation))
    out = []
    for m in ids:
        common = {"member": m, "generation": generation, "score": score[m], "rank": position[m]}
        if m not in bottom:
            out.append(Member(params=dict(population[m]), continued_from=m, outcome="kept", **common))
        elif not top:
            out.append(Member(params=None, continued_from=None, outcome="dead", **common))
        else:
            donor = top[int(rng.integers(len(top)))]
            params, changes = explore(space, population[donor], rng, factors, resample_probability)
            out.append(Member(params=params, continued_from=donor, outcome="exploited", explore=changes, **common))
    return out


def ancestry(generations: Sequence[Mapping[int, Mapping[str, Any]]], member: int) -> list[dict[str, Any]]:
    """The schedule of parameters that produced `member`'s checkpoint in the last generation:
    from generation 0 to the last, the member whose checkpoint was trained in each generation
    and with which parameters, following `continued_from` back. `generations[g]` maps member
    id -> its lineage entry in generation g (:meth:`Member.lineage`; generation 0's entries need
    only `params`). Oldest first."""
    chain = []
    current: int | None = member
    for g in range(len(generations) - 1, -1, -1):
        if current is None or current not in generations[g]:
            break
        entry = generations[g][current]
        chain.append({"generation": g, "member": current, "params": entry.get("params")})
        parent = entry.get("continued_from")
        current = parent["member"] if isinstance(parent, Mapping) else None
    return chain[::-1]
