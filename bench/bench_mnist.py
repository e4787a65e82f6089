"""Benchmark: the engine against the course notebooks' textbook loop, LeNet-5 on MNIST.

Prints, from one process: training samples per second of each (same batch size,
optimizer and model, so the ratio measures the data path), and the wall time
each needs to reach 99.0 % test accuracy with its best recipe.

    python bench/bench_mnist.py [--device cpu|cuda] [--textbook-epochs 8]

The textbook loop evaluates on the test set after every epoch only to time when
it crosses 99 %; the engine is timed as one whole run of its default recipe
(validation and the final test evaluation included).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.config import TrainConfig  # noqa: E402
from core.data import data_dir, load_dataset  # noqa: E402
from core.device import describe_device, resolve_device  # noqa: E402
from core.engine import train  # noqa: E402
from core.models import build_model  # noqa: E402
from core.recipes import RECIPES  # noqa: E402

TARGET = 0.99


def textbook(device: torch.device, epochs: int, lr: float, momentum: float) -> tuple[float, float | None, float]:
    """The notebook loop: ToTensor + Normalize, DataLoader(batch 100), SGD. Returns samples/s of
    epoch 1, seconds of training to reach TARGET (None if not reached) and the final accuracy."""
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    root = str(data_dir())
    train_set = datasets.MNIST(root, train=True, transform=tf)
    test_set = datasets.MNIST(root, train=False, transform=tf)
    train_loader = DataLoader(train_set, batch_size=100, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=1000)
    torch.manual_seed(0)
    model = build_model("lenet5", (1, 28, 28), 10).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    loss_fn = nn.CrossEntropyLoss()
    trained, first_rate, reached, acc = 0.0, 0.0, None, 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        start = time.perf_counter()
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        trained += seconds
        first_rate = first_rate or len(train_set) / seconds
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test_loader:
                correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
        acc = correct / len(test_set)
        print(f"  textbook epoch {epoch}: test {acc:.2%}, {seconds:.1f} s", flush=True)
        if acc >= TARGET and reached is None:
            reached = trained
            break
    return first_rate, reached, acc


def engine_run(cfg: TrainConfig) -> tuple[float, float, float]:
    """(samples/s, wall seconds of the whole run, test accuracy)."""
    start = time.perf_counter()
    result = train(cfg)
    return result.samples_per_second, time.perf_counter() - start, result.test_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--textbook-epochs", type=int, default=8)
    args = parser.parse_args()
    device = resolve_device(args.device)
    load_dataset("mnist")  # unpack once, outside every timing
    print(f"device: {describe_device(device)}; torch {torch.__version__}", flush=True)

    print("textbook loop (SGD lr 0.05, momentum 0.9, batch 100):", flush=True)
    tb_rate, tb_time, tb_acc = textbook(device, args.textbook_epochs, lr=0.05, momentum=0.9)

    same = TrainConfig(model="lenet5", optimizer="sgd", lr=0.05, momentum=0.9, scheduler="none",
                       batch_size=100, epochs=1, device=args.device, run_dir="runs/bench-same")
    eng_rate, _, _ = engine_run(same)

    best = dataclasses.replace(RECIPES["mnist-fast"].train_config(), device=args.device, run_dir="runs/bench-best")
    best_rate, best_time, best_acc = engine_run(best)

    print()
    print(f"samples/s, same recipe (LeNet-5, SGD, batch 100): textbook {tb_rate:,.0f}, engine {eng_rate:,.0f}, "
          f"ratio {eng_rate / tb_rate:.2f}x")
    reached = f"{tb_time:.1f} s of training" if tb_time is not None else f"not reached in {args.textbook_epochs} epochs ({tb_acc:.2%})"
    print(f"time to {TARGET:.0%} test accuracy, textbook SGD: {reached}")
    print(f"engine recipe 'mnist-fast' ({best.optimizer}, lr {best.lr}, {best.scheduler}, batch {best.batch_size}, "
          f"{best.epochs} epochs): test {best_acc:.2%} in {best_time:.1f} s wall (whole run), {best_rate:,.0f} samples/s")
    if tb_time is not None:
        print(f"speed-up to {TARGET:.0%}: {tb_time / best_time:.2f}x")


if __name__ == "__main__":
    main()
