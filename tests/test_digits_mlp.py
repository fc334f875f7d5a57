"""The built-in workload, for real: torch on scikit-learn's digits, no download."""

from pathlib import Path

import pytest

from snakesweep.config import ConfigError
from snakesweep.workloads import load_workload, resolve_workload, validate_builtin_params


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("data")
    load_workload("digits_mlp").prepare(d)
    return d


def test_training_is_deterministic_on_cpu_and_learns(data_dir, tmp_path):
    w = load_workload("digits_mlp")
    params = {"lr": 0.05, "hidden": 32, "optimizer": "adam", "epochs": 3, "batch_size": 64, "seed": 1}
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        out.mkdir()
        runs.append(w.train(params, out, data_dir=data_dir, device="cpu"))
    assert runs[0]["history"] == runs[1]["history"]
    assert len(runs[0]["history"]) == 3 and runs[0]["history"][-1]["loss"] < runs[0]["history"][0]["loss"]
    metrics = w.evaluate(params, tmp_path / "a", data_dir=data_dir, device="cpu")
    assert metrics["eval_accuracy"] > 0.85  # 10 classes: chance is 0.1
    fn, batches, sizes = w.inference(params, tmp_path / "a", data_dir=data_dir, device="cpu", batch_size=100)
    assert sum(sizes) == 450 and fn(batches[0]).shape == (100, 10)


def test_another_seed_gives_another_run(data_dir, tmp_path):
    w = load_workload("digits_mlp")
    base = {"lr": 0.05, "hidden": 16, "epochs": 1, "seed": 0}
    (tmp_path / "0").mkdir(), (tmp_path / "1").mkdir()
    a = w.train(base, tmp_path / "0", data_dir=data_dir, device="cpu")
    b = w.train({**base, "seed": 1}, tmp_path / "1", data_dir=data_dir, device="cpu")
    assert a["train_loss"] != b["train_loss"]


def test_unknown_or_bad_parameters_are_config_errors():
    with pytest.raises(ConfigError, match="digits_mlp has no parameter 'lrate'"):
        validate_builtin_params("digits_mlp", {"lrate": 0.1, "seed": 0}, "my.yaml")
    with pytest.raises(ConfigError, match="'optimizer'"):
        validate_builtin_params("digits_mlp", {"optimizer": "rmsprop", "seed": 0}, "my.yaml")
    validate_builtin_params("user.py", {"anything": 1}, "my.yaml")  # user workloads check their own


def test_user_workload_files_are_resolved_and_checked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("mine.py").write_text("def train(p, o, **k):\n    return {}\n")
    ref = resolve_workload("mine.py")
    assert ref.path == Path("mine.py") and ref.key.startswith("mine-")
    with pytest.raises(TypeError, match="does not define evaluate, inference"):
        load_workload("mine.py")
    with pytest.raises(ConfigError, match="neither a built-in workload"):
        resolve_workload("missing.py")
