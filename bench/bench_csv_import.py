"""Benchmark: importing a user's 60,000-row CSV (the mnist_train.csv layout) against pandas' plain read of it.

Writes MNIST's training set as mnist_train.csv (a header line, then a label and
784 pixels per row), then times, in one process and alternately, `pandas.read_csv`
of the file and `core.importers.import_csv` (the same reader plus every check and
the conversion to a dataset), and prints the medians and their ratio.

    python bench/bench_csv_import.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.data import load_dataset  # noqa: E402
from core.importers import import_csv  # noqa: E402


def write_mnist_csv(path: Path) -> int:
    data = load_dataset("mnist")
    table = np.concatenate([data.train_labels.numpy()[:, None], data.train_images.flatten(1).numpy()], axis=1)
    header = ",".join(["label"] + [f"pixel{i}" for i in range(784)])
    np.savetxt(path, table, fmt="%d", delimiter=",", header=header, comments="")
    return len(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("PLAYGROUND_ARCHIVE_DIR", str(REPO.parent / "shared" / "data" / "archives"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mnist_train.csv"
        rows = write_mnist_csv(path)
        times: dict[str, list[float]] = {"pandas.read_csv": [], "import_csv": []}
        for _ in range(args.repeats):
            start = time.perf_counter()
            pd.read_csv(path)
            times["pandas.read_csv"].append(time.perf_counter() - start)
            start = time.perf_counter()
            dataset = import_csv(path)
            times["import_csv"].append(time.perf_counter() - start)
        assert len(dataset.train_labels) + len(dataset.test_labels) == rows
        size = path.stat().st_size
    print(f"{rows:,} rows, {size / 2**20:,.0f} MB; median of {args.repeats} runs")
    base = statistics.median(times["pandas.read_csv"])
    for name, values in times.items():
        print(f"{name:16} {statistics.median(values):6.2f} s  (min {min(values):.2f}, max {max(values):.2f})  "
              f"{statistics.median(values) / base:.2f}x")


if __name__ == "__main__":
    main()
