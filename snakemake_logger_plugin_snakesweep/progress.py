"""Progress and ETA of a running Snakemake run, from the log events it emits (stdlib only).

:class:`RunProgress` is fed Snakemake's log events (job started, finished, failed, the job
table, the provided resources) with the time each happened, and answers: how many jobs are
done, failed and running, and how long the rest will take.

The ETA is computed from measured durations only:

* a rule's mean job duration comes from its jobs that finished in this run (start to finish as
  Snakemake logged them); for a rule none of whose jobs has finished yet, from the results of
  earlier runs (the ``duration_s`` of the records at its output's place in the sweep's other
  trials, snakesweep.results.earlier_durations); a rule with neither has no estimate, and its
  jobs are reported as "not timed yet";
* the work left is the jobs not started times their rule's mean, plus what each running job
  has left of its rule's mean;
* that work is divided by the parallelism actually observed: the time-averaged number of
  jobs running over the last ``window_s`` seconds (at least 1);
* jobs that share a resource of small capacity (``measure_slot=1``: measurements run one at a
  time) cannot overlap, whatever the cores: their summed durations over the capacity are a
  floor for the ETA.

There is no ETA before the first job of this run has finished ("ETA after the first jobs
finish"): the parallelism is not known yet.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

# Rules known to hold `measure_slot` (workflow/rules/measure.smk) before their first job shows
# its resources: measurements run one at a time.
SERIAL_RULES = {"measure": ("measure_slot", 1), "measure_cycle": ("measure_slot", 1)}
# Snakemake's own resources: parallelism is observed, not derived from these.
IGNORED_RESOURCES = {"_cores", "_nodes", "_job_count", "tmpdir"}
MAX_EARLIER_RECORDS = 200


def earlier_mean(output: str, max_records: int = MAX_EARLIER_RECORDS) -> tuple[float | None, int]:
    """(mean seconds, records used) of earlier runs' results of the step that writes `output`."""
    from snakesweep.results import earlier_durations  # the one reader of result records; lazy:
    # every snakemake command imports this plugin, and only a run that prints progress needs it

    vals = earlier_durations(output, max_records)
    return (sum(vals) / len(vals), len(vals)) if vals else (None, 0)


def observed_parallelism(changes: list[tuple[float, int]], now: float, window_s: float) -> float | None:
    """Time-averaged number of running jobs over the last ``window_s`` seconds before ``now``.

    ``changes`` are (time, jobs running from then on), in time order. Returns None before the
    first job started; the window starts no earlier than the first start.
    """
    if not changes or now <= changes[0][0]:
        return None
    start = max(changes[0][0], now - window_s)
    busy = 0.0
    for i, (t, n) in enumerate(changes):
        t_next = changes[i + 1][0] if i + 1 < len(changes) else now
        lo, hi = max(t, start), min(t_next, now)
        if hi > lo:
            busy += n * (hi - lo)
    return busy / (now - start)


@dataclass
class Estimate:
    """The answer for one moment: seconds left (None: no estimate yet) and why."""

    seconds: float | None
    untimed_jobs: int = 0  # jobs left whose rule has no measured duration (not in `seconds`)
    untimed_rules: tuple[str, ...] = ()
    parallelism: float | None = None
    serial_floor: bool = False  # the one-at-a-time jobs decide the ETA
    note: str = ""


def estimate_eta(
    left: Mapping[str, int],
    running_elapsed: Mapping[str, list[float]],
    mean_s: Mapping[str, float | None],
    parallelism: float,
    needs: Mapping[str, Mapping[str, float]] | None = None,
    capacity: Mapping[str, float] | None = None,
) -> Estimate:
    """Seconds until the last job ends.

    left: jobs not started yet, per rule. running_elapsed: per rule, how long each running job
    has run. mean_s: a rule's mean job duration (None: not measured). parallelism: jobs that
    run at once (observed). needs/capacity: per rule the amount of a limited resource a job
    holds, and the resource's capacity; the jobs holding it cannot take less than their summed
    durations times their need over the capacity.
    """
    needs = needs or {}
    capacity = capacity or {}
    work: dict[str, float] = {}
    untimed: dict[str, int] = {}
    for rule in set(left) | set(running_elapsed):
        n_left = int(left.get(rule, 0))
        running = running_elapsed.get(rule, [])
        if not n_left and not running:
            continue
        mean = mean_s.get(rule)
        if mean is None:
            untimed[rule] = n_left + len(running)
            continue
        work[rule] = n_left * mean + sum(max(0.0, mean - e) for e in running)
    p = max(1.0, float(parallelism))
    total = sum(work.values()) / p
    floor = 0.0
    for res, cap in capacity.items():
        if cap and cap > 0:
            held = sum(w * float(needs.get(rule, {}).get(res, 0)) for rule, w in work.items()) / cap
            floor = max(floor, held)
    seconds = max(total, floor)
    return Estimate(
        seconds=seconds,
        untimed_jobs=sum(untimed.values()),
        untimed_rules=tuple(sorted(untimed)),
        parallelism=p,
        serial_floor=floor > total,
    )


def human_seconds(seconds: float) -> str:
    """12s, 4m05s, 1h02m."""
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


@dataclass
class _Job:
    rule: str
    started: float


@dataclass
class RunProgress:
    """What a run has done so far, from its log events; times are the events' own timestamps."""

    window_s: float = 120.0
    planned: dict[str, int] = field(default_factory=dict)  # the job table: per rule, jobs in this run
    total: int = 0
    done: int = 0
    running: dict[int, _Job] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    interrupted: dict[int, str] = field(default_factory=dict)  # stopped by Ctrl+C: not failures
    finished_per_rule: dict[str, int] = field(default_factory=dict)
    durations: dict[str, list[float]] = field(default_factory=dict)
    needs: dict[str, dict[str, float]] = field(default_factory=dict)
    capacity: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)  # per rule: a job's first output
    first_start: float | None = None
    _changes: list[tuple[float, int]] = field(default_factory=list)
    _earlier: dict[str, tuple[float | None, int]] = field(default_factory=dict)
    _seen: set = field(default_factory=set)

    # ------------------------------------------------------------------ events

    def job_table(self, stats: Mapping[str, int]) -> None:
        """Snakemake's job table (per rule, and 'total')."""
        self.planned = {str(k): int(v) for k, v in stats.items() if k != "total"}
        self.total = max(self.total, int(stats.get("total", sum(self.planned.values()))))

    def provided_resources(self, resources: Mapping[str, object]) -> None:
        for name, value in resources.items():
            v = getattr(value, "value", value)  # Snakemake 9 wraps global resources
            if name in IGNORED_RESOURCES or isinstance(v, bool):
                continue
            try:
                cap = float(v)
            except (TypeError, ValueError):
                continue
            if math.isfinite(cap) and cap > 0:
                self.capacity[name] = cap

    def job_started(self, jobid: int, rule: str, t: float, resources: Mapping[str, object] | None = None,
                    output: str | None = None) -> None:
        if jobid in self.running:
            return
        self.failed.pop(jobid, None)  # a retry of a failed job
        self.running[jobid] = _Job(rule, t)
        self._seen.add(jobid)
        if self.first_start is None:
            self.first_start = t
        if resources is not None and rule not in self.needs:
            need = {}
            for name in self.capacity:
                try:
                    v = float(resources.get(name, 0) or 0)  # type: ignore[union-attr]
                except (TypeError, ValueError):
                    v = 0.0
                if v > 0:
                    need[name] = v
            self.needs[rule] = need
        if output and rule not in self.outputs:
            self.outputs[rule] = str(output)
        self._mark(t)

    def job_finished(self, jobid: int, t: float) -> None:
        job = self.running.pop(jobid, None)
        if job is None:
            return
        self.finished_per_rule[job.rule] = self.finished_per_rule.get(job.rule, 0) + 1
        self.durations.setdefault(job.rule, []).append(max(0.0, t - job.started))
        self._mark(t)

    def job_failed(self, jobid: int, rule: str, t: float) -> None:
        self.running.pop(jobid, None)
        self.failed[jobid] = rule
        self._mark(t)

    def job_interrupted(self, jobid: int, rule: str, t: float) -> None:
        self.running.pop(jobid, None)
        self.interrupted[jobid] = rule
        self._mark(t)

    def progress(self, done: int, total: int) -> None:
        self.done = int(done)
        self.total = int(total)

    def _mark(self, t: float) -> None:
        self._changes.append((t, len(self.running)))

    # ------------------------------------------------------------------ answers

    @property
    def n_done(self) -> int:
        return max(self.done, sum(self.finished_per_rule.values()))

    def mean_s(self, rule: str) -> float | None:
        d = self.durations.get(rule)
        if d:
            return sum(d) / len(d)
        if rule not in self._earlier:
            # lazy, as in earlier_mean: the rules that write trials/<trial>/<rule>.json
            from snakesweep.results import STEPS

            output = self.outputs.get(rule)
            if output is None and rule in STEPS:  # not started yet: its file beside another step's
                output = next((os.path.join(os.path.dirname(o), f"{rule}.json")
                               for r, o in self.outputs.items() if r in STEPS), None)
            if output is None:
                return None  # nothing says yet where its results are
            self._earlier[rule] = earlier_mean(output)
        return self._earlier[rule][0]

    def left_per_rule(self) -> dict[str, int]:
        """Jobs not started yet, per rule (from the job table, less what ran or runs), and the
        jobs Snakemake added later (a checkpoint's) under the key ''."""
        running = {}
        for job in self.running.values():
            running[job.rule] = running.get(job.rule, 0) + 1
        failed = {}
        for rule in self.failed.values():
            failed[rule] = failed.get(rule, 0) + 1
        left = {
            rule: max(0, n - self.finished_per_rule.get(rule, 0) - running.get(rule, 0) - failed.get(rule, 0))
            for rule, n in self.planned.items()
        }
        unknown = self.total - self.n_done - len(self.failed) - len(self.running) - sum(left.values())
        if unknown > 0:
            left[""] = unknown
        return left

    def estimate(self, now: float) -> Estimate:
        if not self.durations:
            return Estimate(None, note="ETA after the first jobs finish")
        left = self.left_per_rule()
        running: dict[str, list[float]] = {}
        for job in self.running.values():
            running.setdefault(job.rule, []).append(max(0.0, now - job.started))
        if not any(left.values()) and not running:
            return Estimate(0.0, note="nothing left")
        rules = set(left) | set(running)
        means = {r: (None if r == "" else self.mean_s(r)) for r in rules}
        needs = {r: dict(self.needs.get(r) or {}) for r in rules}
        for r in rules:
            if r not in self.needs and r in SERIAL_RULES:
                res, q = SERIAL_RULES[r]
                if res in self.capacity:
                    needs[r] = {res: q}
        par = observed_parallelism(self._changes, now, self.window_s) or 1.0
        est = estimate_eta(left, running, means, par, needs, self.capacity)
        if est.untimed_jobs and not (est.seconds and est.seconds >= 0.5):
            if not any(left.get(r, 0) for r in est.untimed_rules):  # no job of theirs waits: only the running
                est.seconds = None
                n = est.untimed_jobs
                est.note = "the last job is running" if n == 1 else f"the last {n} jobs are running"
                return est
            order = list(self.planned)
            named = sorted((r for r in est.untimed_rules if r), key=lambda r: order.index(r) if r in order else len(order))
            shown = ", ".join(named[:3]) + (", ..." if len(named) > 3 else "")
            est.seconds = None
            est.note = f"ETA after the first {shown} jobs finish" if shown else "ETA after the first jobs finish"
        return est

    def line(self, now: float, clock: str | None = None) -> str:
        """One progress line: counts, and the ETA (or why there is none yet)."""
        total = max(self.total, self.n_done + len(self.failed) + len(self.running))
        done = self.n_done
        pct = f"{100.0 * done / total:.0f}%" if total else "0%"
        if total and done < total and pct == "100%":
            pct = "99%"
        text = f"{done}/{total} jobs done ({pct}), {len(self.failed)} failed, {len(self.running)} running"
        if self.interrupted:  # Ctrl+C: the run is ending, no ETA
            return f"[{clock}] {text}, {len(self.interrupted)} interrupted" if clock else f"{text}, {len(self.interrupted)} interrupted"
        est = self.estimate(now)
        if est.seconds is None:
            text += f"; {est.note}"
        elif est.note == "nothing left":
            pass
        else:
            text += f"; ETA {human_seconds(est.seconds)}"
            extras = []
            if est.serial_floor:
                extras.append("measurements one at a time")
            if est.untimed_jobs:
                extras.append(f"+{est.untimed_jobs} job{'s' if est.untimed_jobs != 1 else ''} not timed yet")
            if extras:
                text += f" ({'; '.join(extras)})"
        return f"[{clock}] {text}" if clock else text
