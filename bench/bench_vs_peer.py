"""Benchmark: the default MNIST config (`python -m core.train`) against the fastest public recipe we know.

Runs `bench/peer_mnist.py` and `python -m core.train` alternately on one device (the
CPU unless --device cuda: time-to-99 % on a GPU), one seed after another, each as a
whole process, and prints for each: test accuracy, training seconds (as each reports
them, the first run's kernel selection included), whole-process wall seconds and peak
resident memory; then the medians and the ratios ours / peer's. On CUDA the engine trains
under bfloat16 autocast, as it always does there, and the peer in float32, as described.

    python bench/bench_vs_peer.py [--seeds 0 1 2 3 4] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.data import data_dir, load_dataset  # noqa: E402


def run(cmd: list[str]) -> dict[str, float]:
    """The command's JSON line (test_accuracy, train_seconds), its wall seconds and its peak memory in MB."""
    start = time.perf_counter()
    process = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed")
    result = json.loads(out.strip().splitlines()[-1])
    return {"test_accuracy": result["test_accuracy"], "train_seconds": result["train_seconds"], "wall_seconds": wall,
            "peak_mb": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for time-to-99 %% on a GPU")
    args = parser.parse_args()
    os.environ.setdefault("PLAYGROUND_ARCHIVE_DIR", str(REPO.parent / "shared" / "data" / "archives"))
    load_dataset("mnist")  # unpacked once, before anything is timed
    rows: dict[str, list[dict[str, float]]] = {"peer": [], "ours": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            rows["peer"].append(run([sys.executable, "bench/peer_mnist.py", "--data", str(data_dir()), "--seed", str(seed),
                                     "--device", args.device]))
            rows["ours"].append(run([sys.executable, "-m", "core.train", "--device", args.device, "--seed", str(seed),
                                     "--run-dir", str(Path(tmp) / f"run-{seed}"), "--json"]))
            for name in rows:
                r = rows[name][-1]
                print(f"seed {seed} {name:5} {r['test_accuracy']:.2%}  train {r['train_seconds']:5.1f} s  "
                      f"wall {r['wall_seconds']:5.1f} s  peak {r['peak_mb']:5.0f} MB", flush=True)
    medians = {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for name, runs in rows.items()}
    print(f"ours: {min(r['test_accuracy'] for r in rows['ours']):.2%} to {max(r['test_accuracy'] for r in rows['ours']):.2%}; "
          f"peer: {min(r['test_accuracy'] for r in rows['peer']):.2%} to {max(r['test_accuracy'] for r in rows['peer']):.2%}")
    for key in ("train_seconds", "wall_seconds", "peak_mb"):
        print(f"median {key:13} ours {medians['ours'][key]:7.1f}  peer {medians['peer'][key]:7.1f}  "
              f"ratio {medians['ours'][key] / medians['peer'][key]:.2f}x")


if __name__ == "__main__":
    main()
