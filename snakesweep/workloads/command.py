"""Command workloads: a user's own scripts (argparse CLIs, Hydra apps), one argv per step.

A step's argv is a list; each element is formatted on its own with the trial's parameters and the
step's directories, and the result is exec'd directly, never through a shell, so a value such as
``"; touch x #"`` arrives as exactly one argument.

Placeholders
    ``{lr}``, ``{model.width}`` (a dotted name is one whole field name, looked up in the trial's
    flat parameters: no attribute or index semantics), ``{seed}``, ``{trial}``, ``{out_dir}`` (this
    step's directory, ``results/trials/{trial}/{step}``), ``{train_dir}`` (the train step's
    directory), ``{data_dir}`` (the prepared-data directory), ``{threads}`` (the trial's CPU threads,
    also in OMP_NUM_THREADS and the like: snakesweep/threads.py). ``{{`` and ``}}`` are literal braces.
    ``{resume_dir}`` (train only; halving, hyperband, pbt): the train directory of the trial this
    one continues from (its previous rung or generation, read-only). An element that uses
    ``{resume_dir}`` is LEFT OUT when the trial starts fresh (round 0, every other method), so
    write the flag and its value as one element: ``--resume-from={resume_dir}``.
    Format specs and conversions (``{lr:.3f}``, ``{lr!r}``) are refused at parse time.

Value rendering (see :func:`render`), the same everywhere a value is pasted into an element:
    str verbatim; bool ``true``/``false``; None ``null``; int as written; float as Python's
    shortest repr after trimming to 12 significant digits (``0.1`` not ``0.1000000000001``,
    ``2.0`` stays ``2.0``, ``1e-05``); lists and dicts as compact JSON (``[64,32]``).

``args``
    ``none``: only the argv as written. ``flags``: every parameter is appended as one element
    ``--name=value`` (dotted names kept). The ``=`` form, rather than two elements, is what every
    common parser accepts (argparse, click, absl, fire) and the only one argparse accepts for a
    value that begins with ``-``. ``hydra``: every parameter is appended as a Hydra override
    ``name=value`` with the value written in Hydra's override grammar so that the app receives it
    verbatim (strings are single-quoted with Hydra's and OmegaConf's escapes, so ``1e-3``,
    ``true``, ``a b; c=d,e``, quotes, backslashes and ``${...}`` stay strings; None is ``null``),
    then ``hydra.run.dir=<out_dir>``, ``hydra.sweep.dir=<out_dir>`` and ``hydra.sweep.subdir=.``,
    so that everything Hydra writes (``.hydra/``, the job's ``.log``, even under ``--multirun``)
    lands in the step's directory and nothing in ``outputs/`` or ``multirun/``.
    A parameter the app's config lacks is an error, never ``+name=value``: adding it would let a
    misspelt parameter run silently with the app's default. The step fails with
    ``HydraKeyMissing``, naming the parameter and the fix (Hydra's own "Could not override" line
    is parsed from the command's output). ``seed`` is a parameter of every trial, so the app's
    config needs a ``seed`` key. The ``prepare`` command gets nothing appended (it has no trial).

Metrics
    After exit 0: the JSON object ``{out_dir}/<metrics>`` (nested objects become dotted names),
    or with ``metrics: stdout`` the last value of each stdout line ``name: value`` / ``name=value``
    (``name`` an identifier, dots allowed; numbers parsed, other values kept as strings). A missing
    or malformed metrics file, or none of those lines, fails train and eval (``MetricsMissing``);
    NaN or infinity fails the step too (a diverged run is a failed trial, as for the built-in).
    For measure the command's own metrics are optional and kept under their names.

Processes
    cwd is the directory snakemake runs in; the directory of the Python running the workflow is put
    first on PATH (as if its environment were activated), so ``python`` in an argv is the one with
    the workflow's packages. stdout and stderr are tee'd line by line into the step's log. The
    command stays in the step's process group, so the supervisor's timeout kills it too, and it is
    killed if the step process dies (Linux PR_SET_PDEATHSIG).

Sources
    A step's inputs (:func:`source_files`) are its ``sources`` (one list for every step, or a
    mapping per step) with directories expanded, plus every literal argv element naming an existing
    ``.py`` file: editing ``eval_cli.py`` re-runs eval only.

Modules (issue 15: none over ~800 lines): _command_argv.py is the parse-time half (templates,
rendering, Hydra quoting, build_argv, check_command_workload, argv limits, sources);
_command_run.py the run-time half (run_command, exit and metrics checks, the run_* steps, the
measure window's peak memory), which uses build_argv. This module re-exports both, so callers
import from here; a step imports both halves either way (it builds its argv, then runs it).
Imports: the standard library, ..params and ..procs (``..config`` for type hints only; ConfigError
lazily at parse time); the measure step imports the meters lazily. The run_* functions read only
``.command``, ``.args`` and ``.metrics`` of the workload, so a step may pass the plan's dict as
``types.SimpleNamespace(**plan["workload"])`` instead of validating it with pydantic again.
"""

from __future__ import annotations

from ._command_argv import (
    CONTEXT_NAMES,
    ENV_MARGIN,
    MAX_SOURCE_FILES,
    RESERVED,
    RESUME,
    argv_problem,
    build_argv,
    check_command_workload,
    check_sources,
    hydra_value,
    placeholders,
    render,
    source_files,
    step_context,
)
from ._command_run import (
    CARRY_MARGIN_MB,
    PEAK_MEM_METHODS,
    PEAK_MEM_SAMPLED,
    PIPE_GRACE_S,
    TAIL_LINES,
    WINDOW_NOTE,
    CommandError,
    CommandFailed,
    Completed,
    HydraKeyMissing,
    Log,
    MetricsMissing,
    TreeSampler,
    command_name,
    parse_stdout_metrics,
    peak_memory,
    read_metrics,
    run_command,
    run_eval,
    run_measure,
    run_prepare,
    run_train,
    status_mb,
    tree_pids,
)

__all__ = [
    "CARRY_MARGIN_MB",
    "CONTEXT_NAMES",
    "ENV_MARGIN",
    "MAX_SOURCE_FILES",
    "PEAK_MEM_METHODS",
    "PEAK_MEM_SAMPLED",
    "PIPE_GRACE_S",
    "RESERVED",
    "RESUME",
    "TAIL_LINES",
    "WINDOW_NOTE",
    "CommandError",
    "CommandFailed",
    "Completed",
    "HydraKeyMissing",
    "Log",
    "MetricsMissing",
    "TreeSampler",
    "argv_problem",
    "build_argv",
    "check_command_workload",
    "check_sources",
    "command_name",
    "hydra_value",
    "parse_stdout_metrics",
    "peak_memory",
    "placeholders",
    "read_metrics",
    "render",
    "run_command",
    "run_eval",
    "run_measure",
    "run_prepare",
    "run_train",
    "source_files",
    "status_mb",
    "step_context",
    "tree_pids",
]
