"""`snakemake --profile slurm` from the repository root, after `python -m snakesweep.profile install`
(snakesweep/profile.py links Snakemake's user profile directory to the checkout's profiles/slurm).

Real Snakemake with XDG_CONFIG_HOME pointed at a temp dir; the dry run resolves the profile and
its Slurm executor (installed in the venv) without contacting a cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import job_counts, toy_config


def _env(xdg) -> dict:
    return dict(os.environ, XDG_CONFIG_HOME=str(xdg), PYTHONDONTWRITEBYTECODE="1")


def _install(workdir, xdg, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakesweep.profile", "install", *args], cwd=workdir.path,
                          capture_output=True, text=True, env=_env(xdg))


@pytest.mark.e2e
def test_profile_slurm_short_form_works_after_the_install(workdir, tmp_path):
    xdg = tmp_path / "xdg"
    cfg = workdir.write_config(toy_config(workdir, {"x": [0.0, 1.0]}, sweep={"seeds": [0]}))
    before = workdir.snakemake("--profile", "slurm", "-n", "--configfile", str(cfg), env=_env(xdg))
    assert before.returncode != 0 and "no profile.yaml (or config.yaml) found" in before.stderr

    inst = _install(workdir, xdg)
    assert inst.returncode == 0, inst.stderr
    link = xdg / "snakemake" / "slurm"
    assert link.is_symlink() and link.resolve() == (workdir.path / "profiles" / "slurm").resolve()
    assert _install(workdir, xdg).returncode == 0  # installing again is a no-op

    dry = workdir.snakemake("--profile", "slurm", "-n", "--configfile", str(cfg), env=_env(xdg), check=True)
    out = dry.stdout + dry.stderr
    assert "Using profiles slurm and workflow specific profile profiles/default" in out
    # the profile's settings apply: its placeholders and per-rule memory reach the jobs
    assert "slurm_partition=CHANGE_ME" in out and "mem_mb=2000" in out
    assert job_counts(dry)["train"] == 2

    # an edit of the checkout's profile applies through the link
    conf = workdir.path / "profiles" / "slurm" / "config.yaml"
    conf.write_text(conf.read_text().replace('slurm_partition: "CHANGE_ME"', 'slurm_partition: "short"'))
    dry2 = workdir.snakemake("--profile", "slurm", "-n", "--configfile", str(cfg), env=_env(xdg), check=True)
    assert "slurm_partition=short" in dry2.stdout + dry2.stderr


def test_install_leaves_another_profile_alone(workdir, tmp_path):
    xdg = tmp_path / "xdg"
    other = tmp_path / "their-profile"
    other.mkdir()
    (xdg / "snakemake").mkdir(parents=True)
    (xdg / "snakemake" / "slurm").symlink_to(other)
    inst = _install(workdir, xdg)
    assert inst.returncode == 1 and "is already a link to" in inst.stderr and "--force" in inst.stderr
    assert os.readlink(xdg / "snakemake" / "slurm") == str(other)
    assert _install(workdir, xdg, "--name", "slurm-snakesweep").returncode == 0
    assert (xdg / "snakemake" / "slurm-snakesweep").resolve() == (workdir.path / "profiles" / "slurm").resolve()
    assert _install(workdir, xdg, "--force").returncode == 0
    assert (xdg / "snakemake" / "slurm").resolve() == (workdir.path / "profiles" / "slurm").resolve()
