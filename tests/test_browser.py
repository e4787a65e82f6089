"""End to end in a real browser: train a small model, draw a digit with the mouse, see the prediction.

Debian's Chromium driven by Playwright against `streamlit run app.py` on a free port.
"""

from __future__ import annotations

import re
import shutil

import pytest

from browser import launch_chromium, running_app

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it)")


def test_train_then_draw_a_digit_and_see_the_prediction(mnist):
    with running_app() as url, sync_api.sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(60_000)

        page.goto(f"{url}/Model")
        epochs = page.get_by_label("Epochs", exact=True)
        epochs.fill("1")
        epochs.press("Enter")
        limit = page.get_by_label("Train on only the first N images (0 = all)")
        limit.fill("1500")
        limit.press("Enter")
        page.get_by_text("Learning rate: onecycle, 12 steps per epoch").first.wait_for()  # 1,500 images / batch 128

        page.locator('[data-testid="stSidebarNav"] a', has_text="Train").click()
        page.get_by_text("first 1,500 images").wait_for()  # the settings travelled with the session
        page.get_by_role("button", name=re.compile("Start training")).click()
        page.get_by_text(re.compile(r"Test accuracy \d")).wait_for(timeout=180_000)

        page.locator('[data-testid="stSidebarNav"] a', has_text="Draw").click()
        canvas = page.locator("canvas.upper-canvas")
        canvas.wait_for()
        page.get_by_text("appears here once you draw").wait_for()
        box = canvas.bounding_box()
        x, top = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.15
        page.mouse.move(x, top)
        page.mouse.down()
        for i in range(1, 21):  # a vertical stroke: a "1"
            page.mouse.move(x - i * 0.4, top + i * box["height"] * 0.035)
        page.mouse.up()

        prediction = page.locator('[data-testid="stMetric"]', has_text="Prediction")
        prediction.wait_for()
        value = prediction.locator('[data-testid="stMetricValue"]').inner_text()
        assert re.fullmatch(r"\d - \w+", value), value
        assert re.search(r"\d+\.\d% sure", prediction.inner_text())
        page.get_by_text("Probability of each class").wait_for()
        page.get_by_text("What the model sees").wait_for()
        browser.close()
