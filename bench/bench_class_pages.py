"""Benchmark: N students browsing one fresh server at the same moment.

For each N and each kind of visitor, starts `streamlit run app.py` on an empty run
store (MNIST already unpacked, a private workspace for every visitor, as on a class
server), lets N visitors arrive at once and each open Home, then Data, Model,
Results and Runs. Prints, per page, the median and worst seconds until the page
was complete, then the server's CPU seconds per page view and its peak memory.

Two kinds of visitor:
  socket   Streamlit's websocket protocol without a browser (tests/socket_visitor.py):
           a page is complete when the server sends `script_finished`. The visitors
           cost almost nothing, so this is the server's own answer time, as students
           with their own laptops would see it.
  browser  a Chromium context each, clicking the sidebar; a page is complete when its
           content is drawn. Thirty Chromiums share this machine's cores with the
           server, so these times are mostly the browsers' own work.

    python bench/bench_class_pages.py [--students 1 10 30] [--visitors socket browser]
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
from socket_visitor import SocketVisitor  # noqa: E402

PAGES = {"Home": "The journey", "Data": "Reshuffle", "Model": "steps per epoch", "Results": "No finished run yet",
         "Runs": "No runs yet"}


def server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def socket_student(url: str, times: dict[str, list[float]]) -> None:
    visitor = SocketVisitor(url)
    for name in PAGES:
        view = await visitor.open("" if name == "Home" else name)
        assert not view.exceptions, view.exceptions
        times[name].append(view.seconds)
    await visitor.close()


async def socket_class(n: int, url: str) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in PAGES}
    await asyncio.gather(*(socket_student(url, times) for _ in range(n)))
    return times


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


async def browser_class(n: int, url: str) -> dict[str, list[float]]:
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
    parser.add_argument("--visitors", nargs="+", choices=["socket", "browser"], default=["socket", "browser"])
    args = parser.parse_args()
    os.environ.setdefault("PLAYGROUND_ARCHIVE_DIR", str(REPO.parent / "shared" / "data" / "archives"))
    drive = {"socket": socket_class, "browser": browser_class}
    print(f"{'visitors':>8} {'students':>8} " + " ".join(f"{name + ' med/max s':>18}" for name in PAGES)
          + "  CPU-s/view  peak MB", flush=True)
    for kind in args.visitors:
        for n in args.students:
            env = {"PLAYGROUND_WORKSPACES": "private"}
            with tempfile.TemporaryDirectory() as runs, running_app({**env, "PLAYGROUND_RUNS_DIR": runs}) as app:
                pid = app.process.pid
                before = server_cpu(pid)
                times = asyncio.run(drive[kind](n, app.url))
                per_view, peak = (server_cpu(pid) - before) / (n * len(PAGES)), server_peak_mb(pid)
            cells = " ".join(f"{statistics.median(t):8.2f} /{max(t):7.2f}  " for t in times.values())
            print(f"{kind:>8} {n:8} {cells} {per_view:10.3f} {peak:8.0f}", flush=True)


if __name__ == "__main__":
    main()
