"""Every page through Streamlit's AppTest, and the journey: train from the Train page, read Results, draw."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.config import TrainConfig
from core.jobs import manager
from test_drawing import stroke_canvas

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 120


def open_page(page: str | None = None, at: AppTest | None = None) -> AppTest:
    at = at or AppTest.from_file(APP, default_timeout=TIMEOUT)
    if page is None:
        at.run()
    else:
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def figures(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def test_home_shows_device_datasets_and_the_journey(mnist):
    at = open_page()
    assert at.metric[0].value.startswith("CPU") or "NVIDIA" in at.metric[0].value
    table = at.dataframe[0].value
    assert list(table["dataset"]) == ["MNIST", "Fashion-MNIST", "CIFAR-10"]
    assert table["status"][0] == "✅ ready"
    assert "Learn how convolutional networks train" in at.markdown[0].value


def test_data_page_samples_balance_and_augmentation(mnist):
    at = open_page("pages/1_Data.py")
    assert at.radio[0].value == "mnist"
    assert "60,000 training and 10,000 test images" in at.markdown[0].value
    specs = figures(at)
    balance = specs[0]["data"]
    assert [trace["name"] for trace in balance] == ["train", "validation", "test"]
    assert sum(balance[0]["y"]) + sum(balance[1]["y"]) == 60000
    assert len(at.get("image")) >= 32 + 10 * 8  # the sample grid and a row per class
    at.button[0].click().run()  # reshuffle
    assert not at.exception


def test_data_page_refuses_a_bad_upload_with_a_message():
    at = open_page("pages/1_Data.py")
    at.radio[0].set_value("upload").run()
    assert not at.exception
    assert any("upload" in i.value.lower() for i in at.info)


def test_model_page_layer_table_recipes_and_lr_plot(mnist):
    at = open_page("pages/2_Model.py")
    assert at.selectbox(key="hp_model").value == "lenet5"
    assert any("61,706 parameters" in m.value for m in at.markdown)
    lr_plot = figures(at)[0]
    assert lr_plot["layout"]["title"]["text"].startswith("Learning rate: onecycle")
    at.button(key="recipe_lenet5-classic-sgd").click().run()
    assert at.selectbox(key="hp_model").value == "lenet5-classic"
    assert at.number_input(key="hp_lr").value == 0.5 and at.number_input(key="hp_epochs").value == 16
    assert at.selectbox(key="hp_scheduler").value == "none"
    assert at.session_state["train_config"]["lr"] == 0.5
    at.selectbox(key="hp_scheduler").set_value("multistep").run()
    assert not at.exception and at.multiselect(key="hp_milestones").value == [2, 4]


def test_train_results_and_draw_journey(mnist):
    at = open_page("pages/3_Train.py")
    cfg = TrainConfig(model="lenet5", epochs=1, batch_size=64, limit_train=600, val_split=0.05, device="cpu")
    at.session_state["train_config"] = dataclasses.asdict(cfg)
    at.run()
    at.button[0].click().run()  # Start
    assert not at.exception
    job = manager().get(at.session_state["job_id"])
    assert job is not None and job.wait(timeout=120), job.message
    assert job.status == "finished", job.message
    at.run()
    assert any("Test accuracy" in s.value for s in at.success)
    loss = figures(at)[0]
    assert {t["name"] for t in loss["data"]} >= {"train (per step)", "train (smoothed)", "validation"}

    at = open_page("pages/4_Results.py", at)
    assert at.metric[0].label == "Test accuracy"
    assert float(at.metric[0].value.rstrip("%")) / 100 == pytest.approx(job.result.test_accuracy, abs=1e-4)
    heat = [f for f in figures(at) if f["data"][0]["type"] == "heatmap"][0]
    assert sum(map(sum, heat["data"][0]["z"])) == 10000
    assert at.dataframe[0].value["count"].sum() == 10000

    at = open_page("pages/5_Draw.py", at)
    assert at.metric == [] and "appears here" in at.caption[-1].value  # empty canvas: no prediction
    png = io.BytesIO()
    Image.fromarray(stroke_canvas([(150, 40), (135, 240)], width=22)).save(png, format="PNG")
    at.session_state["canvas_0"] = {"drawing": {"raw": {"objects": []}, "data": "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()},
                                    "backgroundFit": None}
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.metric[0].label == "Prediction" and at.metric[0].value in job.result.class_names
    bars = [f for f in figures(at) if f["data"][0]["type"] == "bar"][0]
    assert sum(bars["data"][0]["x"]) == pytest.approx(1.0, abs=1e-4)


def test_a_second_start_while_one_runs_is_refused(mnist):
    at = open_page("pages/3_Train.py")
    at.session_state["train_config"] = dataclasses.asdict(TrainConfig(model="lenet-bn", epochs=20, batch_size=32, device="cpu"))
    at.run()
    at.button[0].click().run()
    job = manager().get(at.session_state["job_id"])
    try:
        other = open_page("pages/3_Train.py")  # another browser session
        assert other.button[0].disabled  # Start is greyed out while the device is busy
        from core.jobs import DeviceBusy
        with pytest.raises(DeviceBusy, match="still training"):
            manager().start(TrainConfig(limit_train=100, device="cpu"))
        at.button[1].click().run()  # Stop
    finally:
        job.stop()
    assert job.wait(timeout=30) and job.status in ("stopped", "failed") and job.status == "stopped", job.message
