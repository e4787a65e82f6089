"""The run store: files, statuses, atomic writes, TensorBoard, and resume after a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.config import TrainConfig
from core.engine import train
from core.files import atomic_write
from core.store import RunStore, delete_run, find_run, list_runs

REPO = Path(__file__).resolve().parents[1]


def test_a_run_leaves_a_complete_record(small_mnist, tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=64, limit_train=800, device="cpu", run_dir=str(tmp_path / "run"))
    result = train(cfg, dataset=small_mnist)
    store = RunStore(tmp_path / "run")
    names = {p.name for p in store.path.iterdir()}
    assert {"config.json", "status.json", "epochs.json", "steps.json", "best.safetensors", "best.json",
            "last.safetensors", "last.json", "resume.safetensors", "evaluation.json", "evaluation.safetensors"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names)
    assert not [n for n in names if n.endswith(".tmp")]
    status = store.status()
    assert status["status"] == "finished" and status["test_accuracy"] == result.test_accuracy
    assert status["message"] == "Finished 2 epochs."
    assert store.config() == cfg
    assert [e["epoch"] for e in store.epochs()] == [1, 2]
    assert store.steps()[-1]["step"] == result.steps[-1]["step"]
    evaluation = store.evaluation()
    assert evaluation["confusion_matrix"] == result.confusion_matrix
    probabilities, labels = store.test_predictions()
    assert probabilities.shape == (1000, 10) and labels.tolist() == small_mnist.test_labels.tolist()
    assert find_run("run", tmp_path).path == store.path and list_runs(tmp_path)[0].path == store.path
    with pytest.raises(ValueError, match="already holds a run"):
        RunStore.create(cfg, "mnist", store.path)


def test_tensorboard_reads_the_scalars(small_mnist, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(TrainConfig(epochs=2, limit_train=640, batch_size=64, device="cpu", run_dir=str(tmp_path / "tb")), dataset=small_mnist)
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"histograms": 0})  # keep every histogram
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"step/train_loss", "step/learning_rate", "epoch/val_accuracy", "epoch/train_loss"} <= tags
    assert [e.step for e in events.Scalars("epoch/val_accuracy")] == [1, 2]
    assert {"layers/conv1/grad_norm", "layers/fc2/std", "layers/conv2/mean"} <= tags  # lenet-bn-fast: two linear layers
    histograms = set(events.Tags()["histograms"])
    assert histograms == {f"activations/{name}" for name in ("conv1", "conv2", "fc1", "fc2")}
    assert [e.step for e in events.Histograms("activations/conv1")] == [10, 20]  # one per epoch: 640 / 64 steps each


def test_a_failed_write_leaves_the_old_file_whole(tmp_path):
    target = tmp_path / "status.json"
    target.write_text('{"status": "running"}')

    def broken_writer(path):
        path.write_text('{"status": "fin')  # half a file, then the process dies
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, broken_writer)
    assert json.loads(target.read_text()) == {"status": "running"}
    assert list(tmp_path.iterdir()) == [target]


def test_a_dead_writer_reads_as_interrupted_and_delete_refuses_active_runs(tmp_path):
    store = RunStore.create(TrainConfig(), "mnist", tmp_path / "r")
    assert store.status()["status"] == "queued"  # written by this (live) process
    with pytest.raises(ValueError, match="still training"):
        delete_run(store)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    store.update_status(status="running", pid=int(dead.stdout))
    assert store.status()["status"] == "interrupted"
    delete_run(store)
    assert not store.path.exists()


def _train_cli(run_dir: Path, *extra: str) -> subprocess.Popen:
    args = ["--dataset", "mnist", "--model", "lenet5", "--epochs", "3", "--batch-size", "64", "--limit-train", "6000",
            "--val-split", "0.05", "--augment", "rotate,crop", "--seed", "11", "--device", "cpu", "--run-dir", str(run_dir)]
    return subprocess.Popen([sys.executable, "-m", "core.train", *args, *extra], cwd=REPO, env=os.environ.copy(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_then_resume_reaches_the_same_numbers(mnist, tmp_path):
    whole = _train_cli(tmp_path / "whole", "--json")
    out, err = whole.communicate(timeout=300)
    assert whole.returncode == 0, err
    reference = json.loads(out.strip().splitlines()[-1])

    victim = _train_cli(tmp_path / "killed")
    store = RunStore(tmp_path / "killed")
    deadline = time.monotonic() + 240
    while not (store.epochs() and store.has_training_state()):  # epoch 1 is on disk
        assert victim.poll() is None, victim.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    status = store.status()
    assert status["status"] == "interrupted"
    done = len(store.epochs())
    assert 1 <= done < 3  # curves up to the last finished epoch survive

    resumed = subprocess.run([sys.executable, "-m", "core.runs", "resume", str(store.path), "--json"], cwd=REPO,
                             env=os.environ.copy(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert result["status"] == "finished" and store.status()["status"] == "finished"
    assert result["test_accuracy"] == reference["test_accuracy"]
    assert result["confusion_matrix"] == reference["confusion_matrix"]
    for mine, theirs in zip(result["epochs"], reference["epochs"], strict=True):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            assert mine[key] == theirs[key], (mine["epoch"], key)


def test_runs_command_line_lists_shows_exports_and_deletes(small_mnist, tmp_path, monkeypatch, capsys):
    from core import runs as runs_cli

    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    result = train(TrainConfig(epochs=1, limit_train=320, batch_size=64, device="cpu"), dataset=small_mnist)
    run_id = Path(result.run_dir).name
    assert runs_cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert run_id in out and "finished" in out
    assert runs_cli.main(["show", run_id]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"]["test_accuracy"] == result.test_accuracy and shown["config"]["limit_train"] == 320
    assert runs_cli.main(["export", run_id, "--zip", str(tmp_path / "r.zip"), "--script", str(tmp_path / "r.py")]) == 0
    assert (tmp_path / "r.zip").stat().st_size > 1000 and "def main()" in (tmp_path / "r.py").read_text()
    assert runs_cli.main(["resume", run_id]) == 1  # a finished run has nothing to resume
    assert "only an interrupted, stopped or failed run" in capsys.readouterr().err
    assert runs_cli.main(["delete", run_id]) == 2  # needs --yes
    assert runs_cli.main(["delete", run_id, "--yes"]) == 0 and not Path(result.run_dir).exists()
    assert runs_cli.main(["show", "no-such-run"]) == 1
    assert "No run 'no-such-run'" in capsys.readouterr().err


def test_a_run_killed_after_its_last_epoch_resumes_straight_to_its_test(small_mnist, tmp_path):
    from core.engine import resume

    cfg = TrainConfig(epochs=1, batch_size=64, limit_train=640, device="cpu", run_dir=str(tmp_path / "r"))
    first = train(cfg, dataset=small_mnist)
    store = RunStore(tmp_path / "r")
    (store.path / "evaluation.json").unlink()  # as if killed while testing: the last epoch is on disk, no test yet
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    store.update_status(status="evaluating", pid=int(dead.stdout), pid_start=None)
    assert store.status()["status"] == "interrupted"
    again = resume(store, dataset=small_mnist)
    assert again.status == "finished" and again.test_accuracy == first.test_accuracy
    assert [e["epoch"] for e in store.epochs()] == [1] and store.evaluation() is not None


def test_a_process_that_reuses_a_dead_runs_pid_is_not_taken_for_its_trainer(tmp_path):
    from core.store import owner, process_alive

    me = owner()
    assert process_alive(me["pid"], me["pid_start"])
    parent = os.getppid()
    started = owner(parent)["pid_start"]
    assert process_alive(parent, started) and not process_alive(parent, started + 1)
    store = RunStore.create(TrainConfig(), "mnist", tmp_path / "r")
    store.update_status(status="running", pid=parent, pid_start=started + 1)  # the pid is alive, but another process
    assert store.status()["status"] == "interrupted"
