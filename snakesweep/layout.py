"""What a checkout of the workflow consists of, for tools that run it elsewhere (tests, benchmarks)."""

from __future__ import annotations

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
