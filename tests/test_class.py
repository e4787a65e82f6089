"""A class on one server, in a real browser: private workspaces, the fair queue, the teacher, a cold start, a killed worker.

Several Chromium contexts (each a student with cookies of their own) against one
`streamlit run app.py`, as a teacher's shared link is used.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time

import pytest
from browser import go_to, launch_chromium, new_visitor, running_app, set_numbers

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it)")

TEACHER_KEY = "a-key-only-the-teacher-knows"


def configure(page, url: str, epochs: str, images: str) -> None:
    page.goto(f"{url}/Model")
    set_numbers(page, {"Epochs": epochs, "Train on only the first N images (0 = all)": images})
    page.get_by_text(re.compile(r"steps per epoch")).first.wait_for()


def start(page) -> None:
    go_to(page, "Train")
    page.get_by_role("button", name=re.compile("Start training")).click()


def test_three_students_and_a_teacher_share_one_server(mnist, tmp_path):
    from core.store import RunStore, list_runs

    env = {"PLAYGROUND_RUNS_DIR": str(tmp_path / "runs"), "PLAYGROUND_WORKSPACES": "private",
           "PLAYGROUND_TEACHER_KEY": TEACHER_KEY}
    with running_app(env) as app, sync_api.sync_playwright() as p:
        browser = launch_chromium(p)
        a, b, c, teacher = (new_visitor(browser, 120_000) for _ in range(4))

        configure(a, app.url, "30", "20000")
        start(a)
        a.get_by_text(re.compile(r"samples/s")).first.wait_for()  # A trains
        (status_file,) = (tmp_path / "runs" / "_workspaces").glob("*/*/status.json")
        run_a = RunStore(status_file.parent)
        assert list_runs(tmp_path / "runs") == []  # nothing in the local workspace: A's run is A's

        for student in (b, c):  # B and C see nothing of A's run, and cannot stop it
            configure(student, app.url, "1", "1500")
            go_to(student, "Train")
            student.get_by_text("No run yet").wait_for()
            assert student.get_by_text(run_a.id).count() == 0
            assert student.get_by_role("button", name=re.compile("Stop")).is_disabled()
            go_to(student, "Runs")
            student.get_by_text("No runs yet").wait_for()
        start(b)
        b.get_by_text("Queued: 1 run ahead of yours (1 training, 0 waiting)").wait_for()
        start(c)
        c.get_by_text("Queued: 2 runs ahead of yours (1 training, 1 waiting)").wait_for()

        a.reload()  # A's workspace is held by its browser: a reload still shows A's run
        a.get_by_text(re.compile(r"samples/s")).first.wait_for()

        teacher.goto(f"{app.url}/Teacher")
        teacher.get_by_label("Teacher key").fill(TEACHER_KEY)
        teacher.get_by_label("Teacher key").press("Enter")
        teacher.get_by_text("Every run").wait_for()
        assert teacher.locator('[data-testid="stMetricValue"]').nth(1).inner_text() == "2"  # queued
        teacher.locator('[data-testid="stSelectbox"]', has_text="Run to stop or delete").click()
        teacher.get_by_role("option", name=re.compile(re.escape(run_a.id))).click()
        teacher.get_by_role("button", name=re.compile("Stop this run")).click()

        a.get_by_text(re.compile("Stopped by request")).wait_for()
        b.get_by_text(re.compile(r"Test accuracy \d")).wait_for(timeout=180_000)  # then B trains
        c.get_by_text(re.compile(r"Test accuracy \d")).wait_for(timeout=180_000)  # then C
        c_key = next(cookie["value"] for cookie in c.context.cookies() if cookie["name"] == "playground_workspace")
        a.goto(f"{app.url}/Train?workspace={c_key}")  # C's link, opened by A: A is asked, not moved
        a.get_by_text("This link opens another workspace").wait_for()
        a.get_by_text(re.compile("Stopped by request")).wait_for()  # still A's own run
        for page in (a, b, c, teacher):
            assert page.get_by_text("Traceback").count() == 0
        browser.close()


def test_a_cold_server_serves_every_first_visit_without_an_error(mnist, tmp_path):
    env = {"PLAYGROUND_RUNS_DIR": str(tmp_path / "runs")}
    with running_app(env) as app, sync_api.sync_playwright() as p:
        browser = launch_chromium(p)
        pages = {path: new_visitor(browser, 120_000) for path in ("", "Train", "Runs", "Data", "Results", "Model")}
        for path, page in pages.items():  # all at once: none waits for another to render
            page.goto(f"{app.url}/{path}", wait_until="commit")
        titles = {"": "ConvNet Playground", "Train": "Train", "Runs": "Runs", "Data": "Data", "Results": "Results",
                  "Model": "Model and hyperparameters"}
        for path, page in pages.items():
            page.get_by_role("heading", name=re.compile(titles[path])).first.wait_for()
        time.sleep(2)  # let every script run finish
        for path, page in pages.items():
            assert page.locator('[data-testid="stException"]').count() == 0, path
            assert page.get_by_text("ImportError").count() == 0, path
        browser.close()


def test_a_killed_worker_leaves_the_server_serving_and_the_run_resumable(mnist, tmp_path):
    from core.store import list_runs

    env = {"PLAYGROUND_RUNS_DIR": str(tmp_path / "runs")}
    with running_app(env) as app, sync_api.sync_playwright() as p:
        browser = launch_chromium(p)
        page = new_visitor(browser, 120_000)
        configure(page, app.url, "3", "9000")
        start(page)
        deadline = time.monotonic() + 120
        while not (list_runs(tmp_path / "runs") and list_runs(tmp_path / "runs")[0].epochs()):
            assert time.monotonic() < deadline, "epoch 1 never reached the disk"
            time.sleep(0.1)
        store = list_runs(tmp_path / "runs")[0]
        os.kill(store.status()["pid"], signal.SIGKILL)  # as the kernel's out-of-memory killer would
        page.get_by_text(re.compile("The worker process ended unexpectedly")).wait_for()
        assert app.process.poll() is None
        go_to(page, "Runs")
        page.get_by_text("Select one run to act on it").wait_for()
        page.locator('[data-testid="stDataFrame"]').click(position={"x": 12, "y": 52})  # the first row's tick box
        page.get_by_role("button", name=re.compile("Resume")).click()
        page.get_by_text(re.compile(r"Test accuracy \d")).wait_for(timeout=180_000)
        assert [e["epoch"] for e in store.epochs()] == [1, 2, 3]
        browser.close()
