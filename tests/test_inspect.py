"""Looking inside a network: feature maps of every model, first-layer filters per epoch, saliency on the ink,
the "not sure" threshold, and the `core.inspect` command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from test_models import SHAPES

from core.checkpoint import load_checkpoint
from core.confidence import coverage_at, coverage_curve, is_sure, not_sure_threshold
from core.config import TrainConfig
from core.engine import train
from core.inspect import feature_maps, filter_grid, shown_layers
from core.models import MODELS, build_model
from core.predict import predict_files
from core.saliency import METHODS, attribution, gradcam_layer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(small_mnist, tmp_path_factory):
    """LeNet-5 trained two epochs on 2,700 real digits (about 95 % right), with a validation split for its threshold."""
    cfg = TrainConfig(model="lenet5", epochs=2, batch_size=64, lr=0.003, device="cpu",
                      run_dir=str(tmp_path_factory.mktemp("run")))
    result = train(cfg, dataset=small_mnist)
    assert result.test_accuracy > 0.9
    return result, load_checkpoint(result.checkpoint)


def expected_maps(model: torch.nn.Module, x: torch.Tensor) -> list[tuple[int, ...]]:
    """What every convolution and pooling layer outputs, recorded by plain forward hooks for comparison."""
    shapes = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:])))
             for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.MaxPool2d, torch.nn.AvgPool2d))]
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    return shapes


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist", "cifar10"])
def test_feature_maps_of_every_model_on_every_dataset(name, dataset):
    shape = SHAPES[dataset]
    model = build_model(name, shape, 10)
    image = torch.rand(shape)
    maps = feature_maps(model, [0.5] * shape[0], [0.25] * shape[0], image)
    assert [tuple(m.maps.shape) for m in maps] == expected_maps(model, ((image - 0.5) / 0.25)[None])
    assert [m.layer for m in maps] == list(shown_layers(model).values())
    convs = [m.layer for m in maps if m.kind == "conv"]
    assert convs == [f"conv{i}" for i in range(1, len(convs) + 1)]
    assert (len(convs) == 0) == (name == "mlp")


def test_the_threshold_is_the_midpoint_of_the_spreads_of_right_and_wrong_answers():
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.4, 0.6], [0.55, 0.45], [0.35, 0.65]])
    labels = torch.tensor([0, 0, 0, 1, 1, 0])  # right: 0.9 0.8 0.7 0.6; wrong: 0.55 0.65
    right, wrong = np.array([0.9, 0.8, 0.7, 0.6]), np.array([0.55, 0.65])
    expected = ((wrong.mean() + wrong.std()) + (right.mean() - right.std())) / 2
    assert not_sure_threshold(probs, labels) == pytest.approx(expected, abs=1e-6)
    assert not_sure_threshold(probs[:4], labels[:4]) is None  # no wrong answers to take a spread from
    assert is_sure(0.3, None) and is_sure(0.7, 0.7) and not is_sure(0.69, 0.7)
    assert not_sure_threshold(torch.full((6, 2), float("nan")), labels) is None  # a diverged model's


def test_feature_maps_and_saliency_leave_a_shared_model_to_other_threads(trained, small_mnist):
    """The pages share one rebuilt model per checkpoint between sessions: looking inside it in one thread must not
    disturb the predictions another thread makes with it at the same moment."""
    import threading

    from core.predict import predict_tensor

    _, checkpoint = trained
    images = small_mnist.test_images[:64].float() / 255
    expected = predict_tensor(checkpoint, images)
    errors, mismatches = [], []

    def inspect_it():
        try:
            for i in range(15):
                feature_maps(checkpoint.model, checkpoint.meta["mean"], checkpoint.meta["std"], images[i])
                attribution(checkpoint.model, checkpoint.meta["mean"], checkpoint.meta["std"], images[i], 3, "gradcam")
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            errors.append(exc)

    def predict_it():
        try:
            for _ in range(40):
                if not torch.allclose(predict_tensor(checkpoint, images), expected, atol=1e-6):
                    mismatches.append(1)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=inspect_it), threading.Thread(target=predict_it)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and not mismatches


def test_coverage_curve_keeps_the_surest_answers_first():
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    labels = torch.tensor([0, 1, 0, 1])  # sorted by top probability: 0.9 right, 0.8 right, 0.7 wrong, 0.6 wrong
    curve = coverage_curve(probs, labels)
    assert curve["threshold"] == pytest.approx([0.9, 0.8, 0.7, 0.6])
    assert curve["coverage"] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert curve["accuracy"] == pytest.approx([1.0, 1.0, 2 / 3, 0.5])
    assert coverage_at(probs, labels, 0.65) == pytest.approx((0.75, 2 / 3))  # a threshold keeps what reaches it
    at = float(probs[2, 1])  # 0.7 as float32 holds it, just below the float 0.7
    assert coverage_at(probs, labels, at)[0] == 0.75 and is_sure(at, at)
    assert coverage_at(probs, labels, 0.7)[0] == 0.5 and not is_sure(at, 0.7)  # both say "not sure" of it
    assert coverage_at(probs, labels, 0.95) == (0.0, None)
    many = torch.rand(5000, 3)
    assert len(coverage_curve(many, torch.zeros(5000, dtype=torch.long))["coverage"]) == 200  # a chart's width


def test_a_run_stores_its_threshold_and_predict_says_whether_it_is_sure(trained, small_mnist, tmp_path):
    result, checkpoint = trained
    assert 0 < result.threshold < 1 and checkpoint.meta["threshold"] == result.threshold
    paths = []
    for i in range(20):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(small_mnist.test_images[i, 0].numpy()).save(paths[-1])
    predictions = predict_files(checkpoint, paths)
    assert all(p["threshold"] == result.threshold for p in predictions)
    assert all(p["sure"] == (p["probability"] >= result.threshold) for p in predictions)


def test_a_checkpoint_saved_before_thresholds_still_loads_and_is_always_sure(trained, small_mnist, tmp_path):
    result, _ = trained
    old = tmp_path / "old"
    old.mkdir()
    meta = json.loads(Path(result.checkpoint).with_suffix(".json").read_text())
    del meta["threshold"]
    (old / "best.json").write_text(json.dumps(meta))
    (old / "best.safetensors").write_bytes(Path(result.checkpoint).read_bytes())
    checkpoint = load_checkpoint(old / "best.safetensors")
    path = tmp_path / "digit.png"
    Image.fromarray(small_mnist.test_images[0, 0].numpy()).save(path)
    [prediction] = predict_files(checkpoint, [str(path)])
    assert prediction["threshold"] is None and prediction["sure"] is True


def test_every_epochs_first_layer_filters_are_kept_from_the_initialisation_on(trained):
    from core.store import RunStore

    result, checkpoint = trained
    history = {epoch: t["weight"] for epoch, t in RunStore(Path(result.run_dir)).history("filters").items()}
    assert list(history) == [0, 1, 2]
    assert all(w.shape == (6, 1, 5, 5) for w in history.values())
    assert torch.equal(history[2], checkpoint.model[0].weight.detach())  # no validation gain lost: epoch 2 is kept
    assert not torch.equal(history[0], history[2])  # training moved them
    grid = filter_grid(history[2], cell=10)
    assert grid.shape == (14, 2 + 6 * 12) and grid.dtype == np.uint8  # one row of six kernels, 2 px between


def ink_share(saliency: torch.Tensor, image: torch.Tensor) -> float:
    """The share of the saliency that falls on the digit's strokes (its pixels and their neighbours)."""
    ink = F.max_pool2d((image > 0.2).float()[None], 3, 1, 1)[0, 0]
    return float((saliency * ink).sum() / saliency.sum())


def test_the_saliency_of_a_correct_digit_lies_mostly_on_its_ink(trained, small_mnist):
    """Gradient saliency may fall anywhere (integrated gradients from a black image is zero off the ink by
    construction, so it proves nothing here)."""
    _, checkpoint = trained
    model, meta = checkpoint.model, checkpoint.meta
    shares = []
    for i in range(10):
        image = small_mnist.test_images[i].float() / 255
        label = int(small_mnist.test_labels[i])
        if int(model.eval()(((image - meta["mean"][0]) / meta["std"][0])[None]).argmax()) != label:
            continue
        saliency = attribution(model, meta["mean"], meta["std"], image, label, "saliency")
        assert saliency.shape == (28, 28) and 0 <= float(saliency.min()) and float(saliency.max()) == pytest.approx(1)
        shares.append(ink_share(saliency, image))
    ink_area = float(np.mean([ink_share(torch.ones(28, 28), small_mnist.test_images[i].float() / 255) for i in range(10)]))
    assert len(shares) >= 8 and np.median(shares) > 0.5 > ink_area  # the strokes cover well under half the image


def test_the_gradient_methods_explain_the_answer_of_the_runs_test_time_views():
    """With tta="flip" the run answers with the mean of the image's and its mirror's logits: gradient saliency is
    that mean's gradient, not the plain pass's. Grad-CAM stays on the plain pass."""
    torch.manual_seed(0)
    model = build_model("resnet-mini", (3, 16, 16), 10).eval()
    image, mean, std = torch.rand(3, 16, 16), [0.5] * 3, [0.25] * 3
    x = image[None].clone().requires_grad_()
    normalised = (x - 0.5) / 0.25
    ((model(normalised) + model(normalised.flip(3))) / 2)[0, 3].backward()
    expected = x.grad[0].abs().amax(0)
    flipped = attribution(model, mean, std, image, 3, "saliency", tta="flip")
    torch.testing.assert_close(flipped, expected / expected.max())
    assert not torch.allclose(attribution(model, mean, std, image, 3, "saliency"), flipped, atol=1e-3)
    torch.testing.assert_close(attribution(model, mean, std, image, 3, "gradcam", tta="flip"),
                               attribution(model, mean, std, image, 3, "gradcam"))
    assert attribution(model, mean, std, image, 3, "integrated-gradients", tta="flip-translate").shape == (16, 16)


def test_grad_cam_looks_at_the_last_convolution_and_refuses_an_mlp():
    lenet = build_model("lenet5", (1, 28, 28), 10)
    assert gradcam_layer(lenet) is lenet[4]  # the second convolution's ReLU: what it passes on
    default = build_model("lenet-bn-fast", (1, 28, 28), 10)
    assert gradcam_layer(default) is default[6]  # after the second convolution's BatchNorm and ReLU
    resnet = build_model("resnet-mini", (3, 32, 32), 10)
    assert type(gradcam_layer(resnet)).__name__ == "BasicBlock"
    cam = attribution(resnet, [0.5] * 3, [0.25] * 3, torch.rand(3, 32, 32), 3, "gradcam")
    assert cam.shape == (32, 32)
    with pytest.raises(ValueError, match="has none"):
        attribution(build_model("mlp", (1, 28, 28), 10), [0.5], [0.25], torch.rand(1, 28, 28), 0, "gradcam")


@pytest.mark.parametrize("method", list(METHODS))
def test_the_command_line_writes_every_picture_and_reports_them(trained, small_mnist, tmp_path, method):
    result, _ = trained
    image = tmp_path / "digit.png"
    Image.fromarray(small_mnist.test_images[0, 0].numpy()).resize((56, 42)).save(image)  # not the model's size
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "core.inspect", "--checkpoint", result.checkpoint, str(image),
                           "--out", str(out), "--method", method, "--json"],
                          cwd=REPO, capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(report) >= {"class", "probability", "sure", "threshold", "feature_maps", "filters", "saliency"}
    assert report["threshold"] == result.threshold and report["sure"] == (report["probability"] >= result.threshold)
    assert [(m["layer"], m["channels"], m["height"], m["width"]) for m in report["feature_maps"]] == [
        ("conv1", 6, 28, 28), ("conv2", 16, 10, 10)]
    for m in report["feature_maps"]:
        assert Path(m["path"]) == out / f"maps-{m['layer']}.png" and Image.open(m["path"]).size[0] > 0
    assert Path(report["filters"]) == out / "filters.png" and (out / "saliency.png").is_file()
    saliency = np.load(report["saliency"])
    assert saliency.shape == (42, 56) and saliency.dtype == np.float32 and 0 <= saliency.min() <= saliency.max() <= 1


def test_the_command_line_refuses_a_missing_checkpoint_or_a_broken_image(trained, tmp_path):
    result, _ = trained
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    run = [sys.executable, "-m", "core.inspect", "--out", str(tmp_path / "out")]
    missing = subprocess.run([*run, "--checkpoint", str(tmp_path / "none.safetensors"), str(broken)], cwd=REPO,
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 1 and missing.stderr.startswith("error:") and "Traceback" not in missing.stderr
    bad = subprocess.run([*run, "--checkpoint", result.checkpoint, str(broken)], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr


def test_every_epoch_projects_the_test_images_penultimate_features_and_the_classes_pull_apart(trained, small_mnist):
    from core.store import RunStore

    result, checkpoint = trained
    history = RunStore(Path(result.run_dir)).history("embedding")
    assert list(history) == [0, 1, 2]
    labels = small_mnist.test_labels[:1000]  # the small set has 1,000 test images: all of them are embedded
    for epoch, t in history.items():
        assert t["points"].shape == (1000, 2) and torch.equal(t["labels"], labels)
    assert torch.equal(history[2]["predicted"], result.test_probabilities.argmax(1))  # the kept model's answers

    def separation(points: torch.Tensor) -> float:
        """Spread of the class means over the mean spread within a class."""
        means = torch.stack([points[labels == c].mean(0) for c in range(10)])
        within = torch.stack([points[labels == c].std(0).norm() for c in range(10)]).mean()
        return float(means.std(0).norm() / within)

    assert separation(history[2]["points"]) > 1.5 * separation(history[0]["points"])


@pytest.mark.parametrize("tta", ["none", "flip", "flip-translate"])
def test_the_embedding_takes_the_plain_pass_among_the_test_time_views_without_repeating_it(tta):
    """The features are each image's as it is, the answers the views' mean, and the network runs once a view."""
    from core.augment import TEST_TIME_AUGMENTATIONS
    from core.embedding import penultimate_features
    from core.metrics import EVAL_BATCH, predict_probabilities
    from core.preprocess import Normalizer

    torch.manual_seed(0)
    model = build_model("lenet5", (3, 32, 32), 10).eval()
    images = torch.randint(0, 256, (EVAL_BATCH + 7, 3, 32, 32), dtype=torch.uint8)  # two batches, the last partial
    normalize = Normalizer((0.5,) * 3, (0.25,) * 3)
    with torch.no_grad():
        plain = model[:-1](normalize(images.float() / 255))  # what the last layer receives from each image as it is
    passes = []
    counter = model.register_forward_pre_hook(lambda _module, inputs: passes.append(len(inputs[0])))
    features, predicted = penultimate_features(model, images, normalize, torch.device("cpu"), tta)
    counter.remove()
    views = {"none": 1, "flip": 2, "flip-translate": 6}[tta]
    assert set(TEST_TIME_AUGMENTATIONS) == {"none", "flip", "flip-translate"}  # a new one: add its count here
    assert sum(passes) == views * len(images)
    reference, _ = penultimate_features(model, images, normalize, torch.device("cpu"), "none")
    torch.testing.assert_close(features, reference)
    torch.testing.assert_close(features, plain)
    expected = predict_probabilities(model, images, normalize, torch.device("cpu"), tta=tta).argmax(1)
    assert torch.equal(predicted, expected)


def test_the_projection_keeps_its_axes_pointing_the_same_way_from_epoch_to_epoch():
    from core.embedding import project_2d

    features = torch.randn(500, 8) * torch.tensor([5.0, 3.0, 1, 1, 1, 1, 1, 1])
    first = project_2d(features)
    assert first.shape == (500, 2) and first[:, 0].var() > first[:, 1].var() > features[:, 2].var()
    assert torch.allclose(project_2d(-features, previous=first), first, atol=1e-4)  # flipped data, same picture
    assert project_2d(torch.randn(50, 1)).shape == (50, 2)  # one feature: the second axis is empty
