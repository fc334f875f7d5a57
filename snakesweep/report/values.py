"""Report-only value helpers: parameter levels by their JSON identity and in a stable order,
floats from cells, objectives, and the writers of the report's own JSON and CSV files."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snakesweep.results import atomic_write_text
from snakesweep.table import csv_text, py_value

if TYPE_CHECKING:
    import pandas as pd


SEED = "seed"
_METRIC_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
# Metrics with a known range: [0, 1] for accuracy-like scores, >= 0 for costs.
_UNIT_RE = re.compile(r"(accuracy|(^|_)(acc|f1|precision|recall|auc|auroc|iou|dice|top\d+)($|_))", re.I)
_NONNEG_RE = re.compile(
    r"((^|_)(latency|throughput|energy|time|mem|memory|duration|window|loss|mse|mae|rmse)($|_)|_s$|_ms$|_mb$|_sps$)", re.I
)
Objective = tuple[str, str]  # (metric, "max" | "min")


def is_number(v: Any) -> bool:
    v = py_value(v)
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def level_key(v: Any) -> str:
    """The identity of a parameter level: its canonical JSON (3 and 3.0 are one level)."""
    from snakesweep.grid import canonical_json  # lazy: grid loads pydantic, which the end-of-run summary never needs

    v = py_value(v)
    try:
        return canonical_json(v)
    except (TypeError, ValueError):
        return json.dumps(str(v))


def level_sort_key(v: Any) -> tuple:
    """Deterministic order of mixed-type levels: numbers first by value, then the rest by JSON text."""
    v = py_value(v)
    if is_number(v):
        return (0, float(v), "")
    return (1, 0.0, json.dumps(v, sort_keys=True, default=str))


def sorted_levels(values: Iterable[Any]) -> list[Any]:
    """Distinct levels (by :func:`level_key`), in :func:`level_sort_key` order."""
    seen: dict[str, Any] = {}
    for v in values:
        seen.setdefault(level_key(v), py_value(v))
    return sorted(seen.values(), key=level_sort_key)


def to_float(value: Any) -> float | None:
    """A cell as a float; None for empty, unparsable, boolean or NaN cells."""
    value = py_value(value)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        f = float(value)
    else:
        s = str(value).strip()
        if not s or s in ("True", "False"):
            return None
        try:
            f = float(s)
        except ValueError:
            return None
    return None if math.isnan(f) else f


def config_params(param_names: Sequence[str]) -> list[str]:
    """The parameters that identify a configuration: every parameter except the seed."""
    return [p for p in param_names if p != SEED]


def check_objective(metric: str, direction: str) -> Objective:
    if not _METRIC_RE.match(metric or ""):
        raise ValueError(f"objective metric {metric!r} is not a metric column name")
    if direction not in ("max", "min"):
        raise ValueError(f"objective direction {direction!r}: use 'max' or 'min'")
    return (metric, direction)


def parse_objectives(spec: str) -> list[Objective]:
    """'energy_j_per_sample:min,latency_ms_p95:min' -> [(metric, direction), ...]."""
    out = []
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        metric, _, direction = part.rpartition(":")
        out.append(check_objective(metric, direction))
    return out


def known_range(metric: str, values: Iterable[float] = ()) -> tuple[float | None, float | None]:
    """A metric's known range from its name: [0, 1] for accuracy-like scores (accuracy, f1, auc,
    precision, recall, iou), [0, inf) for costs (latency, throughput, energy, time, memory,
    loss). A guess from a name is only trusted while every observed value lies inside it
    (an accuracy reported in percent gets no upper bound)."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if _UNIT_RE.search(metric) and all(0.0 <= v <= 1.0 for v in vals):
        return (0.0, 1.0)
    if (_UNIT_RE.search(metric) or _NONNEG_RE.search(metric)) and all(v >= 0.0 for v in vals):
        return (0.0, None)
    return (None, None)


# ---------------------------------------------------------------------------- files


def write_table(path: str | Path, table: pd.DataFrame, param_names: Sequence[str] = ()) -> None:
    atomic_write_text(path, csv_text(table, param_names))


def _clean_json(o: Any) -> Any:
    o = py_value(o)
    if isinstance(o, float) and math.isinf(o):
        return None
    if isinstance(o, dict):
        return {str(k): _clean_json(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean_json(v) for v in o]
    return o


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(_clean_json(obj), indent=2, default=str) + "\n")


def read_csv(path: str | Path) -> list[dict]:
    """A CSV as text rows (for tests and tools; the reports read through pandas)."""
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))
