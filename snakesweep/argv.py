"""The step processes' command lines (scripts/<step>.py -> supervise -> steps), parsed without argparse.

The rules write these command lines, people do not: argparse's help machinery (gettext, shutil
with bz2/lzma, a formatter per option) cost ~10-15 ms of a ~140 ms toy job, 900 times in a
300-trial sweep (benchmarks/bench_orchestration.py). Standard library only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import SimpleNamespace

Kind = Callable[[str], object] | str  # a converter, or "list" for an option taking every value up to the next option


def parse(prog: str, argv: list[str], options: dict[str, Kind], *, required: tuple[str, ...] = (),
          defaults: dict[str, object] | None = None, positional: str | None = None,
          choices: tuple[str, ...] = (), keep_unknown: bool = False) -> tuple[SimpleNamespace, list[str]]:
    """(the options as attributes, what was not ours when `keep_unknown`); exits with status 2
    and a usage line on a mistake, as argparse does."""
    values: dict[str, object] = {name.replace("-", "_"): None for name in options}
    values.update(defaults or {})
    if positional:
        values[positional] = None
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, inline = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if name in options:
            kind, key = options[name], name.replace("-", "_")
            if kind == "list":
                taken = [inline] if eq else []
                while i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                    i += 1
                    taken.append(argv[i])
                values[key] = taken
            else:
                if not eq and i + 1 >= len(argv):
                    _fail(prog, f"argument --{name}: expected one argument")
                raw = inline if eq else argv[i + 1]
                i += 0 if eq else 1
                try:
                    values[key] = kind(raw)
                except ValueError:
                    _fail(prog, f"argument --{name}: invalid value {raw!r}")
        elif positional and values[positional] is None and not arg.startswith("--"):
            if choices and arg not in choices:
                _fail(prog, f"argument {positional}: invalid choice {arg!r} (choose from {', '.join(choices)})")
            values[positional] = arg
        elif keep_unknown:
            rest.append(arg)
        else:
            _fail(prog, f"unrecognized arguments: {arg}")
        i += 1
    missing = [f"--{n}" for n in required if values.get(n.replace("-", "_")) is None]
    if positional and values[positional] is None:
        missing.insert(0, positional)
    if missing:
        _fail(prog, f"the following arguments are required: {', '.join(missing)}")
    return SimpleNamespace(**values), rest


def _fail(prog: str, message: str) -> None:
    print(f"usage: {prog} ...\n{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(2)
