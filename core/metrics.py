"""Evaluation of a model on whole uint8 tensors, and the per-class numbers a teacher reads."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.functional.classification import (
    multiclass_calibration_error,
    multiclass_confusion_matrix,
)

from core.augment import TEST_TIME_AUGMENTATIONS
from core.preprocess import Normalizer, to_unit

EVAL_BATCH = 256  # faster per image on a CPU than larger batches (0.30 s against 0.37 s for MNIST's test set)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 mixed precision on CUDA; a no-op on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.inference_mode()
def predict_probabilities(
    model: nn.Module,
    images_u8: torch.Tensor,
    normalize: Normalizer,
    device: torch.device,
    should_stop=lambda: False,
    tta: str = "none",
) -> torch.Tensor | None:
    """Softmax probabilities (N x K, float32, on the device), or None when stopped midway; `tta` names the
    test-time augmentation (core.augment.TEST_TIME_AUGMENTATIONS) whose views' logits are averaged."""
    views = TEST_TIME_AUGMENTATIONS[tta]
    model.eval()
    chunks = []
    for start in range(0, len(images_u8), EVAL_BATCH):
        if should_stop():
            return None
        x = normalize(to_unit(images_u8[start:start + EVAL_BATCH].to(device, non_blocking=True)))
        with autocast(device):
            logits = views(lambda view: model(view).float(), x)
        chunks.append(logits.softmax(1))
    return torch.cat(chunks)


def loss_and_accuracy(probs: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy from probabilities (no label smoothing: the true loss)."""
    labels = labels.to(probs.device)
    loss = F.nll_loss(probs.clamp_min(1e-12).log(), labels).item()
    accuracy = (probs.argmax(1) == labels).float().mean().item()
    return loss, accuracy


def class_report(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, list]:
    """Confusion matrix (rows: true class, columns: predicted) and per-class accuracy, precision, recall, count."""
    cm = multiclass_confusion_matrix(predictions.cpu(), labels.cpu(), num_classes=num_classes)
    true_counts = cm.sum(1)
    predicted_counts = cm.sum(0)
    hits = cm.diag().double()
    recall = _ratios(hits, true_counts)
    return {
        "confusion_matrix": cm.tolist(),
        "per_class_accuracy": recall,  # accuracy on the images of one class is its recall
        "precision": _ratios(hits, predicted_counts),
        "recall": recall,
        "count": true_counts.tolist(),
    }


def _ratios(hits: torch.Tensor, totals: torch.Tensor) -> list[float | None]:
    """hits / totals per class; None (JSON null) where a class has no images."""
    return [h / t if t > 0 else None for h, t in zip(hits.tolist(), totals.tolist())]


def most_confused(confusion: list[list[int]], class_names: list[str], top: int = 5) -> list[tuple[str, str, int]]:
    """The `top` (true, predicted, count) pairs off the diagonal, most frequent first."""
    pairs = [(class_names[t], class_names[p], n) for t, row in enumerate(confusion)
             for p, n in enumerate(row) if t != p and n > 0]
    return sorted(pairs, key=lambda pair: -pair[2])[:top]


def calibration(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = 10) -> dict[str, Any]:
    """Reliability diagram data and expected calibration error (torchmetrics' ECE).

    For each confidence bin: the mean confidence, the accuracy and the count.
    """
    probabilities, labels = probabilities.float().cpu(), labels.cpu()
    confidence, predicted = probabilities.max(1)
    correct = (predicted == labels).float()
    which = ((confidence * bins).long()).clamp(max=bins - 1)
    rows = []
    for b in range(bins):
        members = which == b
        n = int(members.sum())
        rows.append({
            "bin": f"{b / bins:.1f}–{(b + 1) / bins:.1f}",
            "confidence": float(confidence[members].mean()) if n else None,
            "accuracy": float(correct[members].mean()) if n else None,
            "count": n,
        })
    ece = multiclass_calibration_error(probabilities, labels, num_classes=probabilities.shape[1], n_bins=bins, norm="l1")
    return {"bins": rows, "ece": float(ece)}


def thinned(n: int, most: int = 800) -> list[int]:
    """Indices of at most `most` evenly spread points of n, first and last included: a chart shows no more."""
    if n <= most:
        return list(range(n))
    return sorted({round(i * (n - 1) / (most - 1)) for i in range(most)})


def smooth(values: list[float], weight: float = 0.9) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average, debiased at the start."""
    out, avg = [], 0.0
    for i, v in enumerate(values, start=1):
        avg = weight * avg + (1 - weight) * v
        out.append(avg / (1 - weight ** i))
    return out


def confident_mistakes(probabilities: torch.Tensor, labels: torch.Tensor, top: int = 32) -> tuple[torch.Tensor, int]:
    """Indices of the `top` misclassified images the model was surest about, and how many it got wrong."""
    confidence, predicted = probabilities.max(1)
    wrong = (predicted != labels).nonzero().flatten()
    return wrong[confidence[wrong].argsort(descending=True)][:top], len(wrong)


def predictions_fit(probabilities: torch.Tensor, labels: torch.Tensor, num_classes: int,
                    test_labels: torch.Tensor) -> bool:
    """Whether a run's stored test predictions are of these test images, so that its mistakes can be shown from
    them: as many classes, and its labels the first of the dataset's as loaded now (a CSV or folder that was
    edited since the run was tested is not; a run may have been tested on the first N)."""
    return (probabilities.shape[1] == num_classes and len(labels) <= len(test_labels)
            and torch.equal(labels.long().cpu(), test_labels[:len(labels)].long().cpu()))
