"""Command workloads at parse time: a step's argv from its templates, and the checks that refuse,
before any job starts, what would fail every trial (placeholders, Hydra names, argv length, sources).

Split from the run-time half (_command_run.py) so that neither carries the other's code; the run
half imports build_argv and step_context from here, and command.py re-exports both halves. The
rules (placeholders, rendering, the args modes, sources) are in command.py's docstring. Imports:
the standard library; ``..config`` for type hints only, ``..errors`` and ``..layout`` lazily.
"""

from __future__ import annotations

import json
import math
import os
import re
import string
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pydantic stays out of a step's imports: the steps read only .command/.args/.metrics
    from ..config import CommandWorkload

CONTEXT_NAMES = ("out_dir", "train_dir", "data_dir", "seed", "trial", "threads", "resume_dir")
# Names a parameter of a command workload may not have: {name} must mean one thing.
RESERVED = ("out_dir", "train_dir", "data_dir", "trial", "resume_dir")
RESUME = "resume_dir"  # an element using it is left out when the trial starts fresh


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


def step_context(params: dict[str, Any], trial: str, out_dir: Path | None, data_dir: Path, train_dir: Path | None) -> dict[str, str]:
    """The placeholders of a step's directories and trial (build_argv's `context`): one function,
    so that the parse-time argv length check builds the very argv the step will run."""
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
            ctx = step_context(params, tid, Path(trial_dir, step), Path(sweep_dir, "data", "command"),
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
