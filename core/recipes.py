"""Named recipes: complete training configs that fill the app's form in one click.

The `course-*` recipes replay university notebooks exactly as they trained
(batch size, initialisation, input scaling, optimizer, schedule, epochs,
validation split, augmentation), with the figure the notebook published; the
`*-fast` ones are the fastest recipes measured here for each dataset (figures in
the README).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.config import TrainConfig


@dataclass(frozen=True)
class Recipe:
    title: str
    description: str
    config: dict[str, Any]  # TrainConfig fields; the rest keep their defaults
    published: str = ""  # the test accuracy the recipe's notebook printed
    curve: tuple[float, ...] = ()  # the notebook's test accuracy after each epoch, when it printed them
    lesson: str = ""  # what the lecture's curve shows, drawn beside it

    def train_config(self) -> TrainConfig:
        """The whole config: the recipe's values over the defaults."""
        return TrainConfig.from_dict({**TrainConfig().to_dict(), **self.config})


# what the notebooks did not use, and the test accuracy they printed after every epoch
NOTEBOOK = dict(scheduler="none", label_smoothing=0.0, val_split=0.0, momentum=0.0, test_each_epoch=True)


RECIPES: dict[str, Recipe] = {
    "mnist-fast": Recipe(
        "MNIST, fastest to 99 %",
        "lenet-bn-fast (8 and 32 channels, BatchNorm after each layer) with Adam, a one-cycle schedule and label "
        "smoothing: 99 % test accuracy in one epoch (the defaults).",
        dict(dataset="mnist", model="lenet-bn-fast", optimizer="adam", lr=0.03, scheduler="onecycle",
             batch_size=256, epochs=1, label_smoothing=0.1),
    ),
    "mnist-lenet5": Recipe(
        "MNIST, LeNet-5 to 99 %",
        "LeNet-5 (ReLU, max pooling, no BatchNorm) with Adam, a one-cycle schedule and label smoothing: 99 % test "
        "accuracy in 3 epochs (the defaults until a narrowed lenet-bn did it in one).",
        dict(dataset="mnist", model="lenet5", optimizer="adam", lr=0.01, scheduler="onecycle",
             batch_size=256, epochs=3, label_smoothing=0.1),
    ),
    "fashion-fast": Recipe(
        "Fashion-MNIST, past 92 % in under a minute",
        "cnn4 on channels-last memory, SGD with Nesterov momentum and one-cycle: 92 to 93 % test accuracy in 3 epochs "
        "(40 to 43 s of training on a 2-core CPU).",
        dict(dataset="fashion-mnist", model="cnn4", channels_last=True, optimizer="sgd", lr=0.2, momentum=0.9,
             nesterov=True, weight_decay=5e-4, scheduler="onecycle", batch_size=256, epochs=3, label_smoothing=0.1),
    ),
    "cifar-fast": Recipe(
        "CIFAR-10, small ResNet with flips",
        "resnet-mini with flips and crops, SGD with Nesterov momentum and one-cycle: the airbench ingredients.",
        dict(dataset="cifar10", model="resnet-mini", optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True,
             weight_decay=5e-4, scheduler="onecycle", batch_size=256, epochs=10, augment=("flip", "crop"),
             label_smoothing=0.2),
    ),
    "cifar-gpu": Recipe(
        "CIFAR-10 on a GPU, after airbench94",
        "The airbench network (whitening fitted to the data, 64, 256 and 256 channels) with airbench94's ingredients "
        "this engine has: batch 1,024, SGD with Nesterov momentum (one-cycle moves it between 0.85 and 0.95), "
        "airbench's weight decay (1.33e-3 at this learning rate), label smoothing 0.2, flips and 2-pixel crops, 10 "
        "epochs, and its test-time augmentation (the image, its mirror and both shifted by a pixel). Not yet "
        "measured on a GPU beside its peer (bench/peer_airbench94.py).",
        dict(dataset="cifar10", model="airbench", channels_last=True, optimizer="sgd", lr=1.5, momentum=0.85,
             nesterov=True, weight_decay=1.33e-3, scheduler="onecycle", batch_size=1024, epochs=10,
             augment=("flip", "crop"), label_smoothing=0.2, val_split=0.0, tta="flip-translate"),
    ),
    "cifar-cpu": Recipe(
        "CIFAR-10 on a laptop's CPU, in minutes",
        "cnn4 (four stages of two convolutions, 295,290 parameters) on channels-last memory, flips and 2-pixel crops, "
        "SGD with Nesterov momentum and one-cycle, label smoothing 0.2, and test-time flips (a point more for twice "
        "the test pass): for a lecture without a GPU.",
        dict(dataset="cifar10", model="cnn4", channels_last=True, optimizer="sgd", lr=0.2, momentum=0.9, nesterov=True,
             weight_decay=5e-4, scheduler="onecycle", batch_size=256, epochs=10, augment=("flip", "crop"),
             label_smoothing=0.2, val_split=0.0, tta="flip"),
    ),
    "cifar-cpu-long": Recipe(
        "CIFAR-10 on a laptop's CPU, longer and better",
        "cnn4-wide (1.16 million parameters) with the cifar-cpu recipe for more epochs.",
        dict(dataset="cifar10", model="cnn4-wide", channels_last=True, optimizer="sgd", lr=0.2, momentum=0.9,
             nesterov=True, weight_decay=5e-4, scheduler="onecycle", batch_size=256, epochs=20, augment=("flip", "crop"),
             label_smoothing=0.2, val_split=0.0, tta="flip"),
    ),
    "lenet5-classic-sgd": Recipe(
        "LeNet-5 classic, default initialisation",
        "The 1998 network (sigmoid, average pooling), plain SGD at learning rate 0.5, batch 256 and PyTorch's default "
        "initialisation: it barely moves for epochs. Compare course-lenet5-classic-xavier, which differs in the initialisation.",
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
    "course-lenet5-sgd": Recipe(
        "Course: LeNet-5, SGD with momentum",
        "The course notebook's LeNet-5 (ReLU, max pooling), inputs scaled to [-1, 1], SGD learning rate 0.001 with "
        "momentum 0.9, batch 100, 10 epochs.",
        dict(NOTEBOOK, dataset="mnist", model="lenet5", input_scaling="symmetric", optimizer="sgd", lr=0.001,
             momentum=0.9, batch_size=100, epochs=10),
        published="95.41 % after 3 epochs, 97.8 % after 10",
    ),
    "course-lenet-bn-adam": Recipe(
        "Course: LeNet with BatchNorm, Adam",
        "The course notebook's LeNet with BatchNorm, inputs on [0, 1], Adam learning rate 0.001, batch 100, 3 epochs.",
        dict(NOTEBOOK, dataset="mnist", model="lenet-bn", input_scaling="unit", optimizer="adam", lr=0.001,
             batch_size=100, epochs=3),
        published="99 % and above after 3 epochs",
    ),
    "course-lenet5-classic-augment": Recipe(
        "Course: LeNet-5 classic with rotations and inversions",
        "The 1998 network, inputs on [-1, 1], SGD learning rate 0.01 with momentum 0.9, batch 100, a 20 % validation "
        "split, random rotation up to 25 degrees and random inversion of half the images, the checkpoint of the best "
        "validation loss. The notebook does not show its epoch count. Here it stays at chance (measured to 120 "
        "epochs): on [-1, 1] an inverted image is the image negated, and a sigmoid network still near its almost "
        "linear start is pushed opposite ways by the two halves of each batch; with rotations alone it leaves that "
        "plateau near epoch 20 (96 % after 40).",
        dict(NOTEBOOK, dataset="mnist", model="lenet5-classic", input_scaling="symmetric", optimizer="sgd", lr=0.01,
             momentum=0.9, batch_size=100, val_split=0.2, augment=("rotate", "invert"), rotate_degrees=25.0,
             best_by="loss", epochs=30),
        published="98.64 %",
    ),
    "course-lenet5-classic-xavier": Recipe(
        "Course: LeNet-5 classic, Xavier initialisation",
        "The 1998 network with Xavier-uniform initialisation, inputs on [0, 1], plain SGD at learning rate 0.5, "
        "batch 100, 16 epochs.",
        dict(NOTEBOOK, dataset="mnist", model="lenet5-classic", init="xavier", input_scaling="unit", optimizer="sgd",
             lr=0.5, batch_size=100, epochs=16),
        published="98.49 % after 16 epochs",
        curve=(9.58, 10.10, 84.07, 91.66, 94.91, 96.13, 96.59, 97.24, 97.35, 97.66, 98.02, 98.12, 97.94, 98.25, 98.38, 98.49),
    ),
    "course-mlp-fashion": Recipe(
        "Course: MLP on Fashion-MNIST",
        "The course notebook's MLP with one hidden layer of 196 units, inputs on [0, 1], plain SGD at learning rate "
        "0.1, batch 1000, 10 epochs.",
        dict(NOTEBOOK, dataset="fashion-mnist", model="mlp", hidden=(196,), input_scaling="unit", optimizer="sgd",
             lr=0.1, batch_size=1000, epochs=10),
        published="none published",
    ),
    "course-resnet-cifar": Recipe(
        "Course: a small ResNet on CIFAR-10, as the lecture ran it",
        "The course notebook's ResNet (a 32-channel stem with BatchNorm, 3 x 3 max pooling of stride 1, a residual "
        "block 32 to 64 with stride 2, one 64 to 64, global average pooling), random horizontal flips and grayscale, "
        "training inputs normalised with mean 0.5 and std 0.5, plain SGD at learning rate 0.9, batch 100, 10 epochs; "
        "its test images only converted to [0, 1], as the notebook did (test scaling 'unit'). "
        "course-resnet-cifar-corrected feeds them as the training images.",
        dict(NOTEBOOK, dataset="cifar10", model="resnet-course", input_scaling="symmetric", test_scaling="unit",
             optimizer="sgd", lr=0.9, batch_size=100, augment=("flip", "grayscale"), epochs=10),
        published="51.75 % after 10 epochs, erratic from 54 to 61 % on the way",
        curve=(58.96, 54.67, 54.68, 56.35, 58.98, 60.32, 56.04, 61.46, 54.80, 51.75),
        lesson="The lecture's test images were only converted to [0, 1] while its training images were normalised to "
               "[-1, 1]: its erratic, low test curve is that mismatch, not the network.",
    ),
    "course-resnet-cifar-corrected": Recipe(
        "Course: the small ResNet on CIFAR-10, corrected",
        "course-resnet-cifar with its test images normalised as its training images were (mean 0.5, std 0.5): the "
        "same training, measured right.",
        dict(NOTEBOOK, dataset="cifar10", model="resnet-course", input_scaling="symmetric", optimizer="sgd", lr=0.9,
             batch_size=100, augment=("flip", "grayscale"), epochs=10),
        published="none published (the lecture's own figures had the mismatch)",
    ),
}


# a lecture's curve still applies epoch by epoch, and beside its corrected replay too
IGNORED_BY_LECTURE = ("epochs", "seed", "device", "run_dir", "test_each_epoch", "test_scaling", "tta")


def lecture(cfg: TrainConfig) -> tuple[str, Recipe] | None:
    """The recipe with a published per-epoch curve that `cfg` replays (same data, model and training; any number of
    epochs, any seed), so its curve can be drawn beside the run's."""
    wanted = {k: v for k, v in cfg.to_dict().items() if k not in IGNORED_BY_LECTURE}
    for name, recipe in RECIPES.items():
        theirs = recipe.train_config().to_dict()
        if recipe.curve and all(theirs[k] == v for k, v in wanted.items()):
            return name, recipe
    return None
