"""Train softmax regression on digits: a typical existing training script, swept unchanged by
config/examples/cli-sweep.yaml. Writes model.npz and metrics.json into --out.

    python examples/train_cli.py --lr 0.5 --l2 1e-4 --seed 0 --out runs/a
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import digits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lr", type=float, default=0.5, help="learning rate")
    ap.add_argument("--l2", type=float, default=1e-4, help="weight decay")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="directory for the checkpoint and metrics.json")
    a = ap.parse_args()

    t0 = time.perf_counter()
    x_train, y_train, x_val, y_val, _, _ = digits.split(*digits.load_digits())
    w, b = digits.train(x_train, y_train, lr=a.lr, l2=a.l2, epochs=a.epochs, batch_size=a.batch_size, seed=a.seed)
    train_loss, train_acc = digits.loss_and_accuracy(w, b, x_train, y_train)
    _, val_acc = digits.loss_and_accuracy(w, b, x_val, y_val)
    digits.save(a.out, w, b, {"lr": a.lr, "l2": a.l2, "epochs": a.epochs, "seed": a.seed})
    metrics = {"train_loss": train_loss, "train_accuracy": train_acc, "val_accuracy": val_acc,
               "train_time_s": time.perf_counter() - t0}
    (a.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"trained {a.epochs} epochs: loss {train_loss:.4f}, validation accuracy {val_acc:.4f}")


if __name__ == "__main__":
    main()
