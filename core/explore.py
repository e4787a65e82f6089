"""What the Data page shows about a dataset: samples, balance, mean images, intensities."""

from __future__ import annotations

import torch

from core.augment import augment_batch
from core.data import ImageDataset, train_val_indices
from core.preprocess import to_unit


def random_indices(n: int, count: int, seed: int) -> torch.Tensor:
    """`count` distinct indices of range(n), reproducible by seed."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:count]


def examples_per_class(labels: torch.Tensor, num_classes: int, per_class: int, seed: int) -> list[torch.Tensor]:
    """For each class, up to `per_class` random indices of its images."""
    order = random_indices(len(labels), len(labels), seed)
    shuffled = labels[order]
    return [order[shuffled == c][:per_class] for c in range(num_classes)]


def class_balance(dataset: ImageDataset, val_split: float, seed: int) -> dict[str, list[int]]:
    """Images per class in train, validation (as the engine will carve it) and test."""
    train_idx, val_idx = train_val_indices(dataset, val_split, seed)
    k = dataset.num_classes
    return {
        "train": dataset.train_labels[train_idx].bincount(minlength=k).tolist(),
        "validation": dataset.train_labels[val_idx].bincount(minlength=k).tolist(),
        "test": dataset.test_labels.bincount(minlength=k).tolist(),
    }


def mean_images(dataset: ImageDataset) -> torch.Tensor:
    """The average training image of each class, K x C x H x W on [0, 1] (one class in memory at a time)."""
    return torch.stack([dataset.train_images[dataset.train_labels == k].float().mean(0) / 255.0
                        if (dataset.train_labels == k).any() else torch.zeros(dataset.input_shape)
                        for k in range(dataset.num_classes)])


def pixel_histogram(dataset: ImageDataset, bins: int = 32, chunk: int = 10_000) -> tuple[list[float], list[list[int]]]:
    """Bin centres on [0, 1] and, per channel, how many training pixels fall in each bin."""
    width = 256 // bins
    counts = torch.zeros(dataset.input_shape[0], 256, dtype=torch.long)
    for start in range(0, len(dataset.train_images), chunk):
        block = dataset.train_images[start:start + chunk]
        for c in range(block.shape[1]):
            counts[c] += torch.bincount(block[:, c].flatten().long(), minlength=256)
    binned = counts.view(counts.shape[0], bins, width).sum(2)
    centres = [((b + 0.5) * width - 0.5) / 255.0 for b in range(bins)]
    return centres, binned.tolist()


def augmentation_preview(images_u8: torch.Tensor, names: tuple[str, ...], seed: int) -> torch.Tensor:
    """The training-time augmentation of `images_u8`, as floats on [0, 1]."""
    return augment_batch(to_unit(images_u8.clone()), names, torch.Generator().manual_seed(seed))
