"""The server as a class meets it: started before anyone arrives, and every page for many sessions at once.

Real `streamlit run app.py` servers, visited through Streamlit's websocket protocol
(tests/socket_visitor.py), so a dozen visitors cost the test machine little.
"""

from __future__ import annotations

import asyncio
import re
import time

from browser import running_app
from socket_visitor import SocketVisitor

from core.config import TrainConfig
from core.store import ACTIVE, RunStatus, RunStore
from core.workspaces import LOCAL

PAGES = ["", "Data", "Model", "Train", "Results", "Draw", "Runs", "Teacher"]


async def visit_every_page(url: str) -> list:
    visitor = SocketVisitor(url)
    views = [await visitor.open(page) for page in PAGES]
    await visitor.close()
    return views


def test_twelve_visitors_at_once_each_get_every_page_and_a_workspace_of_their_own(mnist, tmp_path):
    env = {"PLAYGROUND_RUNS_DIR": str(tmp_path / "runs"), "PLAYGROUND_WORKSPACES": "private"}
    with running_app(env) as app:
        async def class_arrives():
            return await asyncio.gather(*(visit_every_page(app.url) for _ in range(12)))

        classes = asyncio.run(class_arrives())
    keys = set()
    for views in classes:
        assert [v.exceptions for v in views] == [[]] * len(PAGES)
        home, data, model = views[:3]
        assert "The journey" in home.texts
        assert any("60,000 training and 10,000 test images" in t for t in data.texts)
        assert "▶️ Start training" in views[3].buttons
        keys.update(t for t in home.texts if re.fullmatch(r"[\w-]{32}", t))  # the workspace key, shown on Home
    assert len(keys) == 12  # twelve visitors, twelve private workspaces


def test_a_restarted_server_starts_the_queue_on_disk_before_anyone_visits(small_mnist, tmp_path):
    runs = tmp_path / "runs"
    cfg = TrainConfig(epochs=1, limit_train=1000, device="cpu")
    store = RunStore.create(cfg, "mnist", root=runs, workspace=LOCAL, pid=None, pid_start=None,
                            queued_at=time.time(), message="Waiting for a free slot")
    with running_app({"PLAYGROUND_RUNS_DIR": str(runs)}):
        deadline = time.monotonic() + 120
        while store.status()["status"] in ACTIVE and time.monotonic() < deadline:
            time.sleep(0.2)
    assert store.status()["status"] == RunStatus.FINISHED, store.status()
