"""A trial's parameters: dotted names (`optim.lr`, the grid's spelling) <-> nested mappings
(what a workload receives). Standard library only: every step process imports it."""

from __future__ import annotations

import math
from typing import Any

from .errors import ConfigError


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings in `fixed`/`experiments` become dotted keys, the grid's own spelling."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def nest(params: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys -> nested dicts, which is what a workload receives."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"parameter '{key}' clashes with a non-dict parameter '{part}'")
        node[leaf] = value
    return out


def non_finite(value: Any) -> bool:
    """NaN or infinity anywhere in a value: JSON cannot hold them, so no parameter or metric may."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return any(non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(non_finite(v) for v in value.values())
    return False
