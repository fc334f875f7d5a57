"""Plan preview: trials, jobs per step, and a wall-time estimate from the durations of the
results this sweep already has."""

from __future__ import annotations

import os

from snakesweep.preview import count_jobs as jobs_to_run
from snakesweep.preview import format_preview, human_duration, mean_durations, preview_state, show_preview
from state_helpers import metadata, touch, write_result

STEPS = ["train", "eval", "measure"]


def test_no_history_yet(tmp_path):
    state = preview_state(["a", "b"], STEPS, "results", root=tmp_path)
    assert mean_durations(state.durations) == {}
    text = format_preview(6, {"train": 6, "eval": 6, "measure": 6}, {}, cores=2)
    assert "6 trials" in text and "train 6, eval 6, measure 6 (18 in all)" in text
    assert "no history yet" in text


def test_estimate_from_the_durations_of_earlier_results(tmp_path):
    write_result(tmp_path, "a", "train", duration_s=8.0)
    write_result(tmp_path, "b", "train", duration_s=12.0)
    write_result(tmp_path, "a", "eval", duration_s=2.0)
    write_result(tmp_path, "a", "measure", duration_s=5.0)
    write_result(tmp_path, "b", "eval", duration_s=float("nan"))  # not a duration: not counted
    means = mean_durations(preview_state(["a", "b"], STEPS, "results", root=tmp_path).durations)
    assert means == {"train": (10.0, 2), "eval": (2.0, 1), "measure": (5.0, 1)}
    # work: 4x10 + 4x2 + 4x5 = 68 s on 2 cores = 34 s; measure alone (serial) 20 s
    text = format_preview(4, {"train": 4, "eval": 4, "measure": 4}, means, cores=2)
    assert "~34 s on 2 cores" in text and "train 10.0 s" in text and "one at a time" in text
    assert "4 earlier results" in text
    # on 8 cores the serial measure jobs set the floor: 20 s
    assert "~20 s on 8 cores" in format_preview(4, {"train": 4, "eval": 4, "measure": 4}, means, cores=8)
    # what the workflow prints: the same means, read in the same pass as the job counts
    shown = show_preview(_Workflow(main=True), ["a", "b", "c", "d"], STEPS, "results", root=tmp_path)
    assert "train 10.0 s, eval 2.0 s, measure 5.0 s" in shown


def test_measure_cycles_time_each_cycle_not_the_aggregate(tmp_path):
    write_result(tmp_path, "a", "measure", rel="results/trials/a/cycles/measure.0.json", duration_s=6.0)
    write_result(tmp_path, "a", "measure", rel="results/trials/a/cycles/measure.1.json", duration_s=4.0)
    cycles = ["results/trials/a/cycles/measure.0.json", "results/trials/a/cycles/measure.1.json"]
    write_result(tmp_path, "a", "measure", {"cycle_files": cycles}, duration_s=0.01)  # their aggregate: no job
    state = preview_state(["a"], ["measure"], "results", {"measure": 2}, root=tmp_path)
    assert mean_durations(state.durations) == {"measure": (5.0, 2)}


def test_partial_history_and_nothing_to_run(tmp_path):
    means = {"train": (60.0, 1)}
    text = format_preview(100, {"train": 100, "eval": 100, "measure": 0}, means, cores=None,
                          done_per_step={"measure": 100})
    assert "~1.7 h on 1 core" in text and "no history yet for eval" in text
    assert "100 already have results" in text
    done = format_preview(3, {"train": 0, "eval": 0}, means, cores=2, done_per_step={"train": 3, "eval": 3})
    assert "nothing to run" in done


def test_human_duration():
    assert human_duration(0.2) == "1 s"
    assert human_duration(89) == "89 s"
    assert human_duration(600) == "10 min"
    assert human_duration(3 * 3600) == "3.0 h"


class _Workflow:
    def __init__(self, main: bool, cores: int = 2, max_checksum_file_size: int | None = None):
        self.is_main_process = main
        self.resource_settings = type("R", (), {"cores": cores})()
        if max_checksum_file_size is not None:  # Snakemake sets its DAG settings after parsing
            self.dag_settings = type("D", (), {"max_checksum_file_size": max_checksum_file_size})()


def test_show_preview_only_in_the_main_process(tmp_path, capsys):
    results = tmp_path / "results"
    write_result(tmp_path, "t1", "train")
    assert show_preview(_Workflow(main=False), ["t1", "t2"], ["train", "eval"], results, root=tmp_path) == ""
    text = show_preview(_Workflow(main=True), ["t1", "t2"], ["train", "eval"], results, root=tmp_path)
    assert "2 trials" in text and "train 1, eval 2" in text and "1 already have results" in text
    # every step's result is a target: a missing intermediate is made again, and what it feeds
    write_result(tmp_path, "t2", "eval")
    assert jobs_to_run(["t1", "t2"], ["train", "eval"], results, root=tmp_path) == ({"train": 1, "eval": 2}, {"train": 1, "eval": 0})


def test_measure_cycles_multiply_measure_jobs(tmp_path):
    results = tmp_path / "results"
    write_result(tmp_path, "t1", "train", age_s=10)
    write_result(tmp_path, "t1", "measure", rel="results/trials/t1/cycles/measure.0.json")
    write_result(tmp_path, "t2", "measure")
    todo, done = jobs_to_run(["t1", "t2", "t3"], ["train", "measure"], results, {"measure": 3}, root=tmp_path)
    # t1: 2 cycles left; t2: its train.json is missing, so it is trained and measured again
    # (every step's result is a target); t3: everything left
    assert todo == {"train": 2, "measure": 8} and done == {"train": 1, "measure": 1}
    # without its training, t1's trained model is made again: every cycle is measured again
    (results / "trials/t1/train.json").unlink()
    todo, _ = jobs_to_run(["t1", "t2", "t3"], ["train", "measure"], results, {"measure": 3}, root=tmp_path)
    assert todo == {"train": 3, "measure": 9}


def test_a_touched_source_with_its_recorded_checksum_counts_no_job(tmp_path):
    """Snakemake 9 compares a newer input's checksum with its job's record (issue 17)."""
    results = "results"  # as the rules name it, relative to the root: the records' keys
    src = touch(tmp_path / "lib.py", "# lib", age_s=60)
    write_result(tmp_path, "t1", "train", age_s=30)
    metadata(tmp_path, "results/trials/t1/train.json", {"lib.py": src})
    os.utime(src)  # touched: newer than the result, the same content
    kw = {"sources": {"train": ["lib.py"]}, "root": tmp_path}
    assert jobs_to_run(["t1"], ["train"], results, **kw)[0] == {"train": 0}
    # above the checksum size limit the mtime decides: the preview takes Snakemake's limit
    assert jobs_to_run(["t1"], ["train"], results, max_checksum_size=2, **kw)[0] == {"train": 1}
    text = show_preview(_Workflow(main=True, max_checksum_file_size=2), ["t1"], ["train"], results, **kw)
    assert "train 1 (1 in all)" in text
    assert "train 0 (0 in all" in show_preview(_Workflow(main=True), ["t1"], ["train"], results, **kw)
