"""When to answer "not sure": a confidence threshold calibrated on held-out data, and what it costs.

The course notebook's rule: the wrong answers' mean top probability plus its
standard deviation, the right answers' mean minus theirs, and the midpoint of the
two. A model answers when its top probability reaches the threshold and says
"not sure" below it; the coverage curve shows how accurate the answers it keeps
are at every threshold, and how many it keeps.
"""

from __future__ import annotations

import math

import torch

from core.metrics import thinned

CURVE_POINTS = 200  # a chart's width


def not_sure_threshold(probs: torch.Tensor, labels: torch.Tensor) -> float | None:
    """The notebook's threshold from held-out probabilities (N x K) and labels; None when there are not
    two right and two wrong answers to take a spread from (every answer is then sure). Standard deviations
    are numpy's (population)."""
    top, predicted = probs.float().max(1)
    right = predicted == labels.to(predicted.device)
    if int(right.sum()) < 2 or int((~right).sum()) < 2:
        return None
    wrong_top, right_top = top[~right], top[right]
    high_wrong = wrong_top.mean() + wrong_top.std(correction=0)
    low_right = right_top.mean() - right_top.std(correction=0)
    threshold = float(((high_wrong + low_right) / 2).clamp(0, 1))
    return threshold if math.isfinite(threshold) else None  # a diverged model's NaN probabilities have none


def is_sure(probability: float, threshold: float | None) -> bool:
    """An answer is sure at or above the threshold; with no threshold, always."""
    return threshold is None or probability >= threshold


def coverage_curve(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, list[float]]:
    """For thresholds from the highest top probability down: the share of answers kept (coverage) and the
    accuracy of those kept, thinned to CURVE_POINTS points."""
    top, predicted = probs.float().max(1)
    order = top.argsort(descending=True)
    right = (predicted == labels.to(predicted.device))[order].double()
    kept = torch.arange(1, len(order) + 1, dtype=torch.float64)
    keep = torch.tensor(thinned(len(order), CURVE_POINTS), dtype=torch.long)
    return {"threshold": top[order][keep].tolist(), "coverage": (kept / len(order))[keep].tolist(),
            "accuracy": (right.cumsum(0) / kept)[keep].tolist()}


def coverage_at(probs: torch.Tensor, labels: torch.Tensor, threshold: float) -> tuple[float, float | None]:
    """The share of answers a threshold keeps (sure ones) and their accuracy (None when it keeps none)."""
    top, predicted = probs.float().max(1)
    kept = top.double() >= threshold  # as is_sure compares: a float32 probability with the float threshold
    right = predicted[kept] == labels.to(predicted.device)[kept]
    return float(kept.float().mean()), float(right.float().mean()) if kept.any() else None
