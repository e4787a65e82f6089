"""End to end in a real browser: train a small model, draw a digit with the mouse, see the prediction, why,
the drawing's feature maps, and download the run's zip.

Debian's Chromium driven by Playwright against `streamlit run app.py` on a free port.
"""

from __future__ import annotations

import re
import shutil
import zipfile

import pytest
from browser import go_to, open_page, running_app, set_numbers

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it)")


def test_train_then_draw_a_digit_and_see_the_prediction(mnist):
    with running_app() as app, sync_api.sync_playwright() as p:
        url = app.url
        browser, page = open_page(p)

        page.goto(f"{url}/Model")
        set_numbers(page, {"Epochs": "1", "Train on only the first N images (0 = all)": "1500"})
        page.get_by_text("Learning rate: onecycle, 6 steps per epoch").first.wait_for()  # 1,500 images / batch 256

        go_to(page, "Train")
        page.get_by_text("first 1,500 images").wait_for()  # the settings travelled with the session
        page.get_by_role("button", name=re.compile("Start training")).click()
        page.get_by_text(re.compile(r"Test accuracy \d")).wait_for(timeout=180_000)

        go_to(page, "Draw")
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
        assert re.fullmatch(r"\d - \w+", value) or value == "Not sure", value
        assert re.search(r"\d+\.\d% (sure|for \d - \w+)", prediction.inner_text())
        if value == "Not sure":  # a model of one short epoch may well doubt a mouse-drawn 1
            page.get_by_text(re.compile("Below this model's threshold of \\d+%: perhaps")).wait_for()
        page.get_by_text("Probability of each class").wait_for()
        page.get_by_text("What the model sees").wait_for()
        page.get_by_text("Red pixels are those whose change would move the score most").wait_for()
        why = page.locator('[data-testid="stImage"]', has_text="why")
        assert why.count() == 1 and why.locator("img").evaluate("img => img.naturalWidth") == 168

        page.get_by_role("link", name=re.compile("Its feature maps, layer by layer")).click()
        page.locator('[data-testid="stSidebar"]').get_by_text("your drawing").click()
        page.get_by_role("tab", name="Feature maps").click()
        for layer in ("conv1** · Conv2d · 8 x 24 x 24", "pool2** · MaxPool2x2 · 32 x 4 x 4"):  # lenet-bn-fast
            page.get_by_text(layer.replace("**", "")).wait_for()
        page.get_by_role("tab", name="Why this answer").click()
        page.get_by_text("Grad-CAM").first.click()
        # a model of one short epoch may have no positive Grad-CAM evidence for a drawing: the page then says so
        page.get_by_text(re.compile("Where the last convolution's maps that favour this class are active|"
                                    "Grad-CAM finds nothing here")).first.wait_for()

        go_to(page, "Runs")  # the zip is made only when its button is clicked, on the server's own thread
        grid = page.locator('[data-testid="stDataFrame"]').first
        grid.wait_for()
        page.wait_for_timeout(1000)
        box = grid.bounding_box()
        page.mouse.click(box["x"] + 12, box["y"] + 52)  # the selection cell of the first row
        with page.expect_download() as download:
            page.get_by_role("button", name=re.compile("Download zip")).click()
        with zipfile.ZipFile(download.value.path()) as z:
            assert {"config.json", "epochs.csv", "best.safetensors", "evaluation.json"} <= set(z.namelist())
        assert page.get_by_text("Traceback").count() == 0
        browser.close()


def test_killing_the_server_mid_run_ends_its_worker_and_leaves_a_run_that_resumes(mnist, tmp_path):
    import signal
    import time

    from core.engine import resume
    from core.store import list_runs

    env = {"PLAYGROUND_RUNS_DIR": str(tmp_path / "runs")}
    with running_app(env) as app, sync_api.sync_playwright() as p:
        browser, page = open_page(p)
        page.goto(f"{app.url}/Model")
        set_numbers(page, {"Epochs": "3", "Train on only the first N images (0 = all)": "9000"})
        page.get_by_text("36 steps per epoch").first.wait_for()  # 9,000 images / batch 256
        go_to(page, "Train")
        page.get_by_role("button", name=re.compile("Start training")).click()

        deadline = time.monotonic() + 120
        while True:  # wait until epoch 1 is on disk, then pull the plug
            stores = list_runs(tmp_path / "runs")
            if stores and stores[0].epochs() and stores[0].has_training_state():
                break
            assert time.monotonic() < deadline, "epoch 1 never reached the disk"
            time.sleep(0.05)
        app.process.send_signal(signal.SIGKILL)
        app.process.wait()
        browser.close()

    store = list_runs(tmp_path / "runs")[0]
    deadline = time.monotonic() + 10
    while store.status()["status"] != "interrupted":  # its worker sees the server gone and exits
        assert time.monotonic() < deadline, store.status()
        time.sleep(0.1)
    assert 1 <= len(store.epochs()) < 3

    with running_app(env) as app, sync_api.sync_playwright() as p:  # the server comes back
        browser, page = open_page(p)
        page.goto(f"{app.url}/Train")
        page.get_by_text("1 run was interrupted when its process stopped").wait_for(timeout=60_000)
        browser.close()

    result = resume(store)
    assert result.status == "finished" and [e["epoch"] for e in result.epochs] == [1, 2, 3]


def test_uploading_a_csv_on_the_data_page_good_and_bad(mnist, tmp_path):
    good = tmp_path / "digits.csv"
    rows = [[int(label)] + image.flatten().tolist() for image, label in zip(mnist.train_images[:300], mnist.train_labels[:300])]
    good.write_text("label," + ",".join(f"pixel{i}" for i in range(784)) + "\n" + "\n".join(",".join(map(str, r)) for r in rows))
    bad = tmp_path / "broken.csv"
    bad.write_text("\n".join(",".join(map(str, r)) for r in rows[:5]) + "\n3,7,abc\n")
    with running_app() as app, sync_api.sync_playwright() as p:
        browser, page = open_page(p)
        page.goto(f"{app.url}/Data")
        page.get_by_text("Upload your own").click()
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(bad))
        page.get_by_text("broken.csv, row 6: 3 columns, expected 785").wait_for()
        assert page.get_by_text("Traceback").count() == 0
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(good))
        page.get_by_text("240 training and 60 test images of 28 x 28 pixels").wait_for()
        browser.close()


def test_uploading_a_zip_of_train_and_test_folders_keeps_its_splits(mnist, tmp_path):
    import io
    import zipfile

    from PIL import Image

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for split, start, count in (("train", 0, 120), ("test", 500, 30)):
            for i in range(start, start + count):
                png = io.BytesIO()
                Image.fromarray(mnist.train_images[i, 0].numpy()).save(png, format="PNG")
                z.writestr(f"digits/{split}/{int(mnist.train_labels[i])}/{i}.png", png.getvalue())
    (tmp_path / "digits.zip").write_bytes(buffer.getvalue())
    with running_app() as app, sync_api.sync_playwright() as p:
        browser, page = open_page(p)
        page.goto(f"{app.url}/Data")
        page.get_by_text("Upload your own").click()
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(tmp_path / "digits.zip"))
        page.get_by_text("120 training and 30 test images of 28 x 28 pixels").wait_for()
        page.get_by_text("Read as train/ and test/ folders, their splits kept as given.").wait_for()
        assert page.get_by_text("Traceback").count() == 0
        browser.close()
