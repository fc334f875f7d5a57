"""Every file the sweep writes respects the umask (colleagues on a shared cluster directory can read
it): the atomic writers' temp files used to be created 0600 by tempfile.mkstemp."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

WRITE_ALL = """
import sys, pandas as pd
from snakesweep import report, results
from snakesweep.report import plots
d = sys.argv[1]
results.atomic_write_text(d + "/a.txt", "x")
results.atomic_write_json(d + "/b.json", {"a": 1})
report.write_json(d + "/c.json", {"a": None})
report.write_configs(pd.DataFrame([{"trial": "t", "status": "ok", "p": None, "seed": 0, "acc": 0.5}]),
                     ["p", "seed"], d + "/configs.csv")
plt = plots._plt()
plots.save_message(plt, d + "/e.png", "t", "m")
report.placeholder(d + "/f.png", "why")
"""


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writers_give_files_the_umask_mode(tmp_path, umask, mode):
    # a child process: the umask is process-wide, and pytest's own must not change
    code = f"import os; os.umask({umask}); exec({WRITE_ALL!r})"
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, cwd=REPO,
                   env={**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"})
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["a.txt", "b.json", "c.json", "configs.csv", "e.png", "f.png"]
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == mode, (f.name, oct(f.stat().st_mode))


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*")}


@pytest.mark.e2e
@pytest.mark.parametrize("umask,file_mode,dir_mode", [("022", 0o644, 0o755), ("002", 0o664, 0o775)])
def test_a_real_run_leaves_every_result_readable_as_the_umask_says(workdir, umask, file_mode, dir_mode):
    from conftest import toy_config

    cfg = toy_config(workdir, {"x": [0.5, 1.0], "depth": [3, None]})
    cfg["report"] = {"extra_objectives": [{"metric": "latency_ms_p95", "direction": "min"}]}
    path = workdir.write_config(cfg)
    run = subprocess.run(
        ["bash", "-c", f'umask {umask} && exec "$0" -m snakemake --cores 2 --configfile "$1"', sys.executable, str(path)],
        cwd=workdir.path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    modes = _modes(workdir.path / "results/toy")
    for must in ("summary.csv", "configs.csv", "plan/trials.json", "plan/trials.csv", "best.json",
                 "plots/heatmap.png", "report/answer.html"):
        assert must in modes, must
    assert any(p.endswith("/measure.json") for p in modes) and any(p.endswith("/train.json") for p in modes)
    wrong = {p: oct(m) for p, m in modes.items()
             if m != (dir_mode if (workdir.path / "results/toy" / p).is_dir() else file_mode)}
    assert wrong == {}
