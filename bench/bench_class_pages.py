"""Benchmark: N students browsing one fresh server at the same moment.

For each N, starts `streamlit run app.py` on an empty run store (MNIST already
unpacked), opens N Chromium contexts at once, and lets each open Home, then Data,
Model, Results and Runs from the sidebar. Prints, per page, the median and worst
seconds from the click until the page's content is shown, then the server's CPU
seconds per page view and its peak resident memory.

    python bench/bench_class_pages.py [--students 1 10 30]

The browsers share this machine's cores with the server, so page times include
their own work; the server's CPU and memory figures are its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, running_app  # noqa: E402

PAGES = {"Home": "The journey", "Data": "Reshuffle", "Model": "steps per epoch", "Results": "No finished run yet",
         "Runs": "No runs in"}


def server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def student(browser, url: str, times: dict[str, list[float]]) -> None:
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    page.set_default_timeout(600_000)
    for name, marker in PAGES.items():
        start = time.perf_counter()
        if name == "Home":
            await page.goto(url)
        else:
            await page.locator('[data-testid="stSidebarNav"] a', has_text=name).click()
        await page.get_by_text(marker).first.wait_for()
        times[name].append(time.perf_counter() - start)
    await context.close()


async def class_of(n: int, url: str) -> dict[str, list[float]]:
    from playwright.async_api import async_playwright

    times: dict[str, list[float]] = {name: [] for name in PAGES}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        await asyncio.gather(*(student(browser, url, times) for _ in range(n)))
        await browser.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, nargs="+", default=[1, 10, 30])
    args = parser.parse_args()
    os.environ.setdefault("PLAYGROUND_ARCHIVE_DIR", str(REPO.parent / "shared" / "data" / "archives"))
    rows = []
    for n in args.students:
        with tempfile.TemporaryDirectory() as runs, running_app({"PLAYGROUND_RUNS_DIR": runs}) as app:
            pid = app.process.pid
            before = server_cpu(pid)
            times = asyncio.run(class_of(n, app.url))
            rows.append((n, times, (server_cpu(pid) - before) / (n * len(PAGES)), server_peak_mb(pid)))
    print(f"{'students':>8} " + " ".join(f"{name + ' med/max s':>18}" for name in PAGES) + "  CPU-s/view  peak MB")
    for n, times, per_view, peak in rows:
        cells = " ".join(f"{statistics.median(t):8.1f} /{max(t):7.1f}  " for t in times.values())
        print(f"{n:8} {cells} {per_view:10.2f} {peak:8.0f}")


if __name__ == "__main__":
    main()
