"""The fair queue and its worker processes: turns, quotas, stop, a killed worker, and a store shared by many writers."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.config import TrainConfig
from core.scheduler import Entry, QuotaExceeded, Scheduler, shutdown, turn_order
from core.settings import HostSettings
from core.store import ACTIVE, RunStatus, RunStore, list_runs, owner
from core.worker import LAUNCHING
from core.workspaces import LOCAL, new_browser_key, workspace_for_key, workspace_root

TINY = dict(epochs=1, batch_size=64, limit_train=600, val_split=0.05, device="cpu")


def entry(workspace: str, queued_at: float) -> Entry:
    return Entry(RunStore(f"/x/{workspace}{queued_at}"), workspace, RunStatus.QUEUED, "cpu", queued_at, 0.0, None, None,
                 TrainConfig())


def test_workspaces_take_turns_and_each_keeps_its_own_order():
    queued = [entry("a", 1), entry("a", 2), entry("a", 3), entry("b", 4), entry("c", 5)]
    order = [(e.workspace, e.queued_at) for e in turn_order(queued, {})]
    assert order == [("a", 1), ("b", 4), ("c", 5), ("a", 2), ("a", 3)]
    served = [(e.workspace, e.queued_at) for e in turn_order(queued, {"a": 100.0, "b": 50.0})]
    assert served == [("c", 5), ("b", 4), ("a", 1), ("a", 2), ("a", 3)]  # never served goes first, then longest ago


def wait_for(predicate, timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def store_root(tmp_path, monkeypatch, mnist):
    """A store of its own, with no other scheduler of this process looking at it."""
    shutdown()
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


@pytest.fixture
def make_scheduler(store_root):
    made = []

    def make(settings: HostSettings) -> Scheduler:
        made.append(Scheduler(settings))
        return made[-1]

    yield make
    for sched in made:
        sched.close()


def stops_within_a_second(sched: Scheduler, run: RunStore) -> None:
    """Stop a training run: it leaves training within a second, ends stopped, and keeps its checkpoint and test."""
    asked = time.time()
    sched.stop(run)
    wait_for(lambda: run.status()["status"] != RunStatus.RUNNING, 10, "training to end")
    left_training = time.time()
    wait_for(lambda: run.status()["status"] == RunStatus.STOPPED, 60, "the stopped status")
    assert left_training - asked < 1.0, left_training - asked
    assert run.best_checkpoint.is_file() and run.evaluation() is not None
    assert "Stopped by request" in run.status()["message"]


def private() -> str:
    return workspace_for_key(new_browser_key())


def test_runs_of_three_workspaces_train_one_at_a_time_in_turns(make_scheduler):
    sched = make_scheduler(HostSettings(runs_per_cpu=1))
    a, b, c = private(), private(), private()
    runs = [sched.submit(TrainConfig(**TINY), ws, "mnist") for ws in (a, a, b, c)]
    assert list_runs(workspace_root(a)) and not list_runs(workspace_root(LOCAL))  # each in its own workspace
    place = sched.place(runs[3])
    assert place.ahead == 2 and place.waiting in (1, 2)  # b (and a's first, unless it has started): c comes before a's second
    wait_for(lambda: all(r.status()["status"] == RunStatus.FINISHED for r in runs), 300, "all four runs")
    spans = sorted((r.status()["started"], r.status()["finished"], r) for r in runs)
    for (_, end, _), (start, _, _) in zip(spans, spans[1:]):
        assert start >= end - 0.5  # one slot: a run starts when the one before it has ended
    assert [s[2] for s in spans] == [runs[0], runs[2], runs[3], runs[1]]  # a's second run waits for b and c


def test_stop_ends_a_worker_within_a_second_and_keeps_a_checkpoint(make_scheduler):
    sched = make_scheduler(HostSettings())
    run = sched.submit(TrainConfig(**{**TINY, "epochs": 30, "limit_train": None, "model": "lenet-bn"}), LOCAL, "mnist")
    wait_for(lambda: (run.status().get("step") or 0) > 0, 120, "the first steps")
    stops_within_a_second(sched, run)


def test_a_killed_worker_leaves_its_run_interrupted_the_queue_moving_and_resume_working(make_scheduler):
    sched = make_scheduler(HostSettings())
    victim = sched.submit(TrainConfig(**{**TINY, "epochs": 3, "limit_train": 3000}), LOCAL, "mnist")
    waiting = sched.submit(TrainConfig(**TINY), LOCAL, "mnist")
    wait_for(lambda: victim.has_training_state() and victim.epochs(), 120, "epoch 1 on disk")
    os.kill(victim.status()["pid"], signal.SIGKILL)
    wait_for(lambda: victim.status()["status"] == RunStatus.INTERRUPTED, 10, "the interrupted status")
    wait_for(lambda: waiting.status()["status"] == RunStatus.FINISHED, 120, "the next run")
    assert "ended unexpectedly" in victim.status()["message"]
    sched.resume(victim, LOCAL)
    wait_for(lambda: victim.status()["status"] == RunStatus.FINISHED, 120, "the resumed run")
    assert [e["epoch"] for e in victim.epochs()] == [1, 2, 3]


def test_quotas_refuse_with_a_message_that_says_what_to_do(make_scheduler):
    ws = private()
    sched = make_scheduler(HostSettings(max_epochs=2, max_active_runs=1, max_runs_kept=2, runs_per_cpu=1))
    with pytest.raises(QuotaExceeded, match="at most 2 epochs per run"):
        sched.submit(TrainConfig(**{**TINY, "epochs": 3}), ws, "mnist")
    first = sched.submit(TrainConfig(**TINY), ws, "mnist")
    with pytest.raises(QuotaExceeded, match="1 run queued or training"):
        sched.submit(TrainConfig(**TINY), ws, "mnist")
    sched.submit(TrainConfig(**{**TINY, "epochs": 9}), LOCAL, "mnist")  # the local workspace has no quotas
    wait_for(lambda: first.status()["status"] == RunStatus.FINISHED, 120, "the first run")
    sched.submit(TrainConfig(**TINY), ws, "mnist")
    for r in list_runs(workspace_root(ws)):
        wait_for(lambda r=r: r.status()["status"] not in ACTIVE, 120, "the second run")
    with pytest.raises(QuotaExceeded, match="holds 2 runs"):
        sched.submit(TrainConfig(**TINY), ws, "mnist")
    for r in list_runs(workspace_root(LOCAL)):
        sched.stop(r)


def test_uploads_over_the_hosts_limit_are_refused_on_a_shared_server_and_taken_on_a_laptop():
    settings = HostSettings(max_upload_mb=2)
    assert settings.upload_refused("big.zip", (2 << 20) + 1, shared=True) == (
        "big.zip is 2.0 MB; this server takes uploads of up to 2 MB. Nothing was loaded.")
    assert settings.upload_refused("big.zip", 2 << 20, shared=True) is None
    assert settings.upload_refused("big.zip", 50 << 20, shared=False) is None


def test_a_queued_run_can_be_cancelled(make_scheduler):
    sched = make_scheduler(HostSettings(runs_per_cpu=1))
    training = sched.submit(TrainConfig(**{**TINY, "epochs": 20}), LOCAL, "mnist")
    run = sched.submit(TrainConfig(**TINY), LOCAL, "mnist")
    assert run.status()["status"] == RunStatus.QUEUED and sched.place(run).ahead == 1
    sched.stop(run)
    assert run.status()["status"] == RunStatus.CANCELLED
    sched.stop(training)
    wait_for(lambda: training.status()["status"] not in ACTIVE, 60, "the first run to stop")
    assert run.status()["status"] == RunStatus.CANCELLED  # it never started


def _update_many(path: str, prefix: str, n: int) -> None:
    store = RunStore(__import__("pathlib").Path(path))
    for i in range(n):
        store.update_status(**{f"{prefix}{i}": i})


def test_concurrent_status_updates_from_threads_and_processes_lose_nothing(tmp_path):
    store = RunStore.create(TrainConfig(), "mnist", tmp_path / "run")
    threads = [threading.Thread(target=_update_many, args=(str(store.path), f"t{k}_", 60)) for k in range(6)]
    spawn = multiprocessing.get_context("spawn")
    processes = [spawn.Process(target=_update_many, args=(str(store.path), f"p{k}_", 60)) for k in range(2)]
    for worker in threads + processes:
        worker.start()
    for worker in threads + processes:
        worker.join(120)
    status = json.loads((store.path / "status.json").read_text())
    missing = [f"{p}{i}" for p in [*(f"t{k}_" for k in range(6)), "p0_", "p1_"] for i in range(60) if f"{p}{i}" not in status]
    assert not missing, f"{len(missing)} updates lost"
    assert not [p for p in store.path.iterdir() if p.name.endswith(".tmp")]


WORKER = """
import os, sys, time
from pathlib import Path
from core.store import RunStore
from core.worker import exit_with
store = RunStore(Path(sys.argv[1]))
exit_with(os.getppid(), store)
store.update_status(status=sys.argv[2], pid=os.getpid())  # what the run says as its server dies
print(os.getpid(), flush=True)
time.sleep(60)
"""
SERVER = """
import subprocess, sys
worker = subprocess.Popen([sys.executable, "-c", sys.argv[1], *sys.argv[2:]], stdout=subprocess.PIPE, text=True)
print(worker.stdout.readline().strip(), flush=True)  # then this 'server' ends, as a server that dies
"""


@pytest.mark.parametrize("said, left", [(RunStatus.RUNNING, RunStatus.INTERRUPTED), (RunStatus.FINISHED, RunStatus.FINISHED)])
def test_a_worker_whose_server_died_leaves_a_training_run_interrupted_and_a_finished_one_finished(tmp_path, said, left):
    store = RunStore.create(TrainConfig(), "mnist", tmp_path / "run")
    server = subprocess.run([sys.executable, "-c", SERVER, WORKER, str(store.path), said], capture_output=True, text=True,
                            timeout=60, cwd=Path(__file__).resolve().parents[1], env={**os.environ, "PYTHONPATH": "."})
    worker = int(server.stdout.strip())
    wait_for(lambda: not os.path.exists(f"/proc/{worker}"), 30, "the worker to notice")
    assert store.status()["status"] == left


@pytest.mark.parametrize("asked_by", ["the command line", "another server"])
def test_a_stop_while_a_server_starts_the_worker_never_signals_the_server_and_reaches_the_worker(store_root, make_scheduler,
                                                                                                   asked_by):
    repo = Path(__file__).resolve().parents[1]
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])  # the server that claimed the run
    try:
        store = RunStore.create(TrainConfig(**TINY), "mnist", store_root / "run")
        store.update_status(status=RunStatus.LOADING, **owner(server.pid), backend="local", message=LAUNCHING)
        if asked_by == "the command line":
            stop = subprocess.run([sys.executable, "-m", "core.runs", "stop", str(store.path)], cwd=repo,
                                  capture_output=True, text=True, timeout=120)
            assert stop.returncode == 0 and "asked run" in stop.stdout, stop.stderr
        else:  # a server that does not own the run: its Stop button
            make_scheduler(HostSettings()).stop(store)
        time.sleep(0.5)
        assert server.poll() is None  # the old command sent SIGTERM to the claim's pid: the server
        worker = subprocess.run([sys.executable, "-m", "core.worker", str(store.path)], cwd=repo, capture_output=True,
                                text=True, timeout=300)  # it starts as the server would have started it
        assert worker.returncode == 0, worker.stdout + worker.stderr
        assert store.status()["status"] == RunStatus.STOPPED
    finally:
        server.kill()
        server.wait()


def test_the_command_line_cancels_a_run_queued_in_the_app(store_root):
    store = RunStore.create(TrainConfig(**TINY), "mnist", store_root / "run", pid=None)  # as the app queues one
    stop = subprocess.run([sys.executable, "-m", "core.runs", "stop", str(store.path)], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=120)
    assert stop.returncode == 0 and "cancelled" in stop.stdout, stop.stderr
    assert store.status()["status"] == RunStatus.CANCELLED


def test_a_servers_stop_leaves_a_command_lines_own_queued_run_to_it(make_scheduler, store_root):
    store = RunStore.create(TrainConfig(**TINY), "mnist", store_root / "run")  # queued under this process's pid
    assert make_scheduler(HostSettings()).stop(store)
    assert store.status()["status"] == RunStatus.QUEUED and store.status()["stop_requested"]  # asked, not cancelled


def test_a_run_over_the_hosts_time_limit_stops_cleanly_and_keeps_its_best_checkpoint(make_scheduler):
    sched = make_scheduler(HostSettings(max_train_seconds=2.0))
    run = sched.submit(TrainConfig(**{**TINY, "epochs": 30, "limit_train": 6000}), private(), "mnist")
    wait_for(lambda: run.status()["status"] not in ACTIVE, 120, "the time limit")
    status = run.status()
    assert status["status"] == RunStatus.STOPPED and "limit of 2 s of training per run" in status["message"]
    assert 2.0 <= status["train_seconds"] < 3.0
    assert run.best_checkpoint.is_file() and run.evaluation() is not None


def test_the_scheduler_never_takes_a_run_that_its_own_process_will_train(make_scheduler):
    cli_run = RunStore.create(TrainConfig(**TINY), "mnist")  # as core.train makes it: queued, with its own live pid
    sched = make_scheduler(HostSettings())
    sched._tick()
    assert cli_run.status()["status"] == RunStatus.QUEUED and not sched._workers
