"""Runs on a Ray cluster: when PLAYGROUND_RAY_ADDRESS names one, each run trains in a Ray actor on one of its nodes.

Ray is another way to start a worker, not a second path through the app: the
scheduler keeps its fair queue and quotas, and hands each run it starts to
`Cluster.start` instead of a local process. The actor (`RunActor`) holds a
copy of the run folder on its node, trains it with the same `run_worker` as a
local worker, and the app's `RayWorker` pulls every changed file back into the
app's run store a few times a second, so the cluster needs no shared file
system and the pages read a Ray run exactly as a local one. The app's process
owns the run's status while the actor lives (its pid is the app's: a server
that dies leaves the run interrupted, and Ray ends the actors it owned); an
actor that dies, or a node that is lost, leaves the run interrupted too, and
Resume ships the folder, its training state included, to a new actor.

Built-in datasets load on the node from its own PLAYGROUND_DATA_DIR or
PLAYGROUND_ARCHIVE_DIR; a user's dataset travels through Ray's object store as
the `.dataset.safetensors` file the app saved of it.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import core
from core.config import TrainConfig
from core.data import DATASETS, SAVED_SUFFIX, ImageDataset, save_dataset
from core.events import Stop
from core.files import atomic_write, parse_json, safe_name
from core.settings import HostSettings
from core.store import ACTIVE, DamagedRun, RunStatus, RunStore, process_alive
from core.worker import run_worker

try:
    import ray
    from ray.exceptions import RayError
except ImportError:  # a laptop: requirements.txt has no Ray, and nothing here is used without an address
    ray = None

ADDRESS_VAR = "PLAYGROUND_RAY_ADDRESS"
NAMESPACE = "convnet-playground"
PULL_INTERVAL = 0.25  # seconds between two pulls of a run's changed files: a Stop shows within a second
CALL_TIMEOUT = 60.0  # seconds one pull may take before the run is given up as lost
RETRY_SECONDS = 10.0  # between two attempts to reach a cluster that did not answer
# status fields the app's side owns: who trains it and where, and what a learner or the queue set meanwhile
APP_FIELDS = frozenset({"pid", "pid_start", "backend", "node", "node_id", "stop_requested", "name", "tags", "workspace",
                        "queued_at"})

Signature = tuple[int, int, int]  # (inode, size, mtime in ns): a file changed when this did


def run_files(folder: Path) -> dict[str, Path]:
    """The files of a run folder that travel: all but temporary names, locks and the local worker's log."""
    return {p.name: p for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.name != "worker.log"}


def signature(stat: os.stat_result) -> Signature:
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def dataset_file(name_or_path: str, dataset: ImageDataset | None = None) -> bytes | None:
    """What a node needs to load a run's data: nothing for a built-in dataset (the node has its own copy), else
    the bytes of a saved dataset (the app's upload as it saved it, or `dataset` saved now)."""
    if name_or_path in DATASETS:
        return None
    if dataset is None and name_or_path.endswith(SAVED_SUFFIX):
        return Path(name_or_path).read_bytes()
    if dataset is None:
        raise ValueError(f"{name_or_path} is a file or folder on this machine: import it first (the Data page or "
                         f"the command line do) so that it can travel to the cluster.")
    with tempfile.TemporaryDirectory() as folder:
        return save_dataset(dataset, Path(folder)).read_bytes()


class ClusterUnavailable(RuntimeError):
    """The cluster does not answer, or has no node for the run; the message names the address and the variable."""


def _actor_folders_start() -> str:
    """How this machine's actor folders are named, before the actor's process id (no host name holds an @): a
    later actor can tell which ended."""
    return f"playground-run-{socket.gethostname()}@"


def remove_dead_actors_folders(parent: Path) -> None:
    """Remove the folders of this machine's actors whose process has ended: one ended before the app closed it
    (its owner, the server, ended; a pull failed; it was killed) left its copy of the run and its dataset."""
    start = _actor_folders_start()
    for folder in parent.glob(f"{start}*"):
        pid = folder.name[len(start):].split("-")[0]
        if pid.isdigit() and not process_alive(int(pid)):  # another user's live process counts as alive
            shutil.rmtree(folder, ignore_errors=True)


class RunActor:
    """One run on a node: a copy of its folder, the training thread, and the changed files for the app to pull."""

    def __init__(self, files: dict[str, bytes], dataset: bytes | None, max_seconds: float, threads: int) -> None:
        remove_dead_actors_folders(Path(tempfile.gettempdir()))
        self.folder = Path(tempfile.mkdtemp(prefix=f"{_actor_folders_start()}{os.getpid()}-"))
        run = self.folder / "run"
        run.mkdir()
        for name, data in files.items():
            (run / name).write_bytes(data)
        self.started_with = {name: signature(path.stat()) for name, path in run_files(run).items()}
        self.store = RunStore(run)
        saved = None
        if dataset is not None:  # under its own name, which a message about it then names
            saved = self.folder / "data" / safe_name(Path(self.store.config().dataset).name, limit=120)
            saved.parent.mkdir()
            saved.write_bytes(dataset)
        if threads:
            torch.set_num_threads(threads)
        self.stopping = Stop()
        self.code: int | None = None
        self.thread = threading.Thread(target=self._train, args=(max_seconds, saved), name="training", daemon=True)
        self.thread.start()

    def _train(self, max_seconds: float, saved: Path | None) -> None:
        self.code = run_worker(self.store, self.stopping, max_seconds, saved)

    def where(self) -> dict[str, Any]:
        """The node this actor runs on, and the files it started with (what the app need not pull back)."""
        context = ray.get_runtime_context()
        return {"node": f"{socket.gethostname()} ({ray.util.get_node_ip_address()})", "node_id": context.get_node_id(),
                "files": self.started_with}

    def stop(self) -> None:
        self.stopping.request("Stopped by request")

    def changes(self, known: dict[str, Signature]) -> tuple[dict[str, tuple[Signature, bytes]], int | None]:
        """The files that differ from `known`, and the exit code once training has ended (None before)."""
        code = self.code  # read first: the files below are then at least as new as the end
        changed = {}
        for name, path in run_files(self.store.path).items():
            try:
                with open(path, "rb") as f:
                    stat = signature(os.fstat(f.fileno()))
                    if known.get(name) != stat:
                        changed[name] = (stat, f.read())
            except FileNotFoundError:  # replaced between the listing and the open: the next pull has it
                continue
        return changed, code

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class RayWorker:
    """The app's side of one run on the cluster: waits for Ray to place the actor, then pulls its files into the
    run store until training ends. Holds the same four methods as core.worker.LocalWorker."""

    def __init__(self, store: RunStore, actor: Any) -> None:
        self.store, self.actor = store, actor
        self.node = "the cluster"
        self.placed = False
        self.error = ""
        self.code: int | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._follow, name=f"ray-{store.id}", daemon=True)
        self.thread.start()

    def poll(self) -> int | None:
        if self.thread.is_alive():
            return None
        return 1 if self.code is None else self.code

    def stop(self) -> None:
        self.stopping.set()
        try:
            self.actor.stop.remote()
        except RayError:
            pass

    def kill(self) -> None:
        _end(self.actor)
        self.thread.join(CALL_TIMEOUT)

    def wait(self, timeout: float | None = None) -> int | None:
        self.thread.join(timeout)
        return self.poll()

    def lost(self, code: int) -> str:
        return (f"The run's Ray actor on {self.node} was lost ({self.error or f'exit code {code}'}). "
                f"Resume continues from the last finished epoch.")

    def _follow(self) -> None:
        try:
            where = self._placed()
            if where is None:  # stopped while it waited for room on the cluster
                self._release(1)
                return
            self.node, self.placed = where["node"], True
            self.store.update_status(node=where["node"], node_id=where["node_id"], message=f"Loading on {self.node}")
            known: dict[str, Signature] = {name: tuple(sig) for name, sig in where["files"].items()}
            while True:
                if self._asked_to_stop() and not self.stopping.is_set():
                    self.stop()
                changed, code = ray.get(self.actor.changes.remote(known), timeout=CALL_TIMEOUT)
                self._write(changed, known)
                if code is not None:
                    self.code = code
                    break
                time.sleep(PULL_INTERVAL)
            ray.get(self.actor.close.remote(), timeout=CALL_TIMEOUT)
            _end(self.actor)
        except Exception as exc:  # a Ray error (the actor or its node lost, a pull that timed out), or a bug here
            if not isinstance(exc, RayError):
                traceback.print_exc()
            self.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}".rstrip(": ")
            _end(self.actor)
            self._release(1)
        else:  # the node's last status was pulled; a run it left active (it should not) is not left so here
            if self.store.transition(ACTIVE, status=RunStatus.INTERRUPTED, pid=None, pid_start=None,
                                     message=self.lost(self.code or 0)):
                self.code = self.code or 1

    def _asked_to_stop(self) -> bool:
        """True when another process asked (python -m core.runs stop, the page of another server on this store)."""
        try:
            return bool(self.store.raw_status().get("stop_requested"))
        except DamagedRun:
            return False

    def _placed(self) -> dict[str, Any] | None:
        """The actor's node and files once Ray has started it; None when a stop came first (the actor is ended)."""
        call = self.actor.where.remote()
        while not ray.wait([call], timeout=PULL_INTERVAL)[0]:
            if self.stopping.is_set() or self._asked_to_stop():
                self.stopping.set()
                _end(self.actor)
                return None
        return ray.get(call)

    def _write(self, changed: dict[str, tuple[Signature, bytes]], known: dict[str, Signature]) -> None:
        """Pulled files into the app's run folder, status.json last (so that what it reports is already there)."""
        for name, (sig, data) in sorted(changed.items(), key=lambda item: item[0] == "status.json"):
            known[name] = tuple(sig)
            if name == "status.json":
                self._merge_status(data)
            elif name != "config.json":  # the app's copy is the one it started
                atomic_write(self.store.path / name, lambda p, data=data: p.write_bytes(data))

    def _merge_status(self, data: bytes) -> None:
        """The node's status, but for the fields the app owns; a finished run gives up the app's pid with it."""
        try:
            node = parse_json(data, "the node's status.json")
        except ValueError:
            return
        if not isinstance(node, dict):
            return
        fields = {k: v for k, v in node.items() if k not in APP_FIELDS}
        if "pid" in node and node["pid"] is None:
            fields.update(pid=None, pid_start=None)
        self.store.update_status(**fields)

    def _release(self, code: int) -> None:
        """The run's actor is gone before the run ended: stopped when a stop came before Ray placed it, else
        interrupted, resumable from its last finished epoch."""
        self.code = code
        if self.stopping.is_set() and not self.placed:
            self.store.transition(ACTIVE, status=RunStatus.STOPPED, pid=None, pid_start=None, finished=time.time(),
                                  message="Stopped by request before training began.")
        elif not self.store.has_training_state():  # nothing to resume from
            self.store.transition(ACTIVE, status=RunStatus.FAILED, pid=None, pid_start=None,
                                  message=f"The run's Ray actor on {self.node} was lost before its first epoch "
                                          f"({self.error or f'exit code {code}'}): start it again.")
        else:
            self.store.transition(ACTIVE, status=RunStatus.INTERRUPTED, pid=None, pid_start=None, message=self.lost(code))


def _end(actor: Any) -> None:
    """End an actor (its resources go back to the cluster); one that is already gone is fine."""
    try:
        ray.kill(actor)
    except (RayError, ValueError):
        pass


@dataclass(frozen=True)
class Node:
    """One alive node as the Train and Teacher pages show it."""

    node: str
    node_id: str
    cpus: float
    gpus: float


def node_rows(nodes: list[Node], training_on: list[str | None]) -> list[dict[str, Any]]:
    """The cluster as the Train and Teacher pages show it: a row per node with the runs training there
    (`training_on`: the node id of each run training now)."""
    return [{"node": n.node, "CPUs": n.cpus, "GPUs": n.gpus, "runs training": training_on.count(n.node_id)}
            for n in nodes]


class Cluster:
    """The app's view of the Ray cluster named by PLAYGROUND_RAY_ADDRESS: whether it answers, its nodes, room for runs."""

    def __init__(self, address: str, settings: HostSettings, wait: bool = False) -> None:
        """Connect beside the caller (a server must serve while an address does not answer), or, with `wait`
        (the command line), before returning."""
        self.address, self.settings = address, settings
        self.problem: str | None = f"Connecting to the Ray cluster at {address}…"
        self._nodes: list[Node] = []
        self._closed = False
        self._last_try = time.monotonic()
        self._retry = threading.Thread(target=self._connect, name="ray-connect", daemon=True)
        self._retry.start()
        if wait:
            self.connected()

    def connected(self, timeout: float | None = None) -> bool:
        """Wait for the attempt under way (at most `timeout` seconds); True when the cluster answers."""
        self._retry.join(timeout)
        return self.problem is None

    def refresh(self) -> None:
        """Read the nodes; while not connected, start another attempt in the background every RETRY_SECONDS (an
        address that does not answer must never hold up the queue or a page)."""
        if ray is None or not ray.is_initialized():
            waited = time.monotonic() - self._last_try >= RETRY_SECONDS
            if ray is not None and waited and not self._closed and not self._retry.is_alive():
                self._last_try = time.monotonic()
                self._retry = threading.Thread(target=self._connect, name="ray-connect", daemon=True)
                self._retry.start()
            return
        try:
            nodes = self._read_nodes()
        except Exception as exc:  # gRPC and connection errors besides Ray's own
            self.problem = f"The Ray cluster at {self.address} ({ADDRESS_VAR}) does not answer ({exc}). Runs wait in the queue."
            return
        self._nodes = nodes
        self.problem = None if nodes else (f"The Ray cluster at {self.address} ({ADDRESS_VAR}) has no alive node to "
                                           f"train on. Runs wait in the queue.")

    def close(self) -> None:
        """Leave the cluster (the actors this process started end with it)."""
        self._closed = True
        self._retry.join(30)
        if ray is not None and ray.is_initialized():
            ray.shutdown()

    def _connect(self) -> None:
        """Connect to the cluster and read its nodes, or set the one message the pages show."""
        if ray is None:
            self.problem = (f"{ADDRESS_VAR} names a Ray cluster ({self.address}), but Ray is not installed on this "
                            f"server: pip install -r requirements-cluster.txt. Runs wait in the queue.")
            return
        if self._closed:
            return
        problem = self._join()
        if problem:
            self.problem = problem
        elif self._closed:  # closed while it connected
            ray.shutdown()
        else:
            self.refresh()  # the nodes first: no page sees "connected" with no node in it

    def _join(self) -> str | None:
        """None once connected, else why not."""
        host, _, port = self.address.rpartition(":")
        unreachable = (f"Cannot reach the Ray cluster at {self.address!r}, which {ADDRESS_VAR} names: runs wait in the "
                       f"queue until it answers. Start it with `ray start --head` and give the address it prints "
                       f"(host:port), or unset {ADDRESS_VAR} to train on this machine.")
        if not host or not port.isdigit():
            return unreachable
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
        except OSError:
            return unreachable
        main = threading.current_thread() is threading.main_thread()
        on_sigterm = signal.getsignal(signal.SIGTERM) if main else None
        try:
            ray.init(address=self.address, namespace=NAMESPACE, log_to_driver=False, configure_logging=False,
                     runtime_env={"py_modules": [core]})
        except Exception as exc:  # ConnectionError, RuntimeError, gRPC's: the page says which
            return f"{unreachable} ({exc})"
        finally:
            if main:  # ray.init takes SIGTERM over (to exit): keep the Stop of the command line, the server's shutdown
                signal.signal(signal.SIGTERM, on_sigterm)
        return None

    @staticmethod
    def _read_nodes() -> list[Node]:
        nodes = []
        for n in ray.nodes():
            resources = n.get("Resources", {})
            if not n.get("Alive") or not (resources.get("CPU") or resources.get("GPU")):
                continue
            nodes.append(Node(node=f"{n.get('NodeManagerHostname', '?')} ({n.get('NodeManagerAddress', '?')})",
                              node_id=n["NodeID"], cpus=resources.get("CPU", 0.0), gpus=resources.get("GPU", 0.0)))
        return nodes

    def nodes(self) -> list[Node]:
        return list(self._nodes)

    def no_node_for(self, cfg: TrainConfig) -> str | None:
        """While the cluster answers: why none of its alive nodes can take this run's device, or None."""
        device = self.device_for(cfg)
        if self.problem or self.capacity(device):
            return None
        return f"No alive node of the Ray cluster at {self.address} can take a {device} run (each asks for {self.request(device)})"

    def why_waiting(self, cfg: TrainConfig) -> str | None:
        """Why a queued run cannot start now, when the cause is the cluster: it does not answer, or no alive node
        can take a run on its device; None otherwise."""
        if self.problem:
            return self.problem
        missing = self.no_node_for(cfg)
        return f"{missing}; it starts when one joins." if missing else None

    def device_for(self, cfg: TrainConfig) -> str:
        """The device a run trains on here: "auto" is a GPU when the cluster's nodes have any."""
        if cfg.device == "auto":
            return "cuda" if any(n.gpus for n in self._nodes) else "cpu"
        return cfg.device

    def request(self, device: str) -> dict[str, float]:
        """What one run asks Ray for: a GPU or the host's fraction of one for a CUDA run, CPUs otherwise."""
        if device == "cuda":
            return {"num_gpus": self.settings.ray_gpus_per_run, "num_cpus": 1}
        return {"num_gpus": 0, "num_cpus": self.settings.ray_cpus_per_run}

    def capacity(self, device: str) -> int:
        """How many runs on `device` the alive nodes hold at once (0 while the cluster does not answer)."""
        if self.problem or device not in ("cpu", "cuda"):
            return 0
        ask = self.request(device)
        return sum(min(math.floor(n.gpus / ask["num_gpus"] + 1e-9) if ask["num_gpus"] else math.inf,
                       math.floor(n.cpus / ask["num_cpus"] + 1e-9)) for n in self._nodes)

    def start(self, store: RunStore, max_seconds: float, device: str, dataset: ImageDataset | None = None) -> RayWorker:
        """Start the run in `store` as a Ray actor; ValueError when the cluster does not answer or its data cannot travel."""
        if self.problem:
            raise ValueError(self.problem)
        cfg = store.config()
        ask = self.request(device)
        data = dataset_file(cfg.dataset, dataset)
        files = {name: path.read_bytes() for name, path in run_files(store.path).items()}
        actor = ray.remote(RunActor).options(**ask).remote(
            files, ray.put(data) if data is not None else None, max_seconds, int(ask["num_cpus"]))
        store.update_status(backend="ray", node=None, node_id=None, message=f"Waiting for room on the Ray cluster at {self.address}")
        return RayWorker(store, actor)


def train_on_cluster(store: RunStore, settings: HostSettings, stop: threading.Event,
                     on_epoch: Callable[[dict[str, Any]], None], dataset: ImageDataset | None = None) -> None:
    """Train the run in `store`, which this process owns (the command line), on the cluster to its end;
    `on_epoch` sees each finished epoch's metrics. ClusterUnavailable when the run cannot start there."""
    cluster = Cluster(settings.ray_address, settings, wait=True)
    try:
        if cluster.problem:
            raise ClusterUnavailable(cluster.problem)
        device = cluster.device_for(store.config())
        if not cluster.capacity(device):
            raise ClusterUnavailable(f"No node of the Ray cluster at {settings.ray_address} ({ADDRESS_VAR}) can train "
                                     f"a {device} run: it has {len(cluster.nodes())} alive nodes.")
        store.update_status(status=RunStatus.LOADING, started=time.time())
        worker = cluster.start(store, 0, device, dataset)
        shown = 0
        while True:
            ended = worker.wait(PULL_INTERVAL) is not None
            if stop.is_set():
                worker.stop()
            epochs = store.epochs()
            for epoch in epochs[shown:]:
                on_epoch(epoch)
            shown = len(epochs)
            if ended:
                break
    finally:
        cluster.close()
