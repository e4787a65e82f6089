"""Augmentation of whole batches on the training device, with per-image randomness.

torchvision's v2 transform classes draw one set of random parameters per call,
so a batch passed to ``v2.RandomRotation`` turns every image by the same angle.
Here each image draws its own parameters and the work is done in a few tensor
operations per batch (torchvision's v2 kernels where they apply), which is both
what the course notebooks mean by augmentation and fast.

Batches are float images on [0, 1], N x C x H x W, before normalisation.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

Augmentation = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]

ROTATION_DEGREES = 15.0
CROP_PADDING = 2  # pixels of zero padding for the random crop (airbench uses 2 on CIFAR)
ERASE_SCALE = (0.02, 0.2)  # fraction of the image area, as torchvision's RandomErasing
GRAYSCALE_P = 0.1  # torchvision's RandomGrayscale default


def _coin(x: torch.Tensor, gen: torch.Generator | None, p: float = 0.5) -> torch.Tensor:
    """A per-image boolean mask shaped to broadcast over C, H, W."""
    return (torch.rand(x.shape[0], 1, 1, 1, device=x.device, generator=gen) < p)


def _uniform(n: int, low: float, high: float, x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, device=x.device, generator=gen)


def horizontal_flip(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    return torch.where(_coin(x, gen), TF.horizontal_flip(x), x)


def invert(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    return torch.where(_coin(x, gen), TF.invert(x), x)


def _affine(x: torch.Tensor, angles: torch.Tensor, shifts: torch.Tensor, mode: str) -> torch.Tensor:
    """Rotate each image by its angle (radians) and shift it by its (dx, dy) in pixels."""
    n, _, h, w = x.shape
    cos, sin = angles.cos(), angles.sin()
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * h / w
    theta[:, 1, 0], theta[:, 1, 1] = sin * w / h, cos
    theta[:, 0, 2] = shifts[:, 0] * 2 / w
    theta[:, 1, 2] = shifts[:, 1] * 2 / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)


def rotation(x: torch.Tensor, gen: torch.Generator | None = None, degrees: float = ROTATION_DEGREES) -> torch.Tensor:
    limit = math.radians(degrees)
    angles = _uniform(x.shape[0], -limit, limit, x, gen)
    return _affine(x, angles, torch.zeros(x.shape[0], 2, device=x.device), "bilinear")


def random_crop(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """Pad by CROP_PADDING with zeros and crop back at a random offset: a whole-pixel shift."""
    shifts = torch.randint(-CROP_PADDING, CROP_PADDING + 1, (x.shape[0], 2), device=x.device, generator=gen)
    return _affine(x, torch.zeros(x.shape[0], device=x.device), shifts.to(x.dtype), "nearest")


def random_erasing(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """Half of the images get one rectangle (2-20 % of the area, aspect 0.3-3.3) set to zero."""
    n, _, h, w = x.shape
    area = _uniform(n, *ERASE_SCALE, x, gen) * h * w
    log_ratio = _uniform(n, math.log(0.3), math.log(1 / 0.3), x, gen)
    eh = (area * log_ratio.exp()).sqrt().round().clamp(1, h)
    ew = (area / log_ratio.exp()).sqrt().round().clamp(1, w)
    top = (torch.rand(n, device=x.device, generator=gen) * (h - eh + 1)).floor()
    left = (torch.rand(n, device=x.device, generator=gen) * (w - ew + 1)).floor()
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (ys >= top.view(n, 1, 1)) & (ys < (top + eh).view(n, 1, 1)) & (xs >= left.view(n, 1, 1)) & (xs < (left + ew).view(n, 1, 1))
    erase = inside.unsqueeze(1) & _coin(x, gen)
    return x.masked_fill(erase, 0.0)


def random_grayscale(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """One colour image in ten turned grey (kept as three channels); grey images pass unchanged."""
    if x.shape[1] != 3:
        return x
    return torch.where(_coin(x, gen, GRAYSCALE_P), TF.rgb_to_grayscale(x, num_output_channels=3), x)


AUGMENTATIONS: dict[str, Augmentation] = {
    "rotate": rotation,
    "crop": random_crop,
    "flip": horizontal_flip,
    "invert": invert,
    "erase": random_erasing,
    "grayscale": random_grayscale,  # last: adding a name never changes the random draws of the others
}

DESCRIPTIONS: dict[str, str] = {
    "rotate": f"random rotation up to ± the degrees set for it ({ROTATION_DEGREES:g}° by default)",
    "crop": f"random crop after {CROP_PADDING}-pixel zero padding",
    "flip": "horizontal flip of half the images (not for digits!)",
    "invert": "inverts the colours of half the images",
    "erase": "random erasing of a rectangle in half the images",
    "grayscale": f"turns {GRAYSCALE_P:.0%} of colour images grey",
}


def parse_augmentations(names: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Accept 'rotate,crop' or a list; refuse unknown names with the valid ones."""
    if not names:
        return ()
    if isinstance(names, str):
        names = [n for n in names.replace(" ", "").split(",") if n]
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"Augmentations must be names, got {names!r:.60}.")
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"Unknown augmentation {', '.join(unknown)}; choose from {', '.join(AUGMENTATIONS)}.")
    return tuple(dict.fromkeys(names))


def augment_batch(x: torch.Tensor, names: tuple[str, ...], gen: torch.Generator | None = None,
                  rotate_degrees: float = ROTATION_DEGREES) -> torch.Tensor:
    """Apply the named augmentations in a fixed order (the order of AUGMENTATIONS)."""
    for name, fn in AUGMENTATIONS.items():
        if name in names:
            x = rotation(x, gen, rotate_degrees) if fn is rotation else fn(x, gen)
    return x


# Test-time augmentation: the logits averaged over a few fixed views of each (normalised) image, as airbench
# evaluates. Every prediction of a run uses its config's choice: validation, the test set, the drawn image.
TestTimeAugmentation = Callable[[Callable[[torch.Tensor], torch.Tensor], torch.Tensor], torch.Tensor]


def _as_is(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return model(x)


def _mirrored(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return (model(x) + model(x.flip(3))) / 2


def _mirrored_and_shifted(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Half the image and its mirror; a quarter each the same one pixel up-left and one down-right (reflected edges)."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = (_mirrored(model, padded[..., :h, :w]) + _mirrored(model, padded[..., 2:, 2:])) / 2
    return (_mirrored(model, x) + shifted) / 2


TEST_TIME_AUGMENTATIONS: dict[str, TestTimeAugmentation] = {
    "none": _as_is,
    "flip": _mirrored,
    "flip-translate": _mirrored_and_shifted,
}

def test_time_views_fit(name: str, height: int, width: int) -> bool:
    """Whether the named views can be taken of images of this size: flip-translate shifts by a pixel with
    reflected edges, which needs at least 2 x 2 pixels."""
    return name != "flip-translate" or min(height, width) >= 2


TEST_TIME_DESCRIPTIONS: dict[str, str] = {
    "none": "each image as it is",
    "flip": "the mean of the image's and its mirror's logits: 2 passes (not for digits!)",
    "flip-translate": "the image and its mirror, and both shifted by a pixel either way: 6 passes (airbench's)",
}
