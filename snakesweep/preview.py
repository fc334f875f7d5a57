"""The size of a run before it starts: trials, jobs per step, and an estimated wall time.

workflow/rules/report.smk prints it once per invocation (also on ``snakemake -n``), from the main
Snakemake process only: the jobs still to run (from the sweep state) times each step's mean job
time from the results this sweep already has (each record's ``duration_s``; the state reads them
anyway), over the cores; measure jobs run one at a time, so their total is a floor. A search in
rounds (halving, optuna) counts the trials of the rounds chosen so far, and the rounds not chosen
yet by their most trials (snakesweep/search.py: describe gives the schedule).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .bookkeeping import checksum_size_limit
from .rounds import round_progress, round_trials
from .state import SERIAL_STEPS, SweepState, jobs_to_run, read_state


def mean_durations(durations: Mapping[str, Iterable[float]]) -> dict[str, tuple[float, int]]:
    """{step: (mean seconds, records used)} for the steps with timed results (SweepState.durations)."""
    out = {}
    for step, vals in durations.items():
        vals = list(vals)
        if vals:
            out[step] = (sum(vals) / len(vals), len(vals))
    return out


def human_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def search_rounds(plan: Mapping[str, Any] | None, results: str | Path) -> dict[str, Any] | None:
    """The progress of a search in rounds (:func:`snakesweep.rounds.round_progress`) for the plan
    of `results` (the results directory); None for any other plan."""
    return round_progress(plan, Path(results) / "plan")


def format_preview(
    n_trials: int,
    jobs_per_step: Mapping[str, int],
    means: Mapping[str, tuple[float, int]],
    cores: int | None,
    done_per_step: Mapping[str, int] | None = None,
    search: Mapping[str, Any] | None = None,
) -> str:
    """Two or three lines: the plan's size and the estimated wall time.

    ``jobs_per_step`` counts the jobs still to run per step (:func:`count_jobs`: missing,
    interrupted, and stale results, as Snakemake will see them); ``means`` ({step: (mean job
    seconds, results timed)}, :func:`mean_durations`) times them. ``done_per_step``
    optionally gives the jobs that already have a result, shown for context. ``search``
    (:func:`search_rounds`) describes a search in rounds: ``n_trials`` and the jobs are then
    those of the rounds chosen so far, and the rounds still to choose are added as at most
    ``later_trials`` trials of one job per step each.
    """
    cores = max(1, int(cores or 1))
    steps = list(jobs_per_step)
    later = int((search or {}).get("later_trials") or 0)
    total = sum(jobs_per_step.values())
    jobs = ", ".join(f"{s} {jobs_per_step[s]}" for s in steps)
    done = sum((done_per_step or {}).values())
    if search is None:
        head = f"snakesweep plan: {n_trials} trials; jobs to run per step: {jobs} ({total} in all"
    else:
        chosen, rounds = search.get("chosen", 0), search.get("rounds", 0)
        head = f"snakesweep plan: {search.get('method')} search in {rounds} rounds, up to {n_trials + later} trials; "
        if chosen:
            head += (f"{chosen} round{'s' if chosen != 1 else ''} chosen so far with {n_trials} trials: "
                     f"jobs to run per step {jobs} ({total} in all")
        else:
            head += "no round chosen yet ("
    if search is not None and not search.get("chosen"):
        head += "the first round is chosen when the run starts)"
    else:
        head += f"; {done} already have results)" if done else ")"
    lines = [head]
    if later:
        lines.append(f"  the {rounds - chosen} round{'s' if rounds - chosen != 1 else ''} not chosen yet: up to "
                     f"{later} trials ({later * len(steps)} jobs), each round chosen from the results of the one "
                     "before (the search line below gives the schedule)")
    if total == 0 and not later:
        lines.append("estimated wall time: nothing to run (every step of every trial has a result)")
        return "\n".join(lines)
    todo = {s: jobs_per_step[s] + later for s in steps}
    means = {s: means[s] for s in steps if todo[s] and s in means}
    if not means:
        lines.append("estimated wall time: no history yet (no step of this sweep has finished before)")
        return "\n".join(lines)
    work = {s: todo[s] * means[s][0] for s in steps if s in means}
    serial = sum(w for s, w in work.items() if s in SERIAL_STEPS)
    wall = max(sum(work.values()) / cores, serial)
    per = ", ".join(f"{s} {m:.1f} s" for s, (m, _n) in means.items())
    n_rec = sum(n for _m, n in means.values())
    est = f"estimated wall time: ~{human_duration(wall)} on {cores} core{'s' if cores > 1 else ''}"
    est += f" (mean job time of {n_rec} earlier result{'s' if n_rec != 1 else ''}: {per}"
    if serial:
        est += "; measure jobs run one at a time"
    if later:
        est += "; the rounds not chosen yet at most, at these job times"
        if (search or {}).get("method") == "halving":
            est += ", though halving's later rounds train at larger budgets"
    est += ")"
    lines.append(est)
    missing = [s for s in steps if todo[s] and s not in means]
    if missing:
        lines.append(f"  no history yet for {', '.join(missing)}: the estimate leaves those jobs out")
    return "\n".join(lines)


def preview_state(
    trials: Iterable[str],
    steps: Iterable[str],
    results: str | Path,
    jobs_per_trial: Mapping[str, int] | None = None,
    *,
    plan: Mapping[str, Any] | None = None,
    sources: Mapping[str, Iterable[str]] | None = None,
    data_marker: str | None = None,
    root: str | Path = ".",
    max_checksum_size: int | None = None,
) -> SweepState:
    """The sweep state of the trials and steps about to run (snakesweep/state.py: the same
    reading as status and collect); :func:`count_jobs` counts its jobs. `results` is the sweep's
    directory (results/<name>, its logs in <results>/logs), relative to `root`, the directory
    Snakemake runs in (its .snakemake/ is read).

    `plan` is the plan the configuration about to run would write: with it, a settings change
    (measure settings, device, a command) counts the jobs Snakemake re-runs for it; `sources`
    ({step: files}, "prepare" included) and `data_marker` are the rules' inputs, so an edited
    workload file counts every step it feeds, and a touched one whose content Snakemake's
    checksum shows unchanged counts none (`max_checksum_size`: its --max-checksum-file-size).
    `jobs_per_trial` ({"measure": cycles}) is used when no `plan` is given.
    """
    results = Path(results)
    cycles = int((jobs_per_trial or {}).get("measure", 0)) or None
    return read_state(
        root, results=str(results), logs=str(results / "logs"), trials=trials, steps=steps, cycles=cycles,
        current_plan=dict(plan) if plan is not None else None,
        sources={k: list(v) for k, v in sources.items()} if sources is not None else None,
        data_marker=data_marker, processes=False,
        **({"max_checksum_size": int(max_checksum_size)} if max_checksum_size is not None else {}),
    )


def count_jobs(*args: Any, **kwargs: Any) -> tuple[dict[str, int], dict[str, int]]:
    """({step: jobs Snakemake will run}, {step: jobs already done}): :func:`preview_state`'s
    arguments, counted by :func:`snakesweep.state.jobs_to_run`."""
    return jobs_to_run(preview_state(*args, **kwargs))


def show_preview(
    workflow,
    trials: list[str],
    steps: Iterable[str],
    results: str | Path,
    jobs_per_trial: Mapping[str, int] | None = None,
    *,
    plan: Mapping[str, Any] | None = None,
    sources: Mapping[str, Iterable[str]] | None = None,
    data_marker: str | None = None,
    root: str | Path = ".",
) -> str:
    """Print the preview through Snakemake's logger (stderr), from the main process only.

    Called at parse time after snakesweep.reconcile.reconcile (which set corrupt results aside and
    kept finished ones), so the counts are the jobs the run then starts. Returns the text (empty
    when not printed). Never raises: a preview must not stop a run.
    """
    try:
        if not getattr(workflow, "is_main_process", True):
            return ""
        sweep = Path(root, results)  # the sweep's own directory: its plan, rounds and results
        search = search_rounds(plan, sweep)
        if search is not None:  # halving/optuna: the trials of the rounds chosen so far (module docstring)
            trials = search["trials"]
            plan = {**plan, "trials": round_trials(sweep / "plan", plan["search"])}
        # the limit this Snakemake checksums inputs under (--max-checksum-file-size); its DAG
        # settings are set only after the Snakefile is parsed, so the command line tells
        settings = getattr(workflow, "dag_settings", None)
        max_size = getattr(settings, "max_checksum_file_size", None) if settings is not None \
            else checksum_size_limit(sys.argv)
        state = preview_state(trials, steps, results, jobs_per_trial, plan=plan, sources=sources,
                              data_marker=data_marker, root=root, max_checksum_size=max_size)
        todo, done = jobs_to_run(state)
        cores = getattr(getattr(workflow, "resource_settings", None), "cores", None)
        text = format_preview(len(trials), todo, mean_durations(state.durations), cores, done, search)
        try:
            from snakemake.logging import logger

            logger.info(text)
        except Exception:  # outside Snakemake
            print(text, file=sys.stderr)
        return text
    except Exception as err:  # pragma: no cover - defensive
        print(f"snakesweep: plan preview unavailable ({err})", file=sys.stderr)
        return ""
