"""The training engine on real MNIST images: learning, seeds, events, stop, NaN, early stopping, checkpoints."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pytest
import torch

from core.checkpoint import CheckpointError, load_checkpoint
from core.config import TrainConfig
from core.engine import evaluate_checkpoint, train
from core.export import import_checkpoint_zip, run_zip
from core.optim import SCHEDULERS, lr_curve, lr_preview
from core.predict import predict_tensor
from core.store import RunStore


def _cfg(tmp_path, **changes) -> TrainConfig:
    """A small run; each call of train() makes its own folder under PLAYGROUND_RUNS_DIR."""
    values = dict(model="lenet5", optimizer="adam", lr=0.003, scheduler="onecycle", batch_size=64,
                  epochs=1, device="cpu")
    values.update(changes)
    return TrainConfig(**values)


def test_short_training_clearly_beats_chance(small_mnist, tmp_path):
    events = []
    result = train(_cfg(tmp_path, epochs=2), on_event=events.append, dataset=small_mnist)
    assert result.status == "finished"
    assert result.test_accuracy > 0.80  # chance is 0.10
    assert len(result.epochs) == 2 and result.best_epoch in (1, 2)
    assert result.epochs[1]["train_loss"] < result.epochs[0]["train_loss"]
    assert len(result.per_class_accuracy) == 10
    cm = torch.tensor(result.confusion_matrix)
    assert cm.sum() == 1000 and cm.diag().sum() / 1000 == pytest.approx(result.test_accuracy)
    assert result.samples_per_second > 0 and result.params == 61706
    steps = [e.step for e in events if e.kind == "step"]
    assert steps == sorted(steps) and steps[-1] == 2 * 43  # 2,700 training images / 64 per batch
    assert [e.epoch for e in events if e.kind == "epoch"] == [1, 2]
    assert result.test_probabilities.shape == (1000, 10)


def test_same_seed_gives_identical_numbers_on_the_cpu(small_mnist, tmp_path):
    cfg = _cfg(tmp_path, limit_train=1000, augment=("rotate", "crop"), seed=7)
    a, b = train(cfg, dataset=small_mnist), train(cfg, dataset=small_mnist)
    assert a.epochs[0]["train_loss"] == b.epochs[0]["train_loss"]
    assert a.test_accuracy == b.test_accuracy and a.confusion_matrix == b.confusion_matrix
    c = train(_cfg(tmp_path, limit_train=1000, augment=("rotate", "crop"), seed=8), dataset=small_mnist)
    assert c.epochs[0]["train_loss"] != a.epochs[0]["train_loss"]


def test_stop_ends_the_run_within_a_second_and_keeps_a_checkpoint(small_mnist, tmp_path):
    stop = threading.Event()

    def on_event(event):
        if event.kind == "step" and event.step >= 3:
            stop.set()

    cfg = _cfg(tmp_path, model="resnet20", epochs=50, batch_size=32)
    result = train(cfg, on_event=on_event, stop=stop, dataset=small_mnist)
    assert result.status == "stopped"
    assert result.steps[-1]["step"] <= 4
    assert result.checkpoint and load_checkpoint(result.checkpoint).meta["model"] == "resnet20"
    assert result.test_accuracy is not None


def test_stop_from_another_thread_ends_training_within_a_second(small_mnist, tmp_path):
    stop = threading.Event()
    asked, last_step = [], []

    def request_stop():
        asked.append(time.perf_counter())
        stop.set()

    def on_event(event):
        if event.kind == "step":
            last_step.append(time.perf_counter())

    timer = threading.Timer(1.0, request_stop)
    timer.start()
    result = train(_cfg(tmp_path, model="resnet20", epochs=50, batch_size=32, val_split=0.0), on_event=on_event,
                   stop=stop, dataset=small_mnist)
    assert result.status == "stopped"
    assert last_step[-1] - asked[0] < 1.0  # the last training step ended within a second of the request


def test_nan_loss_ends_as_diverged_and_keeps_the_last_good_checkpoint(small_mnist, tmp_path):
    """After epoch 1, every training-mode forward pass returns NaN, as an exploding update would."""
    poisoned = threading.Event()

    def nan_in_training(module, inputs, output):
        if poisoned.is_set() and module.training and isinstance(module, torch.nn.Linear):
            return output * float("nan")
        return None

    def after_epoch_one(event):
        if event.kind == "epoch" and event.epoch == 1:
            poisoned.set()

    handle = torch.nn.modules.module.register_module_forward_hook(nan_in_training)
    try:
        result = train(_cfg(tmp_path, epochs=3, limit_train=1000), on_event=after_epoch_one, dataset=small_mnist)
    finally:
        handle.remove()
    assert result.status == "diverged" and "NaN" in result.message
    assert "Kept the checkpoint of epoch 1" in result.message
    assert result.best_epoch == 1 and len(result.epochs) == 1
    assert result.test_accuracy > 0.5  # evaluated with the epoch-1 checkpoint
    assert load_checkpoint(result.checkpoint).meta["epoch"] == 1


def test_divergence_before_any_epoch_returns_a_status_not_an_exception(small_mnist, tmp_path):
    result = train(_cfg(tmp_path, model="mlp", optimizer="sgd", lr=10.0, momentum=0.9, scheduler="none",
                        limit_train=1000), dataset=small_mnist)
    assert result.status == "diverged"
    assert "learning rate" in result.message
    assert result.test_accuracy is None and result.checkpoint is None


def test_early_stopping_with_patience(small_mnist, tmp_path):
    # a learning rate this small leaves validation accuracy where it starts
    result = train(_cfg(tmp_path, epochs=10, patience=2, lr=1e-8, scheduler="none", limit_train=500), dataset=small_mnist)
    assert result.status == "finished" and "Early stopping: no better validation accuracy for 2 epochs" in result.message
    assert len(result.epochs) == 3 and result.best_epoch == 1


def test_checkpoint_round_trip_gives_the_same_predictions(small_mnist, tmp_path):
    result = train(_cfg(tmp_path, model="lenet-bn", limit_train=1000), dataset=small_mnist)
    checkpoint = load_checkpoint(result.checkpoint)
    assert checkpoint.meta["class_names"] == list(small_mnist.class_names)
    assert checkpoint.meta["config"]["model"] == "lenet-bn"
    images = small_mnist.test_images.float() / 255
    probs = predict_tensor(checkpoint, images)
    assert torch.allclose(probs, result.test_probabilities, atol=1e-5)


def test_checkpoint_of_another_architecture_or_class_count_is_refused(small_mnist, tmp_path):
    result = train(_cfg(tmp_path, limit_train=300), dataset=small_mnist)
    with pytest.raises(CheckpointError, match="is a lenet5, not a resnet20"):
        load_checkpoint(result.checkpoint, expect_model="resnet20")
    with pytest.raises(CheckpointError, match="predicts 10 classes, not 3"):
        load_checkpoint(result.checkpoint, expect_classes=3)


def test_tampered_checkpoints_are_refused(small_mnist, tmp_path):
    import json
    from pathlib import Path

    result = train(_cfg(tmp_path, limit_train=300), dataset=small_mnist)
    weights = Path(result.checkpoint)
    meta = weights.with_suffix(".json")
    description = json.loads(meta.read_text())
    description["model"] = "lenet-bn"  # JSON says one architecture, the weights are another
    meta.write_text(json.dumps(description))
    with pytest.raises(CheckpointError, match="does not fit a lenet-bn"):
        load_checkpoint(weights)
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(weights)


def test_invalid_config_is_refused_with_a_message():
    with pytest.raises(ValueError, match="Batch size must be"):
        TrainConfig(batch_size=0).validate()
    with pytest.raises(ValueError, match="Unknown optimizer"):
        TrainConfig(optimizer="lbfgs").validate()


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_every_schedule_can_be_plotted_before_training(scheduler):
    cfg = TrainConfig(epochs=4, lr=0.1, scheduler=scheduler, milestones=(2, 3), step_epochs=1)
    rates = lr_curve(cfg, steps_per_epoch=10)
    assert len(rates) == 40 and all(r >= 0 for r in rates)
    if scheduler == "none":
        assert set(rates) == {0.1}
    if scheduler == "step":
        assert rates[0] == pytest.approx(0.1) and rates[10] == pytest.approx(0.01)
    if scheduler == "multistep":
        assert rates[19] == pytest.approx(0.1) and rates[20] == pytest.approx(0.01) and rates[30] == pytest.approx(0.001)
    if scheduler == "onecycle":
        assert max(rates) == pytest.approx(0.1, rel=0.05) and rates[0] < 0.01 and rates[-1] < 0.001
    if scheduler == "cosine":
        assert rates[0] == pytest.approx(0.1) and rates[-1] < 0.001


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_a_schedules_preview_draws_the_same_curve_in_fewer_steps(scheduler):
    cfg = TrainConfig(epochs=40, lr=0.1, scheduler=scheduler, milestones=(10, 30), step_epochs=5)
    epochs, rates = lr_preview(cfg, steps_per_epoch=500)  # 20,000 steps, previewed in 2,000
    full = lr_curve(cfg, steps_per_epoch=500)
    assert len(rates) == len(epochs) == 2000 and epochs[0] == 0 and epochs[-1] == pytest.approx(40, abs=0.05)
    for epoch, rate in zip(epochs, rates, strict=True):
        assert rate == pytest.approx(full[round(epoch * 500)], abs=0.002), epoch


def test_confident_mistakes_are_the_surest_wrong_answers():
    from core.metrics import confident_mistakes

    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    labels = torch.tensor([0, 0, 1, 1])
    order, n_wrong = confident_mistakes(probs, labels)
    assert n_wrong == 2 and order.tolist() == [1, 2]


def test_curves_report_plain_cross_entropy_even_with_label_smoothing(small_mnist, tmp_path):
    # with smoothing 0.3 over 10 classes the smoothed loss can never go below its target's entropy, about 1.18
    result = train(_cfg(tmp_path, epochs=2, label_smoothing=0.3), dataset=small_mnist)
    last = result.epochs[-1]
    assert last["train_loss"] < 0.8 and all(s["loss"] < 1.18 for s in result.steps[-5:])
    assert abs(last["train_loss"] - last["val_loss"]) < 0.5  # the same quantity on both curves


def test_a_model_that_cannot_take_the_images_is_refused_before_a_run_exists(small_mnist, tmp_path):
    from core.data import ImageDataset

    wide = ImageDataset("wide", torch.zeros(64, 1, 40, 28, dtype=torch.uint8), torch.arange(64) % 2,
                        torch.zeros(16, 1, 40, 28, dtype=torch.uint8), torch.arange(16) % 2, ("a", "b"), (0.5,), (0.5,))
    tiny = ImageDataset("tiny", torch.zeros(64, 1, 10, 10, dtype=torch.uint8), torch.arange(64) % 2,
                        torch.zeros(16, 1, 10, 10, dtype=torch.uint8), torch.arange(16) % 2, ("a", "b"), (0.5,), (0.5,))
    for data, model in ((wide, "lenet5"), (wide, "lenet-bn"), (tiny, "lenet-bn")):
        folder = tmp_path / f"{data.name}-{model}"
        with pytest.raises(ValueError, match=rf"{model} cannot take images of 1 x {data.input_shape[1]} x "
                                             rf"{data.input_shape[2]} pixels; .*resnet"):
            train(_cfg(tmp_path, model=model, run_dir=str(folder)), dataset=data)
        assert not folder.exists()


def test_long_curves_are_thinned_to_what_a_chart_shows():
    from core.metrics import thinned

    assert thinned(5) == [0, 1, 2, 3, 4]
    kept = thinned(25_000)
    assert len(kept) == 800 and kept[0] == 0 and kept[-1] == 24_999 and kept == sorted(set(kept))


@pytest.mark.parametrize("scaling, mean, std", [("unit", [0.0], [1.0]), ("symmetric", [0.5], [0.5])])
def test_input_scaling_is_what_the_model_is_fed_and_what_its_checkpoint_says(small_mnist, tmp_path, scaling, mean, std):
    result = train(_cfg(tmp_path, input_scaling=scaling, limit_train=500), dataset=small_mnist)
    checkpoint = load_checkpoint(result.checkpoint)
    assert checkpoint.meta["mean"] == mean and checkpoint.meta["std"] == std
    probs = predict_tensor(checkpoint, small_mnist.test_images.float() / 255)
    assert torch.allclose(probs, result.test_probabilities, atol=1e-5)  # predict feeds it the same inputs


def test_best_by_loss_keeps_the_epoch_of_the_lowest_validation_loss(small_mnist, tmp_path):
    result = train(_cfg(tmp_path, epochs=4, lr=0.05, optimizer="sgd", scheduler="none", best_by="loss",
                        limit_train=1000), dataset=small_mnist)
    losses = {e["epoch"]: e["val_loss"] for e in result.epochs}
    assert result.best_epoch == min(losses, key=losses.get)


def test_auto_picks_cuda_then_apples_mps_then_the_cpu(monkeypatch):
    from core.device import describe_device, resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto").type == "mps" and describe_device(torch.device("mps")) == "Apple GPU (MPS)"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(ValueError, match="MPS was asked for"):
        resolve_device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"


def test_testing_after_each_epoch_is_reported_and_changes_nothing_else(small_mnist, tmp_path):
    cfg = _cfg(tmp_path, epochs=2, limit_train=1000, val_split=0.0, seed=3)
    plain = train(cfg, dataset=small_mnist)
    tested = train(dataclasses.replace(cfg, test_each_epoch=True), dataset=small_mnist)
    assert all(e.get("test_accuracy") is None for e in plain.epochs)
    assert [e["train_loss"] for e in tested.epochs] == [e["train_loss"] for e in plain.epochs]  # the same training
    assert tested.test_accuracy == plain.test_accuracy and tested.best_epoch == plain.best_epoch == 2
    assert tested.epochs[-1]["test_accuracy"] == pytest.approx(tested.test_accuracy)  # no validation: the last epoch is kept
    assert 0.1 < tested.epochs[0]["test_accuracy"] < tested.epochs[1]["test_accuracy"]


def test_every_reported_step_carries_each_layers_activations_and_gradient_norm(small_mnist, tmp_path):
    result = train(_cfg(tmp_path, limit_train=640, batch_size=64, epochs=2), dataset=small_mnist)
    recorded = [s for s in result.steps if "layers" in s]  # every other reported step, and each epoch's last
    assert [s["step"] for s in recorded] == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20] and len(result.steps) == 20
    assert all(list(s["layers"]) == ["conv1", "conv2", "fc1", "fc2", "fc3"] for s in recorded)
    for s in recorded:
        assert all(v["grad_norm"] > 0 and v["std"] > 0 and abs(v["mean"]) < 100 for v in s["layers"].values())
    assert RunStore(Path(result.run_dir)).steps() == result.steps  # what the Train page draws


def test_the_gradient_norms_show_why_the_classic_lenet_barely_learns(small_mnist, tmp_path):
    """Sigmoids with PyTorch's default initialisation: the first layers' gradients are orders of magnitude below the
    last one's (the course's vanishing gradients); ReLU with max pooling closes most of that gap."""
    def ratio(model: str) -> float:
        steps = train(_cfg(tmp_path, model=model, optimizer="sgd", lr=0.5, momentum=0.0, scheduler="none", batch_size=256,
                           limit_train=512), dataset=small_mnist).steps
        first = next(s["layers"] for s in steps if "layers" in s)
        return first["fc3"]["grad_norm"] / first["conv1"]["grad_norm"]

    classic, relu = ratio("lenet5-classic"), ratio("lenet5")
    assert classic > 300 and relu < classic / 10, (classic, relu)


def test_a_test_scaling_mismatch_changes_only_the_test_figures(small_mnist, tmp_path):
    """The ResNet lecture fed its test images on [0, 1] while it trained on [-1, 1]: replayed, the training, the
    validation and the kept checkpoint are the very same; only the test figures measure the mismatch."""
    cfg = _cfg(tmp_path, epochs=2, limit_train=1000, input_scaling="symmetric", test_each_epoch=True, seed=2)
    right = train(cfg, dataset=small_mnist)
    mismatched = train(dataclasses.replace(cfg, test_scaling="unit"), dataset=small_mnist)
    assert [e["val_loss"] for e in mismatched.epochs] == [e["val_loss"] for e in right.epochs]
    assert load_checkpoint(mismatched.checkpoint).meta["mean"] == [0.5]  # predict feeds what it trained on
    assert mismatched.test_accuracy < right.test_accuracy - 0.05
    assert all(m["test_accuracy"] != r["test_accuracy"] for m, r in zip(mismatched.epochs, right.epochs))


def test_the_course_resnet_runs_as_the_lecture_did_and_corrected(tmp_path):
    from core.data import ImageDataset
    from core.recipes import RECIPES, lecture

    g = torch.Generator().manual_seed(0)
    tiny = ImageDataset("cifar10", torch.randint(0, 256, (64, 3, 32, 32), generator=g, dtype=torch.uint8),
                        torch.arange(64) % 10, torch.randint(0, 256, (20, 3, 32, 32), generator=g, dtype=torch.uint8),
                        torch.arange(20) % 10, tuple(f"c{i}" for i in range(10)), (0.5,) * 3, (0.25,) * 3)
    for name, scaling in (("course-resnet-cifar", "unit"), ("course-resnet-cifar-corrected", "same")):
        cfg = dataclasses.replace(RECIPES[name].train_config(), epochs=1, device="cpu")
        assert cfg.test_scaling == scaling and lecture(cfg)[0] == "course-resnet-cifar"
        result = train(cfg, dataset=tiny)
        assert result.status == "finished" and result.epochs[0]["test_accuracy"] is not None


@pytest.mark.parametrize("model, momentum", [("lenet5", 0.9), ("lenet-bn", 0.0), ("lenet-bn", 0.5)])
def test_a_network_blowing_up_ends_as_diverged_never_as_failed(small_mnist, tmp_path, model, momentum):
    """What only records a run (histograms, the embedding, the threshold) must never fail it: activations too large
    for a histogram, features an SVD refuses and NaN probabilities are skipped, and the loop calls it diverged."""
    result = train(_cfg(tmp_path, model=model, optimizer="sgd", lr=10.0, momentum=momentum, scheduler="none",
                        batch_size=500, limit_train=1000, epochs=3), dataset=small_mnist)
    assert result.status in ("diverged", "finished"), result.message


def test_with_a_validation_split_the_test_after_each_epoch_still_never_chooses(small_mnist, tmp_path):
    result = train(_cfg(tmp_path, epochs=4, limit_train=1000, lr=0.05, optimizer="sgd", scheduler="none",
                        test_each_epoch=True, seed=4), dataset=small_mnist)
    by_val = max(result.epochs, key=lambda e: e["val_accuracy"])["epoch"]
    assert result.best_epoch == by_val and all(e["test_accuracy"] is not None for e in result.epochs)


def test_a_batchnorm_hidden_layer_refuses_batches_of_one_with_a_message(small_mnist, tmp_path):
    with pytest.raises(ValueError, match="batches of at least 2 images"):
        train(TrainConfig(model="lenet-bn-small", batch_size=1, limit_train=8, device="cpu", run_dir=str(tmp_path / "one")),
              dataset=small_mnist)
    # 601 images in batches of 100: the last image alone is left out of the epoch rather than fail
    result = train(TrainConfig(model="lenet-bn-small", batch_size=100, limit_train=601, device="cpu",
                               run_dir=str(tmp_path / "odd")), dataset=small_mnist)
    assert result.status == "finished" and result.steps[-1]["step"] == 6


def test_test_time_augmentation_feeds_every_prediction_of_the_run(small_mnist, tmp_path):
    """tta="flip": the test probabilities are the softmax of the mean of each image's and its mirror's logits,
    from the kept checkpoint; validation uses it too, the Draw page's predictions too; training is unchanged."""
    from core.preprocess import Normalizer

    cfg = _cfg(tmp_path, epochs=1, limit_train=1000)
    plain = train(cfg, dataset=small_mnist)
    assert plain.message == "Finished 1 epoch."
    flipped = train(dataclasses.replace(cfg, tta="flip"), dataset=small_mnist)
    assert [e["train_loss"] for e in flipped.epochs] == [e["train_loss"] for e in plain.epochs]
    assert [e["val_loss"] for e in flipped.epochs] != [e["val_loss"] for e in plain.epochs]
    with pytest.raises(ValueError, match="at least 2 x 2 pixels"):
        train(dataclasses.replace(cfg, model="mlp", tta="flip-translate"), dataset=dataclasses.replace(
            small_mnist, train_images=small_mnist.train_images[:, :, :1], test_images=small_mnist.test_images[:, :, :1]))
    checkpoint = load_checkpoint(flipped.checkpoint)
    model = checkpoint.model.eval()
    x = Normalizer(checkpoint.meta["mean"], checkpoint.meta["std"])(small_mnist.test_images.float() / 255)
    with torch.no_grad():
        expected = ((model(x) + model(x.flip(3))) / 2).softmax(1)
    torch.testing.assert_close(flipped.test_probabilities, expected)
    assert not torch.allclose(plain.test_probabilities, expected)
    # the same weights imported elsewhere are evaluated with the run's test-time augmentation too
    imported = import_checkpoint_zip(run_zip(RunStore(Path(flipped.run_dir))), "flipped.zip", tmp_path / "imported")
    evaluate_checkpoint(imported, dataset=small_mnist, device="cpu")
    probabilities, _ = imported.test_predictions()
    torch.testing.assert_close(probabilities, expected)
    answers = RunStore(Path(flipped.run_dir)).history("embedding")[1]["predicted"]  # the Inside page's embedding
    assert torch.equal(answers, expected[:len(answers)].argmax(1))
    digits = small_mnist.test_images[:4].float() / 255
    with torch.no_grad():
        torch.testing.assert_close(predict_tensor(checkpoint, digits), predict_tensor(checkpoint, digits.flip(3)))
