"""Evaluate a checkpoint of train_cli.py on the held-out digits; writes metrics.json into --out.

    python examples/eval_cli.py --model runs/a --out runs/a-eval
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import digits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", type=Path, required=True, help="the directory train_cli.py wrote")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()

    *_, x_test, y_test = digits.split(*digits.load_digits())
    w, b = digits.load(a.model)
    loss, acc = digits.loss_and_accuracy(w, b, x_test, y_test)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "metrics.json").write_text(json.dumps({"eval_accuracy": acc, "eval_loss": loss}, indent=2) + "\n")
    print(f"accuracy {acc:.4f} on {len(y_test)} test images")


if __name__ == "__main__":
    main()
