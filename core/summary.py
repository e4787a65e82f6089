"""A model's layer table (layer, output shape, parameters) before any training, via torchinfo.

The model is built on PyTorch's meta device (shapes, no memory), so the table of a
huge network a student typed costs the server milliseconds, not gigabytes.
"""

from __future__ import annotations

from typing import Any

import torch
from torchinfo import summary

from core.models import build_model


def layer_table(model_name: str, shape: tuple[int, int, int], num_classes: int,
                hidden: tuple[int, ...] | None = None) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Rows for the leaf layers, and totals (parameters, trainable, multiply-adds per image)."""
    with torch.device("meta"):
        model = build_model(model_name, shape, num_classes, hidden=hidden)
    stats = summary(model, input_size=(1, *shape), verbose=0, device="meta")
    rows = []
    for layer in stats.summary_list:
        if layer.children:  # containers repeat their children's numbers
            continue
        rows.append({
            "layer": f"{'  ' * max(0, layer.depth - 1)}{layer.class_name}",
            "output shape": " x ".join(str(d) for d in layer.output_size[1:]),
            "parameters": layer.num_params,
        })
    totals = {"parameters": stats.total_params, "trainable": stats.trainable_params, "mult_adds": stats.total_mult_adds}
    return rows, totals
