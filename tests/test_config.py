"""The sweep file's schema: every mistake a user can make is named, with the key and a fix."""

import pytest

from snakesweep.config import ConfigError, SweepConfig, load_config_file, validate_config


def base(**sweep):
    return {"sweep": {"name": "s", "workload": "digits_mlp", "grid": {"lr": [0.1]}, **sweep}}


def error_of(raw) -> str:
    with pytest.raises(ConfigError) as exc:
        validate_config(raw, "my.yaml")
    return str(exc.value)


def test_defaults_fill_everything_but_the_sweep():
    cfg = validate_config(base(), "my.yaml")
    assert cfg.device == "auto"
    assert cfg.measure.repeats == 20 and cfg.measure.cycles == 1 and cfg.measure.min_window_s == 5.0
    assert cfg.timeout_s.train == 3600 and cfg.timeout_s.eval == 600
    assert cfg.sweep.seeds == [0] and cfg.sweep.max_trials == 1000
    assert cfg.report.objective.metric == "eval_accuracy"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (base(seedz=[1]), "my.yaml: unknown key 'sweep.seedz' (did you mean 'seeds'? fix: correct its spelling, or remove it)"),
        (base(seds=[1]), "unknown key 'sweep.seds' (did you mean 'seeds'? fix:"),
        ({**base(), "devise": "cpu"}, "unknown key 'devise' (did you mean 'device'? fix:"),
        ({**base(), "measure": {"repeat": 3}}, "unknown key 'measure.repeat' (did you mean 'repeats'? fix:"),
        (base(grid={"lr": {"log": [1e-3, 1], "nun": 3}}), "unknown key 'sweep.grid.lr.nun' (did you mean 'num'? fix:"),
        (base(search={"method": "random", "n_trial": 3}), "unknown key 'sweep.search.n_trial' (did you mean 'n_trials'? fix:"),
        ({**base(), "zzzzzz": 1}, "unknown key 'zzzzzz' (fix: remove it or correct its spelling)"),
        (base(max_trials=10**12), "'sweep.max_trials': Input should be less than or equal to 1000000 (fix: use a smaller value)"),
        ({**base(), "measure": {"repeat": 3}}, "unknown key 'measure.repeat'"),
        ({**base(), "device": "gpu"}, "'device': Input should be 'auto', 'cpu' or 'cuda'"),
        (base(grid={"lr": []}), "'sweep.grid.lr': List should have at least 1 item"),
        (base(grid={"lr": {"log": [1e-4, 1e-1], "num": 0}}), "'sweep.grid.lr.num': Input should be greater than or equal to 1"),
        (base(grid={"lr": {"log": [0, 1], "num": 3}}), "'sweep.grid.lr.log'"),
        (base(grid={"lr": "fast"}), "'sweep.grid.lr': a grid axis is a list of values"),
        (base(grid={"lr": {"lin": [0, 1]}}), "'sweep.grid.lr.num': Field required (fix: add it)"),
        (base(seeds=[]), "'sweep.seeds'"),
        ({"sweep": {"workload": "digits_mlp"}}, "'sweep.name': Field required (fix: add it)"),
        ({**base(), "timeout_s": {"train": "long"}}, "'timeout_s.train'"),
    ],
)
def test_mistakes_name_the_key_and_the_fix(raw, expected):
    message = error_of(raw)
    assert expected in message
    assert message.startswith("my.yaml: ")
    assert "fix:" in message


def test_all_mistakes_are_reported_at_once():
    message = error_of({**base(gird={}), "devices": "cpu"})
    assert "'sweep.gird'" in message and "'devices'" in message


def test_load_config_file_reports_unreadable_and_non_mapping_files(tmp_path):
    with pytest.raises(ConfigError, match="no such sweep file"):
        load_config_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sweep: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config_file(bad)
    bad.write_text("- just a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config_file(bad)


# --------------------------------------------------------------------------- bad inputs (issue 17)
# Each: one line naming the source, the key (or line) and the fix, in bounded time and memory
# (today's figures: the 10**12 log axis 26 s and 5.7 GB, the 10**7 lin axis 6.8 s and 880 MB,
# the alias bomb 80 s and 2.5 GB).

SWEEP_HEAD = "sweep:\n  name: bad\n  workload: digits_mlp\n"


def alias_bomb(levels: int = 8, width: int = 9) -> str:
    """`levels` nested levels of `width` under fixed: (9**8 = 43 million values from 13 lines)."""
    lines = [SWEEP_HEAD + "  grid: {lr: [0.1]}", "  fixed:", "    l0: &a0 [" + ",".join(["x"] * width) + "]"]
    lines += [f"    l{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def _hydra_sweep(value_len: int) -> str:
    return ("sweep:\n  name: bad\n  steps: [train]\n"
            "  workload: {command: {train: [python, app.py]}, args: hydra}\n"
            f"  grid: {{prompt: [{'a' * value_len}]}}\n")


BAD_FILES = [
    # (id, file content, what the message must hold)
    ("duplicate-key", SWEEP_HEAD + "  grid: {lr: [0.0, 1.0]}\n  grid: {lr: [5.0]}\n",
     "bad.yaml:5: the key 'grid' is written twice in one mapping (lines 4 and 5)"),
    ("duplicate-nested", SWEEP_HEAD + "  grid:\n    lr: [0.1]\n    lr: [0.2]\n",
     "bad.yaml:6: the key 'lr' is written twice in one mapping (lines 5 and 6)"),
    ("alias-bomb", alias_bomb(), "expands to more than 200,000 values (aliases counted each time they are used)"),
    ("alias-loop", SWEEP_HEAD + "  grid: {lr: [0.1]}\n  fixed: {a: &x [1, *x]}\n",
     "an alias refers to the value that contains it"),
    ("deep", SWEEP_HEAD + "  grid: {lr: [0.1]}\n  fixed: {a: " + "[" * 150 + "]" * 150 + "}\n",
     "nested deeper than 100 levels"),
    ("yaml-syntax", SWEEP_HEAD + "  grid: {lr: [0.1\n  seeds: [0]\n", "bad.yaml:5:"),
    ("tab-indent", "sweep:\n\tname: bad\n", "bad.yaml:2:1: not valid YAML"),
    ("not-utf8", (SWEEP_HEAD + "  grid: {opt: [caf\xe9]}\n").encode("latin-1"),
     "bad.yaml:4: not UTF-8 text (byte 0xe9) (fix: save the file as UTF-8)"),
    ("log-axis-1e12", SWEEP_HEAD + "  grid: {lr: {log: [0.001, 1], num: 1000000000000}}\n",
     "bad.yaml: the sweep expands to 1000000000000 trials, more than 'sweep.max_trials' = 1000"),
    ("lin-axis-1e7", SWEEP_HEAD + "  grid: {lr: {lin: [0.001, 1], num: 10000000}}\n",
     "the sweep expands to 10000000 trials, more than 'sweep.max_trials' = 1000"),
    ("union-of-grids", SWEEP_HEAD + "  grid: [{lr: [0.1]}, {lr: {lin: [0, 1], num: 1000000000}}]\n",
     "the sweep expands to 1000000001 trials"),
    ("misspelt-key", SWEEP_HEAD + "  grid: {lr: [0.1]}\n  seds: [0]\n",
     "bad.yaml: unknown key 'sweep.seds' (did you mean 'seeds'?"),
    ("metrics-dot", "sweep:\n  name: bad\n  steps: [train]\n"
     "  workload: {command: {train: [python, t.py, '{out_dir}']}, metrics: .}\n  grid: {x: [0.0]}\n",
     "bad.yaml: 'sweep.workload.metrics' is '.'; it is a file inside each step's {out_dir}, not a directory"),
    ("metrics-dir", "sweep:\n  name: bad\n  steps: [train]\n"
     "  workload: {command: {train: [python, t.py]}, metrics: out/}\n  grid: {x: [0.0]}\n",
     "'sweep.workload.metrics' is 'out/'; it is a file inside each step's"),
    ("metrics-escapes", "sweep:\n  name: bad\n  steps: [train]\n"
     "  workload: {command: {train: [python, t.py]}, metrics: a/../../m.json}\n  grid: {x: [0.0]}\n",
     "'sweep.workload.metrics' is 'a/../../m.json'; it is a file inside each step's"),
    ("hydra-200k", _hydra_sweep(200_000),
     "'sweep.workload.command.train' for trial "),
]


def check_sweep_file(path):
    """What the workflow checks at parse time, without Snakemake (common.smk's _load_sweep)."""
    from snakesweep.grid import expand, param_names
    from snakesweep.sweepfile import Sources
    from snakesweep.workloads import resolve_workload
    from snakesweep.workloads.command import check_command_workload

    source = Sources([str(path)])
    try:
        cfg = validate_config(source.load(), source)
        trials = expand(cfg.sweep, source)
        workload = resolve_workload(cfg.sweep.workload, source)
        if workload.command:
            check_command_workload(workload.command, cfg.sweep.steps, set(param_names(trials)), source,
                                   trials=[(t.id, t.params) for t in trials], sweep_dir=cfg.sweep.directory)
    except ConfigError as err:
        return source.blame(str(err))
    return None


@pytest.mark.parametrize(("content", "expected"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_bad_sweep_files_get_one_line_in_bounded_time_and_memory(tmp_path, monkeypatch, content, expected):
    import time
    import tracemalloc

    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.py").write_text("")
    path = tmp_path / "bad.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    tracemalloc.start()
    start = time.perf_counter()
    try:
        message = check_sweep_file(path)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message is not None, "accepted"
    assert expected in message
    assert message.startswith("bad.yaml") and "fix:" in message
    assert "\n" not in message and "Traceback" not in message
    assert elapsed < 20, f"{elapsed:.1f} s"
    assert peak < 200 * 2**20, f"{peak / 2**20:.0f} MB"


def test_the_argv_limit_names_the_real_limit_and_allows_long_values_below_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.yaml"
    path.write_text(_hydra_sweep(200_000))
    message = check_sweep_file(path)
    assert "is 200,009 bytes, over the 131,072 bytes Linux allows one argument (MAX_ARG_STRLEN)" in message
    assert "(fix: keep a long value in a file and pass its path as the parameter)" in message
    assert "first element" not in message
    path.write_text(_hydra_sweep(100_000))  # long, but exec takes it
    assert check_sweep_file(path) is None


def test_merge_keys_and_repeated_aliases_within_the_limit_are_fine(tmp_path):
    from snakesweep.sweepfile import read_sweep_file

    path = tmp_path / "ok.yaml"
    path.write_text(SWEEP_HEAD + "  grid: {lr: [0.1]}\n  fixed:\n    base: &b {a: 1, b: 2}\n"
                    "    over: {<<: *b, a: 3}\n    again: *b\n" + alias_bomb(4).split("fixed:\n")[1])
    raw = read_sweep_file(path)
    assert raw["sweep"]["fixed"]["over"] == {"a": 3, "b": 2}
    assert len(raw["sweep"]["fixed"]["l3"]) == 9 and raw["sweep"]["fixed"]["l3"][0][0][0][0] == "x"


def test_each_message_names_the_source_that_set_the_key(tmp_path, monkeypatch):
    from snakesweep.sweepfile import Sources

    monkeypatch.chdir(tmp_path)
    (tmp_path / "rf.yaml").write_text(SWEEP_HEAD + "  grid: {lr: [0.1]}\n")
    (tmp_path / "more.yaml").write_text("measure: {repeat: 3}\n")

    def message(files, entries):
        source = Sources(files, entries)
        with pytest.raises(ConfigError) as exc:
            validate_config(source.load(), source)
        return source.blame(str(exc.value))

    assert message(["rf.yaml"], ["devise=cpu"]) == (
        "--config devise=cpu: unknown key 'devise' (did you mean 'device'? fix: correct its spelling, or remove it)")
    assert message([str(tmp_path / "rf.yaml"), "more.yaml"], ["device=gpu"]).splitlines() == [
        "more.yaml: unknown key 'measure.repeat' (did you mean 'repeats'? fix: correct its spelling, or remove it)",
        "--config device=gpu: 'device': Input should be 'auto', 'cpu' or 'cuda' (fix: use one of the allowed values)",
    ]
    # a key no source sets is the files' to add
    (tmp_path / "noname.yaml").write_text("sweep: {workload: digits_mlp, grid: {lr: [0.1]}}\n")
    assert message(["noname.yaml"], ["device=cpu"]).startswith("noname.yaml: 'sweep.name': Field required")


def test_config_entries_keep_yaml_types_and_dotted_keys_nest(tmp_path, monkeypatch):
    from snakesweep.sweepfile import Sources, parse_config_entry

    monkeypatch.chdir(tmp_path)
    (tmp_path / "rf.yaml").write_text(SWEEP_HEAD + "  grid: {lr: [0.1]}\n  seeds: [0]\n")
    raw = Sources(["rf.yaml"], ["sweep={seeds: [0, 1, 2], fixed: {epochs: 2, tag: a}}", "device=cpu"]).load()
    cfg = validate_config(raw, "x")
    assert cfg.sweep.seeds == [0, 1, 2] and cfg.sweep.fixed == {"epochs": 2, "tag": "a"}
    assert cfg.sweep.grid == {"lr": [0.1]} and cfg.sweep.name == "bad" and cfg.device == "cpu"
    assert parse_config_entry("sweep.dir=out/x") == ("--config sweep.dir=out/x", {"sweep": {"dir": "out/x"}})
    assert parse_config_entry("sweep.seeds=[0,1]")[1] == {"sweep": {"seeds": [0, 1]}}
    # scalars typed as Snakemake types them (int, float, True/False, else text)
    assert [parse_config_entry(e)[1]["k"] for e in ("k=3", "k=1e-3", "k=True", "k=null", "k=")] == [3, 0.001, True, "null", None]
    with pytest.raises(ConfigError, match=r"--config sweep=\{a: 1, a: 2\}:1: the key 'a' is written twice"):
        parse_config_entry("sweep={a: 1, a: 2}")


def test_the_shipped_default_config_is_valid():
    from conftest import REPO

    cfg = load_config_file(REPO / "config" / "config.yaml")
    assert isinstance(cfg, SweepConfig)
    assert cfg.sweep.workload == "digits_mlp"


def test_a_fixed_key_clash_names_the_source_and_the_key(tmp_path, monkeypatch):
    """Two spellings of one fixed parameter are refused at validation, before any job, in the
    form of every other config error: the source (file or --config entry), 'sweep.fixed', the fix."""
    from snakesweep.sweepfile import Sources

    monkeypatch.chdir(tmp_path)
    (tmp_path / "rf.yaml").write_text(SWEEP_HEAD + "  grid: {lr: [0.1]}\n  fixed: {a.b: 1, a: {b: 2}}\n")
    (tmp_path / "ok.yaml").write_text(SWEEP_HEAD + "  grid: {lr: [0.1]}\n  fixed: {a.b: 1}\n")

    def message(files, entries=()):
        source = Sources(files, list(entries))
        with pytest.raises(ConfigError) as exc:
            validate_config(source.load(), source)
        return source.blame(str(exc.value))

    expected = ("'sweep.fixed': the keys 'a.b' and 'a' -> 'b' both become 'a.b' (fix: rename one of them; "
                "a dotted key and a nested mapping name the same thing)")
    assert message(["rf.yaml"]) == f"rf.yaml: {expected}"
    assert message(["ok.yaml"], ["sweep.fixed={a: {b: 2}}"]) == f"--config sweep.fixed={{a: {{b: 2}}}}: {expected}"
    assert validate_config(Sources(["ok.yaml"]).load(), "ok.yaml").sweep.fixed == {"a.b": 1}
    # the same in the entries of sweep.experiments and sweep.exclude, which name the entry
    (tmp_path / "ex.yaml").write_text(SWEEP_HEAD + "  grid: {lr: [0.1]}\n  experiments: [{lr: 0.2}, {a.b: 1, a: {b: 2}}]\n")
    assert message(["ex.yaml"]) == (
        "ex.yaml: 'sweep.experiments': entry 1: the keys 'a.b' and 'a' -> 'b' both become 'a.b' (fix: rename one of "
        "them; a dotted key and a nested mapping name the same thing)")
