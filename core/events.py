"""What the training loop emits, in this order: start, steps and epochs (with status changes), end.

Subscribers (core.recorders, the command line's progress bar) see only these
plain records, so each can be tested with made-up events and no model. `Stop`
is how anyone asks the loop to end; it checks it at every step.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StartEvent:
    """Training begins (or resumes): what the run is, and the curves of the epochs it already finished."""

    device: str
    params: int
    total_steps: int
    epochs: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    kind: str = "start"


@dataclass
class StepEvent:
    epoch: int
    step: int  # global step, 1-based
    total_steps: int
    loss: float  # mean training cross-entropy since the previous step event (without label smoothing)
    lr: float
    samples_per_second: float
    eta_seconds: float
    layers: dict[str, dict[str, float | None]] | None = None  # core.dynamics: per layer mean, std, grad_norm
    activations: dict[str, Any] | None = field(default=None, repr=False)  # per layer some values, for histograms (epoch ends)
    kind: str = "step"

    def record(self) -> dict[str, Any]:
        """The step's line in steps.json."""
        line = {"epoch": self.epoch, "step": self.step, "loss": self.loss, "lr": self.lr}
        return {**line, "layers": self.layers} if self.layers else line


@dataclass
class EpochEvent:
    """One finished epoch; emitted after Resume's state for it is on disk."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    seconds: float  # wall time of this epoch, validation included
    lr: float
    test_loss: float | None = None  # only when the config asks for the test set after every epoch
    test_accuracy: float | None = None
    kind: str = "epoch"

    def metrics(self) -> dict[str, Any]:
        """The epoch's line in epochs.json."""
        return {k: v for k, v in self.__dict__.items() if k != "kind"}


@dataclass
class StatusEvent:
    status: str  # a RunStatus: loading, running, evaluating
    message: str
    kind: str = "status"


@dataclass
class EndEvent:
    """The run is over: its final status and the numbers that sum it up."""

    status: str  # a RunStatus: finished, stopped, diverged, failed
    message: str
    summary: dict[str, Any] = field(default_factory=dict)  # test_accuracy, best_epoch, train_seconds, ...
    kind: str = "end"


Event = StartEvent | StepEvent | EpochEvent | StatusEvent | EndEvent
Subscriber = Callable[[Event], None]


class Stop(threading.Event):
    """A stop request with its reason, shown as the run's message."""

    reason: str = ""

    def request(self, reason: str = "Stopped by request") -> None:
        self.reason = self.reason or reason
        self.set()


def stop_on_sigterm() -> Stop:
    """A Stop that SIGTERM sets (a Stop button, `python -m core.runs stop`, `kill PID`): the run ends as
    stopped, with its checkpoint and test evaluation, instead of dying."""
    stop = Stop()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.request("Stopped by request"))
    return stop
