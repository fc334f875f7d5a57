"""Bad inputs through real Snakemake (issue 16's config items, issue 17's "Bad inputs"): rc != 0,
one line naming the file (or --config entry), the key and the fix, no traceback, no job started,
in bounded time (today's figures: the alias bomb 80 s, the 10**12 log axis 26 s then MemoryError).
The same inputs, and more, are in tests/test_config.py's corpus without Snakemake."""

from __future__ import annotations

import time

import pytest
import yaml

from conftest import toy_config
from snakesweep.grid import trial_id
from test_config import alias_bomb

# `snakemake -n` starts in a few seconds; generous for a loaded 2-core machine, far below the
# figures above for the cases that were slow
BOUND_S = 120


def bad_run(workdir, *args):
    start = time.monotonic()
    run = workdir.snakemake("-n", *args, timeout=BOUND_S + 60)
    elapsed = time.monotonic() - start
    assert run.returncode != 0
    assert "Traceback" not in run.stderr and "Traceback" not in run.stdout
    lines = run.stderr.splitlines()
    assert "snakesweep: invalid sweep configuration" in lines, run.stderr[-2000:]
    message = lines[lines.index("snakesweep: invalid sweep configuration") + 1 :]
    assert len(message) == 1, message  # one line
    assert "fix:" in message[0]
    assert elapsed < BOUND_S, f"{elapsed:.0f} s"
    assert not (workdir.path / "results").exists()  # nothing ran
    return message[0]


def write(workdir, name, text):
    (workdir.path / name).write_text(text)
    return name


def toy_yaml(workdir, **sweep):
    cfg = toy_config(workdir, {"x": [0.0, 1.0]})
    cfg["sweep"].update({"steps": ["train", "eval"], **sweep})
    return yaml.safe_dump(cfg, sort_keys=False)


def test_a_config_entry_is_blamed_for_its_own_key(workdir):
    rf = write(workdir, "rf.yaml", toy_yaml(workdir))
    message = bad_run(workdir, "--configfile", rf, "--config", "devise=cpu")
    assert message == "--config devise=cpu: unknown key 'devise' (did you mean 'device'? fix: correct its spelling, or remove it)"


def test_a_misspelt_key_in_the_file_gets_did_you_mean(workdir):
    rf = write(workdir, "rf.yaml", toy_yaml(workdir).replace("  seeds:", "  seds:"))
    message = bad_run(workdir, "--configfile", rf, "--config", "device=cpu")
    assert message.startswith("rf.yaml: unknown key 'sweep.seds' (did you mean 'seeds'? fix:")


def test_duplicate_keys_name_both_lines(workdir):
    # Snakemake's loader keeps the second grid and drops the first, silently
    text = f"sweep:\n  name: dup\n  workload: {workdir.workload()}\n  grid: {{x: [0.0, 1.0]}}\n  grid: {{x: [5.0]}}\n"
    dup = write(workdir, "dup.yaml", text + "device: cpu\n")
    assert bad_run(workdir, "--configfile", dup).startswith(
        "dup.yaml:5: the key 'grid' is written twice in one mapping (lines 4 and 5)")


def test_an_alias_bomb_is_refused_quickly(workdir):
    bomb = write(workdir, "bomb.yaml", alias_bomb().replace("digits_mlp", workdir.workload()))
    assert "expands to more than 200,000 values" in bad_run(workdir, "--configfile", bomb)


def test_a_huge_grid_axis_is_counted_not_built(workdir):
    cfg = yaml.safe_load(toy_yaml(workdir))
    cfg["sweep"]["grid"] = {"x": {"log": [0.001, 1], "num": 10**12}}
    write(workdir, "huge.yaml", yaml.safe_dump(cfg, sort_keys=False))
    assert bad_run(workdir, "--configfile", "huge.yaml").startswith(
        "huge.yaml: the sweep expands to 2000000000000 trials, more than 'sweep.max_trials' = 1000")


@pytest.mark.parametrize(
    ("workload", "expected"),
    [
        ({"command": {"train": ["python", "t.py", "{out_dir}"], "eval": ["python", "t.py"]}, "metrics": "."},
         "cfg.yaml: 'sweep.workload.metrics' is '.'; it is a file inside each step's {out_dir}, not a directory"),
        ({"command": {"train": ["python", "t.py"], "eval": ["python", "t.py"]}, "args": "hydra"},
         "over the 131,072 bytes Linux allows one argument (MAX_ARG_STRLEN) (fix: keep a long value in a file"),
    ],
    ids=["metrics-dot", "hydra-200k-value"],
)
def test_command_workload_inputs_every_step_would_fail_on(workdir, workload, expected):
    (workdir.path / "t.py").write_text("")
    cfg = yaml.safe_load(toy_yaml(workdir, workload=workload))
    if workload.get("args") == "hydra":
        cfg["sweep"]["grid"] = {"prompt": ["a" * 200_000]}
    write(workdir, "cfg.yaml", yaml.safe_dump(cfg, sort_keys=False, width=10**7))
    assert expected in bad_run(workdir, "--configfile", "cfg.yaml")


def test_config_sets_nested_sweep_keys_with_yaml_types(workdir):
    """Snakemake's --config takes top-level keys only (`sweep.seeds=[0]` fails in its own
    parser, before the workflow: README's troubleshooting table); `sweep={...}` is merged key by
    key into the file's sweep, with YAML's types (a grid value stays a number)."""
    rf = write(workdir, "rf.yaml", toy_yaml(workdir, steps=["train"]))
    run = workdir.snakemake(
        "--cores", "1", "--configfile", rf, "--config", "sweep={seeds: [0, 1, 2], dir: out/x, grid: {x: [0.5]}}",
        check=True,
    )
    assert "Traceback" not in run.stderr
    rows = workdir.read_csv("out/x/summary.csv")
    assert sorted(int(r["seed"]) for r in rows) == [0, 1, 2]
    assert {float(r["x"]) for r in rows} == {0.5} and {r["status"] for r in rows} == {"ok"}
    # the number 0.5, not Snakemake's text '0.5': the ids are those of the typed parameters
    # (the plan job, which validates Snakemake's config again, agrees with the workflow)
    assert {r["trial"] for r in rows} == {trial_id(workdir.workload(), {"x": 0.5, "seed": s}) for s in (0, 1, 2)}
    assert trial_id(workdir.workload(), {"x": "0.5", "seed": 0}) not in {r["trial"] for r in rows}
    assert not (workdir.path / "results").exists()


@pytest.mark.parametrize("form", ["module", "command"])
def test_a_brace_in_a_workload_file_name_is_refused_by_name(workdir, form):
    """Snakemake reads braces in any input path as wildcards, even from an input function."""
    name = "w{x}.py"
    (workdir.path / name).write_text("")
    workload = name if form == "module" else {  # in an argv, `{x}` is a placeholder: a source names the file
        "command": {"train": ["python", "t.py"], "eval": ["python", "t.py"]}, "sources": [name]}
    (workdir.path / "t.py").write_text("")
    write(workdir, "cfg.yaml", toy_yaml(workdir, workload=workload))
    message = bad_run(workdir, "--configfile", "cfg.yaml")
    key = "sweep.workload" if form == "module" else "sweep.workload.sources"
    assert message == (f"cfg.yaml: '{key}' names the file 'w{{x}}.py', whose braces Snakemake would read as "
                       "wildcards (fix: rename it without '{' and '}')")
