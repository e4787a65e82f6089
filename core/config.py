"""The full description of a training run, with the limits the engine accepts.

The same dataclass is filled by the command line, the app's form and a shared
link, saved beside every checkpoint, and checked once by `validate` so that
nothing the engine would crash on gets in. `LIMITS` is the one table of allowed
ranges: `validate` enforces it and the Model page's widgets are drawn from it, so
a value the config accepts is one the form can show.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from core.augment import ROTATION_DEGREES, TEST_TIME_AUGMENTATIONS, parse_augmentations
from core.models import INITS, MODELS
from core.optim import OPTIMIZERS, SCHEDULERS
from core.preprocess import INPUT_SCALINGS

DEVICES = ("auto", "cpu", "cuda", "mps")
BEST_BY = ("accuracy", "loss")  # which validation number picks the kept checkpoint
TEST_SCALINGS = ("same", *INPUT_SCALINGS)  # "same": test images are fed as training images are (anything else is a lecture's bug)


class Limit(NamedTuple):
    label: str
    low: float
    high: float
    whole: bool  # an integer setting


LIMITS = {
    "lr": Limit("Learning rate", 1e-12, 10.0, False),
    "momentum": Limit("Momentum", 0.0, 0.999, False),
    "weight_decay": Limit("Weight decay", 0.0, 1.0, False),
    "label_smoothing": Limit("Label smoothing", 0.0, 0.99, False),
    "gamma": Limit("Decay factor gamma", 0.01, 1.0, False),
    "step_epochs": Limit("Step size (epochs)", 1, 500, True),
    "batch_size": Limit("Batch size", 1, 8192, True),
    "epochs": Limit("Epochs", 1, 500, True),
    "val_split": Limit("Validation split", 0.0, 0.5, False),
    "rotate_degrees": Limit("Rotation (degrees)", 0.0, 180.0, False),
    "patience": Limit("Early-stopping patience (epochs)", 0, 10_000, True),
    "seed": Limit("Seed", 0, 2**31 - 1, True),
    "limit_train": Limit("Training images (--limit-train)", 1, 10_000_000, True),  # or None: all
}
LIST_LIMITS = {  # each element, and how many
    "milestones": (Limit("Milestones (epochs)", 1, 500, True), 0, 100),
    "hidden": (Limit("Hidden layer sizes", 1, 8192, True), 1, 16),
}
BATCH_SIZES = (16, 32, 64, 100, 128, 256, 512, 1024)  # the form's choices; the command line takes any in LIMITS


ANY_NUMBER = Limit("A number", -math.inf, math.inf, False)  # any finite one
COUNT = Limit("A count", 0, math.inf, True)


def within(limit: Limit, value: Any) -> bool:
    """`value` is a number of the limit's kind (never a bool, NaN or infinity) inside its range."""
    kinds = int if limit.whole else (int, float)
    if not isinstance(value, kinds) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value) and limit.low <= value <= limit.high
    except OverflowError:  # an integer too large for a float
        return False


@dataclass
class TrainConfig:
    """Defaults are the `mnist-fast` recipe: lenet-bn-fast past 99 % on MNIST in one epoch."""

    dataset: str = "mnist"  # a built-in name, or the path of a CSV file or image folder
    model: str = "lenet-bn-fast"
    hidden: tuple[int, ...] = (256, 128)  # MLP hidden layer sizes
    init: str = "default"
    optimizer: str = "adam"
    lr: float = 0.03
    momentum: float = 0.9  # SGD only
    nesterov: bool = False  # SGD only
    weight_decay: float = 0.0
    scheduler: str = "onecycle"
    step_epochs: int = 1  # step schedule: decay every this many epochs
    milestones: tuple[int, ...] = (2, 4)  # multistep schedule: decay at these epochs
    gamma: float = 0.1  # step and multistep decay factor
    label_smoothing: float = 0.1
    batch_size: int = 256
    epochs: int = 1
    augment: tuple[str, ...] = ()
    rotate_degrees: float = ROTATION_DEGREES  # the rotate augmentation turns each image by up to this many degrees
    input_scaling: str = "standardize"  # see core.preprocess.INPUT_SCALINGS
    tta: str = "none"  # test-time augmentation of every prediction (core.augment.TEST_TIME_AUGMENTATIONS)
    test_scaling: str = "same"  # how test images are fed: as training images ("same"), or, replaying a lecture's mistake, another scaling
    val_split: float = 0.1
    patience: int = 0  # early stopping: epochs without a better validation score; 0 = off
    best_by: str = "accuracy"  # the checkpoint kept is the epoch with the best validation accuracy, or loss
    test_each_epoch: bool = False  # also measure the test set after every epoch, as course notebooks print it; never picks the checkpoint
    seed: int = 0
    device: str = "auto"
    channels_last: bool = False  # convolutions on N x H x W x C memory: faster for some networks on some devices (measure)
    limit_train: int | None = None  # train on the first N images of the training split only
    run_dir: str | None = None

    def validate(self) -> "TrainConfig":
        """Raise ValueError with a readable message for any value the engine cannot take."""
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(message)

        for name in ("model", "init", "optimizer", "scheduler", "device", "dataset", "input_scaling", "test_scaling", "best_by",
                     "tta"):
            check(isinstance(getattr(self, name), str), f"{name} must be a name, got {getattr(self, name)!r}.")
        check(self.model in MODELS, f"Unknown model {self.model!r}; choose one of {', '.join(MODELS)}.")
        check(self.init in INITS, f"Unknown initialisation {self.init!r}; choose one of {', '.join(INITS)}.")
        check(self.optimizer in OPTIMIZERS, f"Unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
        check(self.scheduler in SCHEDULERS, f"Unknown schedule {self.scheduler!r}; choose one of {', '.join(SCHEDULERS)}.")
        check(self.device in DEVICES, f"Unknown device {self.device!r}; choose one of {', '.join(DEVICES)}.")
        check(self.input_scaling in INPUT_SCALINGS,
              f"Unknown input scaling {self.input_scaling!r}; choose one of {', '.join(INPUT_SCALINGS)}.")
        check(self.test_scaling in TEST_SCALINGS,
              f"Unknown test scaling {self.test_scaling!r}; choose one of {', '.join(TEST_SCALINGS)}.")
        check(self.tta in TEST_TIME_AUGMENTATIONS,
              f"Unknown test-time augmentation {self.tta!r}; choose one of {', '.join(TEST_TIME_AUGMENTATIONS)}.")
        check(self.best_by in BEST_BY, f"best_by must be one of {', '.join(BEST_BY)}, got {self.best_by!r}.")
        for name in ("nesterov", "test_each_epoch", "channels_last"):
            check(isinstance(getattr(self, name), bool), f"{name} must be true or false, got {getattr(self, name)!r}.")
        for name, limit in LIMITS.items():
            value = getattr(self, name)
            if name == "limit_train" and value is None:
                continue
            kind = "a whole number" if limit.whole else "a number"
            check(within(limit, value), f"{limit.label} must be {kind} from {limit.low:g} to {limit.high:g}, got {value!r:.40}.")
        for name, (limit, fewest, most) in LIST_LIMITS.items():
            values = getattr(self, name)
            check(isinstance(values, tuple) and fewest <= len(values) <= most and all(within(limit, v) for v in values),
                  f"{limit.label} must be {fewest} to {most} whole numbers from {limit.low:g} to {limit.high:g}, "
                  f"got {list(values) if isinstance(values, tuple) else values!r:.60}.")
        check(self.run_dir is None or isinstance(self.run_dir, str), f"run_dir must be a path, got {self.run_dir!r}.")
        self.augment = parse_augmentations(self.augment)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Rebuild from a saved dict; unknown keys are ignored, lists become tuples."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names}
        return cls(**kwargs)

