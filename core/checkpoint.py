"""Checkpoints that rebuild themselves: safetensors weights plus a JSON description.

`NAME.safetensors` holds the tensors (never a pickle); `NAME.json` beside it the
full training config, dataset, class names, input shape and normalisation, so
that the pair alone rebuilds the model and predicts.

A checkpoint may come from another machine or another version (the Runs page
imports zips, `core.predict` takes any path), so every value of the description
is checked against the others and against the weights before a model is built:
one validator for every door that loads one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from core.augment import TEST_TIME_AUGMENTATIONS, test_time_views_fit
from core.config import ANY_NUMBER, LIST_LIMITS, Limit, within
from core.data import MAX_CLASSES
from core.files import atomic_write, read_json, write_json
from core.models import MODELS, build_model, check_fits

FORMAT_VERSION = 1
MAX_DESCRIPTION_BYTES = 1 << 20  # a description with 1,000 class names is about 30 kB
MAX_WEIGHTS_BYTES = 512 << 20
MAX_SIDE = 4096  # pixels of a model's input height or width: a square input of core.images' pixel limit
MAX_NAME_CHARS = 255


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here; the message says why."""


@dataclass(frozen=True)
class Checkpoint:
    model: nn.Module
    meta: dict[str, Any]

    @property
    def class_names(self) -> list[str]:
        return self.meta["class_names"]

    @property
    def tta(self) -> str:
        """The test-time augmentation its run predicted with (core.augment.TEST_TIME_AUGMENTATIONS)."""
        return (self.meta.get("config") or {}).get("tta", "none")


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, description) for a path given with either suffix or none."""
    stem = Path(path)
    if stem.suffix in (".safetensors", ".json"):
        stem = stem.with_suffix("")
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Save weights and description; `meta` needs model, num_classes, input_shape, class_names, mean, std."""
    weights_path, meta_path = checkpoint_paths(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    header = {"model": meta["model"], "num_classes": str(meta["num_classes"])}
    atomic_write(weights_path, lambda p: save_file(tensors, str(p), metadata=header))
    write_json(meta_path, {"format": FORMAT_VERSION, **meta})
    return weights_path


CLASSES = Limit("num_classes", 2, MAX_CLASSES, True)
CHANNELS = Limit("channels", 1, 3, True)  # 1 or 3: grey or colour
SIDE = Limit("side", 1, MAX_SIDE, True)
PROBABILITY = Limit("threshold", 0.0, 1.0, False)  # "not sure" below it (core.confidence); null in older checkpoints


def check_description(meta: Any, source: str) -> dict[str, Any]:
    """`meta` if it describes a model this app can build, else CheckpointError naming the first wrong value."""
    def refuse(what: str) -> CheckpointError:
        return CheckpointError(f"{source}: {what}.")

    if not isinstance(meta, dict):
        raise refuse(f"is not a checkpoint description (a JSON object), but {type(meta).__name__}")
    missing = [k for k in ("model", "num_classes", "input_shape", "class_names", "mean", "std") if k not in meta]
    if missing:
        raise refuse(f"lacks {', '.join(missing)}")
    name, num_classes, shape = meta["model"], meta["num_classes"], meta["input_shape"]
    if not isinstance(name, str) or name not in MODELS:
        raise refuse(f"names an unknown architecture {str(name)[:40]!r} (known: {', '.join(MODELS)})")
    if not within(CLASSES, num_classes):
        raise refuse(f"num_classes is {str(num_classes)[:40]}; it must be a whole number from 2 to {MAX_CLASSES:,}")
    if not (isinstance(shape, list) and len(shape) == 3 and within(CHANNELS, shape[0]) and shape[0] != 2
            and all(within(SIDE, side) for side in shape[1:])):
        raise refuse(f"input_shape is {str(shape)[:60]}; it must be [channels (1 or 3), height, width] with sides "
                     f"from 1 to {MAX_SIDE} pixels")
    names = meta["class_names"]
    if not (isinstance(names, list) and len(names) == num_classes
            and all(isinstance(n, str) and len(n) <= MAX_NAME_CHARS for n in names)):
        raise refuse(f"class_names must be {num_classes} names (texts of at most {MAX_NAME_CHARS} characters), "
                     f"one per class")
    for key in ("mean", "std"):
        values = meta[key]
        if not (isinstance(values, list) and len(values) == shape[0] and all(within(ANY_NUMBER, v) for v in values)):
            raise refuse(f"{key} must be {shape[0]} finite number{'s' * (shape[0] > 1)}, one per channel")
    # images are on [0, 1], so their mean is too, and their std at most 0.5: a wilder value is not a statistic
    if not all(0 <= v <= 1 for v in meta["mean"]):
        raise refuse("mean must be from 0 to 1 for every channel (pixel values are on [0, 1])")
    if not all(1e-6 <= v <= 1 for v in meta["std"]):
        raise refuse("std must be above zero and at most 1 for every channel")
    config = meta.get("config") or {}
    hidden = config.get("hidden") if isinstance(config, dict) else None
    size, fewest, most = LIST_LIMITS["hidden"]  # what the config accepts, so every model this app trains loads
    if not isinstance(config, dict) or not (hidden is None or (isinstance(hidden, list) and fewest <= len(hidden) <= most
                                                                and all(within(size, h) for h in hidden))):
        raise refuse(f"config must be an object whose hidden, if given, lists {fewest} to {most} layer sizes "
                     f"from {size.low} to {size.high:,}")
    tta = config.get("tta", "none")
    if not (isinstance(tta, str) and tta in TEST_TIME_AUGMENTATIONS):
        raise refuse(f"config's tta must be one of {', '.join(TEST_TIME_AUGMENTATIONS)}")
    if not test_time_views_fit(tta, *shape[1:]):
        raise refuse("config's tta flip-translate needs images of at least 2 x 2 pixels")
    if "dataset" in meta and not isinstance(meta["dataset"], str):
        raise refuse("dataset must be a name")
    if meta.get("threshold") is not None and not within(PROBABILITY, meta["threshold"]):
        raise refuse("threshold must be a probability from 0 to 1, or null")
    try:
        check_fits(name, tuple(shape), num_classes, tuple(hidden) if hidden else None)
    except ValueError as exc:
        raise refuse(str(exc)) from None
    return meta


def read_description(meta_path: Path) -> dict[str, Any]:
    """A checkpoint's .json, read within a size limit and checked (CheckpointError if it cannot be used)."""
    try:
        meta = read_json(meta_path, MAX_DESCRIPTION_BYTES)
    except FileNotFoundError:
        raise CheckpointError(f"{meta_path} is missing: a checkpoint is a .safetensors file with its .json "
                              f"beside it.") from None
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    return check_description(meta, meta_path.name)


def load_checkpoint(path: str | Path, expect_model: str | None = None, expect_classes: int | None = None) -> Checkpoint:
    """Rebuild the model of a checkpoint; refuse a mismatch with a clear message."""
    weights_path, meta_path = checkpoint_paths(path)
    meta = read_description(meta_path)
    name, num_classes, shape = meta["model"], meta["num_classes"], tuple(meta["input_shape"])
    if expect_model is not None and name != expect_model:
        raise CheckpointError(f"This checkpoint is a {name}, not a {expect_model}.")
    if expect_classes is not None and num_classes != expect_classes:
        raise CheckpointError(f"This checkpoint predicts {num_classes} classes, not {expect_classes}.")
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path} is missing: a checkpoint is a .safetensors file with its .json beside it.")
    if weights_path.stat().st_size > MAX_WEIGHTS_BYTES:
        raise CheckpointError(f"{weights_path.name} is larger than {MAX_WEIGHTS_BYTES >> 20} MB.")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights_path.name} is not a readable safetensors file ({exc}).") from exc
    hidden = (meta.get("config") or {}).get("hidden")
    hidden = tuple(hidden) if hidden else None
    with torch.device("meta"):  # the shapes and dtypes the weights must have, without allocating them
        expected = build_model(name, shape, num_classes, hidden=hidden).state_dict()
    wrong = sorted(set(expected) ^ set(tensors)) + sorted(
        k for k in set(expected) & set(tensors) if expected[k].shape != tensors[k].shape
    )
    if wrong:
        raise CheckpointError(
            f"{weights_path.name} does not fit a {name} for {num_classes} classes on "
            f"{'x'.join(map(str, shape))} inputs (mismatched: {', '.join(wrong[:4])}"
            f"{' ...' if len(wrong) > 4 else ''})."
        )
    for key, tensor in tensors.items():
        if tensor.dtype != expected[key].dtype:
            raise CheckpointError(f"{weights_path.name}: {key} is stored as {tensor.dtype}, a {name} needs "
                                  f"{expected[key].dtype}.")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{weights_path.name}: {key} holds NaN or infinite values; the model it was "
                                  f"saved from had diverged.")
    model = build_model(name, shape, num_classes, hidden=hidden)  # as large as the weights, which are read already
    model.load_state_dict(tensors)
    model.eval()
    return Checkpoint(model, meta)
