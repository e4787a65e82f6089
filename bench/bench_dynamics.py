"""Benchmark: what recording the training dynamics (core.dynamics) costs in throughput.

Trains the default MNIST config for one epoch, alternately with the per-layer
recording as the engine does it and with it replaced by a recorder that never
arms, in this one process, and prints each whole run's wall time (training, its
reports to the run's files and TensorBoard, the test), the medians and their ratio
(the issue's budget: at most 5 % of throughput).

    python bench/bench_dynamics.py [--rounds 3] [--model lenet5]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import core.engine as engine  # noqa: E402
from core.config import TrainConfig  # noqa: E402
from core.data import load_dataset  # noqa: E402
from core.dynamics import LayerStats  # noqa: E402


class NeverArmed(LayerStats):
    """Hooks nothing and reports nothing: the engine as it was before the recording."""

    def arm(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="lenet5")
    args = parser.parse_args()
    os.environ.setdefault("PLAYGROUND_ARCHIVE_DIR", str(REPO.parent / "shared" / "data" / "archives"))
    data = load_dataset("mnist")
    seconds: dict[str, list[float]] = {"recorded": [], "not recorded": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            pair = [("not recorded", NeverArmed), ("recorded", LayerStats)]
            for name, recorder in pair if round_ % 2 == 0 else pair[::-1]:  # alternate who goes first
                engine.LayerStats = recorder
                cfg = dataclasses.replace(TrainConfig(device="cpu", epochs=1, model=args.model),
                                          run_dir=str(Path(tmp) / f"{name}-{round_}"))
                start = time.perf_counter()
                result = engine.train(cfg, dataset=data)
                # the whole call: the engine's own train_seconds stops before each step event's reports
                seconds[name].append(time.perf_counter() - start)
                layers = len(result.steps[-1].get("layers", {}))
                print(f"round {round_} {name:12} {seconds[name][-1]:6.2f} s for the whole run "
                      f"({layers} layers recorded, {len(result.steps)} reported steps)", flush=True)
    engine.LayerStats = LayerStats
    on, off = statistics.median(seconds["recorded"]), statistics.median(seconds["not recorded"])
    print(f"median: recorded {on:.2f} s, not recorded {off:.2f} s; ratio {on / off:.3f} ({on / off - 1:+.1%} time)")

if __name__ == "__main__":
    main()
