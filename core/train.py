"""Command line: python -m core.train --dataset mnist --model lenet5 --epochs 3 ...

`--recipe NAME` starts from a recipe (`--list-recipes` lists them); any other flag
overrides the recipe's value. Shows a progress bar on stderr while it trains; with
--json the last line on stdout is one JSON object with the run's numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from core.augment import AUGMENTATIONS, TEST_TIME_AUGMENTATIONS, TEST_TIME_DESCRIPTIONS
from core.config import BEST_BY, DEVICES, TEST_SCALINGS, TrainConfig
from core.data import DATASETS, DatasetUnavailable, ImageDataset
from core.engine import TrainResult, load_result, resolve_dataset, train
from core.events import Event, stop_on_sigterm
from core.importers import DataImportError
from core.models import INITS, MODELS
from core.optim import OPTIMIZERS, SCHEDULERS
from core.preprocess import INPUT_SCALINGS
from core.recipes import RECIPES
from core.settings import HostSettings
from core.store import ACTIVE, RunStatus, RunStore


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None


def build_parser(d: TrainConfig | None = None) -> argparse.ArgumentParser:
    """The flags, with `d`'s values (a recipe's, or the defaults) as their defaults."""
    d = d or TrainConfig()
    p = argparse.ArgumentParser(prog="python -m core.train", description="Train an image classifier.")
    p.add_argument("--recipe", choices=list(RECIPES), help="start from a recipe; other flags override its values")
    p.add_argument("--list-recipes", action="store_true", help="list the recipes and exit")
    p.add_argument("--dataset", default=d.dataset, help=f"{', '.join(DATASETS)}, or the path of a CSV file, an image folder or a .zip of one")
    p.add_argument("--model", default=d.model, choices=list(MODELS))
    p.add_argument("--hidden", type=_int_list, default=d.hidden, help="MLP hidden sizes, e.g. 256,128")
    p.add_argument("--init", default=d.init, choices=list(INITS))
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--optimizer", default=d.optimizer, choices=list(OPTIMIZERS))
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--momentum", type=float, default=d.momentum)
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=d.nesterov)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--scheduler", default=d.scheduler, choices=list(SCHEDULERS))
    p.add_argument("--step-epochs", type=int, default=d.step_epochs, help="step schedule: epochs between decays")
    p.add_argument("--milestones", type=_int_list, default=d.milestones, help="multistep schedule: epochs, e.g. 2,4")
    p.add_argument("--gamma", type=float, default=d.gamma, help="decay factor of step and multistep")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--augment", default=",".join(d.augment), help=f"comma-separated: {', '.join(AUGMENTATIONS)}")
    p.add_argument("--rotate-degrees", type=float, default=d.rotate_degrees, help="the rotate augmentation's limit")
    p.add_argument("--input-scaling", default=d.input_scaling, choices=list(INPUT_SCALINGS),
                   help="; ".join(f"{k}: {v}" for k, v in INPUT_SCALINGS.items()))
    p.add_argument("--test-scaling", default=d.test_scaling, choices=list(TEST_SCALINGS),
                   help="how test images are fed: 'same' as training images, or another scaling (a lecture's mismatch, replayed)")
    p.add_argument("--tta", default=d.tta, choices=list(TEST_TIME_AUGMENTATIONS),
                   help="test-time augmentation of every prediction: " + "; ".join(f"{k}: {v}" for k, v in TEST_TIME_DESCRIPTIONS.items()))
    p.add_argument("--best-by", default=d.best_by, choices=list(BEST_BY), help="which validation number picks the checkpoint kept")
    p.add_argument("--val-split", type=float, default=d.val_split)
    p.add_argument("--test-each-epoch", action=argparse.BooleanOptionalAction, default=d.test_each_epoch,
                   help="also measure test accuracy after every epoch (reported only; never picks the checkpoint)")
    p.add_argument("--patience", type=int, default=d.patience, help="early stopping patience in epochs (0: off)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device, choices=list(DEVICES))
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=d.channels_last,
                   help="convolutions on channels-last memory (faster for some networks on some CPUs: measure)")
    p.add_argument("--limit-train", type=int, default=d.limit_train, help="train on only the first N training images")
    p.add_argument("--run-dir", default=None, help="where checkpoints go (default: runs/<time>-<dataset>-<model>)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object last")
    return p


def epoch_line(e: dict) -> str:
    """One finished epoch (its line of epochs.json) as the command line prints it."""
    val = f", val loss {e['val_loss']:.4f}, val acc {e['val_accuracy']:.2%}" if e.get("val_accuracy") is not None else ""
    test = f", test acc {e['test_accuracy']:.2%}" if e.get("test_accuracy") is not None else ""
    return (f"epoch {e['epoch']}: train loss {e['train_loss']:.4f}, train acc {e['train_accuracy']:.2%}"
            f"{val}{test} ({e.get('seconds', 0):.1f} s)")


class ProgressBar:
    """Turns engine events into a tqdm bar on stderr and a line per epoch."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def __call__(self, event: Event) -> None:
        if event.kind == "step":
            if self.bar is None:
                self.bar = tqdm(total=event.total_steps, unit="step", file=sys.stderr, dynamic_ncols=True)
            self.bar.update(event.step - self.bar.n)
            self.bar.set_postfix(epoch=event.epoch, loss=f"{event.loss:.4f}", rate=f"{event.samples_per_second:,.0f}/s")
        elif event.kind == "epoch":
            (self.bar.write if self.bar else print)(epoch_line(event.metrics()), file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class ImportBar:
    """A progress bar on stderr while a user's image folder is decoded (built-in datasets load without one)."""

    def __init__(self, name: str) -> None:
        self.name, self.bar = Path(name).name, None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = tqdm(total=total, unit="img", desc=f"reading {self.name}", file=sys.stderr, dynamic_ncols=True)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def list_recipes() -> str:
    return "\n".join(f"{name}: {r.description}" + (f" Published: {r.published}." if r.published else "")
                     for name, r in RECIPES.items())


def main(argv: list[str] | None = None) -> int:
    chosen, _ = build_parser().parse_known_args(argv)  # which recipe gives the defaults
    if chosen.list_recipes:
        print(list_recipes())
        return 0
    parser = build_parser(RECIPES[chosen.recipe].train_config() if chosen.recipe else None)
    args = parser.parse_args(argv)
    values = {k: v for k, v in vars(args).items() if k not in ("json", "recipe", "list_recipes")}
    cfg = TrainConfig(**values)
    try:
        cfg.validate()
    except ValueError as exc:
        parser.error(str(exc))
    if cfg.dataset not in DATASETS and Path(cfg.dataset).exists():
        cfg.dataset = str(Path(cfg.dataset).resolve())  # the run's config names it wherever Resume is started from
    try:
        settings = HostSettings.load()
    except ValueError as exc:
        parser.error(str(exc))
    on_cluster = bool(settings.ray_address)
    reading = ImportBar(cfg.dataset)
    try:  # on a cluster a built-in dataset loads on the node; a user's travels from here
        dataset = None if on_cluster and cfg.dataset in DATASETS else resolve_dataset(cfg.dataset, reading)
    except (DataImportError, DatasetUnavailable) as exc:
        reading.close()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    reading.close()
    if on_cluster:
        try:
            store = RunStore.create(cfg, dataset.name if dataset else Path(cfg.dataset).name, cfg.run_dir, backend="ray")
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return train_on_ray(store, settings, dataset, args.json)
    bar = ProgressBar()
    try:
        result = train(cfg, on_event=bar, stop=stop_on_sigterm(), dataset=dataset)
    except KeyboardInterrupt:
        bar.close()
        print("interrupted", file=sys.stderr)
        return 130
    except ValueError as exc:  # e.g. --device cuda without a GPU
        bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    bar.close()
    return report(result, args.json)


def train_on_ray(store: RunStore, settings: HostSettings, dataset: ImageDataset | None, as_json: bool) -> int:
    """The run in `store` (new, or claimed for a resume) as a Ray actor on the cluster PLAYGROUND_RAY_ADDRESS names
    (core.cluster), a line per epoch here; `dataset` is a user's, None for a built-in one (the node loads it)."""
    from core.cluster import ClusterUnavailable, train_on_cluster  # here: Ray's import would slow every local run

    try:
        train_on_cluster(store, settings, stop_on_sigterm(), lambda e: print(epoch_line(e), file=sys.stderr), dataset)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the cluster refused it, its dataset cannot travel, a Ray error: a resumed run stays resumable
        store.transition(ACTIVE, status=RunStatus.INTERRUPTED if store.has_training_state() else RunStatus.FAILED,
                         message=str(exc) if isinstance(exc, (ClusterUnavailable, ValueError, OSError))
                         else f"{type(exc).__name__}: {exc}", pid=None)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return report_store(store, as_json)


def report_store(store: RunStore, as_json: bool) -> int:
    """report() of a run another process trained; a run that did not end gets its message and exit code 1."""
    status = store.status()
    if status["status"] not in (RunStatus.FINISHED, RunStatus.STOPPED, RunStatus.DIVERGED):
        print(f"{status['status']}: {status.get('message', '')}", file=sys.stderr)
        return 1
    return report(load_result(store), as_json)


def report(result: TrainResult, as_json: bool) -> int:
    """A one-line summary on stderr, the JSON object last on stdout, and the exit code (3: diverged)."""
    summary = f"{result.status}: {result.message}"
    if result.test_accuracy is not None:
        summary += f" Test accuracy {result.test_accuracy:.2%} on {result.device}, {result.samples_per_second:,.0f} samples/s."
    print(summary, file=sys.stderr)
    if as_json:
        print(json.dumps(result.to_json_dict()))
    return 0 if result.status in (RunStatus.FINISHED, RunStatus.STOPPED) else 3


def exit_now(code: int) -> None:
    """End the process without Python's finalisation. Every file of the run is written and closed by then, and
    tearing down the modules of torch and torchvision takes about a second here (`import core.train` alone:
    4.1 to 4.5 s as a whole process, 2.9 to 3.3 s ending this way)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
