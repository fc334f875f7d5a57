# Config validation, the trial list, and every input function the rules use.
import os
import sys
from pathlib import Path

# The workflow always uses the snakesweep package that sits beside it, in this process and in
# every job it starts (local or on a cluster node), whichever copy pip has installed.
REPO = Path(workflow.basedir).parent
sys.path.insert(0, str(REPO))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p
)

from snakesweep.collect import collect
from snakesweep.config import ConfigError, validate_config
from snakesweep.grid import TRIAL_ID_PATTERN, config_hash
from snakesweep.grid import expand as expand_sweep
from snakesweep.plan import build_plan
from snakesweep.results import STEPS
from snakesweep.workloads import resolve_workload, validate_builtin_params

PYTHON = sys.executable
RESULTS = "results"
LOGS = "logs"


def _config_source():
    files = [str(f) for f in workflow.overwrite_configfiles] or ["config/config.yaml"]
    return " + ".join(files)


def _load_sweep(source):
    """Validate before any job starts; a mistake ends the run with one readable message."""
    try:
        cfg = validate_config(config, source)
        trials = expand_sweep(cfg.sweep, source)
        workload = resolve_workload(cfg.sweep.workload, source)
        for trial in trials:
            validate_builtin_params(cfg.sweep.workload, trial.params, source)
    except ConfigError as err:
        # a config mistake is not a bug: one message, no traceback, nothing started
        print(f"snakesweep: invalid sweep configuration\n{err}", file=sys.stderr)
        sys.exit(1)
    return cfg, trials, workload


CFG, TRIAL_LIST, WORKLOAD = _load_sweep(_config_source())
TRIALS = [t.id for t in TRIAL_LIST]
SWEEP_HASH = config_hash(CFG)
DATA_MARKER = f"{RESULTS}/data/{WORKLOAD.key}/ready.json"
# `gpu` is the portable resource name; profiles/slurm maps it onto the cluster's GPUs.
GPU = 1 if CFG.device == "cuda" else 0


wildcard_constraints:
    trial=TRIAL_ID_PATTERN,
    cycle=r"\d+",


def get_plan():
    """The plan as data for the plan rule (reaches the script pickled, not through a shell)."""
    return build_plan(CFG, TRIAL_LIST)


def get_workload_file():
    """A user's workload file is an input: editing it re-runs what depends on it."""
    return [str(WORKLOAD.path)] if WORKLOAD.path else []


def get_runtime_min(step):
    """Slurm's time limit follows the step's timeout (minutes, at least 1)."""
    return max(1, -(-int(getattr(CFG.timeout_s, step)) // 60))


def get_measure_settings_hash():
    """A change of measurement settings re-runs measure (Snakemake's params trigger)."""
    return f"{CFG.device}|{CFG.measure.model_dump_json()}"


def get_final_targets():
    return [f"{RESULTS}/summary.csv", f"{RESULTS}/configs.csv"]


def write_partial_reports():
    """After failures (--keep-going), still list every planned trial with its status."""
    plan = Path(RESULTS, "plan", "trials.json")
    if not plan.exists():
        return
    rows = collect(plan, RESULTS, LOGS, Path(RESULTS, "summary.csv"), Path(RESULTS, "configs.csv"))
    failed = [r for r in rows if r["status"] == "failed"]
    logger.error(
        f"snakesweep: {len(failed)} of {len(rows)} trials failed; results/summary.csv lists them "
        "(status, error); re-run the same command to retry failed and missing trials."
    )
    for row in failed[:20]:
        logger.error(f"  {row['trial']}: {row['error']} (log: {row['error_log']})")
