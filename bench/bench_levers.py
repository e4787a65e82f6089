"""Benchmark: the speed levers of issue 9 on the default MNIST config, each trained in this one process.

Each variant trains the full MNIST training set with one seed and prints its test
accuracy, training seconds (the engine's own count: the steps), the epoch seconds
beyond the steps (validation, checkpoints, Resume's file) and its ratio to the
baseline (the default config) measured first in the same process. bfloat16 autocast
on the CPU and torch.compile, which the engine does not offer, are patched in here only
to measure them.

    python bench/bench_levers.py [--seeds 0] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

import core.engine as engine  # noqa: E402
import core.metrics as metrics  # noqa: E402
from core.config import TrainConfig  # noqa: E402
from core.data import load_dataset  # noqa: E402


@contextlib.contextmanager
def cpu_bf16():
    def autocast(device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    saved = engine.autocast, metrics.autocast
    engine.autocast = metrics.autocast = autocast
    try:
        yield
    finally:
        engine.autocast, metrics.autocast = saved


@contextlib.contextmanager
def compiled():
    """torch.compile on the model the engine builds (in place, so its checkpoints keep their keys); the first
    steps pay for the compilation, as a user's run would."""
    def build(*args, **kwargs):
        model = build_model(*args, **kwargs)
        model.compile()
        return model
    build_model = engine.build_model
    engine.build_model = build
    try:
        yield
    finally:
        engine.build_model = build_model


BASE = TrainConfig(device="cpu")
VARIANTS = {  # name: (config changes, patch)
    "default": ({}, contextlib.nullcontext),
    "lenet-bn-small (12 channels), lr 0.02": (dict(model="lenet-bn-small", lr=0.02), contextlib.nullcontext),
    "batch 512, lr 0.03": (dict(batch_size=512, lr=0.03), contextlib.nullcontext),
    "no validation": (dict(val_split=0.0), contextlib.nullcontext),
    "bf16 autocast": ({}, cpu_bf16),
    "channels-last (--channels-last)": (dict(channels_last=True), contextlib.nullcontext),
    "torch.compile": ({}, compiled),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--only", nargs="+", default=list(VARIANTS))
    args = parser.parse_args()
    os.environ.setdefault("PLAYGROUND_ARCHIVE_DIR", str(REPO.parent / "shared" / "data" / "archives"))
    data = load_dataset("mnist")
    baseline = None
    with tempfile.TemporaryDirectory() as tmp:
        for name in ["default", *[n for n in args.only if n != "default"]]:
            changes, patch = VARIANTS[name]
            for seed in args.seeds:
                cfg = dataclasses.replace(BASE, **changes, seed=seed, run_dir=str(Path(tmp) / f"{name}-{seed}"))
                with patch():
                    result = engine.train(cfg, dataset=data)
                outside = sum(e["seconds"] for e in result.epochs) - result.train_seconds
                baseline = baseline or result.train_seconds
                print(f"{name:30} seed {seed}  {result.test_accuracy:.2%}  train {result.train_seconds:5.2f} s  "
                      f"outside the steps {outside:4.2f} s  ratio {result.train_seconds / baseline:.2f}x", flush=True)


if __name__ == "__main__":
    main()
