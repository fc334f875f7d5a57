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

Imports: the standard library only (``..config`` for type hints and, lazily, ConfigError at parse
time); the measure step imports the meters lazily. The run_* functions read only ``.command``,
``.args`` and ``.metrics`` of the workload, so a step may pass the plan's dict as
``types.SimpleNamespace(**plan["workload"])`` instead of validating it with pydantic again.
"""

from __future__ import annotations

import collections
import json
import math
import os
import re
import signal
import string
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..params import KeyClash, flatten, non_finite
from ..procs import die_with_parent

if TYPE_CHECKING:  # pydantic stays out of a step's imports: run_* read only .command/.args/.metrics
    from ..config import CommandWorkload, MeasureSettings

Log = Callable[[str], Any]

CONTEXT_NAMES = ("out_dir", "train_dir", "data_dir", "seed", "trial", "threads", "resume_dir")
# Names a parameter of a command workload may not have: {name} must mean one thing.
RESERVED = ("out_dir", "train_dir", "data_dir", "trial", "resume_dir")
RESUME = "resume_dir"  # an element using it is left out when the trial starts fresh
TAIL_LINES = 30
PIPE_GRACE_S = 2.0  # after the command exits, how long a grandchild may keep its output pipe open


class CommandError(RuntimeError):
    """A command workload's step failed; the message is what the error record shows."""


class CommandFailed(CommandError):
    """The command exited non-zero or died from a signal."""


class HydraKeyMissing(CommandFailed):
    """A sweep parameter names no key of the Hydra app's config."""


class MetricsMissing(CommandError):
    """The command exited 0 without the metrics it was to write (or with unusable ones)."""


# --------------------------------------------------------------------------- formatting


_FORMATTER = string.Formatter()


def _fields(element: str) -> list[tuple[str, str | None, str | None]]:
    """(field name, format spec, conversion) of each placeholder; ValueError for bad braces."""
    return [(name, spec, conv) for _, name, spec, conv in _FORMATTER.parse(element) if name is not None]


def placeholders(workload: CommandWorkload, step: str) -> set[str]:
    """The field names a step's argv uses (empty for a step without a command)."""
    names: set[str] = set()
    for element in workload.command.get(step, []):
        try:
            names.update(name for name, _, _ in _fields(element))
        except ValueError:
            continue  # check_command_workload reports it
    return names


def render(value: Any) -> str:
    """A parameter value as one argv string (the rules are in the module docstring)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(_trim(value))
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _trim(value: float) -> float:
    """logspace noise off (12 significant digits, as trial ids are computed), float-ness kept."""
    return float(f"{value:.12g}") if math.isfinite(value) else value


def _uses_resume(element: str) -> bool:
    try:
        return any(name == RESUME for name, _, _ in _fields(element))
    except ValueError:
        return False


def _format_element(element: str, values: dict[str, Any]) -> str:
    out = []
    for literal, name, spec, conv in _FORMATTER.parse(element):
        out.append(literal)
        if name is None:
            continue
        if spec or conv:
            raise ValueError(f"{{{name}}} in {element!r}: format specs and conversions are not supported")
        if name not in values:
            raise KeyError(f"{{{name}}} in {element!r} names no parameter and no step directory")
        out.append(render(values[name]))
    return "".join(out)


# Hydra's override grammar (hydra/grammar/OverrideLexer.g4, hydra-core 1.3)
_HYDRA_KEY = re.compile(r"^[A-Za-z_][\w\-]*(\.[A-Za-z_][\w\-]*)*$")
_HYDRA_DICT_KEY_OK = re.compile(r"^[\w\-/+.$%*@?|\\()\[\]{}:=, \t]+$")
_HYDRA_ESC = "\\()[]{}:=, \t"


def hydra_value(value: Any) -> str:
    """A value in Hydra's override grammar that the app receives as exactly `value`."""
    if isinstance(value, str):
        return _hydra_quote(value)
    if isinstance(value, (bool, int, float)) or value is None:
        return render(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_hydra_dict_key(str(k))}:{hydra_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot pass a {type(value).__name__} to a Hydra app")


def _hydra_quote(s: str) -> str:
    """Single-quote `s` for Hydra, escaping for both layers that read it.

    OmegaConf reads `${` as an interpolation: a run of n backslashes before it becomes 2n + 1.
    Hydra then un-escapes only backslashes before a quote: n backslashes before `'` become
    2n + 1 (escaping the quote), n trailing backslashes become 2n.
    """
    if s == "???":
        raise ValueError("the value '???' means 'missing' to OmegaConf and cannot reach a Hydra app verbatim")
    s = re.sub(r"(\\*)\$\{", lambda m: "\\" * (2 * len(m.group(1)) + 1) + "${", s)
    s = re.sub(r"(\\*)'", lambda m: "\\" * (2 * len(m.group(1)) + 1) + "'", s)
    s = re.sub(r"(\\+)$", lambda m: "\\" * (2 * len(m.group(1))), s)
    return f"'{s}'"


def _hydra_dict_key(key: str) -> str:
    if not _HYDRA_DICT_KEY_OK.match(key):
        raise ValueError(f"the dict key {key!r} cannot be written in Hydra's override grammar")
    return "".join("\\" + c if c in _HYDRA_ESC else c for c in key)


def build_argv(workload: CommandWorkload, step: str, params: dict[str, Any], context: dict[str, str]) -> list[str]:
    """The step's argv for one trial: elements formatted, then the `args` mode's parameters.

    `params` is the trial's flat parameters (dotted keys, `seed` included); `context` holds
    out_dir, train_dir (absent without a train step), data_dir, seed and trial.
    """
    values = {**params, **context}
    argv = [_format_element(e, values) for e in workload.command[step]
            if RESUME in values or not _uses_resume(e)]
    if step == "prepare" or workload.args == "none":
        return argv
    if workload.args == "flags":
        return argv + [f"--{name}={render(value)}" for name, value in params.items()]
    out_dir = context["out_dir"]
    overrides = []
    for name, value in params.items():
        try:
            overrides.append(f"{name}={hydra_value(value)}")
        except (ValueError, TypeError) as err:
            raise ValueError(f"parameter {name!r}: {err}") from None
    return argv + [
        *overrides,
        f"hydra.run.dir={hydra_value(out_dir)}",
        f"hydra.sweep.dir={hydra_value(out_dir)}",
        "hydra.sweep.subdir=.",
    ]


# --------------------------------------------------------------------------- parse-time checks


def check_command_workload(
    workload: CommandWorkload, steps: list[str], param_names: set[str], source: str,
    trials: Iterable[tuple[str, dict[str, Any]]] = (), sweep_dir: str = "results",
) -> None:
    """Refuse, before any job starts, what would fail every trial: unknown placeholders, a
    {train_dir} without a train step, missing sources, parameters Hydra cannot take, a metrics
    path that is no file of the step's directory; with `trials` ((id, params) pairs), an argv
    the kernel would refuse to exec (too long)."""
    from ..errors import ConfigError
    params = set(param_names) | {"seed"}
    shadow = sorted(params & set(RESERVED))
    if shadow:
        raise ConfigError(
            f"{source}: the parameter '{shadow[0]}' has the name of a step directory placeholder "
            f"{{{shadow[0]}}} (fix: rename the parameter)"
        )
    for step in [s for s in ("prepare", *steps) if s in workload.command]:
        key = f"'sweep.workload.command.{step}'"
        allowed = {"data_dir"} if step == "prepare" else params | {"out_dir", "data_dir", "trial", "threads"}
        if step == "train":
            allowed.add(RESUME)  # left out of the argv where there is no checkpoint to continue from
        if step != "train" and "train" in steps and step != "prepare":
            allowed.add("train_dir")
        for element in workload.command[step]:
            try:
                fields = _fields(element)
            except ValueError as err:
                raise ConfigError(
                    f"{source}: {key}: the element {element!r} is not a valid template ({err}) "
                    "(fix: write {{ and }} for literal braces)"
                ) from None
            for name, spec, conv in fields:
                if spec or conv:
                    raise ConfigError(
                        f"{source}: {key}: {{{name}{'!' + conv if conv else ''}{':' + spec if spec else ''}}} "
                        "uses a conversion or format spec, which argv templates do not support "
                        f"(fix: write {{{name}}}; values are rendered as described in config/README.md)"
                    )
                if name in allowed:
                    continue
                raise ConfigError(f"{source}: {key} uses {{{name}}}, {_why_not(name, step, steps, allowed)}")
    if workload.args == "hydra":
        bad = sorted(n for n in params if not _HYDRA_KEY.match(n))
        if bad:
            raise ConfigError(
                f"{source}: 'sweep.workload.args' is hydra, but the parameter name {bad[0]!r} is not a "
                "Hydra config key (fix: use letters, digits, _ and -, with dots between levels)"
            )
    if workload.metrics != "stdout":
        m = workload.metrics
        norm = os.path.normpath(m)
        if (os.path.isabs(m) or norm in (".", "") or norm == ".." or norm.startswith("../")
                or m.endswith(("/", "/.", "/..")) or ".." in Path(m).parts):
            raise ConfigError(
                f"{source}: 'sweep.workload.metrics' is {m!r}; it is a file inside each step's {{out_dir}}, "
                "not a directory and not outside it (fix: a relative file path such as metrics.json, "
                "or the word stdout)"
            )
    for step, tid, argv in _argvs(workload, steps, trials, sweep_dir):
        problem = argv_problem(argv)
        if problem:
            raise ConfigError(
                f"{source}: 'sweep.workload.command.{step}' for trial {tid}: {problem} "
                "(fix: keep a long value in a file and pass its path as the parameter)"
            )
    check_sources(workload, source, sweep_dir)


def _argvs(workload: CommandWorkload, steps: list[str], trials: Iterable[tuple[str, dict[str, Any]]],
           sweep_dir: str) -> Iterable[tuple[str, str, list[str]]]:
    """(step, trial id, argv) of each trial's step, as the step would build it (directories as
    the rules name them); an argv that cannot be built is the run-time checks' business."""
    for tid, params in trials:
        trial_dir = f"{sweep_dir}/trials/{tid}"
        for step in [s for s in steps if s in workload.command]:
            ctx = _context(params, tid, Path(trial_dir, step), Path(sweep_dir, "data", "command"),
                           Path(trial_dir, "train") if "train" in steps and step != "train" else None)
            try:
                yield step, tid, build_argv(workload, step, params, ctx)
            except (KeyError, ValueError, TypeError):
                continue


def _arg_limits() -> tuple[int | None, int | None]:
    """(bytes one argument may have, bytes argv + environment may have) for exec on this system.

    Linux caps each argument string at MAX_ARG_STRLEN = 32 pages (131,072 bytes with 4 KiB
    pages), NUL included, and argv + envp together (strings and pointers) at ARG_MAX
    (`getconf ARG_MAX`, a quarter of the stack limit)."""
    try:
        total = os.sysconf("SC_ARG_MAX")
    except (AttributeError, ValueError, OSError):
        total = None
    one = None
    if sys.platform.startswith("linux"):
        try:
            one = 32 * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            one = 32 * 4096
    return one, (total if total and total > 0 else None)


ENV_MARGIN = 16 * 1024  # what the workflow and the step add to the environment a command gets


def argv_problem(argv: list[str], env: dict[str, str] | None = None) -> str | None:
    """Why exec would refuse `argv` with "Argument list too long" (None when it would not)."""
    one, total = _arg_limits()
    sizes = [len(a.encode("utf-8", "surrogateescape")) + 1 for a in argv]
    if one is not None and sizes and max(sizes) > one:
        i = max(range(len(sizes)), key=sizes.__getitem__)
        shown = argv[i][:30] + "..."
        return (f"the argument {shown!r} is {sizes[i] - 1:,} bytes, over the {one:,} bytes Linux allows "
                "one argument (MAX_ARG_STRLEN)")
    if total is not None:
        environ = os.environ if env is None else env
        need = sum(sizes) + 8 * (len(argv) + 1)
        need += sum(len(k) + len(v) + 2 + 8 for k, v in environ.items()) + ENV_MARGIN
        if need > total:
            return (f"the command line is {sum(sizes):,} bytes, which with the environment is over the "
                    f"{total:,} bytes this system allows a command (getconf ARG_MAX)")
    return None


def _why_not(name: str, step: str, steps: list[str], allowed: set[str]) -> str:
    if step == "prepare":
        return "but the prepare command runs once for the whole sweep and knows only {data_dir} (fix: use {data_dir} only)"
    if name == "train_dir":
        if step == "train":
            return "but train's own directory is {out_dir} (fix: write {out_dir})"
        return (
            f"but sweep.steps ({', '.join(steps)}) has no train step to make it "
            "(fix: add train to sweep.steps, or pass the model's location as a parameter)"
        )
    if name == RESUME:
        return "but only the train step continues from a checkpoint (fix: use {resume_dir} in command.train only)"
    import difflib  # only for this message

    close = difflib.get_close_matches(name, sorted(allowed), n=1)
    hint = f"did you mean {{{close[0]}}}? " if close else ""
    return (
        f"which names no parameter ({hint}fix: use a parameter of the sweep or one of "
        f"{', '.join('{' + n + '}' for n in sorted(allowed & set(CONTEXT_NAMES)))}; "
        "write {{ and }} for literal braces)"
    )


def _source_entries(workload: CommandWorkload) -> list[tuple[str | None, list[str]]]:
    if isinstance(workload.sources, dict):
        return list(workload.sources.items())
    return [(None, list(workload.sources))]


# --------------------------------------------------------------------------- sources


MAX_SOURCE_FILES = 10_000  # per entry: each file is an input of every trial's step (Snakemake stats each)
_COUNT_CAP = 1_000_000  # counting stops here (a whole file system as a source)


def _excluded(root: str, name: str, skip: tuple[str, ...]) -> bool:
    return name.startswith(".") or name == "__pycache__" or os.path.realpath(os.path.join(root, name)) in skip


def _skipped(exclude: Iterable[str]) -> tuple[str, ...]:
    """The directories no source entry expands into: every sweep's results (results/, the
    sweep's own directory) and Snakemake's .snakemake/: outputs are never a step's inputs."""
    from ..layout import RESULTS_ROOT

    return tuple(os.path.realpath(p) for p in (RESULTS_ROOT, ".snakemake", *exclude))


def _expand(entry: str, skip: tuple[str, ...] = (), limit: int | None = None) -> Iterable[str]:
    path = Path(entry)
    if not path.is_dir():
        yield entry
        return
    n = 0
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not _excluded(root, d, skip))
        for f in sorted(files):
            if not f.startswith(".") and not f.endswith((".pyc", ".pyo")):
                n += 1
                if limit is not None and n > limit:
                    return
                yield os.path.join(root, f)


def _inside(entry: str, directory: str) -> bool:
    e, d = os.path.realpath(entry), os.path.realpath(directory)
    return e == d or e.startswith(d.rstrip(os.sep) + os.sep)


def check_sources(workload: CommandWorkload, source: str, sweep_dir: str = "results") -> None:
    """Refuse, at parse time, a sources entry that is missing, lies inside the sweep's outputs
    (its results or .snakemake/: a step would re-run for what it wrote itself), or expands to more
    than MAX_SOURCE_FILES files. A directory holding them (`sources: [.]`) is fine: the sweep's
    directory, results/ and .snakemake/ are never expanded into (source_files)."""
    from ..errors import ConfigError
    from ..layout import RESULTS_ROOT

    skip = _skipped([sweep_dir])
    for step, entries in _source_entries(workload):
        where = "sweep.workload.sources" + (f".{step}" if step else "")
        for entry in entries:
            if not Path(entry).exists():
                raise ConfigError(
                    f"{source}: '{where}' lists {entry!r}, which does not exist in {Path.cwd()} "
                    "(fix: paths are relative to the directory you run snakemake in)"
                )
            for outputs in (sweep_dir, RESULTS_ROOT, ".snakemake"):
                if Path(outputs).exists() and _inside(entry, outputs):
                    raise ConfigError(
                        f"{source}: '{where}' lists {entry!r}, which is inside {outputs}/, where the workflow "
                        "writes its results: a step would re-run for what it wrote itself (fix: list your "
                        "code and data only; a directory holding results/ is fine, it is skipped)"
                    )
            n = sum(1 for _ in _expand(entry, skip, _COUNT_CAP))
            if n > MAX_SOURCE_FILES:
                count = f"{n:,}" if n <= _COUNT_CAP else f"over {_COUNT_CAP:,}"
                raise ConfigError(
                    f"{source}: '{where}' lists {entry!r}, which holds {count} files, more than the "
                    f"{MAX_SOURCE_FILES:,} a sources entry may have (every file is an input of every trial's "
                    "step) (fix: list the directories of your own code, e.g. src/, not a whole tree)"
                )


def source_files(workload: CommandWorkload, step: str, exclude: Iterable[str] = ()) -> list[str]:
    """The files the step uses (its rule's inputs): its `sources`, directories expanded
    (hidden entries, __pycache__, bytecode, results/, .snakemake/ and the directories in
    `exclude` (the sweep's own) skipped), plus literal argv elements naming an existing .py
    file; sorted, each once."""
    skip = _skipped(exclude)
    files = {f for entry in workload.step_sources(step) for f in _expand(entry, skip)}
    for element in workload.command.get(step, []):
        try:
            literal = not _fields(element)
        except ValueError:
            literal = False
        if literal and element.endswith(".py") and Path(element).is_file():
            files.add(element)
    return sorted(files)


# --------------------------------------------------------------------------- running


class Completed(NamedTuple):  # no dataclasses in a step process: it imports inspect (~6 ms)
    """What a finished command left: exit code, rusage of its tree, output, timing."""

    argv: list[str]
    returncode: int
    stdout_lines: list[str]
    tail: list[str]
    wall_s: float
    cpu_s: float
    open_pipes: bool = False  # a grandchild still held the output pipe after the command exited
    maxrss_mb: float = 0.0  # wait4's ru_maxrss: the command's peak, or what the fork carried over (below)
    launcher_rss_mb: float = 0.0  # this process's RSS right before the spawn: the most the fork carries


def command_name(argv: list[str]) -> str:
    """What to call the command in messages: the script, not the interpreter."""
    if len(argv) > 1 and re.match(r"^python[\d.]*$", os.path.basename(argv[0])):
        if argv[1] == "-m" and len(argv) > 2:
            return argv[2]
        script = next((a for a in argv[1:] if not a.startswith("-")), None)
        if script:
            return os.path.basename(script)
    return os.path.basename(argv[0])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")]) if env.get("PATH") else bindir
    return env


def _pump(stream: Any, log: Log, tail: collections.deque, keep: list[str] | None) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip("\n").rstrip("\r")
        line = line.rsplit("\r", 1)[-1]  # a progress bar's last state, as a terminal shows it
        log(line)
        tail.append(line)
        if keep is not None:
            keep.append(line)
    stream.close()


def run_command(
    argv: list[str], *, log: Log, keep_stdout: bool = False, on_start: Callable[[int], Any] | None = None
) -> Completed:
    """Run argv (no shell) from the current directory, tee its output into `log`, wait for it.

    The wait is wait4 on the command itself, so its end is exact and its rusage covers every
    descendant it reaped. A grandchild left running in the background may hold the output pipe:
    reading stops PIPE_GRACE_S after the command exits, and the result says so.
    """
    log(f"snakesweep: running {json.dumps(argv)}")
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    stdout_lines: list[str] = []
    launcher_rss_mb = status_mb(os.getpid(), "VmRSS") or 0.0
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=_env(), preexec_fn=die_with_parent,  # in the child, before exec: dies with the step
        )
    except OSError as err:
        raise CommandFailed(
            f"cannot start {argv[0]!r}: {err.strerror or err} (fix: check the command's first element; "
            "it is run without a shell, from the directory snakemake runs in)"
        ) from None
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, log, tail, stdout_lines if keep_stdout else None), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, log, tail, None), daemon=True),
    ]
    for p in pumps:
        p.start()
    if on_start is not None:
        on_start(proc.pid)
    try:
        _, status, ru = os.wait4(proc.pid, 0)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    deadline = time.monotonic() + PIPE_GRACE_S
    for p in pumps:
        p.join(max(0.0, deadline - time.monotonic()))
    open_pipes = any(p.is_alive() for p in pumps)
    if open_pipes:
        log(f"snakesweep: {command_name(argv)} exited, but a process it started still holds its output; not waiting for it")
    return Completed(
        argv, proc.returncode, stdout_lines, list(tail), wall, ru.ru_utime + ru.ru_stime, open_pipes,
        ru.ru_maxrss / 1024, launcher_rss_mb,
    )


def _check_exit(done: Completed, workload: CommandWorkload, params: dict[str, Any]) -> None:
    name = command_name(done.argv)
    if done.returncode == 0:
        return
    last = "\n".join(done.tail[-15:])
    if done.returncode < 0:
        sig = signal.Signals(-done.returncode).name
        hint = " (often the out-of-memory killer)" if sig == "SIGKILL" else ""
        raise CommandFailed(f"{name} was killed by {sig}{hint} after {done.wall_s:.1f} s; its last output:\n{last}")
    if workload.args == "hydra":
        for line in done.tail:
            m = re.search(r"Could not override '([^']+)'", line)
            if m and m.group(1) in params:
                key = m.group(1)
                extra = " (every trial has a seed: add e.g. `seed: 0` to it)" if key == "seed" else ""
                raise HydraKeyMissing(
                    f"{name}: the Hydra app's config has no key '{key}' for the sweep parameter '{key}' "
                    f"(fix: add {key} to the app's config{extra}, or correct the parameter's name in the "
                    "sweep; snakesweep does not add keys with +, so a misspelt name cannot run silently). "
                    f"Hydra said:\n{last}"
                )
    raise CommandFailed(f"{name} exited with status {done.returncode} after {done.wall_s:.1f} s; its last output:\n{last}")


# --------------------------------------------------------------------------- metrics

_STDOUT_METRIC = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*[:=]\s*(.*?)\s*$")
_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")
_NON_FINITE = re.compile(r"^[-+]?(nan|inf|infinity)$", re.IGNORECASE)


def parse_stdout_metrics(lines: Iterable[str]) -> dict[str, Any]:
    """`name: value` / `name=value` lines -> metrics; the last value of a name wins."""
    out: dict[str, Any] = {}
    for line in lines:
        m = _STDOUT_METRIC.match(line)
        if not m or not m.group(2):
            continue
        name, text = m.groups()
        if _NUMBER.match(text):
            out[name] = int(text) if re.match(r"^[-+]?\d+$", text) else float(text)
        elif _NON_FINITE.match(text):
            out[name] = float(text)
        else:
            out[name] = text
    return out


def read_metrics(workload: CommandWorkload, done: Completed, out_dir: Path, required: bool) -> dict[str, Any]:
    """The metrics a command that exited 0 left; MetricsMissing when `required` and there are none."""
    name = command_name(done.argv)
    if workload.metrics == "stdout":
        metrics = parse_stdout_metrics(done.stdout_lines)
        if not metrics and required:
            raise MetricsMissing(
                f"{name} exited 0 but printed no metrics on stdout (fix: print lines such as "
                "`accuracy: 0.93` or `accuracy=0.93`, or write a JSON file and set `metrics:` to its name)"
            )
    else:
        path = out_dir / workload.metrics
        if not path.is_file():
            if not required:
                return {}
            raise MetricsMissing(
                f"{name} exited 0 but wrote no {workload.metrics} in {out_dir} (fix: write a JSON object "
                f"of metrics to {{out_dir}}/{workload.metrics}, or set `metrics: stdout`)"
            )
        try:
            metrics = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise MetricsMissing(f"{name} exited 0 but {path} is not valid JSON: {err}") from None
        if not isinstance(metrics, dict):
            raise MetricsMissing(
                f"{name} exited 0 but {path} holds a {type(metrics).__name__}, not a JSON object of metrics"
            )
        try:
            metrics = flatten(metrics)
        except KeyClash as clash:  # keeping one value would drop the other without a word
            raise MetricsMissing(f"{name} wrote {path}, in which {clash}") from None
    bad = [k for k, v in metrics.items() if non_finite(v)]
    if bad:
        raise MetricsMissing(
            f"{name} reported {bad[0]} = {metrics[bad[0]]}: a diverged or broken run is a failed trial "
            "(NaN and infinity have no JSON form)"
        )
    return metrics


# --------------------------------------------------------------------------- the steps


def _context(params: dict[str, Any], trial: str, out_dir: Path | None, data_dir: Path, train_dir: Path | None) -> dict[str, str]:
    ctx = {"data_dir": str(data_dir), "trial": trial}
    if "seed" in params:
        ctx["seed"] = render(params["seed"])
    # {threads}: the trial's threads (its `threads` parameter, else the job's; snakesweep/threads.py),
    # which the command also finds in OMP_NUM_THREADS / MKL_NUM_THREADS / OPENBLAS_NUM_THREADS
    threads = params.get("threads", os.environ.get("SNAKESWEEP_THREADS", "1"))
    ctx["threads"] = render(threads)
    if out_dir is not None:
        ctx["out_dir"] = str(out_dir)
    if train_dir is not None:
        ctx["train_dir"] = str(train_dir)
    return ctx


def _clear_metrics(workload: CommandWorkload, out_dir: Path) -> None:
    """A metrics file left by an earlier attempt must not pass for this one's."""
    if workload.metrics != "stdout":
        (out_dir / workload.metrics).unlink(missing_ok=True)


def _run_step(
    workload: CommandWorkload, step: str, params: dict[str, Any], ctx: dict[str, str], out_dir: Path,
    log: Log, required: bool, on_start: Callable[[int], Any] | None = None,
) -> tuple[dict[str, Any], Completed]:
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear_metrics(workload, out_dir)
    argv = build_argv(workload, step, params, ctx)
    done = run_command(argv, log=log, keep_stdout=workload.metrics == "stdout", on_start=on_start)
    _check_exit(done, workload, params)
    return read_metrics(workload, done, out_dir, required), done


def run_prepare(workload: CommandWorkload, *, data_dir: Path, log: Log) -> None:
    """The optional `prepare` command, once per sweep (no trial, nothing appended)."""
    if "prepare" not in workload.command:
        return
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    argv = build_argv(workload, "prepare", {}, {"data_dir": str(data_dir)})
    _check_exit(run_command(argv, log=log), workload, {})


def run_train(
    workload: CommandWorkload, params: dict[str, Any], *, out_dir: Path, data_dir: Path, trial: str, device: str, log: Log,
    resume_dir: Path | None = None,
) -> dict[str, Any]:
    """Run the train command; its metrics (required). `resume_dir`: the checkpoint's directory
    this trial continues from ({resume_dir}; elements using it are left out when None)."""
    ctx = _context(params, trial, Path(out_dir), Path(data_dir), None)
    if resume_dir is not None:
        ctx[RESUME] = str(resume_dir)
    return _run_step(workload, "train", params, ctx, Path(out_dir), log, required=True)[0]


def run_eval(
    workload: CommandWorkload, params: dict[str, Any], *, out_dir: Path, train_dir: Path, data_dir: Path, trial: str,
    device: str, log: Log,
) -> dict[str, Any]:
    """Run the eval command; its metrics (required)."""
    ctx = _context(params, trial, Path(out_dir), Path(data_dir), Path(train_dir))
    return _run_step(workload, "eval", params, ctx, Path(out_dir), log, required=True)[0]


# --------------------------------------------------------------------------- measuring a command

# Short, because they are columns of summary.csv; the module docstring and config/README.md say more.
WINDOW_NOTE = "spawn to exit of the command's process tree: start-up inside, not a steady-state latency"
# Peak memory: the kernel's high-water marks, never a sampled RSS (which misses a short spike).
# - VmHWM (/proc/<pid>/status) of every process of the tree, read every sample_interval_s and
#   summed over the processes alive at that read; a process's spike before any later read counts.
# - the command's own peak up to its exit: wait4's ru_maxrss. Linux folds into it the peak of the
#   pre-exec copy of this process (a 10 MB command started from a 250 MB process reads 250 MB), so
#   it is used only when above this process's RSS at the spawn (+ CARRY_MARGIN_MB), which bounds
#   that copy; then a command that exits between two reads still has its true peak.
# None (never a measured-looking 0) when neither source gave a figure; peak_mem_method says which.
CARRY_MARGIN_MB = 2.0  # the child's own allocations between fork and exec (PR_SET_PDEATHSIG via ctypes)
PEAK_MEM_SAMPLED = "kernel peak RSS (VmHWM) of the tree's processes, summed over those alive at each read every sample_interval_s"
PEAK_MEM_METHODS = {
    "both": PEAK_MEM_SAMPLED + "; the command's own to its exit from wait4 (ru_maxrss)",
    "exit": "the command's kernel peak RSS to its exit, from wait4 (ru_maxrss); it ended before the first read",
    "sampled": PEAK_MEM_SAMPLED + " (a lower bound: ru_maxrss was not above what the launcher's fork carries)",
    "none": "not measured: the command ended before the first read and its ru_maxrss was not above what the launcher's fork carries",
}


class TreeSampler:
    """Polls /proc for the high-water marks (VmHWM) of a process tree's processes on a thread; the
    peak is the largest sum over the processes alive at one read."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self.samples = 0
        self.max_processes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, pid: int) -> None:
        self._thread = threading.Thread(target=self._loop, args=(pid,), name="tree-rss", daemon=True)
        self._thread.start()

    def _loop(self, pid: int) -> None:
        while True:
            self.sample(pid)
            if self._stop.wait(self.interval_s):
                return

    def sample(self, pid: int) -> None:
        pids = tree_pids(pid)
        marks = [mark for mark in (status_mb(p, "VmHWM") for p in pids) if mark]
        if marks:  # a zombie (exited, not reaped yet) has no VmHWM: a tree of zombies is no sample
            self.samples += 1
            self.max_processes = max(self.max_processes, len(pids))
            self.peak_mb = max(self.peak_mb, sum(marks))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def peak_memory(sampler: TreeSampler, done: Completed) -> tuple[float | None, str]:
    """The command's peak memory (MB, None when not measured) and the peak_mem_method saying how."""
    sampled = sampler.peak_mb if sampler.samples else None
    at_exit = done.maxrss_mb if done.maxrss_mb > done.launcher_rss_mb + CARRY_MARGIN_MB else None
    if sampled is not None and at_exit is not None:
        return max(sampled, at_exit), PEAK_MEM_METHODS["both"]
    if at_exit is not None:
        return at_exit, PEAK_MEM_METHODS["exit"]
    if sampled is not None:
        return sampled, PEAK_MEM_METHODS["sampled"]
    return None, PEAK_MEM_METHODS["none"]


def status_mb(pid: int, field: str) -> float | None:
    """One memory field (VmHWM, VmRSS) of /proc/<pid>/status in MB; None once the process is gone
    or a zombie (its memory is released at exit, so a zombie has no such line)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def tree_pids(root: int) -> list[int]:
    """`root` and its live descendants, from /proc/<pid>/task/<tid>/children."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        out.append(pid)
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
            except (OSError, ValueError):
                continue
    return out


def run_measure(
    workload: CommandWorkload, params: dict[str, Any], *, out_dir: Path, train_dir: Path | None, data_dir: Path,
    trial: str, device: str, settings: MeasureSettings, log: Log,
) -> dict[str, Any]:
    """Measure the measure command as a whole: cooldown, optional temperature wait and idle
    baseline, then one window from spawn to exit with the same meters as run_measurement.

    Returns the measured keys (names shared with run_measurement where the meaning is the same;
    no latency percentiles: the command's process is not a batch loop we can time) followed by
    the command's own metrics, if any (a name clashing with a measured key gets `command.` in front).
    """
    from ..energy import UnavailableMeter, net_energy_j, open_meter, open_nvml_gpu
    from ..generation import command_token_metrics
    from ..measure import settle, throttled, window_flags, window_quality

    is_cuda = device.startswith("cuda")
    gpu, gpu_reason = (None, None)
    if is_cuda:
        gpu, gpu_reason = open_nvml_gpu(int(device.split(":", 1)[1]) if ":" in device else 0)
        if gpu is None:
            log(f"NVML: {gpu_reason}")
    meter = open_meter(device, settings.sample_interval_s, gpu=gpu, gpu_reason=gpu_reason)
    log(f"energy source: {meter.method}" + (f" ({meter.reason})" if isinstance(meter, UnavailableMeter) else ""))
    ctx = _context(params, trial, Path(out_dir), Path(data_dir), Path(train_dir) if train_dir is not None else None)
    sampler = TreeSampler(settings.sample_interval_s)
    try:
        baseline_power_w = settle(meter, gpu if is_cuda else None, settings, log)
        temp_start = gpu.temperature_c() if gpu else None
        pids_before = gpu.running_pids() if gpu else None
        viol0 = gpu.violation_ns() if gpu else None
        meter.begin()
        try:
            own, done = _run_step(
                workload, "measure", params, ctx, Path(out_dir), log, required=False, on_start=sampler.start
            )
        finally:
            sampler.stop()
        energy = meter.end()
        temp_end = gpu.temperature_c() if gpu else None
        viol1 = gpu.violation_ns() if gpu else None
        pids_after = gpu.running_pids() if gpu else None
        reasons = [gpu.throttle_reasons()] if gpu else []
    finally:
        meter.close()
        if gpu is not None:
            gpu.close()

    window_s = done.wall_s
    peak_mem_mb, peak_mem_method = peak_memory(sampler, done)
    energy_j = energy.energy_j
    energy_net = None
    if energy_j is not None and baseline_power_w is not None:
        energy_net = net_energy_j(energy_j, baseline_power_w, energy.window_s)
    short, zero, details = window_flags(window_s, settings, energy)
    shared: bool | None = None
    thr: bool | None = None
    if gpu is not None:
        seen = [p for p in (pids_before, pids_after) if p is not None]
        if seen:
            # our step process does not use the GPU and the command is not running at either
            # end, so any process listed there is a neighbour
            others = sorted({p for pids in seen for p in pids})
            shared = bool(others)
            if others:
                details.append(f"other processes on the GPU right before or after the window: {others}")
        thr, d = throttled(viol0, viol1, reasons)
        if d:
            details.append(d)
    if done.open_pipes:
        details.append("a process the command started outlived it (not inside the window)")
    measured: dict[str, Any] = {
        "window_s": window_s,
        "window_includes_startup": True,
        "window_note": WINDOW_NOTE,
        "cpu_time_s": done.cpu_s,
        "peak_mem_mb": peak_mem_mb,
        "peak_mem_method": peak_mem_method,
        "max_processes": sampler.max_processes or None,
        "energy_j": energy_j,
        "energy_j_net": energy_net,
        "baseline_power_w": baseline_power_w,
        "energy_source": energy.source,
        "energy_method_detail": energy.detail,
        "sample_interval_s": energy.sample_interval_s,
        "rss_sample_interval_s": settings.sample_interval_s,
        **window_quality(meter, meter.device_name, short, zero, shared, thr, details, temp_start, temp_end),
    }
    # a command that reports its output tokens (`output_tokens: N`) gets tokens/s and J/token
    measured.update(command_token_metrics(own, window_s, energy_j, energy_net))
    for k, v in own.items():
        if k in measured:
            log(f"snakesweep: the command's metric {k!r} is kept as 'command.{k}' ({k} is what the window measured)")
            measured[f"command.{k}"] = v
        else:
            measured[k] = v
    return measured
