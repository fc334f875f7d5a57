"""The report rules' argparse scaffold (shared by the tables main here and the plots main in
:mod:`snakesweep.report.plots`), the tables main, and the collect rule's main.

Both report mains exit 0 whenever the arguments are valid: an output that cannot be made is
replaced by a file saying why and recorded in <sweep dir>/report/problems.<rule>.json. A write the
file system refuses (full, read-only, no permission) is the exception: no placeholder can be
written either, so every main here ends with one line naming the path and the fix, and status 1
(errors.one_line_on_disk_errors; the traceback only with SNAKESWEEP_DEBUG=1)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from snakesweep.errors import one_line_on_disk_errors
from snakesweep.plan import load_plan
from snakesweep.results import atomic_write_text

from .frame import read_summary
from .html import render_answer_html
from .problems import Problems, error_reason, guarded, placeholder, problems_path, results_dir_of
from .search_views import load_rounds
from .tables import Reports, compute_reports
from .values import Objective, check_objective, parse_objectives, write_json, write_table
from .workflow import collect

TABLES_DESCRIPTION = "Answers a sweep exists for: which configuration is best, by how much, and at what cost."


def add_inputs(ap: argparse.ArgumentParser, configs_help: str) -> None:
    ap.add_argument("--summary", required=True)
    ap.add_argument("--configs", help=configs_help)
    ap.add_argument("--plan")


def add_objectives(ap: argparse.ArgumentParser, objective_help: str | None = None,
                    extra_help: str | None = None) -> None:
    ap.add_argument("--objective", required=True, help=objective_help)
    ap.add_argument("--direction", required=True, choices=["max", "min"])
    ap.add_argument("--extra", default="", help=extra_help)


def load_reports(args: argparse.Namespace, objective: Objective, extra: Sequence[Objective]) -> tuple[dict | None, Reports]:
    """The plan (None without one; an unreadable plan is an error) and every table, from the summary."""
    plan = load_plan(args.plan) if args.plan and Path(args.plan).exists() else None
    rounds = load_rounds(args.plan, plan)
    return plan, compute_reports(read_summary(args.summary, plan), plan, objective, extra, rounds)


def fail_all(problems: Problems, outputs: Sequence[str], err: Exception) -> int:
    """Nothing could be computed: every output says why."""
    for out in outputs:
        problems.add(out, error_reason(err))
        placeholder(out, error_reason(err))
    problems.write()
    return 0


def tables_main(argv: list[str] | None = None) -> int:
    """best.json, pareto.csv, importance.csv (and answer.html without plots if --html is given)."""
    ap = argparse.ArgumentParser(prog="python -m snakesweep.report", description=TABLES_DESCRIPTION)
    add_inputs(ap, "accepted for the rule's dependency; configs are recomputed from the summary")
    add_objectives(ap, "metric column, e.g. eval_accuracy", "comma-separated metric:direction pairs")
    ap.add_argument("--best", required=True)
    ap.add_argument("--pareto", required=True)
    ap.add_argument("--importance", required=True)
    ap.add_argument("--html", help="also write answer.html (without plots; snakesweep.report.plots --html embeds them)")
    ap.add_argument("--problems", help="default: report/problems.report_tables.json in the sweep's directory")
    args = ap.parse_args(argv)
    return one_line_on_disk_errors(lambda: write_tables(args), results_dir_of(args.best))


def write_tables(args: argparse.Namespace) -> int:
    """The tables main after its arguments are parsed."""
    objective = check_objective(args.objective, args.direction)
    extra = parse_objectives(args.extra)
    outputs = [args.best, args.pareto, args.importance, *([args.html] if args.html else [])]
    problems = Problems("report_tables", Path(args.problems or problems_path(results_dir_of(args.best), "report_tables")))
    try:
        _, rep = load_reports(args, objective, extra)
    except Exception as err:  # noqa: BLE001 - a report must never fail the sweep
        return fail_all(problems, outputs, err)
    if rep.best.get("problem"):
        problems.add(args.best, rep.best["problem"])
    guarded(problems, args.best, lambda: write_json(args.best, rep.best))
    guarded(problems, args.pareto, lambda: write_table(args.pareto, rep.pareto, rep.param_names))
    guarded(problems, args.importance, lambda: write_table(args.importance, rep.importance))
    if args.html:
        guarded(problems, args.html, lambda: atomic_write_text(args.html, render_answer_html(rep)))
    problems.write()
    for note in rep.notes:
        print(f"report: {note}", file=sys.stderr)
    print(f"report: {len(rep.configs)} configurations; {rep.best['verdict']}", file=sys.stderr)
    return 0


def collect_main(argv: list[str] | None = None) -> int:
    """The collect rule: summary.csv and configs.csv (:func:`snakesweep.report.workflow.collect`)."""
    ap = argparse.ArgumentParser(prog="python scripts/collect.py")
    ap.add_argument("--plan", required=True)
    ap.add_argument("--results", help="the sweep's directory (default: the one holding the plan's plan/)")
    ap.add_argument("--logs", help="the sweep's logs (default: logs/ in the sweep's directory)")
    ap.add_argument("--summary", required=True)
    ap.add_argument("--configs", required=True)
    a = ap.parse_args(argv)
    from snakesweep.collect import counts_line  # lazy: via grid, pydantic, which the end-of-run summary never needs

    results = a.results or str(Path(a.plan).parent.parent)  # results/<name>/plan/trials.json -> results/<name>
    logs = a.logs or str(Path(results, "logs"))

    def write() -> int:
        print(counts_line(collect(a.plan, results, logs, a.summary, a.configs)))
        return 0

    return one_line_on_disk_errors(write, results)
