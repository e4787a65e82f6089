"""Checkpoints that rebuild themselves: safetensors weights plus a JSON description.

`NAME.safetensors` holds the tensors (never a pickle); `NAME.json` beside it the
full training config, dataset, class names, input shape and normalisation, so
that the pair alone rebuilds the model and predicts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from core.files import atomic_write, write_json
from core.models import MODELS, build_model

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here; the message says why."""


@dataclass(frozen=True)
class Checkpoint:
    model: nn.Module
    meta: dict[str, Any]

    @property
    def class_names(self) -> list[str]:
        return self.meta["class_names"]


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


def load_checkpoint(path: str | Path, expect_model: str | None = None, expect_classes: int | None = None) -> Checkpoint:
    """Rebuild the model of a checkpoint; refuse a mismatch with a clear message."""
    weights_path, meta_path = checkpoint_paths(path)
    for p in (weights_path, meta_path):
        if not p.is_file():
            raise CheckpointError(f"{p} is missing: a checkpoint is a .safetensors file with its .json beside it.")
    try:
        meta = json.loads(meta_path.read_text())
        name, num_classes, shape = meta["model"], int(meta["num_classes"]), tuple(meta["input_shape"])
        meta["class_names"], meta["mean"], meta["std"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{meta_path.name} is not a checkpoint description ({exc}).") from exc
    if name not in MODELS:
        raise CheckpointError(f"{meta_path.name} names an unknown architecture {name!r}.")
    if expect_model is not None and name != expect_model:
        raise CheckpointError(f"This checkpoint is a {name}, not a {expect_model}.")
    if expect_classes is not None and num_classes != expect_classes:
        raise CheckpointError(f"This checkpoint predicts {num_classes} classes, not {expect_classes}.")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights_path.name} is not a readable safetensors file ({exc}).") from exc
    hidden = meta.get("config", {}).get("hidden")
    model = build_model(name, shape, num_classes, hidden=tuple(hidden) if hidden else None)
    expected = model.state_dict()
    wrong = sorted(set(expected) ^ set(tensors)) + sorted(
        k for k in set(expected) & set(tensors) if expected[k].shape != tensors[k].shape
    )
    if wrong:
        raise CheckpointError(
            f"{weights_path.name} does not fit a {name} for {num_classes} classes on "
            f"{'x'.join(map(str, shape))} inputs (mismatched: {', '.join(wrong[:4])}"
            f"{' ...' if len(wrong) > 4 else ''})."
        )
    model.load_state_dict(tensors)
    model.eval()
    return Checkpoint(model, meta)
