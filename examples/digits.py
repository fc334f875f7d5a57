"""Shared by the example scripts: scikit-learn's digits (read from the copy that ships inside the
scikit-learn package, without importing scikit-learn, which would cost ~2 s per process) and a
softmax-regression model in plain numpy. No network, no download."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import numpy as np

N_CLASSES = 10


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """1797 8x8 images as (X in [0, 1], shape (n, 64); y in 0..9)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scikit-learn is not installed: it ships the digits data set these examples use")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(path, "rt") as fh:
        data = np.loadtxt(fh, delimiter=",")
    return data[:, :-1] / 16.0, data[:, -1].astype(int)


def split(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """(x, y) of train (60%), validation (15%) and test (25%): the same split for every trial
    (its own fixed seed), whatever the trial's seed."""
    order = np.random.default_rng(12345).permutation(len(y))
    n_test, n_val = round(len(y) * 0.25), round(len(y) * 0.15)
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    return x[train], y[train], x[val], y[val], x[test], y[test]


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def loss_and_accuracy(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    p = softmax(x @ w + b)
    loss = float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean())
    return loss, float((p.argmax(axis=1) == y).mean())


def train(
    x: np.ndarray, y: np.ndarray, *, lr: float, l2: float, epochs: int, batch_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mini-batch SGD on cross-entropy + l2 * |w|^2; the seed sets the init and the batch order."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 0.01, size=(x.shape[1], N_CLASSES))
    b = np.zeros(N_CLASSES)
    onehot = np.eye(N_CLASSES)[y]
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for i in range(0, len(y), batch_size):
            idx = order[i : i + batch_size]
            grad = softmax(x[idx] @ w + b) - onehot[idx]
            w -= lr * (x[idx].T @ grad / len(idx) + 2 * l2 * w)
            b -= lr * grad.mean(axis=0)
    return w, b


def save(out: Path, w: np.ndarray, b: np.ndarray, meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "model.npz", w=w, b=b)
    (out / "model.json").write_text(json.dumps(meta, indent=2) + "\n")


def load(model_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(Path(model_dir) / "model.npz") as f:
        return f["w"], f["b"]
