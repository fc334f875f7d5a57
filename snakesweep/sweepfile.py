"""Reading a sweep file ourselves, with the checks a plain YAML loader skips, and knowing which
source (a sweep file or a `--config` entry) set each key, so a message can blame the right one.

Snakemake has parsed every `--configfile` before the workflow runs (it fails on its own, with its
own message, for a missing file, a directory, a file that is not UTF-8 or not YAML: see the README's
troubleshooting table). The workflow then reads the same files again here, and refuses:

- a key written twice in one mapping (YAML keeps the last one silently): both lines are named;
- a file that expands beyond :data:`MAX_NODES` values, keys and collections, each use of an alias
  counted again (an "alias bomb" of 8 nested levels of 9 is 43 million values built from 80 lines):
  counted on the parsed node graph, each node once, before anything is built;
- nesting deeper than :data:`MAX_DEPTH` levels, and an alias that contains itself;
- a file over :data:`MAX_BYTES`.

`--config` entries are parsed here too (Snakemake's own raw strings, `workflow.config_settings.
config_args`): a value written as YAML (`--config "sweep={seeds: [0, 1, 2]}"`) keeps its types
(Snakemake's parser reads nested values as strings), and a dotted key (`sweep.dir=x`, where a
caller allows one) sets the nested key. Every source is merged as Snakemake merges them: mappings
key by key, anything else replaced.

Imports: the standard library and PyYAML (lazily), and errors.ConfigError.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .errors import ConfigError

MAX_BYTES = 10 * 1024 * 1024
MAX_NODES = 200_000  # values, keys and collections, each use of an alias counted again
MAX_DEPTH = 100
SWEEP_FIX = "(fix: see config/README.md for the sweep file's keys)"


def _loader_class():
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class CheckingLoader(base):  # type: ignore[misc, valid-type]
        """SafeLoader that refuses a key written twice in one mapping."""

        def construct_mapping(self, node, deep=False):  # noqa: ANN001, ANN201
            seen: dict[Any, int] = {}
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *base` may be overridden by the mapping's own keys
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # an unhashable key: the constructor reports it
                line = key_node.start_mark.line + 1
                if first is not None:
                    raise _Duplicate(key, first, line)
                seen[key] = line
            return super().construct_mapping(node, deep=deep)

    return CheckingLoader


class _Duplicate(Exception):
    def __init__(self, key: Any, first: int, second: int) -> None:
        super().__init__(key, first, second)
        self.key, self.first, self.second = key, first, second


def _expanded_size(root: Any, where: str) -> None:
    """Refuse a node graph that expands beyond MAX_NODES, nests beyond MAX_DEPTH, or loops.

    Each distinct node is visited once (its expanded size memoised), so this is linear in the
    file, not in what its aliases expand to."""
    import yaml

    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if depth > MAX_DEPTH:
            raise ConfigError(
                f"{where}:{node.start_mark.line + 1}: nested deeper than {MAX_DEPTH} levels "
                "(fix: a sweep file needs a few levels; flatten this value)"
            )
        if key in active:
            raise ConfigError(
                f"{where}:{node.start_mark.line + 1}: an alias refers to the value that contains it "
                "(fix: a sweep file cannot hold a recursive value; remove the alias)"
            )
        total = 1
        if isinstance(node, (yaml.SequenceNode, yaml.MappingNode)):
            active.add(key)
            children = node.value if isinstance(node, yaml.SequenceNode) else [n for kv in node.value for n in kv]
            for child in children:
                total += size(child, depth + 1)
                if total > MAX_NODES:
                    raise ConfigError(
                        f"{where}:{node.start_mark.line + 1}: this value expands to more than "
                        f"{MAX_NODES:,} values (aliases counted each time they are used), the most a "
                        "sweep file may hold (fix: write the values out, or list fewer)"
                    )
            active.discard(key)
        sizes[key] = total
        return total

    size(root, 0)


def _line_of(data: bytes, offset: int) -> int:
    return data[:offset].count(b"\n") + 1


def display(path: str | os.PathLike[str]) -> str:
    """A path as the user wrote it on the command line (Snakemake makes --configfile paths
    absolute); else relative to the current directory when it lies below it."""
    import sys

    text = os.fspath(path)
    if os.path.isabs(text):
        for arg in sys.argv[1:]:
            if arg and not arg.startswith("-") and os.path.abspath(arg) == text:
                return arg
        rel = os.path.relpath(text)
        if not rel.startswith(".."):
            return rel
    return text


def parse_yaml(text: str | bytes, where: str) -> Any:
    """One YAML document, checked (duplicate keys, size, depth, loops); ConfigError naming
    `where`, the line and the fix for anything wrong."""
    import yaml

    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ConfigError(
                f"{where}:{_line_of(text, err.start)}: not UTF-8 text (byte {text[err.start]:#04x}) "
                "(fix: save the file as UTF-8)"
            ) from None
    loader = _loader_class()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, where)
        return loader.construct_document(node)
    except _Duplicate as dup:
        raise ConfigError(
            f"{where}:{dup.second}: the key {dup.key!r} is written twice in one mapping (lines {dup.first} "
            f"and {dup.second}); YAML would keep only the last (fix: keep one of them, or merge their values)"
        ) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        what = " ".join(str(p) for p in (err.context, err.problem) if p)
        raise ConfigError(
            f"{where}{at}: not valid YAML: {' '.join(what.split())} (fix: check the brackets, quotes and "
            "indentation on that line and the one before it; indent with spaces, not tabs)"
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: not valid YAML: {' '.join(str(err).split())} {SWEEP_FIX}") from None
    except RecursionError:
        raise ConfigError(
            f"{where}: nested too deeply to read (fix: a sweep file needs a few levels; flatten it)"
        ) from None
    finally:
        loader.dispose()


def read_sweep_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The sweep file's mapping, read with the checks above; ConfigError (one line) otherwise."""
    where = display(path)
    p = Path(path)
    if p.is_dir():
        raise ConfigError(
            f"{where}: is a directory, not a sweep file (fix: name a YAML file, e.g. {where.rstrip('/')}/config.yaml)"
        )
    try:
        with open(p, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(
            f"{where}: no such sweep file (fix: check the path; it is relative to the directory you run snakemake in)"
        ) from None
    except OSError as err:
        raise ConfigError(f"{where}: cannot read the sweep file ({err.strerror}) (fix: check its permissions)") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(
            f"{where}: larger than {MAX_BYTES // (1024 * 1024)} MB, the most a sweep file may be "
            "(fix: is it the right file? a sweep file lists parameters, not data)"
        )
    raw = parse_yaml(data, where)
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: the sweep file must be a mapping with a 'sweep:' key (fix: start it with `sweep:`)")
    return raw


# --------------------------------------------------------------------------- --config entries


def _scalar(text: str) -> Any:
    """A scalar as Snakemake's --config parser types it: int, float, True/False, else the text."""
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(text, text)


def parse_config_entry(entry: str) -> tuple[str, dict[str, Any]]:
    """One `KEY=VALUE` --config entry as (label, mapping); a dotted KEY nests, a VALUE written
    as a YAML mapping or list keeps its types."""
    label = "--config " + (entry if len(entry) <= 60 else entry[:57] + "...")
    key, sep, text = entry.partition("=")
    if not sep or not key:
        raise ConfigError(f"{label}: not KEY=VALUE (fix: e.g. --config device=cpu)")
    value: Any
    if text == "":
        value = None
    else:
        value = _scalar(text)
        if isinstance(value, str) and text.lstrip()[:1] in ("{", "["):
            parsed = parse_yaml(text, label)
            if isinstance(parsed, (dict, list)):
                value = parsed
    for part in reversed(key.split(".")):
        value = {part: value}
    return label, value


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged into a copy of `base` as Snakemake merges configs: mappings key by key."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


# --------------------------------------------------------------------------- sources


_KEY_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_QUOTED_KEY = re.compile(r"'([A-Za-z_][\w\-]*(?:(?:\.[\w\-]+)|(?:\[\d+\]))*)'")


def _key_parts(key: str) -> list[str | int]:
    parts: list[str | int] = []
    for name, index in _KEY_PART.findall(key):
        parts.append(int(index) if index else int(name) if name.isdigit() else name)
    return parts


def _sets(layer: Any, parts: list[str | int]) -> bool:
    """Whether `layer` gives a value at `parts` or at a prefix of them (replacing what is below)."""
    node = layer
    for depth, part in enumerate(parts):
        if isinstance(node, dict):
            if part not in node and str(part) not in node:
                return False
            node = node[part] if part in node else node[str(part)]
        elif depth == 0:
            return False
        else:
            return True  # the layer set a list or a scalar above the key
    return True


class Sources(str):
    """The sweep's sources in merge order: its file(s), then each --config entry.

    As a string it is the label messages start with (the files, joined by ' + '), so it passes
    for the `source` every check takes; :meth:`blame` then names the source that set each key."""

    files: list[str]
    entries: list[str]

    def __new__(cls, files: list[str], entries: list[str] | None = None) -> Sources:
        shown = [display(f) for f in files]
        self = super().__new__(cls, " + ".join(shown))
        self.files = shown
        self.entries = [str(e) for e in entries or []]
        self._layers: list[tuple[str, dict[str, Any]]] = []
        return self

    def load(self) -> dict[str, Any]:
        """Every source read (checked) and merged; ConfigError naming the file or entry."""
        self._layers = [(f, read_sweep_file(f)) for f in self.files]
        self._layers += [parse_config_entry(e) for e in self.entries]
        raw: dict[str, Any] = {}
        for _label, layer in self._layers:
            raw = merge(raw, layer)
        return raw

    def uses_yte(self) -> bool:
        return any("__use_yte__" in layer for _label, layer in self._layers)

    def of(self, key: str) -> str:
        """The source that set `key` (e.g. 'sweep.grid.lr', 'sweep.exclude[0]'): the last one
        giving it a value, else all the files (a missing key is the files' to add)."""
        parts = _key_parts(key)
        for label, layer in reversed(self._layers):
            if parts and _sets(layer, parts):
                return label
        return str(self)

    def blame(self, message: str) -> str:
        """Each line `<files>: ... 'key' ...` of a message re-labelled with the source of its key."""
        prefix = f"{self}: "
        out = []
        for line in message.splitlines():
            if line.startswith(prefix) and len(self._layers) > 1:
                found = _QUOTED_KEY.search(line, len(prefix))
                if found:
                    line = f"{self.of(found.group(1))}: {line[len(prefix):]}"
            out.append(line)
        return "\n".join(out)
