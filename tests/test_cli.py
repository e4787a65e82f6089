"""The command lines as a user runs them: python -m core.train and python -m core.predict."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import train as train_cli

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, env=os.environ.copy(), timeout=300)


def test_train_json_reports_every_promised_field(tmp_path, mnist):
    proc = _run("core.train", "--dataset", "mnist", "--model", "lenet5", "--epochs", "1", "--batch-size", "64",
                "--optimizer", "adamw", "--lr", "0.003", "--weight-decay", "0.01", "--scheduler", "cosine",
                "--augment", "rotate,crop", "--limit-train", "2000", "--val-split", "0.05", "--seed", "1", "--device", "cpu",
                "--run-dir", str(tmp_path / "run"), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert 0.5 < result["test_accuracy"] <= 1
    assert len(result["per_class_accuracy"]) == 10
    assert sum(map(sum, result["confusion_matrix"])) == 10000
    epoch = result["epochs"][0]
    assert {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"} <= set(epoch)
    for key in ("train_seconds", "samples_per_second", "params", "device", "status", "checkpoint"):
        assert key in result
    assert result["status"] == "finished" and result["params"] == 61706
    assert Path(result["checkpoint"]).is_file() and Path(result["checkpoint"]).with_suffix(".json").is_file()
    assert "epoch 1" in proc.stderr  # the progress report goes to stderr

    # predict with that checkpoint: two real test digits and one broken file
    paths = []
    for i in range(2):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(mnist.test_images[i, 0].numpy()).save(path)
        paths.append(str(path))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    proc = _run("core.predict", "--checkpoint", result["checkpoint"], *paths, str(broken), "--json")
    assert proc.returncode == 2, proc.stderr  # non-zero because one file could not be read
    predictions = json.loads(proc.stdout)
    assert [p["path"] for p in predictions] == [*paths, str(broken)]
    for p in predictions[:2]:
        assert set(p) >= {"class", "index", "probability", "probabilities"}
        assert abs(sum(p["probabilities"]) - 1) < 1e-4 and p["probability"] == max(p["probabilities"])
        assert p["class"] == mnist.class_names[p["index"]]
    assert "error" in predictions[2] and "class" not in predictions[2]
    plain = _run("core.predict", "--checkpoint", result["checkpoint"], paths[0])
    assert plain.returncode == 0 and "digit0.png:" in plain.stdout and "%" in plain.stdout


@pytest.mark.parametrize("args", [["--optimizer", "lbfgs"], ["--epochs", "three"], ["--batch-size", "0"], ["--augment", "blur"]])
def test_wrong_arguments_get_argparse_exit_code_2(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main(args)
    assert exit_info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_wrong_arguments_from_the_shell():
    proc = _run("core.train", "--scheduler", "exponential")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_refused_csv_exits_nonzero_with_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("1," + ",".join(["0"] * 784) + "\n2," + ",".join(["0"] * 783) + "\n")
    proc = _run("core.train", "--dataset", str(bad), "--epochs", "1")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "row 2: 784 columns, expected 785" in lines[0]
    assert "Traceback" not in proc.stderr


def test_train_on_a_csv_file(tmp_path, mnist):
    rows = [[int(label)] + image.flatten().tolist() for image, label in zip(mnist.train_images[:600], mnist.train_labels[:600])]
    csv_path = tmp_path / "mnist_train.csv"
    csv_path.write_text("\n".join(",".join(map(str, r)) for r in rows))
    proc = _run("core.train", "--dataset", os.path.relpath(csv_path, REPO), "--epochs", "2", "--device", "cpu",
                "--run-dir", str(tmp_path / "run"), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["dataset"] == "mnist_train.csv" and result["class_names"] == [str(i) for i in range(10)]
    # given relative to where it ran, kept absolute: Resume from the app (another working folder) finds it
    assert json.loads((tmp_path / "run" / "config.json").read_text())["dataset"] == str(csv_path.resolve())
    assert sum(map(sum, result["confusion_matrix"])) == 120  # the 20 % held out as the test set


def test_train_on_a_folder_of_train_and_test_splits_with_a_progress_bar(tmp_path, mnist):
    for split, start, count in (("train", 0, 400), ("test", 1000, 100)):
        for i in range(start, start + count):
            folder = tmp_path / "digits" / split / str(int(mnist.train_labels[i]))
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mnist.train_images[i, 0].numpy()).save(folder / f"{i}.jpg", quality=90)
    proc = _run("core.train", "--dataset", str(tmp_path / "digits"), "--epochs", "1", "--device", "cpu",
                "--run-dir", str(tmp_path / "run"), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sum(map(sum, result["confusion_matrix"])) == 100  # test/ as given, not a hold-out of train/
    assert "reading digits" in proc.stderr and "500/500" in proc.stderr


def test_unknown_dataset_or_missing_file_is_one_clear_line(capsys):
    for dataset in ("imagenet", "no/such/file.csv"):
        assert train_cli.main(["--dataset", dataset]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "Unknown dataset" in err[0] and "CSV file, an image folder or a .zip of one" in err[0]


def test_a_recipe_gives_the_defaults_and_other_flags_override_them(tmp_path):
    listing = _run("core.train", "--list-recipes")
    assert listing.returncode == 0 and "course-lenet5-classic-xavier:" in listing.stdout and "98.49 %" in listing.stdout
    proc = _run("core.train", "--recipe", "course-lenet5-classic-xavier", "--epochs", "1", "--limit-train", "300",
                "--device", "cpu", "--run-dir", str(tmp_path / "run"), "--json")
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout.strip().splitlines()[-1])["config"]
    assert (cfg["model"], cfg["init"], cfg["input_scaling"], cfg["lr"], cfg["batch_size"], cfg["val_split"]) == (
        "lenet5-classic", "xavier", "unit", 0.5, 100, 0.0)
    assert cfg["epochs"] == 1 and cfg["limit_train"] == 300  # the flags given win


def test_the_gpu_recipe_and_its_peer_run_on_the_cpu_on_a_few_colour_images(tmp_path):
    rng = np.random.default_rng(0)
    for split, count in (("train", 48), ("test", 16)):
        for i in range(count):
            label = i % 2  # bright and dark images: learnable in one step or two
            folder = tmp_path / "tiny" / split / ("bright", "dark")[label]
            folder.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(120, 256, (32, 32, 3)) if label == 0 else rng.integers(0, 136, (32, 32, 3))
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.jpg", quality=90)
    ours = _run("core.train", "--recipe", "cifar-gpu", "--dataset", str(tmp_path / "tiny"), "--epochs", "2",
                "--batch-size", "16", "--device", "cpu", "--run-dir", str(tmp_path / "run"), "--json")
    assert ours.returncode == 0, ours.stderr
    result = json.loads(ours.stdout.strip().splitlines()[-1])
    assert result["config"]["model"] == "airbench" and sum(map(sum, result["confusion_matrix"])) == 16
    peer = subprocess.run([sys.executable, str(REPO / "bench" / "peer_airbench94.py"), "--data", str(tmp_path / "tiny"),
                           "--epochs", "1", "--device", "cpu", "--json"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert peer.returncode == 0, peer.stderr
    assert 0.0 <= json.loads(peer.stdout.strip().splitlines()[-1])["test_accuracy"] <= 1.0
