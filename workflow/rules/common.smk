# Config validation, the trial list, and every input function the rules use.
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path

# The Snakefile imports the snakesweep package of this repository (found from this file, so a
# run from another directory or as a deployed module works too); jobs run its scripts/ with the
# interpreter that runs Snakemake (first on PATH for every job, local or on a cluster node) and
# find the same package through PYTHONPATH, so a venv works without being activated.
REPO = Path(workflow.current_basedir.get_path_or_uri(secret_free=True)).parents[1]
SCRIPTS = REPO / "scripts"
sys.path.insert(0, str(REPO))
os.environ["PATH"] = os.pathsep.join(
    [os.path.dirname(sys.executable), os.environ["PATH"]]
)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
)

# Byte-compile the package once here, as `pip install` does for an installed one: every job
# imports it, and with PYTHONDONTWRITEBYTECODE set (common in container images) each of
# hundreds of short jobs would otherwise recompile it from source (~25 ms a job). Quiet and
# harmless where the checkout is read-only.
import compileall

compileall.compile_dir(str(REPO / "snakesweep"), quiet=2)


envvars:
    "PATH",
    "PYTHONPATH",


from snakesweep.config import (
    CONTINUE_METHODS,
    ROUND_METHODS,
    ConfigError,
    validate_config,
)
from snakesweep.grid import TRIAL_ID_PATTERN, config_hash, param_names
from snakesweep.measure import cycle_priority
from snakesweep.grid import expand as expand_sweep
from snakesweep.report import collect, write_reports_after_failure
from snakesweep.results import STEPS as ALL_STEPS, read_json
from snakesweep.summary import disk_error_line, end_of_run_summary
from snakesweep.workloads import (
    builtin_metrics,
    resolve_workload,
    validate_builtin_params,
)


def _config_source():
    """The sweep's sources in merge order (snakesweep/sweepfile.py): its file(s), then each
    --config entry (Snakemake's raw strings); as a string, the files' names."""
    from snakesweep.sweepfile import Sources

    files = [str(f) for f in workflow.overwrite_configfiles] or ["config/config.yaml"]
    entries = workflow.config_settings.config_args
    return Sources(files, entries if isinstance(entries, (list, tuple)) else [])


def _load_sweep(source):
    """Validate before any job starts; a mistake ends the run with one readable message that
    names the source of the key (a sweep file, or a --config entry)."""
    try:
        # the sweep file(s) read again with checks Snakemake's loader skips (a key written
        # twice, an alias bomb), the --config entries with their YAML types
        raw = source.load()
        if source.uses_yte():
            raw = config  # a YTE template: Snakemake's rendering is the sweep
        elif raw != config:
            config.clear()
            config.update(raw)  # jobs and scripts see what was validated
        cfg = validate_config(raw, source)
        trials = expand_sweep(cfg.sweep, source)
        workload = resolve_workload(cfg.sweep.workload, source)
        checked = trials
        # halving/optuna choose trials in rounds (rules/search.smk); stand-ins are checked
        # instead: the space's corners at both ends of the budget ladder
        if not trials:
            from snakesweep.search import probe_trials

            checked = probe_trials(cfg, source)
        for trial in checked:
            validate_builtin_params(cfg.sweep.workload, trial.params, source)
        if workload.command:
            from snakesweep.workloads.command import check_command_workload

            names = set(param_names(checked))
            check_command_workload(
                workload.command,
                cfg.sweep.steps,
                names,
                source,
                trials=[(t.id, t.params) for t in checked],
                sweep_dir=cfg.sweep.directory,
            )
        check_builtin_steps(cfg, source)
        check_objectives(cfg, source)
        check_input_names(cfg, workload, source)
    except ConfigError as err:
        # a config mistake is not a bug: one message, no traceback, nothing started
        message = source.blame(str(err))
        print(f"snakesweep: invalid sweep configuration\n{message}", file=sys.stderr)
        sys.exit(1)
    return cfg, trials, workload


def check_input_names(cfg, workload, source):
    """Snakemake reads braces in an input's path as wildcards, even in what an input function
    returns (it has no escape): a workload file or source with one is refused here, by name.
    """
    key = "sweep.workload.sources" if workload.command else "sweep.workload"
    for step in cfg.sweep.steps:
        for path in _sources(workload, step, cfg.sweep.directory):
            if "{" in path or "}" in path:
                raise ConfigError(
                    f"{source}: '{key}' names the file {path!r}, whose braces Snakemake would read "
                    "as wildcards (fix: rename it without '{' and '}')"
                )


# (step, sweep dir) -> files: a command's source tree is walked once per step
_SOURCES = {}


def _sources(workload, step, sweep_dir):
    if (step, sweep_dir) not in _SOURCES:
        if workload.command:
            from snakesweep.workloads.command import source_files

            found = source_files(workload.command, step, exclude=[sweep_dir])
        else:
            found = [str(workload.path)] if workload.path else []
        _SOURCES[step, sweep_dir] = tuple(found)
    return _SOURCES[step, sweep_dir]


def check_builtin_steps(cfg, source):
    """A built-in that cannot run a selected step (inference_model has no training) fails now."""
    from snakesweep.workloads import BUILTIN, STEP_FUNCTION
    import importlib

    spec = cfg.sweep.workload
    if not isinstance(spec, str) or spec not in BUILTIN:
        return
    builtin = importlib.import_module(BUILTIN[spec])
    missing = [s for s in cfg.sweep.steps if not hasattr(builtin, STEP_FUNCTION[s])]
    if missing:
        can = [s for s in STEP_FUNCTION if hasattr(builtin, STEP_FUNCTION[s])]
        raise ConfigError(
            f"{source}: 'sweep.steps' runs {', '.join(missing)}, which the built-in workload "
            f"{spec!r} cannot do (fix: use steps among {can})"
        )


def check_objectives(cfg, source):
    """A built-in knows its metrics: an objective no selected step produces is a config error."""
    known = builtin_metrics(cfg.sweep.workload, cfg.sweep.steps)
    if known is None:
        return  # a user's workload: the reports say so if no trial produced it
    for key, obj in [
        ("report.objective", cfg.report.objective),
        *(
            (f"report.extra_objectives[{i}]", o)
            for i, o in enumerate(cfg.report.extra_objectives)
        ),
    ]:
        if obj.metric not in known:
            raise ConfigError(
                f"{source}: '{key}.metric' is {obj.metric!r}, which no step of sweep.steps "
                f"{cfg.sweep.steps} produces (fix: use one of {', '.join(known)})"
            )


CFG, TRIAL_LIST, WORKLOAD = _load_sweep(_config_source())
# Everything this sweep writes lives under its own directory: results/<sweep.name>/ or sweep.dir
# (snakesweep/layout.py), logs included; Snakemake's .snakemake/ stays per checkout.
RESULTS = CFG.sweep.directory
LOGS = f"{RESULTS}/logs"
STEPS = list(CFG.sweep.steps)  # the steps this sweep runs, in order
FINAL_STEP = STEPS[-1]
TRIALS = [t.id for t in TRIAL_LIST]
# halving/optuna know their trials round by round (rules/search.smk), TRIALS is empty
SEARCH_IN_ROUNDS = CFG.sweep.search.method in ROUND_METHODS
# halving/hyperband/pbt: a promoted trial continues from its previous rung's checkpoint
SEARCH_CONTINUES = CFG.sweep.search.method in CONTINUE_METHODS
SWEEP_HASH = config_hash(CFG)
# the workload's key holds its file's stem, which may hold any character (spaces, quotes, `$(...)`,
# braces Snakemake would read as wildcards): its paths use the key's safe characters only (the
# key's digest keeps two workloads apart)
DATA_KEY = re.sub(r"[^A-Za-z0-9._-]", "_", WORKLOAD.key)
DATA_MARKER = f"{RESULTS}/data/{DATA_KEY}/ready.json"
# `gpu` is the portable resource name; profiles/slurm maps it onto the cluster's GPUs. A trial's
# own `device` parameter (an efficiency study over cpu and cuda) wins over the sweep's.
TRIAL_GPU = {
    t.id: int(str(t.params.get("device", CFG.device)) == "cuda") for t in TRIAL_LIST
}


def _gpu_per_trial(wildcards):
    # a trial chosen in a search round is not in TRIAL_LIST: the sweep's device
    return TRIAL_GPU.get(wildcards.trial, int(CFG.device == "cuda"))


# a constant where every trial asks the same (no function call per job)
_GPUS = set(TRIAL_GPU.values()) | {int(CFG.device == "cuda")}
get_gpu = _GPUS.pop() if len(_GPUS) == 1 else _gpu_per_trial

# The trial steps' `threads:` is the trial's `threads` parameter (default 1; snakesweep/threads.py),
# so the scheduler runs as many trials at once as their threads fit in --cores (on Slurm: the job's
# --cpus-per-task); the supervisor sets OMP/MKL/OpenBLAS/torch threads to it in the step's process.
TRIAL_THREADS = {t.id: int(t.params.get("threads", 1)) for t in TRIAL_LIST}


def get_threads():
    """A constant where every trial asks the same (no function call per job), else the trial's
    own; a trial chosen in a search round is found in the plan's round files."""
    if SEARCH_IN_ROUNDS:
        from snakesweep.search import probe_trials

        asked = {
            int(t.params.get("threads", 1)) for t in probe_trials(CFG, _config_source())
        }
    else:
        asked = set(TRIAL_THREADS.values()) or {1}
    if len(asked) == 1:
        return asked.pop()

    def threads(wildcards):
        if wildcards.trial not in TRIAL_THREADS:
            from snakesweep.plan import load_plan

            plan = load_plan(PLAN_JSON, missing_ok=True) or {"trials": []}
            for t in plan["trials"]:
                TRIAL_THREADS[t["trial"]] = int(t["params"].get("threads", 1))
        return TRIAL_THREADS.get(wildcards.trial, 1)

    return threads


# Measure jobs hold `measure_slot`: one at a time in this run, whether or not a profile sets it
# (a deployed module or a run from another directory has no profiles/default); each measure
# step also holds a host-wide lock (snakesweep/measure_lock.py) against other runs.
if "measure_slot" not in workflow.global_resources:
    workflow.register_resource("measure_slot", 1)


wildcard_constraints:
    trial=TRIAL_ID_PATTERN,
    cycle=r"\d+",


def warn_if_replanning():
    """A dry-run cannot look past the re-plan checkpoint: say so instead of showing one job."""
    plan = Path(RESULTS, "plan", "trials.json")
    if workflow.is_main_process and plan.exists():
        old = read_json(plan).get("sweep_hash")
        if old != SWEEP_HASH:
            logger.info(
                f"snakesweep: the sweep changed since {plan} was written ({old} -> {SWEEP_HASH}): "
                "the run re-plans first, then runs what is missing or out of date "
                "(a dry-run lists only the re-plan)."
            )


warn_if_replanning()


def get_sources(step):
    """The files a step runs are inputs: editing one re-runs the steps that use it, only.
    A module workload's file serves every step; a command workload lists its own sources.
    """
    return list(_sources(WORKLOAD, step, RESULTS))


def get_script(rule):
    """The thin script a rule runs (scripts/{rule}.py), relative to the working directory so
    that a moved checkout does not look like a changed rule to Snakemake's rerun triggers.
    """
    return os.path.relpath(SCRIPTS / f"{rule}.py")


def get_command(step):
    """A command workload's argv template and argument style, as a param of its rule (editing the
    command re-runs that step and what follows it, nothing else)."""
    return text_param(command_text(step))


def command_text(step):
    if not WORKLOAD.command:
        return ""
    c = WORKLOAD.command
    return json.dumps([c.command.get(step), c.args, c.metrics])


def result_path(trial, step):
    return f"{RESULTS}/trials/{trial}/{step}.json"


PLAN_JSON = f"{RESULTS}/plan/trials.json"
# every path that reaches a rule's `shell:` line is quoted there (`{log:q}`, `{output.result:q}`),
# and the parse-time constants pasted into those lines are quoted here
PLAN_ARG = shlex.quote(PLAN_JSON)
DATA_ARG = shlex.quote(DATA_MARKER)


def get_step_inputs(step):
    """A trial step's inputs, fixed at parse time (an input function would be called,
    and its signature inspected, for every job): the results of the selected steps before it;
    the first step also the plan (ancient: re-planning never re-runs a finished trial) and the
    prepared data, which the later steps reach through it; and the files the step runs.

    measure uses the trained model, not the evaluation: it waits for eval (never measuring
    beside it) but a re-run eval does not make it re-measure (ancient)."""
    before = STEPS[: STEPS.index(step)]
    inputs = {
        s: (
            ancient(result_path("{trial}", s))
            if (step, s) == ("measure", "eval")
            else result_path("{trial}", s)
        )
        for s in before
    }
    if not before:
        inputs.update(plan=ancient(PLAN_JSON), data=DATA_MARKER)
    sources = get_sources(step)
    if sources:  # none for a built-in: an empty named input still costs per job
        inputs["sources"] = sources
    return inputs


RESUME_FROM = {}  # trial -> the trial whose checkpoint it continues from (round files)


def get_resume_inputs():
    """train's extra input in a search that continues from checkpoints (halving, hyperband, pbt):
    the parent trial's train result (its round entry's `resume_from`). Snakemake orders the two,
    and a parent that re-runs (its workload's code was edited) re-runs the chain. Nothing for
    every other sweep (no function call per job)."""
    if not SEARCH_CONTINUES:
        return {}

    def parent_train(wildcards):
        if wildcards.trial not in RESUME_FROM:
            from snakesweep.plan import load_plan

            plan = load_plan(PLAN_JSON, missing_ok=True) or {"trials": []}
            for t in plan["trials"]:
                RESUME_FROM[t["trial"]] = t.get("resume_from")
        parent = RESUME_FROM.get(wildcards.trial)
        return [result_path(parent, "train")] if parent else []

    return {"resume": parent_train}


def text_param(text):
    """A param whose text may hold braces: Snakemake reads braces in a string param as wildcards
    (and has no escape), so such text is returned by a function; "" stays a plain constant,
    which costs Snakemake nothing per job."""
    if not text:
        return ""

    def param(wildcards):
        return text

    return param


# measure's `--train` argument: the trained model's result, when the sweep trains
get_train_option = (
    f"--train {shlex.quote(result_path('{trial}', 'train'))}"
    if "train" in STEPS
    else ""
)


def get_runtime_min(step):
    """Slurm's time limit (minutes): the step's timeout plus start-up slack, so the supervisor's
    own timeout (which records the reason) fires first; a retry gets proportionally more.
    """
    base = -(-int(getattr(CFG.timeout_s, step)) // 60) + 2

    def runtime(wildcards, attempt):
        return base * attempt

    return runtime


def get_measure_settings_hash():
    """A change of measurement settings re-runs measure (Snakemake's params trigger)."""
    return text_param(
        f"{CFG.device}|{CFG.measure.model_dump_json()}|{command_text('measure')}"
    )


TRIAL_INDEX = {t: i for i, t in enumerate(TRIALS)}


# On a cluster, N consecutive trials share one Slurm job: their train+eval in bundle
# `trial-k`, their measurements in `measure-k`, N from the profile's `group-components: {trial: N,
# measure: N}` (profiles/slurm). Bundle k's measurements wait for bundle k only, so a failed trial
# holds back its own bundle, not others. Without group-components (a local run, `snakemake -n`):
# no groups, one job per step.
def get_group(name):
    # a function, not decided here: Snakemake sets workflow.group_settings (the profile's
    # group-components) after parsing the Snakefile
    def group(wildcards):
        settings = getattr(workflow, "group_settings", None)
        size = (getattr(settings, "group_components", None) or {}).get(name)
        if not size:
            return None
        index = TRIAL_INDEX.get(wildcards.trial)
        # a trial chosen in a search round is bundled alone
        chunk = wildcards.trial if index is None else index // int(size)
        # the trials of a chunk are not connected: Snakemake joins them into one job through
        # group-components, which it looks up under the parent id (as for `group: "x-{trial}"`)
        workflow.parent_groupids[f"{name}-{chunk}"] = name
        return f"{name}-{chunk}"

    return group


# a trial chosen in a search round -> its position among the chosen rounds' trials (filled
# as rounds are chosen; an earlier round's positions never move)
_ROUND_TRIAL_INDEX = {}


def _trial_index(trial):
    """A trial's index for the cycle order: its place in the plan, or for a trial chosen in a
    search round (not in TRIALS) its place among the trials of the rounds chosen so far, round
    by round as the round files list them: deterministic, and fixed once its round is chosen.
    None if neither knows it (cycle_priority then falls back to a hash of the id)."""
    if trial in TRIAL_INDEX:
        return TRIAL_INDEX[trial]
    if SEARCH_IN_ROUNDS and trial not in _ROUND_TRIAL_INDEX:
        from snakesweep.rounds import round_trials
        from snakesweep.search import plan_block

        for t in round_trials(Path(RESULTS, "plan"), plan_block(CFG)):
            _ROUND_TRIAL_INDEX.setdefault(t["trial"], len(_ROUND_TRIAL_INDEX))
    return _ROUND_TRIAL_INDEX.get(trial)


def get_cycle_priority(wildcards):
    """Higher runs first: the order of measurement cycles (measure.cycle_order)."""
    m = CFG.measure
    return cycle_priority(
        int(wildcards.cycle),
        m.cycles,
        m.cycle_order,
        wildcards.trial,
        _trial_index(wildcards.trial),
    )


def get_step_priority(step):
    """Higher runs first. Without cycles, a trial's later steps outrank its earlier ones, and
    the measurements (one at a time: the bottleneck) all others: trials finish one by one and
    few jobs wait ready. Left to input sizes, Snakemake's greedy scheduler ran every train
    (the plan is their input, the largest) before any eval, and re-sized the inputs of hundreds
    of waiting evals at each of its selections (benchmarks/README.md, orchestration).

    With cycles, train and eval outrank every measurement, so that (with --cores 1, or once
    training is done) all of one cycle's measurements are ready together and run in order. A
    search in rounds knows its trials only as rounds are chosen: the bound is its most trials
    (every round full), whose indices _trial_index hands out.
    """
    if CFG.measure.cycles == 1 or "measure" not in STEPS:
        return ALL_STEPS.index(step)
    m = CFG.measure
    if SEARCH_IN_ROUNDS:
        from snakesweep.search import plan_block

        block = plan_block(CFG)
        most = sum(block["configs_per_round"]) * int(block["seeds"])
        # shuffled: a 20-bit hash of (trial, cycle), whatever the trials
        if m.cycle_order == "shuffled":
            return 2 + 0xFFFFF
        return 1 + cycle_priority(0, m.cycles, m.cycle_order, "", max(most - 1, 0))
    return 1 + max(
        cycle_priority(c, m.cycles, m.cycle_order, t, i)
        for i, t in enumerate(TRIALS)
        for c in range(m.cycles)
    )


def get_measure_cycles(wildcards):
    return expand(
        f"{RESULTS}/trials/{{trial}}/cycles/measure.{{cycle}}.json",
        trial=wildcards.trial,
        cycle=range(CFG.measure.cycles),
    )


def get_all_results(wildcards):
    """Every selected step's result of every trial: all are collected, and each is a target
    (a corrupt eval.json set aside under an existing measure.json is redone; measure reaches
    eval only through an ancient edge). An input function on purpose: for a plain N-file
    list, Snakemake looks the whole list up once per file (O(N^2): +14 s on `snakemake -n`
    at 10k trials, benchmarks/README.md)."""
    # the trials of the rounds chosen so far (rules/search.smk)
    if SEARCH_IN_ROUNDS:
        return get_search_results(wildcards)
    return [result_path(t, s) for t in TRIALS for s in STEPS]


def get_final_targets():
    """The reports, and every trial's last result: after a failed run, the partial summary
    written by `onerror` exists, so the missing trials must be targets in their own right.
    """
    # known only as rounds are chosen, so the input function itself
    if SEARCH_IN_ROUNDS:
        return [f"{RESULTS}/summary.csv", f"{RESULTS}/configs.csv", get_all_results]
    return [f"{RESULTS}/summary.csv", f"{RESULTS}/configs.csv", *get_all_results(None)]


def asked_for_whole_sweep():
    """The run's target is the sweep (the default target), not a part of it (`--until plan`,
    named files, `--omit-from`): only then does an unfinished trial make the exit status 1.
    """
    settings = workflow.dag_settings  # set once the DAG is built (None while parsing)
    return settings is None or not (
        settings.targets or settings.target_jobs or settings.until or settings.omit_from
    )


def write_run_marker():
    """When this run began (not a dry-run: `onstart`), for the supervisor to tell this run's
    failures from older ones: retries and the failure budget count only those."""
    from snakesweep.results import atomic_write_json
    from snakesweep.summary import disk_error_line
    from snakesweep.supervise import RUN_MARKER

    try:
        atomic_write_json(
            Path(LOGS, RUN_MARKER), {"started": time.time(), "pid": os.getpid()}
        )
    except (
        OSError
    ) as err:  # a read-only or full results directory: one line, no traceback
        logger.error(disk_error_line(err, RESULTS))
        sys.exit(1)


def write_partial_reports():
    """After failures (--keep-going), still list every planned trial with its status, and end
    with the same summary as a successful run (snakesweep/summary.py). Files the sweep does not
    produce (another search's figures and round files) are removed first, so neither the
    directory nor the summary's count of plots holds them."""
    from snakesweep.report.workflow import remove_stale_outputs

    plan = Path(RESULTS, "plan", "trials.json")
    if not plan.exists():
        return
    try:
        rows = collect(
            plan,
            RESULTS,
            LOGS,
            Path(RESULTS, "summary.csv"),
            Path(RESULTS, "configs.csv"),
        )
    except OSError as err:
        # a full disk or a read-only file system: one line naming the path and the fix, then
        # the summary as it was last written (every result record stays where it is)
        logger.error(disk_error_line(err, RESULTS))
        for line in end_of_run_summary(RESULTS, LOGS):
            logger.error(line)
        return
    remove_stale_outputs(RESULTS)
    write_reports_after_failure(REPORT, RESULTS, LOGS)
    if all(r["status"] == "ok" for r in rows):
        logger.error(
            f"snakesweep: all {len(rows)} trials are ok; a bookkeeping job failed "
            "(see its log above), not a trial"
        )
    for line in end_of_run_summary(RESULTS, LOGS):
        logger.error(line)


# Never beside a live run of this sweep (after an `--unlock` its steps would start twice):
# refused, naming the pid; --unlock, dry runs and other read-only calls go on (bookkeeping.py).
if workflow.is_main_process:
    from snakesweep.bookkeeping import live_run_problem

    _live = live_run_problem(
        ".",
        RESULTS,
        sys.argv,
        dry_run=getattr(workflow.output_settings, "dryrun", False),
    )
    if _live:
        print(_live, file=sys.stderr)
        sys.exit(1)


# Resume from what is on disk (snakesweep/reconcile.py): a corrupt result JSON is set aside so
# this run redoes it, and a complete, valid result under a killed run's incomplete marker is kept.
if workflow.is_main_process:
    from snakesweep.reconcile import reconcile

    reconcile(".", sweep_hash=SWEEP_HASH, results=RESULTS)
