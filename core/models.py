"""The model zoo: a registry of architectures built for a dataset's input shape.

Every builder takes the input shape (C, H, W), the class count and its own
options, so one name works on MNIST (1 x 28 x 28) and CIFAR-10 (3 x 32 x 32).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class ModelSpec:
    build: Callable[..., nn.Module]
    description: str


def _conv_out(size: int, kernel: int, padding: int = 0) -> int:
    return size + 2 * padding - kernel + 1


def mlp(shape: Shape, num_classes: int, hidden: tuple[int, ...] = (256, 128)) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = shape[0] * shape[1] * shape[2]
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def _quarters(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The four pixels of every 2 x 2 window, as strided views, in the order max pooling's indices scan them."""
    return x[..., ::2, ::2], x[..., ::2, 1::2], x[..., 1::2, ::2], x[..., 1::2, 1::2]


class _MaxOfQuarters(torch.autograd.Function):
    """2 x 2 max pooling of stride 2 without indices: the gradient goes to the first pixel of each window that
    holds its maximum, row by row, the pixel PyTorch's own kernel picks, so both give the same numbers (but for
    a window holding NaN, whose gradient goes elsewhere: a run stops at its first non-finite loss anyway). It
    keeps its output for the backward pass, so an in-place operation after it is refused, and it has no
    second derivative."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        a, b, c, d = _quarters(x)
        out = torch.maximum(torch.maximum(a, b), torch.maximum(c, d))
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        x, out = ctx.saved_tensors
        grad_x = torch.empty_like(x)
        left = torch.ones_like(out, dtype=torch.bool)  # windows whose maximum has no pixel yet
        *firsts, last = _quarters(grad_x)
        for pixels, grad_pixels in zip(_quarters(x), firsts):
            hit = (pixels == out) & left
            torch.mul(grad, hit, out=grad_pixels)
            left &= ~hit
        torch.mul(grad, left, out=last)
        return grad_x


class MaxPool2x2(nn.MaxPool2d):
    """nn.MaxPool2d(2) with the same outputs and gradients for finite inputs, computed on the CPU as the largest
    of four strided views: PyTorch's CPU kernel spends most of its time on the indices of the maxima, which made
    pooling a fifth of lenet-bn-fast's training step (2 x 2 windows of an 8 x 24 x 24 batch of 256: 1.6 against
    2.9 ms forward and backward). Other devices, channels-last memory, odd or tiny sizes and exports keep
    PyTorch's kernel."""

    def __init__(self, ceil_mode: bool = False) -> None:
        super().__init__(2, ceil_mode=ceil_mode)  # which only odd sizes feel, and those go to PyTorch's kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.device.type != "cpu" or not x.is_contiguous() or x.dim() not in (3, 4) or min(x.shape[-2:]) < 2
                or x.shape[-1] % 2 or x.shape[-2] % 2 or torch.compiler.is_compiling()):
            return super().forward(x)
        return _MaxOfQuarters.apply(x)


def _lenet5(shape: Shape, num_classes: int, act: type[nn.Module], pool: Callable[[], nn.Module]) -> nn.Module:
    """LeNet-5 sees 32 x 32 inputs; smaller images are zero-padded to that size."""
    c, h, _ = shape
    pad = max(0, (32 - h) // 2)
    side = (_conv_out(h, 5, pad) // 2 - 4) // 2
    return nn.Sequential(
        nn.Conv2d(c, 6, 5, padding=pad), act(), pool(),
        nn.Conv2d(6, 16, 5), act(), pool(),
        nn.Flatten(),
        nn.Linear(16 * side * side, 120), act(),
        nn.Linear(120, 84), act(),
        nn.Linear(84, num_classes),
    )


def lenet5_classic(shape: Shape, num_classes: int) -> nn.Module:
    return _lenet5(shape, num_classes, nn.Sigmoid, lambda: nn.AvgPool2d(2))


def lenet5(shape: Shape, num_classes: int) -> nn.Module:
    return _lenet5(shape, num_classes, nn.ReLU, MaxPool2x2)


def lenet_bn(shape: Shape, num_classes: int) -> nn.Module:
    c, h, _ = shape
    side = (_conv_out(h, 5) // 2 - 4) // 2
    return nn.Sequential(
        nn.Conv2d(c, 20, 5), nn.BatchNorm2d(20), nn.ReLU(), MaxPool2x2(),
        nn.Conv2d(20, 50, 5), nn.BatchNorm2d(50), nn.ReLU(), MaxPool2x2(),
        nn.Flatten(),
        nn.Linear(50 * side * side, 500), nn.ReLU(),
        nn.Linear(500, num_classes),
    )


class BasicBlock(nn.Module):
    """Two 3 x 3 convolutions with a shortcut (a 1 x 1 projection when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.body(x) + self.shortcut(x))


def _resnet(shape: Shape, num_classes: int, blocks_per_stage: int, widths: tuple[int, int, int]) -> nn.Module:
    """A CIFAR-style ResNet (He et al. 2016); global pooling makes it size-agnostic."""
    layers: list[nn.Module] = [nn.Conv2d(shape[0], widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
    c_in = widths[0]
    for stage, width in enumerate(widths):
        for i in range(blocks_per_stage):
            layers.append(BasicBlock(c_in, width, 2 if stage > 0 and i == 0 else 1))
            c_in = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes)]
    return nn.Sequential(*layers)


def resnet_mini(shape: Shape, num_classes: int) -> nn.Module:
    return _resnet(shape, num_classes, 1, (32, 64, 128))


def resnet20(shape: Shape, num_classes: int) -> nn.Module:
    return _resnet(shape, num_classes, 3, (16, 32, 64))


def _cnn4(shape: Shape, num_classes: int, widths: tuple[int, int, int, int]) -> nn.Module:
    """Four stages of two 3 x 3 convolutions with BatchNorm and GELU, each halving the image by max pooling, then
    global max pooling: a plain network that trains fast on a CPU (narrow where the image is large)."""
    layers: list[nn.Module] = []
    c_in = shape[0]
    for width in widths:
        layers += [nn.Conv2d(c_in, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.GELU(),
                   nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.GELU(),
                   MaxPool2x2(ceil_mode=True)]
        c_in = width
    return nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes))


def cnn4(shape: Shape, num_classes: int) -> nn.Module:
    return _cnn4(shape, num_classes, (16, 32, 64, 128))


def cnn4_wide(shape: Shape, num_classes: int) -> nn.Module:
    return _cnn4(shape, num_classes, (16, 64, 128, 256))


def resnet_course(shape: Shape, num_classes: int) -> nn.Module:
    """The course notebook's small ResNet: a stem, a 3 x 3 max pool of stride 1, two residual blocks."""
    return nn.Sequential(
        nn.Conv2d(shape[0], 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(3, stride=1, padding=1),
        BasicBlock(32, 64, 2), BasicBlock(64, 64, 1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes),
    )


class Whitening(nn.Conv2d):
    """A 2 x 2 convolution whose frozen weights whiten the image's 2 x 2 patches (airbench's first layer): the
    eigenvectors of their covariance scaled by the inverse square roots of the eigenvalues, and their negatives."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, 8 * channels, 2)
        self.weight.requires_grad = False

    def fit(self, images: torch.Tensor, eps: float = 5e-4, chunk: int = 500) -> None:
        """Set the weights from the patches of `images` (N x C x H x W, normalised), `chunk` images at a time."""
        c = self.in_channels
        total, outer, count = torch.zeros(4 * c, dtype=torch.float64), torch.zeros(4 * c, 4 * c, dtype=torch.float64), 0
        for start in range(0, len(images), chunk):
            x = images[start:start + chunk]
            patches = x.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 4 * c).double().cpu()
            total, outer, count = total + patches.sum(0), outer + patches.T @ patches, count + len(patches)
        mean = total / count
        values, vectors = torch.linalg.eigh(outer / count - torch.outer(mean, mean))  # on the CPU: any device has it
        filters = (vectors.T / (values + eps).sqrt()[:, None]).reshape(4 * c, c, 2, 2)
        self.weight.data.copy_(torch.cat([filters, -filters]).to(self.weight))


class Scaled(nn.Module):
    """Multiplies by a constant: airbench's logits are its last layer's output over 9."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def _airbench_group(c_in: int, c_out: int) -> list[nn.Module]:
    convs = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)]
    for conv in convs:
        nn.init.dirac_(conv.weight[:conv.in_channels])  # each starts as the identity on its first channels
    norms = [nn.BatchNorm2d(c_out, momentum=0.4, eps=1e-12) for _ in convs]
    for norm in norms:
        norm.weight.requires_grad = False
    return [convs[0], MaxPool2x2(), norms[0], nn.GELU(), convs[1], norms[1], nn.GELU()]


def airbench(shape: Shape, num_classes: int) -> nn.Module:
    """KellerJordan's airbench94 network, from its description: whitening, three groups of 64, 256 and 256
    channels, 3 x 3 max pooling, a linear layer without bias, logits over 9. For CIFAR-10's 32 x 32 images."""
    c = shape[0]
    return nn.Sequential(Whitening(c), nn.GELU(), *_airbench_group(8 * c, 64), *_airbench_group(64, 256),
                         *_airbench_group(256, 256), nn.MaxPool2d(3), nn.Flatten(), nn.Linear(256, num_classes, bias=False),
                         Scaled(1 / 9))


WHITENING_IMAGES = 5000  # the training images whose 2 x 2 patches a whitening layer is fitted to, as airbench does


def fit_to_data(model: nn.Module, images: Callable[[], torch.Tensor]) -> None:
    """Set the layers whose weights come from the data (airbench's whitening) from normalised training images,
    which `images()` gives only for a model that has such a layer."""
    layers = [m for m in model.modules() if isinstance(m, Whitening)]
    if layers:
        sample = images()
        for layer in layers:
            layer.fit(sample)


def _lenet_bn_narrow(shape: Shape, num_classes: int, channels: tuple[int, int], hidden: int) -> nn.Module:
    """lenet-bn narrowed for speed, with BatchNorm in its hidden layer too."""
    c, h, _ = shape
    side = (_conv_out(h, 5) // 2 - 4) // 2
    return nn.Sequential(
        nn.Conv2d(c, channels[0], 5, bias=False), nn.BatchNorm2d(channels[0]), nn.ReLU(), MaxPool2x2(),
        nn.Conv2d(channels[0], channels[1], 5, bias=False), nn.BatchNorm2d(channels[1]), nn.ReLU(), MaxPool2x2(),
        nn.Flatten(),
        nn.Linear(channels[1] * side * side, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


def lenet_bn_small(shape: Shape, num_classes: int) -> nn.Module:
    """12 and 32 channels, 128 hidden units: the default before lenet-bn-fast, a fifth of lenet-bn's arithmetic."""
    return _lenet_bn_narrow(shape, num_classes, (12, 32), 128)


def lenet_bn_fast(shape: Shape, num_classes: int) -> nn.Module:
    """8 and 32 channels, 256 hidden units: the default, past 99 % on MNIST in one epoch. Its first layer has 8
    channels because this CPU trains that faster than 12 (lenet-bn-small: about 1.27x the time as whole processes)."""
    return _lenet_bn_narrow(shape, num_classes, (8, 32), 256)


MODELS: dict[str, ModelSpec] = {
    "mlp": ModelSpec(mlp, "Fully connected layers with ReLU; the baseline that ignores image structure."),
    "lenet5-classic": ModelSpec(lenet5_classic, "LeNet-5 as in 1998: sigmoid activations and average pooling."),
    "lenet5": ModelSpec(lenet5, "LeNet-5 with ReLU and max pooling: 61,706 parameters on MNIST."),
    "lenet-bn": ModelSpec(lenet_bn, "Convolutions of 20 and 50 channels with BatchNorm and a 500-unit hidden layer."),
    "lenet-bn-small": ModelSpec(lenet_bn_small, "lenet-bn narrowed to 12 and 32 channels and a 128-unit hidden layer with "
                                                "BatchNorm: past 99 % on MNIST in one epoch."),
    "lenet-bn-fast": ModelSpec(lenet_bn_fast, "lenet-bn with 8 and 32 channels and a 256-unit hidden layer with BatchNorm: "
                                              "the default, past 99 % on MNIST in one epoch, fastest on a CPU."),
    "cnn4": ModelSpec(cnn4, "Four stages of two convolutions with BatchNorm and GELU (16, 32, 64, 128 channels), max "
                            "pooling after each: 295,290 parameters on CIFAR-10, CIFAR-10 on a laptop's CPU."),
    "cnn4-wide": ModelSpec(cnn4_wide, "cnn4 with 16, 64, 128 and 256 channels: 1.16 million parameters, slower and better."),
    "resnet-mini": ModelSpec(resnet_mini, "A small residual network: three stages of one block each (32, 64, 128 channels)."),
    "resnet20": ModelSpec(resnet20, "ResNet-20 for CIFAR (He et al. 2016): three stages of three blocks."),
    "airbench": ModelSpec(airbench, "airbench94's network (KellerJordan), from its description: 2 x 2 whitening from the "
                                    "data, three groups of 64, 256 and 256 channels; for a GPU."),
    "resnet-course": ModelSpec(resnet_course, "The course's small ResNet: a 32-channel stem, max pooling of stride 1, "
                                              "a residual block 32 to 64 with stride 2, one 64 to 64."),
}


def layer_kind(module: nn.Module, kinds: dict[type, str]) -> str | None:
    """The kind `kinds` gives the module's type or the nearest of its bases (airbench's whitening is a convolution)."""
    return next((kinds[t] for t in type(module).__mro__ if t in kinds), None)


def numbered_layers(model: nn.Module, kinds: dict[type, str]) -> dict[str, str]:
    """{module path: conv1, conv2, pool1, fc1, ...}: the modules of the given types, named by kind and numbered in
    the network's order, as the Inside page and the training dynamics call them."""
    counts: dict[str, int] = {}
    names = {}
    for path, module in model.named_modules():
        kind = layer_kind(module, kinds)
        if kind:
            counts[kind] = counts.get(kind, 0) + 1
            names[path] = f"{kind}{counts[kind]}"
    return names


def first_convolution(model: nn.Module) -> nn.Conv2d | None:
    """The layer whose kernels look at the pixels themselves (None in an MLP)."""
    return next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)


def _init_xavier(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _init_kaiming(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)


INITS: dict[str, Callable[[nn.Module], None] | None] = {
    "default": None,  # PyTorch's own per-layer defaults
    "xavier": _init_xavier,
    "kaiming": _init_kaiming,
}


def build_model(name: str, shape: Shape, num_classes: int, init: str = "default", hidden: tuple[int, ...] | None = None) -> nn.Module:
    """Build registry model `name` for inputs of `shape`; `hidden` is the MLP's layer sizes."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; choose one of {', '.join(MODELS)}.")
    if init not in INITS:
        raise ValueError(f"Unknown initialisation {init!r}; choose one of {', '.join(INITS)}.")
    kwargs = {"hidden": tuple(hidden)} if name == "mlp" and hidden else {}
    model = MODELS[name].build(tuple(shape), num_classes, **kwargs)
    if INITS[init] is not None:
        model.apply(INITS[init])
    return model


def check_fits(name: str, shape: Shape, num_classes: int, hidden: tuple[int, ...] | None = None) -> None:
    """ValueError, naming the model, the image shape and the models that would take it, unless registry model
    `name` takes images of `shape`: checked with one forward pass of a blank image, before any run exists."""
    def fits(model_name: str) -> bool:
        try:  # on PyTorch's meta device: shapes only, no memory, so even a huge model is checked in milliseconds
            with torch.no_grad(), torch.device("meta"):
                model = build_model(model_name, shape, num_classes, hidden=hidden).eval()
                return tuple(model(torch.zeros(1, *shape)).shape) == (1, num_classes)
        except (RuntimeError, ValueError, ZeroDivisionError):
            return False

    if fits(name):
        return
    others = [m for m in MODELS if m != name and fits(m)]
    c, h, w = shape
    raise ValueError(f"{name} cannot take images of {c} x {h} x {w} pixels"
                     + (f"; {', '.join(others)} can." if others else "; no model of this app can."))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
