"""The sweep file's schema and the one place a config mistake becomes a readable message.

Every model forbids unknown keys, so a misspelt key fails before any job starts.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

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

from . import layout
from .errors import ConfigError  # noqa: F401  (re-exported: the error every caller catches)
from .params import KeyClash
from .params import flatten as _flatten
from .params import non_finite as _non_finite
from .results import RETRY_ON, STEPS

StepName = Literal["train", "eval", "measure"]
CommandStep = Literal["prepare", "train", "eval", "measure"]

MAX_TRIALS_LIMIT = 1_000_000


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
    Annotated[list[Any], Tag("values"), Field(min_length=1)] | Annotated[LogRange, Tag("log")] | Annotated[LinRange, Tag("lin")],
    Discriminator(
        _axis_kind,
        custom_error_type="grid_axis",
        custom_error_message="a grid axis is a list of values, {log: [low, high], num: N} or {lin: [low, high], num: N}",
    ),
]


class CommandWorkload(_Strict):
    """A user's own scripts, one argv per step, formatted with the trial's parameters.

    An argv never passes through a shell: a string is split with shlex, each element is formatted
    on its own (snakesweep/workloads/command.py), so a value arrives as exactly one argument.
    """

    command: dict[CommandStep, list[str]] = Field(min_length=1)
    args: Literal["none", "flags", "hydra"] = "none"
    metrics: str = Field(default="metrics.json", min_length=1)
    sources: list[str] | dict[CommandStep, list[str]] = Field(default_factory=list)

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
    Annotated[str, Tag("module"), Field(min_length=1)] | Annotated[CommandWorkload, Tag("command")],
    Discriminator(
        _workload_kind,
        custom_error_type="workload",
        custom_error_message="a workload is a built-in name, a .py file, or {command: {train: [...], ...}}",
    ),
]


# --------------------------------------------------------------------------- search (issue 10)
# `space:` dimensions for random / sobol / halving / optuna. Each maps a point of the unit
# interval onto a value (snakesweep/space.py), so scipy's Sobol points, numpy's random points and
# Optuna's suggestions all go through one definition of the space.


def _ordered_bounds(v: tuple[float, float]) -> tuple[float, float]:
    if not v[0] < v[1]:
        if v[0] == v[1]:
            raise ValueError(
                f"the range [{v[0]:g}, {v[1]:g}] is empty (fix: widen it, or put the single value in sweep.fixed)"
            )
        raise ValueError(f"the bounds [{v[0]:g}, {v[1]:g}] are in the wrong order (fix: write [low, high])")
    if _non_finite(list(v)):
        raise ValueError("a bound is NaN or infinite (fix: use finite numbers)")
    return v


class UniformDim(_Strict):
    """A float drawn evenly between the bounds."""

    uniform: tuple[float, float]

    @field_validator("uniform")
    @classmethod
    def _bounds(cls, v: tuple[float, float]) -> tuple[float, float]:
        return _ordered_bounds(v)


class LogUniformDim(_Strict):
    """A float drawn evenly in log space (learning rates, weight decay): bounds > 0."""

    loguniform: tuple[float, float]

    @field_validator("loguniform")
    @classmethod
    def _positive(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[0] <= 0 or v[1] <= 0:
            raise ValueError(f"log of a non-positive bound: loguniform bounds must be > 0, got [{v[0]:g}, {v[1]:g}]")
        return _ordered_bounds(v)


class IntDim(_Strict):
    """An integer between the bounds, both included; `log: true` draws evenly in log space (bounds >= 1)."""

    int_: tuple[int, int] = Field(alias="int")
    log: bool = False

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("int_", mode="before")
    @classmethod
    def _whole(cls, v: Any) -> Any:
        if isinstance(v, (list, tuple)) and any(isinstance(b, float) and b != int(b) for b in v if not isinstance(b, bool)):
            raise ValueError("int bounds must be whole numbers (fix: use uniform for a float)")
        return v

    @model_validator(mode="after")
    def _range(self) -> IntDim:
        _ordered_bounds(self.int_)
        if self.log and self.int_[0] < 1:
            raise ValueError(f"log of a non-positive bound: with log: true the int bounds must be >= 1, got {list(self.int_)}")
        return self


class ChoiceDim(_Strict):
    """One of the listed values (strings, numbers, booleans, null), each equally likely."""

    choice: list[Any] = Field(min_length=1)

    @field_validator("choice")
    @classmethod
    def _distinct(cls, v: list[Any]) -> list[Any]:
        if _non_finite(v):
            raise ValueError("NaN and infinity cannot be parameter values (fix: use a finite number or a string)")
        if any(isinstance(c, (list, dict)) for c in v):
            raise ValueError("a choice is a scalar: a string, number, boolean or null (fix: name the option with a string)")
        keys = [(type(c).__name__, c) for c in v]
        if len(set(keys)) != len(keys):
            raise ValueError("the choices repeat a value (fix: list each value once)")
        return v


_DIM_TAGS = ("uniform", "loguniform", "int", "choice")


def _dim_kind(value: Any) -> str | None:
    for cls, tag in ((UniformDim, "uniform"), (LogUniformDim, "loguniform"), (IntDim, "int"), (ChoiceDim, "choice")):
        if isinstance(value, cls):
            return tag
    if isinstance(value, dict):
        found = [t for t in _DIM_TAGS if t in value]
        return found[0] if len(found) == 1 else None
    return None


SpaceDim = Annotated[
    Annotated[UniformDim, Tag("uniform")] | Annotated[LogUniformDim, Tag("loguniform")] | Annotated[IntDim, Tag("int")] | Annotated[ChoiceDim, Tag("choice")],
    Discriminator(
        _dim_kind,
        custom_error_type="space_dim",
        custom_error_message=(
            "a space dimension is one of {uniform: [low, high]}, {loguniform: [low, high]}, "
            "{int: [low, high], log: false} or {choice: [a, b, ...]}"
        ),
    ),
]


def _grid_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return "axes"
    if isinstance(value, list):
        return "grids"
    return None


# `grid:` is one mapping of axes (the cartesian product), or a list of them (their union,
# de-duplicated): backend-scoped dimensions, e.g. one grid for sgd with momentum, one for adam.
GridSpec = Annotated[
    Annotated[dict[str, GridAxis], Tag("axes")] | Annotated[list[dict[str, GridAxis]], Tag("grids"), Field(min_length=1)],
    Discriminator(
        _grid_kind,
        custom_error_type="grid",
        custom_error_message="sweep.grid is a mapping of axes, or a list of such mappings (their union)",
    ),
]

SEARCH_METHODS = ("grid", "random", "sobol", "halving", "optuna", "hyperband", "pbt")
ROUND_METHODS = ("halving", "optuna", "hyperband", "pbt")  # methods whose later trials depend on earlier results
# methods whose promoted trials continue from their previous rung's (generation's) checkpoint
CONTINUE_METHODS = ("halving", "hyperband", "pbt")


class Budget(_Strict):
    """Successive halving's resource ladder: `param` (a workload parameter, e.g. epochs) grows by
    `eta` each round from `min` to `max`; the best 1/eta of a round go on to the next."""

    param: str = Field(min_length=1)
    min: float = Field(gt=0)
    max: float = Field(gt=0)
    eta: int = Field(default=3, ge=2)

    @model_validator(mode="after")
    def _ladder(self) -> Budget:
        if _non_finite([self.min, self.max]):
            raise ValueError("budget bounds must be finite numbers")
        if not self.min < self.max:
            raise ValueError(
                f"budget min ({self.min:g}) must be below max ({self.max:g}) (fix: e.g. min: 1, max: 27)"
            )
        if self.max / self.min < self.eta:
            raise ValueError(
                f"budget max/min = {self.max / self.min:g} is below eta = {self.eta}: there would be a "
                "single round (fix: widen the budget range or lower eta)"
            )
        return self


class Pbt(_Strict):
    """Population-based training (snakesweep/pbt.py): `population` members trained in
    `generations` of `step` budget each; after each, the bottom `quantile` copies a top member's
    checkpoint and perturbs its parameters."""

    param: str = Field(min_length=1)
    step: float = Field(gt=0)
    population: int = Field(ge=2)
    generations: int = Field(ge=2)
    quantile: float = Field(default=0.25, gt=0, le=0.5)
    factors: list[float] = Field(default_factory=lambda: [0.8, 1.2], min_length=1)
    resample_probability: float = Field(default=0.25, ge=0, le=1)

    @field_validator("step")
    @classmethod
    def _whole_step(cls, v: float) -> float:
        if _non_finite([v]):
            raise ValueError("pbt.step must be a finite number")
        return int(v) if float(v).is_integer() else v

    @field_validator("factors")
    @classmethod
    def _positive_factors(cls, v: list[float]) -> list[float]:
        if _non_finite(v) or any(f <= 0 for f in v):
            raise ValueError("perturbation factors must be finite numbers above 0 (fix: e.g. [0.8, 1.2])")
        return v


class Search(_Strict):
    """How trials are chosen (snakesweep/search.py). `grid` is today's cartesian sweep."""

    method: Literal["grid", "random", "sobol", "halving", "optuna", "hyperband", "pbt"] = "grid"
    n_trials: int | None = Field(default=None, ge=1)
    seed: int = 0
    budget: Budget | None = None
    rounds: int | None = Field(default=None, ge=1)
    batch: int | None = Field(default=None, ge=1)
    pbt: Pbt | None = None


class Sweep(_Strict):
    name: str = Field(min_length=1)
    dir: str | None = None  # the sweep's directory; default results/<name> (layout.sweep_dir)
    workload: WorkloadSpec
    steps: list[StepName] = Field(default_factory=lambda: list(STEPS), min_length=1)
    fixed: dict[str, Any] = Field(default_factory=dict)
    grid: GridSpec = Field(default_factory=dict)
    # issue 10: how trials are chosen, the space random/sobol/halving/optuna draw from, named variants
    search: Search = Field(default_factory=Search)
    space: dict[str, SpaceDim] = Field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    experiments: list[dict[str, Any]] = Field(default_factory=list)
    exclude: list[dict[str, Any]] = Field(default_factory=list)
    # at most a million: a Snakemake DAG of millions of jobs never finishes planning, and the grid
    # is counted against this before it is built (grid.py)
    max_trials: int = Field(default=1000, ge=1, le=MAX_TRIALS_LIMIT)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        problem = layout.name_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("dir")
    @classmethod
    def _safe_dir(cls, v: str | None) -> str | None:
        problem = None if v is None else layout.dir_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @property
    def directory(self) -> str:
        """Where everything this sweep writes lives, relative to where Snakemake runs."""
        return layout.sweep_dir(self.name, self.dir)

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

    @field_validator("fixed", "experiments", "exclude")
    @classmethod
    def _one_spelling(cls, v: Any) -> Any:
        # at validation, not at expansion: the message then starts with the source and the key
        for i, entry in enumerate(v if isinstance(v, list) else [v]):
            try:
                _flatten(entry)
            except KeyClash as clash:
                raise ValueError(f"entry {i}: {clash}" if isinstance(v, list) else str(clash)) from None
        return v

    @field_validator("grid")
    @classmethod
    def _finite_grid(cls, v: Any) -> Any:
        grids = v if isinstance(v, list) else [v]
        for name, axis in (item for g in grids for item in g.items()):
            values = axis if isinstance(axis, list) else [*getattr(axis, "log", ()), *getattr(axis, "lin", ())]
            if _non_finite(values):
                raise ValueError(
                    f"axis {name!r}: NaN and infinity cannot be parameter values: they have no JSON form "
                    "(fix: use a finite number, or a string such as 'nan' that your workload parses)"
                )
        return v

    @model_validator(mode="after")
    def _commands_for_steps(self) -> Sweep:
        if isinstance(self.workload, CommandWorkload):
            missing = [s for s in self.steps if s not in self.workload.command]
            if missing:
                raise ValueError(
                    f"sweep.steps runs {', '.join(missing)}, but sweep.workload.command has no "
                    f"{missing[0]!r} entry (fix: add command.{missing[0]}: [...], or drop it from sweep.steps)"
                )
        return self

    @model_validator(mode="after")
    def _search_fits_method(self) -> Sweep:
        """Every search key belongs to a method; one that the chosen method would ignore is an
        error, so a sweep never silently runs something else than the file says (issue 10)."""
        s, method = self.search, self.search.method
        uses = _SEARCH_KEYS.get(method, set())
        for key in ("n_trials", "budget", "rounds", "batch", "pbt"):
            if getattr(s, key) is not None and key not in uses:
                raise ValueError(
                    f"search.{key} has no meaning for method {method!r} (fix: remove it, or choose a method "
                    f"that uses it: {', '.join(m for m, k in _SEARCH_KEYS.items() if key in k)})"
                )
        for key in sorted(uses - {"n_trials"} if method == "halving" else uses):  # halving: n_trials checked below
            if getattr(s, key) is None:
                raise ValueError(f"search method {method!r} needs search.{key} (fix: add it, see config/README.md)")
        grids = self.grid if isinstance(self.grid, list) else [self.grid] if self.grid else []
        if method == "grid" and self.space:
            raise ValueError("sweep.space is drawn from by search.method random, sobol, halving or optuna "
                             "(fix: set search.method, or write the values as sweep.grid axes)")
        if method in ("random", "sobol", "optuna", "hyperband", "pbt") and grids:
            raise ValueError(f"search method {method!r} draws from sweep.space, not sweep.grid (fix: move the "
                             "axes to sweep.space as distributions, or use method grid or halving)")
        if method in ("random", "sobol", "optuna", "hyperband", "pbt") and not self.space:
            raise ValueError(f"search method {method!r} needs sweep.space (fix: add e.g. space: {{lr: {{loguniform: [1.0e-4, 1.0e-1]}}}})")
        budget_param = s.budget.param if method in ("halving", "hyperband") and s.budget else \
            s.pbt.param if method == "pbt" and s.pbt else None
        if budget_param is not None:
            clash = [w for w, names in (("sweep.space", self.space), ("sweep.fixed", _flat_keys(self.fixed)),
                                        *(("sweep.grid", g) for g in grids)) if budget_param in names]
            if clash:
                by = "generations (search.pbt.param)" if method == "pbt" else "ladder"
                raise ValueError(f"the budget parameter {budget_param!r} is set by the search's {by}; it cannot "
                                 f"also be in {clash[0]} (fix: remove it there)")
        if method == "halving":
            if bool(grids) == bool(self.space):
                raise ValueError("halving starts from sweep.space (n_trials points) or from sweep.grid's points, "
                                 "exactly one of them (fix: keep one)")
            if self.space and s.n_trials is None:
                raise ValueError("halving from sweep.space needs search.n_trials, the number of points in round 0 (fix: add it)")
            if grids and s.n_trials is not None:
                raise ValueError("halving from sweep.grid runs every grid point in round 0; search.n_trials has no "
                                 "meaning then (fix: remove it)")
        if method in ROUND_METHODS and (self.experiments or self.exclude):
            raise ValueError(f"search method {method!r} chooses its trials in rounds; sweep.experiments and "
                             "sweep.exclude apply to grid, random and sobol only (fix: remove them)")
        fixed = _flat_keys(self.fixed)
        for name in self.space:
            if name == "seed" or name in fixed:
                where = "sweep.seeds" if name == "seed" else "sweep.fixed"
                raise ValueError(f"space dimension {name!r} is also set by {where} (fix: keep one of them)")
        return self


_SEARCH_KEYS = {"random": {"n_trials"}, "sobol": {"n_trials"}, "halving": {"n_trials", "budget"},
                "optuna": {"rounds", "batch"}, "hyperband": {"budget"}, "pbt": {"pbt"}}


def _flat_keys(params: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in params.items():
        out |= _flat_keys(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}"}
    return out


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
    # issue 20: trackers the sweep's trials are exported to at the end of a run (the `export` local
    # rule, snakesweep.export): MLflow's sqlite store in the sweep's directory, W&B offline runs
    export: list[Literal["mlflow", "wandb"]] = Field(default_factory=list)


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
    retry_on: list[FailureReason] = Field(default_factory=lambda: list(RETRY_ON))
    max_failures: int | None = Field(default=None, ge=1)
    max_failure_rate: float | None = Field(default=None, gt=0, le=1)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class SweepConfig(_Strict):
    sweep: Sweep
    # issue 10: the named variant of sweep.variants to run (`--config variant=small`)
    variant: str | None = None
    measure: MeasureSettings = Field(default_factory=MeasureSettings)
    timeout_s: Timeouts = Field(default_factory=Timeouts)
    failures: FailurePolicy = Field(default_factory=FailurePolicy)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    report: ReportSettings = Field(default_factory=ReportSettings)

    @model_validator(mode="before")
    @classmethod
    def _apply_variant(cls, raw: Any) -> Any:
        """`variant: small` merges sweep.variants.small over sweep (mappings key by key, anything
        else replaced) before validation, so a variant is checked exactly like a whole sweep."""
        if not isinstance(raw, dict) or raw.get("variant") is None:
            return raw
        sweep, name = raw.get("sweep"), raw["variant"]
        variants = sweep.get("variants") if isinstance(sweep, dict) else None
        if not isinstance(variants, dict) or name not in variants:
            known = ", ".join(map(str, variants)) if isinstance(variants, dict) and variants else "none defined"
            raise ValueError(f"variant {name!r} is not in sweep.variants (fix: use one of: {known})")
        over = variants[name]
        if not isinstance(over, dict):
            raise ValueError(f"sweep.variants.{name} must be a mapping of sweep keys to override")
        if "variants" in over:
            raise ValueError(f"sweep.variants.{name} cannot define variants itself")
        return {**raw, "sweep": _deep_merge(sweep, over)}


_FIXES = {
    "extra_forbidden": "remove it or correct its spelling",
    "missing": "add it",
    "literal_error": "use one of the allowed values",
    "too_short": "give at least one value",
    "greater_than_equal": "use a larger value",
    "greater_than": "use a larger value",
    "less_than_equal": "use a smaller value",
    "grid_axis": "write the axis as one of those forms",
    "workload": "write the workload as one of those forms",
    "space_dim": "write the dimension as one of those forms",
    "grid": "write the grid as one of those forms",
    "value_error": "see config/README.md for this key",
}


def _loc(loc: tuple[Any, ...]) -> str:
    # pydantic puts a grid axis's union tag into the location; the user never wrote it.
    # likewise the workload's tag (module/command) right after 'workload'
    # (issue 10) and the grid's own tag (one mapping or a list of them), a list grid's index
    # before the axis tag, and a space dimension's tag
    loc = tuple(p for i, p in enumerate(loc) if not (i >= 1 and loc[i - 1] == "grid" and p in ("axes", "grids")))
    parts = [
        str(p)
        for i, p in enumerate(loc)
        if not (i >= 2 and loc[i - 2] == "grid" and p in ("values", "log", "lin"))
        and not (i >= 3 and loc[i - 3] == "grid" and isinstance(loc[i - 2], int) and p in ("values", "log", "lin"))
        and not (i >= 2 and loc[i - 2] == "space" and p in _DIM_TAGS)
        and not (i >= 1 and loc[i - 1] == "workload" and p in ("module", "command"))
    ]
    return ".".join(parts) or "(top level)"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The config models a field's type holds (through unions, Annotated, lists and dicts)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _keys_beside(loc: tuple[Any, ...]) -> list[str]:
    """The keys the model at an unknown key's place accepts (its siblings it could be a
    misspelling of). A loc part that is no field (a union tag, a list index, a grid axis's or a
    variant's name) keeps the models of the level above."""
    models: list[type[BaseModel]] = [SweepConfig]
    for part in loc[:-1]:
        below = [m for model in models for name, f in model.model_fields.items()
                 if part in (name, f.alias) for m in _models_in(f.annotation)]
        models = below or models
    return sorted({f.alias or name for model in models for name, f in model.model_fields.items()})


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    import difflib  # only for this message

    close = difflib.get_close_matches(str(loc[-1]), _keys_beside(loc), n=1)
    return f"did you mean '{close[0]}'? " if close else ""


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = []
    seen = set()
    for e in err.errors():
        key = _loc(e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        fix = _FIXES.get(e["type"], "see config/README.md for this key")
        if e["type"] == "extra_forbidden":
            text = f"unknown key '{key}'"
            hint = _did_you_mean(e["loc"])
            if hint:
                text, msg = f"{text} ({hint}fix: correct its spelling, or remove it)", "fix:"
        else:
            text = f"'{key}': {msg}"
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
    """A sweep file read with the workflow's checks (snakesweep/sweepfile.py) and validated."""
    from .sweepfile import display, read_sweep_file

    return validate_config(read_sweep_file(path), display(path))


def main(argv: list[str] | None = None) -> int:
    """`python -m snakesweep.config FILE...`: check sweep files as the workflow would read them
    (the line of a YAML mistake, unknown keys, bad values), without Snakemake. Exit 1 on a mistake."""
    import sys

    files = sys.argv[1:] if argv is None else argv
    if not files:
        print("usage: python -m snakesweep.config SWEEP_FILE...", file=sys.stderr)
        return 2
    status = 0
    for f in files:
        try:
            cfg = load_config_file(f)
        except ConfigError as err:
            print(err, file=sys.stderr)
            status = 1
        else:
            print(f"{f}: ok (sweep {cfg.sweep.name!r}, directory {cfg.sweep.directory}/)")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
