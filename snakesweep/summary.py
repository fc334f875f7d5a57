"""The lines a run ends with, after success and after failures alike.

    end_of_run_summary(results="results/<name>", logs="results/<name>/logs") -> list[str]
    unfinished(results) -> str | None      (why the run's exit code must not be 0)

The workflow's ``onsuccess:`` and ``onerror:`` handlers print these lines: how many trials are
ok, failed and pending (every failed one with its error and log, up to 20), the best
configuration with its mean, interval and the significance verdict (results/best.json), the
report outputs that could not be made (results/report/problems.*.json), and where the reports
are. A search in rounds (halving, optuna) also says how many rounds are chosen, and that a trial that
failed for good is not retried (snakesweep/search.py: final_failures). It reads files only
(summary.csv, the plan and its round files, best.json, the problem notes), never raises, and
imports nothing heavy, so a handler can always call it. ``python -m snakesweep.summary [SWEEP]``
prints the same for a sweep (a sweep file, a sweep's directory or a checkout; default the
checkout's config/config.yaml: snakesweep.layout.find_sweep), and exits 1 unless every trial is ok.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError, disk_error_line  # noqa: F401  (re-exported: the workflow's handlers print it)
from .layout import find_sweep
from .report import report_problem_lines, report_targets  # standard library only at import
from .results import RETRY_ON, read_json_or_none
from .rounds import round_progress

MAX_FAILED = 20
BUDGET_TYPE = "FailureBudget"  # the error type of a trial the failure budget never started
# (path under results/, what it answers); the order of the final lines
REPORTS = (
    ("summary.csv", "one row per planned trial: status, parameters, metrics, error"),
    ("configs.csv", "one row per configuration: mean and interval over seeds"),
    ("best.json", "best configuration vs runner-up, significance test"),
    ("report/answer.html", "the answer on one page"),
    ("plots/", "plots"),
)


def _num(x: Any) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "n/a"
    return f"{v:.4g}" if math.isfinite(v) else "n/a"


def _value(v: Any) -> str:
    if isinstance(v, str):
        return v
    return json.dumps(v)


def _params(params: Any) -> str:
    if isinstance(params, Mapping) and params:
        return ", ".join(f"{k}={_value(v)}" for k, v in params.items())
    return "(no swept parameters)"


def raise_csv_field_limit() -> None:
    """A summary cell may be any size (a string metric or parameter of 20 MB): the csv module's
    default field limit (131,072 characters) would make the whole file unreadable."""
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:  # a C long narrower than sys.maxsize
            limit //= 2


def _read_rows(path: Path) -> list[dict[str, str]] | None:
    raise_csv_field_limit()
    try:
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError):
        return None


def search_of(results: str | Path) -> dict[str, Any] | None:
    """A search in rounds, from the plan on disk: ``{"method", "rounds", "chosen", "retry_on"}``;
    None for a grid, random/sobol (ordinary trials: a re-run retries them) or without a plan."""
    plan = read_json_or_none(Path(results, "plan", "trials.json"))
    search = plan.get("search") if isinstance(plan, Mapping) else None
    if not isinstance(search, Mapping) or not search.get("rounds_dir"):
        return None
    try:
        chosen = round_progress(plan, Path(results, "plan"))["chosen"]
    except Exception:  # noqa: BLE001 - a summary line must not fail
        chosen = None
    retry_on = (plan.get("failures") or {}).get("retry_on") or RETRY_ON
    return {"method": search.get("method"), "rounds": search.get("rounds"), "chosen": chosen,
            "retry_on": list(retry_on)}


def _retry_text(search: Mapping[str, Any] | None, logs: str | Path = "logs") -> str:
    if not search:
        return "re-run the same command to retry failed and missing trials."
    why = ", ".join(search.get("retry_on") or []) or "none"
    return ("re-run the same command to continue the search: missing trials run, and failed ones are retried "
            f"only for a reason in failures.retry_on ({why}) or when the failure budget held them back; a "
            "trial that failed for good (an exception, a "
            "non-zero exit) is not retried and the search goes on without it (delete its "
            f"{Path(logs).as_posix()}/<step>/<trial>.error.json to retry it).")


def held_back(row: Mapping[str, Any]) -> bool:
    """A trial the failure budget never started (its error record's type, snakesweep/supervise.py):
    not a failure of its own."""
    return f": {BUDGET_TYPE}: " in (row.get("error") or "")


def trial_lines(rows: list[dict[str, str]], logs: str | Path = "logs",
                search: Mapping[str, Any] | None = None, results: str | Path | None = None) -> list[str]:
    """Counts of ok / failed / not started (failure budget) / pending trials; the failed ones
    with their error and log. `search` (:func:`search_of`): a search in rounds, whose re-run
    retries less; `results`: the sweep's directory, for the paths the lines name."""
    counts = {"ok": 0, "failed": 0, "budget": 0, "pending": 0}
    failed = []
    for r in rows:
        status = (r.get("status") or "").strip() or "pending"
        if status in ("failed", "corrupt") and held_back(r):
            counts["budget"] += 1
        elif status in ("failed", "corrupt"):
            counts["failed"] += 1
            failed.append(r)
        elif status == "ok":
            counts["ok"] += 1
        else:
            counts["pending"] += 1
    n = len(rows)
    res = Path(results if results is not None else Path(logs).parent).as_posix()
    budget = f", {counts['budget']} not started (failure budget)" if counts["budget"] else ""
    lines = [f"snakesweep: {n} trial{'s' if n != 1 else ''}: {counts['ok']} ok, {counts['failed']} failed"
             f"{budget}, {counts['pending']} pending"]
    if counts["failed"] or counts["pending"] or counts["budget"]:
        lines.append(
            f"snakesweep: {counts['failed']} of {n} trials failed{budget} and {counts['pending']} did not finish; "
            f"{res}/summary.csv lists every trial (status, error); {_retry_text(search, logs)}"
        )
    if search and search.get("chosen") is not None and search.get("rounds") and search["chosen"] < search["rounds"]:
        lines.append(f"snakesweep: {search.get('method')} search: {search['chosen']} of {search['rounds']} rounds "
                     f"chosen so far ({res}/plan/rounds/); the same command continues it")
    for r in failed[:MAX_FAILED]:
        log = r.get("error_log") or ""
        if not log:
            step = (r.get("error") or "").split(":", 1)[0].strip()
            log = f"{logs}/{step}/{r.get('trial')}.log" if step else ""
        lines.append(f"  {r.get('trial')}: {r.get('error') or 'failed'}" + (f" (log: {log})" if log else ""))
    if len(failed) > MAX_FAILED:
        lines.append(f"  ... and {len(failed) - MAX_FAILED} more failed trials (results/summary.csv)")
    return lines


def _interval(c: Mapping[str, Any], confidence: Any) -> str:
    lo, hi = c.get("ci_low"), c.get("ci_high")
    if lo is not None and hi is not None and _num(lo) != "n/a" and _num(hi) != "n/a":
        try:
            pct = f"{float(confidence) * 100:.0f}% "
        except (TypeError, ValueError):
            pct = ""
        return f"{pct}CI [{_num(lo)}, {_num(hi)}]"
    note = c.get("ci_note")
    return str(note) if note else "no interval"


def best_lines(best: Any) -> list[str]:
    """The best configuration (mean, interval, seeds), the runner-up and the verdict."""
    if not isinstance(best, Mapping):
        return ["best configuration: results/best.json is missing or unreadable"]
    obj = best.get("objective") or {}
    metric, direction = obj.get("metric", "?"), obj.get("direction", "?")
    b, r = best.get("best"), best.get("runner_up")
    verdict = best.get("verdict") or ""
    if not isinstance(b, Mapping):
        return [f"best configuration by {metric} ({direction}): none" + (f"; {verdict}" if verdict else "")]
    def stats(c: Mapping[str, Any]) -> str:
        n = c.get("n_ok", "?")
        return (f"mean {_num(c.get('mean'))} over {n} ok seed{'s' if n != 1 else ''}; "
                f"{_interval(c, best.get('confidence'))}; config {c.get('config_id')}")

    lines = [
        f"best configuration by {metric} ({direction}): {_params(b.get('params'))}",
        f"  {stats(b)}",
    ]
    if isinstance(r, Mapping):
        lines.append(f"  runner-up: {_params(r.get('params'))}: {stats(r)}")
    if verdict:
        lines.append(f"  verdict: {verdict}")
    return lines


def expected_plots(results: str | Path) -> set[str] | None:
    """The plot files the sweep's plan makes (the search's figure only for a search); None
    without a readable plan."""
    plan = read_json_or_none(Path(results, "plan", "trials.json"))
    if not isinstance(plan, Mapping):
        return None
    search = plan.get("search")
    method = search.get("method") if isinstance(search, Mapping) else None
    return {Path(t).name for t in report_targets(results=str(results), search=method) if "/plots/" in t}


def report_lines(results: str | Path) -> list[str]:
    """Where the reports are (the ones that exist): plots only the sweep's own (:func:`expected_plots`),
    never a figure another search left in the directory."""
    root = Path(results)
    found = []
    own = expected_plots(root)
    for rel, what in REPORTS:
        p = root / rel
        if rel.endswith("/"):
            n = len([f for f in p.glob("*.png") if own is None or f.name in own]) if p.is_dir() else 0
            if n:
                found.append((f"{root.as_posix()}/{rel}", f"{n} {what}"))
        elif p.is_file():
            found.append((p.as_posix(), what))
    if not found:
        return []
    width = max(len(path) for path, _ in found)
    return ["reports:"] + [f"  {path:<{width}}  {what}" for path, what in found]


def end_of_run_summary(results: str | Path = "results", logs: str | Path = "logs") -> list[str]:
    """The run's last lines (see the module docstring). Never raises."""
    try:
        root = Path(results)
        summary = root / "summary.csv"
        rows = _read_rows(summary)
        if rows is None:
            return [f"snakesweep: no trial summary yet ({summary.as_posix()} does not exist)"]
        lines = trial_lines(rows, logs, search_of(root), root)
        best_path = root / "best.json"
        if best_path.exists():
            lines += best_lines(read_json_or_none(best_path))
            try:
                if best_path.stat().st_mtime < summary.stat().st_mtime - 1:
                    lines.append(f"  (from an earlier run: {best_path.as_posix()} is older than {summary.as_posix()})")
            except OSError:
                pass
        lines += report_problem_lines(root)
        lines += report_lines(root)
        return lines
    except Exception as err:  # noqa: BLE001 - the end of a run must not fail on its summary
        return [f"snakesweep: no end-of-run summary ({type(err).__name__}: {err})"]


def unfinished(results: str | Path = "results") -> str | None:
    """Why the run must not exit 0 (None: every planned trial is ok): a trial failed, was held
    back by the failure budget or is still pending (error records from earlier runs included:
    a search's final failures are final), rounds of a search are not all chosen, or there is
    no summary. The workflow's ``onsuccess`` ends the run with status 1 when this says why."""
    try:
        root = Path(results)
        rows = _read_rows(root / "summary.csv")
        if rows is None:
            return f"no trial summary ({(root / 'summary.csv').as_posix()})"
        bad = [r for r in rows if (r.get("status") or "").strip() != "ok"]
        search = search_of(root)
        if bad:
            return f"{len(bad)} of {len(rows)} planned trials did not finish ok"
        if search and search.get("chosen") is not None and search.get("rounds") and search["chosen"] < search["rounds"]:
            return f"{search['chosen']} of {search['rounds']} search rounds chosen"
        return None
    except Exception as err:  # noqa: BLE001 - a verdict that cannot be read is no success
        return f"the summary could not be read ({type(err).__name__}: {err})"


def fail_when_nothing_to_do(workflow: Any, logger: Any, results: str | Path, logs: str | Path,
                            whole_sweep: Any = lambda: True) -> None:
    """For the Snakefile: after "Nothing to be done" Snakemake returns with status 0 and calls no
    ``onsuccess``, so a sweep with a trial that failed for good (a search's final failure, which
    runs no job) would end with 0. A filter on Snakemake's logger sees that line in a real run
    (not a dry run, which still just says what it would do, nor --touch), prints it and the usual
    summary, and ends the run with status 1 when :func:`unfinished` says why (a SystemExit, as
    from ``onsuccess``: Snakemake releases its locks), if ``whole_sweep()`` says the run's target
    was the sweep, not a part of it. Runs nothing, reads files only."""
    import logging

    from snakemake.common import NOTHING_TO_BE_DONE_MSG

    class NothingToDo(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if record.getMessage() != NOTHING_TO_BE_DONE_MSG or workflow.dryrun or workflow.touch \
                    or not whole_sweep():
                return True
            why = unfinished(results)
            if not why:
                return True
            logger.removeFilter(self)
            logger.handle(record)
            for line in end_of_run_summary(results, logs):
                logger.error(line)
            logger.error(f"snakesweep: exit status 1: {why}")
            raise SystemExit(1)

    logger.addFilter(NothingToDo())


def main(argv: list[str] | None = None) -> int:
    """`python -m snakesweep.summary [SWEEP]`: the end-of-run lines of a sweep; exit 1 unless
    every planned trial is ok, 2 when the sweep cannot be found."""
    args = list(sys.argv[1:] if argv is None else argv)
    raise_csv_field_limit()  # the markdown form reads summary.csv too
    fmt = "text"  # issue 20: --format markdown (snakesweep.markdown) pastes into a pull request as it is
    for i, a in enumerate(args):
        if a == "--format" or a.startswith("--format="):
            fmt = a.partition("=")[2] if "=" in a else (args[i + 1] if i + 1 < len(args) else "")
            del args[i:i + (1 if "=" in a else 2)]
            break
    if len(args) > 1 or (args and args[0] in ("-h", "--help")) or fmt not in ("text", "markdown"):
        print("usage: python -m snakesweep.summary [--format text|markdown] [SWEEP]  (a sweep file, a sweep's "
              "directory or a checkout; default: config/config.yaml)", file=sys.stderr)
        return 0 if args and args[0] in ("-h", "--help") else 2
    try:
        root, sweep = find_sweep(args[0] if args else None)
    except ConfigError as err:
        print(f"snakesweep: {err}", file=sys.stderr)
        return 2
    results = Path(root, sweep)
    if not results.is_dir():
        print(f"snakesweep: {results.as_posix()}: the sweep has not run yet (no such directory)", file=sys.stderr)
        return 2
    if fmt == "markdown":
        from .markdown import summary_markdown

        print(summary_markdown(results))
    else:
        print("\n".join(end_of_run_summary(results, results / "logs")))
    return 1 if unfinished(results) else 0


if __name__ == "__main__":
    sys.exit(main())
