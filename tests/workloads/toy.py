"""A torch-free workload for end-to-end tests: real files, real processes, milliseconds per step.

Parameters steer failures so tests can inject them per trial:
  fail: raise | segfault | abort | kill | exit | sleep   (only while TOY_FAILURES=1 is set, so a test
        can "fix the bug" and re-run the same trials)
  sleep_s: seconds every train step sleeps (for kill-and-resume tests)
Continuation (halving/hyperband/pbt hand a promoted trial `resume_dir`): the model file records the
epochs trained so far, and train reports `epochs_run` (the increment) and `epochs_from`;
  resume_sleep_s: seconds a continued train step sleeps (after leaving `<trial>.continuing` in
  TOY_MARK_DIR, when set), so a test can kill -9 mid-rung
Holding, so that a test acts while a step is certainly mid-run instead of racing a sleep on a
loaded machine: with TOY_MARK_DIR set and TOY_HOLD=train (every train step, first thing) or
TOY_HOLD=continued (a continued train step, right after its `.continuing` mark), the step leaves
`<trial>.<pid>.held` (JSON: trial, pid) in TOY_MARK_DIR and waits until `<pid>.release` appears
there; after TOY_HOLD_S seconds (default 600) without one it fails instead of going on.
"""

import json
import os
import time
from pathlib import Path


def _maybe_fail(params):
    mode = params.get("fail")
    if not mode or os.environ.get("TOY_FAILURES") != "1":
        return
    if mode == "raise":
        raise ValueError(f"injected failure for x={params.get('x')}")
    if mode == "segfault":
        import ctypes

        ctypes.string_at(0)
    if mode == "abort":
        os.abort()
    if mode == "kill":  # what the OOM killer does
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "exit":
        os._exit(3)
    if mode == "sleep":
        time.sleep(3600)


def _report_modules(step):
    """With TOY_MODULES_DIR set, leave the names of the modules this step's process has imported
    (tests keep the step processes light: hundreds of short jobs pay every import)."""
    out = os.environ.get("TOY_MODULES_DIR")
    if out:
        import sys

        Path(out, f"{step}.{os.getpid()}.json").write_text(json.dumps(sorted(sys.modules)))


def _hold(kind, out_dir):
    """With TOY_HOLD=kind (see the module docstring): say so, then wait for the test's release."""
    mark = os.environ.get("TOY_MARK_DIR")
    if os.environ.get("TOY_HOLD") != kind or not mark:
        return
    pid, trial = os.getpid(), Path(out_dir).name
    tmp = Path(mark, f".{trial}.{pid}.tmp")
    tmp.write_text(json.dumps({"trial": trial, "pid": pid}))
    os.replace(tmp, Path(mark, f"{trial}.{pid}.held"))  # whole, or not there: the test reads it
    release = Path(mark, f"{pid}.release")
    limit = float(os.environ.get("TOY_HOLD_S", "600"))
    deadline = time.monotonic() + limit
    while not release.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"toy: held {limit:g} s (TOY_HOLD={kind}) and {release} never appeared; "
                               "the test that sets TOY_HOLD writes it to let the step go on")
        time.sleep(0.02)


def prepare(data_dir):
    (Path(data_dir) / "data.json").write_text(json.dumps({"offset": 0.5}))


def train(params, out_dir, *, data_dir, device, resume_dir=None):
    _hold("train", out_dir)
    time.sleep(float(params.get("sleep_s", 0)))
    _maybe_fail(params)
    done = 0
    if resume_dir is not None:
        done = json.loads(Path(resume_dir, "model.json").read_text())["epochs"]
        mark = os.environ.get("TOY_MARK_DIR")
        if mark:
            Path(mark, f"{Path(out_dir).name}.continuing").write_text(str(resume_dir))
        _hold("continued", out_dir)
        time.sleep(float(params.get("resume_sleep_s", 0)))
    offset = json.loads((Path(data_dir) / "data.json").read_text())["offset"]
    x = float(params.get("x", 0))
    loss = (x - 1.0) ** 2 + offset + 0.01 * params["seed"]
    epochs = params.get("epochs", 0)
    Path(out_dir, "model.json").write_text(json.dumps({"w": x, "tag": params.get("tag"), "epochs": epochs}))
    history = [{"epoch": e, "loss": loss * (3 - e)} for e in range(1, 3)]
    _report_modules("train")
    metrics = {"train_loss": loss, "train_time_s": 0.0, "history": history, "tag_seen": params.get("tag")}
    if "epochs" in params:  # a budgeted trial: what this step trained, and from where
        metrics.update(epochs_run=epochs - done, epochs_from=done)
    return metrics


def evaluate(params, train_dir, *, data_dir, device):
    model = json.loads(Path(train_dir, "model.json").read_text())
    _report_modules("eval")
    return {"eval_accuracy": 1.0 / (1.0 + abs(model["w"] - 1.0)), "eval_loss": abs(model["w"] - 1.0)}


def inference(params, train_dir, *, data_dir, device, batch_size):
    # a `steps: [measure]` sweep has no trained model: the parameters describe what is measured
    w = json.loads(Path(train_dir, "model.json").read_text())["w"] if train_dir else float(params.get("x", 0))
    batches = [[w] * int(params.get("batch_size", batch_size)) for _ in range(4)]
    _report_modules("measure")
    return (lambda batch: sum(v * v for v in batch)), batches, [len(b) for b in batches]
