"""Unit tests of the checkpoint continuation (issue 19): the built-in's resume, the command
placeholder, the module signature check, and the trial id with a parent."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from snakesweep.grid import trial_id
from snakesweep.steps import _accepts_resume
from snakesweep.workloads import code_digest
from snakesweep.workloads.command import build_argv


def test_digits_continued_from_its_checkpoint_equals_an_uninterrupted_run(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from snakesweep.workloads import digits_mlp

    data = tmp_path / "data"
    data.mkdir()
    digits_mlp.prepare(data)
    params = {"lr": 0.05, "hidden": 16, "optimizer": "adam", "epochs": 3, "seed": 1}
    dirs = {name: tmp_path / name for name in ("whole", "first", "rest")}
    for d in dirs.values():
        d.mkdir()
    whole = digits_mlp.train(params, dirs["whole"], data_dir=data, device="cpu")
    first = digits_mlp.train({**params, "epochs": 1}, dirs["first"], data_dir=data, device="cpu")
    rest = digits_mlp.train(params, dirs["rest"], data_dir=data, device="cpu", resume_dir=dirs["first"])
    assert (first["epochs_run"], rest["epochs_run"], rest["epochs_from"]) == (1, 2, 1)
    assert rest["history"] == whole["history"]  # optimizer state and data order carried over
    assert rest["train_loss"] == whole["train_loss"]
    with pytest.raises(ValueError, match="budget must grow"):
        digits_mlp.train({**params, "epochs": 1}, tmp_path, data_dir=data, device="cpu", resume_dir=dirs["first"])


def test_the_resume_element_is_left_out_at_a_fresh_start():
    w = SimpleNamespace(command={"train": ["python", "t.py", "--e={epochs}", "--resume={resume_dir}"]}, args="none")
    ctx = {"out_dir": "o", "data_dir": "d", "trial": "t"}
    assert build_argv(w, "train", {"epochs": 3}, ctx) == ["python", "t.py", "--e=3"]
    assert build_argv(w, "train", {"epochs": 9}, {**ctx, "resume_dir": "r/p/train"})[-1] == "--resume=r/p/train"


def test_a_train_without_resume_dir_is_recognised_without_inspect():
    def old(params, out_dir, *, data_dir, device):
        return {}

    def new(params, out_dir, *, data_dir, device, resume_dir=None):
        return {}

    def loose(params, out_dir, **kw):
        return {}

    assert (_accepts_resume(old), _accepts_resume(new), _accepts_resume(loose)) == (False, True, True)


def test_trial_id_with_a_parent_differs_and_without_one_is_unchanged():
    p = {"x": 1, "seed": 0}
    assert trial_id("toy.py", p) == trial_id("toy.py", p, None)
    assert trial_id("toy.py", p, "abc") != trial_id("toy.py", p) != trial_id("toy.py", p, "abd")


def test_code_digest_follows_the_files_content(tmp_path):
    f = tmp_path / "w.py"
    f.write_text("x = 1\n")
    a = code_digest(str(f))
    f.write_text("x = 2\n")
    assert code_digest(str(f)) != a
    cmd = {"command": {"train": ["python", str(f)]}, "sources": []}
    assert code_digest(cmd) == code_digest({**cmd, "sources": [str(Path(f))]}) is not None
