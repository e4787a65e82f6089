"""Training in a background thread, so a user interface never blocks on it.

The app's pages are rerun from the top at every click; a run must outlive
those reruns, page switches and browser reloads. A process-wide JobManager
owns the runs: it starts one thread per run, keeps every event the engine
emits, refuses a second run on a device that is busy, and turns any failure
into a status with a message instead of a dead thread.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

import torch

from core.config import TrainConfig
from core.data import DatasetUnavailable, ImageDataset
from core.device import resolve_device
from core.engine import (
    EpochEvent,
    Event,
    StatusEvent,
    StepEvent,
    TrainResult,
    resume,
    train,
)
from core.importers import DataImportError
from core.runs import RunStore

ACTIVE = ("queued", "loading", "running", "evaluating")


class DeviceBusy(RuntimeError):
    """A run is already training on this device."""


@dataclass
class Snapshot:
    """A consistent copy of a job's progress, safe to read from another thread."""

    status: str
    message: str
    steps: list[StepEvent]
    epochs: list[EpochEvent]
    result: TrainResult | None


@dataclass
class TrainingJob:
    id: int
    config: TrainConfig
    device: str
    store: RunStore  # the run's folder: what outlives this process
    dataset: ImageDataset | None = None  # a user's imported data; built-in datasets load by name
    resuming: bool = False
    status: str = "queued"
    message: str = "Waiting to start"
    result: TrainResult | None = None
    _steps: list[StepEvent] = field(default_factory=list)
    _epochs: list[EpochEvent] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def run_id(self) -> str:
        return self.store.id

    @property
    def title(self) -> str:
        return f"{self.config.model} on {self.result.dataset if self.result else self.config.dataset} ({self.run_id})"

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def stop(self) -> None:
        """Ask the run to stop; the engine ends within one batch and keeps what it learned."""
        self._stop.set()
        if self.active:
            self.message = "Stopping…"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run ends (for scripts and tests); True when it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.active

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(self.status, self.message, list(self._steps), list(self._epochs), self.result)

    def _prefill_from_store(self) -> None:
        """A resumed run's curves start with the epochs it already finished."""
        epochs = self.store.epochs()
        if not epochs:
            return
        done = epochs[-1]["epoch"]
        steps = [s for s in self.store.steps() if s["epoch"] <= done]
        total = round(steps[-1]["step"] / done * self.config.epochs) if steps else 0
        self._epochs = [EpochEvent(**e) for e in epochs]
        self._steps = [StepEvent(s["epoch"], s["step"], total, s["loss"], s["lr"], 0.0, 0.0) for s in steps]

    def _on_event(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, StepEvent):
                self._steps.append(event)
            elif isinstance(event, EpochEvent):
                self._epochs.append(event)
            elif isinstance(event, StatusEvent):
                self.status, self.message = event.status, event.message

    def _run(self) -> None:
        try:
            if self.resuming:
                result = resume(self.store, on_event=self._on_event, stop=self._stop, dataset=self.dataset)
            else:
                result = train(self.config, on_event=self._on_event, stop=self._stop, dataset=self.dataset, store=self.store)
        except torch.cuda.OutOfMemoryError:
            self._fail("The GPU ran out of memory. Lower the batch size or choose a smaller model, then start again.")
        except (DatasetUnavailable, DataImportError, ValueError) as exc:
            self._fail(str(exc))
        except Exception as exc:  # a background thread must end with a status, never silently
            self._fail(f"Training failed: {type(exc).__name__}: {exc}")
        else:
            with self._lock:
                self.result, self.status, self.message = result, result.status, result.message
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def _fail(self, message: str) -> None:
        with self._lock:
            self.status, self.message = "failed", message


class JobManager:
    """Every run of this process, newest last; at most one active run per device."""

    def __init__(self) -> None:
        self._jobs: dict[int, TrainingJob] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def start(self, config: TrainConfig, dataset: ImageDataset | None = None) -> TrainingJob:
        """Validate `config`, record the run as queued and train it in a thread; DeviceBusy if its device is training."""
        config.validate()
        return self._launch(config, dataset, store=None)

    def resume(self, store: RunStore, dataset: ImageDataset | None = None) -> TrainingJob:
        """Continue an interrupted or stopped run in a thread, from its last finished epoch."""
        return self._launch(store.config(), dataset, store)

    def _launch(self, config: TrainConfig, dataset: ImageDataset | None, store: RunStore | None) -> TrainingJob:
        device = str(resolve_device(config.device))
        with self._lock:
            busy = next((j for j in self._jobs.values() if j.active and j.device == device), None)
            if busy is not None:
                raise DeviceBusy(f"Run {busy.title} is still training on {device}. Stop it or wait for it to finish.")
            resuming = store is not None
            store = store or RunStore.create(config, dataset.name if dataset else config.dataset, config.run_dir)
            job = TrainingJob(next(self._ids), config, device, store, dataset, resuming)
            if resuming:
                job._prefill_from_store()
            self._jobs[job.id] = job
        job._thread = threading.Thread(target=job._run, name=f"train-{job.id}", daemon=True)
        job._thread.start()
        return job

    def jobs(self) -> list[TrainingJob]:
        with self._lock:
            return list(self._jobs.values())

    def for_run(self, run_id: str) -> TrainingJob | None:
        """The newest job of this process that trains or trained run `run_id`."""
        return next((j for j in reversed(self.jobs()) if j.run_id == run_id), None)

    def active(self) -> TrainingJob | None:
        return next((j for j in reversed(self.jobs()) if j.active), None)

_MANAGER = JobManager()


def manager() -> JobManager:
    """The process-wide manager: every browser session of one server shares it."""
    return _MANAGER

