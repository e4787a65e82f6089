"""Look inside a trained network: its first-layer filters, every layer's feature maps, why it gave an answer.

python -m core.inspect --checkpoint runs/.../best.safetensors digit.png --out DIR \
    [--method saliency|integrated-gradients|gradcam] [--json]

writes into DIR `filters.png` (the first convolution's kernels), one `maps-<layer>.png`
per convolution (its activation maps for the image), `saliency.png` (the map over the
image) and `saliency.npy` (H x W floats on [0, 1], the image's own size).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.transforms.v2 import functional as TF
from torchvision.utils import make_grid

from core.checkpoint import CheckpointError, load_checkpoint
from core.confidence import is_sure
from core.images import ImageRefused
from core.models import first_convolution, layer_kind, numbered_layers
from core.predict import fit_to_input, predict_tensor, read_unit_image
from core.preprocess import Normalizer
from core.saliency import METHODS, attribution

SHOWN_LAYERS = {nn.Conv2d: "conv", nn.MaxPool2d: "pool", nn.AvgPool2d: "pool"}  # what a feature-map view walks through


@dataclass(frozen=True)
class FeatureMaps:
    layer: str  # conv1, pool1, conv2, ...: numbered in the order the image passes them
    module: str  # the module's path in the network, e.g. "4.body.0"
    kind: str  # conv or pool
    module_type: str  # the module's class: Conv2d, MaxPool2x2, AvgPool2d, Whitening, ...
    maps: torch.Tensor  # channels x height x width, on the CPU


def shown_layers(model: nn.Module) -> dict[str, str]:
    """{module path: conv1, pool1, conv2, ...} for every convolution and pooling layer, in the network's order."""
    return numbered_layers(model, SHOWN_LAYERS)


@torch.inference_mode()
def feature_maps(model: nn.Module, mean: list[float], std: list[float], image: torch.Tensor) -> list[FeatureMaps]:
    """Every convolution's and pooling layer's output for one image (C x H x W on [0, 1]), in the order the image
    passes them. Forward hooks on a private copy of the model: torchvision's `create_feature_extractor` traces
    with torch.fx, which patches `nn.Module.__call__` for the whole process while it traces, and broke the
    forward passes other sessions of the server ran at that moment."""
    model = copy.deepcopy(model).eval()
    names = shown_layers(model)
    modules = dict(model.named_modules())
    outputs: dict[str, torch.Tensor] = {}
    hooks = [modules[path].register_forward_hook(lambda _m, _i, out, path=path: outputs.setdefault(path, out))
             for path in names]
    model(Normalizer(mean, std, image.device)(image.unsqueeze(0).float()))
    for hook in hooks:
        hook.remove()
    return [FeatureMaps(names[path], path, layer_kind(modules[path], SHOWN_LAYERS), type(modules[path]).__name__,
                        out[0].float().cpu()) for path, out in outputs.items()]


def convolution_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """(module path, layer) of every convolution, in order: conv1 first."""
    return [(path, m) for path, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def tile(images: torch.Tensor, cell: int, columns: int = 8) -> np.ndarray:
    """N x C x h x w floats as one uint8 grid (H x W, or H x W x 3 for colour): each image stretched to its own
    range, enlarged to `cell` pixels without blurring, a light line between them."""
    low = images.flatten(1).amin(1).view(-1, 1, 1, 1)
    high = images.flatten(1).amax(1).view(-1, 1, 1, 1)
    scaled = (images - low) / (high - low).clamp_min(1e-12)
    scaled = TF.resize(scaled, [cell, cell], interpolation=TF.InterpolationMode.NEAREST)
    grid = make_grid(scaled, nrow=min(columns, len(images)), padding=2, pad_value=1.0)
    array = (grid.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return array[..., 0] if images.shape[1] == 1 else array


def filter_grid(weight: torch.Tensor, cell: int = 40) -> np.ndarray:
    """A convolution's kernels (out x in x k x k) as a grid: colour kernels of a first layer in colour,
    otherwise one grey kernel per input channel, a row of them per output channel."""
    weight = weight.detach().float().cpu()
    if weight.shape[1] in (1, 3):
        return tile(weight, cell)
    return tile(weight.reshape(-1, 1, *weight.shape[2:]), cell, columns=weight.shape[1])


def overlay(image: torch.Tensor, saliency: torch.Tensor) -> np.ndarray:
    """The image in grey with the saliency on top in red (H x W x 3 uint8)."""
    grey = image.float().mean(0).cpu().unsqueeze(-1)
    alpha = saliency.float().cpu().clamp(0, 1).unsqueeze(-1) * 0.85
    red = torch.tensor([1.0, 0.1, 0.05])
    rgb = grey * 0.8 * (1 - alpha) + red * alpha
    return (rgb.clamp(0, 1) * 255).round().byte().numpy()


def _save(path: Path, array: np.ndarray, width: int | None = None) -> None:
    img = Image.fromarray(array)
    if width and img.width < width:
        img = img.resize((width, round(img.height * width / img.width)), Image.NEAREST)
    img.save(path)


def inspect_file(checkpoint_path: str, image_path: str, out: Path, method: str) -> dict:
    """Write the inspection files for one image and return what --json prints (CheckpointError, ImageRefused
    or ValueError for what cannot be read or done)."""
    checkpoint = load_checkpoint(checkpoint_path)
    model, meta = checkpoint.model, checkpoint.meta
    shape = tuple(meta["input_shape"])
    own = read_unit_image(image_path, colour=shape[0] == 3)
    x = fit_to_input(own, shape)
    probs = predict_tensor(checkpoint, x.unsqueeze(0))[0]
    index = int(probs.argmax())
    threshold = meta.get("threshold")
    saliency = attribution(model, meta["mean"], meta["std"], x, index, method, checkpoint.tta)
    out.mkdir(parents=True, exist_ok=True)
    report = {"class": checkpoint.class_names[index], "probability": float(probs[index]),
              "sure": is_sure(float(probs[index]), threshold), "threshold": threshold,
              "method": method, "feature_maps": [], "filters": None}
    first = first_convolution(model)
    if first is not None:
        _save(out / "filters.png", filter_grid(first.weight))
        report["filters"] = str(out / "filters.png")
    for fm in feature_maps(model, meta["mean"], meta["std"], x):
        if fm.kind != "conv":
            continue
        path = out / f"maps-{fm.layer}.png"
        _save(path, tile(fm.maps.unsqueeze(1), cell=max(fm.maps.shape[-1], 48)))
        report["feature_maps"].append({"layer": fm.layer, "channels": fm.maps.shape[0], "height": fm.maps.shape[1],
                                       "width": fm.maps.shape[2], "path": str(path)})
    own_size = TF.resize(saliency[None], list(own.shape[1:]), antialias=True)[0].clamp(0, 1)
    np.save(out / "saliency.npy", own_size.numpy().astype(np.float32))
    _save(out / "saliency.png", overlay(own, own_size), width=280)
    report["saliency"] = str(out / "saliency.npy")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.inspect", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a .safetensors file with its .json beside it")
    parser.add_argument("image", help="an image file (PNG, JPEG, ...)")
    parser.add_argument("--out", required=True, help="the folder the pictures go into")
    parser.add_argument("--method", default="saliency", choices=list(METHODS))
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args(argv)
    try:
        report = inspect_file(args.checkpoint, args.image, Path(args.out), args.method)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ImageRefused, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, allow_nan=False))
    else:
        doubt = "" if report["sure"] else " (not sure)"
        print(f"{report['class']} ({report['probability']:.1%}){doubt}; pictures in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
