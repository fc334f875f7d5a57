"""A trial's parameters: dotted names (`optim.lr`, the grid's spelling) <-> nested mappings
(what a workload receives). Standard library only: every step process imports it."""

from __future__ import annotations

import math
from typing import Any

from .errors import ConfigError


class KeyClash(ConfigError):
    """Two keys of one mapping flatten to the same dotted name (`{"a.b": 1, "a": {"b": 2}}`):
    keeping either value would drop the other silently."""

    def __init__(self, name: str, first: str, second: str) -> None:
        self.name, self.first, self.second = name, first, second
        super().__init__(
            f"the keys {first} and {second} both become '{name}' (fix: rename one of them; a dotted "
            "key and a nested mapping name the same thing)"
        )


def _spelling(path: tuple[str, ...]) -> str:
    """How a user wrote a key: 'a.b' for a dotted key, 'a' -> 'b' for a nested one."""
    return " -> ".join(f"'{p}'" for p in path)


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings in `fixed`/`experiments` (and a command's metrics.json) become dotted
    keys, the grid's own spelling. Two spellings of one name raise KeyClash, naming both."""
    out: dict[str, Any] = {}
    origin: dict[str, tuple[str, ...]] = {}

    def walk(path: tuple[str, ...], mapping: dict[str, Any]) -> None:
        for key, value in mapping.items():
            here = (*path, str(key))
            if isinstance(value, dict):
                walk(here, value)
                continue
            name = prefix + ".".join(here)
            if name in out:
                raise KeyClash(name, _spelling(origin[name]), _spelling(here))
            out[name] = value
            origin[name] = here

    walk((), params)
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
