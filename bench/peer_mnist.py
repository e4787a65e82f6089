"""The fastest public MNIST recipe we know, written from its description, as a plain PyTorch script.

Two convolutions (1 to 24 channels, 5 x 5; 24 to 32, 3 x 3), each with ReLU and
2 x 2 max pooling, then 800 -> 256 -> 10; Adam at learning rate 0.01 with betas
(0.7, 0.9) under a one-cycle schedule without momentum cycling; batch 256; one
epoch; the data held as tensors, batches cut by index. bench/bench_vs_peer.py
runs it beside `python -m core.train`.

    python bench/peer_mnist.py --data DATA_ROOT [--seed 0] [--device cpu|cuda]
"""

import argparse
import json
import time

import torch
from torch import nn
from torchvision import datasets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a torchvision root holding MNIST")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    train, test = (datasets.MNIST(args.data, train=t, download=False) for t in (True, False))
    x_train, y_train = train.data.unsqueeze(1).to(device), train.targets.to(device)
    x_test, y_test = test.data.unsqueeze(1).to(device), test.targets.to(device)
    mean, std = x_train.float().mean() / 255, x_train.float().std() / 255

    model = nn.Sequential(
        nn.Conv2d(1, 24, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(24, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(800, 256), nn.ReLU(), nn.Linear(256, 10),
    ).to(device)
    batch, steps = 256, -(-len(y_train) // 256)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.7, 0.9))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.01, total_steps=steps, cycle_momentum=False)
    loss_fn = nn.CrossEntropyLoss()

    start = time.perf_counter()
    model.train()
    order = torch.randperm(len(y_train)).to(device)
    for i in range(steps):
        idx = order[i * batch:(i + 1) * batch]
        loss = loss_fn(model((x_train[idx].float() / 255 - mean) / std), y_train[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    if device.type == "cuda":
        torch.cuda.synchronize()  # the queued steps are part of the time
    train_seconds = time.perf_counter() - start

    model.eval()
    with torch.no_grad():
        correct = sum(int((model((x_test[i:i + 1000].float() / 255 - mean) / std).argmax(1) == y_test[i:i + 1000]).sum())
                      for i in range(0, len(y_test), 1000))
    print(json.dumps({"test_accuracy": correct / len(y_test), "train_seconds": train_seconds}))


if __name__ == "__main__":
    main()
