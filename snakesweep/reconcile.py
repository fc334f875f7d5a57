"""The workflow's parse-time repairs of a sweep directory, the only readers here that write.

Run by the main Snakemake process before the DAG is built (workflow/rules/common.smk): a corrupt
result JSON is set aside so this run redoes it, and a complete, valid result under a killed run's
incomplete marker is kept (its marker removed), where Snakemake's rerun-incomplete would redo it.
Nothing is touched while a Snakemake instance holds the directory's lock.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from .bookkeeping import clear_db_markers, listdir, marker_files, remove_marker, snakemake_locks
from .results import CYCLE_FILE, STEPS, load_result


def _result_output(path: str, results: str) -> tuple[str, str] | None:
    """(trial, step) when `path` is one of our result JSONs: results/trials/T/{step}.json or
    results/trials/T/cycles/{step}.{c}.json; None for anything else (checkpoints, plan, ...)."""
    parts = Path(path).parts
    base = Path(results).parts
    if parts[: len(base)] != base or len(parts) < len(base) + 3 or parts[len(base)] != "trials":
        return None
    trial, rest = parts[len(base) + 1], parts[len(base) + 2:]
    if len(rest) == 1 and rest[0].removesuffix(".json") in STEPS and rest[0].endswith(".json"):
        return trial, rest[0].removesuffix(".json")
    if len(rest) == 2 and rest[0] == "cycles" and (m := CYCLE_FILE.match(rest[1])) and m.group("step") in STEPS:
        return trial, m.group("step")
    return None


def resolve_finished_markers(root: str | Path = ".", *, sweep_hash: str | None = None,
                             results: str = "results") -> list[str]:
    """Remove Snakemake's incomplete marker from every result JSON that was completely written
    before its run was killed (kill -9, Ctrl+C), so the next run keeps it instead of redoing it
    ("Forced execution" under rerun-incomplete). Returns the outputs whose marker was removed.

    Only our result JSONs qualify, and only when valid (:func:`check_result`: parses, this
    trial and step, current schema, status ok) and, given `sweep_hash`, written for that sweep.
    A marker on anything else (a half-written checkpoint, the plan, a corrupt result) stays:
    Snakemake's semantics are unchanged for them. Nothing is touched while a Snakemake instance
    holds the directory's lock (.snakemake/locks or the db backend's lock table): a running
    instance owns its markers; a lock left by a killed run is cleared by `snakemake --unlock`,
    after which the next run resolves the markers.

    Snakemake 9 consults only the marker for "incomplete" (persistence/file.py
    _filter_incomplete_keys; the metadata record is not read for it), so removing the marker
    file is the whole change for the file backend; for `--persistence-backend db` the row's
    `incomplete` flag is cleared the way Snakemake's own _unmark_incomplete does. The metadata
    record is left as it is: for a first run there is none (no trigger), and a record from an
    earlier run of the same output still lets Snakemake re-run it when its params really changed.
    """
    root = Path(root)
    smk = root / ".snakemake"
    if not smk.is_dir() or snakemake_locks(smk):
        return []
    resolved = []
    incomplete_dir = smk / "incomplete"
    for path, (marker_file, _m) in marker_files(smk).items():
        if _finished(root, path, results, sweep_hash):
            try:
                remove_marker(marker_file, incomplete_dir)
                resolved.append(path)
            except OSError:
                pass
    resolved += clear_db_markers(smk, lambda target: _finished(root, target, results, sweep_hash))
    return sorted(resolved)


def _finished(root: Path, path: str, results: str, sweep_hash: str | None) -> bool:
    rel = os.path.relpath(path, root) if os.path.isabs(path) else path
    which = _result_output(os.path.normpath(rel), results)
    if which is None:
        return False
    record, problem = load_result(root / rel, *which)
    return record is not None and (sweep_hash is None or record.get("sweep_hash") == sweep_hash)


def set_aside_corrupt_results(root: str | Path = ".", *, results: str = "results",
                              stamp: str | None = None) -> list[tuple[str, str, str]]:
    """Rename every corrupt result JSON to `<name>.corrupt-<time>` so that Snakemake, which
    redoes only missing outputs, redoes that step in this run. Returns (path, new path, why).

    Corrupt: does not parse, or is not a valid result of its trial and step (:func:`check_result`).
    The file is kept beside, for inspection. Nothing is touched while a Snakemake instance holds
    the directory's lock.
    """
    root = Path(root)
    if snakemake_locks(root / ".snakemake"):
        return []
    stamp = stamp or time.strftime("%Y%m%dT%H%M%S")
    moved = []
    trials_dir = root / results / "trials"
    for trial, tentry in listdir(trials_dir).items():
        if not tentry.is_dir():
            continue
        tdir = listdir(tentry.path)
        candidates = [(n, e, n.removesuffix(".json")) for n, e in tdir.items()
                      if n.endswith(".json") and n.removesuffix(".json") in STEPS]
        if "cycles" in tdir:
            for n, e in listdir(tdir["cycles"].path).items():
                m = CYCLE_FILE.match(n)
                if m and m.group("step") in STEPS:
                    candidates.append((os.path.join("cycles", n), e, m.group("step")))
        for name, entry, step in candidates:
            record, problem = load_result(entry.path, trial, step)
            if record is None:
                rel = os.path.join(results, "trials", trial, name)
                new = f"{rel}.corrupt-{stamp}"
                try:
                    os.replace(root / rel, root / new)
                    moved.append((rel, new, problem.replace(entry.path, rel, 1)))
                except OSError:
                    pass
    return moved


def reconcile(root: str | Path = ".", *, sweep_hash: str | None = None, results: str = "results",
              quiet: bool = False) -> dict[str, list]:
    """The workflow's parse-time pass (main process only, before the DAG is built): set corrupt
    results aside so this run redoes them, and keep finished results under a stale incomplete
    marker. Says what it did through Snakemake's logger. Never raises: a problem here must not
    stop a run; Snakemake's own rules then apply unchanged."""
    out: dict[str, list] = {"set_aside": [], "kept": []}
    try:
        out["set_aside"] = set_aside_corrupt_results(root, results=results)
        out["kept"] = resolve_finished_markers(root, sweep_hash=sweep_hash, results=results)
    except Exception as err:  # pragma: no cover - defensive
        _say(f"snakesweep: could not check results for resume ({type(err).__name__}: {err})")
        return out
    if quiet:
        return out
    for _rel, new, why in out["set_aside"]:
        _say(f"snakesweep: {why}; moved to {new}, this run redoes that step")
    if out["kept"]:
        shown = ", ".join(out["kept"][:3]) + (f" and {len(out['kept']) - 3} more" if len(out["kept"]) > 3 else "")
        _say(f"snakesweep: {len(out['kept'])} result(s) finished just before the last run stopped "
             f"are kept, not redone: {shown}")
    return out


def _say(text: str) -> None:
    try:
        from snakemake.logging import logger

        logger.info(text)
    except Exception:  # outside Snakemake
        print(text, file=sys.stderr)
