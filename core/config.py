"""The full description of a training run, with the limits the engine accepts.

The same dataclass is filled by the command line and the app's form, saved
beside every checkpoint, and checked once by `validate` so that nothing the
engine would crash on gets in.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from core.augment import parse_augmentations
from core.models import INITS, MODELS
from core.optim import OPTIMIZERS, SCHEDULERS

DEVICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    """Defaults are the `mnist-fast` recipe: LeNet-5 past 99 % on MNIST in 3 epochs."""

    dataset: str = "mnist"  # a built-in name, or the path of a CSV file or image folder
    model: str = "lenet5"
    hidden: tuple[int, ...] = (256, 128)  # MLP hidden layer sizes
    init: str = "default"
    optimizer: str = "adam"
    lr: float = 0.01
    momentum: float = 0.9  # SGD only
    nesterov: bool = False  # SGD only
    weight_decay: float = 0.0
    scheduler: str = "onecycle"
    step_epochs: int = 1  # step schedule: decay every this many epochs
    milestones: tuple[int, ...] = (2, 4)  # multistep schedule: decay at these epochs
    gamma: float = 0.1  # step and multistep decay factor
    label_smoothing: float = 0.1
    batch_size: int = 256
    epochs: int = 3
    augment: tuple[str, ...] = ()
    val_split: float = 0.1
    patience: int = 0  # early stopping: epochs without a better validation accuracy; 0 = off
    seed: int = 0
    device: str = "auto"
    limit_train: int | None = None  # train on the first N images of the training split only
    run_dir: str | None = None

    def validate(self) -> "TrainConfig":
        """Raise ValueError with a readable message for any value the engine cannot take."""
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(message)

        check(self.model in MODELS, f"Unknown model {self.model!r}; choose one of {', '.join(MODELS)}.")
        check(self.init in INITS, f"Unknown initialisation {self.init!r}; choose one of {', '.join(INITS)}.")
        check(self.optimizer in OPTIMIZERS, f"Unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
        check(self.scheduler in SCHEDULERS, f"Unknown schedule {self.scheduler!r}; choose one of {', '.join(SCHEDULERS)}.")
        check(self.device in DEVICES, f"Unknown device {self.device!r}; choose one of {', '.join(DEVICES)}.")
        check(0 < self.lr <= 10, f"Learning rate must be in (0, 10], got {self.lr}.")
        check(0 <= self.momentum < 1, f"Momentum must be in [0, 1), got {self.momentum}.")
        check(0 <= self.weight_decay <= 1, f"Weight decay must be in [0, 1], got {self.weight_decay}.")
        check(0 <= self.label_smoothing < 1, f"Label smoothing must be in [0, 1), got {self.label_smoothing}.")
        check(0 < self.gamma <= 1, f"Decay factor gamma must be in (0, 1], got {self.gamma}.")
        check(self.step_epochs >= 1, f"Step size must be at least 1 epoch, got {self.step_epochs}.")
        check(all(m >= 1 for m in self.milestones), f"Milestones must be epochs >= 1, got {list(self.milestones)}.")
        check(1 <= self.batch_size <= 8192, f"Batch size must be from 1 to 8192, got {self.batch_size}.")
        check(1 <= self.epochs <= 500, f"Epochs must be from 1 to 500, got {self.epochs}.")
        check(0 <= self.val_split <= 0.5, f"Validation split must be from 0 to 0.5, got {self.val_split}.")
        check(self.patience >= 0, f"Patience must be 0 (off) or more epochs, got {self.patience}.")
        check(self.limit_train is None or self.limit_train >= 1, f"--limit-train must be at least 1, got {self.limit_train}.")
        check(all(h >= 1 for h in self.hidden) and len(self.hidden) >= 1, f"Hidden sizes must be positive, got {list(self.hidden)}.")
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

