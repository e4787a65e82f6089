"""The model zoo: exact parameter counts, shapes on every dataset, initialisations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from core.models import MODELS, MaxPool2x2, build_model, count_parameters, fit_to_data

SHAPES = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32), "user-16px": (1, 16, 16)}


def test_lenet5_has_exactly_61706_parameters_on_mnist():
    assert count_parameters(build_model("lenet5", (1, 28, 28), 10)) == 61706
    assert count_parameters(build_model("lenet-bn-small", (1, 28, 28), 10)) == 77198
    assert count_parameters(build_model("lenet-bn-fast", (1, 28, 28), 10)) == 141090
    assert count_parameters(build_model("lenet5-classic", (1, 28, 28), 10)) == 61706


def test_lenet_bn_has_exactly_431220_parameters_on_mnist():
    assert count_parameters(build_model("lenet-bn", (1, 28, 28), 10)) == 431220


def test_lenet5_classic_uses_sigmoid_and_average_pooling():
    modules = list(build_model("lenet5-classic", (1, 28, 28), 10).modules())
    assert {"Sigmoid", "AvgPool2d"} <= {type(m).__name__ for m in modules}
    assert not any(isinstance(m, (torch.nn.ReLU, torch.nn.MaxPool2d)) for m in modules)


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


@given(n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), levels=st.integers(1, 4),
       ceil_mode=st.booleans(), channels_last=st.booleans(), seed=st.integers(0, 2**16))
def test_the_zoos_max_pooling_gives_pytorchs_outputs_and_gradients(n, c, h, w, levels, ceil_mode, channels_last, seed):
    """Ties included (few levels make windows with equal pixels, as MNIST's flat background does): the gradient
    must go to the same pixel of a window as nn.MaxPool2d sends it, or training would change."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.randint(0, levels, (n, c, h, w), generator=gen).float()
    if channels_last:
        image = image.contiguous(memory_format=torch.channels_last)
    try:
        F.max_pool2d(image, 2, ceil_mode=ceil_mode)
    except RuntimeError:  # an image smaller than the window: the zoo's layer refuses it too
        with pytest.raises(RuntimeError):
            MaxPool2x2(ceil_mode)(image)
        return
    ours, theirs = image.clone().requires_grad_(), image.clone().requires_grad_()
    out = MaxPool2x2(ceil_mode)(ours)
    expected = F.max_pool2d(theirs, 2, ceil_mode=ceil_mode)
    assert torch.equal(out, expected)
    fast = image.is_contiguous() and h % 2 == 0 and w % 2 == 0  # where the four views replace PyTorch's kernel
    assert (type(out.grad_fn).__name__ == "_MaxOfQuartersBackward") == fast
    upstream = torch.randn(expected.shape, generator=gen)
    out.backward(upstream)
    expected.backward(upstream)
    assert torch.equal(ours.grad, theirs.grad)
