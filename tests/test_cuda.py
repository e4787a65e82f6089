"""The CUDA path, where a GPU is present (skipped elsewhere: CI has none): the engine keeps the data on the GPU,
augments it with a CUDA generator, trains under bfloat16 autocast and pools with PyTorch's own kernel there,
and what it saves must answer alike on a laptop's CPU."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from core.augment import AUGMENTATIONS, augment_batch
from core.checkpoint import load_checkpoint
from core.config import TrainConfig
from core.data import ImageDataset
from core.engine import train
from core.models import MaxPool2x2
from core.predict import predict_tensor
from core.recipes import RECIPES

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")


def _answers_alike_on_the_cpu(result, test_images: torch.Tensor) -> float:
    """The share of test images whose class the checkpoint, loaded on the CPU in float32, gives as the GPU run did."""
    checkpoint = load_checkpoint(result.checkpoint)
    with torch.no_grad():
        on_cpu = predict_tensor(checkpoint, test_images.float() / 255)
    return float((on_cpu.argmax(1) == result.test_probabilities.cpu().argmax(1)).float().mean())


def test_the_default_config_learns_on_the_gpu_and_its_checkpoint_answers_alike_on_the_cpu(small_mnist, tmp_path):
    result = train(TrainConfig(epochs=2, augment=("rotate", "crop"), device="cuda"), dataset=small_mnist)
    assert result.status == "finished" and result.device == torch.cuda.get_device_name()
    assert result.test_accuracy > 0.8  # 2,700 training images, two epochs: 87 % on the CPU; chance is 10 %
    assert _answers_alike_on_the_cpu(result, small_mnist.test_images) > 0.98  # bfloat16 there, float32 here


def test_the_gpu_recipe_runs_end_to_end_on_a_few_colour_images(tmp_path):
    """cifar-gpu: the whitening fitted on the GPU, channels-last memory, and airbench's six test-time views."""
    gen = torch.Generator().manual_seed(0)
    bright = torch.randint(120, 256, (40, 3, 32, 32), dtype=torch.uint8, generator=gen)
    dark = torch.randint(0, 136, (40, 3, 32, 32), dtype=torch.uint8, generator=gen)
    images, labels = torch.cat([bright, dark]), torch.tensor([0] * 40 + [1] * 40)
    order = torch.randperm(80, generator=gen)
    images, labels = images[order], labels[order]
    data = ImageDataset("bright-dark", images[:64], labels[:64], images[64:], labels[64:], ("bright", "dark"),
                        (0.5,) * 3, (0.25,) * 3)
    cfg = dataclasses.replace(RECIPES["cifar-gpu"].train_config(), dataset="bright-dark", epochs=2, batch_size=16,
                              device="cuda")
    result = train(cfg, dataset=data)
    assert result.status == "finished" and torch.isfinite(result.test_probabilities).all()
    assert _answers_alike_on_the_cpu(result, data.test_images) >= 0.9


def test_the_zoos_pooling_and_the_augmentations_on_the_gpu():
    image = torch.randint(0, 3, (4, 2, 8, 8), device="cuda").float().requires_grad_()
    out = MaxPool2x2()(image)
    reference = image.detach().clone().requires_grad_()
    expected = torch.nn.functional.max_pool2d(reference, 2)
    assert torch.equal(out, expected) and type(out.grad_fn).__name__ != "_MaxOfQuartersBackward"  # PyTorch's kernel
    out.sum().backward()
    expected.sum().backward()
    assert torch.equal(image.grad, reference.grad)

    batch = torch.rand(16, 3, 32, 32, device="cuda")
    names = tuple(AUGMENTATIONS)
    first = augment_batch(batch, names, torch.Generator(device="cuda").manual_seed(1))
    again = augment_batch(batch, names, torch.Generator(device="cuda").manual_seed(1))
    assert first.device.type == "cuda" and first.shape == batch.shape and torch.equal(first, again)  # a seed, a batch
    assert 0.0 <= float(first.min()) and float(first.max()) <= 1.0
