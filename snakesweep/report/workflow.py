"""Helpers for the Snakefile side: the report rules' targets and argv (one source for the rules
and the onerror handler), the validated report settings, the collect rule's two files, and the
reports remade after a failed run."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from snakesweep.plan import load_plan

from .html import PLOT_NAMES
from .problems import Problems, error_reason, placeholder, problems_path
from .search_views import search_plot_name
from .tables import write_configs
from .values import check_objective, parse_objectives


def report_targets(wildcards: Any = None, results: str = "results", search: str | None = None) -> list[str]:
    """Every file the report rules make (also usable as a Snakemake input function); `search`
    (the search method) adds its figure (:func:`search_plot_name`; none for a grid)."""
    extra = search_plot_name(search)
    return [
        f"{results}/best.json",
        f"{results}/pareto.csv",
        f"{results}/importance.csv",
        f"{results}/report/answer.html",
        *(f"{results}/plots/{name}.png" for name in PLOT_NAMES),
        *([f"{results}/plots/{extra}.png"] if extra else []),
        *([f"{results}/lineage.csv"] if search == "pbt" else []),  # the population's lineage
    ]


def search_plot_output(method: str | None, results: str = "results") -> dict[str, str]:
    """For report.smk: ``{"search": path}`` of a search's figure, {} for a grid (the rule's
    outputs are fixed at parse time; a grid sweep gets no figure it has no use for)."""
    name = search_plot_name(method)
    return {"search": f"{results}/plots/{name}.png"} if name else {}


def report_settings_params(config: dict) -> dict[str, str]:
    """The report settings of a Snakemake config as validated command-line strings.

    Metric names must be column names (letters, digits, '_' and '.'), directions 'max' or
    'min'; anything else raises ValueError, so the rule never hands odd text to the shell.
    """
    rep = (config or {}).get("report") or {}
    obj = rep.get("objective") or {}
    objective = check_objective(obj.get("metric", "eval_accuracy"), obj.get("direction", "max"))
    extra = [check_objective(e.get("metric", ""), e.get("direction", "min")) for e in rep.get("extra_objectives") or []]
    return {
        "objective": objective[0],
        "direction": objective[1],
        "extra": ", ".join(f"{m}:{d}" for m, d in extra),
    }


def workflow_report_settings(config: dict, known_metrics: Sequence[str] = ()) -> dict[str, str]:
    """:func:`report_settings_params` for the Snakefile: a bad name ends the run with one
    readable message (no traceback); a metric not among ``known_metrics`` gets a warning,
    since measurement may add columns the list does not know."""
    try:
        params = report_settings_params(config)
    except ValueError as err:
        print(f"snakesweep: invalid report settings: {err}", file=sys.stderr)
        sys.exit(1)
    if known_metrics:
        names = [params["objective"], *(m for m, _ in parse_objectives(params["extra"]))]
        unknown = [n for n in names if n not in known_metrics]
        if unknown:
            print(
                f"snakesweep: warning: report metric(s) {', '.join(unknown)} are not among the known "
                f"metrics ({', '.join(known_metrics)}); if no trial produces them, the report says so",
                file=sys.stderr,
            )
    return params


def report_command_args(settings: Mapping[str, str], results: str = "results",
                        search: str | None = None) -> tuple[list[str], list[str]]:
    """The argument lists of `python -m snakesweep.report` and `python -m snakesweep.report.plots`,
    as the report rules pass them (answer.html is made by the plots, which it embeds);
    `search`: the search method, whose figure is drawn with --out-search."""
    r = Path(results)
    common = ["--summary", str(r / "summary.csv"), "--configs", str(r / "configs.csv"),
              "--plan", str(r / "plan" / "trials.json"), "--objective", settings["objective"],
              "--direction", settings["direction"], f"--extra={settings.get('extra', '')}"]
    tables = [*common, "--best", str(r / "best.json"), "--pareto", str(r / "pareto.csv"),
              "--importance", str(r / "importance.csv")]
    plots = [*common, "--trials-dir", str(r / "trials"), "--html", str(r / "report" / "answer.html"),
             *(x for name, f in zip(("objective", "heatmap", "pareto", "curves"), PLOT_NAMES)
               for x in (f"--out-{name}", str(r / "plots" / f"{f}.png")))]
    extra = search_plot_name(search)
    if extra:
        plots += ["--out-search", str(r / "plots" / f"{extra}.png")]
    return tables, plots


def plan_search_method(results: str | Path = "results") -> str | None:
    """The search method of the plan on disk (None for a grid or without a plan)."""
    search = (load_plan(Path(results, "plan", "trials.json"), missing_ok=True) or {}).get("search") or {}
    return search.get("method") if isinstance(search, dict) else None


def stale_outputs(results: str | Path = "results", search: str | None = None, *, after_success: bool = False) -> list[Path]:
    """Files in the sweep's directory that its current sweep does not produce: figures of another
    search (halving_ladder.png, search_progress.png after the same sweep switched to a grid) or
    any other PNG in plots/, answer.html's neighbours in report/ other than the problem notes, and
    round files that are not the plan's search's (:func:`snakesweep.rounds.foreign_rounds`).
    `after_success`: the notes of an onerror handler too, whose placeholders the report rules
    have since replaced."""
    from snakesweep.rounds import foreign_rounds

    r = Path(results)
    own = {Path(t) for t in report_targets(results=str(r), search=search)}
    out = [f for f in sorted(r.joinpath("plots").glob("*.png")) if f not in own]
    for f in sorted(r.joinpath("report").glob("*")):
        if f.is_file() and f not in own and not f.name.startswith("problems."):
            out.append(f)
    if after_success:
        out += [f for f in (problems_path(r, "onerror"),) if f.exists()]
    plan = load_plan(r / "plan" / "trials.json", missing_ok=True)
    if plan is not None:
        out += foreign_rounds(r / "plan", plan.get("search"))
    return out


def remove_stale_outputs(results: str | Path = "results", *, after_success: bool = False) -> list[Path]:
    """Remove :func:`stale_outputs` (the plan on disk says which search the sweep is); returns
    what was removed. Never raises: the end of a run must not fail on a leftover file."""
    removed = []
    try:
        for f in stale_outputs(results, plan_search_method(results), after_success=after_success):
            try:
                f.unlink()
                removed.append(f)
            except OSError:
                pass
    except Exception as err:  # noqa: BLE001 - never mask the run's own outcome
        print(f"snakesweep: could not remove stale outputs: {error_reason(err)}", file=sys.stderr)
    return removed


def write_reports_after_failure(settings: dict[str, str], results: str = "results", logs: str = "logs") -> list[str]:
    """For the workflow's ``onerror`` handler, after ``collect`` wrote the partial CSVs.

    Runs the tables main and the plots main as child processes (argument lists, no shell;
    matplotlib stays out of the Snakemake process), logging to logs/report/*.onerror.log.
    The old report files are removed first, and any a child could not write is replaced by a
    file saying why (recorded in results/report/problems.onerror.json): no stale report from
    an earlier sweep survives. Returns the report files that exist afterwards; never raises.
    """
    import subprocess

    r = Path(results)
    if not (r / "summary.csv").exists():
        return []
    search = plan_search_method(results)
    targets = report_targets(results=results, search=search)
    problems = Problems("onerror", problems_path(results, "onerror"))
    try:
        for t in targets:
            Path(t).unlink(missing_ok=True)
        tables, plots = report_command_args(settings, results, search)
        Path(logs, "report").mkdir(parents=True, exist_ok=True)
        children = [("report", "snakesweep.report", tables), ("plots", "snakesweep.report.plots", plots)]
        if search == "pbt":  # the population's lineage.csv, as rule report_lineage makes it
            children.append(("lineage", "snakesweep.report.lineage", [
                "--plan", str(r / "plan" / "trials.json"), "--summary", str(r / "summary.csv"),
                "--objective", settings["objective"], "--direction", settings["direction"],
                "--out", str(r / "lineage.csv")]))
        for name, module, args in children:
            log_path = Path(logs, "report", f"{name}.onerror.log")
            try:
                with open(log_path, "w") as log:
                    done = subprocess.run([sys.executable, "-m", module, *args], stdout=log,
                                          stderr=subprocess.STDOUT, timeout=600, check=False)
                if done.returncode != 0:
                    problems.add(module, f"exited with status {done.returncode} (log: {log_path})")
            except (OSError, subprocess.SubprocessError) as err:
                problems.add(module, f"{error_reason(err)} (log: {log_path})")
        for t in targets:
            if not Path(t).exists():
                problems.add(t, "not written by the report (see logs/report/*.onerror.log)")
                placeholder(t, "not written by the report (see logs/report/*.onerror.log)")
        problems.write()
    except Exception as err:  # noqa: BLE001 - never mask the original failure
        print(f"snakesweep: reports after failure: {error_reason(err)}", file=sys.stderr)
    return [t for t in targets if Path(t).exists()]


def report_shell_args(settings: Mapping[str, str], results: str = "results", search: str | None = None) -> dict[str, str]:
    """:func:`report_command_args` as shell-quoted strings for the report rules' ``shell:`` lines
    (``{"tables": ..., "plots": ...}``), so the rules and the onerror handler pass one argv."""
    tables, plots = report_command_args(settings, results, search)
    return {"tables": shlex.join(tables), "plots": shlex.join(plots)}


def collect(plan_path: str | Path, results: str | Path, logs: str | Path, summary: str | Path,
            configs: str | Path, root: str | Path | None = None) -> list[dict[str, Any]]:
    """The collect rule's files: summary.csv (:func:`snakesweep.collect.collect_summary`) and
    configs.csv aggregated from it (:func:`write_configs`); returns the summary rows (typed).
    The rule's script and the workflow's ``onerror`` handler both call this."""
    # lazy: via grid, pydantic, which the end-of-run summary never needs
    from snakesweep.collect import collect_summary, summary_rows

    table, names = collect_summary(plan_path, results, logs, summary, root)
    write_configs(table, names, configs)
    return summary_rows(table)
