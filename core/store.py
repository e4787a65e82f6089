"""The run store: every run, from the app or the command line, is a folder that outlives its process.

<root>/<run id>/ holds
  config.json          the full TrainConfig
  status.json          status, name, tags, timings, live progress, the training process's pid,
                       where it trains (backend "local" or "ray", node)
  epochs.json          per-epoch metrics so far
  steps.json           per-step loss and learning rate so far
  best.safetensors/.json   the weights with the best validation accuracy or loss (config's best_by; predict-ready)
  last.safetensors/.json   the weights after the last finished epoch (predict-ready)
  resume.safetensors   everything Resume needs, in one file: weights, optimizer, schedule,
                       random state, the best weights and the curves so far
  evaluation.json      the test-set report; evaluation.safetensors its probabilities
  filters.safetensors  the first convolution's weights after each epoch (the Inside page's filters)
  embedding.safetensors    a 2-D projection of the penultimate features of some test images, per epoch
  events.out.tfevents.*    TensorBoard scalars
  worker.log           the output of the worker process that trained it (the app's runs)

The root is PLAYGROUND_RUNS_DIR (default `runs/`) for the local workspace, and
a folder under it for each private workspace (core.workspaces). Every file is
written under a temporary name and renamed; status.json is changed under a file
lock. Only `save_training_state` matters to Resume, and it is written at the
end of each epoch before anything else reports that epoch, so a killed process
loses at most the epoch it was in. A run left active by a process that no
longer exists reads as "interrupted". A run whose files are not what this
project writes reads as "damaged", with the reason, and never hides the others.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from core.config import TrainConfig
from core.files import atomic_write, locked, read_json, safe_name, write_json

RUNS_DIR_VAR = "PLAYGROUND_RUNS_DIR"
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,119}")
MAX_JSON_BYTES = 64 << 20  # a status or metrics file of this project is far smaller


class RunStatus(StrEnum):
    """Every status a run can have; the four first mean a process is (or will be) working on it."""

    QUEUED = "queued"
    LOADING = "loading"
    RUNNING = "running"
    EVALUATING = "evaluating"
    FINISHED = "finished"
    STOPPED = "stopped"
    DIVERGED = "diverged"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    IMPORTED = "imported"
    DAMAGED = "damaged"


ACTIVE = frozenset({RunStatus.QUEUED, RunStatus.LOADING, RunStatus.RUNNING, RunStatus.EVALUATING})
RESUMABLE = frozenset({RunStatus.INTERRUPTED, RunStatus.STOPPED, RunStatus.FAILED, RunStatus.CANCELLED})


class DamagedRun(ValueError):
    """A run folder whose files this project cannot read; the message says which file and why."""


def runs_dir() -> Path:
    return Path(os.environ.get(RUNS_DIR_VAR, "runs"))


def process_start(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, Linux); None where /proc cannot tell."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def owner(pid: int | None = None) -> dict[str, int | None]:
    """The status fields naming the process that works on a run (this one by default): its pid and start time,
    so that a later process given the same pid is not taken for it."""
    pid = pid or os.getpid()
    return {"pid": pid, "pid_start": process_start(pid)}


def process_alive(pid: int | None, started: int | None = None) -> bool:
    if not pid:
        return False
    if pid == os.getpid():
        return started is None or started == process_start(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return isinstance(pid, int) and pid > 0
    return started is None or process_start(pid) in (None, started)


def read_json_file(path: Path, expect: type, default: Any = None) -> Any:
    """The JSON in `path` when it is an `expect` (dict or list); `default` when missing; DamagedRun otherwise."""
    try:
        data = read_json(path, MAX_JSON_BYTES)
    except FileNotFoundError:
        return default
    except ValueError as exc:
        raise DamagedRun(str(exc)) from None
    if not isinstance(data, expect):
        raise DamagedRun(f"{path.name} holds {type(data).__name__} {str(data)[:40]!r}, not a JSON "
                         f"{'object' if expect is dict else 'list'}.")
    return data


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**53


STATUS_FIELDS = {  # what each known field of status.json must be (None is always allowed, but for status)
    "message": lambda v: isinstance(v, str), "name": lambda v: isinstance(v, str),
    "dataset": lambda v: isinstance(v, str), "workspace": lambda v: isinstance(v, str),
    "backend": lambda v: v in ("local", "ray"), "stop_requested": lambda v: isinstance(v, bool),
    "node": lambda v: isinstance(v, str), "node_id": lambda v: isinstance(v, str),
    "tags": lambda v: isinstance(v, list) and all(isinstance(t, str) for t in v),
    "pid": lambda v: _count(v) and 0 < v < 2**31, "pid_start": _count,
    **{k: _number for k in ("created", "updated", "queued_at", "started", "finished", "train_seconds",
                            "samples_per_second", "eta_seconds", "test_accuracy", "best_val_accuracy")},
    **{k: _count for k in ("epoch", "step", "total_steps", "best_epoch", "params")},
}


def _is_epoch(e: Any) -> bool:
    """An epochs.json entry with every field the pages read."""
    return (isinstance(e, dict) and _count(e.get("epoch")) and all(_number(e.get(k)) for k in ("train_loss", "train_accuracy", "lr"))
            and all(e.get(k) is None or _number(e[k]) for k in ("val_loss", "val_accuracy", "test_loss", "test_accuracy")))


def _is_embedding(t: dict[str, torch.Tensor]) -> bool:
    points, labels, predicted = t["points"], t["labels"], t["predicted"]
    return (points.ndim == 2 and len(points) > 0 and points.shape[1] == 2 and points.dtype == torch.float32
            and bool(points.isfinite().all()) and labels.shape == predicted.shape == (len(points),)
            and labels.dtype == predicted.dtype == torch.int64 and bool((labels >= 0).all() and (predicted >= 0).all()))


def _is_filters(t: dict[str, torch.Tensor]) -> bool:
    weight = t["weight"]
    return (weight.ndim == 4 and weight.numel() > 0 and weight.dtype == torch.float32 and weight.shape[1] <= 4096
            and bool(weight.isfinite().all()))


# the tensors a run keeps epoch by epoch for the Inside page, and what each epoch's must be
HISTORIES = {"filters": (("weight",), _is_filters), "embedding": (("points", "labels", "predicted"), _is_embedding)}


def _is_step(s: Any) -> bool:
    """A steps.json entry with every field the pages read; its layers (core.dynamics), if any, numbers or null."""
    if not (isinstance(s, dict) and _count(s.get("epoch")) and _count(s.get("step")) and _number(s.get("loss"))
            and _number(s.get("lr"))):
        return False
    layers = s.get("layers", {})
    return isinstance(layers, dict) and all(
        isinstance(name, str) and isinstance(numbers, dict) and set(numbers) == {"mean", "std", "grad_norm"}
        and all(v is None or _number(v) for v in numbers.values()) for name, numbers in layers.items())


def check_status(raw: dict[str, Any]) -> dict[str, Any]:
    """status.json's fields when each has the type this project writes; DamagedRun naming the first that does not."""
    if raw.get("status") not in RunStatus.__members__.values():
        raise DamagedRun(f"status.json has no known status (got {str(raw.get('status'))[:40]!r}).")
    for key, ok in STATUS_FIELDS.items():
        if raw.get(key) is not None and not ok(raw[key]):
            raise DamagedRun(f"status.json: {key} is {str(raw[key])[:40]!r}, which this project never writes.")
    return {"name": "", "tags": [], "message": "", "created": 0.0, **raw, "status": RunStatus(raw["status"])}


def check_run_id(run_id: str) -> str:
    """A run id names one folder inside a store: letters, digits, '.', '_' and '-', starting with a letter or digit."""
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise KeyError(f"{str(run_id)[:130]!r} is not a run id: a run id is one folder name of up to 120 letters, "
                       f"digits, '.', '_' or '-', starting with a letter or digit.")
    return run_id


def is_store_root(path: Path) -> bool:
    """True for a folder that holds runs (a store or a workspace), which no command may treat as one run."""
    try:
        if path.resolve() == runs_dir().resolve():
            return True
        return path.is_dir() and any((child / "status.json").is_file() or child.name == "_workspaces"
                                     for child in path.iterdir())
    except OSError:
        return False


@dataclass(frozen=True)
class RunStore:
    """One run's folder and the checked reads and writes of its files."""

    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, cfg: TrainConfig, dataset_name: str, folder: str | Path | None = None,
               root: Path | None = None, **status: Any) -> "RunStore":
        """A new run folder: `folder` when given (a new or empty folder), else <root>/<time>-<dataset>-<model>-<random>.

        ValueError, naming the folder, for a file, a folder that holds a run or anything else, or one that cannot be made.
        """
        if folder is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            folder = Path(root or runs_dir()) / f"{stamp}-{safe_name(dataset_name)}-{cfg.model}-{os.urandom(3).hex()}"
        store = cls(Path(folder))
        store._check_new_folder()
        try:
            store.path.mkdir(parents=True, exist_ok=True)
            write_json(store.path / "config.json", cfg.to_dict())
            write_json(store.path / "status.json", {
                "status": RunStatus.QUEUED, "message": "Waiting to start", "name": "", "tags": [],
                "dataset": dataset_name, "created": time.time(), "updated": time.time(), **owner(), **status,
            })
        except OSError as exc:
            raise ValueError(f"Cannot write a run into {store.path}: {exc.strerror or exc}.") from None
        return store

    def _check_new_folder(self) -> None:
        path = self.path
        if len(str(path)) > 1000 or any(len(part.encode()) > 255 for part in path.parts):
            raise ValueError(f"The run folder {str(path)[:80]}… is too long a path: choose a shorter one.")
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} is a file, not a folder: choose a new folder for the run.")
        if (path / "status.json").exists():
            raise ValueError(f"{path} already holds a run: choose another folder, or resume that run.")
        if is_store_root(path):
            raise ValueError(f"{path} is the run store itself: give a new folder inside it, or leave --run-dir out.")
        if path.is_dir() and any(path.iterdir()):
            raise ValueError(f"{path} is a folder that already holds other files: choose a new or empty folder.")

    # --- config and status -------------------------------------------------
    def config(self) -> TrainConfig:
        """The run's config; DamagedRun when config.json is missing, not an object or not a config the engine takes."""
        values = read_json_file(self.path / "config.json", dict)
        if values is None:
            raise DamagedRun("config.json is missing.")
        try:
            return TrainConfig.from_dict(values).validate()
        except (TypeError, ValueError) as exc:
            raise DamagedRun(f"config.json is not a config this version can train: {exc}") from None

    def raw_status(self) -> dict[str, Any]:
        """status.json as written, checked; DamagedRun when it is not."""
        raw = read_json_file(self.path / "status.json", dict)
        if raw is None:
            raise DamagedRun("status.json is missing.")
        return check_status(raw)

    def status(self) -> dict[str, Any]:
        """status.json, with a run whose process died reported as interrupted and a damaged one as damaged."""
        try:
            status = self.raw_status()
        except DamagedRun as exc:
            return {"status": RunStatus.DAMAGED, "message": f"This run is damaged: {exc}", "name": "", "tags": [],
                    "created": self._mtime()}
        waiting_for_a_worker = status["status"] == RunStatus.QUEUED and status.get("pid") is None
        if status["status"] in ACTIVE and not waiting_for_a_worker and not process_alive(status.get("pid"),
                                                                                          status.get("pid_start")):
            status["status"] = RunStatus.INTERRUPTED
            status["message"] = "The process training this run stopped before it finished. Resume continues from its last epoch."
        return status

    def _mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0

    def update_status(self, **fields: Any) -> None:
        """Change some fields of status.json; safe against other threads and processes doing the same."""
        path = self.path / "status.json"
        with locked(path):
            try:
                current = read_json_file(path, dict, {})
            except DamagedRun:
                current = {}
            write_json(path, {**current, **fields, "updated": time.time()})

    def transition(self, allowed: frozenset[RunStatus] | set[RunStatus], **fields: Any) -> bool:
        """Write `fields` only if the run's status (as status() reads it) is one of `allowed`; True when written."""
        with locked(self.path / "status.json"):
            if self.status()["status"] not in allowed:
                return False
            current = read_json_file(self.path / "status.json", dict, {})
            write_json(self.path / "status.json", {**current, **fields, "updated": time.time()})
            return True

    # --- metrics -----------------------------------------------------------
    def write_metrics(self, epochs: list[dict], steps: list[dict]) -> None:
        write_json(self.path / "epochs.json", epochs)
        write_json(self.path / "steps.json", steps)

    def epochs(self) -> list[dict]:
        epochs = read_json_file(self.path / "epochs.json", list, [])
        if not all(_is_epoch(e) for e in epochs):
            raise DamagedRun("epochs.json holds an entry that is not an epoch's metrics.")
        return epochs

    def steps(self) -> list[dict]:
        steps = read_json_file(self.path / "steps.json", list, [])
        if not all(_is_step(s) for s in steps):
            raise DamagedRun("steps.json holds an entry that is not a step's loss, learning rate and layer numbers.")
        return steps

    # --- checkpoints -------------------------------------------------------
    @property
    def best_checkpoint(self) -> Path:
        return self.path / "best.safetensors"

    @property
    def last_checkpoint(self) -> Path:
        return self.path / "last.safetensors"

    def save_training_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler,
                            generator: torch.Generator, state: dict[str, Any], epochs: list[dict],
                            steps: list[dict], best: dict[str, torch.Tensor] | None) -> None:
        """Everything Resume needs, in one file so one rename makes it visible: tensors by prefix, the rest as JSON."""
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        tensors.update({f"best.{k}": v.detach().cpu().contiguous() for k, v in (best or {}).items()})
        opt_state = optimizer.state_dict()
        for index, values in opt_state["state"].items():
            for name, value in values.items():
                tensors[f"optim.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
        tensors["rng.generator"] = generator.get_state().cpu()
        meta = {"state": state, "param_groups": opt_state["param_groups"], "scheduler": scheduler.state_dict(),
                "epochs": epochs, "steps": steps}
        atomic_write(self.path / "resume.safetensors", lambda p: save_file(tensors, str(p), metadata={"json": json.dumps(meta)}))

    def load_training_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler,
                            generator: torch.Generator) -> tuple[dict[str, Any], list[dict], list[dict], dict | None]:
        """Restore what save_training_state wrote into freshly built objects; (state, epochs, steps, best weights)."""
        path = self.path / "resume.safetensors"
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads(f.metadata()["json"])
            tensors = load_file(str(path))
        except (OSError, SafetensorError, KeyError, TypeError, ValueError) as exc:
            raise DamagedRun(f"resume.safetensors cannot be read ({exc}).") from None
        device = next(model.parameters()).device
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        best = {k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("best.")} or None
        opt_state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                opt_state.setdefault(int(index), {})[name] = value if name == "step" else value.to(device)
        optimizer.load_state_dict({"state": opt_state, "param_groups": meta["param_groups"]})
        scheduler.load_state_dict(meta["scheduler"])
        generator.set_state(tensors["rng.generator"].to(generator.get_state().device))
        return meta["state"], meta["epochs"], meta["steps"], best

    def has_training_state(self) -> bool:
        return (self.path / "resume.safetensors").is_file()

    # --- what the Inside page shows epoch by epoch -----------------------------

    def save_epoch(self, history: str, epoch: int, tensors: dict[str, torch.Tensor]) -> None:
        """Add one epoch's tensors (epoch 0: as initialised) to one of the run's histories, one file each."""
        kept = {f"{e}.{k}": v for e, values in self.history(history).items() if e != epoch for k, v in values.items()}
        kept.update({f"{epoch}.{k}": v.detach().cpu().contiguous() for k, v in tensors.items()})
        atomic_write(self.path / f"{history}.safetensors", lambda p: save_file(kept, str(p)))

    def history(self, history: str) -> dict[int, dict[str, torch.Tensor]]:
        """{epoch: tensors}, oldest first; empty for a run that has none (an MLP's filters, an older run) or a file
        that is not what save_epoch writes."""
        path = self.path / f"{history}.safetensors"
        if not path.is_file():
            return {}
        try:
            tensors = load_file(str(path))
            epochs: dict[int, dict[str, torch.Tensor]] = {}
            for key, value in tensors.items():
                epoch, name = key.split(".", 1)
                epochs.setdefault(int(epoch), {})[name] = value
        except (OSError, SafetensorError, ValueError):
            return {}
        if not all(set(values) == set(HISTORIES[history][0]) and HISTORIES[history][1](values) for values in epochs.values()):
            return {}
        return dict(sorted(epochs.items()))

    # --- evaluation --------------------------------------------------------
    def write_evaluation(self, report: dict[str, Any], probabilities: torch.Tensor, labels: torch.Tensor) -> None:
        """The report as JSON; the test set's probabilities and true labels as tensors (for mistakes, calibration)."""
        tensors = {"probabilities": probabilities.float().cpu().contiguous(), "labels": labels.long().cpu().contiguous()}
        atomic_write(self.path / "evaluation.safetensors", lambda p: save_file(tensors, str(p)))
        write_json(self.path / "evaluation.json", report)

    def evaluation(self) -> dict[str, Any] | None:
        try:
            return read_json_file(self.path / "evaluation.json", dict)
        except DamagedRun:
            return None

    def test_predictions(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(probabilities N x K, true labels N, each from 0 to K - 1) of the test set, when the run was evaluated
        and the file holds that."""
        path = self.path / "evaluation.safetensors"
        if not path.is_file():
            return None
        try:
            tensors = load_file(str(path))
            probs, labels = tensors["probabilities"], tensors["labels"]
        except (OSError, SafetensorError, KeyError):
            return None
        fits = (probs.ndim == 2 and probs.is_floating_point() and labels.shape == (len(probs),)
                and not labels.is_floating_point() and bool(((labels >= 0) & (labels < probs.shape[1])).all()))
        return (probs, labels) if fits else None


def list_runs(root: Path | None = None) -> list[RunStore]:
    """Every run folder directly under `root` (default: the local store), newest first; damaged ones included."""
    root = Path(root or runs_dir())
    try:
        folders = [p for p in root.iterdir() if RUN_ID.fullmatch(p.name) and (p / "status.json").is_file()]
    except OSError:
        return []
    created = {p: RunStore(p).status().get("created") or 0.0 for p in folders}
    return [RunStore(p) for p in sorted(folders, key=lambda p: created[p], reverse=True)]


def find_run(run_id: str, root: Path | None = None) -> RunStore:
    """A run by its id in `root`, or by a path that names a run folder (it has a '/'); KeyError when there is none."""
    root = Path(root or runs_dir())
    if isinstance(run_id, str) and ("/" in run_id or os.sep in run_id):
        path = Path(run_id)
        if len(run_id) <= 1000 and (path / "status.json").is_file() and not is_store_root(path):
            return RunStore(path)
        raise KeyError(f"{run_id[:200]!r} is not a run folder.")
    path = root / check_run_id(run_id)
    if not (path / "status.json").is_file():
        raise KeyError(f"No run {run_id!r} in {root}.")
    return RunStore(path)


def run_row(store: RunStore) -> dict[str, Any]:
    """One line of the runs table: what a learner compares runs by (a damaged run says why)."""
    status = store.status()
    try:
        cfg, epochs = store.config(), store.epochs()
    except DamagedRun as exc:
        return {"id": store.id, "name": status.get("name") or "", "status": RunStatus.DAMAGED.value,
                "message": f"This run is damaged: {exc}",
                "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(status.get("created") or 0))}
    val = [e.get("val_accuracy") for e in epochs if _number(e.get("val_accuracy"))]
    return {
        "id": store.id,
        "name": status.get("name") or "",
        "status": status["status"].value,
        "dataset": status.get("dataset") or cfg.dataset,
        "model": cfg.model,
        "optimizer": cfg.optimizer,
        "lr": cfg.lr,
        "schedule": cfg.scheduler,
        "batch": cfg.batch_size,
        "epochs": f"{len(epochs)}/{cfg.epochs}",
        "augment": ",".join(cfg.augment),
        "best val acc": max(val) if val else None,
        "test acc": status.get("test_accuracy"),
        "seconds": status.get("train_seconds"),
        "tags": ", ".join(status.get("tags") or []),
        "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(status.get("created") or 0)),
        "message": status.get("message") or "",
    }


def intact(store: RunStore) -> bool:
    """True when every file a page reads of this run (status, config, curves) is as this project writes it."""
    if store.status()["status"] == RunStatus.DAMAGED:
        return False
    try:
        store.config(), store.epochs(), store.steps()
    except DamagedRun:
        return False
    return True


def compare_configs(stores: list[RunStore]) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Each run's config by id, and the names of the settings that differ between them."""
    configs = {s.id: s.config().to_dict() for s in stores}
    keys = list(next(iter(configs.values()), {}))
    differing = {k for k in keys if len({json.dumps(c[k]) for c in configs.values()}) > 1}
    return configs, differing


def delete_run(store: RunStore) -> None:
    """Remove one run folder, never a store, a workspace or a run that is still training."""
    if not (store.path / "status.json").is_file() or not RUN_ID.fullmatch(store.path.name) or is_store_root(store.path):
        raise ValueError(f"{store.path} is not a run folder; nothing was deleted.")
    if store.status()["status"] in ACTIVE:
        raise ValueError(f"Run {store.id} is still training; stop it first.")
    shutil.rmtree(store.path)
