"""Datasets as whole uint8 tensors, loaded through torchvision's own classes.

A dataset is read once per process into N x C x H x W uint8 tensors; training
then cuts batches by index on the device, so no per-image Python work is left
in the loop. Missing files are installed from a folder of official archives
(``PLAYGROUND_ARCHIVE_DIR``) before any download is tried.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision import datasets as tv_datasets
from torchvision.datasets.utils import check_integrity, extract_archive

from core.files import atomic_write, safe_name

MAX_CLASSES = 10_000  # a dataset's classes: a checkpoint with more is refused, an import too

DATA_DIR_VAR = "PLAYGROUND_DATA_DIR"
ARCHIVE_DIR_VAR = "PLAYGROUND_ARCHIVE_DIR"


class DatasetUnavailable(RuntimeError):
    """The dataset is neither on disk nor installable; the message says what to do."""


@dataclass(frozen=True)
class ImageDataset:
    """Train and test images (uint8, N x C x H x W) with labels and what a model needs to know."""

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    val_count: int = 0  # the last val_count training images are the validation set the dataset came with
    layout: str = ""  # how a user's folder was read into splits, for the Data page

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class DatasetSource:
    """How one built-in dataset is found, installed and read."""

    title: str
    tv_class: type
    archive_subdir: str  # folder inside PLAYGROUND_ARCHIVE_DIR
    description: str
    train_size: int  # images in its training split (the queue's time estimates, before any is loaded)


DATASETS: dict[str, DatasetSource] = {
    "mnist": DatasetSource(
        "MNIST", tv_datasets.MNIST, "mnist", "70,000 handwritten digits, 28 x 28 grey", 60_000
    ),
    "fashion-mnist": DatasetSource(
        "Fashion-MNIST",
        tv_datasets.FashionMNIST,
        "fashion-mnist",
        "70,000 Zalando clothing images in 10 classes, 28 x 28 grey",
        60_000,
    ),
    "cifar10": DatasetSource(
        "CIFAR-10", tv_datasets.CIFAR10, "", "60,000 small photos in 10 classes, 32 x 32 colour", 50_000
    ),
}


def data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_VAR, "data"))


def archive_dir() -> Path | None:
    value = os.environ.get(ARCHIVE_DIR_VAR)
    return Path(value) if value else None


def _archive_files(source: DatasetSource) -> list[tuple[str, str]]:
    """(file name, md5) of the official archives, from torchvision's own lists."""
    cls = source.tv_class
    if issubclass(cls, tv_datasets.MNIST):
        return list(cls.resources)
    return [(cls.filename, cls.tgz_md5)]


def _extract_root(source: DatasetSource, root: Path) -> Path:
    """Where torchvision expects the unpacked files of this dataset."""
    if issubclass(source.tv_class, tv_datasets.MNIST):
        return root / source.tv_class.__name__ / "raw"
    return root


def is_present(name: str, root: Path | None = None) -> bool:
    """True when torchvision would load `name` from `root` without downloading."""
    source = DATASETS[name]
    root = Path(root or data_dir())
    cls = source.tv_class
    if issubclass(cls, tv_datasets.MNIST):
        raw = _extract_root(source, root)
        return all((raw / Path(f).stem).is_file() for f, _ in cls.resources)
    folder = root / cls.base_folder
    return all(check_integrity(str(folder / f), md5) for f, md5 in cls.train_list + cls.test_list)


def install_from_archives(name: str, root: Path, archives: Path) -> bool:
    """Unpack official archives for `name` from `archives` into `root`.

    Returns False when the archives are not there; raises DatasetUnavailable when
    one is there but its md5 differs from torchvision's list (a corrupted copy).
    """
    source = DATASETS[name]
    folder = archives / source.archive_subdir
    files = _archive_files(source)
    if not all((folder / f).is_file() for f, _ in files):
        return False
    for filename, md5 in files:
        if not check_integrity(str(folder / filename), md5):
            raise DatasetUnavailable(
                f"{folder / filename} is corrupted: its md5 is not {md5}, the one "
                f"torchvision lists for {source.title}. Replace it with the official file."
            )
    target = _extract_root(source, root)
    target.mkdir(parents=True, exist_ok=True)
    for filename, _ in files:
        extract_archive(str(folder / filename), str(target))
    return True


def _missing_message(name: str, root: Path, reason: str) -> str:
    source = DATASETS[name]
    files = ", ".join(f for f, _ in _archive_files(source))
    subdir = f"{source.archive_subdir}/" if source.archive_subdir else ""
    return (
        f"{source.title} is not in {root} and could not be downloaded ({reason}). "
        f"Put the official files ({files}) in a folder as <folder>/{subdir}<file> and set "
        f"{ARCHIVE_DIR_VAR}=<folder>, or point {DATA_DIR_VAR} at a folder where torchvision "
        f"has already unpacked {source.title}."
    )


def _open_tv_dataset(name: str, root: Path, train: bool):
    """torchvision's dataset object, installing from archives or downloading if needed."""
    source = DATASETS[name]
    if not is_present(name, root):
        archives = archive_dir()
        installed = archives is not None and install_from_archives(name, root, archives)
        if not installed:
            try:
                source.tv_class(str(root), train=True, download=True)
            except Exception as exc:  # network errors come in many types
                raise DatasetUnavailable(_missing_message(name, root, str(exc) or type(exc).__name__)) from exc
    try:
        return source.tv_class(str(root), train=train, download=False)
    except RuntimeError as exc:
        raise DatasetUnavailable(_missing_message(name, root, str(exc))) from exc


def _as_nchw(images) -> torch.Tensor:
    """torchvision keeps MNIST as N x H x W tensors and CIFAR as N x H x W x C arrays."""
    if isinstance(images, np.ndarray):
        return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    return images.unsqueeze(1).contiguous()


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (sample) std of uint8 images, on the [0, 1] scale.

    Computed from each channel's histogram of the 256 values, exactly, without a float copy of the
    images (a float64 copy of MNIST's training set was 376 MB, twice over: the peak of a whole run).
    """
    values = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = torch.bincount(images[:, c].reshape(-1), minlength=256).double()
        n = counts.sum()
        mean = (counts * values).sum() / n
        means.append(float(mean))
        stds.append(float(((counts * (values - mean) ** 2).sum() / max(n - 1, 1)).sqrt()))
    return tuple(means), tuple(stds)


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, root: str) -> ImageDataset:
    train = _open_tv_dataset(name, Path(root), train=True)
    test = _open_tv_dataset(name, Path(root), train=False)
    train_images = _as_nchw(train.data)
    mean, std = channel_stats(train_images)
    return ImageDataset(
        name=name,
        train_images=train_images,
        train_labels=torch.as_tensor(train.targets, dtype=torch.long),
        test_images=_as_nchw(test.data),
        test_labels=torch.as_tensor(test.targets, dtype=torch.long),
        class_names=tuple(train.classes),
        mean=mean,
        std=std,
    )


_LOADING = threading.Lock()  # visitors arriving together wait for one load instead of each making a copy


def load_dataset(name: str, root: Path | str | None = None) -> ImageDataset:
    """Load a built-in dataset by name; a second call in the same process (any thread) is free."""
    if name not in DATASETS:
        raise DatasetUnavailable(f"Unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")
    with _LOADING:
        return _load_cached(name, str(Path(root or data_dir()).resolve()))


def train_val_split(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded split of range(n) into train and validation indices."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"validation split must be in [0, 1), got {val_fraction}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(n * val_fraction))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def train_val_indices(data: ImageDataset, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and validation indices into the training images: the dataset's own validation set when it came with
    one (a val/ folder), else a seeded split of `val_fraction`."""
    n = len(data.train_labels)
    if data.val_count:
        return torch.arange(n - data.val_count), torch.arange(n - data.val_count, n)
    return train_val_split(n, val_fraction, seed)


SAVED_SUFFIX = ".dataset.safetensors"


def save_dataset(data: ImageDataset, folder: Path) -> Path:
    """Keep an uploaded dataset as one safetensors file (named by its content), so that a worker
    process, a resumed run and a restarted server can load it by path."""
    from safetensors.torch import save_file

    tensors = {"train_images": data.train_images, "train_labels": data.train_labels,
               "test_images": data.test_images, "test_labels": data.test_labels}
    meta = {"name": data.name, "class_names": list(data.class_names), "mean": list(data.mean), "std": list(data.std),
            "val_count": data.val_count, "layout": data.layout}
    digest = hashlib.sha256(json.dumps(meta).encode())  # two datasets of the same pixels but other splits or names
    for t in tensors.values():
        digest.update(t.contiguous().numpy().tobytes())
    path = folder / f"{safe_name(data.name)}-{digest.hexdigest()[:12]}{SAVED_SUFFIX}"
    if not path.is_file():
        atomic_write(path, lambda p: save_file({k: v.contiguous() for k, v in tensors.items()}, str(p),
                                               metadata={"json": json.dumps(meta)}))
    return path


def load_saved_dataset(path: str | Path) -> ImageDataset:
    """A dataset that save_dataset wrote; DatasetUnavailable when the file is gone or not one."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["json"])
        t = load_file(str(path))
        val_count = meta.get("val_count", 0)
        if not isinstance(val_count, int) or not 0 <= val_count < len(t["train_labels"]):
            raise ValueError(f"val_count {val_count!r} does not fit its training images")
        return ImageDataset(meta["name"], t["train_images"], t["train_labels"], t["test_images"], t["test_labels"],
                            tuple(meta["class_names"]), tuple(meta["mean"]), tuple(meta["std"]), val_count,
                            str(meta.get("layout", "")))
    except (OSError, SafetensorError, KeyError, TypeError, ValueError) as exc:
        raise DatasetUnavailable(f"The uploaded dataset {Path(path).name} is no longer readable ({exc}); upload it again.") from None
