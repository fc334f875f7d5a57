"""The cell format of summary.csv and configs.csv, its one owner: how a value is written into a
cell and read back. collect (summary.csv's producer) and the reports (its consumers) both use it.
Standard library only at import time; the tables are pandas DataFrames (csv_text imports pandas when called)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def py_value(v: Any) -> Any:
    """A cell as a plain JSON value: numpy scalars unboxed; NaN/NA (pandas' 'missing') -> None."""
    if v is None or isinstance(v, (str, bool, list, dict)):
        return v
    if type(v).__name__ in ("NAType", "NaTType"):
        return None
    if hasattr(v, "item") and not isinstance(v, (int, float)):
        try:
            v = v.item()
        except (AttributeError, ValueError):
            return v
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, tuple):
        return list(v)
    return v


def param_cell(v: Any) -> str:
    """How a parameter value is written in every CSV and table: its JSON text, strings as-is.

    None -> ``null``, True -> ``true``, 0.001 -> ``0.001``, [1, 2] -> ``[1, 2]``, "a,b" -> ``a,b``
    (the CSV writer quotes it). Never blank: a blank cell would hide a ``null``.
    """
    v = py_value(v)
    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True, default=str)


def parse_value(s: Any) -> Any:
    """A CSV parameter cell back to a JSON value where it reads as one (``null``, ``true``, 3,
    [1, 2]), else the string; used only when the plan (the typed source) is not available."""
    if not isinstance(s, str):
        return py_value(s)
    if s == "":
        return None
    if s in ("True", "False"):
        return s == "True"
    if s in ("null", "true", "false") or s[:1] in "[{-0123456789":
        try:
            return json.loads(s)
        except ValueError:
            pass
    try:
        return float(s) if s.lower() not in ("nan", "inf", "-inf", "infinity") else s
    except ValueError:
        return s


def csv_text(table: pd.DataFrame, param_names: Sequence[str] = ()) -> str:
    """A table as CSV text: parameters as :func:`param_cell`, missing values empty, floats
    with full precision (repr), labels as they are."""
    import numpy as np
    import pandas as pd

    params = {*param_names, "best_level"}
    conv = [i for i, (c, dt) in enumerate(zip(table.columns, table.dtypes)) if c in params or pd.api.types.is_object_dtype(dt)]
    if not conv:
        return table.to_csv(index=False, na_rep="", lineterminator="\n", float_format=None)
    # every converted cell in one pass, into one block: a frame's columns set one at a time cost
    # minutes for a 20,000-metric summary (issue 17)
    values = table.iloc[:, conv].to_numpy(dtype=object)
    cells = np.empty(values.shape, dtype=object)
    for j, i in enumerate(conv):  # fromiter keeps a list cell one object (numpy would unpack it)
        cell = param_cell if table.columns[i] in params else _object_cell
        cells[:, j] = np.fromiter(map(cell, values[:, j]), dtype=object, count=len(values))
    done = set(conv)
    rest = [i for i in range(table.shape[1]) if i not in done]
    out = pd.concat([pd.DataFrame(cells, columns=conv, dtype=object),
                     table.iloc[:, rest].reset_index(drop=True).set_axis(rest, axis=1)], axis=1)
    out = out[list(range(table.shape[1]))].set_axis(table.columns, axis=1)
    return out.to_csv(index=False, na_rep="", lineterminator="\n", float_format=None)


def _object_cell(v: Any) -> Any:
    """An object cell of :func:`csv_text`: empty for missing, floats with full precision (repr)."""
    p = py_value(v)
    return "" if p is None else (repr(v) if isinstance(p, float) else p)
