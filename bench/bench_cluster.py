"""What a Ray worker costs beside a local one: the same run, submitted to the app's scheduler both ways.

    python bench/bench_cluster.py [--runs 2] [--epochs 2] [--model lenet5]

Starts a one-node Ray cluster on this machine (Ray's own test cluster, 2 CPUs), then alternates:
a run through the local worker process, the same run as a Ray actor. Prints for each the seconds
from Start to finished, the training seconds the run reports, and for the Ray run the bytes the app
pulled back from the node; then the medians and their ratio. Needs requirements-cluster.txt.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PLAYGROUND_RUNS_DIR", tempfile.mkdtemp(prefix="bench-cluster-"))

from ray.cluster_utils import Cluster as RayCluster  # noqa: E402

from core import cluster  # noqa: E402
from core.config import TrainConfig  # noqa: E402
from core.scheduler import Scheduler  # noqa: E402
from core.settings import HostSettings  # noqa: E402
from core.store import ACTIVE  # noqa: E402
from core.workspaces import LOCAL  # noqa: E402

pulled = 0
write = cluster.RayWorker._write


def counting_write(self, changed, known):
    global pulled
    pulled += sum(len(data) for _, data in changed.values())
    write(self, changed, known)


cluster.RayWorker._write = counting_write


def one_run(settings: HostSettings, cfg: TrainConfig) -> tuple[float, float]:
    """(seconds from submit to the end, training seconds the run reports)."""
    sched = Scheduler(settings, interval=0.2)
    try:
        start = time.perf_counter()
        store = sched.submit(cfg, LOCAL, cfg.dataset)
        while store.status()["status"] in ACTIVE:
            time.sleep(0.05)
        status = store.status()
        assert status["status"] == "finished", status["message"]
        return time.perf_counter() - start, status["train_seconds"]
    finally:
        sched.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--model", default="lenet5")
    args = parser.parse_args()
    cfg = TrainConfig(model=args.model, epochs=args.epochs, device="cpu")
    ray_cluster = RayCluster(initialize_head=True, head_node_args={"num_cpus": 2})
    ray_cluster.wait_for_nodes()
    local = HostSettings(worker_threads=2)
    on_ray = HostSettings(ray_address=ray_cluster.address, ray_cpus_per_run=2)
    rows: dict[str, list[tuple[float, float]]] = {"local": [], "ray": []}
    global pulled
    try:
        for i in range(args.runs):
            for name, settings in (("local", local), ("ray", on_ray)) if i % 2 == 0 else (("ray", on_ray), ("local", local)):
                pulled = 0
                wall, train = one_run(settings, cfg)
                rows[name].append((wall, train))
                extra = f", {pulled / 1e6:.2f} MB pulled" if name == "ray" else ""
                print(f"{name:5s} run {i + 1}: {wall:6.1f} s from Start to finished, {train:6.1f} s training{extra}", flush=True)
    finally:
        ray_cluster.shutdown()
    med = {name: (statistics.median(w for w, _ in r), statistics.median(t for _, t in r)) for name, r in rows.items()}
    for name, (wall, train) in med.items():
        print(f"median {name:5s}: {wall:6.1f} s from Start to finished, {train:6.1f} s training")
    print(f"ray / local: {med['ray'][0] / med['local'][0]:.2f}x from Start to finished, "
          f"{med['ray'][1] / med['local'][1]:.2f}x training")


if __name__ == "__main__":
    main()
