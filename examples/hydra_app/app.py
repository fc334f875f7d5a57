"""A Hydra app that trains (stage=train) or evaluates (stage=eval) softmax regression on digits.

Swept unchanged by config/examples/hydra-sweep.yaml (`args: hydra`: each trial parameter becomes an
override, and hydra.run.dir is the step's directory). By hand:

    python examples/hydra_app/app.py optimizer.lr=0.1 hydra.run.dir=runs/h
    python examples/hydra_app/app.py stage=eval model_dir=runs/h hydra.run.dir=runs/h-eval
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/digits.py, shared with the CLI scripts
import digits  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    out = Path(HydraConfig.get().runtime.output_dir)
    x_train, y_train, x_val, y_val, x_test, y_test = digits.split(*digits.load_digits())
    if cfg.stage == "train":
        t0 = time.perf_counter()
        opt = cfg.optimizer
        w, b = digits.train(x_train, y_train, lr=opt.lr, l2=opt.l2, epochs=opt.epochs, batch_size=opt.batch_size,
                            seed=cfg.seed)
        loss, acc = digits.loss_and_accuracy(w, b, x_train, y_train)
        _, val_acc = digits.loss_and_accuracy(w, b, x_val, y_val)
        digits.save(out, w, b, {"lr": opt.lr, "l2": opt.l2, "seed": cfg.seed})
        metrics = {"train_loss": loss, "train_accuracy": acc, "val_accuracy": val_acc,
                   "train_time_s": time.perf_counter() - t0}
    elif cfg.stage == "eval":
        if cfg.model_dir is None:
            raise SystemExit("stage=eval needs model_dir=<the train stage's directory>")
        w, b = digits.load(Path(to_absolute_path(cfg.model_dir)))
        loss, acc = digits.loss_and_accuracy(w, b, x_test, y_test)
        metrics = {"eval_accuracy": acc, "eval_loss": loss}
    else:
        raise SystemExit(f"stage must be train or eval, not {cfg.stage!r}")
    metrics["run_name"] = cfg.run_name
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"{cfg.stage}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))


if __name__ == "__main__":
    main()
