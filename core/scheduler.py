"""The fair queue: runs wait their turn, workspace by workspace, and each trains in a worker process.

Start puts a run in the store as queued; the scheduler's thread (one per
server process) starts a worker (`python -m core.worker RUN_DIR`) whenever a
device has a free slot, choosing the next run by round robin over workspaces,
so one student's many runs cannot starve the others. Everything it knows it
reads from the run store, so a restarted server picks up the queue where it
was, and runs started from the command line take their device slots too.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from core.cluster import Cluster
from core.config import TrainConfig
from core.data import DATASETS
from core.device import resolve_device
from core.models import build_model, count_parameters
from core.settings import HostSettings
from core.store import ACTIVE, RESUMABLE, RUN_ID, RunStatus, RunStore, list_runs, owner
from core.worker import LAUNCHING, LocalWorker, Worker, cancel_if_queued, request_stop
from core.workspaces import LOCAL, all_workspaces, workspace_root

TRAINING = frozenset({RunStatus.LOADING, RunStatus.RUNNING, RunStatus.EVALUATING})


class QuotaExceeded(ValueError):
    """A limit the host set for each workspace; the message says which and what to do."""


@dataclass(frozen=True)
class Entry:
    """One run as the scheduler sees it."""

    store: RunStore
    workspace: str
    status: RunStatus
    device: str  # "cpu", "cuda" or "mps": where the run trains (device_kind here, the cluster's choice on Ray)
    queued_at: float
    started: float
    eta_seconds: float | None
    samples_per_second: float | None
    config: TrainConfig
    node_id: str | None = None  # the Ray node it trains on (core.cluster); None for a local run


@dataclass(frozen=True)
class Place:
    """A queued run's place: runs queued before it, runs training on its device, seconds until it starts (None: unknown)."""

    waiting: int
    training: int
    seconds: float | None

    @property
    def ahead(self) -> int:
        return self.waiting + self.training


def device_kind(cfg: TrainConfig) -> str:
    if cfg.device == "auto":
        return resolve_device("auto").type
    return cfg.device


def turn_order(queued: Iterable[Entry], last_start: dict[str, float]) -> list[Entry]:
    """Queued runs in the order they will start: workspaces take turns (the one served longest ago first),
    each workspace's own runs first come, first served."""
    by_workspace: dict[str, list[Entry]] = {}
    for entry in sorted(queued, key=lambda e: e.queued_at):
        by_workspace.setdefault(entry.workspace, []).append(entry)
    workspaces = sorted(by_workspace, key=lambda ws: (last_start.get(ws, float("-inf")), by_workspace[ws][0].queued_at))
    rounds = max((len(runs) for runs in by_workspace.values()), default=0)
    return [by_workspace[ws][i] for i in range(rounds) for ws in workspaces if i < len(by_workspace[ws])]


class Scheduler:
    """Queue, quotas and worker processes of one server; `scheduler()` is the process's one instance."""

    def __init__(self, settings: HostSettings | None = None, interval: float = 1.0) -> None:
        self.settings = settings or HostSettings.load()
        self.interval = interval
        self._workers: list[tuple[Path, Worker]] = []
        self._stopping: set[Path] = set()
        self._rates: dict[str, float] = {}  # model -> samples/s of its latest run here, for time estimates
        self._served: dict[str, float] = {}  # workspace -> when its latest run started, for the turns
        self._ended: dict[Path, tuple[int, int]] = {}  # run folder -> status.json version when it was last seen not active
        self._entries: list[Entry] = []
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.cluster = Cluster(self.settings.ray_address, self.settings) if self.settings.ray_address else None

    # --- what pages call ----------------------------------------------------
    def submit(self, cfg: TrainConfig, workspace: str, dataset_name: str) -> RunStore:
        """Queue a new run for `workspace`; QuotaExceeded or ValueError (naming the value) when it cannot."""
        cfg.validate()
        self._check_device(cfg)
        with self._lock:  # two tabs submitting at once both count against the quota
            self._check_quotas(workspace, cfg, new_run=True)
            store = RunStore.create(cfg, dataset_name, root=workspace_root(workspace), workspace=workspace, pid=None,
                                    pid_start=None, queued_at=time.time(), message="Waiting for a free slot")
        self._refresh_soon()
        return store

    def check_room(self, workspace: str) -> None:
        """QuotaExceeded when `workspace` keeps as many runs as the host allows (before a new run or an import)."""
        kept = len(list_runs(workspace_root(workspace)))
        if workspace != LOCAL and kept >= self.settings.max_runs_kept:
            raise QuotaExceeded(f"Your workspace holds {kept} runs, the most this server keeps for each student: "
                                f"delete some on the Runs page to start or import new ones.")

    def check_model_size(self, workspace: str, cfg: TrainConfig, shape: tuple[int, int, int], num_classes: int) -> None:
        """QuotaExceeded when the model `cfg` builds for this data has more parameters than the host allows."""
        if workspace == LOCAL:
            return
        with torch.device("meta"):  # counted without allocating
            params = count_parameters(build_model(cfg.model, shape, num_classes, hidden=cfg.hidden))
        if params > self.settings.max_parameters:
            raise QuotaExceeded(f"This {cfg.model} has {params:,} parameters; this server trains models of up to "
                                f"{self.settings.max_parameters:,}: choose smaller hidden layers or another model.")

    def resume(self, store: RunStore, workspace: str) -> None:
        """Queue an interrupted, stopped, failed or cancelled run (RESUMABLE) to continue from its last finished epoch."""
        if not store.has_training_state():
            raise ValueError(f"Run {store.id} has no finished epoch to continue from.")
        self._check_device(store.config())
        limit = self.settings.max_train_seconds
        if workspace != LOCAL and limit and (store.status().get("train_seconds") or 0) >= limit:
            raise QuotaExceeded(f"Run {store.id} has used this server's {limit:g} s of training per run, "
                                f"so it cannot continue here.")
        with self._lock:
            self._check_quotas(workspace, store.config(), new_run=False)
            resumed = store.transition(RESUMABLE, status=RunStatus.QUEUED, pid=None, pid_start=None, queued_at=time.time(),
                                       workspace=workspace, message="Waiting for a free slot to resume")
        if not resumed:
            raise ValueError(f"Run {store.id} is {store.status()['status']}; only an interrupted, stopped, failed or "
                             f"cancelled run can be resumed.")
        self._refresh_soon()

    def stop(self, store: RunStore) -> bool:
        """Cancel a queued run, or ask a training one to stop (it ends within a batch and keeps its checkpoint);
        False when it was neither."""
        if cancel_if_queued(store):
            self._refresh_soon()
            return True
        with self._lock:  # a launch holds this lock from claiming a run until its worker is in _workers
            if store.status()["status"] not in ACTIVE:
                return False
            mine = next((worker for path, worker in self._workers if path == store.path), None)
            if mine is None:  # the command line's, another server's: never a signal to a server
                return request_stop(store)
            self._stopping.add(store.path)  # if it dies before it says so, it ends as stopped, not interrupted
            mine.stop()
            return True

    def entries(self) -> list[Entry]:
        """Every queued or training run of every workspace, as of the scheduler's last look (at most a second old)."""
        self.ensure_running()
        with self._lock:
            return list(self._entries)

    def queue(self) -> list[Entry]:
        """The queued runs in the order they will start."""
        entries = self.entries()
        return turn_order([e for e in entries if e.status == RunStatus.QUEUED], self._last_start(entries))

    def place(self, store: RunStore) -> Place:
        """Where a queued run stands on its device: the runs before it and about how long until it starts."""
        entries = self.entries()
        mine = next((e for e in entries if e.store.path == store.path), None)
        if mine is None:
            return Place(0, 0, None)
        order = [e for e in self.queue() if e.device == mine.device]
        waiting = order[: next((i for i, e in enumerate(order) if e.store.path == store.path), len(order))]
        training = [e for e in entries if e.status in TRAINING and e.device == mine.device]
        times = [e.eta_seconds for e in training] + [self._estimate(e, entries) for e in waiting]
        slots = self._slots(mine.device)  # 0: a cluster that does not answer, or has no node for this device
        seconds = None if not slots or any(t is None for t in times) else sum(times) / slots
        return Place(len(waiting), len(training), seconds)

    # --- the thread ---------------------------------------------------------
    def ensure_running(self) -> None:
        with self._lock:
            if not self._closed and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
                self._thread.start()
                self._tick()

    def _refresh_soon(self) -> None:
        """Look at the store now (so the caller sees its change in entries()), and wake the thread."""
        self.ensure_running()
        self._tick()
        self._wake.set()

    def close(self) -> None:
        """End the thread and the workers it started (their runs read as interrupted); for tests and shutdown."""
        with self._lock:
            self._closed = True
            workers = [worker for _, worker in self._workers]
        self._wake.set()
        for worker in workers:
            worker.kill()
        if self.cluster is not None:
            self.cluster.close()
        if self._thread is not None:
            self._thread.join(5)

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(self.interval)
            if self._closed:
                return
            self._wake.clear()
            try:
                self._tick()
            except Exception as exc:  # the thread must live on; the next tick tries again
                print(f"scheduler: {type(exc).__name__}: {exc}", file=sys.stderr)

    def _tick(self) -> None:
        with self._lock:
            self._reap()
            if self.cluster is not None:
                self.cluster.refresh()
            entries = self._scan()
            last_start = self._last_start(entries)
            order = turn_order([e for e in entries if e.status == RunStatus.QUEUED], last_start)
            for device in ("cpu", "cuda", "mps"):
                busy = sum(e.status in TRAINING and e.device == device for e in entries)
                waiting = [e for e in order if e.device == device]
                for entry in waiting[: max(0, self._slots(device) - busy)]:
                    if self._launch(entry):
                        self._served[entry.workspace] = time.time()
                        entries = [e if e is not entry else (self._entry(e.store, e.workspace) or e) for e in entries]
            self._entries = entries

    def _scan(self) -> list[Entry]:
        """The active runs of every workspace. A run seen ended is read again only when its status.json changes."""
        found = []
        for workspace in all_workspaces():
            root = workspace_root(workspace)
            try:
                folders = [p for p in root.iterdir() if RUN_ID.fullmatch(p.name)]
            except OSError:
                continue
            for folder in folders:
                try:
                    stat = (folder / "status.json").stat()  # every write is a new file: a new inode
                except OSError:
                    continue
                version = (stat.st_ino, stat.st_mtime_ns)
                if self._ended.get(folder) == version:
                    continue
                entry = self._entry(RunStore(folder), workspace)
                if entry is None:
                    self._ended[folder] = version
                else:
                    self._ended.pop(folder, None)
                    found.append(entry)
        return found

    def _entry(self, store: RunStore, workspace: str) -> Entry | None:
        status = store.status()
        if status["status"] not in ACTIVE:
            return None
        if status["status"] == RunStatus.QUEUED and status.get("pid") is not None:
            return None  # made by a process that trains it itself (the command line) and has not started yet
        try:
            cfg = store.config()
        except ValueError as exc:
            if status["status"] == RunStatus.QUEUED:
                store.transition({RunStatus.QUEUED}, status=RunStatus.FAILED, message=str(exc), pid=None)
            return None
        device = device_kind(cfg) if self.cluster is None else self.cluster.device_for(cfg)
        return Entry(store, workspace, status["status"], device, status.get("queued_at") or 0.0,
                     status.get("started") or status.get("created") or 0.0, status.get("eta_seconds"),
                     status.get("samples_per_second"), cfg, status.get("node_id"))

    def _launch(self, entry: Entry) -> bool:
        """Start a worker for a queued run; False when another process took it first."""
        store = entry.store
        backend = "local" if self.cluster is None else "ray"  # from the claim on: a stop knows how to reach it
        if not store.transition({RunStatus.QUEUED}, status=RunStatus.LOADING, **owner(), backend=backend,
                                stop_requested=False, message=LAUNCHING, started=time.time()):
            return False
        limit = self.settings.max_train_seconds if entry.workspace != LOCAL else 0
        try:
            if self.cluster is not None:
                worker: Worker = self.cluster.start(store, limit, entry.device)
            else:
                worker = LocalWorker.start(store, limit, self.settings.threads_per_worker() if entry.device == "cpu" else 0)
        except Exception as exc:  # OSError, a Ray error (the object store full, the connection lost), a dataset gone
            store.update_status(status=RunStatus.FAILED, message=f"Could not start a worker: {exc}", pid=None)
            return False
        self._workers.append((store.path, worker))
        return True

    def _reap(self) -> None:
        """Collect ended workers (so their pids read as gone), and give a status to those that died without one."""
        for path, worker in list(self._workers):
            code = worker.poll()
            if code is None:
                continue
            self._workers.remove((path, worker))
            store = RunStore(path)
            status = store.status()
            if path in self._stopping:
                self._stopping.discard(path)
                message = ("Stopped by request before training began." if not store.has_training_state() else
                           f"Stopped by request; its worker then ended (exit code {code}). Resume continues from "
                           f"its last finished epoch.")
                store.transition({RunStatus.INTERRUPTED}, status=RunStatus.STOPPED, pid=None, message=message,
                                 finished=time.time())
            else:  # only if still so: a Resume may have queued it again meanwhile
                store.transition({RunStatus.INTERRUPTED}, status=RunStatus.INTERRUPTED, pid=None, message=worker.lost(code))
            if status.get("samples_per_second"):
                try:
                    self._rates[store.config().model] = status["samples_per_second"]
                except ValueError:
                    pass

    # --- rules --------------------------------------------------------------
    def _check_device(self, cfg: TrainConfig) -> None:
        """ValueError when this run's device is not here (a link may ask for CUDA on a server without a GPU), or
        when the cluster answers but none of its nodes can take it."""
        if self.cluster is None:
            resolve_device(cfg.device)
            return
        missing = self.cluster.no_node_for(cfg)
        if missing:
            raise ValueError(f"{missing}: choose another device on the Model page, or ask the host.")

    def _check_quotas(self, workspace: str, cfg: TrainConfig, new_run: bool) -> None:
        if workspace == LOCAL:
            return
        s = self.settings
        if cfg.epochs > s.max_epochs:
            raise QuotaExceeded(f"This server allows at most {s.max_epochs} epochs per run, and this run asks for "
                                f"{cfg.epochs}: lower Epochs on the Model page.")
        mine = [e for e in self._scan() if e.workspace == workspace]
        if len(mine) >= s.max_active_runs:
            raise QuotaExceeded(f"You already have {len(mine)} run{'s' * (len(mine) > 1)} queued or training, the most this server allows "
                                f"at once: wait for one to finish, or cancel one.")
        if new_run:
            self.check_room(workspace)

    def _slots(self, device: str) -> int:
        """Runs that may train at once on `device`: the cluster's room for them (0 while it does not answer), or
        the host's setting (every CUDA run here trains on the default GPU: one pool of slots for it)."""
        if self.cluster is not None:
            return self.cluster.capacity(device)
        return max(1, self.settings.runs_per_gpu if device in ("cuda", "mps") else self.settings.runs_per_cpu)

    def _last_start(self, entries: list[Entry]) -> dict[str, float]:
        last = dict(self._served)
        for e in entries:
            if e.status in TRAINING:
                last[e.workspace] = max(last.get(e.workspace, 0.0), e.started)
        return last

    def _estimate(self, entry: Entry, entries: list[Entry]) -> float | None:
        """Seconds a queued run will train: its epochs times its images over the latest speed of its model here."""
        rate = next((e.samples_per_second for e in entries if e.config.model == entry.config.model
                     and e.samples_per_second), None) or self._rates.get(entry.config.model)
        source = DATASETS.get(entry.config.dataset)
        if rate is None or source is None:
            return None
        size = source.train_size
        images = min(entry.config.limit_train or size, round(size * (1 - entry.config.val_split)))
        return entry.config.epochs * images / rate


_SCHEDULER: Scheduler | None = None
_CREATE = threading.Lock()


def shutdown() -> None:
    """Close the process's scheduler, if it was started; the next scheduler() makes a new one."""
    global _SCHEDULER
    with _CREATE:
        if _SCHEDULER is not None:
            _SCHEDULER.close()
            _SCHEDULER = None


def scheduler() -> Scheduler:
    """The process's scheduler, started on first use; every browser session of one server shares it."""
    global _SCHEDULER
    with _CREATE:
        if _SCHEDULER is None:
            _SCHEDULER = Scheduler()
        _SCHEDULER.ensure_running()
        return _SCHEDULER
