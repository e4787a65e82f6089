"""Taking runs elsewhere: zip round trip, refused zips, ONNX parity with onnxruntime, the standalone script."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from core.checkpoint import CheckpointError, load_checkpoint
from core.config import TrainConfig
from core.engine import evaluate_checkpoint, load_result, train
from core.export import import_checkpoint_zip, run_zip, standalone_script, to_onnx
from core.predict import predict_tensor
from core.store import RunStore


@pytest.fixture(scope="module")
def finished_run(small_mnist, tmp_path_factory):
    folder = tmp_path_factory.mktemp("export") / "run"
    result = train(TrainConfig(model="lenet-bn", epochs=1, batch_size=64, limit_train=1000, device="cpu", run_dir=str(folder)),
                   dataset=small_mnist)
    return RunStore(folder), result


def test_zip_round_trip_gives_the_same_predictions(finished_run, small_mnist, tmp_path):
    store, result = finished_run
    data = run_zip(store)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert {"config.json", "epochs.csv", "steps.csv", "best.safetensors", "best.json"} <= set(z.namelist())
        assert z.read("epochs.csv").decode().startswith("epoch,train_loss,train_accuracy,val_loss,val_accuracy")
        steps = list(csv.DictReader(io.StringIO(z.read("steps.csv").decode())))
        assert len(steps) == len(store.steps()) and {"loss", "lr", "conv1.grad_norm", "fc2.std"} <= set(steps[0])  # lenet-bn
        recorded = [s for s in store.steps() if "layers" in s][0]
        row = next(r for r in steps if int(r["step"]) == recorded["step"])
        assert float(row["conv1.grad_norm"]) == recorded["layers"]["conv1"]["grad_norm"]
    imported = import_checkpoint_zip(data, "my-run.zip", tmp_path)
    assert imported.status()["status"] == "imported"
    images = small_mnist.test_images[:200].float() / 255
    original = predict_tensor(load_checkpoint(store.best_checkpoint), images)
    again = predict_tensor(load_checkpoint(imported.best_checkpoint), images)
    assert torch.equal(original, again)
    evaluate_checkpoint(imported, dataset=small_mnist)  # what the Runs page does after an upload
    reread = load_result(imported)
    assert reread.test_accuracy == pytest.approx(result.test_accuracy) and reread.confusion_matrix == result.confusion_matrix


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, content in members.items():
            z.writestr(name, content)
    return buffer.getvalue()


def test_bad_checkpoint_zips_are_refused(finished_run, tmp_path):
    store, _ = finished_run
    weights = store.best_checkpoint.read_bytes()
    meta = store.best_checkpoint.with_suffix(".json").read_bytes()
    with pytest.raises(CheckpointError, match="not a readable zip"):
        import_checkpoint_zip(b"garbage", "x.zip", tmp_path)
    with pytest.raises(CheckpointError, match="holds no best.safetensors"):
        import_checkpoint_zip(_zip({"model.pt": b"\x80\x04pickle", "best.json": meta}), "pickle.zip", tmp_path)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        import_checkpoint_zip(_zip({"best.safetensors": weights[: len(weights) // 2], "best.json": meta}), "truncated.zip", tmp_path)
    wrong_arch = meta.replace(b'"model": "lenet-bn"', b'"model": "lenet5"')
    with pytest.raises(CheckpointError, match="does not fit a lenet5"):
        import_checkpoint_zip(_zip({"best.safetensors": weights, "best.json": wrong_arch}), "wrong.zip", tmp_path)
    tampered = bytearray(run_zip(store))
    tampered[len(tampered) // 2] ^= 0xFF  # flips a byte inside the weights: the zip's CRC check fails
    with pytest.raises(CheckpointError):
        import_checkpoint_zip(bytes(tampered), "tampered.zip", tmp_path)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_onnx_export_matches_torch_in_onnxruntime(finished_run, small_mnist, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    store, _ = finished_run
    checkpoint = load_checkpoint(store.best_checkpoint)
    path = to_onnx(checkpoint, tmp_path / "model.onnx")
    images = small_mnist.test_images[:256].float() / 255
    expected = predict_tensor(checkpoint, images).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(["probabilities"], {"images": images.numpy()})
    assert got.shape == (256, 10)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert (got.argmax(1) == expected.argmax(1)).all()
    # a run with test-time augmentation exports it too: the file answers as the run's own predictions do
    checkpoint.meta["config"]["tta"] = "flip-translate"
    session = ort.InferenceSession(str(to_onnx(checkpoint, tmp_path / "tta.onnx")), providers=["CPUExecutionProvider"])
    (got_tta,) = session.run(["probabilities"], {"images": images.numpy()})
    np.testing.assert_allclose(got_tta, predict_tensor(checkpoint, images).numpy(), atol=1e-5)
    assert not np.allclose(got_tta, got, atol=1e-3)


def test_exported_script_trains_with_plain_torch(tmp_path, mnist):
    cfg = TrainConfig(model="lenet5", epochs=1, batch_size=64, augment=("rotate",), limit_train=3000, val_split=0.05,
                      input_scaling="symmetric", tta="flip-translate")
    script = tmp_path / "retrain.py"
    script.write_text(standalone_script(cfg, "a test run"))
    assert "core" not in {line.split()[1].split(".")[0] for line in script.read_text().splitlines()
                          if line.startswith(("import ", "from "))}
    env = {**os.environ, "PYTHONPATH": ""}
    proc = subprocess.run([sys.executable, str(script), "--data", os.environ["PLAYGROUND_DATA_DIR"]], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    accuracy = float(proc.stdout.strip().splitlines()[-1].split()[-1])
    assert accuracy > 0.8


def test_script_export_refuses_user_data():
    with pytest.raises(ValueError, match="built-in dataset"):
        standalone_script(TrainConfig(dataset="/home/me/digits.csv"), "x")


def test_an_imported_zip_never_names_a_path_on_this_machine_as_its_data(finished_run, tmp_path):
    import json

    from core.data import DatasetUnavailable

    store, _ = finished_run
    meta = json.loads(store.best_checkpoint.with_suffix(".json").read_text())
    meta["dataset"] = meta["config"]["dataset"] = str(tmp_path / "someone-elses" / "upload.dataset.safetensors")
    members = {"best.safetensors": store.best_checkpoint.read_bytes(), "best.json": json.dumps(meta).encode()}
    first = import_checkpoint_zip(_zip(members), "run.zip", tmp_path / "runs")
    second = import_checkpoint_zip(_zip(members), "run.zip", tmp_path / "runs")  # same name, same second
    assert first.path != second.path
    assert first.config().dataset == "upload.dataset.safetensors (imported)"
    with pytest.raises(DatasetUnavailable, match="which this server does not have"):
        evaluate_checkpoint(first)
