"""One run, one process: `python -m core.worker RUN_DIR` trains the run recorded in RUN_DIR.

The app's scheduler starts a worker per run in a fresh interpreter (as the
`spawn` start method does, so CUDA is initialised only there), never in the
server's threads: a crash, a runaway allocation or a kill -9 ends one run, not
the server. Everything the server learns of the run comes through the run
store's files. SIGTERM asks the run to stop (it keeps its best checkpoint);
when the server that started it goes away, the worker exits too and its run
reads as interrupted, resumable from its last finished epoch.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Protocol

import torch

from core.data import DatasetUnavailable, load_saved_dataset
from core.engine import train
from core.events import stop_on_sigterm
from core.importers import DataImportError
from core.store import ACTIVE, DamagedRun, RunStatus, RunStore, owner, process_alive


LAUNCHING = "Starting a worker process"  # a run's message from its claim by a server until its worker runs
WORKER_STARTED = "The worker process started"


def cancel_if_queued(store: RunStore) -> bool:
    """Cancel a run queued in the app (no process has it yet; a command line's own queued run names its pid and is
    left to it); True when cancelled."""
    status = store.status()  # a queued run's pid does not change while it is queued: None until a server claims it
    return (status["status"] == RunStatus.QUEUED and status.get("pid") is None
            and store.transition({RunStatus.QUEUED}, status=RunStatus.CANCELLED, message="Cancelled before it started.",
                                 pid=None, finished=time.time()))


def request_stop(store: RunStore) -> bool:
    """Ask a run that another process trains to stop (python -m core.runs stop, the Stop of a server that does not
    own it); False when it is not training. The flag reaches a Ray run's owner and a worker that has not started
    yet; a started trainer gets a SIGTERM, never the server that claimed the run (its pid while LAUNCHING)."""
    if store.status()["status"] not in ACTIVE:
        return False
    store.update_status(stop_requested=True)
    status = store.status()  # after the flag: a worker not yet started reads it; one started has written its own pid
    if status["status"] not in ACTIVE:
        return False
    pid = status.get("pid")
    if (status.get("backend") != "ray" and status.get("message") != LAUNCHING and pid and pid > 1
            and pid != os.getpid() and process_alive(pid, status.get("pid_start"))):
        try:
            os.kill(pid, signal.SIGTERM)  # the trainer ends within a batch and keeps its best checkpoint
        except ProcessLookupError:  # it ended meanwhile
            pass
        except PermissionError:  # its pid now another user's process: the trainer is gone
            return False
    return True


def exit_with(parent: int, store: RunStore) -> None:
    """End this process as soon as `parent` is no longer its parent (the server died or was stopped),
    leaving the run interrupted: resumable from its last finished epoch."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        try:  # only if still training: a run that finished while this process was ending keeps its status
            store.transition(ACTIVE, status=RunStatus.INTERRUPTED, pid=None, message="The server stopped while this "
                             "run trained. Resume continues from its last finished epoch.")
        finally:
            os._exit(3)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class Worker(Protocol):
    """A run's worker as the scheduler holds it: started, polled, asked to stop, killed."""

    def poll(self) -> int | None: ...

    def stop(self) -> None: ...

    def kill(self) -> None: ...

    def lost(self, code: int) -> str: ...


class LocalWorker:
    """A worker process on this machine, as the scheduler holds it (core.cluster's RayWorker is the other kind)."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process

    @classmethod
    def start(cls, store: RunStore, max_seconds: float, threads: int) -> "LocalWorker":
        """`python -m core.worker RUN_DIR` in a new session, its output in the run's worker.log; OSError when it cannot start."""
        with open(store.path / "worker.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "core.worker", str(store.path), "--max-seconds", str(max_seconds),
                 "--parent", str(os.getpid()), "--threads", str(threads)],
                cwd=Path(__file__).resolve().parents[1], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        store.transition(ACTIVE, **owner(process.pid))  # its message stays LAUNCHING until it can take a SIGTERM
        return cls(process)

    def poll(self) -> int | None:
        """None while the worker runs, then its exit code."""
        return self.process.poll()

    def stop(self) -> None:
        """Ask the run to stop: it ends within a batch and keeps its checkpoint."""
        try:
            self.process.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def lost(self, code: int) -> str:
        """The message of a run whose worker ended without giving it a final status."""
        return (f"The worker process ended unexpectedly (exit code {code}). "
                f"Resume continues from the last finished epoch.")


def run_worker(store: RunStore, stop: threading.Event, max_seconds: float | None = None,
               dataset_file: Path | None = None) -> int:
    """Train the run in `store` to its end, on the saved dataset in `dataset_file` when given (a Ray node's copy of
    a user's data); a failure, an unreadable dataset too, becomes the run's status and message. Exit code 0 or 1."""
    try:
        dataset = load_saved_dataset(dataset_file) if dataset_file is not None else None
        train(store.config(), stop=stop, store=store, max_seconds=max_seconds or None, dataset=dataset)
    except torch.cuda.OutOfMemoryError:
        _fail(store, "The GPU ran out of memory. Lower the batch size or choose a smaller model, then start again.")
    except (DatasetUnavailable, DataImportError, DamagedRun, ValueError) as exc:
        _fail(store, str(exc))
    except Exception as exc:  # a bug: the full traceback goes to the server's log, the page gets one line
        traceback.print_exc()
        _fail(store, f"Training failed: {type(exc).__name__}: {exc} (the server's log has the details).")
    else:
        return 0
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.worker", description="Train the run recorded in a run folder.")
    parser.add_argument("run_dir")
    parser.add_argument("--max-seconds", type=float, default=0, help="stop after this much training (0: no limit)")
    parser.add_argument("--parent", type=int, default=0, help="exit when this process (the server) is gone")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for training (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    stop = stop_on_sigterm()
    store = RunStore(Path(args.run_dir))
    if args.parent:
        exit_with(args.parent, store)
    # From here a SIGTERM stops the run cleanly, so only now does the message say so; a stop asked before (python -m
    # core.runs stop, which signals no process while the message is LAUNCHING: it may be the server's) is read here.
    if not store.transition(ACTIVE, **owner(), message=WORKER_STARTED):
        return 1  # no longer to train (its server ended, it was damaged): nothing to do
    if store.status().get("stop_requested"):
        stop.set()
    return run_worker(store, stop, args.max_seconds)


def _fail(store: RunStore, message: str) -> None:
    store.update_status(status=RunStatus.FAILED, message=message, pid=None)


if __name__ == "__main__":
    sys.exit(main())
