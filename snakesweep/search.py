"""Search beyond the grid: random and Sobol points, successive halving, Optuna in batch rounds.

The result files are the search's only state (no daemon, no database). random/sobol points are
known from the sweep file: ordinary trials of the plan, all round 0. halving and optuna choose
from results, in rounds: round r is a Snakemake checkpoint (workflow/rules/search.smk) whose file
(snakesweep/rounds.py) :func:`choose_round` computes from the sweep file and the results of rounds
< r only, so a killed run chooses the same trials again. A configuration's score is the mean of
the report objective over its seeds; one with a failed seed has none (never promoted; a failed
trial in an Optuna study).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import hyperband, pbt
from .config import (
    CONTINUE_METHODS,
    ROUND_METHODS,
    ChoiceDim,
    CommandWorkload,
    ConfigError,
    IntDim,
    SweepConfig,
    validate_config,
)
from .grid import Trial, canonical_json, flatten, grid_points, trial_id, workload_label
from .results import SCHEMA_VERSION, error_records, load_result, read_json, retried
from .rounds import ROUND_KIND, ROUNDS_DIR, chosen_rounds, round_digest, write_round
from .space import contains, dims, probe, round_value, sample, to_optuna
from .space import describe as space_lines

# ---------------------------------------------------------------------------- the schedule


def in_rounds(cfg_or_sweep: Any) -> bool:
    """Whether the method chooses trials from earlier results (round checkpoints)."""
    sweep = getattr(cfg_or_sweep, "sweep", cfg_or_sweep)
    return sweep.search.method in ROUND_METHODS


def ladder(budget) -> list[int | float]:
    """Halving's budgets, smallest first, top-down from `max` like Hyperband's r_i = max / eta^i,
    so the last round always trains at exactly `max` (1, 3, 9, 27 for min 1, max 27, eta 3;
    1, 3, 10 for max 10). Whole numbers stay ints (epochs)."""
    steps = int(math.floor(math.log(budget.max / budget.min) / math.log(budget.eta) + 1e-9))
    whole = float(budget.min).is_integer() and float(budget.max).is_integer()
    out: list[int | float] = []
    for i in range(steps, -1, -1):
        b = budget.max / budget.eta**i
        value: int | float = max(int(budget.min), int(round(b))) if whole else round_value(max(b, budget.min))
        if not out or value > out[-1]:
            out.append(value)
    return out


def configs_per_round(sweep, n_start: int | None = None) -> list[int]:
    """How many configurations each round runs (before failures): halving n, n//eta, ... (at
    least 1); optuna `batch` per round; random/sobol one round of `n_trials`."""
    s = sweep.search
    if s.method == "halving":
        n = n_start if n_start is not None else (s.n_trials or 0)
        out = []
        for _ in ladder(s.budget):
            out.append(n)
            n = max(1, n // s.budget.eta)
        return out
    if s.method == "optuna":
        return [s.batch] * s.rounds
    if s.method == "hyperband":
        return [sum(rung.configs for _s, rung in rnd) for rnd in hyperband.round_plan(hyperband_plan(s.budget))]
    if s.method == "pbt":
        return [s.pbt.population] * s.pbt.generations
    if s.method in ("random", "sobol"):
        return [s.n_trials]
    return []


def hyperband_plan(budget) -> list[hyperband.Bracket]:
    """Hyperband's brackets for the sweep's budget (snakesweep/hyperband.py)."""
    return hyperband.brackets(budget.min, budget.max, budget.eta)


def n_rounds(sweep) -> int:
    return len(configs_per_round(sweep)) if sweep.search.method in ROUND_METHODS else 1


def objectives(cfg: SweepConfig) -> list[tuple[str, str]]:
    """(metric, max|min) of the report objective, then the extra objectives (optuna: multi-objective)."""
    return [(o.metric, o.direction) for o in (cfg.report.objective, *cfg.report.extra_objectives)]


def search_key(cfg: SweepConfig) -> str:
    """What the rounds' choices depend on (a rule param of the round checkpoint: a change re-chooses
    them). `rounds` is left out on purpose, so raising it adds rounds and keeps the earlier ones."""
    sw = cfg.sweep
    s = sw.search.model_dump(mode="json", exclude={"rounds"})
    meaning = {
        "search": s,
        "space": {k: v.model_dump(mode="json", by_alias=True) for k, v in sw.space.items()},
        "grid": _grid_dump(sw),
        "fixed": flatten(sw.fixed),
        "seeds": sw.seeds,
        "steps": sw.steps,
        "workload": workload_label(sw.workload),
        "objectives": objectives(cfg) if sw.search.method in ROUND_METHODS else [],
    }
    return hashlib.sha256(canonical_json(meaning).encode()).hexdigest()[:12]


def _grid_dump(sweep) -> Any:
    grids = sweep.grid if isinstance(sweep.grid, list) else [sweep.grid] if sweep.grid else []
    return [{k: (a if isinstance(a, list) else a.model_dump(mode="json")) for k, a in g.items()} for g in grids]


def plan_block(cfg: SweepConfig) -> dict[str, Any] | None:
    """The plan's `search` entry (None for the grid, whose plan stays as it always was)."""
    sw = cfg.sweep
    s = sw.search
    if s.method == "grid":
        return None
    block: dict[str, Any] = {"method": s.method, "seed": s.seed, "rounds": n_rounds(sw), "key": search_key(cfg),
                             "configs_per_round": configs_per_round(sw, _start_size(sw)), "seeds": len(sw.seeds)}
    if s.method in ROUND_METHODS:
        block["rounds_dir"] = ROUNDS_DIR
        block["objectives"] = [{"metric": m, "direction": d} for m, d in objectives(cfg)]
        # the round checkpoint re-validates this (the whole sweep file, variant applied) and
        # chooses from it; nothing else about the search is read from anywhere
        block["config"] = cfg.model_copy(update={"variant": None}).model_dump(mode="json", by_alias=True)
    if s.method == "halving":
        block.update(budget_param=s.budget.param, ladder=ladder(s.budget), eta=s.budget.eta)
    if s.method == "optuna":
        block.update(batch=s.batch, sampler=sampler_name(cfg))
    if s.method == "hyperband":
        block.update(budget_param=s.budget.param, eta=s.budget.eta, brackets=[
            {"s": b.s, "n": b.n, "rungs": [{"configs": r.configs, "budget": r.budget} for r in b.rungs]}
            for b in hyperband_plan(s.budget)])
    if s.method == "pbt":
        block.update(budget_param=s.pbt.param, pbt=s.pbt.model_dump(mode="json"))
    return block


def _start_size(sweep) -> int | None:
    if sweep.search.method == "halving" and sweep.grid:
        return len(_initial_configs(sweep))
    return None


def sampler_name(cfg: SweepConfig) -> str:
    return "TPE (multi-objective)" if cfg.report.extra_objectives else "TPE"


# ---------------------------------------------------------------------------- parse-time checks


def probe_trials(cfg: SweepConfig, source: str = "config") -> list[Trial]:
    """Trials that stand for a round-based search at parse time, when no round has chosen any:
    the space's corners (or the grid's points) at the smallest and the largest budget. The
    workflow validates their parameters like any trial's (a budget parameter the built-in
    workload lacks fails here, before any job starts). Raises ConfigError for a search that
    cannot run (too many trials, a budget the command never receives)."""
    sw = cfg.sweep
    s = sw.search
    total = sum(configs_per_round(sw, _start_size(sw))) * len(sw.seeds)
    if total > sw.max_trials:
        raise ConfigError(
            f"{source}: the search runs up to {total} trials, more than 'sweep.max_trials' = {sw.max_trials} "
            "(fix: raise sweep.max_trials or lower n_trials/rounds/batch)"
        )
    param = budget_param(sw) if s.method in CONTINUE_METHODS else None
    if param and isinstance(sw.workload, CommandWorkload) and sw.workload.args == "none":
        argv = " ".join(sw.workload.command.get("train", []))
        key = "search.pbt.param" if s.method == "pbt" else "search.budget.param"
        if "{" + param + "}" not in argv:
            raise ConfigError(
                f"{source}: '{key}' is {param!r}, but the train command never "
                f"receives it (fix: add {{{param}}} to workload.command.train, or args: flags)"
            )
    label = workload_label(sw.workload)
    points = _initial_configs(sw) if s.method == "halving" and sw.grid else [
        {**flatten(sw.fixed), **p} for p in probe(sw.space)
    ]
    budgets = budget_range(sw)
    out = []
    for p in points:
        for b in dict.fromkeys((budgets[0], budgets[-1])):
            params = {**p, **({param: b} if b is not None else {}), "seed": sw.seeds[0]}
            out.append(Trial(trial_id(label, params), params))
    return out


def budget_range(sweep) -> list[Any]:
    """The budgets a search's trials train to, smallest first ([None] for a search without one)."""
    s = sweep.search
    if s.method == "halving":
        return ladder(s.budget)
    if s.method == "hyperband":
        return sorted({rung.budget for b in hyperband_plan(s.budget) for rung in b.rungs})
    if s.method == "pbt":
        return [pbt.generation_budget(g, s.pbt.step) for g in range(s.pbt.generations)]
    return [None]


# ---------------------------------------------------------------------------- promotion


def config_of(params: dict[str, Any], drop: Iterable[str] = ("seed",)) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in set(drop)}


def promote(scores: Sequence[tuple[str, float | None]], eta: int, direction: str) -> list[str]:
    """Successive halving's rule: of the n configurations of a round, the best max(1, n // eta)
    by score go on, best first.

    `scores` are (key, score) with key a configuration's canonical JSON and score None for a
    failed configuration. The number kept is fixed by n (the schedule), not by how many
    succeeded: failures never survive, they only leave fewer survivors when fewer than
    n // eta succeeded. max(1, ...) keeps a round smaller than eta from ending the search below
    the top budget. Ties are broken by the key, so the same scores always promote the same
    configurations, in the same order.
    """
    keep = max(1, len(scores) // eta)
    ok = [(k, s) for k, s in scores if s is not None and math.isfinite(s)]
    sign = -1.0 if direction == "max" else 1.0
    ok.sort(key=lambda ks: (sign * ks[1], ks[0]))
    return [k for k, _ in ok[:keep]]


def trial_metrics(results: str | Path, trial: str, steps: Sequence[str]) -> dict[str, Any] | None:
    """The merged metrics of a trial's selected steps, read through the one result check
    (snakesweep/results.py); None unless every step has a valid result."""
    metrics: dict[str, Any] = {}
    for step in steps:
        record, _problem = load_result(Path(results, "trials", trial, f"{step}.json"), trial, step)
        if record is None:
            return None
        metrics.update(record["metrics"])
    return metrics


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def score_configs(
    trials: Sequence[dict[str, Any]], metrics: dict[str, dict[str, Any] | None], metric_names: Sequence[str]
) -> list[dict[str, Any]]:
    """Group a round's trials by configuration (params without seed), in first-seen order, with
    the mean of each objective over the seeds: `values` None when any seed failed or lacks it."""
    groups: dict[str, dict[str, Any]] = {}
    for t in trials:
        cfg = config_of(t["params"])
        g = groups.setdefault(canonical_json(cfg), {"config": cfg, "trials": [], "per_seed": []})
        g["trials"].append(t["trial"])
        m = metrics.get(t["trial"])
        g["per_seed"].append(None if m is None else [_finite(m.get(name)) for name in metric_names])
    out = []
    for key, g in groups.items():
        rows = g.pop("per_seed")
        if any(r is None or any(v is None for v in r) for r in rows):
            values = None
        else:
            values = [round(sum(col) / len(col), 12) for col in zip(*rows)]
        out.append({"key": key, **g, "values": values})
    return out


# ---------------------------------------------------------------------------- optuna


def round_seed(seed: int, r: int) -> int:
    """A different, fixed seed per round, so round r's random start-up points differ from round 0's."""
    return int(hashlib.sha256(f"{seed}:{r}".encode()).hexdigest()[:8], 16)


def suggest(
    space: dict[str, Any],
    seed: int,
    r: int,
    batch: int,
    history: Sequence[tuple[dict[str, Any], list[float] | None]],
    directions: Sequence[str],
) -> list[dict[str, Any]]:
    """`batch` new points from an Optuna study rebuilt in memory from `history` (config, mean
    objective values or None for failed), in its given order.

    TPE (multi-objective TPE with more than one direction) with `n_startup_trials = batch`: round 0
    is random, every later round is model-based. Asking is deterministic for a seed and a study's
    trials, so the same history always gives the same points. A point equal to one already run
    or asked is skipped (choice-only spaces run out of new points): the round may be smaller.
    """
    import optuna  # lazy: optional, and heavy; only an optuna round imports it
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    named = dims(space)
    dists = {name: to_optuna(dim) for name, dim in named}
    sampler = optuna.samplers.TPESampler(seed=round_seed(seed, r), n_startup_trials=batch)
    study = optuna.create_study(
        directions=["maximize" if d == "max" else "minimize" for d in directions], sampler=sampler
    )
    seen = set()
    for config, values in history:
        point = {name: config.get(name) for name, _ in named}
        seen.add(canonical_json(point))
        if not all(contains(dim, point[name]) for name, dim in named):
            continue  # run under an earlier, wider space: not a point of this study
        if values is None:
            study.add_trial(create_trial(params=point, distributions=dists, state=TrialState.FAIL))
        else:
            study.add_trial(create_trial(params=point, distributions=dists, values=list(values)))
    out: list[dict[str, Any]] = []
    for _ in range(20 * batch):
        if len(out) == batch:
            break
        trial = study.ask(dists)
        point = {name: _as_point(dim, trial.params[name]) for name, dim in named}
        key = canonical_json(point)
        if key in seen:
            study.tell(trial, state=TrialState.FAIL)
            continue
        seen.add(key)
        out.append(point)
    return out


def _as_point(dim: Any, value: Any) -> Any:
    if isinstance(dim, ChoiceDim):
        return value
    if isinstance(dim, IntDim):
        return int(value)
    lo, hi = getattr(dim, "uniform", None) or dim.loguniform
    return min(max(round_value(float(value)), lo), hi)


# ---------------------------------------------------------------------------- rounds


def final_failures(logs: str | Path, steps: Sequence[str], retry_on: Sequence[str],
                   sources: Mapping[str, Sequence[str | Path]] | None = None) -> set[str]:
    """Trials whose last attempt failed for good: an error record (logs/{step}/{trial}.error.json)
    of this trial and step whose reason failures.retry_on does not retry (an exception in the
    workload, a non-zero exit). A search goes on without them: they are not inputs of the next round and not retried (remove
    the record to retry one). Timeouts, signals, orphaned steps (their Snakemake was killed) and
    trials held back by the failure budget are retried, and the next round waits for them.
    `sources` ({step: files the step runs}): a record older than one of its step's files failed
    under other code, and is retried like a missing result (the edit may have fixed it)."""
    newest: dict[str, float] = {}
    for step, files in (sources or {}).items():
        for f in files:
            try:
                newest[step] = max(newest.get(step, 0.0), os.stat(f).st_mtime)
            except OSError:
                pass
    out = set()
    for step in steps:
        for trial, record in error_records(logs, [step], cycles=False):
            if retried(record.get("reason"), retry_on) or record.get("trial", trial) != trial \
                    or record.get("step", step) != step:
                continue
            if step in newest:
                try:
                    if os.stat(Path(logs, step, f"{trial}.error.json")).st_mtime < newest[step]:
                        continue
                except OSError:
                    continue
            out.add(trial)
    return out


def _initial_configs(sweep) -> list[dict[str, Any]]:
    """Halving's round-0 configurations: the grid's points (union, de-duplicated) or `n_trials`
    random points of the space, merged over `fixed`."""
    fixed = flatten(sweep.fixed)
    if sweep.grid:
        points = grid_points(sweep.grid, fixed, len(sweep.seeds), sweep.max_trials, "config")
    else:
        points = [{**fixed, **p} for p in sample(sweep.space, sweep.search.n_trials, sweep.search.seed, "random")]
    unique: dict[str, dict[str, Any]] = {}
    for p in points:
        unique.setdefault(canonical_json(p), p)
    return list(unique.values())


def _trial_entries(sweep, configs: Iterable[dict[str, Any]], r: int, budget: Any, known: set[str],
                   parents: Mapping[tuple[str, Any], str] | None = None) -> list[dict[str, Any]]:
    """Round r's trial entries: each configuration once per seed. `parents` ((canonical JSON of
    the configuration without the budget, seed) -> trial id of its previous rung): a promoted
    configuration's trial continues from that trial's checkpoint (`resume_from`); None for a fresh
    start. Halving's ids stay hashes of the parameters (the budget tells the rungs apart, so the
    parent is determined by them)."""
    label = workload_label(sweep.workload)
    out = []
    for config in configs:
        for seed in sweep.seeds:
            params = {**config, "seed": seed}
            if budget is not None:
                params[budget_param(sweep)] = budget
            tid = trial_id(label, params)
            if tid in known:
                continue
            known.add(tid)
            entry = {"trial": tid, "params": params, "round": r, "budget": budget}
            if sweep.search.method in CONTINUE_METHODS:
                entry["resume_from"] = (parents or {}).get((canonical_json(config), seed))
            out.append(entry)
    return out


def budget_param(sweep) -> str | None:
    """The parameter a search sets as its budget (halving/hyperband: budget.param; pbt: pbt.param)."""
    s = sweep.search
    if s.method == "pbt":
        return s.pbt.param if s.pbt else None
    return s.budget.param if s.budget else None


def _parents(doc: Mapping[str, Any], param: str) -> dict[tuple[str, Any], str]:
    """(configuration without budget and seed, seed) -> trial id, for one round's trials."""
    return {(canonical_json(config_of(t["params"], drop=("seed", param))), t["params"].get("seed")): t["trial"]
            for t in doc["trials"]}


def choose_round(cfg: SweepConfig, r: int, earlier: Sequence[dict[str, Any]], results: str | Path) -> dict[str, Any]:
    """Round r's document: its trials, chosen from the sweep file and the results of `earlier`
    (rounds 0..r-1, as :func:`chosen_rounds` reads them), deterministically.

    Reads only the result JSONs of earlier rounds' trials; a trial without a valid result for
    every selected step is failed here (the workflow runs this only once every earlier trial
    has a result or has failed for good)."""
    sw = cfg.sweep
    s = sw.search
    if s.method not in ROUND_METHODS:
        raise ValueError(f"method {s.method!r} has no rounds")
    if len(earlier) != r:
        raise ValueError(f"round {r} needs rounds 0..{r - 1} first; {len(earlier)} are chosen")
    key = search_key(cfg)
    known = {t["trial"] for doc in earlier for t in doc["trials"]}
    names = [m for m, _d in objectives(cfg)]
    doc: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "kind": ROUND_KIND, "round": r, "method": s.method,
                           "key": key, "parent": round_digest(earlier[-1] if earlier else None)}
    if s.method == "halving":
        budgets = ladder(s.budget)
        doc["budget"] = budgets[r]
        if r == 0:
            configs = _initial_configs(sw)
            doc["selection"] = {"from": "grid" if sw.grid else "space", "configs": len(configs)}
        else:
            prev = earlier[-1]
            metrics = {t["trial"]: trial_metrics(results, t["trial"], sw.steps) for t in prev["trials"]}
            scored = score_configs(prev["trials"], metrics, names[:1])
            direction = objectives(cfg)[0][1]
            survivors = promote([(g["key"], g["values"][0] if g["values"] else None) for g in scored],
                                s.budget.eta, direction)
            rank = {k: i for i, k in enumerate(survivors)}
            by_key = {g["key"]: g for g in scored}
            configs = [config_of(by_key[k]["config"], drop=(s.budget.param,)) for k in survivors]
            doc["selection"] = {
                "from_round": r - 1, "objective": names[0], "direction": direction, "eta": s.budget.eta,
                "keep": max(1, len(scored) // s.budget.eta),
                "configs": [
                    {"config": config_of(g["config"], drop=(s.budget.param,)), "trials": g["trials"],
                     "score": g["values"][0] if g["values"] else None,
                     "outcome": "failed" if g["values"] is None else "promoted" if g["key"] in rank else "stopped",
                     **({"rank": rank[g["key"]]} if g["key"] in rank else {})}
                    for g in scored
                ],
            }
        parents = _parents(earlier[-1], s.budget.param) if r else None
        doc["trials"] = _trial_entries(sw, configs, r, budgets[r], known, parents)
        return doc
    if s.method == "hyperband":
        return _hyperband_round(cfg, r, earlier, results, doc, known)
    if s.method == "pbt":
        return _pbt_round(cfg, r, earlier, results, doc)

    # optuna: every earlier trial's result goes into the study, oldest round first
    history = []
    for prev in earlier:
        metrics = {t["trial"]: trial_metrics(results, t["trial"], sw.steps) for t in prev["trials"]}
        for g in score_configs(prev["trials"], metrics, names):
            history.append((g["config"], g["values"]))
    points = suggest(sw.space, s.seed, r, s.batch, history, [d for _m, d in objectives(cfg)])
    fixed = flatten(sw.fixed)
    doc["budget"] = None
    doc["selection"] = {"sampler": sampler_name(cfg), "study_trials": len(history),
                        "failed": sum(v is None for _c, v in history), "asked": len(points)}
    doc["trials"] = _trial_entries(sw, ({**fixed, **p} for p in points), r, None, known)
    return doc


def _hyperband_round(cfg: SweepConfig, r: int, earlier: Sequence[dict[str, Any]], results: str | Path,
                     doc: dict[str, Any], known: set[str]) -> dict[str, Any]:
    """Hyperband's round r: rung r of every bracket s >= r. Round 0 draws each bracket's points
    (hyperband.sample_brackets); round r >= 1 promotes, within each bracket, the best of its
    rung r - 1 (mean objective over seeds; a failed seed never promotes), whose trials continue
    from their rung r - 1 trial (`resume_from`)."""
    sw, s = cfg.sweep, cfg.sweep.search
    plan = hyperband_plan(s.budget)
    param = s.budget.param
    fixed = flatten(sw.fixed)
    doc["budget"] = None  # budgets differ per bracket: each entry carries its own
    trials: list[dict[str, Any]] = []
    brackets_doc = []
    if r == 0:
        drawn = hyperband.sample_brackets(sw.space, plan, s.seed)
        for b in plan:
            configs = [{**fixed, **point} for point in drawn.get(b.s, [])]
            new = _trial_entries(sw, configs, 0, b.rungs[0].budget, known)
            for e in new:
                e.update(bracket=b.s, rung=0)
            trials += new
            brackets_doc.append({"s": b.s, "n": b.n, "rung": 0, "configs": len(configs),
                                 "budget": b.rungs[0].budget, "from": "space"})
    else:
        prev = earlier[-1]
        names = [m for m, _d in objectives(cfg)]
        direction = objectives(cfg)[0][1]
        metrics = {t["trial"]: trial_metrics(results, t["trial"], sw.steps) for t in prev["trials"]}
        scored: dict[int, list[dict[str, Any]]] = {}
        for b in plan:
            if r < len(b.rungs):
                scored[b.s] = score_configs([t for t in prev["trials"] if t.get("bracket") == b.s], metrics, names[:1])
        scores = {b: [(g["key"], g["values"][0] if g["values"] else None) for g in groups]
                  for b, groups in scored.items()}
        promoted = hyperband.promote_brackets(plan, r, scores, direction)
        for b in plan:
            if r >= len(b.rungs):
                continue
            by_key = {g["key"]: g for g in scored[b.s]}
            configs = [config_of(by_key[k]["config"], drop=(param,)) for k in promoted.get(b.s, [])]
            bracket_prev = {**prev, "trials": [t for t in prev["trials"] if t.get("bracket") == b.s]}
            new = _trial_entries(sw, configs, r, b.rungs[r].budget, known, _parents(bracket_prev, param))
            for e in new:
                e.update(bracket=b.s, rung=r)
            trials += new
            outcomes = hyperband.rung_outcomes(scores[b.s], b.rungs[r].configs, direction)
            brackets_doc.append({
                "s": b.s, "n": b.n, "rung": r, "configs": b.rungs[r].configs, "budget": b.rungs[r].budget,
                "from": "promotion", "objective": names[0], "direction": direction,
                "outcomes": [{**{k: v for k, v in o.items() if k != "key"},
                              "config": config_of(by_key[o["key"]]["config"], drop=(param,)),
                              "trials": by_key[o["key"]]["trials"]} for o in outcomes],
            })
    doc["selection"] = {"brackets": brackets_doc}
    doc["trials"] = trials
    return doc


def _pbt_round(cfg: SweepConfig, g: int, earlier: Sequence[dict[str, Any]], results: str | Path,
               doc: dict[str, Any]) -> dict[str, Any]:
    """PBT's generation g. Generation 0 draws the population (pbt.initial_population); later, each
    live member's score is the mean objective over seeds of its generation g - 1 trials, and
    pbt.next_generation keeps, exploits (a top member's checkpoint, explored parameters) or ends
    each member. A trial's id hashes its parent trial too (grid.trial_id): two members that reach
    the same parameters from different checkpoints are different computations. `lineage` records
    every member's generation (which checkpoint, which parameters, the trials it ran)."""
    sw, s = cfg.sweep, cfg.sweep.search
    pb = s.pbt
    label = workload_label(sw.workload)
    fixed = flatten(sw.fixed)
    budget = pbt.generation_budget(g, pb.step)
    direction = objectives(cfg)[0][1]
    doc["budget"] = budget
    lineage: list[dict[str, Any]] = []
    parents: dict[tuple[int, Any], str] = {}
    if g == 0:
        members = [{"member": m, "generation": 0, "outcome": "initial", "continued_from": None, "params": p}
                   for m, p in pbt.initial_population(sw.space, pb.population, s.seed).items()]
        doc["selection"] = {"population": pb.population, "from": "space"}
    else:
        prev = earlier[-1]
        live = {e["member"]: e for e in prev.get("lineage") or [] if e.get("params") is not None}
        by_id = {t["trial"]: t for t in prev["trials"]}
        name = objectives(cfg)[0][0]
        scores: dict[int, float | None] = {}
        for m, e in live.items():
            values = []
            for tid in e.get("trials") or []:
                metrics = trial_metrics(results, tid, sw.steps) if tid in by_id else None
                values.append(None if metrics is None else _finite(metrics.get(name)))
            scores[m] = None if not values or any(v is None for v in values) else round(sum(values) / len(values), 12)
            for seed, tid in zip(sw.seeds, e.get("trials") or []):
                parents[(m, seed)] = tid
        chosen = pbt.next_generation(sw.space, {m: e["params"] for m, e in live.items()}, scores, g, s.seed,
                                     direction, pb.quantile, pb.factors, pb.resample_probability) if live else []
        members = [c.lineage() for c in chosen]
        ranked = sorted((c for c in chosen), key=lambda c: c.rank)
        k = pbt.quantile_count(len(chosen), pb.quantile) if chosen else 0
        doc["selection"] = {"population": pb.population, "quantile": pb.quantile, "objective": name,
                            "direction": direction, "top": [c.member for c in ranked[:k] if c.score is not None],
                            "bottom": [c.member for c in chosen if c.outcome in ("exploited", "dead")]}
    trials: list[dict[str, Any]] = []
    known: set[str] = set()
    for entry in members:
        if entry["params"] is None:  # dead: no donor, no trial
            lineage.append({**entry, "trials": []})
            continue
        source = entry["continued_from"]["member"] if entry.get("continued_from") else None
        ids = []
        for seed in sw.seeds:
            params = {**fixed, **entry["params"], "seed": seed, pb.param: budget}
            parent = parents.get((source, seed)) if source is not None else None
            tid = trial_id(label, params, parent)
            ids.append(tid)
            if tid not in known:  # two members, the same parameters and checkpoint: one computation
                known.add(tid)
                trials.append({"trial": tid, "params": params, "round": g, "budget": budget,
                               "resume_from": parent, "member": entry["member"], "generation": g})
        lineage.append({**entry, "trials": ids})
    doc["lineage"] = lineage
    doc["trials"] = trials
    return doc


# ---------------------------------------------------------------------------- what the user sees


def _space_lines(space: dict[str, Any]) -> list[str]:
    """The space's dimensions, a choice's values as the sweep file spells them (null, true,
    false, "text"), never Python's None/True."""
    out = []
    for (name, dim), line in zip(dims(space), space_lines(space)):
        if isinstance(dim, ChoiceDim):
            line = f"{name} in [{', '.join(json.dumps(v) for v in dim.choice)}]"
        out.append(line)
    return out


def describe(cfg: SweepConfig, plan_dir: str | Path | None = None) -> str:
    """The search in a few lines, for `snakemake -n` and every run's start."""
    sw = cfg.sweep
    s = sw.search
    seeds = len(sw.seeds)
    per = configs_per_round(sw, _start_size(sw))
    dims_text = "; ".join(_space_lines(sw.space)) if sw.space else "the grid's points"
    seeds_text = f" x {seeds} seeds" if seeds > 1 else ""
    if s.method in ("random", "sobol"):
        kind = "random points (numpy)" if s.method == "random" else "scrambled Sobol points (scipy.stats.qmc)"
        return f"snakesweep search: {s.method}: {s.n_trials} {kind}{seeds_text}, seed {s.seed}; space: {dims_text}"
    lines = []
    if s.method == "halving":
        b = ladder(s.budget)
        work = sum(n * x for n, x in zip(per, b)) * seeds
        lines.append(
            f"snakesweep search: successive halving on {s.budget.param!r} (eta {s.budget.eta}), {len(b)} rounds; "
            f"configurations per round {' -> '.join(map(str, per))}{seeds_text}; budget ladder "
            f"{' -> '.join(f'{x:g}' for x in b)}; total budget {work:g} {s.budget.param} "
            f"(every round-0 configuration at the top budget: {per[0] * b[-1] * seeds:g})"
        )
        lines.append(f"  round 0 from {'sweep.grid' if sw.grid else f'{s.n_trials} random points of the space, seed {s.seed}'}"
                     f"; promotion by {cfg.report.objective.metric} ({cfg.report.objective.direction}), mean over seeds")
    elif s.method == "hyperband":
        plan = hyperband_plan(s.budget)
        cont, scratch = hyperband.total_work(plan), hyperband.total_work(plan, continued=False)
        lines.append(
            f"snakesweep search: hyperband on {s.budget.param!r} (eta {s.budget.eta}), {len(plan)} brackets, "
            f"{len(per)} rounds; configurations per round {' -> '.join(map(str, per))}{seeds_text}; "
            f"total budget {cont * seeds:g} {s.budget.param} continuing from checkpoints "
            f"({scratch * seeds:g} from scratch)"
        )
        lines.append("  brackets: " + "; ".join(
            f"s={b.s}: " + " -> ".join(f"{r.configs}x{r.budget:g}" for r in b.rungs) for b in plan)
            + f"; promotion by {cfg.report.objective.metric} ({cfg.report.objective.direction}), mean over seeds")
    elif s.method == "pbt":
        pb = s.pbt
        lines.append(
            f"snakesweep search: population-based training on {pb.param!r}, population {pb.population}, "
            f"{pb.generations} generations of {pb.step:g} {pb.param}{seeds_text} (seed {s.seed}); total budget "
            f"{pb.population * pb.generations * pb.step * seeds:g} {pb.param}; after each generation the bottom "
            f"{pb.quantile:g} copies a top member's checkpoint (factors {pb.factors}, resample probability "
            f"{pb.resample_probability:g}); objective {cfg.report.objective.metric} ({cfg.report.objective.direction})"
        )
    else:
        lines.append(
            f"snakesweep search: optuna {sampler_name(cfg)}, {s.rounds} rounds of {s.batch} points{seeds_text} "
            f"(seed {s.seed}); objective{'s' if cfg.report.extra_objectives else ''} "
            + ", ".join(f"{m} ({d})" for m, d in objectives(cfg))
        )
    if sw.space:
        lines.append(f"  space: {dims_text}")
    if plan_dir is not None:
        block = plan_block(cfg)
        done = chosen_rounds(plan_dir, block) if block else []
        lines.append(
            f"  rounds chosen so far: {len(done)} of {n_rounds(sw)} ({Path(plan_dir, ROUNDS_DIR)}/); "
            + ("a dry-run shows the jobs up to the next round's choice" if len(done) < n_rounds(sw) else "all chosen")
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------- the round checkpoint


def main(argv: list[str] | None = None) -> int:
    """`python scripts/search_round.py --round R --plan results/plan/trials.json --output ...`"""
    ap = argparse.ArgumentParser(prog="scripts/search_round.py")
    ap.add_argument("--round", type=int, required=True)
    ap.add_argument("--plan", required=True)
    ap.add_argument("--output", required=True)
    a = ap.parse_args(argv)
    plan = read_json(a.plan)
    block = plan.get("search") or {}
    cfg = validate_config(block["config"], f"{a.plan} (search.config)")
    plan_dir = Path(a.plan).parent
    earlier = chosen_rounds(plan_dir, block)[: a.round]
    doc = choose_round(cfg, a.round, earlier, plan_dir.parent)
    write_round(a.output, doc)
    sel = doc.get("selection", {})
    print(f"round {a.round}: {len(doc['trials'])} trials chosen ({json.dumps(sel)[:2000]})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
