"""Threads per trial: how many CPU threads a trial's steps use, and the settings that make them.

A trial's ``threads`` parameter (in ``sweep.fixed``, ``sweep.grid`` or ``sweep.experiments``,
for any workload; default 1) is

* the job's Snakemake ``threads:`` (``get_threads`` in workflow/rules/common.smk), so that the
  scheduler runs only as many trials at once as ``--cores`` has room for (on Slurm: the job's
  ``--cpus-per-task``);
* ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` (and the other pools' variables
  below) in the step's process, set by the supervisor before the workload imports numpy or torch,
  inherited by a command workload's commands; ``torch.set_num_threads`` where torch is imported
  (snakesweep/steps.py).

The supervisor checks it against what the job may really use, before the workload runs: the
threads Snakemake gave the job (``--cores`` scales a rule's threads down) and the CPUs the
process may run on (``os.sched_getaffinity``: a cgroup, ``taskset``, a Slurm allocation). A trial
that asks for more fails with a one-line reason instead of running under a label it does not
have (``threads=4`` measured on 2 CPUs). Standard library only: the supervisor imports it.
"""

from __future__ import annotations

import os
from typing import Any

PARAM = "threads"
DEFAULT = 1
# the thread pools of the usual numeric libraries (OpenMP: torch, numpy's BLAS builds; MKL; OpenBLAS;
# Apple's Accelerate; numexpr); torch's intra-op pool follows OMP_NUM_THREADS when it is imported
ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
            "NUMEXPR_NUM_THREADS")
# the step's thread count, for snakesweep code in the step's process (steps, command workloads)
THREADS_ENV = "SNAKESWEEP_THREADS"


def check_threads(value: Any) -> str | None:
    """Why a `threads` parameter value is unusable, or None."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return (f"the parameter 'threads' is {value!r}; it is the number of CPU threads of a trial's "
                "steps (fix: a whole number >= 1, e.g. threads: 2 in sweep.fixed or sweep.grid)")
    return None


def trial_threads(params: dict[str, Any]) -> int:
    """The threads a trial asks for (its `threads` parameter), default 1."""
    value = params.get(PARAM, DEFAULT)
    return value if check_threads(value) is None else DEFAULT


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def job_threads(requested: int | None, granted: int, cpus: int) -> tuple[int, str | None]:
    """(threads the step uses, why it must not run or None).

    `requested`: the trial's `threads` parameter (None: the trial sets none, and the job's own
    count is used, e.g. a profile's `set-threads`); `granted`: the threads Snakemake gave the job;
    `cpus`: the CPUs the process may run on."""
    n = requested if requested is not None else granted
    if n > granted:
        return n, (f"the trial asks for threads={n}, but Snakemake gave this job {granted} "
                   f"(a local run scales a job down to --cores) (fix: --cores {n} or more, or threads <= {granted})")
    if n > cpus:
        return n, (f"the trial asks for threads={n}, but this job may run on {cpus} CPU(s) "
                   f"(os.sched_getaffinity): the extra threads would only contend (fix: threads <= {cpus}, "
                   "or give the job more CPUs)")
    return n, None


def thread_env(n: int) -> dict[str, str]:
    """The environment variables that make a step's libraries use `n` threads."""
    return {**{name: str(n) for name in ENV_VARS}, THREADS_ENV: str(n)}


def step_threads() -> int | None:
    """The step's thread count, as the supervisor set it (None outside a supervised step)."""
    try:
        return int(os.environ[THREADS_ENV])
    except (KeyError, ValueError):
        return None


def apply_torch_threads(n: int | None = None) -> None:
    """torch.set_num_threads(n) if torch is imported already (never imports it: ~1.7 s); a torch
    imported later reads OMP_NUM_THREADS."""
    import sys

    n = n if n is not None else step_threads()
    torch = sys.modules.get("torch")
    if n is not None and torch is not None and hasattr(torch, "set_num_threads"):
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)


def set_model_threads(torch: object, n: int, who: str) -> None:
    """A built-in's `threads` parameter: torch.set_num_threads(n), refused beyond the CPUs this
    process may use (those threads would measure contention, not the model)."""
    usable = usable_cpus()
    if n > usable:
        raise ValueError(
            f"{who} parameter 'threads' is {n}, but this process may use {usable} CPU(s): "
            "the extra threads would measure contention, not the model "
            f"(fix: threads <= {usable} here, or give the measure job more CPUs)"
        )
    torch.set_num_threads(n)  # type: ignore[attr-defined]
