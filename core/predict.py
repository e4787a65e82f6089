"""Predict image files with a saved checkpoint.

python -m core.predict --checkpoint runs/.../best.safetensors digit.png [more.png ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch import nn
from torchvision.transforms.v2 import functional as TF

from core.augment import TEST_TIME_AUGMENTATIONS
from core.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from core.confidence import is_sure
from core.images import ImageRefused, read_image
from core.preprocess import Normalizer


def read_unit_image(source: str | Path | BinaryIO, colour: bool, name: str | None = None) -> torch.Tensor:
    """An image file or upload at its own size, as a C x H x W float tensor on [0, 1] (ImageRefused for one
    this app will not read)."""
    array = read_image(source, colour=colour, name=name).astype(np.float32) / 255.0
    return torch.from_numpy(array).reshape(array.shape[0], array.shape[1], -1).permute(2, 0, 1)


def image_to_tensor(source: str | Path | BinaryIO, shape: tuple[int, int, int], name: str | None = None) -> torch.Tensor:
    """An image file or upload as a C x H x W float tensor on [0, 1], converted and resized to `shape`
    (ImageRefused for one this app will not read)."""
    return fit_to_input(read_unit_image(source, colour=shape[0] == 3, name=name), shape)


def fit_to_input(image: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """A C x H x W image on [0, 1] (a read file, a drawing) resized to a model's input height and width."""
    if image.shape[1:] != shape[1:]:
        image = TF.resize(image, list(shape[1:]), antialias=True)
    return image.clamp(0, 1)


class OnUnitPixels(nn.Module):
    """A run's model as it answers: images on [0, 1] in, normalised, the mean logits of its test-time views
    (`tta`) out. What predictions, exports (ONNX) and attributions (gradients with respect to pixels) all run.
    (Not in core.preprocess: exported scripts copy that module's lines, imports included, and have no core.)"""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float], tta: str = "none") -> None:
        super().__init__()
        self.model = model
        self.views = TEST_TIME_AUGMENTATIONS[tta]
        normalize = Normalizer(mean, std)
        self.register_buffer("mean", normalize.mean)  # buffers: they follow the module to its device
        self.register_buffer("std", normalize.std)

    @classmethod
    def of(cls, checkpoint: Checkpoint) -> "OnUnitPixels":
        """The checkpoint's model with its run's normalisation and test-time augmentation."""
        return cls(checkpoint.model, checkpoint.meta["mean"], checkpoint.meta["std"], checkpoint.tta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.views(self.model, (x - self.mean) / self.std)


@torch.inference_mode()
def predict_tensor(checkpoint: Checkpoint, unit_images: torch.Tensor) -> torch.Tensor:
    """Class probabilities (N x K) for images on [0, 1] of the checkpoint's input shape, with the test-time
    augmentation its run evaluated with."""
    checkpoint.model.eval()
    return OnUnitPixels.of(checkpoint)(unit_images).softmax(1)


def predict_files(checkpoint: Checkpoint, paths: list[str]) -> list[dict[str, Any]]:
    """One result per path, in order; an unreadable file gets an `error` instead of a prediction."""
    shape = tuple(checkpoint.meta["input_shape"])
    threshold = checkpoint.meta.get("threshold")  # None in checkpoints saved before thresholds: every answer sure
    results: list[dict[str, Any]] = [{"path": p} for p in paths]
    tensors, readable = [], []
    for i, path in enumerate(paths):
        try:
            tensors.append(image_to_tensor(path, shape))
            readable.append(i)
        except ImageRefused as exc:
            results[i]["error"] = f"cannot read image: {exc}"
    if tensors:
        probs = predict_tensor(checkpoint, torch.stack(tensors))
        for i, p in zip(readable, probs):
            if not bool(torch.isfinite(p).all()):  # finite weights can still overflow
                results[i]["error"] = "the model's scores for this image are not finite numbers"
                continue
            index = int(p.argmax())
            results[i].update(
                {"class": checkpoint.class_names[index], "index": index, "probability": float(p[index]),
                 "sure": is_sure(float(p[index]), threshold), "threshold": threshold,
                 "probabilities": [float(v) for v in p]}
            )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.predict", description="Predict image files with a checkpoint.")
    parser.add_argument("--checkpoint", required=True, help="a .safetensors file with its .json beside it")
    parser.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per image")
    args = parser.parse_args(argv)
    try:
        checkpoint = load_checkpoint(args.checkpoint)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    results = predict_files(checkpoint, args.images)
    if args.json:
        print(json.dumps(results, allow_nan=False))
    else:
        for r in results:
            name = Path(r["path"]).name
            if "error" in r:
                print(f"{name}: {r['error']}")
            else:
                doubt = "" if r["sure"] else f", not sure: below the threshold {r['threshold']:.1%}"
                print(f"{name}: {r['class']} ({r['probability']:.1%}{doubt})")
    return 0 if all("error" not in r for r in results) else 2


if __name__ == "__main__":
    sys.exit(main())
