"""The state of every planned trial and step, from one reading of a sweep directory's files.

collect, status, preview and the end-of-run summary read a sweep through :func:`read_state`, so
they never disagree: the plan (with a search's chosen rounds), result JSONs and error records
(snakesweep/results.py: their `duration_s` times each step), and Snakemake's bookkeeping
(snakesweep/bookkeeping.py).
:func:`jobs_to_run` says what Snakemake will run from that state. Nothing here writes (the
parse-time repairs are snakesweep/reconcile.py). Reading costs one listing per directory, never a
stat per trial and step, plus one parse per result file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .bookkeeping import (
    MAX_CHECKSUM_FILE_SIZE,
    MetadataRecords,
    entry_mtime,
    incomplete_markers,
    latest_run_log,
    listdir,
    snakemake_locks,
    snakemake_processes,
)
from .plan import load_plan
from .results import CYCLE_FILE, load_result, of_plan, plan_identity, read_json_or_none, record_seconds
from .results import STEPS as ALL_STEPS

STEPS: tuple[str, ...] = tuple(ALL_STEPS)
# steps whose jobs run one at a time (they hold the measure_slot resource, capacity 1)
SERIAL_STEPS = ("measure",)
# Inputs the rules mark ancient() (workflow/rules/common.smk, get_step_inputs): measure waits for
# eval but a re-run eval does not make it re-measure. (step, upstream step).
ANCIENT_EDGES = frozenset({("measure", "eval")})
# done: a valid result (under a killed run's marker too: kept, snakesweep/reconcile.py); stale: a
# valid result Snakemake will redo (an input newer, or its settings changed: _stale_reason); failed:
# an error record, or a corrupt result (the reason says why); running: a marker while Snakemake
# runs here; interrupted: a marker, no Snakemake, no valid result; blocked: an earlier selected
# step failed; pending: none of these
STATES = ("done", "stale", "failed", "running", "interrupted", "pending", "blocked")


def plan_steps(plan: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The steps a plan selected, in order; a plan from before `sweep.steps` ran all three."""
    steps = (plan or {}).get("steps")
    return tuple(steps) if steps else STEPS


def measure_cycles(plan: Mapping[str, Any] | None) -> int:
    """`measure.cycles` of the plan (1 when absent)."""
    return int(((plan or {}).get("measure") or {}).get("cycles") or 1)


def _step_of(rel: str, steps: Iterable[str]) -> str | None:
    """The step an output under results/trials/{trial}/ belongs to: `train.json` -> train,
    `cycles/measure.0.json` -> measure (the file name first, then its folders)."""
    for part in reversed(rel.split("/")):
        token = re.split(r"[._-]", part, maxsplit=1)[0]
        if token in steps:
            return token
    return None


def _by_trial(entries: dict[str, os.DirEntry]) -> dict[str, list[tuple[str, os.DirEntry]]]:
    """Files named `{trial}.<anything>` grouped by trial id."""
    out: dict[str, list[tuple[str, os.DirEntry]]] = {}
    for name, entry in entries.items():
        out.setdefault(name.split(".", 1)[0], []).append((name, entry))
    return out


# ---------------------------------------------------------------------------- the state


@dataclass
class StepState:
    """One step of one trial, as read from the files."""

    trial: str
    step: str
    state: str
    reason: str | None = None  # failed: "Type: message" or "corrupt: ..."; stale / interrupted: why
    result: str | None = None  # the result JSON's path (relative to the sweep dir) when it exists
    record: dict[str, Any] | None = None  # the parsed result, when valid
    corrupt: bool = False
    error: dict[str, Any] | None = None  # the error record, when failed by one
    error_file: str | None = None
    log: str | None = None
    marker_since: float | None = None  # an incomplete marker's time (the job's start)
    finished_after_interrupt: bool = False  # done, though Snakemake's marker is still on it
    mtime: float | None = None  # of the result file
    duration_s: float | None = None  # from the result record
    sweep_hash: str | None = None  # the sweep the result was written for
    jobs: int = 1  # Snakemake jobs of this step per trial (measure cycles)
    jobs_done: int = 0  # of those, with a valid output


@dataclass
class SweepState:
    """Everything :func:`read_state` found; `cells[trial][step]` is a :class:`StepState`."""

    root: Path
    results: str
    logs: str
    plan: dict[str, Any] | None
    steps: tuple[str, ...]
    trials: list[str]
    cells: dict[str, dict[str, StepState]]
    markers_found: bool
    markers: dict[str, float]
    locks: list[float]
    pids: list[int]
    active: bool  # a Snakemake instance is running here (or, lock but no /proc, presumably)
    stale_lock: bool
    run_log: tuple[float, float] | None
    durations: dict[str, list[float]] = field(default_factory=dict)  # per step: the records' duration_s, a job each
    ends: list[float] = field(default_factory=list)  # mtimes of done results

    def trial_status(self, trial: str) -> tuple[str, StepState | None]:
        """("ok" | "failed" | "pending", the step that decides): ok when every selected step
        has a valid result; failed at the first failed (or corrupt) step; else pending."""
        for step in self.steps:
            cell = self.cells[trial][step]
            if cell.state in ("done", "stale"):
                continue
            if cell.state == "failed":
                return "failed", cell
            return "pending", cell
        return "ok", None

    def final_result(self, trial: str) -> StepState:
        """The trial's final result: its last selected step."""
        return self.cells[trial][self.steps[-1]]

    def counts(self) -> dict[str, dict[str, int]]:
        out = {s: dict.fromkeys(STATES, 0) for s in self.steps}
        for row in self.cells.values():
            for step, cell in row.items():
                out[step][cell.state] += 1
        return out


def file_digest(path: str | Path, algorithm: str, max_size: int) -> str | None:
    """"algorithm:hexdigest" of a file as Snakemake computes it for an input (io checksum), or
    None where Snakemake computes none: missing, a directory or FIFO, larger than `max_size`
    bytes, or an algorithm hashlib lacks."""
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode) or stat.S_ISFIFO(st.st_mode) or st.st_size > max_size:
            return None
        h = hashlib.new(algorithm)
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    except (OSError, ValueError):
        return None
    return f"{h.name}:{h.hexdigest()}"


class InputChecksums:
    """Whether Snakemake counts an input that is newer than its job's output as changed (dag.py
    update_needrun, is_same_checksum): not when the file is at most `max_size` bytes, every output
    of the job has a record of the input's checksum (.snakemake/metadata, snakesweep/bookkeeping.py),
    the records agree, and the file has that checksum now. No record, a larger file or
    disagreeing records: the mtime decides, as in Snakemake. A `touch` (or a copy, a checkout)
    that keeps the content therefore re-runs nothing."""

    def __init__(self, root: str | Path, max_size: int = MAX_CHECKSUM_FILE_SIZE):
        self.root, self.max_size = Path(root), max_size
        self.records = MetadataRecords(self.root / ".snakemake")
        self._digests: dict[tuple[str, str], str | None] = {}

    def unchanged(self, path: str, outputs: Iterable[str]) -> bool:
        """`path` (an input, relative to the root) has the checksum the job of `outputs` recorded."""
        recorded = set()
        for out in outputs:
            sums = self.records.input_checksums(out)
            recorded.add(sums.get(os.path.normpath(path)) if sums else None)
        if len(recorded) != 1:
            return False
        (want,) = recorded
        if want is None:
            return False
        algorithm = want.partition(":")[0]
        if (path, algorithm) not in self._digests:
            self._digests[(path, algorithm)] = file_digest(self.root / path, algorithm, self.max_size)
        return self._digests[(path, algorithm)] == want


def _stale_reason(
    cell: StepState,
    upstream: list[StepState],
    sources: Mapping[str, list[tuple[str, float]]],
    data: tuple[str, float] | None,
    changed: Mapping[str, str],
    unchanged: Callable[[str], bool] = lambda _path: False,
) -> str | None:
    """Why Snakemake will redo a step whose valid result exists (None: it will not).

    Mirrors Snakemake's triggers that files can show: an input newer than the output whose
    content Snakemake sees changed (`unchanged`: :class:`InputChecksums` for this cell's job):
    an earlier step's result, the data marker (`data`: the first step's input; an infinite
    mtime when the data will be prepared again), a workload source file; and a params change
    (the step's settings differ between the plan on disk and the configuration about to run).
    """
    if cell.step in changed:
        return changed[cell.step]
    mt = cell.mtime or 0.0
    for up in upstream:
        if (cell.step, up.step) in ANCIENT_EDGES:
            continue
        if up.mtime is not None and up.mtime > mt and not (up.result and unchanged(up.result)):
            return f"{up.step}.json is newer than this result"
    for path, m in sources.get(cell.step, ()):
        if m > mt and not unchanged(path):
            return f"{path} changed after this result"
    if data is not None and data[1] == float("inf"):
        return f"the data ({data[0]}) will be prepared again"
    if data is not None and data[1] > mt and not unchanged(data[0]):
        return f"the data ({data[0]}) was prepared again after this result"
    return None


def step_outputs(results: str, trial: str, step: str, jobs: int) -> list[str]:
    """The outputs of a step's Snakemake jobs, as the rules name them (common.smk result_path;
    measure.smk measure_cycle with `measure.cycles` > 1): whose metadata records hold the
    checksums of the step's inputs."""
    if jobs > 1:
        return [os.path.join(results, "trials", trial, "cycles", f"{step}.{c}.json") for c in range(jobs)]
    return [os.path.join(results, "trials", trial, f"{step}.json")]


def step_settings(plan: Mapping[str, Any] | None, step: str) -> str:
    """What of the plan a step's rule passes as params (its re-run trigger), canonically:
    a command workload's argv for the step with `args` and `metrics`; for measure also the
    device and the `measure:` settings (workflow/rules/common.smk, get_measure_settings_hash)."""
    plan = plan or {}
    wl = plan.get("workload")
    parts: list[Any] = []
    if isinstance(wl, dict):
        parts.append([(wl.get("command") or {}).get(step), wl.get("args"), wl.get("metrics")])
    if step == "measure":
        parts += [plan.get("device"), plan.get("measure")]
    return json.dumps(parts, sort_keys=True, default=str)


def changed_settings(disk_plan: Mapping[str, Any] | None, current_plan: Mapping[str, Any] | None,
                     steps: Iterable[str]) -> dict[str, str]:
    """{step: why} for the steps whose settings differ between the plan on disk and the plan
    the configuration about to run would write (empty without either)."""
    if not disk_plan or not current_plan:
        return {}
    out = {}
    for step in ["prepare", *steps]:
        if step_settings(disk_plan, step) != step_settings(current_plan, step):
            out[step] = f"the {step} settings changed since {disk_plan.get('sweep_name', 'the plan')!r} was planned"
    return out


def workload_sources(plan: Mapping[str, Any] | None, root: str | Path = ".") -> dict[str, list[str]]:
    """{step or "prepare": files} a plan's workload declares, relative to the sweep dir: a user's
    module file serves every step; a command workload's literal `sources` entries (directories
    are not expanded here). Built-in workloads: none."""
    plan = plan or {}
    wl = plan.get("workload")
    steps = ["prepare", *plan_steps(plan)]
    if isinstance(wl, str) and wl.endswith(".py"):
        return {s: [wl] for s in steps}
    if isinstance(wl, dict):
        src = wl.get("sources") or []
        if isinstance(src, dict):
            return {s: [f for f in src.get(s, []) if os.path.isfile(Path(root, f))] for s in steps}
        return {s: [f for f in src if os.path.isfile(Path(root, f))] for s in steps}
    return {}


def _own_error(root: Path, logs: str, step: str, trial: str, names: list[str],
               identity: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]] | None:
    """(file name, record) of the first error record among `names` that is this trial's and
    step's, of this plan (`identity`: :func:`snakesweep.results.plan_identity`): a record naming
    another trial or step (copied or left from elsewhere), or written under another sweep or
    search, is no failure of this one. An unreadable record still fails the step (its content
    is unknown)."""
    for name in names:
        record = read_json_or_none(root / logs / step / name)
        if not isinstance(record, dict):
            return name, {}
        if record.get("trial", trial) == trial and record.get("step", step) == step \
                and of_plan(record, identity or {}):
            return name, record
    return None


def read_state(
    root: str | Path = ".",
    *,
    results: str = "results",
    logs: str = "logs",
    plan: Mapping[str, Any] | None = None,
    trials: Iterable[str] | None = None,
    steps: Iterable[str] | None = None,
    current_plan: Mapping[str, Any] | None = None,
    sources: Mapping[str, Iterable[str]] | None = None,
    data_marker: str | None = None,
    cycles: int | None = None,
    recent_s: float = 120.0,
    now: float | None = None,
    max_checksum_size: int = MAX_CHECKSUM_FILE_SIZE,
    processes: bool = True,
    keep_records: bool = False,
) -> SweepState:
    """Read the sweep directory `root` into one :class:`SweepState`.

    `plan` defaults to results/plan/trials.json; `trials` and `steps` default to the plan's
    (the workflow passes the ones about to run, which may be newer than the plan on disk).
    `cycles` overrides the plan's `measure.cycles`.
    `current_plan` (the plan the configuration about to run would write) and `sources`
    ({step: files}, "prepare" included) let stale results be told; without them the plan's own
    workload file is used. An input newer than a result makes it stale only when Snakemake
    would see its content changed (:class:`InputChecksums`; `max_checksum_size`: Snakemake's
    --max-checksum-file-size). `keep_records` keeps every parsed result in the cells (collect).
    """
    root = Path(root)
    now = time.time() if now is None else now
    smk = root / ".snakemake"
    if plan is None:
        plan = load_plan(root / results / "plan" / "trials.json", missing_ok=True)
    steps = tuple(steps) if steps is not None else plan_steps(current_plan or plan)
    trial_ids = list(trials) if trials is not None else [t["trial"] for t in (plan or {}).get("trials", []) if "trial" in t]
    if current_plan is not None and "trials" not in current_plan:
        raise ValueError("current_plan must be a whole plan (snakesweep.plan.build_plan)")
    cycles = cycles or measure_cycles(current_plan or plan)
    sweep_hash = (current_plan or plan or {}).get("sweep_hash")
    identity = plan_identity(current_plan or plan)  # whose error records are this sweep's

    # Snakemake's bookkeeping
    markers_found, markers = incomplete_markers(smk)
    marked: dict[tuple[str, str], float] = {}
    prefix = os.path.normpath(os.path.join(results, "trials")) + os.sep
    for path, start in markers.items():
        if path.startswith(prefix):
            trial, _, rel = path[len(prefix):].partition(os.sep)
            step = _step_of(rel, steps)
            if step:
                marked[(trial, step)] = min(start, marked.get((trial, step), start))
    locks = snakemake_locks(smk)
    pids = (snakemake_processes(root) if processes else None) if locks else []
    # a lock with no Snakemake process working here: a killed run left it (or the run is on
    # another host of a shared file system; then only log activity can tell)
    stale_lock = bool(locks) and pids == []
    active = bool(locks) and not stale_lock

    # inputs that make results stale
    if sources is None:
        sources = workload_sources(plan, root)
    src_mtimes: dict[str, list[tuple[str, float]]] = {}
    for step, files in sources.items():
        for f in files:
            try:
                src_mtimes.setdefault(step, []).append((str(f), os.stat(Path(root, f)).st_mtime))
            except OSError:
                pass
    if data_marker is None and (current_plan or plan or {}).get("workload_key"):
        data_marker = os.path.join(results, "data", (current_plan or plan)["workload_key"], "ready.json")
    data = None
    if data_marker:
        try:
            data = (data_marker, os.stat(Path(root, data_marker)).st_mtime)
        except OSError:
            data = None
    changed = changed_settings(plan, current_plan, steps)
    checksums = InputChecksums(root, max_checksum_size)
    if data is not None and ("prepare" in changed or any(
            m > data[1] and not checksums.unchanged(path, [data[0]]) for path, m in src_mtimes.get("prepare", ()))):
        data = (data[0], float("inf"))  # the data will be prepared again: every step re-runs

    log_idx = {s: _by_trial(listdir(root / logs / s)) for s in steps}
    durations: dict[str, list[float]] = {s: [] for s in steps}
    started = listdir(root / results / "trials")
    cells: dict[str, dict[str, StepState]] = {}
    ends: list[float] = []

    for trial in trial_ids:
        tdir = listdir(root / results / "trials" / trial) if trial in started else {}
        cyc = {}
        if cycles > 1 and "cycles" in tdir:
            cyc = listdir(root / results / "trials" / trial / "cycles")
        row: dict[str, StepState] = {}
        bad_upstream = False
        for step in steps:
            rel = os.path.join(results, "trials", trial, f"{step}.json")
            cell = StepState(trial, step, "pending", jobs=cycles if step == "measure" else 1)
            entry = tdir.get(f"{step}.json")
            if entry is not None:
                cell.result = rel
                cell.mtime = entry_mtime(entry)
                record, problem = load_result(entry.path, trial, step)
                if record is None:
                    cell.corrupt, cell.reason = True, problem.replace(entry.path, rel, 1)
                else:
                    cell.duration_s = record_seconds(record)
                    if cell.duration_s is not None and "cycle_files" not in record["metrics"]:
                        durations[step].append(cell.duration_s)  # the aggregate of cycles is no job's time
                    cell.sweep_hash = record.get("sweep_hash")
                    if keep_records:
                        cell.record = record
            if cell.jobs > 1:
                n = 0
                for name, e in cyc.items():
                    m = CYCLE_FILE.match(name)
                    if m and m.group("step") == step and int(m.group("cycle")) < cell.jobs:
                        rec, _p = load_result(e.path, trial, step)
                        n += rec is not None
                        if rec is not None and (secs := record_seconds(rec)) is not None:
                            durations[step].append(secs)  # each cycle is a job
                cell.jobs_done = cell.jobs if (entry is not None and not cell.corrupt) else n
            else:
                cell.jobs_done = int(entry is not None and not cell.corrupt)
            files = log_idx[step].get(trial, [])
            errs = sorted(n for n, _ in files if n.endswith(".error.json"))
            logs_here = [(n, e) for n, e in files if n.endswith(".log")]
            newest_log = max(logs_here, key=lambda x: entry_mtime(x[1]) or 0, default=None)
            cell.log = os.path.join(logs, step, newest_log[0] if newest_log else f"{trial}.log")
            marker = marked.get((trial, step))
            cell.marker_since = marker
            valid = entry is not None and not cell.corrupt
            log_recent = newest_log is not None and now - (entry_mtime(newest_log[1]) or 0) <= recent_s

            if marker is not None and (active or (stale_lock and log_recent)):
                cell.state = "running"
            elif marker is not None and not (valid and (sweep_hash is None or cell.sweep_hash == sweep_hash)):
                cell.state = "interrupted"
                cell.reason = "its job was running when Snakemake stopped; the next run redoes it"
            elif valid:
                cell.state = "done"
                cell.finished_after_interrupt = marker is not None
            elif cell.corrupt:
                cell.state = "failed"
            elif (own := _own_error(root, logs, step, trial, errs, identity)) is not None:
                name, cell.error = own
                cell.state = "failed"
                cell.error_file = os.path.join(logs, step, name)
                cell.log = os.path.join(logs, step, name.removesuffix(".error.json") + ".log")
                cell.reason = f"{cell.error.get('type') or 'error'}: {cell.error.get('message') or ''}"
            elif bad_upstream:
                cell.state = "blocked"
            elif not markers_found and stale_lock and log_recent:
                cell.state = "running"  # no markers to go by: log activity under a foreign lock
            if cell.state == "done":
                outputs = step_outputs(results, trial, step, cell.jobs)
                why = _stale_reason(cell, [row[s] for s in row if row[s].result], src_mtimes,
                                    data if step == steps[0] or (data and data[1] == float("inf")) else None, changed,
                                    lambda path, outs=outputs: checksums.unchanged(path, outs))
                if why:
                    cell.state, cell.reason = "stale", why
                elif cell.mtime is not None:
                    ends.append(cell.mtime)
            bad_upstream = bad_upstream or cell.state in ("failed", "blocked")
            row[step] = cell
        cells[trial] = row

    return SweepState(
        root=root, results=results, logs=logs, plan=dict(plan) if plan else None, steps=steps,
        trials=trial_ids, cells=cells, markers_found=markers_found, markers=markers, locks=locks,
        pids=pids or [], active=active, stale_lock=stale_lock, run_log=latest_run_log(smk, sweep_dir=results),
        durations=durations, ends=ends,
    )


# ---------------------------------------------------------------------------- what a run will do


def jobs_to_run(state: SweepState, data_missing_runs_all: bool = True) -> tuple[dict[str, int], dict[str, int]]:
    """({step: jobs Snakemake will run}, {step: jobs that have their output}), per Snakemake's
    rules as far as files tell (dag.py update_needrun):

    - every selected step's result is a target: missing -> its job runs;
    - a job runs when forced (an incomplete marker on an output that is not a finished result),
      or stale (an input newer than its output, or its params changed);
    - a job that runs makes every later step of the trial run (its output is their input),
      except through an input marked ancient() that exists (:data:`ANCIENT_EDGES`);
    - data prepared again (its marker missing while anything runs, or a prepare source changed)
      is an input of every step: everything runs.
    """
    steps = state.steps
    todo = dict.fromkeys(steps, 0)
    done = dict.fromkeys(steps, 0)
    runs: dict[str, list[bool]] = {}
    for trial in state.trials:
        row = state.cells[trial]
        cells = [row[s] for s in steps]
        valid = [c.state in ("done", "stale") for c in cells]
        forced = [c.state in ("stale", "interrupted", "running") and c.result is not None and not c.corrupt
                  for c in cells]
        # every selected step's result is a target (common.smk get_all_results)
        run = [not valid[i] or forced[i] for i in range(len(steps))]
        changed = True
        while changed:
            changed = False
            for i in range(len(steps)):
                if run[i]:
                    for j in range(i + 1, len(steps)):
                        if (steps[j], steps[i]) in ANCIENT_EDGES and cells[i].result and not cells[i].corrupt:
                            continue  # an existing ancient input does not propagate a re-run
                        if not run[j]:
                            run[j] = changed = True
                    for j in range(i):
                        if not valid[j] and not run[j]:
                            run[j] = changed = True
        runs[trial] = run
    data_rebuilt = False
    if data_missing_runs_all:
        data_rebuilt = _data_rebuilt(state, any(any(r) for r in runs.values()))
    for trial, run in runs.items():
        for i, step in enumerate(steps):
            cell = state.cells[trial][step]
            if run[i] or data_rebuilt:
                n = cell.jobs if (data_rebuilt or forced_or_upstream(state, trial, i, runs)) else cell.jobs - cell.jobs_done
                todo[step] += n
                done[step] += cell.jobs - n
            else:
                done[step] += cell.jobs
    return todo, done


def forced_or_upstream(state: SweepState, trial: str, i: int, runs: Mapping[str, list[bool]]) -> bool:
    """Whether step i of `trial` runs for a reason that redoes all its jobs (not only its
    missing measurement cycles): its output is stale or forced, or an earlier step runs."""
    cell = state.cells[trial][state.steps[i]]
    steps = state.steps
    row = state.cells[trial]

    def ancient_and_there(k: int) -> bool:  # an existing ancient input does not propagate
        up = row[steps[k]]
        return (steps[i], steps[k]) in ANCIENT_EDGES and up.result is not None and not up.corrupt

    return cell.state in ("stale", "interrupted", "running") or any(
        runs[trial][k] and not ancient_and_there(k) for k in range(i))


def _data_rebuilt(state: SweepState, anything_runs: bool) -> bool:
    key = (state.plan or {}).get("workload_key")
    if not key:
        return False
    marker = Path(state.root, state.results, "data", key, "ready.json")
    return anything_runs and not marker.exists()
