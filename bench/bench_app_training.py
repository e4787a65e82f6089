"""Benchmark: training throughput in the app (a worker process, the Train page open) against the command line.

Runs the default config (the `mnist-fast` recipe, CPU) three ways and prints each
run's training samples/s and its ratio to the command line's:
  1. `python -m core.train` alone (the baseline);
  2. started from the Train page of `streamlit run app.py` in headless Chromium,
     the page left open (it redraws its curves every second);
  3. as (2), with BROWSING more students going round Home, Data, Model, Results and
     Runs, a page every PAUSE seconds each, as websocket visitors (tests/socket_visitor.py:
     the server does all the work of each page, the visitor draws nothing);
  4. as (2), with WATCHERS more browser contexts keeping the Train page open too.
Chromium, the server and the worker share this machine's cores, so (2) to (4)
include what the browser itself costs; on a real deployment it runs elsewhere.

    python bench/bench_app_training.py [--browsing 4] [--pause 2] [--watchers 4] [--epochs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from browser import go_to, launch_chromium, new_visitor, running_app, set_numbers  # noqa: E402
from socket_visitor import SocketVisitor  # noqa: E402

from core.store import list_runs  # noqa: E402


def cpu_seconds(match) -> float:
    """User + system CPU seconds so far of every process whose command line `match` accepts (Linux /proc)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if proc.name.isdigit() and match(cmdline):
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            continue
    return total


def cli_rate(epochs: int, runs: Path) -> float:
    out = subprocess.run([sys.executable, "-m", "core.train", "--device", "cpu", "--epochs", str(epochs), "--json",
                          "--run-dir", str(runs / "cli")], cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["samples_per_second"]


BROWSED = ["", "Data", "Model", "Results", "Runs"]


def browse(url: str, students: int, pause: float, done: threading.Event, views: list[int]) -> None:
    """`students` websocket visitors, each opening the next page every `pause` seconds until `done`."""
    async def student() -> None:
        visitor = SocketVisitor(url)
        for page in itertools.cycle(BROWSED):
            if done.is_set():
                break
            view = await visitor.open(page)
            assert not view.exceptions, view.exceptions
            views.append(1)
            await asyncio.sleep(pause)
        await visitor.close()

    async def all_of_them() -> None:
        await asyncio.gather(*(student() for _ in range(students)))

    asyncio.run(all_of_them())


def app_rate(epochs: int, runs: Path, watchers: int = 0, browsing: int = 0,
             pause: float = 2.0) -> tuple[float, dict[str, float]]:
    from playwright.sync_api import sync_playwright

    with running_app({"PLAYGROUND_RUNS_DIR": str(runs)}) as app, sync_playwright() as p:
        browser = launch_chromium(p)
        page = new_visitor(browser, 300_000)
        page.goto(f"{app.url}/Model")
        set_numbers(page, {"Epochs": str(epochs)})
        go_to(page, "Train")
        page.get_by_role("button", name=re.compile("Start training")).click()
        page.get_by_text(re.compile(r"samples/s")).first.wait_for()
        server = lambda cmd: "streamlit run" in cmd and str(runs) not in cmd  # noqa: E731
        before = {"server": cpu_seconds(server), "chromium": cpu_seconds(lambda cmd: "chromium" in cmd)}
        wall = time.perf_counter()
        others = [new_visitor(browser, 300_000) for _ in range(watchers)]
        for other in others:  # on a laptop every visitor shares the local workspace, so they all watch this run
            other.goto(f"{app.url}/Train")
        done, views = threading.Event(), []
        students = threading.Thread(target=browse, args=(app.url, browsing, pause, done, views))
        students.start()
        page.get_by_text(re.compile(r"Test accuracy \d")).wait_for()
        done.set()
        students.join()
        wall = time.perf_counter() - wall
        used = {"server": cpu_seconds(server) - before["server"],
                "chromium": cpu_seconds(lambda cmd: "chromium" in cmd) - before["chromium"]}
        if browsing:
            used["(page views/s)"] = len(views)
        browser.close()
    return list_runs(runs)[0].status()["samples_per_second"], {k: v / wall for k, v in used.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--watchers", type=int, default=4)
    parser.add_argument("--browsing", type=int, default=4)
    parser.add_argument("--pause", type=float, default=2.0, help="seconds each browsing student waits between pages")
    args = parser.parse_args()
    os.environ.setdefault("PLAYGROUND_ARCHIVE_DIR", str(REPO.parent / "shared" / "data" / "archives"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        baseline = cli_rate(args.epochs, tmp / "cli")
        rows = [("python -m core.train", baseline, {})]
        rows.append(("app, Train page open in Chromium", *app_rate(args.epochs, tmp / "app1")))
        if args.browsing:
            rows.append((f"app, as above, {args.browsing} students browsing",
                         *app_rate(args.epochs, tmp / "browsing", browsing=args.browsing, pause=args.pause)))
        if args.watchers:
            rows.append((f"app, Train page open in {1 + args.watchers} Chromium contexts",
                         *app_rate(args.epochs, tmp / "app5", watchers=args.watchers)))
    print(f"default config (mnist-fast, {args.epochs} epochs, CPU, {os.cpu_count()} cores); {time.perf_counter() - start:.0f} s in all")
    alone = rows[1][1]  # one student on the server, watching their run
    print(f"{'how':45} {'samples/s':>10} {'vs CLI':>7} {'vs alone':>8}   CPU cores busy while it trained")
    for name, rate, cpu in rows:
        busy = ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
        print(f"{name:45} {rate:10,.0f} {rate / baseline:7.2f}x {rate / alone:7.2f}x   {busy}")


if __name__ == "__main__":
    main()
