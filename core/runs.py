"""The run store: every run, from the app or the command line, is a folder that outlives its process.

runs/<id>/ (or under PLAYGROUND_RUNS_DIR) holds
  config.json          the full TrainConfig
  status.json          status, name, tags, timings, the writing process's pid
  epochs.json          per-epoch metrics so far
  steps.json           per-step loss and learning rate so far
  best.safetensors/.json   the weights with the best validation accuracy (predict-ready)
  last.safetensors/.json   the weights after the last finished epoch (predict-ready)
  resume.safetensors   everything Resume needs: weights, optimizer, schedule, random state
  evaluation.json      the test-set report; evaluation.safetensors its probabilities
  events.out.tfevents.*    TensorBoard scalars

Every file is written under a temporary name and renamed, and everything is
written at the end of an epoch, so a killed process loses at most the epoch it
was in. A run left "running" by a process that no longer exists reads as
"interrupted".
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from core.config import TrainConfig
from core.files import atomic_write, read_json, write_json

RUNS_DIR_VAR = "PLAYGROUND_RUNS_DIR"
ACTIVE_STATUSES = ("queued", "running")


def runs_dir() -> Path:
    return Path(os.environ.get(RUNS_DIR_VAR, "runs"))


def _process_alive(pid: int | None) -> bool:
    if not pid:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class RunStore:
    """One run's folder and the typed reads and writes of its files."""

    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, cfg: TrainConfig, dataset_name: str, folder: str | Path | None = None) -> "RunStore":
        """A new run folder (cfg.run_dir when given, else runs/<time>-<dataset>-<model>-<random>)."""
        if folder is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in dataset_name)
            folder = runs_dir() / f"{stamp}-{safe}-{cfg.model}-{secrets.token_hex(2)}"
        store = cls(Path(folder))
        if (store.path / "status.json").exists():
            raise ValueError(f"{store.path} already holds a run: choose another folder, or resume that run.")
        store.path.mkdir(parents=True, exist_ok=True)
        write_json(store.path / "config.json", cfg.to_dict())
        write_json(store.path / "status.json", {
            "status": "queued", "message": "Waiting to start", "name": "", "tags": [], "dataset": dataset_name,
            "created": time.time(), "updated": time.time(), "pid": os.getpid(),
        })
        return store

    # --- config and status -------------------------------------------------
    def config(self) -> TrainConfig:
        return TrainConfig.from_dict(read_json(self.path / "config.json", {}))

    def raw_status(self) -> dict[str, Any]:
        return read_json(self.path / "status.json", {})

    def status(self) -> dict[str, Any]:
        """status.json, with a run whose writer died reported as interrupted."""
        status = self.raw_status()
        if status.get("status") in ACTIVE_STATUSES and not _process_alive(status.get("pid")):
            status["status"] = "interrupted"
            status["message"] = "The process training this run stopped before it finished. Resume continues from its last epoch."
        return status

    def update_status(self, **fields: Any) -> None:
        write_json(self.path / "status.json", {**self.raw_status(), **fields, "updated": time.time()})

    # --- metrics -----------------------------------------------------------
    def write_metrics(self, epochs: list[dict], steps: list[dict]) -> None:
        write_json(self.path / "epochs.json", epochs)
        write_json(self.path / "steps.json", steps)

    def epochs(self) -> list[dict]:
        return read_json(self.path / "epochs.json", [])

    def steps(self) -> list[dict]:
        return read_json(self.path / "steps.json", [])

    # --- checkpoints -------------------------------------------------------
    @property
    def best_checkpoint(self) -> Path:
        return self.path / "best.safetensors"

    @property
    def last_checkpoint(self) -> Path:
        return self.path / "last.safetensors"

    def save_training_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler,
                            generator: torch.Generator, state: dict[str, Any]) -> None:
        """One file, so one rename makes it visible: tensors by prefix, the rest as JSON metadata."""
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        opt_state = optimizer.state_dict()
        for index, values in opt_state["state"].items():
            for name, value in values.items():
                tensors[f"optim.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
        tensors["rng.generator"] = generator.get_state().cpu()
        meta = {"state": state, "param_groups": opt_state["param_groups"], "scheduler": scheduler.state_dict()}
        atomic_write(self.path / "resume.safetensors", lambda p: save_file(tensors, str(p), metadata={"json": json.dumps(meta)}))

    def load_training_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler,
                            generator: torch.Generator) -> dict[str, Any]:
        """Restore what save_training_state wrote into freshly built objects; return its `state`."""
        from safetensors import safe_open

        path = self.path / "resume.safetensors"
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["json"])
        tensors = load_file(str(path))
        device = next(model.parameters()).device
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        opt_state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                opt_state.setdefault(int(index), {})[name] = value if name == "step" else value.to(device)
        optimizer.load_state_dict({"state": opt_state, "param_groups": meta["param_groups"]})
        scheduler.load_state_dict(meta["scheduler"])
        generator.set_state(tensors["rng.generator"].to(generator.get_state().device))
        return meta["state"]

    def has_training_state(self) -> bool:
        return (self.path / "resume.safetensors").is_file()

    # --- evaluation --------------------------------------------------------
    def write_evaluation(self, report: dict[str, Any], probabilities: torch.Tensor, labels: torch.Tensor) -> None:
        """The report as JSON; the test set's probabilities and true labels as tensors (for mistakes, calibration)."""
        tensors = {"probabilities": probabilities.float().cpu().contiguous(), "labels": labels.long().cpu().contiguous()}
        atomic_write(self.path / "evaluation.safetensors", lambda p: save_file(tensors, str(p)))
        write_json(self.path / "evaluation.json", report)

    def evaluation(self) -> dict[str, Any] | None:
        return read_json(self.path / "evaluation.json")

    def test_predictions(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(probabilities N x K, true labels N) of the test set, when the run was evaluated."""
        path = self.path / "evaluation.safetensors"
        if not path.is_file():
            return None
        tensors = load_file(str(path))
        return tensors["probabilities"], tensors["labels"]


def list_runs(root: Path | None = None) -> list[RunStore]:
    """Every run folder under the store, newest first."""
    root = Path(root or runs_dir())
    if not root.is_dir():
        return []
    stores = [RunStore(p) for p in root.iterdir() if (p / "status.json").is_file()]
    return sorted(stores, key=lambda s: s.raw_status().get("created", 0), reverse=True)


def find_run(run_id: str, root: Path | None = None) -> RunStore:
    """A run by its id (folder name) or path; KeyError with the known ids when there is none."""
    for candidate in (Path(run_id), Path(root or runs_dir()) / run_id):
        if (candidate / "status.json").is_file():
            return RunStore(candidate)
    raise KeyError(f"No run {run_id!r} in {root or runs_dir()}.")


def run_row(store: RunStore) -> dict[str, Any]:
    """One line of the runs table: what a learner compares runs by."""
    status, cfg = store.status(), store.config()
    epochs = store.epochs()
    val = [e["val_accuracy"] for e in epochs if e.get("val_accuracy") is not None]
    return {
        "id": store.id,
        "name": status.get("name") or "",
        "status": status.get("status"),
        "dataset": status.get("dataset", cfg.dataset),
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
        "tags": ", ".join(status.get("tags", [])),
        "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(status.get("created", 0))),
    }


def compare_configs(stores: list[RunStore]) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Each run's config by id, and the names of the settings that differ between them."""
    configs = {s.id: s.config().to_dict() for s in stores}
    keys = list(next(iter(configs.values()), {}))
    differing = {k for k in keys if len({json.dumps(c[k]) for c in configs.values()}) > 1}
    return configs, differing


def delete_run(store: RunStore) -> None:
    if store.status().get("status") in ACTIVE_STATUSES:
        raise ValueError(f"Run {store.id} is still training; stop it first.")
    shutil.rmtree(store.path)


if __name__ == "__main__":  # python -m core.runs: the command line lives in core.runs_cli
    from core.runs_cli import main

    raise SystemExit(main())
