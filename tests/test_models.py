"""The model zoo: exact parameter counts, shapes on every dataset, initialisations."""

from __future__ import annotations

import pytest
import torch

from core.models import MODELS, build_model, count_parameters, fit_to_data

SHAPES = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32), "user-16px": (1, 16, 16)}


def test_lenet5_has_exactly_61706_parameters_on_mnist():
    assert count_parameters(build_model("lenet5", (1, 28, 28), 10)) == 61706
    assert count_parameters(build_model("lenet-bn-small", (1, 28, 28), 10)) == 77198
    assert count_parameters(build_model("lenet-bn-fast", (1, 28, 28), 10)) == 141090
    assert count_parameters(build_model("lenet5-classic", (1, 28, 28), 10)) == 61706


def test_lenet_bn_has_exactly_431220_parameters_on_mnist():
    assert count_parameters(build_model("lenet-bn", (1, 28, 28), 10)) == 431220


def test_lenet5_classic_uses_sigmoid_and_average_pooling():
    layers = {type(m).__name__ for m in build_model("lenet5-classic", (1, 28, 28), 10).modules()}
    assert {"Sigmoid", "AvgPool2d"} <= layers and not {"ReLU", "MaxPool2d"} & layers


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_every_model_builds_for_every_dataset(name, dataset):
    shape = SHAPES[dataset]
    model = build_model(name, shape, 10)
    out = model(torch.randn(4, *shape))
    assert out.shape == (4, 10)


@pytest.mark.parametrize("name", ["mlp", "resnet-mini", "resnet20"])
def test_size_agnostic_models_take_a_users_image_size(name):
    model = build_model(name, SHAPES["user-16px"], 3)
    assert model(torch.randn(2, *SHAPES["user-16px"])).shape == (2, 3)


def test_mlp_hidden_sizes_are_configurable():
    model = build_model("mlp", (1, 28, 28), 10, hidden=(196,))
    assert count_parameters(model) == 784 * 196 + 196 + 196 * 10 + 10


def test_resnet20_has_the_papers_depth():
    model = build_model("resnet20", (3, 32, 32), 10)
    convs_and_fc = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and getattr(m, "kernel_size", (3,)) != (1, 1)]
    assert len(convs_and_fc) == 20


@pytest.mark.parametrize("init", ["xavier", "kaiming"])
def test_initialisations_change_the_weights_and_zero_the_biases(init):
    torch.manual_seed(0)
    default = build_model("lenet5", (1, 28, 28), 10)
    torch.manual_seed(0)
    other = build_model("lenet5", (1, 28, 28), 10, init=init)
    assert not torch.equal(default[0].weight, other[0].weight)
    assert torch.count_nonzero(other[0].bias) == 0


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="Unknown model"):
        build_model("vgg16", (1, 28, 28), 10)
    with pytest.raises(ValueError, match="Unknown initialisation"):
        build_model("lenet5", (1, 28, 28), 10, init="orthogonal")


def test_the_whitening_layer_decorrelates_the_patches_it_was_fitted_to():
    torch.manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.randn(200, 3, 8, 8), size=16, mode="bilinear")  # neighbours alike
    images = smooth + 0.1 * torch.randn_like(smooth)
    model = build_model("airbench", (3, 32, 32), 10)
    fit_to_data(model, lambda: images)
    whiten = model[0]
    out = torch.nn.functional.conv2d(images, whiten.weight[:12])  # the first half: the other is its negative
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12)
    cov = (flat - flat.mean(0)).T @ (flat - flat.mean(0)) / len(flat)
    assert torch.allclose(cov, torch.eye(12), atol=0.05)
    assert torch.equal(whiten.weight[12:], -whiten.weight[:12]) and not whiten.weight.requires_grad
