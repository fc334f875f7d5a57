"""The size of a run before it starts: trials, jobs per step, and an estimated wall time.

workflow/rules/report.smk prints it once per invocation (also on ``snakemake -n``), from the
main Snakemake process only. The estimate uses the `s` column of Snakemake ``benchmark:``
records left by earlier runs (results/benchmarks/{step}/{trial}.tsv): for each step the mean
duration, times the jobs still to run, spread over the cores; measure jobs run one at a time
(they hold a resource of capacity 1), so their total is a floor. Without records it says
"no history yet". Reading is capped per step so parsing a 10k-trial sweep stays fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterable, Mapping

SERIAL_STEPS = ("measure",)
MAX_RECORDS_PER_STEP = 300


def _seconds(path: str) -> float | None:
    try:
        with open(path) as fh:
            header = fh.readline().rstrip("\n").split("\t")
            col = header.index("s")
            vals = [float(line.split("\t")[col]) for line in fh if line.strip()]
    except (OSError, ValueError, IndexError):
        return None
    return sum(vals) / len(vals) if vals else None


def benchmark_means(
    benchmark_dir: str | Path, steps: Iterable[str], max_records: int = MAX_RECORDS_PER_STEP
) -> dict[str, tuple[float, int]]:
    """{step: (mean seconds, records used)} for the steps that have benchmark records."""
    out = {}
    for step in steps:
        try:
            with os.scandir(Path(benchmark_dir) / step) as it:
                paths = [e.path for e in it if e.name.endswith(".tsv")]
        except OSError:
            continue
        vals = [v for v in (_seconds(p) for p in sorted(paths)[:max_records]) if v is not None]
        if vals:
            out[step] = (sum(vals) / len(vals), len(vals))
    return out


def human_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def format_preview(
    n_trials: int,
    jobs_per_step: Mapping[str, int],
    benchmark_dir: str | Path,
    cores: int | None,
    done_per_step: Mapping[str, int] | None = None,
) -> str:
    """Two or three lines: the plan's size and the estimated wall time.

    ``jobs_per_step`` counts the jobs still to run per step (planned minus those whose result
    exists; Snakemake may re-run more when code or parameters changed). ``done_per_step``
    optionally gives the jobs that already have a result, shown for context.
    """
    cores = max(1, int(cores or 1))
    steps = list(jobs_per_step)
    total = sum(jobs_per_step.values())
    jobs = ", ".join(f"{s} {jobs_per_step[s]}" for s in steps)
    head = f"snakesweep plan: {n_trials} trials; jobs to run per step: {jobs} ({total} in all"
    done = sum((done_per_step or {}).values())
    head += f"; {done} already have results)" if done else ")"
    lines = [head]
    if total == 0:
        lines.append("estimated wall time: nothing to run (every step of every trial has a result)")
        return "\n".join(lines)
    means = benchmark_means(benchmark_dir, [s for s in steps if jobs_per_step[s]])
    if not means:
        lines.append(f"estimated wall time: no history yet (no benchmark records under {benchmark_dir})")
        return "\n".join(lines)
    work = {s: jobs_per_step[s] * means[s][0] for s in steps if s in means}
    serial = sum(w for s, w in work.items() if s in SERIAL_STEPS)
    wall = max(sum(work.values()) / cores, serial)
    per = ", ".join(f"{s} {m:.1f} s" for s, (m, _n) in means.items())
    n_rec = sum(n for _m, n in means.values())
    est = f"estimated wall time: ~{human_duration(wall)} on {cores} core{'s' if cores > 1 else ''}"
    est += f" (mean job time from {n_rec} earlier benchmark record{'s' if n_rec != 1 else ''}: {per}"
    if serial:
        est += "; measure jobs run one at a time"
    est += ")"
    lines.append(est)
    missing = [s for s in steps if jobs_per_step[s] and s not in means]
    if missing:
        lines.append(f"  no history yet for {', '.join(missing)}: the estimate leaves those jobs out")
    return "\n".join(lines)


def count_outputs(trials: Iterable[str], steps: Iterable[str], results: str | Path) -> dict[str, int]:
    """{step: trials whose result JSON exists} (one stat per trial and step)."""
    trials = list(trials)
    base = Path(results) / "trials"
    return {s: sum(1 for t in trials if os.path.exists(base / t / f"{s}.json")) for s in steps}


def jobs_to_run(
    trials: Iterable[str], steps: Iterable[str], results: str | Path, jobs_per_trial: Mapping[str, int] | None = None
) -> tuple[dict[str, int], dict[str, int]]:
    """({step: jobs to run}, {step: jobs already done}), as Snakemake will see it by files.

    A trial whose last step has its result needs nothing (Snakemake does not redo a missing
    intermediate file when the final one exists); otherwise each step without its result is
    a job. A step with several jobs per trial (``measure`` with ``measure.cycles: N``) counts
    its finished cycle outputs (results/trials/{trial}/cycles/{step}.{cycle}.json). Changed
    code or parameters can make Snakemake re-run more than this.
    """
    trials = list(trials)
    steps = list(steps)
    base = Path(results) / "trials"
    per = {s: max(1, int((jobs_per_trial or {}).get(s, 1))) for s in steps}
    todo = dict.fromkeys(steps, 0)
    done = dict.fromkeys(steps, 0)
    try:
        started = set(os.listdir(base))  # one listing instead of a stat per trial and step
    except OSError:
        started = set()
    for t in trials:
        if t not in started:
            for s in steps:
                todo[s] += per[s]
            continue
        have = {s: os.path.exists(base / t / f"{s}.json") for s in steps}
        if steps and have[steps[-1]]:
            for s in steps:
                done[s] += per[s]
            continue
        for s in steps:
            n_done = per[s] if have[s] else 0
            if not have[s] and per[s] > 1:
                try:
                    names = os.listdir(base / t / "cycles")
                except OSError:
                    names = []
                n_done = min(per[s], sum(1 for n in names if n.startswith(f"{s}.") and n.endswith(".json")))
            done[s] += n_done
            todo[s] += per[s] - n_done
    return todo, done


def show_preview(
    workflow,
    trials: list[str],
    steps: Iterable[str],
    results: str | Path,
    jobs_per_trial: Mapping[str, int] | None = None,
) -> str:
    """Print the preview through Snakemake's logger (stderr), from the main process only.

    Returns the text (empty when not printed). Never raises: a preview must not stop a run.
    """
    try:
        if not getattr(workflow, "is_main_process", True):
            return ""
        todo, done = jobs_to_run(trials, steps, results, jobs_per_trial)
        cores = getattr(getattr(workflow, "resource_settings", None), "cores", None)
        text = format_preview(len(trials), todo, Path(results) / "benchmarks", cores, done)
        try:
            from snakemake.logging import logger

            logger.info(text)
        except Exception:  # outside Snakemake
            print(text, file=sys.stderr)
        return text
    except Exception as err:  # pragma: no cover - defensive
        print(f"snakesweep: plan preview unavailable ({err})", file=sys.stderr)
        return ""
