"""The per-epoch accuracy curves, drawn alike on the Train and Results pages, with the lecture's curve when the
run replays a course recipe that published one."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from core.config import TrainConfig
from core.recipes import lecture


def add_epoch_accuracy(fig: go.Figure, epochs: list[dict[str, Any]], cfg: TrainConfig) -> None:
    """Train accuracy is an epoch's mean, so it sits at the epoch's middle; validation and test are measured after
    the epoch, so they sit at its end."""
    fig.add_scatter(x=[e["epoch"] - 0.5 for e in epochs], y=[e["train_accuracy"] for e in epochs],
                    name="train (epoch mean)", mode="lines+markers", line=dict(color="#4F46E5"))
    epoch_x = [e["epoch"] for e in epochs]
    if any(e.get("val_accuracy") is not None for e in epochs):
        fig.add_scatter(x=epoch_x, y=[e.get("val_accuracy") for e in epochs], name="validation", mode="lines+markers",
                        line=dict(color="#EA580C"))
    if any(e.get("test_accuracy") is not None for e in epochs):
        fig.add_scatter(x=epoch_x, y=[e.get("test_accuracy") for e in epochs], name="test (after each epoch)",
                        mode="lines+markers", line=dict(color="#0F766E"))
    if found := lecture(cfg):
        name, recipe = found
        fig.add_scatter(x=list(range(1, len(recipe.curve) + 1)), y=[v / 100 for v in recipe.curve],
                        name=f"lecture (test, {name})", mode="lines+markers",
                        line=dict(color="#64748B", dash="dash"), marker=dict(symbol="x"))


def lecture_caption(cfg: TrainConfig) -> str | None:
    """What the dashed curve is, when there is one."""
    if found := lecture(cfg):
        name, recipe = found
        return (f"Dashed: the test accuracy the notebook of {name} printed after each epoch ({recipe.published}). "
                f"Same recipe, another machine and seed: expect the same shape, not the same digits. {recipe.lesson}").strip()
    return None
