"""Named recipes: complete training configs that fill the app's form in one click.

The course classics come from university notebooks; the `*-fast` ones are the
fastest recipes measured here for each dataset (figures in the README).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Recipe:
    title: str
    description: str
    config: dict[str, Any]  # TrainConfig fields; the rest keep their defaults


RECIPES: dict[str, Recipe] = {
    "mnist-fast": Recipe(
        "MNIST, fastest to 99 %",
        "LeNet-5 (ReLU) with Adam, a one-cycle schedule and label smoothing: 99 % test accuracy in 3 epochs (the defaults).",
        dict(dataset="mnist", model="lenet5", optimizer="adam", lr=0.01, scheduler="onecycle",
             batch_size=256, epochs=3, label_smoothing=0.1),
    ),
    "fashion-fast": Recipe(
        "Fashion-MNIST, fastest to 91 %",
        "LeNet with BatchNorm, Adam and one-cycle: above 91 % test accuracy in 5 epochs.",
        dict(dataset="fashion-mnist", model="lenet-bn", optimizer="adam", lr=0.003, scheduler="onecycle",
             batch_size=256, epochs=5, label_smoothing=0.1),
    ),
    "cifar-fast": Recipe(
        "CIFAR-10, small ResNet with flips",
        "resnet-mini with flips and crops, SGD with Nesterov momentum and one-cycle: the airbench ingredients.",
        dict(dataset="cifar10", model="resnet-mini", optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True,
             weight_decay=5e-4, scheduler="onecycle", batch_size=256, epochs=10, augment=("flip", "crop"),
             label_smoothing=0.2),
    ),
    "lenet5-classic-sgd": Recipe(
        "LeNet-5 classic, plain SGD",
        "The 1998 network (sigmoid, average pooling) with plain SGD at learning rate 0.5 for 16 epochs, as in the course notebook.",
        dict(dataset="mnist", model="lenet5-classic", optimizer="sgd", lr=0.5, momentum=0.0, scheduler="none",
             batch_size=256, epochs=16),
    ),
    "lenet5-sgd-momentum": Recipe(
        "LeNet-5 ReLU, SGD with momentum",
        "ReLU and max pooling make LeNet-5 train fast with SGD, learning rate 0.05 and momentum 0.9.",
        dict(dataset="mnist", model="lenet5", optimizer="sgd", lr=0.05, momentum=0.9, scheduler="none",
             batch_size=128, epochs=5),
    ),
    "lenet-bn-adam": Recipe(
        "LeNet with BatchNorm, Adam",
        "BatchNorm after each convolution, Adam at learning rate 0.001.",
        dict(dataset="mnist", model="lenet-bn", optimizer="adam", lr=0.001, scheduler="none",
             batch_size=128, epochs=5),
    ),
    "mlp-fashion": Recipe(
        "MLP on Fashion-MNIST",
        "One hidden layer of 196 units: the baseline a convolutional network has to beat.",
        dict(dataset="fashion-mnist", model="mlp", hidden=(196,), optimizer="adam", lr=0.001, scheduler="none",
             batch_size=256, epochs=10),
    ),
}
