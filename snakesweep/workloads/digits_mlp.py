"""Built-in workload: a small torch MLP on scikit-learn's digits (ships with the package, no download).

torch and scikit-learn are imported inside the functions: Snakemake imports this module at
parse time to check parameter names, and that must not cost a torch import.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import MEASURED_METRICS

DATA_FILE = "digits.npz"
# what each step reports (measure: snakesweep.measure.MEASURED_METRICS); checked against the objective
METRICS = {
    "train": ["train_loss", "train_time_s"],
    "eval": ["eval_accuracy", "eval_loss"],
    "measure": MEASURED_METRICS,
}
CHECKPOINT = "model.pt"
STATE = "train_state.pt"  # optimizer and RNG state, for a continued trial (resume_dir)


class DigitsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lr: float = Field(default=0.03, gt=0)
    hidden: int = Field(default=64, ge=1)
    layers: int = Field(default=1, ge=1)
    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: float = Field(default=0.0, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=64, ge=1)
    threads: int = Field(default=1, ge=1)  # the trial's CPU threads (snakesweep/threads.py sets torch's)
    seed: int = 0


def check_params(params: dict[str, Any]) -> str | None:
    try:
        DigitsParams.model_validate(params)
    except ValidationError as err:
        e = err.errors()[0]
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            allowed = ", ".join(DigitsParams.model_fields)
            return f"digits_mlp has no parameter '{key}' (fix: use one of {allowed})"
        return f"digits_mlp parameter '{key}': {e['msg']} (fix: correct the value in sweep.grid/fixed)"
    return None


def prepare(data_dir: Path) -> None:
    """One fixed, stratified split for every trial, so accuracies are comparable."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    tmp = data_dir / f".{DATA_FILE}.tmp.npz"
    np.savez(tmp, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    os.replace(tmp, data_dir / DATA_FILE)


def _load(data_dir: Path, split: str):
    import numpy as np
    import torch

    with np.load(data_dir / DATA_FILE) as d:
        return torch.from_numpy(d[f"x_{split}"]), torch.from_numpy(d[f"y_{split}"]).long()


def _model(p: DigitsParams):
    import torch.nn as nn

    layers: list[nn.Module] = []
    width = 64
    for _ in range(p.layers):
        layers += [nn.Linear(width, p.hidden), nn.ReLU()]
        width = p.hidden
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def _device(device: str):
    import torch

    return torch.device("cuda" if device == "cuda" else "cpu")


def train(
    params: dict[str, Any], out_dir: Path, *, data_dir: Path, device: str, resume_dir: Path | None = None
) -> dict[str, Any]:
    """Train to `epochs` in total. With `resume_dir` (a promoted trial of halving/hyperband/pbt:
    its previous rung's directory, read-only), continue from that checkpoint: the weights, the
    optimizer's state and the data order's RNG, so 3 epochs then 6 more equal 9 uninterrupted
    (on CPU; tests/test_adaptive.py). The optimizer's lr, momentum and weight decay are this
    trial's (PBT perturbs them); a changed optimizer kind starts a fresh optimizer."""
    import torch
    import torch.nn.functional as F

    p = DigitsParams.model_validate(params)
    # The ops used here are deterministic on CPU for a fixed thread count (tests check it);
    # torch.use_deterministic_algorithms would add ~1.2 s of imports to every train job.
    torch.manual_seed(p.seed)
    dev = _device(device)
    x, y = _load(data_dir, "train")
    x, y = x.to(dev), y.to(dev)
    model = _model(p).to(dev)
    if p.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay)
    gen = torch.Generator().manual_seed(p.seed)
    history: list[dict[str, Any]] = []
    done = 0
    if resume_dir is not None:
        state = torch.load(Path(resume_dir) / STATE, map_location="cpu", weights_only=True)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as err:
            raise ValueError(f"the checkpoint in {resume_dir} does not fit this trial's architecture "
                             f"(hidden/layers changed): {str(err).splitlines()[0]}") from None
        if state.get("optimizer_kind") == p.optimizer:
            opt.load_state_dict(state["optimizer"])
            for group in opt.param_groups:  # this trial's values (PBT may have perturbed them)
                group.update(lr=p.lr, weight_decay=p.weight_decay,
                             **({"momentum": p.momentum} if p.optimizer == "sgd" else {}))
        gen.set_state(state["rng"])
        done = int(state["epochs"])
        history = list(state.get("history", []))
        if done >= p.epochs:
            raise ValueError(f"the checkpoint in {resume_dir} has {done} epochs already; this trial asks for "
                             f"{p.epochs} in total (a continued trial's budget must grow)")
    start = time.perf_counter()
    for epoch in range(done, p.epochs):
        order = torch.randperm(len(x), generator=gen).to(dev)
        total, seen = 0.0, 0
        for i in range(0, len(x), p.batch_size):
            idx = order[i : i + p.batch_size]
            opt.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        history.append({"epoch": epoch + 1, "loss": total / seen})
    train_time = time.perf_counter() - start
    tmp = out_dir / f".{CHECKPOINT}.tmp"
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, out_dir / CHECKPOINT)
    # what a continued trial needs beyond the weights (written after them, atomically)
    tmp = out_dir / f".{STATE}.tmp"
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "optimizer_kind": p.optimizer,
                "rng": gen.get_state(), "epochs": p.epochs, "history": history}, tmp)
    os.replace(tmp, out_dir / STATE)
    final = history[-1]["loss"]
    if final != final:  # NaN: a diverged run is a failed trial, not a result
        raise FloatingPointError(f"training diverged (loss is NaN after {p.epochs} epochs, lr={p.lr})")
    return {"train_loss": final, "train_time_s": train_time, "history": history,
            "epochs_run": p.epochs - done, "epochs_from": done}


def _trained(params: dict[str, Any], train_dir: Path, device: str):
    import torch

    p = DigitsParams.model_validate(params)
    model = _model(p)
    model.load_state_dict(torch.load(train_dir / CHECKPOINT, map_location="cpu", weights_only=True))
    return model.to(_device(device)).eval()


def evaluate(params: dict[str, Any], train_dir: Path, *, data_dir: Path, device: str) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    model = _trained(params, train_dir, device)
    x, y = _load(data_dir, "test")
    dev = _device(device)
    with torch.no_grad():
        logits = model(x.to(dev))
        loss = F.cross_entropy(logits, y.to(dev)).item()
        acc = (logits.argmax(1).cpu() == y).float().mean().item()
    return {"eval_accuracy": acc, "eval_loss": loss}


def inference(params: dict[str, Any], train_dir: Path, *, data_dir: Path, device: str, batch_size: int):
    import torch

    model = _trained(params, train_dir, device)
    x, _ = _load(data_dir, "test")
    batches = [b.to(_device(device)) for b in torch.split(x, batch_size)]

    def run(batch):
        with torch.no_grad():
            return model(batch)

    return run, batches, [len(b) for b in batches]
