"""Take the README's screenshots of every page with the browser the tests use.

    python docs/screenshots.py          # writes docs/screenshots/*.png at 1280 x 800

Trains a short MNIST run through the UI first so Train, Results, Draw and Inside have
something to show. Emoji need a colour emoji font (Debian: fonts-noto-color-emoji).
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import go_to, launch_chromium, new_visitor, open_page, running_app, set_numbers  # noqa: E402

OUT = Path(__file__).resolve().parent / "screenshots"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    runs = tempfile.mkdtemp(prefix="playground-screenshot-runs-")  # only this script's run on the Runs page
    with running_app({"PLAYGROUND_RUNS_DIR": runs}) as app, sync_playwright() as p:
        url = app.url
        browser, page = open_page(p, timeout_ms=120_000)

        def shot(name: str) -> None:
            page.wait_for_timeout(1500)  # let Plotly finish drawing
            page.screenshot(path=str(OUT / f"{name}.png"))
            print("wrote", OUT / f"{name}.png")

        page.goto(url)
        page.get_by_text("The journey").wait_for()
        shot("home")
        go_to(page, "Data")
        page.get_by_text("Reshuffle").wait_for()
        shot("data")
        go_to(page, "Model")
        set_numbers(page, {"Epochs": "2", "Train on only the first N images (0 = all)": "12000"})
        page.get_by_text("47 steps per epoch").first.wait_for()  # 12,000 images / batch 256
        shot("model")
        go_to(page, "Train")
        page.get_by_role("button", name=re.compile("Start training")).click()
        page.get_by_text(re.compile(r"Test accuracy \d")).wait_for()
        shot("train")
        go_to(page, "Results")
        page.get_by_text("Per class").wait_for()
        page.get_by_role("tab", name="Confusion").click()
        shot("results")
        go_to(page, "Draw")
        canvas = page.locator("canvas.upper-canvas")
        canvas.wait_for()
        box = canvas.bounding_box()
        points = [(0.3, 0.25), (0.45, 0.12), (0.65, 0.2), (0.62, 0.45), (0.35, 0.85), (0.75, 0.85)]  # a "2"
        page.mouse.move(box["x"] + box["width"] * points[0][0], box["y"] + box["height"] * points[0][1])
        page.mouse.down()
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            for t in range(1, 11):
                x, y = x0 + (x1 - x0) * t / 10, y0 + (y1 - y0) * t / 10
                page.mouse.move(box["x"] + box["width"] * x, box["y"] + box["height"] * y)
        page.mouse.up()
        page.get_by_text("Probability of each class").wait_for()
        shot("draw")
        go_to(page, "Inside")
        page.get_by_text(re.compile(r"the first convolution's \d+ kernels")).wait_for()
        shot("inside-filters")
        page.get_by_role("tab", name="Embedding").click()
        page.get_by_text("as the network sees them after epoch").wait_for()
        shot("inside-embedding")
        page.locator('[data-testid="stSidebar"]').get_by_text("your drawing").click()
        page.get_by_role("tab", name="Feature maps").click()
        page.get_by_text("conv2 · Conv2d").wait_for()
        shot("inside-maps")
        go_to(page, "Runs")
        page.get_by_text("Filter by name").wait_for()
        page.locator('[data-testid="stDataFrame"]').first.wait_for()
        shot("runs")
        browser.close()
    class_scene()


def class_scene() -> None:
    """A shared server: one student trains, a second waits in the queue, the teacher looks at both."""
    runs = tempfile.mkdtemp(prefix="playground-screenshot-class-")
    env = {"PLAYGROUND_RUNS_DIR": runs, "PLAYGROUND_WORKSPACES": "private", "PLAYGROUND_TEACHER_KEY": "screenshot-key"}
    with running_app(env) as app, sync_playwright() as p:
        browser = launch_chromium(p)
        first, second, teacher = (new_visitor(browser, 120_000) for _ in range(3))
        for page, epochs in ((first, "20"), (second, "1")):
            page.goto(f"{app.url}/Model")
            set_numbers(page, {"Epochs": epochs})
            go_to(page, "Train")
            page.get_by_role("button", name=re.compile("Start training")).click()
        second.get_by_text(re.compile("Queued: 1 run ahead of yours")).wait_for()
        first.get_by_text("Accuracy").first.wait_for()
        second.wait_for_timeout(1500)
        second.screenshot(path=str(OUT / "train-queued.png"))
        print("wrote", OUT / "train-queued.png")
        teacher.goto(f"{app.url}/Teacher")
        teacher.get_by_label("Teacher key").fill("screenshot-key")
        teacher.get_by_label("Teacher key").press("Enter")
        teacher.get_by_text("Every run").wait_for()
        teacher.wait_for_timeout(2500)
        teacher.screenshot(path=str(OUT / "teacher.png"))
        print("wrote", OUT / "teacher.png")
        browser.close()


if __name__ == "__main__":
    main()
