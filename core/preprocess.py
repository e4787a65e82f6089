"""From stored uint8 images to what a model eats: floats on [0, 1], then normalised."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class Normalizer:
    """Per-channel (x - mean) / std, with the constants kept on the model's device."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], device: torch.device | str = "cpu") -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    def __call__(self, unit_images: torch.Tensor) -> torch.Tensor:
        """`unit_images` are floats on [0, 1], N x C x H x W."""
        return (unit_images - self.mean) / self.std


INPUT_SCALINGS = {
    "standardize": "each channel standardised with the training set's mean and std",
    "unit": "pixels on [0, 1], not normalised (ToTensor alone)",
    "symmetric": "pixels on [-1, 1]: (x - 0.5) / 0.5",
}


def input_stats(scaling: str, mean: Sequence[float], std: Sequence[float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) a Normalizer needs for an input scaling, given the dataset's own statistics."""
    channels = len(mean)
    if scaling == "unit":
        return (0.0,) * channels, (1.0,) * channels
    if scaling == "symmetric":
        return (0.5,) * channels, (0.5,) * channels
    return tuple(mean), tuple(std)


def to_unit(images_u8: torch.Tensor) -> torch.Tensor:
    return images_u8.float().div_(255.0)
