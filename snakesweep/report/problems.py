"""A report never fails a sweep whose trials are fine: an output that cannot be made is replaced
by a file that says why (no stale file from an earlier sweep stays in its place), and the reason
is recorded in ``results/report/problems.<rule>.json`` for the run's final lines."""

from __future__ import annotations

import html as _html
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snakesweep.errors import is_disk_error
from snakesweep.results import atomic_write_bytes, atomic_write_text, read_json_or_none
from snakesweep.table import csv_text

from .frame import as_frame
from .values import write_json


def problems_path(results: str | Path, rule: str) -> Path:
    """Where a report rule records the outputs it could not make: results/report/problems.<rule>.json."""
    return Path(results) / "report" / f"problems.{rule}.json"


def results_dir_of(output: str | Path) -> Path:
    """results/ from one of its report outputs (results/best.json, results/plots/x.png, ...)."""
    p = Path(output).parent
    return p.parent if p.name in ("plots", "report") else p


@dataclass
class Problems:
    """The outputs a report rule could not make, and why; always written (empty when all is
    well), so a problem from an earlier run never outlives its cause."""

    rule: str
    path: Path
    items: list[dict] = field(default_factory=list)

    def add(self, output: str | Path, message: str) -> None:
        self.items.append({"rule": self.rule, "output": str(output), "message": message})
        print(f"{self.rule}: {output}: {message}", file=sys.stderr)

    def write(self) -> None:
        write_json(self.path, {"rule": self.rule, "problems": self.items})


def error_reason(err: BaseException) -> str:
    tail = traceback.extract_tb(err.__traceback__)[-1:] if err.__traceback__ else []
    where = f" (at {Path(tail[0].filename).name}:{tail[0].lineno})" if tail else ""
    return f"{type(err).__name__}: {err}{where}"


def placeholder(path: str | Path, message: str) -> None:
    """Replace an output that could not be made by a file that says why (so no stale file from an
    earlier sweep stays in its place, and the rule's outputs exist)."""
    p = Path(path)
    text = f"report could not be made: {message}"
    if p.suffix == ".png":
        atomic_write_bytes(p, message_png(), fsync=False)
    elif p.suffix == ".json":
        write_json(p, {"schema_version": 2, "problem": text})
    elif p.suffix == ".csv":
        atomic_write_text(p, csv_text(as_frame([{"report_problem": text}])))
    else:
        atomic_write_text(p, f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Sweep answer</title></head>"
                             f"<body><p>{_html.escape(text)}</p></body></html>\n")


def message_png() -> bytes:
    """A small valid PNG (grey bar) for when matplotlib itself cannot draw: standard library only."""
    import struct
    import zlib

    w, h = 240, 24
    raw = b"".join(b"\x00" + bytes([200, 200, 200]) * w for _ in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def guarded(problems: Problems, output: str | Path, make: Callable[[], Any]) -> Any:
    """Run `make` (which writes `output`); on any error, record it and write a placeholder. A write
    the file system refuses (full, read-only) propagates: no placeholder could be written either,
    and the rule's main ends in one line for it (errors.one_line_on_disk_errors)."""
    try:
        return make()
    except Exception as err:  # noqa: BLE001 - a report must never fail the sweep
        if is_disk_error(err):
            raise
        problems.add(output, error_reason(err))
        try:
            placeholder(output, error_reason(err))
        except Exception:  # noqa: BLE001 - then at least no stale file
            try:
                Path(output).unlink(missing_ok=True)
            except OSError:
                pass
        return None


def read_problems(results: str | Path = "results") -> list[dict]:
    out: list[dict] = []
    for f in sorted((Path(results) / "report").glob("problems.*.json")):
        doc = read_json_or_none(f)
        if isinstance(doc, dict):
            out.extend(doc.get("problems") or [])
        else:
            out.append({"rule": f.stem, "output": str(f), "message": "unreadable problems file"})
    return out


def report_problem_lines(results: str | Path = "results") -> list[str]:
    """The lines an onsuccess/onerror handler prints when a report could not be made (empty when
    every report was made): which report, and why. The trials are not the cause."""
    items = read_problems(results)
    if not items:
        return []
    lines = [f"snakesweep: {len(items)} report output(s) could not be made (the trials are not affected; "
             "each file now says why):"]
    lines += [f"  {i.get('output')} ({i.get('rule')}): {i.get('message')}" for i in items]
    return lines
