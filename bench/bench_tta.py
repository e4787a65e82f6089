"""Benchmark: what test-time augmentation buys and costs, on a finished run's kept checkpoint.

Evaluates the checkpoint on its dataset's test split with each of the engine's
test-time augmentations (core.augment.TEST_TIME_AUGMENTATIONS) in this one
process (after an untimed warm-up) and prints test accuracy, seconds, and the ratio
of seconds to the plain pass measured first.

    python bench/bench_tta.py RUN_DIR [--dataset NAME_OR_FOLDER] [--device cpu]

The dataset defaults to the run's own (a built-in name or the folder it was trained on).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from core.augment import TEST_TIME_AUGMENTATIONS  # noqa: E402
from core.checkpoint import load_checkpoint  # noqa: E402
from core.device import resolve_device  # noqa: E402
from core.engine import resolve_dataset  # noqa: E402
from core.metrics import loss_and_accuracy, predict_probabilities  # noqa: E402
from core.preprocess import Normalizer  # noqa: E402
from core.store import RunStore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    store = RunStore(Path(args.run_dir))
    checkpoint = load_checkpoint(store.best_checkpoint)
    data = resolve_dataset(args.dataset or store.config().dataset)
    device = resolve_device(args.device)
    model = checkpoint.model.to(device)
    if store.config().channels_last:  # as the engine evaluated it
        model = model.to(memory_format=torch.channels_last)
    normalize = Normalizer(checkpoint.meta["mean"], checkpoint.meta["std"], device)
    predict_probabilities(model, data.test_images[:1000], normalize, device)  # untimed: the first pass sets up kernels
    plain = None
    for name in TEST_TIME_AUGMENTATIONS:
        start = time.perf_counter()
        probs = predict_probabilities(model, data.test_images, normalize, device, tta=name)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        plain = plain or seconds
        _, accuracy = loss_and_accuracy(probs, data.test_labels)
        print(f"{name:15s} test accuracy {accuracy:.2%}  {seconds:6.2f} s  {seconds / plain:.2f}x the plain pass", flush=True)


if __name__ == "__main__":
    main()
