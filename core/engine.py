"""The one training engine, used by the command line and the app.

`train(cfg)` is a single explicit loop: the dataset sits on the device as uint8
tensors, batches are cut by index, augmentation runs on the batch. Progress is
reported as events to any subscriber; a stop request (a threading.Event) is
checked at every step, so a run ends within one batch of being asked.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.augment import augment_batch, test_time_views_fit
from core.checkpoint import CheckpointError, load_checkpoint, read_description, save_checkpoint
from core.confidence import not_sure_threshold
from core.config import ANY_NUMBER, COUNT, TrainConfig, within
from core.data import (
    DATASETS,
    SAVED_SUFFIX,
    DatasetUnavailable,
    ImageDataset,
    load_dataset,
    load_saved_dataset,
    train_val_indices,
)
from core.device import describe_device, resolve_device
from core.dynamics import LayerStats
from core.embedding import EMBEDDED_IMAGES, penultimate_features, project_2d
from core.events import EndEvent, EpochEvent, Event, StartEvent, StatusEvent, StepEvent, Stop
from core.image_folders import Progress
from core.importers import import_user_data
from core.metrics import (
    autocast,
    class_report,
    loss_and_accuracy,
    predict_probabilities,
)
from core.models import WHITENING_IMAGES, build_model, check_fits, count_parameters, first_convolution, fit_to_data
from core.optim import build_optimizer, build_scheduler, epoch_steps
from core.preprocess import Normalizer, input_stats, to_unit
from core.recorders import RunRecorder, TensorBoardRecorder, fan_out
from core.store import RESUMABLE, DamagedRun, RunStatus, RunStore, owner

STEP_EVENTS_PER_EPOCH = 50  # about this many loss points per epoch for the live curves
LAYER_EVENTS_EVERY = 2  # of those, every second one also records the layers: smaller steps.json for deep networks


@dataclass
class TrainResult:
    status: str  # finished, stopped, diverged
    message: str
    config: dict[str, Any]
    dataset: str
    class_names: list[str]
    device: str
    params: int
    epochs: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    train_seconds: float = 0.0
    samples_per_second: float = 0.0
    test_accuracy: float | None = None
    test_loss: float | None = None
    per_class_accuracy: list[float | None] = field(default_factory=list)
    precision: list[float | None] = field(default_factory=list)
    recall: list[float | None] = field(default_factory=list)
    count: list[int] = field(default_factory=list)
    confusion_matrix: list[list[int]] = field(default_factory=list)
    checkpoint: str | None = None
    threshold: float | None = None  # below this top probability the model says "not sure" (core.confidence)
    run_dir: str | None = None
    test_probabilities: torch.Tensor | None = field(default=None, repr=False)  # N x K, kept out of JSON
    test_labels: torch.Tensor | None = field(default=None, repr=False)  # N, kept out of JSON

    def to_json_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("test_probabilities")
        data.pop("test_labels")
        return data


def resolve_dataset(name_or_path: str, progress: Progress | None = None) -> ImageDataset:
    """A built-in dataset by name, or a user's CSV file or image folder by path (`progress` is told how many of
    a folder's images are decoded)."""
    if name_or_path in DATASETS:
        return load_dataset(name_or_path)
    if name_or_path.endswith(SAVED_SUFFIX):
        return load_saved_dataset(name_or_path)
    if not Path(name_or_path).exists():
        raise DatasetUnavailable(f"Unknown dataset {name_or_path!r}: choose one of {', '.join(DATASETS)}, "
                                 f"or give the path of a CSV file, an image folder or a .zip of one.")
    return import_user_data(name_or_path, progress)


def checkpoint_meta(cfg: TrainConfig, dataset: ImageDataset, model: nn.Module, **extra: Any) -> dict[str, Any]:
    mean, std = input_stats(cfg.input_scaling, dataset.mean, dataset.std)  # what the model was fed: predict feeds it the same
    return {
        "model": cfg.model,
        "num_classes": dataset.num_classes,
        "input_shape": list(dataset.input_shape),
        "dataset": dataset.name,
        "class_names": list(dataset.class_names),
        "mean": list(mean),
        "std": list(std),
        "params": count_parameters(model),
        "config": cfg.to_dict(),
        **extra,
    }


def train(
    cfg: TrainConfig,
    on_event: Callable[[Event], None] | None = None,
    stop: threading.Event | None = None,
    dataset: ImageDataset | None = None,
    store: RunStore | None = None,
    max_seconds: float | None = None,
) -> TrainResult:
    """Train, validate and test one model as `cfg` says, recording it in a run folder.

    `store` is the run's folder (created from cfg.run_dir or under runs/ when None).
    A store that already holds a training state, an interrupted or stopped run,
    is resumed from its last finished epoch. The run's own recorders (its files,
    TensorBoard) see every event first, then `on_event`. `max_seconds` of training
    (resumed epochs included) end the run as stopped, with its best checkpoint.
    """
    cfg.validate()
    if dataset is not None:  # refused before a run folder exists
        check_fits(cfg.model, dataset.input_shape, dataset.num_classes, cfg.hidden)
    stop = stop or Stop()
    store = store or RunStore.create(cfg, dataset.name if dataset else Path(cfg.dataset).name, cfg.run_dir)
    emit = fan_out([RunRecorder(store), TensorBoardRecorder(store), on_event])
    try:
        device = resolve_device(cfg.device)
        emit(StatusEvent(RunStatus.LOADING, f"Loading {cfg.dataset}"))
        data = dataset or resolve_dataset(cfg.dataset)
        return _train(cfg, emit, stop, data, store, device, max_seconds)
    except BaseException as exc:
        emit(EndEvent(RunStatus.FAILED, str(exc) or type(exc).__name__))
        raise


def _stop_message(stop: threading.Event, where: str) -> str:
    return f"{getattr(stop, 'reason', '') or 'Stopped by request'} {where}."


def _train(cfg: TrainConfig, emit: Callable[[Event], None], stop: threading.Event, data: ImageDataset,
           store: RunStore, device: torch.device, max_seconds: float | None) -> TrainResult:
    train_idx, val_idx = train_val_indices(data, cfg.val_split, cfg.seed)
    if cfg.limit_train:
        train_idx = train_idx[: cfg.limit_train]
    images = data.train_images.to(device)
    labels = data.train_labels.to(device)
    train_idx, val_idx = train_idx.to(device), val_idx.to(device)
    normalize = Normalizer(*input_stats(cfg.input_scaling, data.mean, data.std), device)
    # the test images as the config feeds them: as training images, unless a recipe replays a lecture's mismatch
    test_normalize = normalize if cfg.test_scaling == "same" else Normalizer(
        *input_stats(cfg.test_scaling, data.mean, data.std), device)

    if not test_time_views_fit(cfg.tta, *data.input_shape[1:]):
        raise ValueError("flip-translate shifts each image by a pixel, which needs images of at least 2 x 2 pixels: "
                         "choose another test-time augmentation.")

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, data.input_shape, data.num_classes, cfg.init, cfg.hidden).to(device)
    if min(cfg.batch_size, len(train_idx)) < 2 and any(isinstance(m, nn.BatchNorm1d) for m in model.modules()):
        raise ValueError(f"{cfg.model} normalises its hidden layer over each batch (BatchNorm), so it trains on batches "
                         f"of at least 2 images: raise the batch size, or train on more images.")
    fit_start = time.perf_counter()  # fitting a layer to the data is training: its seconds count as such
    fit_to_data(model, lambda: normalize(to_unit(images[train_idx[:WHITENING_IMAGES]])))  # a resume loads its own below
    fit_seconds = time.perf_counter() - fit_start  # nothing for a model without such a layer
    memory = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory)  # checkpoints are saved contiguous either way
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    optimizer = build_optimizer(model, cfg)
    steps_per_epoch = epoch_steps(len(train_idx), cfg.batch_size)
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    total_steps = cfg.epochs * steps_per_epoch
    log_every = max(1, steps_per_epoch // STEP_EVENTS_PER_EPOCH)
    layers_every = LAYER_EVENTS_EVERY * log_every  # steps between two records of the layers (core.dynamics)

    result = TrainResult(
        status=RunStatus.RUNNING, message="", config=cfg.to_dict(), dataset=data.name,
        class_names=list(data.class_names), device=describe_device(device), params=count_parameters(model),
        run_dir=str(store.path),
    )
    # everything Resume needs to continue exactly where an epoch ended
    progress = {"epoch": 0, "step": 0, "best_score": None, "best_epoch": None, "epochs_without_gain": 0,
                "train_time": fit_seconds, "samples_seen": 0}
    best_state = best_val_probs = None
    if store.has_training_state():
        progress, result.epochs, result.steps, best_state = store.load_training_state(model, optimizer, scheduler, gen)
    # a run killed after its last epoch (while testing, say) has no epoch left: it goes straight to the test
    trained_out = cfg.patience and progress["epochs_without_gain"] >= cfg.patience
    result.best_epoch = progress["best_epoch"]
    if trained_out:
        result.message = (f"Early stopping: no better validation {cfg.best_by} for {_epochs(cfg.patience)} "
                          f"after epoch {result.best_epoch}.")
    step, train_time, samples_seen = progress["step"], progress["train_time"], progress["samples_seen"]
    layer_stats = LayerStats(model)
    first_layer = first_convolution(model)
    embedded = data.test_images[:EMBEDDED_IMAGES], data.test_labels[:EMBEDDED_IMAGES]
    if not progress["epoch"]:  # as initialised: the Inside page starts from noise and mixed classes
        _save_insides(store, 0, model, first_layer, embedded, normalize, device, cfg.tta)
    resumed = f" (resumed after epoch {progress['epoch']})" if progress["epoch"] else ""
    emit(StartEvent(result.device, result.params, total_steps, list(result.epochs), list(result.steps)))
    emit(StatusEvent(RunStatus.RUNNING, f"Training {cfg.model} on {result.device}{resumed}"))

    for epoch in range(progress["epoch"] + 1, cfg.epochs + 1 if not trained_out else 0):
        epoch_start = time.perf_counter()
        model.train()
        order = train_idx[torch.randperm(len(train_idx), device=device, generator=gen)]
        loss_sum = torch.zeros((), device=device)  # since the last step event
        epoch_loss = torch.zeros((), device=device)
        epoch_correct = torch.zeros((), device=device, dtype=torch.long)
        steps_since_event, samples_since_event, tick = 0, 0, time.perf_counter()
        for i in range(steps_per_epoch):
            if (i + 1) % layers_every == 0 or i == steps_per_epoch - 1:  # every other reported step, and the epoch's last
                layer_stats.arm()
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            x = to_unit(images[idx])
            if cfg.augment:
                x = augment_batch(x, cfg.augment, gen, cfg.rotate_degrees)
            y = labels[idx]
            with autocast(device):
                logits = model(normalize(x).contiguous(memory_format=memory))
                loss = criterion(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            # the curves show plain cross-entropy, comparable with validation, even when the
            # optimizer minimises a label-smoothed one
            shown = F.cross_entropy(logits.detach().float(), y) if cfg.label_smoothing else loss.detach()
            loss_sum += shown * len(idx)
            epoch_loss += shown * len(idx)
            epoch_correct += (logits.argmax(1) == y).sum()
            steps_since_event += 1
            samples_since_event += len(idx)
            if steps_since_event == log_every or i == steps_per_epoch - 1 or stop.is_set():
                mean_loss = loss_sum.item() / samples_since_event  # one device sync per event
                now = time.perf_counter()
                train_time += now - tick
                samples_seen += samples_since_event
                rate = samples_seen / max(train_time, 1e-9)
                result.train_seconds, result.samples_per_second = train_time, rate
                if not math.isfinite(mean_loss):
                    layer_stats.close()  # an armed step's hooks must not watch the test evaluation
                    return _finish_diverged(result, model, data, test_normalize, device, best_state, store, epoch, step, emit)
                layers, activations = layer_stats.read()
                event = StepEvent(epoch, step, total_steps, mean_loss, optimizer.param_groups[0]["lr"], rate,
                                  (total_steps - step) * cfg.batch_size / max(rate, 1e-9), layers,
                                  activations if i == steps_per_epoch - 1 else None)  # histograms: one per epoch
                result.steps.append(event.record())
                emit(event)
                loss_sum.zero_()
                steps_since_event, samples_since_event, tick = 0, 0, time.perf_counter()
                if max_seconds and train_time >= max_seconds and not stop.is_set():
                    getattr(stop, "request", lambda reason: stop.set())(
                        f"Stopped at this server's limit of {max_seconds:g} s of training per run")
            if stop.is_set():
                break
        if stop.is_set():
            result.status, result.message = RunStatus.STOPPED, _stop_message(stop, f"in epoch {epoch}, step {step}")
            break

        n_train = min(len(train_idx), steps_per_epoch * cfg.batch_size)
        train_loss, train_acc = epoch_loss.item() / n_train, epoch_correct.item() / n_train
        val_loss = val_acc = val_probs = None
        if len(val_idx):
            val_probs = predict_probabilities(model, images[val_idx], normalize, device, stop.is_set, cfg.tta)
            if val_probs is None:
                result.status, result.message = RunStatus.STOPPED, _stop_message(stop, f"while validating epoch {epoch}")
                break
            val_loss, val_acc = loss_and_accuracy(val_probs, labels[val_idx])
        test_loss = test_acc = None
        if cfg.test_each_epoch:  # reported like the notebooks print it; the score below never sees it
            test_probs = predict_probabilities(model, data.test_images, test_normalize, device, stop.is_set, cfg.tta)
            if test_probs is None:
                result.status, result.message = RunStatus.STOPPED, _stop_message(stop, f"while testing epoch {epoch}")
                break
            test_loss, test_acc = loss_and_accuracy(test_probs, data.test_labels.to(device))
        record = EpochEvent(epoch, train_loss, train_acc, val_loss, val_acc,
                            time.perf_counter() - epoch_start, optimizer.param_groups[0]["lr"], test_loss, test_acc)
        result.epochs.append(record.metrics())

        if val_acc is None:
            score = epoch  # no validation set: keep the latest epoch
        else:
            score = -val_loss if cfg.best_by == "loss" else val_acc
        meta = checkpoint_meta(cfg, data, model, epoch=epoch, val_accuracy=val_acc)
        if progress["best_score"] is None or score > progress["best_score"]:
            progress.update(best_score=score, best_epoch=epoch, epochs_without_gain=0)
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            best_val_probs = val_probs  # the threshold is calibrated on them at the end
            save_checkpoint(store.best_checkpoint, model, meta)
        else:
            progress["epochs_without_gain"] += 1
        result.best_epoch = progress["best_epoch"]
        progress.update(epoch=epoch, step=step, train_time=train_time, samples_seen=samples_seen)
        save_checkpoint(store.last_checkpoint, model, meta)
        _save_insides(store, epoch, model, first_layer, embedded, normalize, device, cfg.tta)
        # the one write Resume depends on; everything that reports this epoch comes after it
        store.save_training_state(model, optimizer, scheduler, gen, progress, result.epochs, result.steps, best_state)
        emit(record)
        if cfg.patience and progress["epochs_without_gain"] >= cfg.patience:
            result.message = (f"Early stopping: no better validation {cfg.best_by} for {_epochs(cfg.patience)} "
                              f"after epoch {result.best_epoch}.")
            break

    layer_stats.close()
    if result.status == RunStatus.RUNNING:
        result.status = RunStatus.FINISHED
        result.message = result.message or f"Finished {_epochs(len(result.epochs))}."
    if best_state is not None:
        model.load_state_dict(best_state)  # from Resume's state too, so best.* matches it after a kill
    if best_val_probs is None and len(val_idx):  # resumed, or stopped inside the first epoch (None if stopped again)
        best_val_probs = predict_probabilities(model, images[val_idx], normalize, device, stop.is_set, cfg.tta)
    result.threshold = None if best_val_probs is None else not_sure_threshold(best_val_probs, labels[val_idx])
    if best_state is not None:
        best_val = next((e["val_accuracy"] for e in result.epochs if e["epoch"] == result.best_epoch), None)
        save_checkpoint(store.best_checkpoint, model, checkpoint_meta(
            cfg, data, model, epoch=result.best_epoch, val_accuracy=best_val, threshold=result.threshold))
        result.checkpoint = str(store.best_checkpoint)
    else:  # stopped inside the first epoch: keep what it learned so far
        result.checkpoint = str(save_checkpoint(store.best_checkpoint, model,
                                                checkpoint_meta(cfg, data, model, epoch=0, threshold=result.threshold)))
    _evaluate_test(result, model, data, test_normalize, device, store, emit)
    return result


def _save_insides(store: RunStore, epoch: int, model: nn.Module, first_layer: nn.Module | None,
                  embedded: tuple[torch.Tensor, torch.Tensor], normalize: Normalizer, device: torch.device,
                  tta: str) -> None:
    """What the Inside page shows of this epoch: the first convolution's kernels, and the test images'
    penultimate features in 2-D, fed as the network trained, and its answers to them (with the run's
    test-time augmentation; for display only, nothing is chosen by them)."""
    if first_layer is not None:
        store.save_epoch("filters", epoch, {"weight": first_layer.weight.float()})
    features, predicted = penultimate_features(model, embedded[0], normalize, device, tta)
    if not bool(features.isfinite().all()):
        return  # a diverging network: the loop ends the run as diverged at its next step event
    previous = store.history("embedding").get(epoch - 1, {}).get("points")
    store.save_epoch("embedding", epoch, {"points": project_2d(features, previous), "labels": embedded[1].long(),
                                          "predicted": predicted.long()})


def _test_report(model: nn.Module, data: ImageDataset, normalize: Normalizer, device: torch.device,
                 tta: str) -> tuple[torch.Tensor, dict[str, Any]]:
    """Test-set probabilities (on the CPU) and the report: loss, accuracy and the per-class numbers."""
    probs = predict_probabilities(model, data.test_images, normalize, device, tta=tta)
    labels = data.test_labels.to(device)
    test_loss, test_accuracy = loss_and_accuracy(probs, labels)
    report = class_report(probs.argmax(1), labels, data.num_classes)
    return probs.cpu(), {"test_accuracy": test_accuracy, "test_loss": test_loss, **report}


def _evaluate_test(result: TrainResult, model: nn.Module, data: ImageDataset, normalize: Normalizer,
                   device: torch.device, store: RunStore, emit: Callable[[Event], None]) -> None:
    """Fill the test-set numbers of `result` and close the run's record; the test set is touched only here
    (and after each epoch when the config asks, for the record only)."""
    emit(StatusEvent(RunStatus.EVALUATING, "Evaluating on the test set"))
    probs, report = _test_report(model, data, normalize, device, result.config["tta"])
    for key, value in report.items():
        setattr(result, key, value)
    result.test_probabilities, result.test_labels = probs, data.test_labels
    store.write_evaluation(report, probs, data.test_labels)
    _close_record(result, emit)


def _close_record(result: TrainResult, emit: Callable[[Event], None]) -> None:
    emit(EndEvent(result.status, result.message, {
        "test_accuracy": result.test_accuracy, "best_epoch": result.best_epoch, "train_seconds": result.train_seconds,
        "samples_per_second": result.samples_per_second, "checkpoint": result.checkpoint}))


def _finish_diverged(result: TrainResult, model: nn.Module, data: ImageDataset, test_normalize: Normalizer,
                     device: torch.device, best_state: dict | None, store: RunStore,
                     epoch: int, step: int, emit: Callable[[Event], None]) -> TrainResult:
    """The loss became NaN or infinite: end the run, keeping the last good checkpoint."""
    result.status = RunStatus.DIVERGED
    advice = "Lower the learning rate, add a schedule with warm-up (one-cycle), or use BatchNorm."
    if best_state is None:
        result.message = f"Diverged in epoch {epoch} (step {step}): the loss became NaN or infinite before any epoch finished. {advice}"
        _close_record(result, emit)
        return result
    model.load_state_dict(best_state)
    result.checkpoint = str(store.best_checkpoint)
    result.message = (f"Diverged in epoch {epoch} (step {step}): the loss became NaN or infinite. "
                      f"Kept the checkpoint of epoch {result.best_epoch}. {advice}")
    _evaluate_test(result, model, data, test_normalize, device, store, emit)
    return result


def resume(store: RunStore, on_event: Callable[[Event], None] | None = None,
           stop: threading.Event | None = None, dataset: ImageDataset | None = None) -> TrainResult:
    """Continue an interrupted or stopped run from its last finished epoch, with its own saved config."""
    claim_resume(store)
    return train(store.config(), on_event, stop, dataset, store)


def _epochs(n: int) -> str:
    return f"{n} epoch{'' if n == 1 else 's'}"


def claim_resume(store: RunStore, backend: str = "local") -> None:
    """Make this process the run's trainer for a resume (here, or on a Ray cluster: `backend`); ValueError when the
    run cannot be resumed."""
    status = store.status()["status"]
    if not store.has_training_state() or not store.transition(RESUMABLE, status=RunStatus.LOADING, **owner(),
                                                              backend=backend, stop_requested=False, message="Resuming"):
        raise ValueError(f"Run {store.id} is {status}; only an interrupted, stopped or failed run "
                         f"with a finished epoch can be resumed.")


REPORT_FIELDS = ("test_accuracy", "test_loss", "per_class_accuracy", "precision", "recall", "count", "confusion_matrix")


def _check_report(result: TrainResult, source: str) -> None:
    """DamagedRun unless the test report's per-class numbers and predictions fit the run's classes."""
    k = len(result.class_names)

    def number_or_none(v: Any) -> bool:
        return v is None or within(ANY_NUMBER, v)

    lists_fit = all(isinstance(getattr(result, f), list) and len(getattr(result, f)) == k
                    and all(number_or_none(v) for v in getattr(result, f))
                    for f in ("per_class_accuracy", "precision", "recall", "count"))
    matrix = result.confusion_matrix
    matrix_fits = isinstance(matrix, list) and len(matrix) == k and all(
        isinstance(row, list) and len(row) == k and all(within(COUNT, v) for v in row) for row in matrix)
    if not (lists_fit and matrix_fits and number_or_none(result.test_accuracy) and number_or_none(result.test_loss)):
        raise DamagedRun(f"{source}: its test report does not fit its {k} classes; train or evaluate it again.")
    probs, labels = result.test_probabilities, result.test_labels
    if probs is not None and not (probs.ndim == 2 and probs.shape[1] == k and labels.shape == (probs.shape[0],)
                                  and probs.is_floating_point() and bool(((labels >= 0) & (labels < k)).all())):
        result.test_probabilities = result.test_labels = None  # the page says the predictions are damaged


def load_result(store: RunStore) -> TrainResult:
    """A finished run's numbers as the engine returned them, read back from its folder; CheckpointError or
    DamagedRun, naming the file, when its description or test report cannot be what this project wrote."""
    status, cfg = store.status(), store.config()
    description = store.best_checkpoint.with_suffix(".json")
    meta = read_description(description) if description.is_file() else {}
    evaluation = store.evaluation() or {}
    result = TrainResult(
        status=status.get("status", "unknown"), message=status.get("message", ""), config=cfg.to_dict(),
        dataset=status.get("dataset", cfg.dataset), class_names=meta.get("class_names", []),
        device=status.get("device", "?"), params=meta.get("params", 0), epochs=store.epochs(), steps=store.steps(),
        best_epoch=status.get("best_epoch"), train_seconds=status.get("train_seconds") or 0.0,
        samples_per_second=status.get("samples_per_second") or 0.0,
        checkpoint=str(store.best_checkpoint) if store.best_checkpoint.is_file() else None, run_dir=str(store.path),
        threshold=meta.get("threshold"),
    )
    predictions = store.test_predictions()
    if predictions is not None:
        result.test_probabilities, result.test_labels = predictions
    for key in REPORT_FIELDS:  # the report _test_report wrote
        if key in evaluation:
            setattr(result, key, evaluation[key])
    if evaluation:
        _check_report(result, f"Run {store.id}")
    return result


def evaluate_checkpoint(store: RunStore, dataset: ImageDataset | None = None, device: str = "auto") -> None:
    """Write the test-set report of a run that has weights but no evaluation (an imported checkpoint)."""
    checkpoint = load_checkpoint(store.best_checkpoint)
    name = store.config().dataset
    if dataset is None and name not in DATASETS:
        raise DatasetUnavailable(f"it was trained on {name}, which this server does not have")
    data = dataset or load_dataset(name)
    if list(data.input_shape) != checkpoint.meta["input_shape"] or data.num_classes != checkpoint.meta["num_classes"]:
        raise CheckpointError(f"This checkpoint does not fit {data.name}'s images or classes.")
    torch_device = resolve_device(device)
    normalize = Normalizer(checkpoint.meta["mean"], checkpoint.meta["std"], torch_device)
    probs, report = _test_report(checkpoint.model.to(torch_device), data, normalize, torch_device, checkpoint.tta)
    store.write_evaluation(report, probs, data.test_labels)
    store.update_status(test_accuracy=report["test_accuracy"], device=describe_device(torch_device),
                        params=checkpoint.meta.get("params"))
