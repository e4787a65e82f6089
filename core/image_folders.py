"""A folder of images as a dataset: one sub-folder per class, or `train/` and `test/` (and `val/`) folders of them.

The layout torchvision's `ImageFolder` users and most downloaded datasets have
(`train/cat/0001.jpg`, `test/cat/0001.jpg`) keeps its splits as given; a single
folder of class folders gets a seeded hold-out as its test set. Images are decoded
straight into one preallocated uint8 tensor per split (JPEGs by torchvision's
decoder), so 50,000 CIFAR-10 images take about two seconds and less memory than
twice their pixels. (A thread per core decoded no faster on two cores: the
per-image Python work holds the interpreter's lock.)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torchvision.datasets.folder import IMG_EXTENSIONS

from core.images import ImageRefused, read_image_chw

SPLIT_NAMES = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
MAX_DECODED_BYTES = 1 << 30  # a folder's pixels once decoded (CIFAR-10's 60,000 images: 184 MB)
Progress = Callable[[int, int], None]  # (images decoded, images in all)
PROGRESS_EVERY = 1000  # images between two progress reports


class FolderRefused(ValueError):
    """A folder that is not a dataset this app reads; the message names the file or folder."""


def _visible_dirs(folder: Path) -> dict[str, Path]:
    """Sub-folders by name; hidden ones (.ipynb_checkpoints, __MACOSX, _private) are never classes or splits."""
    try:
        return {e.name: Path(e.path) for e in os.scandir(folder) if e.is_dir() and not e.name.startswith((".", "_"))}
    except OSError as exc:
        raise FolderRefused(f"{folder.name}: cannot be listed ({exc.strerror or exc}).") from None


def find_splits(root: Path) -> dict[str, Path] | None:
    """{train, test[, val]: folder} when `root` holds train/ and test/ folders (any case), else None. A val/ folder
    without class folders is ignored; train/ and val/ without test/ (ImageNet's layout) make val/ the test set."""
    by_lower = {name.lower(): path for name, path in _visible_dirs(root).items()}
    found = {split: next((by_lower[n] for n in names if n in by_lower), None) for split, names in SPLIT_NAMES.items()}
    if found["val"] is not None and not _visible_dirs(found["val"]):
        found["val"] = None
    if found["test"] is None:
        found["test"], found["val"] = found["val"], None
    if found["train"] is None or found["test"] is None:
        return None
    return {split: path for split, path in found.items() if path is not None}


def list_classes(folder: Path, root: Path) -> dict[str, list[Path]]:
    """{class name: its image files, sorted}, classes sorted; FolderRefused for an empty class or none."""
    classes = sorted(_visible_dirs(folder))
    where = folder.relative_to(root.parent)
    if not classes:
        raise FolderRefused(f"{where}: no class sub-folders found.")
    extensions = tuple(IMG_EXTENSIONS)
    files = {}
    for name in classes:
        with os.scandir(folder / name) as entries:
            files[name] = sorted(Path(e.path) for e in entries if e.is_file() and not e.name.startswith(".")
                                 and e.name.lower().endswith(extensions))
        if not files[name]:
            raise FolderRefused(f"{where}/{name}: this class folder holds no images.")
    return files


def _decode(file: Path, root: Path) -> torch.Tensor:
    try:
        return read_image_chw(file)
    except ImageRefused as exc:
        raise FolderRefused(str(exc).replace(file.name, str(file.relative_to(root)), 1)) from None


def decode_all(files: list[Path], root: Path, progress: Progress | None = None, done_before: int = 0,
               total: int | None = None, decoded_before: int = 0) -> torch.Tensor:
    """The images as one N x C x H x W uint8 tensor, each decoded straight into it; all must have one size (grey
    ones are made colour when any image is). FolderRefused names the first file that does not fit, or says the
    folder's pixels (with `decoded_before` bytes of its other splits) pass MAX_DECODED_BYTES."""
    total = total or len(files)
    first = _decode(files[0], root)
    channels, height, width = first.shape
    if decoded_before + len(files) * 3 * height * width > MAX_DECODED_BYTES:  # checked before decoding the rest
        raise FolderRefused(f"{root.name}: its images of {width} x {height} would decode to more than "
                            f"{MAX_DECODED_BYTES >> 20:,} MB of pixels; use fewer or smaller images.")
    images = torch.empty((len(files), channels, height, width), dtype=torch.uint8)
    colour = []  # images in colour while the tensor is grey: redone below
    for i, file in enumerate(files):
        image = first if i == 0 else _decode(file, root)
        if image.shape[1:] != (height, width):
            raise FolderRefused(f"{file.relative_to(root)} is {image.shape[2]} x {image.shape[1]} but "
                                f"{files[0].relative_to(root)} is {width} x {height}: all images must have one size.")
        if image.shape[0] > channels:
            colour.append(i)
        else:
            images[i] = image  # a grey image in a colour tensor is broadcast to its three channels
        if progress and i % PROGRESS_EVERY == 0:
            progress(done_before + i, total)
    if colour:  # a folder of grey images with some in colour: the whole split becomes colour
        images = images.expand(-1, 3, -1, -1).contiguous()
        for i in colour:
            images[i] = _decode(files[i], root)
    if progress:
        progress(done_before + len(files), total)
    return images
