"""One reading of a sweep directory: the state of every planned trial and step.

collect, status, preview and the workflow's parse-time reconciliation all read the sweep
through :func:`read_state`, so they never disagree. It reads files only:

- the plan (results/plan/trials.json): trials, parameters, and the selected ``steps``
  (absent in plans written before steps were selectable: all of :data:`STEPS`); for a search
  in rounds (halving, optuna), with the trials of the rounds chosen so far
  (results/plan/rounds/, read by :func:`snakesweep.plan.load_plan`, see :func:`read_plan`);
- the result JSONs (results/trials/{trial}/{step}.json, and with ``measure.cycles: N`` the
  cycle records results/trials/{trial}/cycles/measure.{c}.json), each parsed and checked
  against the result schema (:func:`check_result`);
- error records (logs/{step}/{trial}.error.json, a cycle's logs/measure/{trial}.cycle{c}.error.json)
  and the step logs' modification times;
- Snakemake's benchmark records (results/benchmarks/{step}/*.tsv: job durations);
- Snakemake's bookkeeping in .snakemake/: the "incomplete" markers it writes when a job starts
  and removes when it finished (file backend: .snakemake/incomplete/<urlsafe-base64 of the
  output path>, mtime = job start; db backend: the ``incomplete`` column of metadata.db), the
  lock files of a running instance (.snakemake/locks), live Snakemake processes working in the
  directory (/proc), and its run logs (.snakemake/log/).

Per trial and step the state is one of:

  done         a valid result exists (an incomplete marker on it is a job killed after its
               result was completely written: the result is kept, see
               :func:`resolve_finished_markers`);
  stale        a valid result exists, but Snakemake will redo it, because what it was made from
               changed (what can be told from files, see :func:`_stale_reason`): an earlier step's
               result or the prepared data is newer than it, a workload source file (an input of
               the step) is newer than it, or (given the configuration about to run) the step's
               settings differ from the plan's (measure: device and ``measure:``; a command
               workload: the step's argv, ``args``, ``metrics``). Edits to snakesweep's own code
               or to the rules are not detected;
  failed       an error record and no valid result, or a result file that is corrupt (does not
               parse, or is not a result of this trial and step with the current schema and
               status ok): the reason says which, with the path and the parse error;
  running      an incomplete marker, and a Snakemake instance is running here;
  interrupted  an incomplete marker, no running Snakemake, and no valid result: the job of a
               killed run; the next run redoes it;
  blocked      an earlier selected step of the trial failed;
  pending      none of these (not started).

Reading costs one directory listing per directory (results/trials, each trial's directory, each
logs/{step} and results/benchmarks/{step}), never a stat per trial and step, plus one parse per
result file. Nothing here writes, except the two reconciliation functions at the end, which
the workflow calls at parse time in its main process only.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping

from .results import SCHEMA_VERSION
from .results import STEPS as ALL_STEPS

STEPS: tuple[str, ...] = tuple(ALL_STEPS)
# Inputs the rules mark ancient() (workflow/rules/common.smk, get_upstream): measure waits for
# eval but a re-run eval does not make it re-measure. (step, upstream step).
ANCIENT_EDGES = frozenset({("measure", "eval")})
STATES = ("done", "stale", "failed", "running", "interrupted", "pending", "blocked")
_LOG_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{6}(?:\.\d+)?)\.snakemake\.log$")
_CYCLE_FILE = re.compile(r"^(?P<step>[a-z_]+)\.(?P<cycle>\d+)\.json$")


# ---------------------------------------------------------------------------- small readers


def _listdir(path: str | Path) -> dict[str, os.DirEntry]:
    """Name -> entry of one directory; empty when it does not exist (one scandir)."""
    try:
        with os.scandir(path) as it:
            return {e.name: e for e in it}
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return {}


def _mtime(entry: os.DirEntry | None) -> float | None:
    if entry is None:
        return None
    try:
        return entry.stat().st_mtime
    except OSError:
        return None


def _read_json(path: str | Path) -> Any:
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def read_plan(path: str | Path) -> dict[str, Any] | None:
    """The plan as every reader must see it: :func:`snakesweep.plan.load_plan`, which adds the
    trials of a search's chosen rounds (halving, optuna: none of them are in trials.json
    itself). None when the plan is missing or unreadable; a round file that cannot be read
    ends the chosen rounds there (load_plan's rule), it never fails the reading."""
    from .plan import load_plan

    try:
        plan = load_plan(path)
    except (OSError, ValueError):
        return None
    except (KeyError, TypeError, AttributeError):  # a malformed round file: the plan's own trials
        plan = _read_json(path)
    return plan if isinstance(plan, dict) else None


def plan_steps(plan: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The steps a plan selected, in order; a plan from before `sweep.steps` ran all three."""
    steps = (plan or {}).get("steps")
    return tuple(steps) if steps else STEPS


def measure_cycles(plan: Mapping[str, Any] | None) -> int:
    """`measure.cycles` of the plan (1 when absent)."""
    return int(((plan or {}).get("measure") or {}).get("cycles") or 1)


# ---------------------------------------------------------------------------- result records


def check_result(record: Any, trial: str, step: str) -> str | None:
    """Why `record` is not a valid result of `trial`'s `step` (None when it is).

    Valid: a JSON object with the current schema_version, this trial and step, status "ok"
    and a metrics object; what every reader of results relies on.
    """
    if not isinstance(record, dict):
        return f"not a JSON object but {type(record).__name__}"
    if record.get("schema_version") != SCHEMA_VERSION:
        return f"schema_version is {record.get('schema_version')!r}, expected {SCHEMA_VERSION}"
    if record.get("trial") != trial:
        return f"it is a result of trial {record.get('trial')!r}, not {trial!r}"
    if record.get("step") != step:
        return f"it is a result of step {record.get('step')!r}, not {step!r}"
    if record.get("status") != "ok":
        return f"status is {record.get('status')!r}, not 'ok'"
    if not isinstance(record.get("metrics"), dict):
        return "it has no metrics object"
    return None


def load_result(path: str | Path, trial: str, step: str) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None) for a valid result; (None, "corrupt: <path>: <why>") otherwise."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as err:
        return None, f"corrupt: {path}: {err.strerror or err}"
    try:
        record = json.loads(data)
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        return None, f"corrupt: {path}: {err}"
    problem = check_result(record, trial, step)
    if problem:
        return None, f"corrupt: {path}: {problem}"
    return record, None


# ---------------------------------------------------------------------------- Snakemake's bookkeeping


def decode_marker(rel_parts: Iterable[str]) -> str | None:
    """Snakemake's file-backend record name -> the output path it marks.

    The path is urlsafe-base64 encoded and split into chunks of at most NAME_MAX - 1 characters;
    every chunk but the last is a directory whose name starts with '@'.
    """
    parts = list(rel_parts)
    enc = "".join(p[1:] if p.startswith("@") else p for p in parts)
    try:
        return base64.urlsafe_b64decode(enc.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def _marker_files(snakemake_dir: Path) -> dict[str, tuple[str, float]]:
    """{output path: (marker file, its mtime = the job's start)} of the file backend."""
    out: dict[str, tuple[str, float]] = {}
    inc = snakemake_dir / "incomplete"
    for dirpath, _dirs, files in os.walk(inc):
        rel = Path(dirpath).relative_to(inc).parts
        for name in files:
            if name == "migration_underway":
                continue
            path = decode_marker([*rel, name])
            if path is None:
                continue
            marker = os.path.join(dirpath, name)
            try:
                out[os.path.normpath(path)] = (marker, os.stat(marker).st_mtime)
            except OSError:
                pass
    return out


def _db_namespaces(snakemake_dir: Path) -> tuple[str, ...]:
    """Snakemake's db backend keys rows by the absolute .snakemake path (not symlink-resolved)."""
    return tuple(dict.fromkeys([str(snakemake_dir.absolute()), str(snakemake_dir.resolve())]))


def _db_rows(snakemake_dir: Path, query: str) -> list[tuple]:
    db = snakemake_dir / "metadata.db"
    if not db.is_file():
        return []
    try:
        # immutable=1: no locking and no journal; a plain read, never a write
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
        try:
            ns = _db_namespaces(snakemake_dir)
            return con.execute(query.format(ns=",".join("?" * len(ns))), ns).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []


def incomplete_markers(snakemake_dir: Path) -> tuple[bool, dict[str, float]]:
    """(markers available, {output path: mtime of the marker = job start})."""
    snakemake_dir = Path(snakemake_dir)
    found = (snakemake_dir / "incomplete").is_dir() or (snakemake_dir / "metadata.db").is_file()
    markers = {path: mtime for path, (_f, mtime) in _marker_files(snakemake_dir).items()}
    for target, start in _db_rows(
        snakemake_dir,
        "SELECT target, starttime FROM snakemake_metadata WHERE namespace IN ({ns}) AND incomplete = 1",
    ):
        markers[os.path.normpath(target)] = float(start or 0)
    return found, markers


def snakemake_locks(snakemake_dir: Path) -> list[float]:
    """mtimes of the lock files a Snakemake instance holds (empty: no instance holds the dir)."""
    snakemake_dir = Path(snakemake_dir)
    out = [m for name, e in _listdir(snakemake_dir / "locks").items() if name.endswith(".lock") and (m := _mtime(e))]
    if _db_rows(snakemake_dir, "SELECT 1 FROM snakemake_locks WHERE namespace IN ({ns}) LIMIT 1"):
        out.append((snakemake_dir / "metadata.db").stat().st_mtime)
    return out


def _is_snakemake(argv: list[str]) -> bool:
    head = argv[:4]
    if any(os.path.basename(a) == "snakemake" for a in head[:2]):
        return True
    return any(a == "-m" and b == "snakemake" for a, b in zip(head, head[1:]))


def _ancestors() -> set[int]:
    """This process and its ancestors: the Snakemake that parses the workflow is not "another"."""
    out, pid = {os.getpid()}, os.getppid()
    while pid > 1 and pid not in out:
        out.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as fh:
                pid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return out


def snakemake_processes(root: str | Path) -> list[int] | None:
    """PIDs of Snakemake processes on this host whose working directory is `root` (this process
    and its ancestors excluded). None when /proc cannot tell (not Linux)."""
    proc = Path("/proc")
    if not (proc / "self" / "cwd").exists():
        return None
    target = os.path.realpath(root)
    mine = _ancestors()
    pids = []
    for entry in _listdir(proc):
        if not entry.isdigit() or int(entry) in mine:
            continue
        try:
            argv = (proc / entry / "cmdline").read_bytes().split(b"\0")
            if not _is_snakemake([a.decode(errors="replace") for a in argv if a]):
                continue
            if os.path.realpath(proc / entry / "cwd") == target:
                pids.append(int(entry))
        except OSError:
            continue
    return pids


def _log_start(name: str) -> float | None:
    m = _LOG_NAME.match(name)
    if not m:
        return None
    try:
        fmt = "%Y-%m-%dT%H%M%S.%f" if "." in m.group(1) else "%Y-%m-%dT%H%M%S"
        return datetime.strptime(m.group(1), fmt).timestamp()  # Snakemake names it in local time
    except ValueError:
        return None


_JOB_LINE = re.compile(r"^(?:local)?(?:rule|checkpoint) \w+:$", re.M)


def _ran_jobs(path: str) -> bool:
    """Whether a Snakemake run log is of a run that executed jobs: not a dry run, nor
    `--report`, `--unlock`, `--lint`, ... (which write logs too)."""
    try:
        with open(path, errors="replace") as fh:
            text = fh.read()
    except OSError:
        return False
    return bool(_JOB_LINE.search(text)) and "This was a dry-run" not in text


def latest_run_log(snakemake_dir: Path, sweep_only: bool = True) -> tuple[float, float] | None:
    """(start, last write) of the newest .snakemake/log/<start>.snakemake.log; with
    `sweep_only`, of the newest one that ran jobs (so a later `snakemake --report` or dry run
    does not pass for the sweep run)."""
    logs = []
    for name, entry in _listdir(Path(snakemake_dir) / "log").items():
        start = _log_start(name)
        if start is not None:
            logs.append((start, entry))
    for start, entry in sorted(logs, key=lambda x: x[0], reverse=True):
        if not sweep_only or _ran_jobs(entry.path):
            return start, _mtime(entry) or start
    return None


def benchmark_seconds(path: str | Path) -> float | None:
    """Mean of the `s` column of a Snakemake benchmark TSV (one row per repeat)."""
    try:
        with open(path) as fh:
            header = fh.readline().rstrip("\n").split("\t")
            col = header.index("s")
            vals = []
            for line in fh:
                cells = line.rstrip("\n").split("\t")
                try:
                    vals.append(float(cells[col]))
                except (IndexError, ValueError):
                    pass
    except (OSError, ValueError):
        return None
    vals = [v for v in vals if v == v and 0 <= v < float("inf")]  # NaN or negative: no duration
    return sum(vals) / len(vals) if vals else None


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
    durations: dict[str, list[float]] = field(default_factory=dict)  # benchmark seconds per step
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


def _stale_reason(
    cell: StepState,
    upstream: list[StepState],
    sources: Mapping[str, list[tuple[str, float]]],
    data: tuple[str, float] | None,
    changed: Mapping[str, str],
) -> str | None:
    """Why Snakemake will redo a step whose valid result exists (None: it will not).

    Mirrors Snakemake's triggers that files can show: an input newer than the output (an
    earlier step's result, the data marker, a workload source file), and a params change
    (the step's settings differ between the plan on disk and the configuration about to run).
    """
    if cell.step in changed:
        return changed[cell.step]
    mt = cell.mtime or 0.0
    for up in upstream:
        if (cell.step, up.step) in ANCIENT_EDGES:
            continue
        if up.mtime is not None and up.mtime > mt:
            return f"{up.step}.json is newer than this result"
    for path, m in sources.get(cell.step, ()):
        if m > mt:
            return f"{path} changed after this result"
    if data is not None and data[1] > mt:
        return f"the data ({data[0]}) was prepared again after this result"
    return None


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
    processes: bool = True,
    benchmarks: bool = True,
    keep_records: bool = False,
) -> SweepState:
    """Read the sweep directory `root` into one :class:`SweepState`.

    `plan` defaults to results/plan/trials.json; `trials` and `steps` default to the plan's
    (the workflow passes the ones about to run, which may be newer than the plan on disk).
    `cycles` overrides the plan's `measure.cycles`.
    `current_plan` (the plan the configuration about to run would write) and `sources`
    ({step: files}, "prepare" included) let stale results be told; without them the plan's own
    workload file is used. `keep_records` keeps every parsed result in the cells (collect).
    """
    root = Path(root)
    now = time.time() if now is None else now
    smk = root / ".snakemake"
    if plan is None:
        plan = read_plan(root / results / "plan" / "trials.json")
    steps = tuple(steps) if steps is not None else plan_steps(current_plan or plan)
    trial_ids = list(trials) if trials is not None else [t["trial"] for t in (plan or {}).get("trials", []) if "trial" in t]
    if current_plan is not None and "trials" not in current_plan:
        raise ValueError("current_plan must be a whole plan (snakesweep.plan.build_plan)")
    cycles = cycles or measure_cycles(current_plan or plan)
    sweep_hash = (current_plan or plan or {}).get("sweep_hash")

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
    if "prepare" in changed and data is not None:
        data = (data[0], float("inf"))  # the data will be prepared again: every step re-runs

    log_idx = {s: _by_trial(_listdir(root / logs / s)) for s in steps}
    bench_idx = {s: _by_trial(_listdir(root / results / "benchmarks" / s)) for s in steps} if benchmarks else {}
    durations: dict[str, list[float]] = {s: [] for s in steps}
    started = _listdir(root / results / "trials")
    cells: dict[str, dict[str, StepState]] = {}
    ends: list[float] = []

    for trial in trial_ids:
        tdir = _listdir(root / results / "trials" / trial) if trial in started else {}
        cyc = {}
        if cycles > 1 and "cycles" in tdir:
            cyc = _listdir(root / results / "trials" / trial / "cycles")
        row: dict[str, StepState] = {}
        bad_upstream = False
        for step in steps:
            rel = os.path.join(results, "trials", trial, f"{step}.json")
            cell = StepState(trial, step, "pending", jobs=cycles if step == "measure" else 1)
            entry = tdir.get(f"{step}.json")
            if entry is not None:
                cell.result = rel
                cell.mtime = _mtime(entry)
                record, problem = load_result(entry.path, trial, step)
                if record is None:
                    cell.corrupt, cell.reason = True, problem.replace(entry.path, rel, 1)
                else:
                    cell.duration_s = record.get("duration_s")
                    cell.sweep_hash = record.get("sweep_hash")
                    if keep_records:
                        cell.record = record
            if cell.jobs > 1:
                n = 0
                for name, e in cyc.items():
                    m = _CYCLE_FILE.match(name)
                    if m and m.group("step") == step and int(m.group("cycle")) < cell.jobs:
                        rec, _p = load_result(e.path, trial, step)
                        n += rec is not None
                cell.jobs_done = cell.jobs if (entry is not None and not cell.corrupt) else n
            else:
                cell.jobs_done = int(entry is not None and not cell.corrupt)
            files = log_idx[step].get(trial, [])
            errs = sorted(n for n, _ in files if n.endswith(".error.json"))
            logs_here = [(n, e) for n, e in files if n.endswith(".log")]
            newest_log = max(logs_here, key=lambda x: _mtime(x[1]) or 0, default=None)
            cell.log = os.path.join(logs, step, newest_log[0] if newest_log else f"{trial}.log")
            marker = marked.get((trial, step))
            cell.marker_since = marker
            valid = entry is not None and not cell.corrupt
            log_recent = newest_log is not None and now - (_mtime(newest_log[1]) or 0) <= recent_s

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
            elif errs:
                cell.state = "failed"
                cell.error_file = os.path.join(logs, step, errs[0])
                cell.log = os.path.join(logs, step, errs[0].removesuffix(".error.json") + ".log")
                cell.error = _read_json(root / cell.error_file) or {}
                cell.reason = f"{cell.error.get('type') or 'error'}: {cell.error.get('message') or ''}"
            elif bad_upstream:
                cell.state = "blocked"
            elif not markers_found and stale_lock and log_recent:
                cell.state = "running"  # no markers to go by: log activity under a foreign lock
            if cell.state == "done":
                why = _stale_reason(cell, [row[s] for s in row if row[s].result], src_mtimes, data, changed)
                if why:
                    cell.state, cell.reason = "stale", why
                elif cell.mtime is not None:
                    ends.append(cell.mtime)
            if benchmarks:
                for _name, e in bench_idx[step].get(trial, []):
                    secs = benchmark_seconds(e.path)
                    if secs is not None:
                        durations[step].append(secs)
            bad_upstream = bad_upstream or cell.state in ("failed", "blocked")
            row[step] = cell
        cells[trial] = row

    return SweepState(
        root=root, results=results, logs=logs, plan=dict(plan) if plan else None, steps=steps,
        trials=trial_ids, cells=cells, markers_found=markers_found, markers=markers, locks=locks,
        pids=pids or [], active=active, stale_lock=stale_lock, run_log=latest_run_log(smk),
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


# ---------------------------------------------------------------------------- parse-time reconciliation


def _remove_marker(marker_file: str, incomplete_dir: Path) -> None:
    """Remove a marker file and its now empty chunk directories ('@...'), never more."""
    os.remove(marker_file)
    top = os.path.normpath(incomplete_dir)
    parent = os.path.normpath(os.path.dirname(marker_file))
    while parent != top and parent.startswith(top + os.sep):
        try:
            os.rmdir(parent)
        except OSError:
            break
        parent = os.path.dirname(parent)


def _result_output(path: str, results: str) -> tuple[str, str] | None:
    """(trial, step) when `path` is one of our result JSONs: results/trials/T/{step}.json or
    results/trials/T/cycles/{step}.{c}.json; None for anything else (checkpoints, plan, ...)."""
    parts = Path(path).parts
    base = Path(results).parts
    if parts[: len(base)] != base or len(parts) < len(base) + 3 or parts[len(base)] != "trials":
        return None
    trial, rest = parts[len(base) + 1], parts[len(base) + 2:]
    if len(rest) == 1 and rest[0].removesuffix(".json") in STEPS and rest[0].endswith(".json"):
        return trial, rest[0].removesuffix(".json")
    if len(rest) == 2 and rest[0] == "cycles" and (m := _CYCLE_FILE.match(rest[1])) and m.group("step") in STEPS:
        return trial, m.group("step")
    return None


def resolve_finished_markers(root: str | Path = ".", *, sweep_hash: str | None = None,
                             results: str = "results") -> list[str]:
    """Remove Snakemake's incomplete marker from every result JSON that was completely written
    before its run was killed (kill -9, Ctrl+C), so the next run keeps it instead of redoing it
    ("Forced execution" under rerun-incomplete). Returns the outputs whose marker was removed.

    Only our result JSONs qualify, and only when valid (:func:`check_result`: parses, this
    trial and step, current schema, status ok) and, given `sweep_hash`, written for that sweep.
    A marker on anything else (a half-written checkpoint, the plan, a corrupt result) stays:
    Snakemake's semantics are unchanged for them. Nothing is touched while a Snakemake instance
    holds the directory's lock (.snakemake/locks or the db backend's lock table): a running
    instance owns its markers; a lock left by a killed run is cleared by `snakemake --unlock`,
    after which the next run resolves the markers.

    Snakemake 9 consults only the marker for "incomplete" (persistence/file.py
    _filter_incomplete_keys; the metadata record is not read for it), so removing the marker
    file is the whole change for the file backend; for `--persistence-backend db` the row's
    `incomplete` flag is cleared the way Snakemake's own _unmark_incomplete does. The metadata
    record is left as it is: for a first run there is none (no trigger), and a record from an
    earlier run of the same output still lets Snakemake re-run it when its params really changed.
    """
    root = Path(root)
    smk = root / ".snakemake"
    if not smk.is_dir() or snakemake_locks(smk):
        return []
    resolved = []
    incomplete_dir = smk / "incomplete"
    for path, (marker_file, _m) in _marker_files(smk).items():
        if _finished(root, path, results, sweep_hash):
            try:
                _remove_marker(marker_file, incomplete_dir)
                resolved.append(path)
            except OSError:
                pass
    resolved += _resolve_db_markers(smk, root, results, sweep_hash)
    return sorted(resolved)


def _finished(root: Path, path: str, results: str, sweep_hash: str | None) -> bool:
    rel = os.path.relpath(path, root) if os.path.isabs(path) else path
    which = _result_output(os.path.normpath(rel), results)
    if which is None:
        return False
    record, problem = load_result(root / rel, *which)
    return record is not None and (sweep_hash is None or record.get("sweep_hash") == sweep_hash)


def _resolve_db_markers(smk: Path, root: Path, results: str, sweep_hash: str | None) -> list[str]:
    db = smk / "metadata.db"
    if not db.is_file():
        return []
    done = []
    try:
        con = sqlite3.connect(str(db), timeout=5)
        try:
            ns = _db_namespaces(smk)
            q = ",".join("?" * len(ns))
            rows = con.execute(
                f"SELECT namespace, target, record_format_version FROM snakemake_metadata "
                f"WHERE namespace IN ({q}) AND incomplete = 1", ns).fetchall()
            for namespace, target, version in rows:
                if not _finished(root, target, results, sweep_hash):
                    continue
                if not version:  # a stub written only to mark the job: Snakemake deletes it
                    con.execute("DELETE FROM snakemake_metadata WHERE namespace = ? AND target = ?",
                                (namespace, target))
                else:
                    con.execute("UPDATE snakemake_metadata SET incomplete = 0 WHERE namespace = ? AND target = ?",
                                (namespace, target))
                done.append(os.path.normpath(target))
            con.commit()
        finally:
            con.close()
    except sqlite3.Error:
        return []
    return done


def set_aside_corrupt_results(root: str | Path = ".", *, results: str = "results",
                              stamp: str | None = None) -> list[tuple[str, str, str]]:
    """Rename every corrupt result JSON to `<name>.corrupt-<time>` so that Snakemake, which
    redoes only missing outputs, redoes that step in this run. Returns (path, new path, why).

    Corrupt: does not parse, or is not a valid result of its trial and step (:func:`check_result`).
    The file is kept beside, for inspection. Nothing is touched while a Snakemake instance holds
    the directory's lock.
    """
    root = Path(root)
    if snakemake_locks(root / ".snakemake"):
        return []
    stamp = stamp or time.strftime("%Y%m%dT%H%M%S")
    moved = []
    trials_dir = root / results / "trials"
    for trial, tentry in _listdir(trials_dir).items():
        if not tentry.is_dir():
            continue
        tdir = _listdir(tentry.path)
        candidates = [(n, e, n.removesuffix(".json")) for n, e in tdir.items()
                      if n.endswith(".json") and n.removesuffix(".json") in STEPS]
        if "cycles" in tdir:
            for n, e in _listdir(tdir["cycles"].path).items():
                m = _CYCLE_FILE.match(n)
                if m and m.group("step") in STEPS:
                    candidates.append((os.path.join("cycles", n), e, m.group("step")))
        for name, entry, step in candidates:
            record, problem = load_result(entry.path, trial, step)
            if record is None:
                rel = os.path.join(results, "trials", trial, name)
                new = f"{rel}.corrupt-{stamp}"
                try:
                    os.replace(root / rel, root / new)
                    moved.append((rel, new, problem.replace(entry.path, rel, 1)))
                except OSError:
                    pass
    return moved


def reconcile(root: str | Path = ".", *, sweep_hash: str | None = None, results: str = "results",
              quiet: bool = False) -> dict[str, list]:
    """The workflow's parse-time pass (main process only, before the DAG is built): set corrupt
    results aside so this run redoes them, and keep finished results under a stale incomplete
    marker. Says what it did through Snakemake's logger. Never raises: a problem here must not
    stop a run; Snakemake's own rules then apply unchanged."""
    out: dict[str, list] = {"set_aside": [], "kept": []}
    try:
        out["set_aside"] = set_aside_corrupt_results(root, results=results)
        out["kept"] = resolve_finished_markers(root, sweep_hash=sweep_hash, results=results)
    except Exception as err:  # pragma: no cover - defensive
        _say(f"snakesweep: could not check results for resume ({type(err).__name__}: {err})")
        return out
    if quiet:
        return out
    for rel, new, why in out["set_aside"]:
        _say(f"snakesweep: {why}; moved to {new}, this run redoes that step")
    if out["kept"]:
        shown = ", ".join(out["kept"][:3]) + (f" and {len(out['kept']) - 3} more" if len(out["kept"]) > 3 else "")
        _say(f"snakesweep: {len(out['kept'])} result(s) finished just before the last run stopped "
             f"are kept, not redone: {shown}")
    return out


def _say(text: str) -> None:
    try:
        from snakemake.logging import logger

        logger.info(text)
    except Exception:  # outside Snakemake
        import sys

        print(text, file=sys.stderr)
