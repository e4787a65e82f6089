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


def to_unit(images_u8: torch.Tensor) -> torch.Tensor:
    return images_u8.float().div_(255.0)
