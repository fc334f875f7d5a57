"""Live, read-only status of a sweep: what is done, failed, running and left.

    python -m snakesweep.status [SWEEP] [--format text|json] [--recent-s 120]

SWEEP is a sweep file, a sweep's directory (results/<name>/) or a checkout (its
config/config.yaml); default: the current directory's config/config.yaml (layout.find_sweep).

The state of every trial and step comes from snakesweep/state.py (the reader collect, the preview
and the end-of-run summary use too). This module adds the run around it: whether Snakemake is
running here, the elapsed time of the sweep run (from its run log; dry runs and `--report` do not
count), an ETA, and a search's rounds. It takes no lock and writes nothing, so it is safe while a
run is going.

Running vs interrupted: a marked step is running only while a Snakemake instance works here (its
lock, and a Snakemake process in this directory when /proc can tell); a lock with no process on
this host may be a run on another host of a shared file system: then a marked step whose log
changed in the last --recent-s seconds counts as running. ETA: the jobs left times each step's
mean job duration (the `duration_s` of its results; a running job counts for what its mean has
left), over the jobs running now; measure jobs run one at a time, so their total is a floor.
Only while Snakemake runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .layout import find_sweep
from .rounds import round_progress
from .state import SERIAL_STEPS, SweepState, read_state


def sweep_status(
    root: str | Path = ".",
    steps: Iterable[str] | None = None,
    recent_s: float = 120.0,
    now: float | None = None,
    results: str = "results",
    logs: str | None = None,
    state: SweepState | None = None,
) -> dict[str, Any]:
    """Everything the status command prints, as a JSON-ready dict. Reads only.

    `root` is the directory Snakemake runs in, `results` the sweep's directory relative to it
    (its logs: `logs`, default <results>/logs). `steps` defaults to the plan's selected steps
    (all three for an older plan)."""
    root = Path(root)
    logs = str(Path(results, "logs")) if logs is None else logs
    now = time.time() if now is None else now
    st = state or read_state(root, results=results, logs=logs, steps=steps, recent_s=recent_s, now=now)
    steps = st.steps
    counts = st.counts()
    jobs_left = dict.fromkeys(steps, 0)
    failed, running, interrupted, stale = [], [], [], []
    for trial in st.trials:
        for step in steps:
            cell = st.cells[trial][step]
            if cell.state in ("pending", "interrupted", "running"):
                jobs_left[step] += max(0, cell.jobs - cell.jobs_done - (cell.state == "running"))
            if cell.state == "failed":
                rec = cell.error or {}
                failed.append({
                    "trial": trial, "step": step,
                    "type": rec.get("type") if not cell.corrupt else "CorruptResult",
                    "message": rec.get("message") if not cell.corrupt else cell.reason,
                    "reason": rec.get("reason") if not cell.corrupt else "corrupt",
                    "time": rec.get("time"),
                    "error_file": cell.error_file if not cell.corrupt else cell.result,
                    "log": cell.log,
                })
            elif cell.state == "running":
                running.append({"trial": trial, "step": step, "since": cell.marker_since, "log": cell.log})
            elif cell.state == "interrupted":
                interrupted.append({"trial": trial, "step": step, "since": cell.marker_since, "log": cell.log})
            elif cell.state == "stale":
                stale.append({"trial": trial, "step": step, "reason": cell.reason})

    mean_s = {s: (sum(v) / len(v) if v else None) for s, v in st.durations.items()}
    run = st.run_log
    if st.active:
        start = min(st.locks)  # written when the running instance took the directory
        elapsed = now - start
    elif run:
        # the last sweep run: from its start to its last sign of life (its log, a result, a job start)
        marks = [c.marker_since for row in st.cells.values() for c in row.values() if c.marker_since]
        last = max([run[1], *(e for e in st.ends if e >= run[0]), *(m for m in marks if m >= run[0])])
        start, elapsed = run[0], max(0.0, last - run[0])
    else:
        start, elapsed = None, None

    if st.active or running:
        eta, eta_note = estimate_eta(jobs_left, running, mean_s, now, steps)
    elif not any(jobs_left.values()):
        eta, eta_note = 0.0, "nothing left to run"
    else:
        eta = None
        eta_note = (f"snakemake is not running; {sum(jobs_left.values())} job(s) left "
                    "(run the same snakemake command to resume)")
    return {
        "dir": str(root.resolve()),
        "sweep_dir": str((root / results).resolve()),
        "plan_path": os.path.join(results, "plan", "trials.json"),
        "sweep_name": (st.plan or {}).get("sweep_name"),
        "search": search_status(st.plan, root / results),
        "plan": os.path.join(results, "plan", "trials.json") if st.plan else None,
        "planned": len(st.trials),
        "snakemake_running": st.active,
        "snakemake_pids": st.pids,
        "stale_lock": st.stale_lock,
        "markers": "available" if st.markers_found else "none (status of running jobs guessed from log activity)",
        "steps": {s: {**counts[s], "mean_duration_s": mean_s[s], "n_timed": len(st.durations[s])} for s in steps},
        "failed": failed,
        "running": running,
        "interrupted": interrupted,
        "stale": stale,
        "started_at": _iso(start),
        "elapsed_s": elapsed,
        "eta_s": eta,
        "eta_note": eta_note,
        "now": _iso(now),
    }


def search_status(plan: dict[str, Any] | None, results: str | Path) -> dict[str, Any] | None:
    """The plan's search (None for a grid): method, rounds chosen of all, the trials chosen so
    far and the most the rounds not chosen yet can add (halving/optuna)."""
    search = (plan or {}).get("search")
    if not isinstance(search, dict) or not search:
        return None
    out: dict[str, Any] = {"method": search.get("method"), "rounds": search.get("rounds", 1),
                           "chosen": search.get("rounds", 1), "trials": len((plan or {}).get("trials") or []),
                           "later_trials": 0}
    if search.get("rounds_dir"):
        info = round_progress(plan, Path(results) / "plan") or {}
        out.update(chosen=info.get("chosen", 0), later_trials=info.get("later_trials", 0),
                   rounds_dir=str(Path(results) / "plan" / search["rounds_dir"]))
    return out


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
        return None, f"no finished {', '.join(unknown)} job to time the rest by yet"
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
        plan = st.get("plan_path") or "results/<name>/plan/trials.json"
        lines.append(f"{st.get('sweep_dir', st['dir'])}: no plan yet ({plan} is missing; run snakemake first)")
    else:
        lines.append(f"sweep {name!r} in {st.get('sweep_dir', st['dir'])}: {st['planned']} trials planned")
        sr = st.get("search")
        if sr and sr.get("rounds_dir"):
            more = (f"; the {sr['rounds'] - sr['chosen']} round(s) left can add up to {sr['later_trials']} trials "
                    "(chosen as the rounds before finish; not in the counts below)" if sr["later_trials"] else
                    "; every round is chosen")
            lines.append(f"search: {sr['method']}, {sr['chosen']} of {sr['rounds']} rounds chosen "
                         f"({sr['rounds_dir']}/), {sr['trials']} trials so far{more}")
        elif sr:
            lines.append(f"search: {sr['method']} ({sr['trials']} trials, all chosen from the sweep file)")
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
    for extra in ("interrupted", "stale"):
        if any(v.get(extra) for v in st["steps"].values()):
            cols += (extra,)
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
        lines.append(f"interrupted: {len(st['interrupted'])} job(s) of a stopped run; the next run redoes them")
    if st.get("stale"):
        lines.append(f"stale: {len(st['stale'])} result(s) the next run redoes ({st['stale'][0]['reason']})")
    if st["eta_s"] is None and not st["snakemake_running"]:
        lines.append(f"ETA: none ({st['eta_note']})")
        return "\n".join(lines)
    eta = "done" if st["eta_s"] == 0 else _hms(st["eta_s"])
    lines.append(f"ETA: {eta} ({st['eta_note']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m snakesweep.status",
                                 description="Read-only status of a sweep (takes no lock, writes nothing).")
    ap.add_argument("sweep", nargs="?", default=None,
                    help="a sweep file, a sweep's directory (results/<name>) or a checkout "
                         "(default: config/config.yaml of the current directory)")
    ap.add_argument("--format", choices=["text", "json"], default="text")
    ap.add_argument("--recent-s", type=float, default=120.0,
                    help="a log written this recently counts as activity (default 120)")
    args = ap.parse_args(argv)
    try:
        root, results = find_sweep(args.sweep)
    except ConfigError as err:
        print(f"snakesweep.status: {err}", file=sys.stderr)
        return 2
    st = sweep_status(root, results=results, recent_s=args.recent_s)
    if args.format == "json":
        print(json.dumps(st, indent=2))
    else:
        print(format_text(st))
    return 0


if __name__ == "__main__":
    sys.exit(main())
