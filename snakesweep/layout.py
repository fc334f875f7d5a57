"""What a checkout of the workflow consists of, for tools that run it elsewhere (tests, benchmarks)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

WORKFLOW_DIRS = ("workflow", "scripts", "snakesweep", "config", "profiles")
WORKFLOW_FILES = ("Snakefile", "environment.yml", "pyproject.toml")


def copy_workflow(dest: Path, root: Path) -> Path:
    """Copy what a user has after `git clone` (minus tests and docs) from `root` into `dest`."""
    for name in WORKFLOW_DIRS:
        shutil.copytree(root / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in WORKFLOW_FILES:
        shutil.copy(root / name, dest / name)
    return dest


# ---------------------------------------------------------------------------- a sweep's directory
# Everything one sweep writes lives under its own directory: results/<sweep.name>/ by default, or
# `sweep.dir`. Names and directories are restricted to characters that are safe in a path and in a
# shell word, so a name can neither escape results/ nor reach a shell.

RESULTS_ROOT = "results"
DEFAULT_SWEEP_FILE = "config/config.yaml"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
DIR_RE = re.compile(r"^/?[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*/?$")
PLAN_FILE = ("plan", "trials.json")


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a sweep's directory (None when it can)."""
    if not NAME_RE.match(name) or name in (".", ".."):
        return (f"{name!r} cannot name a sweep's directory (fix: use letters, digits, '.', '_' and '-', "
                "starting with a letter or digit, at most 100 characters)")
    return None


def dir_problem(path: str) -> str | None:
    """Why `path` cannot be a sweep's directory (None when it can)."""
    if not DIR_RE.match(path) or any(part in (".", "..") for part in path.strip("/").split("/")):
        return (f"{path!r} cannot be a sweep's directory (fix: a path of letters, digits, '.', '_', '-' "
                "and '/', with no '.' or '..' component)")
    return None


def sweep_dir(name: str, directory: str | None = None) -> str:
    """The directory of a sweep, as the rules name it (relative to where Snakemake runs)."""
    return (directory or f"{RESULTS_ROOT}/{name}").rstrip("/")


def sweep_dir_of_file(path: str | Path) -> str:
    """The directory the sweep file at `path` names, read without validating the rest of it."""
    from .errors import ConfigError
    from .sweepfile import read_sweep_file  # the checked reader: duplicate keys, bounded aliases

    raw = read_sweep_file(path)
    sweep = raw.get("sweep") if isinstance(raw, dict) else None
    name = sweep.get("name") if isinstance(sweep, dict) else None
    if not isinstance(name, str):
        raise ConfigError(f"{path}: 'sweep.name' is missing (fix: give the sweep a name)")
    directory = sweep.get("dir")
    problem = name_problem(name) or (dir_problem(directory) if isinstance(directory, str) else None)
    if problem:
        raise ConfigError(f"{path}: {problem}")
    return sweep_dir(name, directory if isinstance(directory, str) else None)


def find_sweep(arg: str | Path | None = None, cwd: str | Path = ".") -> tuple[Path, str]:
    """(the directory Snakemake runs in, the sweep's directory relative to it) for what a user
    names on a command line: nothing (the checkout's default sweep file), a sweep file, a sweep's
    directory, or a checkout (its default sweep)."""
    from .errors import ConfigError

    cwd = Path(cwd)
    target = Path(arg) if arg is not None else cwd
    if target.is_file():
        return cwd, sweep_dir_of_file(target)
    if not target.is_dir():
        raise ConfigError(f"{target}: no such sweep file or directory (fix: name a sweep file, e.g. "
                          f"{DEFAULT_SWEEP_FILE}, or a sweep's directory, e.g. {RESULTS_ROOT}/<name>)")
    if (target / DEFAULT_SWEEP_FILE).is_file() and not target.joinpath(*PLAN_FILE).exists():
        return target, sweep_dir_of_file(target / DEFAULT_SWEEP_FILE)
    # a sweep's directory: Snakemake ran in the nearest directory above it that holds .snakemake/
    # or a Snakefile (the checkout), else in the current directory
    absolute = target.resolve()
    for root in absolute.parents:
        if (root / ".snakemake").is_dir() or (root / "Snakefile").is_file():
            return root, str(absolute.relative_to(root))
    return cwd, str(target)
