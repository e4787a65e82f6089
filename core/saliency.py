"""Why this answer: which input pixels a prediction rests on, by Captum's attribution methods.

Attributions are taken over the image as the user sees it (pixels on [0, 1]): the
model's normalisation is inside the module Captum differentiates, and so is the run's
test-time augmentation, so the gradient methods explain the answer the run gives (the
mean over its views). Each method gives one H x W map on [0, 1] (1 is the pixel that
matters most), whatever the channels.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from core.predict import OnUnitPixels

ELEMENTWISE = (nn.BatchNorm2d, nn.ReLU, nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.GELU)  # keep a feature map's shape


def gradcam_layer(model: nn.Module) -> nn.Module | None:
    """The layer Grad-CAM looks at: the last stage of the network (one of its top-level children) that holds a
    convolution (a LeNet's second convolution, a ResNet's last residual block), taken after the normalisation and
    activation that follow it, since Grad-CAM weighs what the layer passes on; None without a convolution."""
    stages = list(model.children())
    holding = [i for i, stage in enumerate(stages) if any(isinstance(m, nn.Conv2d) for m in stage.modules())]
    if not holding:
        return None
    last = holding[-1]
    while last + 1 < len(stages) and isinstance(stages[last + 1], ELEMENTWISE):
        last += 1
    return stages[last]


def _saliency(wrapped: OnUnitPixels, x: torch.Tensor, target: int) -> torch.Tensor:
    from captum.attr import Saliency  # a second to import: only when asked

    return Saliency(wrapped).attribute(x, target=target, abs=True).amax(1)


def _integrated_gradients(wrapped: OnUnitPixels, x: torch.Tensor, target: int) -> torch.Tensor:
    from captum.attr import IntegratedGradients

    return IntegratedGradients(wrapped).attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=32).abs().sum(1)


def _gradcam(wrapped: OnUnitPixels, x: torch.Tensor, target: int) -> torch.Tensor:
    from captum.attr import LayerAttribution, LayerGradCam

    layer = gradcam_layer(wrapped.model)
    if layer is None:
        raise ValueError("Grad-CAM looks at a convolution's feature maps, and this network has none; "
                         "choose gradient saliency or integrated gradients.")
    cam = LayerGradCam(wrapped, layer).attribute(x, target=target, relu_attributions=True)
    return LayerAttribution.interpolate(cam, tuple(x.shape[2:]), "bilinear").sum(1)


NOTHING_MOVES = ("This method gives no pixel any weight for this class here (a black image, or units saturated or "
                 "switched off for it): try another method or image.")


@dataclass(frozen=True)
class Method:
    label: str  # as a choice on a page
    description: str
    look_for: str  # what a learner should read in its map
    attribute: Callable[[OnUnitPixels, torch.Tensor, int], torch.Tensor]  # 1 x C x H x W input -> 1 x H x W map
    over_views: bool  # explains the answer of the run's test-time views; False: the plain pass alone
    empty: str = NOTHING_MOVES  # why its map can be all zero, said instead of a picture without red


METHODS = {
    "saliency": Method(
        "gradient", "gradient saliency: how much each pixel's change would move the class's score",
        "Red pixels are those whose change would move the score most. A model that reads the digit lights up its "
        "strokes; one that lights up the empty background has learned something else.", _saliency, True),
    "integrated-gradients": Method(
        "integrated gradients", "integrated gradients: each pixel's share of the score, summed from a black image to "
        "this one", "Each pixel's share of the score, adding the image up from black: it falls on the ink by "
        "construction, so look at which strokes carry the answer.", _integrated_gradients, True),
    "gradcam": Method(
        "Grad-CAM", "Grad-CAM: where the last convolution's feature maps that favour the class light up",
        "Where the last convolution's maps that favour this class are active, coarse because that layer is small. It "
        "may point at background whose emptiness is evidence too (a 7 has no loop at the bottom).", _gradcam,
        False,  # one layer's maps in one pass, which a mirrored or shifted view would not line up with
        "Grad-CAM finds nothing here: none of the last convolution's maps, weighed by how they move this class's "
        "score, is positive anywhere (Grad-CAM keeps only evidence for the class). Models early in training often "
        "show this; gradient saliency still shows which pixels move the score."),
}


def attribution(model: nn.Module, mean: Sequence[float], std: Sequence[float], image: torch.Tensor, target: int,
                method: str = "saliency", tta: str = "none") -> torch.Tensor:
    """An H x W map on [0, 1] of how much each pixel of `image` (C x H x W on [0, 1]) counts for class `target`
    in the answer of the run's test-time augmentation `tta` (Grad-CAM: of its plain pass). ValueError for an
    unknown method, or Grad-CAM on a network without convolutions."""
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    chosen = METHODS[method]
    model = copy.deepcopy(model).eval()  # Captum hooks a private copy: concurrent calls on one shared model never meet
    wrapped = OnUnitPixels(model, mean, std, tta if chosen.over_views else "none").to(image.device).eval()
    x = image.unsqueeze(0).float().requires_grad_(True)
    values = chosen.attribute(wrapped, x, target)[0].detach().float()
    top = values.max()
    return values / top if top > 0 else values
