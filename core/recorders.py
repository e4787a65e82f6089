"""Subscribers that record a run as its engine emits: the run store's files and TensorBoard.

Each takes events only, in the order the engine emits them, and rewrites whole
files, so a process killed between two writes leaves files that the next
start (from Resume's state, in StartEvent) rewrites correctly: no epoch is
repeated or lost.
"""

from __future__ import annotations

import socket
import time

from core.events import EndEvent, EpochEvent, Event, StartEvent, StatusEvent, StepEvent, Subscriber
from core.store import RunStatus, RunStore, owner
from core.tensorboard import TensorBoard

LIVE_INTERVAL = 1.0  # seconds between writes of the live progress (steps.json and status.json)


class RunRecorder:
    """status.json (status, progress, summary), epochs.json and steps.json of one run."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.epochs: list[dict] = []
        self.steps: list[dict] = []
        self.last_write = 0.0

    def __call__(self, event: Event) -> None:
        if isinstance(event, StartEvent):
            self.epochs, self.steps = list(event.epochs), list(event.steps)
            self.store.write_metrics(self.epochs, self.steps)
            self.store.update_status(status=RunStatus.RUNNING, **owner(), backend="local", node=socket.gethostname(),
                                     device=event.device, params=event.params,
                                     total_steps=event.total_steps, epoch=len(self.epochs), started=time.time())
        elif isinstance(event, StatusEvent):
            self.store.update_status(status=event.status, message=event.message, **owner())
        elif isinstance(event, StepEvent):
            self.steps.append(event.record())
            if time.monotonic() - self.last_write >= LIVE_INTERVAL:
                self.last_write = time.monotonic()
                self.store.write_metrics(self.epochs, self.steps)
                self.store.update_status(step=event.step, total_steps=event.total_steps, eta_seconds=event.eta_seconds,
                                         samples_per_second=event.samples_per_second)
        elif isinstance(event, EpochEvent):
            self.epochs.append(event.metrics())
            self.store.write_metrics(self.epochs, self.steps)
            self.store.update_status(message=f"Epoch {event.epoch} done", epoch=event.epoch)
        elif isinstance(event, EndEvent):
            self.store.write_metrics(self.epochs, self.steps)
            self.store.update_status(status=event.status, message=event.message, finished=time.time(), eta_seconds=None,
                                     pid=None, **event.summary)


class TensorBoardRecorder:
    """The run's TensorBoard scalars and histograms; a resumed run drops the events past its last finished epoch."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.board: TensorBoard | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, StartEvent):
            last = event.steps[-1]["step"] if event.steps else 0
            self.board = TensorBoard(self.store.path, purge_step=last + 1 if last else None)
        elif self.board is None:
            return
        elif isinstance(event, StepEvent):
            self.board.step(event)
        elif isinstance(event, EpochEvent):
            self.board.epoch(event)
        elif isinstance(event, EndEvent):
            self.board.close()
            self.board = None


def fan_out(subscribers: list[Subscriber | None]) -> Subscriber:
    """One subscriber that hands each event to every given one, in the given order."""
    chosen = [s for s in subscribers if s is not None]

    def emit(event: Event) -> None:
        for subscriber in chosen:
            subscriber(event)

    return emit
