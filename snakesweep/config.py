"""The sweep file's schema and the one place a config mistake becomes a readable message.

Every model forbids unknown keys, so a misspelt key fails before any job starts.
"""

from __future__ import annotations

import math
import shlex
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

STEPS = ("train", "eval", "measure")
StepName = Literal["train", "eval", "measure"]
CommandStep = Literal["prepare", "train", "eval", "measure"]


class ConfigError(Exception):
    """A mistake in the sweep file: the message names the file, the key and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LogRange(_Strict):
    """`num` values spaced evenly on a log scale between the two bounds (inclusive)."""

    log: tuple[float, float]
    num: int = Field(ge=1)

    @field_validator("log")
    @classmethod
    def _positive(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[0] <= 0 or v[1] <= 0:
            raise ValueError("log range bounds must be > 0")
        return v


class LinRange(_Strict):
    """`num` values spaced evenly between the two bounds (inclusive)."""

    lin: tuple[float, float]
    num: int = Field(ge=1)


def _axis_kind(value: Any) -> str | None:
    if isinstance(value, LogRange):  # already validated (e.g. when a model is serialised)
        return "log"
    if isinstance(value, LinRange):
        return "lin"
    if isinstance(value, (list, tuple)):
        return "values"
    if isinstance(value, dict):
        return "log" if "log" in value else "lin" if "lin" in value else None
    return None


GridAxis = Annotated[
    Union[
        Annotated[list[Any], Tag("values"), Field(min_length=1)],
        Annotated[LogRange, Tag("log")],
        Annotated[LinRange, Tag("lin")],
    ],
    Discriminator(
        _axis_kind,
        custom_error_type="grid_axis",
        custom_error_message="a grid axis is a list of values, {log: [low, high], num: N} or {lin: [low, high], num: N}",
    ),
]


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return any(_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    return False


class CommandWorkload(_Strict):
    """A user's own scripts, one argv per step, formatted with the trial's parameters.

    An argv never passes through a shell: a string is split with shlex, each element is formatted
    on its own (snakesweep/workloads/command.py), so a value arrives as exactly one argument.
    """

    command: dict[CommandStep, list[str]] = Field(min_length=1)
    args: Literal["none", "flags", "hydra"] = "none"
    metrics: str = Field(default="metrics.json", min_length=1)
    sources: Union[list[str], dict[CommandStep, list[str]]] = Field(default_factory=list)

    @field_validator("command", mode="before")
    @classmethod
    def _split_strings(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: shlex.split(a) if isinstance(a, str) else a for k, a in v.items()}
        return v

    @field_validator("command")
    @classmethod
    def _non_empty(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        empty = [step for step, argv in v.items() if not argv]
        if empty:
            raise ValueError(f"the command of step {empty[0]!r} is empty")
        return v

    def step_sources(self, step: str) -> list[str]:
        """The files a step uses as the user listed them (one list for all, or per step)."""
        if isinstance(self.sources, dict):
            return list(self.sources.get(step, []))
        return list(self.sources)


def _workload_kind(value: Any) -> str | None:
    if isinstance(value, (str, CommandWorkload)):
        return "module" if isinstance(value, str) else "command"
    if isinstance(value, dict):
        return "command"
    return None


WorkloadSpec = Annotated[
    Union[
        Annotated[str, Tag("module"), Field(min_length=1)],
        Annotated[CommandWorkload, Tag("command")],
    ],
    Discriminator(
        _workload_kind,
        custom_error_type="workload",
        custom_error_message="a workload is a built-in name, a .py file, or {command: {train: [...], ...}}",
    ),
]


class Sweep(_Strict):
    name: str = Field(min_length=1)
    workload: WorkloadSpec
    steps: list[StepName] = Field(default_factory=lambda: list(STEPS), min_length=1)
    fixed: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, GridAxis] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    experiments: list[dict[str, Any]] = Field(default_factory=list)
    exclude: list[dict[str, Any]] = Field(default_factory=list)
    max_trials: int = Field(default=1000, ge=1)

    @field_validator("steps")
    @classmethod
    def _steps_in_order(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v) or v != [s for s in STEPS if s in v]:
            raise ValueError(f"list each step once, in the order {', '.join(STEPS)} (fix: e.g. [train, eval])")
        if "eval" in v and "train" not in v:
            raise ValueError("'eval' evaluates what 'train' made (fix: add train, or use [measure] alone)")
        return v

    @field_validator("fixed", "experiments", "exclude")
    @classmethod
    def _finite(cls, v: Any) -> Any:
        if _non_finite(v):
            raise ValueError(
                "NaN and infinity cannot be parameter values: they have no JSON form "
                "(fix: use a finite number, or a string such as 'nan' that your workload parses)"
            )
        return v

    @field_validator("grid")
    @classmethod
    def _finite_grid(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name, axis in v.items():
            values = axis if isinstance(axis, list) else [*getattr(axis, "log", ()), *getattr(axis, "lin", ())]
            if _non_finite(values):
                raise ValueError(
                    f"axis {name!r}: NaN and infinity cannot be parameter values: they have no JSON form "
                    "(fix: use a finite number, or a string such as 'nan' that your workload parses)"
                )
        return v

    @model_validator(mode="after")
    def _commands_for_steps(self) -> "Sweep":
        if isinstance(self.workload, CommandWorkload):
            missing = [s for s in self.steps if s not in self.workload.command]
            if missing:
                raise ValueError(
                    f"sweep.steps runs {', '.join(missing)}, but sweep.workload.command has no "
                    f"{missing[0]!r} entry (fix: add command.{missing[0]}: [...], or drop it from sweep.steps)"
                )
        return self


class MeasureSettings(_Strict):
    """How inference is timed; see config/README.md for why each knob exists."""

    batch_size: int = Field(default=256, ge=1)
    warmup_batches: int = Field(default=5, ge=0)
    repeats: int = Field(default=20, ge=1)
    min_window_s: float = Field(default=5.0, ge=0)
    baseline_s: float = Field(default=0.0, ge=0)
    cooldown_s: float = Field(default=0.0, ge=0)
    max_start_temp_c: float | None = None
    temp_wait_timeout_s: float = Field(default=300.0, ge=0)
    sample_interval_s: float = Field(default=0.1, gt=0)
    cycles: int = Field(default=1, ge=1)
    cycle_order: Literal["interleaved", "sequential", "shuffled"] = "interleaved"


class Timeouts(_Strict):
    train: float = Field(default=3600, gt=0)
    eval: float = Field(default=600, gt=0)
    measure: float = Field(default=600, gt=0)


class Objective(_Strict):
    # a column name of summary.csv; the pattern keeps it safe to pass on a command line
    metric: str = Field(default="eval_accuracy", pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")
    direction: Literal["max", "min"] = "max"


class ReportSettings(_Strict):
    objective: Objective = Field(default_factory=Objective)
    extra_objectives: list[Objective] = Field(default_factory=list)


class Retries(_Strict):
    """How many times Snakemake retries a failed step (each retry gets attempt x the timeout,
    and on Slurm attempt x the memory and time limit)."""

    train: int = Field(default=0, ge=0)
    eval: int = Field(default=0, ge=0)
    measure: int = Field(default=0, ge=0)


FailureReason = Literal["timeout", "signal", "orphaned", "exit", "exception"]


class FailurePolicy(_Strict):
    """What a failure costs: reason-aware retries and a failure budget (config/README.md)."""

    retries: Retries = Field(default_factory=Retries)
    # a timeout, the OOM killer or a lost Snakemake may pass on a retry; a Python exception in
    # the user's code fails again, so it is not retried unless asked for
    retry_on: list[FailureReason] = Field(default_factory=lambda: ["timeout", "signal", "orphaned"])
    max_failures: int | None = Field(default=None, ge=1)
    max_failure_rate: float | None = Field(default=None, gt=0, le=1)


class SweepConfig(_Strict):
    sweep: Sweep
    measure: MeasureSettings = Field(default_factory=MeasureSettings)
    timeout_s: Timeouts = Field(default_factory=Timeouts)
    failures: FailurePolicy = Field(default_factory=FailurePolicy)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    report: ReportSettings = Field(default_factory=ReportSettings)


_FIXES = {
    "extra_forbidden": "remove it or correct its spelling",
    "missing": "add it",
    "literal_error": "use one of the allowed values",
    "too_short": "give at least one value",
    "greater_than_equal": "use a larger value",
    "greater_than": "use a larger value",
    "grid_axis": "write the axis as one of those forms",
    "workload": "write the workload as one of those forms",
    "value_error": "see config/README.md for this key",
}


def _loc(loc: tuple[Any, ...]) -> str:
    # pydantic puts a grid axis's union tag into the location; the user never wrote it.
    # likewise the workload's tag (module/command) right after 'workload'
    parts = [
        str(p)
        for i, p in enumerate(loc)
        if not (i >= 2 and loc[i - 2] == "grid" and p in ("values", "log", "lin"))
        and not (i >= 1 and loc[i - 1] == "workload" and p in ("module", "command"))
    ]
    return ".".join(parts) or "(top level)"


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = []
    seen = set()
    for e in err.errors():
        key = _loc(e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            text = f"unknown key '{key}'"
        else:
            text = f"'{key}': {msg}"
        fix = _FIXES.get(e["type"], "see config/README.md for this key")
        line = f"{source}: {text}" if "fix:" in msg else f"{source}: {text} (fix: {fix})"
        if line not in seen:
            seen.add(line)
            lines.append(line)
    return "\n".join(lines)


def validate_config(raw: dict[str, Any], source: str) -> SweepConfig:
    """Validate a config mapping; raise ConfigError with a message meant for the user."""
    try:
        return SweepConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def load_config_file(path: str | Path) -> SweepConfig:
    import yaml  # only the CLI-side loader needs it; step processes import this module too

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the sweep file ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the sweep file must be a mapping with a 'sweep:' key")
    return validate_config(raw, str(path))
