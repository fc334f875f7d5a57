"""Live, read-only status of a sweep directory: what is done, failed, running and left.

    python -m snakesweep.status [DIR] [--format text|json] [--recent-s 120]

It reads only files: the plan (results/plan/trials.json), the result JSONs
(results/trials/{trial}/{step}.json), failure records (logs/{step}/{trial}.error.json) and
logs, Snakemake's benchmark records (results/benchmarks/{step}/{trial}.tsv), and Snakemake's
own bookkeeping in .snakemake/: the lock files of a running instance (.snakemake/locks), the
"incomplete" markers it writes before a job starts and removes when it finished
(.snakemake/incomplete/<urlsafe-base64 of the output path>, whose mtime is the job's start;
with ``--persistence-backend db`` the ``incomplete`` column of .snakemake/metadata.db, opened
read-only and immutable), and its run logs (.snakemake/log/<start time>.snakemake.log).
It takes no lock, creates nothing and writes nothing, so it is safe while a run is going.

A step of a trial is:
  done        its result JSON exists and no incomplete marker is on it;
  running     an incomplete marker is on it and a Snakemake instance holds the directory's
              lock or the step's log changed in the last --recent-s seconds (on a cluster this
              includes jobs submitted and still queued); without any markers to go by
              (another persistence backend), a log changed in the last --recent-s seconds
              with no result and no error record;
  failed      an error record exists and there is no result;
  blocked     an earlier step of the same trial failed, so this one cannot run;
  interrupted an incomplete marker without a live run: a killed run; Snakemake redoes it;
  pending     none of the above.
ETA: the remaining jobs times each step's mean duration from the benchmark records of
finished jobs (a running job counts for the part of its mean not yet used), divided by the
number of jobs running now; measure jobs run one at a time, so their total is a floor. Rough.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import re
import sqlite3
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

STEPS = ("train", "eval", "measure")
SERIAL_STEPS = ("measure",)  # they hold a resource of capacity 1
STATES = ("done", "failed", "running", "pending", "blocked", "interrupted")
_LOG_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{6}(?:\.\d+)?)\.snakemake\.log$")


# ---------------------------------------------------------------------------- readers


def _listdir(path: Path) -> dict[str, os.DirEntry]:
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


def _read_json(path: Path) -> Any:
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


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


def incomplete_markers(snakemake_dir: Path) -> tuple[bool, dict[str, float]]:
    """(markers available, {output path: mtime of the marker = job start})."""
    markers: dict[str, float] = {}
    inc = snakemake_dir / "incomplete"
    found = inc.is_dir()
    if found:
        for dirpath, _dirs, files in os.walk(inc):
            rel = Path(dirpath).relative_to(inc).parts
            for name in files:
                if name == "migration_underway":
                    continue
                path = decode_marker([*rel, name])
                if path is None:
                    continue
                try:
                    markers[os.path.normpath(path)] = os.stat(os.path.join(dirpath, name)).st_mtime
                except OSError:
                    pass
    db = snakemake_dir / "metadata.db"
    if db.is_file():
        found = True
        try:
            # immutable=1: no locking and no journal; a plain read, never a write
            uri = f"{db.resolve().as_uri()}?mode=ro&immutable=1"
            con = sqlite3.connect(uri, uri=True)
            try:
                rows = con.execute(
                    "SELECT target, starttime FROM snakemake_metadata WHERE namespace = ? AND incomplete = 1",
                    (str(snakemake_dir.resolve()),),
                ).fetchall()
            finally:
                con.close()
            for target, start in rows:
                markers[os.path.normpath(target)] = float(start or 0)
        except sqlite3.Error:
            pass
    return found, markers


def snakemake_locks(snakemake_dir: Path) -> list[float]:
    """mtimes of the lock files a running Snakemake holds (empty: no instance holds the dir)."""
    out = [m for name, e in _listdir(snakemake_dir / "locks").items() if name.endswith(".lock") and (m := _mtime(e))]
    db = snakemake_dir / "metadata.db"
    if db.is_file():
        try:
            con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
            try:
                n = con.execute(
                    "SELECT COUNT(*) FROM snakemake_locks WHERE namespace = ?", (str(snakemake_dir.resolve()),)
                ).fetchone()[0]
            finally:
                con.close()
            if n:
                out.append(db.stat().st_mtime)
        except sqlite3.Error:
            pass
    return out


def _is_snakemake(argv: list[str]) -> bool:
    head = argv[:4]
    if any(os.path.basename(a) == "snakemake" for a in head[:2]):
        return True
    return any(a == "-m" and b == "snakemake" for a, b in zip(head, head[1:]))


def snakemake_processes(root: Path) -> list[int] | None:
    """PIDs of Snakemake processes on this host whose working directory is `root`.

    None when /proc cannot tell (not Linux); an empty list when it can and there is none.
    """
    proc = Path("/proc")
    if not (proc / "self" / "cwd").exists():
        return None
    target = os.path.realpath(root)
    pids = []
    for entry in _listdir(proc):
        if not entry.isdigit():
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


def latest_run_log(snakemake_dir: Path) -> tuple[float, float] | None:
    """(start, last write) of the newest .snakemake/log/<start>.snakemake.log."""
    best = None
    for name, entry in _listdir(snakemake_dir / "log").items():
        m = _LOG_NAME.match(name)
        if not m:
            continue
        try:
            start = datetime.strptime(m.group(1), "%Y-%m-%dT%H%M%S.%f" if "." in m.group(1) else "%Y-%m-%dT%H%M%S")
        except ValueError:
            continue
        ts = start.timestamp()  # Snakemake names it in local time
        if best is None or ts > best[0]:
            best = (ts, _mtime(entry) or ts)
    return best


def benchmark_seconds(path: Path) -> float | None:
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


# ---------------------------------------------------------------------------- status


def sweep_status(
    root: str | Path = ".",
    steps: Iterable[str] = STEPS,
    recent_s: float = 120.0,
    now: float | None = None,
    results: str = "results",
    logs: str = "logs",
) -> dict[str, Any]:
    """Everything the status command prints, as a JSON-ready dict. Reads only."""
    root = Path(root)
    steps = tuple(steps)
    now = time.time() if now is None else now
    smk = root / ".snakemake"
    plan_path = root / results / "plan" / "trials.json"
    plan = _read_json(plan_path)
    trials = [t["trial"] for t in (plan or {}).get("trials", []) if "trial" in t]

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
    pids = snakemake_processes(root) if locks else []
    # a lock with no Snakemake process on this host: a killed run left it, or the run
    # is on another host; either way nothing here proves jobs are running
    stale_lock = bool(locks) and pids == []
    active = bool(locks) and not stale_lock

    # `measure.cycles: N` makes N measure jobs per trial (results/trials/T/cycles/measure.C.json,
    # logs/measure/T.cycleC.log, results/benchmarks/measure/T.cycleC.tsv) plus a local aggregate
    cycles = int(((plan or {}).get("measure") or {}).get("cycles") or 1)
    jobs_per_trial = {s: (cycles if s == "measure" else 1) for s in steps}
    log_idx = {s: _by_trial(_listdir(root / logs / s)) for s in steps}
    bench_idx = {s: _by_trial(_listdir(root / results / "benchmarks" / s)) for s in steps}
    durations: dict[str, list[float]] = {s: [] for s in steps}
    ends: list[float] = []
    counts = {s: dict.fromkeys(STATES, 0) for s in steps}
    jobs_left = dict.fromkeys(steps, 0)
    failed, running, interrupted = [], [], []

    for trial in trials:
        tdir = _listdir(root / results / "trials" / trial)
        upstream_bad = False
        for step in steps:
            result = tdir.get(f"{step}.json")
            files = log_idx[step].get(trial, [])
            errs = sorted(n for n, _ in files if n.endswith(".error.json"))
            marker = marked.get((trial, step))
            log_m = None
            if marker is not None or not markers_found:
                log_m = max((m for n, e in files if n.endswith(".log") and (m := _mtime(e))), default=None)
            log_recent = log_m is not None and now - log_m <= recent_s
            if marker is not None and (active or log_recent):
                state = "running"
            elif marker is not None:
                state = "interrupted"
            elif result is not None:
                state = "done"
            elif errs:
                state = "failed"
            elif upstream_bad:
                state = "blocked"
            elif not markers_found and log_recent:
                state = "running"
            else:
                state = "pending"
            counts[step][state] += 1
            for _name, entry in bench_idx[step].get(trial, []):
                secs = benchmark_seconds(Path(entry.path))
                if secs is not None:
                    durations[step].append(secs)
            if state in ("pending", "interrupted", "running"):
                n = jobs_per_trial[step]
                if n > 1:
                    n -= sum(1 for name in _listdir(root / results / "trials" / trial / "cycles")
                             if name.startswith(f"{step}.") and name.endswith(".json"))
                jobs_left[step] += max(0, n - (state == "running"))
            if state == "done":
                end = _mtime(result)
                if end is not None:
                    ends.append(end)
            elif state == "failed":
                rec = _read_json(root / logs / step / errs[0]) or {}
                failed.append(
                    {
                        "trial": trial,
                        "step": step,
                        "type": rec.get("type"),
                        "message": rec.get("message"),
                        "reason": rec.get("reason"),
                        "time": rec.get("time"),
                        "error_file": os.path.join(logs, step, errs[0]),
                        "log": os.path.join(logs, step, errs[0].removesuffix(".error.json") + ".log"),
                    }
                )
            elif state == "running":
                since = marker if marker is not None else log_m
                newest = max((n for n, _ in files if n.endswith(".log")), default=f"{trial}.log",
                             key=lambda n: _mtime(dict(files)[n]) or 0)
                running.append({"trial": trial, "step": step, "since": since,
                                "log": os.path.join(logs, step, newest)})
            elif state == "interrupted":
                interrupted.append({"trial": trial, "step": step, "since": marker})
            upstream_bad = upstream_bad or state in ("failed", "blocked")

    mean_s = {s: (sum(v) / len(v) if v else None) for s, v in durations.items()}
    run = latest_run_log(smk)
    if active:
        start = min(locks)  # written when the running instance took the directory
        elapsed = now - start
    elif run:
        # the last run: from its start to its last sign of life (its log, a result, a job start)
        last = max([run[1], *(e for e in ends if e >= run[0]), *(m for m in marked.values() if m >= run[0])])
        start, elapsed = run[0], max(0.0, last - run[0])
    else:
        start, elapsed = None, None

    eta, eta_note = estimate_eta(jobs_left, running, mean_s, now, steps)
    return {
        "dir": str(root.resolve()),
        "sweep_name": (plan or {}).get("sweep_name"),
        "plan": os.path.join(results, "plan", "trials.json") if plan else None,
        "planned": len(trials),
        "snakemake_running": active,
        "snakemake_pids": pids or [],
        "stale_lock": stale_lock,
        "markers": "available" if markers_found else "none (status of running jobs guessed from log activity)",
        "steps": {s: {**counts[s], "mean_duration_s": mean_s[s], "n_benchmarks": len(durations[s])} for s in steps},
        "failed": failed,
        "running": running,
        "interrupted": interrupted,
        "started_at": _iso(start),
        "elapsed_s": elapsed,
        "eta_s": eta,
        "eta_note": eta_note,
        "now": _iso(now),
    }


def estimate_eta(jobs_left, running, mean_s, now, steps) -> tuple[float | None, str]:
    """Seconds until the last job ends: jobs not started times their step's mean duration,
    plus what running jobs have left of theirs, over the jobs running now (at least 1); the
    measure jobs, one at a time, are a floor."""
    left = {s: jobs_left.get(s, 0) for s in steps}
    n_running = len(running)
    if not any(left.values()) and not n_running:
        return 0.0, "nothing left to run"
    unknown = [s for s in steps if (left[s] or any(r["step"] == s for r in running)) and mean_s[s] is None]
    if unknown:
        return None, f"no finished {', '.join(unknown)} job with a benchmark record yet"
    work = {s: left[s] * mean_s[s] for s in steps}
    for r in running:
        used = now - r["since"] if r["since"] else 0.0
        work[r["step"]] += max(0.0, mean_s[r["step"]] - used)
    parallel = max(1, n_running)
    serial = sum(work[s] for s in steps if s in SERIAL_STEPS)
    eta = max(sum(work.values()) / parallel, serial)
    note = f"from mean job durations, {parallel} job(s) at a time"
    if serial:
        note += "; measure jobs one at a time"
    return eta, note


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def _hms(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "unknown"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_text(st: dict[str, Any], max_failed: int = 20) -> str:
    name = st["sweep_name"] or "?"
    lines = []
    if st["plan"] is None:
        lines.append(f"{st['dir']}: no plan yet (results/plan/trials.json is missing; run snakemake first)")
    else:
        lines.append(f"sweep {name!r} in {st['dir']}: {st['planned']} trials planned")
    if st["snakemake_running"]:
        state = "running (pid " + ", ".join(map(str, st["snakemake_pids"])) + ")" if st["snakemake_pids"] else "running"
    elif st.get("stale_lock"):
        state = ("not running here: .snakemake/locks exists but no Snakemake process on this host works in "
                 "this directory (a killed run left it: `snakemake --unlock`; or the run is on another host)")
    else:
        state = "not running"
    lines.append(f"snakemake: {state}; elapsed {_hms(st['elapsed_s'])}"
                 + (f" since {st['started_at']}" if st["started_at"] else ""))
    cols = ("done", "failed", "running", "pending", "blocked")
    if any(v["interrupted"] for v in st["steps"].values()):
        cols += ("interrupted",)
    lines.append(f"{'step':<9}" + "".join(f"{c:>12}" for c in cols) + f"{'mean job':>11}")
    for step, c in st["steps"].items():
        mean = c["mean_duration_s"]
        lines.append(f"{step:<9}" + "".join(f"{c[k]:>12}" for k in cols)
                     + f"{(f'{mean:.1f} s' if mean is not None else '-'):>11}")
    if st["failed"]:
        lines.append(f"failed ({len(st['failed'])}):")
        for f in st["failed"][:max_failed]:
            lines.append(f"  {f['step']:<8} {f['trial']}  {f['type'] or 'error'}: {f['message'] or ''}"
                         + (f" [{f['reason']}]" if f["reason"] else ""))
            lines.append(f"           log: {f['log']}")
        if len(st["failed"]) > max_failed:
            lines.append(f"  ... and {len(st['failed']) - max_failed} more (--format json lists all)")
    if st["running"]:
        shown = ", ".join(f"{r['step']} {r['trial']}" for r in st["running"][:8])
        more = f" and {len(st['running']) - 8} more" if len(st["running"]) > 8 else ""
        lines.append(f"running: {shown}{more}")
    if st["interrupted"]:
        lines.append(f"interrupted: {len(st['interrupted'])} job(s) of a killed run; Snakemake redoes them")
    eta = "done" if st["eta_s"] == 0 else _hms(st["eta_s"])
    lines.append(f"ETA: {eta} ({st['eta_note']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m snakesweep.status",
                                 description="Read-only status of a sweep directory (takes no lock, writes nothing).")
    ap.add_argument("dir", nargs="?", default=".", help="the directory snakemake runs in (default: .)")
    ap.add_argument("--format", choices=["text", "json"], default="text")
    ap.add_argument("--recent-s", type=float, default=120.0,
                    help="a log written this recently counts as activity (default 120)")
    args = ap.parse_args(argv)
    if not Path(args.dir).is_dir():
        print(f"snakesweep.status: {args.dir} is not a directory", file=sys.stderr)
        return 2
    st = sweep_status(args.dir, recent_s=args.recent_s)
    if args.format == "json":
        print(json.dumps(st, indent=2))
    else:
        print(format_text(st))
    return 0


if __name__ == "__main__":
    sys.exit(main())
