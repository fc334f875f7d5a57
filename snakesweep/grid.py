"""Sweep -> trials: cartesian grid, seeds, explicit experiments, exclusions, stable ids.

The trial id is the only name a trial ever has (wildcard, directory, CSV key), so it is
derived from the trial's canonical parameters alone: the same parameters always give the
same id, and adding or removing other trials never renames one.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import ROUND_METHODS, ConfigError, LinRange, LogRange, Sweep, SweepConfig
from .params import flatten, nest  # noqa: F401  (nest: re-exported for callers of grid)
from .table import py_value

TRIAL_ID_LENGTH = 10
TRIAL_ID_PATTERN = f"[0-9a-f]{{{TRIAL_ID_LENGTH}}}"


@dataclass(frozen=True)
class Trial:
    id: str
    params: dict[str, Any]


def _normalise(value: Any) -> Any:
    """Numbers that are equal should hash equal: 1e-1 == 0.1, 2.0 == 2, logspace noise trimmed."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 2**53:
            return int(value)
        return float(f"{value:.12g}") if math.isfinite(value) else value
    if isinstance(value, int):
        return value
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    return value


def canonical_json(obj: Any) -> str:
    return json.dumps(_normalise(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def workload_label(workload: Any) -> str:
    """What a trial id hashes besides the parameters: a module workload's name, or "command"
    (editing a command's argv re-runs its step through the rule's params, but renames nothing)."""
    return workload if isinstance(workload, str) else "command"


def trial_id(workload: str, params: dict[str, Any], resume_from: str | None = None) -> str:
    """A trial's id. A trial that continues from another's checkpoint (PBT: two members may reach
    the same parameters from different checkpoints) hashes that parent's id too; without one, the
    id is what it always was."""
    key: dict[str, Any] = {"workload": workload, "params": params}
    if resume_from is not None:
        key["resume_from"] = resume_from
    digest = hashlib.sha256(canonical_json(key).encode())
    return digest.hexdigest()[:TRIAL_ID_LENGTH]


def config_id(params: Mapping[str, Any]) -> str:
    """Short, stable id of a configuration: a hash of the canonical JSON of its typed parameters.

    The ``seed`` key is ignored, so a trial's full params give its configuration's id. Missing
    values (None, NaN) are ``null``; numbers are normalised as in trial ids (3 == 3.0). It joins
    summary.csv's ``config_id`` column with configs.csv, pareto.csv and best.json.
    """
    canon = canonical_json({str(k): py_value(v) for k, v in params.items() if k != "seed"})
    return hashlib.sha1(canon.encode()).hexdigest()[:8]


def config_hash(cfg: SweepConfig) -> str:
    """Identifies the whole sweep file's meaning (not its formatting) in every result."""
    return hashlib.sha256(canonical_json(cfg.model_dump(mode="json")).encode()).hexdigest()[:12]


def axis_size(axis: list[Any] | LogRange | LinRange) -> int:
    """How many values an axis has, without building them (a range's `num` may be 10**12)."""
    return axis.num if isinstance(axis, (LogRange, LinRange)) else len(axis)


def axis_values(axis: list[Any] | LogRange | LinRange) -> list[Any]:
    if isinstance(axis, LogRange):
        lo, hi = (math.log10(b) for b in axis.log)
        pts = [lo] if axis.num == 1 else [lo + (hi - lo) * i / (axis.num - 1) for i in range(axis.num)]
        return [_normalise(10**p) for p in pts]
    if isinstance(axis, LinRange):
        lo, hi = axis.lin
        pts = [lo] if axis.num == 1 else [lo + (hi - lo) * i / (axis.num - 1) for i in range(axis.num)]
        return [_normalise(p) for p in pts]
    return list(axis)


def _matches(params: dict[str, Any], pattern: dict[str, Any]) -> bool:
    return all(_normalise(params.get(k, object())) == _normalise(v) for k, v in pattern.items())


def grid_points(grid: dict[str, Any] | list[dict[str, Any]], fixed: dict[str, Any], seeds: int,
                max_trials: int, source: str) -> list[dict[str, Any]]:
    """The points of one grid (cartesian product) or of a list of grids (their union, in order;
    duplicates are dropped later by trial id), each merged over `fixed`."""
    points: list[dict[str, Any]] = []
    grids = grid if isinstance(grid, list) else [grid]
    # count first, build after: a range's `num` alone may be 10**12 (issue 17). The product
    # before de-duplication and exclusions may exceed max_trials tenfold; beyond that, refuse
    # before building anything
    raw = sum(math.prod(axis_size(a) for a in g.values()) for g in grids) * seeds
    if raw > 10 * max_trials:
        _too_many(raw, max_trials, source)
    products = [(list(g), [axis_values(g[k]) for k in g]) for g in grids]
    for keys, axes in products:
        points += [{**fixed, **dict(zip(keys, combo))} for combo in itertools.product(*axes)]
    return points


def expand(sweep: Sweep, source: str = "config") -> list[Trial]:
    """All trials of a sweep, deterministic in order and free of duplicates.

    Methods halving and optuna choose their trials round by round from earlier results
    (snakesweep/search.py): none is known from the file alone, so they expand to []."""
    method = sweep.search.method
    if method in ROUND_METHODS:
        return []
    fixed = flatten(sweep.fixed)
    grid_keys = list(sweep.grid)
    points: list[dict[str, Any]] = []
    if method in ("random", "sobol"):
        from .space import sample

        assert sweep.search.n_trials is not None  # the config model requires it
        if sweep.search.n_trials * len(sweep.seeds) > 10 * sweep.max_trials:
            _too_many(sweep.search.n_trials * len(sweep.seeds), sweep.max_trials, source)
        points = [{**fixed, **p} for p in sample(sweep.space, sweep.search.n_trials, sweep.search.seed, method)]
    elif grid_keys:  # one grid's axes, or a list of grids (their indexes)
        points = grid_points(sweep.grid, fixed, len(sweep.seeds), sweep.max_trials, source)
    elif not sweep.experiments:
        points = [dict(fixed)] if fixed else []
    if not points and not sweep.experiments:
        raise ConfigError(
            f"{source}: 'sweep.grid' and 'sweep.experiments' are both empty, so the sweep has no "
            "trials (fix: add at least one grid axis, e.g. grid: {lr: [0.01]}, or an experiment)"
        )

    candidates: list[dict[str, Any]] = []
    for point in points:
        candidates.extend({**point, "seed": seed} for seed in sweep.seeds)
    for exp in sweep.experiments:
        merged = {**fixed, **flatten(exp)}
        if "seed" in merged:
            candidates.append(merged)
        else:
            candidates.extend({**merged, "seed": seed} for seed in sweep.seeds)

    known = set().union(*(c.keys() for c in candidates))
    for i, pattern in enumerate(sweep.exclude):
        unknown = sorted(set(flatten(pattern)) - known)
        if unknown:
            raise ConfigError(
                f"{source}: 'sweep.exclude[{i}]' names {', '.join(repr(k) for k in unknown)}, which no "
                f"trial has (fix: use one of {', '.join(sorted(known))})"
            )
    patterns = [flatten(p) for p in sweep.exclude]

    trials: list[Trial] = []
    seen: set[str] = set()
    for params in candidates:
        if any(_matches(params, p) for p in patterns):
            continue
        tid = trial_id(workload_label(sweep.workload), params)
        if tid in seen:
            continue
        seen.add(tid)
        trials.append(Trial(tid, params))
    if not trials:
        raise ConfigError(f"{source}: every trial is excluded by 'sweep.exclude' (fix: loosen the exclusions)")
    if len(trials) > sweep.max_trials:
        _too_many(len(trials), sweep.max_trials, source)
    return trials


def _too_many(count: int, limit: int, source: str) -> None:
    raise ConfigError(
        f"{source}: the sweep expands to {count} trials, more than 'sweep.max_trials' = {limit} "
        "(fix: raise sweep.max_trials or shrink the grid)"
    )


def param_names(trials: list[Trial]) -> list[str]:
    """Columns in first-seen order, `seed` last, so every CSV lists parameters the same way."""
    names: dict[str, None] = {}
    for t in trials:
        for k in t.params:
            if k != "seed":
                names.setdefault(k, None)
    return [*names, "seed"]
