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
        (base(seedz=[1]), "my.yaml: unknown key 'sweep.seedz' (fix: remove it or correct its spelling)"),
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
    with pytest.raises(ConfigError, match="cannot read the sweep file"):
        load_config_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sweep: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config_file(bad)
    bad.write_text("- just a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config_file(bad)


def test_the_shipped_default_config_is_valid():
    from conftest import REPO

    cfg = load_config_file(REPO / "config" / "config.yaml")
    assert isinstance(cfg, SweepConfig)
    assert cfg.sweep.workload == "digits_mlp"
