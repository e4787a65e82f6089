"""Training dynamics: how each layer's activations and gradients evolve, measured on the steps that report.

Every convolution (conv1, conv2, ...) and linear layer (fc1, fc2, ...) is watched:
the mean and standard deviation of its output, and the norm of its weight's
gradient. Hooks are attached only for a step the loop arms (every other reported
step), so the cost is a few reductions per recorded step, not per step.
A sigmoid network whose early layers' gradient norms sit orders of magnitude below
the last layer's is the vanishing gradient the course talks about.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from core.models import numbered_layers

WATCHED = {nn.Conv2d: "conv", nn.Linear: "fc"}
HISTOGRAM_VALUES = 4096  # activations kept per layer for TensorBoard's histograms (the engine sends them once an epoch)


def watched_layers(model: nn.Module) -> dict[str, nn.Module]:
    """{conv1: ..., conv2: ..., fc1: ...} in the network's order."""
    modules = dict(model.named_modules())
    return {name: modules[path] for path, name in numbered_layers(model, WATCHED).items()}


class LayerStats:
    """`arm()` before a step's forward pass; `read()` after its backward pass gives that step's numbers per layer.
    The hooks exist only between the two: a module with a hook takes PyTorch's slower call path, which cost about
    a tenth of the training time when the hooks stayed on every step."""

    def __init__(self, model: nn.Module) -> None:
        self.layers = watched_layers(model)
        self.outputs: dict[str, torch.Tensor] = {}
        self.hooks: list[Any] = []

    def arm(self) -> None:
        if not self.hooks:
            self.hooks = [module.register_forward_hook(self._keeper(name)) for name, module in self.layers.items()]

    def _keeper(self, name: str):
        def keep(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            self.outputs.setdefault(name, output.detach())
        return keep

    def read(self) -> tuple[dict[str, dict[str, float]], dict[str, torch.Tensor]]:
        """({layer: {mean, std, grad_norm}}, {layer: a sample of its activations on the CPU}) of the armed step (empty
        when none was); disarms."""
        numbers, samples = {}, {}
        for name, out in self.outputs.items():
            grad = self.layers[name].weight.grad
            values = out.float()
            stats = torch.stack([values.mean(), values.std(), grad.norm() if grad is not None else values.new_full((), math.nan)])
            numbers[name] = {k: float(f"{v:.5g}") if math.isfinite(v) else None  # none: no gradient, or a NaN
                             for k, v in zip(("mean", "std", "grad_norm"), stats.tolist())}  # one device sync per layer
            flat = values.flatten()
            samples[name] = flat[::max(1, len(flat) // HISTOGRAM_VALUES)][:HISTOGRAM_VALUES].cpu()  # spread over the batch
        self.close()
        return numbers, samples

    def close(self) -> None:
        for hook in self.hooks:
            hook.remove()
        self.hooks, self.outputs = [], {}
