"""A real browser on the real app: start `streamlit run app.py` on a free port and drive Debian's Chromium.

Shared by the end-to-end test and docs/screenshots.py.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class App:
    url: str
    process: subprocess.Popen


@contextlib.contextmanager
def running_app(env: dict[str, str] | None = None, timeout: float = 60) -> Iterator[App]:
    """Serve the app on 127.0.0.1 at a free port; yield its URL and process; stop it afterwards."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"), "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true", "--server.fileWatcherType", "none"]
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited early:\n{proc.stdout.read()}")
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"streamlit did not answer on {url} in {timeout} s")
            time.sleep(0.3)
        yield App(url, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


VIEWPORT = {"width": 1280, "height": 800}  # the size the layout must hold at


def open_page(playwright, timeout_ms: int = 60_000):
    """(browser, page): Chromium with one page at VIEWPORT; close the browser when done."""
    browser = launch_chromium(playwright)
    return browser, new_visitor(browser, timeout_ms)


def new_visitor(browser, timeout_ms: int = 60_000):
    """A page in a browser context of its own: another person, with cookies of their own."""
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.set_default_timeout(timeout_ms)
    return page


def go_to(page, label: str) -> None:
    """Follow the sidebar link to a page, as a user does (the session and its settings stay)."""
    page.locator('[data-testid="stSidebarNav"] a', has_text=label).click()


def set_numbers(page, values: dict[str, str]) -> None:
    """Type into number inputs by their labels, confirming each with Enter."""
    for label, value in values.items():
        field = page.get_by_label(label, exact=True)
        field.fill(value)
        field.press("Enter")
