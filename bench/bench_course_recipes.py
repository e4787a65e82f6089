"""Benchmark: every MNIST and Fashion-MNIST course recipe, trained as its notebook did, against the figure it published.

Each recipe runs through the engine exactly as `python -m core.train --recipe NAME`
would, on the CPU with seed 0 unless told otherwise, and the script prints the
published test accuracy beside the measured one, the test accuracy after each
epoch where the notebook printed those, and the training time.

    python bench/bench_course_recipes.py [--recipes course-lenet-bn-adam ...] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.data import load_dataset  # noqa: E402
from core.engine import train  # noqa: E402
from core.recipes import RECIPES  # noqa: E402

COURSE = [name for name, r in RECIPES.items() if name.startswith("course-") and r.config["dataset"] != "cifar10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=COURSE, choices=COURSE)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("PLAYGROUND_ARCHIVE_DIR", str(REPO.parent / "shared" / "data" / "archives"))
    print(f"{'recipe':32} {'published':34} {'measured':>9} {'best epoch':>10} {'training s':>10}")
    for name in args.recipes:
        cfg = RECIPES[name].train_config()
        cfg.device, cfg.seed = "cpu", args.seed
        with tempfile.TemporaryDirectory() as tmp:
            cfg.run_dir = str(Path(tmp) / "run")
            result = train(cfg, dataset=load_dataset(cfg.dataset))
        print(f"{name:32} {RECIPES[name].published:34} {result.test_accuracy:9.2%} {result.best_epoch!s:>10} "
              f"{result.train_seconds:10.1f}", flush=True)
        if cfg.val_split:
            print("    validation accuracy per epoch: "
                  + " ".join(f"{e['val_accuracy']:.2%}" for e in result.epochs), flush=True)


if __name__ == "__main__":
    main()
