"""The network's own view of the data: penultimate-layer features of test images, projected to 2-D.

After each epoch the engine takes the features the last linear layer receives for
the first `EMBEDDED_IMAGES` test images and projects them on their two principal
components; the Inside page shows one scatter per epoch, so a learner watches the
classes pull apart. It is recorded for display only and never chooses anything.
"""

from __future__ import annotations

import torch
from torch import nn

from core.augment import TEST_TIME_AUGMENTATIONS
from core.metrics import EVAL_BATCH, autocast
from core.preprocess import Normalizer, to_unit

EMBEDDED_IMAGES = 2000


@torch.inference_mode()
def penultimate_features(model: nn.Module, images_u8: torch.Tensor, normalize: Normalizer, device: torch.device,
                         tta: str = "none") -> tuple[torch.Tensor, torch.Tensor]:
    """(N x D features the last linear layer receives, N predicted classes), on the CPU: the features of each
    image as it is, the classes the run answers (the mean of its test-time views `tta`, as predict_probabilities
    takes them). The views include the image as it is, whose pass gives the features: no pass is repeated."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    views = TEST_TIME_AUGMENTATIONS[tta]
    features: list[torch.Tensor] = []
    predicted: list[torch.Tensor] = []

    def logits(view: torch.Tensor) -> torch.Tensor:
        if view is not batch:
            return model(view).float()
        hook = last.register_forward_pre_hook(lambda _module, inputs: features.append(inputs[0].float().cpu()))
        try:
            return model(view).float()
        finally:
            hook.remove()

    model.eval()
    for start in range(0, len(images_u8), EVAL_BATCH):  # in the batches, and the precision, of the evaluation
        batch = normalize(to_unit(images_u8[start:start + EVAL_BATCH].to(device)))
        with autocast(device):
            predicted.append(views(logits, batch).softmax(1).argmax(1).cpu())
    return torch.cat(features), torch.cat(predicted)


def project_2d(features: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
    """N x 2: the features on their first two principal components; each axis's sign is chosen to agree with the
    previous epoch's projection, so a scatter does not flip between epochs."""
    centred = features.double() - features.double().mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    points = centred @ v[:2].T
    if points.shape[1] < 2:  # a layer of one feature: the second axis is empty
        points = torch.cat([points, points.new_zeros(len(points), 2 - points.shape[1])], 1)
    if previous is not None and previous.shape == points.shape:
        signs = torch.sign((points * previous.double()).sum(0))
        points = points * torch.where(signs == 0, 1.0, signs)
    return points.float()
