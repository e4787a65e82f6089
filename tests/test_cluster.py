"""Runs on a Ray cluster started by the test on this machine: a head that trains nothing and two worker nodes that
advertise one GPU each (torch sees none, so each run trains on the CPU). Skipped where Ray is not installed
(requirements-cluster.txt adds it; CI installs it)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster as RayCluster  # noqa: E402

from core.cluster import ADDRESS_VAR  # noqa: E402
from core.config import TrainConfig  # noqa: E402
from core.data import save_dataset  # noqa: E402
from core.scheduler import TRAINING, Scheduler, scheduler, shutdown  # noqa: E402
from core.settings import HostSettings  # noqa: E402
from core.store import RunStatus, RunStore  # noqa: E402
from core.workspaces import LOCAL  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.test_app import open_page  # noqa: E402
from tests.test_scheduler import stops_within_a_second, wait_for  # noqa: E402

# lr pinned: the default suits the default network; these nine steps of an MLP learn at 0.01 (45 to 65 %, seeds 0-3)
SHORT = dict(epochs=1, batch_size=64, limit_train=600, val_split=0.05, model="mlp", lr=0.01, device="auto")
ENDED = {RunStatus.FINISHED, RunStatus.STOPPED, RunStatus.FAILED, RunStatus.INTERRUPTED, RunStatus.CANCELLED}


@pytest.fixture(scope="module")
def ray_cluster():
    cluster = RayCluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(2):
        cluster.add_node(num_cpus=1, num_gpus=1)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture
def on_cluster(ray_cluster, tmp_path, monkeypatch, mnist):
    """A scheduler of a store of its own that starts every run on the test's cluster."""
    shutdown()
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    made = []

    def make(**settings) -> Scheduler:
        made.append(Scheduler(HostSettings(ray_address=ray_cluster.address, **settings), interval=0.2))
        assert made[-1].cluster.connected(60), made[-1].cluster.problem
        return made[-1]

    yield make
    for sched in made:
        sched.close()


def test_four_runs_spread_over_both_nodes_two_at_a_time_and_their_files_come_back(on_cluster):
    sched = on_cluster()
    runs = [sched.submit(TrainConfig(**{**SHORT, "seed": seed}), LOCAL, "mnist") for seed in range(4)]
    most = 0
    deadline = time.monotonic() + 300
    while not all(r.status()["status"] in ENDED for r in runs):
        assert time.monotonic() < deadline, [r.status()["status"] for r in runs]
        most = max(most, sum(r.status()["status"] in TRAINING for r in runs))
        time.sleep(0.05)
    statuses = [r.status() for r in runs]
    assert [s["status"] for s in statuses] == [RunStatus.FINISHED] * 4, [s["message"] for s in statuses]
    assert most == 2  # one run per node: each advertises one GPU and each run asks for one
    assert {s["backend"] for s in statuses} == {"ray"} and len({s["node_id"] for s in statuses}) == 2
    for run in runs:  # everything the pages read came back to this machine's store
        assert run.best_checkpoint.is_file() and run.has_training_state() and run.epochs() and run.steps()
        assert run.test_predictions() is not None and run.status()["pid"] is None
        assert run.evaluation()["test_accuracy"] == run.status()["test_accuracy"] > 0.3


def test_the_cluster_view_lists_its_nodes_and_gpus(on_cluster):
    sched = on_cluster()
    sched.entries()  # one tick: connected, nodes read
    nodes = sched.cluster.nodes()
    assert sched.cluster.problem is None
    assert len(nodes) == 2 and all(n.gpus == 1 and n.cpus == 1 for n in nodes)
    assert sched.cluster.capacity("cuda") == 2 and sched.cluster.device_for(TrainConfig()) == "cuda"
    cpu_run = TrainConfig(**{**SHORT, "device": "cpu"})  # asks for 2 CPUs; each node has 1
    with pytest.raises(ValueError, match="No alive node .* can take a cpu run .*choose another device"):
        sched.submit(cpu_run, LOCAL, "mnist")
    assert sched.cluster.why_waiting(cpu_run).endswith("it starts when one joins.")


def test_stop_reaches_the_actor_within_a_second(on_cluster):
    sched = on_cluster()
    run = sched.submit(TrainConfig(**{**SHORT, "epochs": 30, "limit_train": None, "model": "lenet5"}), LOCAL, "mnist")
    wait_for(lambda: (run.status().get("step") or 0) > 0, 180, "the first steps on the cluster")
    run.update_status(name="mine", tags=["fast"])  # a learner renames it meanwhile: the node's copy must not undo it
    time.sleep(1)
    stops_within_a_second(sched, run)
    assert run.status()["name"] == "mine" and run.status()["tags"] == ["fast"]


def test_a_killed_actor_leaves_its_run_interrupted_and_resume_reaches_the_same_numbers(on_cluster):
    sched = on_cluster()
    three = dict(SHORT, epochs=3, limit_train=3000)
    copies = f"playground-run-{socket.gethostname()}@*"  # the actors' folders on this machine
    before = set(Path(tempfile.gettempdir()).glob(copies))
    whole = sched.submit(TrainConfig(**three), LOCAL, "mnist")
    victim = sched.submit(TrainConfig(**three), LOCAL, "mnist")
    wait_for(lambda: victim.has_training_state() and victim.epochs(), 180, "the victim's epoch 1 back here")
    actor = next(worker.actor for path, worker in sched._workers if path == victim.path)
    folders = set(Path(tempfile.gettempdir()).glob(copies)) - before
    assert folders  # the victim's copy of its run (and the other's, unless it has finished)
    ray.kill(actor)
    wait_for(lambda: victim.status()["status"] == RunStatus.INTERRUPTED, 30, "the interrupted status")
    assert "Ray actor" in victim.status()["message"] and victim.status()["node"] in victim.status()["message"]
    wait_for(lambda: whole.status()["status"] in ENDED, 180, "the uninterrupted run")
    sched.resume(victim, LOCAL)
    wait_for(lambda: victim.status()["status"] in ENDED, 180, "the resumed run")
    assert victim.status()["status"] == whole.status()["status"] == RunStatus.FINISHED
    assert [e["epoch"] for e in victim.epochs()] == [1, 2, 3]
    for mine, theirs in zip(victim.epochs(), whole.epochs(), strict=True):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            assert mine[key] == theirs[key], (mine["epoch"], key)
    assert victim.status()["test_accuracy"] == whole.status()["test_accuracy"]
    assert not any(folder.exists() for folder in folders)  # the killed actor's copy: removed by the next actor


def test_only_the_folders_of_this_machines_ended_actors_are_removed(tmp_path):
    from core.cluster import remove_dead_actors_folders

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    host = socket.gethostname()
    dead, alive, elsewhere = (tmp_path / f"playground-run-{name}-abc" for name in
                              (f"{host}@{ended.pid}", f"{host}@{os.getpid()}", f"{host}-2@{ended.pid}"))
    for folder in (dead, alive, elsewhere):
        (folder / "run").mkdir(parents=True)
    remove_dead_actors_folders(tmp_path)
    assert not dead.exists() and alive.exists() and elsewhere.exists()


def test_a_users_dataset_travels_through_the_object_store(on_cluster, small_mnist, tmp_path):
    sched = on_cluster()
    saved = save_dataset(small_mnist, tmp_path / "uploads")
    run = sched.submit(TrainConfig(**{**SHORT, "dataset": str(saved), "limit_train": None}), LOCAL, "my digits")
    wait_for(lambda: run.status()["status"] in ENDED, 180, "the run on the uploaded data")
    assert run.status()["status"] == RunStatus.FINISHED, run.status()["message"]
    probabilities, labels = run.test_predictions()
    assert len(labels) == len(small_mnist.test_labels) == 1000  # its test set, not the node's MNIST


def test_an_unreachable_address_is_named_once_and_runs_wait(tmp_path, monkeypatch, mnist):
    shutdown()
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    sched = Scheduler(HostSettings(ray_address="127.0.0.1:9"))
    try:
        assert not sched.cluster.connected(30)
        run = sched.submit(TrainConfig(**SHORT), LOCAL, "mnist")
        time.sleep(1.5)
        assert "127.0.0.1:9" in sched.cluster.problem and ADDRESS_VAR in sched.cluster.problem
        assert run.status()["status"] == RunStatus.QUEUED  # kept in the queue until the cluster answers
    finally:
        sched.close()


def test_the_command_line_trains_on_the_cluster(ray_cluster, tmp_path):
    env = {**os.environ, ADDRESS_VAR: ray_cluster.address}
    done = subprocess.run([sys.executable, "-m", "core.train", "--model", "mlp", "--epochs", "2", "--limit-train", "600",
                           "--run-dir", str(tmp_path / "run"), "--json"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    status = RunStore(tmp_path / "run").status()
    assert status["backend"] == "ray" and status["status"] == RunStatus.FINISHED and status["node_id"]
    assert result["test_accuracy"] == status["test_accuracy"] and len(result["epochs"]) == 2
    assert "epoch 1:" in done.stderr and "epoch 2:" in done.stderr


def test_the_train_and_teacher_pages_show_the_cluster(ray_cluster, tmp_path, monkeypatch, mnist):
    shutdown()
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv(ADDRESS_VAR, ray_cluster.address)
    monkeypatch.setenv("PLAYGROUND_TEACHER_KEY", "chalk")
    try:
        assert scheduler().cluster.connected(60)  # the server's: it connects beside its first pages
        train = open_page("pages/3_Train.py")
        assert not train.exception, [e.message for e in train.exception]
        assert "on the Ray cluster" in " ".join(m.value for m in train.markdown)
        [nodes] = train.dataframe
        assert len(nodes.value) == 2 and list(nodes.value["GPUs"]) == [1, 1]
        teacher = open_page("pages/7_Teacher.py")
        teacher.text_input[0].input("chalk").run()
        assert not teacher.exception, [e.message for e in teacher.exception]
        assert "The cluster" in [h.value for h in teacher.subheader]
        assert any(len(df.value) == 2 and "runs training" in df.value.columns for df in teacher.dataframe)
    finally:
        shutdown()


def test_the_train_page_says_why_runs_wait_when_the_cluster_does_not_answer(tmp_path, monkeypatch, mnist):
    shutdown()
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv(ADDRESS_VAR, "127.0.0.1:9")
    try:
        assert not scheduler().cluster.connected(30)
        at = open_page("pages/3_Train.py")
        at.button[0].click().run()
        assert not at.exception, [e.message for e in at.exception]
        warnings = [w.value for w in at.warning if ADDRESS_VAR in w.value and "127.0.0.1:9" in w.value]
        assert warnings and all("wait in the queue" in w for w in warnings)  # by the queued run, and in The cluster
        assert any("Queued" in i.value for i in at.info)
    finally:
        shutdown()


def test_the_runs_command_line_stops_a_ray_run_without_signalling_its_owner(on_cluster):
    sched = on_cluster()
    run = sched.submit(TrainConfig(**{**SHORT, "epochs": 30, "limit_train": None, "model": "lenet5"}), LOCAL, "mnist")
    wait_for(lambda: (run.status().get("step") or 0) > 0, 180, "the first steps on the cluster")
    assert run.status()["pid"] == os.getpid()  # the owner of a Ray run is this process: a SIGTERM would end it
    done = subprocess.run([sys.executable, "-m", "core.runs", "stop", str(run.path)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: run.status()["status"] == RunStatus.STOPPED, 60, "the stopped status")
    assert "Stopped by request" in run.status()["message"]


def test_a_dataset_the_node_cannot_read_fails_the_run_with_the_reason(on_cluster, tmp_path):
    sched = on_cluster()
    broken = tmp_path / "broken.dataset.safetensors"
    broken.write_bytes(b"not a dataset")
    run = sched.submit(TrainConfig(**{**SHORT, "dataset": str(broken)}), LOCAL, "broken")
    wait_for(lambda: run.status()["status"] in ENDED, 120, "the run to end")
    assert run.status()["status"] == RunStatus.FAILED and "dataset" in run.status()["message"]


def test_sigterm_stops_a_command_line_run_on_the_cluster_as_it_does_a_local_one(ray_cluster, tmp_path):
    env = {**os.environ, ADDRESS_VAR: ray_cluster.address}
    cli = subprocess.Popen([sys.executable, "-m", "core.train", "--model", "lenet5", "--epochs", "30",
                            "--run-dir", str(tmp_path / "run")], cwd=REPO, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    store = RunStore(tmp_path / "run")
    wait_for(lambda: (store.path / "status.json").is_file() and (store.status().get("step") or 0) > 0, 180,
             "the first steps on the cluster")
    cli.send_signal(signal.SIGTERM)
    out, err = cli.communicate(timeout=120)
    assert cli.returncode == 0, err[-3000:]
    assert store.status()["status"] == RunStatus.STOPPED and store.best_checkpoint.is_file()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_two_students_train_at_once_on_the_cluster_and_the_teacher_sees_its_nodes(ray_cluster, tmp_path, mnist):
    from browser import go_to, launch_chromium, new_visitor, running_app, set_numbers
    from playwright.sync_api import sync_playwright

    env = {"PLAYGROUND_RUNS_DIR": str(tmp_path / "runs"), "PLAYGROUND_WORKSPACES": "private",
           "PLAYGROUND_TEACHER_KEY": "chalk", ADDRESS_VAR: ray_cluster.address}
    with running_app(env, timeout=120) as app, sync_playwright() as p:
        browser = launch_chromium(p)
        a, b, teacher = (new_visitor(browser, 120_000) for _ in range(3))
        for student, epochs in ((a, "30"), (b, "10")):
            student.goto(f"{app.url}/Model")
            set_numbers(student, {"Epochs": epochs, "Train on only the first N images (0 = all)": "3000"})
            student.get_by_text(re.compile(r"steps per epoch")).first.wait_for()
            go_to(student, "Train")
            student.get_by_text("on the Ray cluster").first.wait_for()
            student.get_by_role("button", name=re.compile("Start training")).click()
        for student in (a, b):  # both at once, one on each node: the progress line names the node
            student.get_by_text(re.compile(r"samples/s .* on \S+ \(")).first.wait_for(timeout=180_000)
        teacher.goto(f"{app.url}/Teacher")
        teacher.get_by_label("Teacher key").fill("chalk")
        teacher.get_by_label("Teacher key").press("Enter")
        teacher.get_by_role("heading", name="The cluster").wait_for()
        teacher.get_by_text(re.compile(r"Runs train on this Ray cluster .*: 2 now")).wait_for(timeout=60_000)
        a.get_by_role("button", name=re.compile("Stop")).click()  # A stops A's run only
        a.get_by_text(re.compile("Stopped by request")).wait_for(timeout=60_000)
        b.get_by_text(re.compile(r"Test accuracy \d")).wait_for(timeout=180_000)
        for page in (a, b, teacher):
            assert page.get_by_text("Traceback").count() == 0
        browser.close()
