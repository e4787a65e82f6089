"""Every page through Streamlit's AppTest, and the journey: train from the Train page, read Results, draw."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from pathlib import Path

import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st_
from PIL import Image
from streamlit.testing.v1 import AppTest
from test_drawing import stroke_canvas

from core.config import TrainConfig
from core.scheduler import scheduler
from core.settings import HostSettings
from core.store import ACTIVE, RunStatus, find_run
from pages.lib import insides

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


def wait_until_done(run_id: str, root=None, timeout: float = 180) -> dict:
    """Poll a run's status.json (its worker process writes it) until the run is no longer active."""
    import time

    store = find_run(run_id, root)
    deadline = time.monotonic() + timeout
    while store.status()["status"] in ACTIVE:
        assert time.monotonic() < deadline, store.status()
        time.sleep(0.1)
    return store.status()


def figures(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def titled(at: AppTest, title: str) -> dict:
    """The one chart of the page with this title."""
    [chart] = [f for f in figures(at) if f["layout"].get("title", {}).get("text") == title]
    return chart


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
    assert sum(len(row.proto.imgs) for row in at.get("image")) >= 32 + 10 * 8  # the sample grid and a row per class
    at.button[0].click().run()  # reshuffle
    assert not at.exception


def test_what_pages_derive_from_a_dataset_is_computed_once_for_every_visitor(mnist, monkeypatch):
    import PIL.Image
    import streamlit as st

    import core.explore
    import core.summary

    calls = {"mean_images": 0, "examples_per_class": 0, "layer_table": 0, "fromarray": 0}

    def counted(module, name, key=None):
        real = getattr(module, name)

        def count(*args, **kwargs):
            calls[key or name] += 1
            return real(*args, **kwargs)
        monkeypatch.setattr(module, name, count)

    counted(core.explore, "mean_images")
    counted(core.explore, "examples_per_class")
    counted(core.summary, "layer_table")
    counted(PIL.Image, "fromarray")  # each image encoded for display
    st.cache_data.clear()
    open_page("pages/1_Data.py"), open_page("pages/2_Model.py")
    first = dict(calls)
    assert first["mean_images"] == first["examples_per_class"] == first["layer_table"] == 1 and first["fromarray"] >= 32
    for _ in range(2):  # two more visitors, sessions of their own
        open_page("pages/1_Data.py"), open_page("pages/2_Model.py")
    assert calls == first


def test_data_page_refuses_a_bad_upload_with_a_message():
    at = open_page("pages/1_Data.py")
    at.radio[0].set_value("upload").run()
    assert not at.exception
    assert any("upload" in i.value.lower() for i in at.info)


def test_model_page_layer_table_recipes_and_lr_plot(mnist):
    at = open_page("pages/2_Model.py")
    assert at.selectbox(key="hp_model").value == "lenet-bn-fast"
    assert any("141,090 parameters" in m.value for m in at.markdown)
    lr_plot = figures(at)[0]
    assert lr_plot["layout"]["title"]["text"].startswith("Learning rate: onecycle")
    at.button(key="recipe_lenet5-classic-sgd").click().run()
    assert at.selectbox(key="hp_model").value == "lenet5-classic"
    assert at.number_input(key="hp_lr").value == 0.5 and at.number_input(key="hp_epochs").value == 16
    assert at.selectbox(key="hp_scheduler").value == "none"
    assert at.session_state["train_config"]["lr"] == 0.5
    at.selectbox(key="hp_scheduler").set_value("multistep").run()
    assert not at.exception and at.multiselect(key="hp_milestones").value == [2, 4]


def test_the_model_page_names_the_models_that_take_images_its_model_cannot(mnist):
    from core.data import ImageDataset

    gen = torch.Generator().manual_seed(0)
    tiny = ImageDataset("tiny", torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8, generator=gen),
                        torch.arange(40) % 2, torch.randint(0, 256, (10, 1, 8, 8), dtype=torch.uint8, generator=gen),
                        torch.arange(10) % 2, ("a", "b"), (0.5,), (0.25,))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("pages/2_Model.py")
    at.session_state["dataset_name"], at.session_state["user_dataset"] = "upload", tiny
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert "lenet-bn-fast cannot take images of 1 x 8 x 8 pixels" in at.warning[0].value and "mlp" in at.warning[0].value
    assert figures(at)[0]["layout"]["title"]["text"].startswith("Learning rate")  # the rest of the page is there


def test_a_schedule_of_millions_of_steps_is_previewed_in_a_few_thousand(mnist):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("pages/2_Model.py")
    at.query_params.update({"batch_size": "1", "epochs": "500"})  # 54,000 steps an epoch: 27 million in all
    at.run()
    assert not at.exception and not at.warning, [w.value for w in at.warning]
    plot = figures(at)[0]
    assert plot["layout"]["title"]["text"] == "Learning rate: onecycle, 54,000 steps per epoch"
    assert len(plot["data"][0]["y"]) <= 2000 and plot["data"][0]["x"][-1] == pytest.approx(500, abs=0.5)


def test_a_device_this_machine_lacks_is_named_on_the_train_page_and_refused_at_start(mnist, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a link to ?device=cuda on a server without a GPU
    at = open_page("pages/3_Train.py")
    at.session_state["train_config"] = dataclasses.asdict(TrainConfig(device="cuda", limit_train=600))
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("CUDA, which this machine does not have" in m.value for m in at.markdown)
    at.button[0].click().run()  # Start
    assert not at.exception and "run_id" not in at.session_state
    assert any("no CUDA GPU is available here" in e.value for e in [*at.error, *at.warning])


def test_train_results_and_draw_journey(mnist):
    at = open_page("pages/3_Train.py")
    cfg = TrainConfig(model="lenet5", epochs=1, batch_size=64, limit_train=600, val_split=0.05, device="cpu")
    at.session_state["train_config"] = dataclasses.asdict(cfg)
    at.run()
    at.button[0].click().run()  # Start
    assert not at.exception, [e.message for e in at.exception]
    status = wait_until_done(at.session_state["run_id"])
    assert status["status"] == RunStatus.FINISHED, status["message"]
    at.run()
    assert any("Test accuracy" in s.value for s in at.success)
    loss = figures(at)[0]
    assert {t["name"] for t in loss["data"]} >= {"train (per step)", "train (smoothed)", "validation"}
    layers = titled(at, "Inside the layers: gradient norm of the weights")
    assert [t["name"] for t in layers["data"]] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert layers["layout"]["yaxis"]["type"] == "log"
    at.radio(key="layer_measure").set_value("std").run()
    assert titled(at, "Inside the layers: activation standard deviation")["layout"]["yaxis"]["type"] == "linear"

    at = open_page("pages/4_Results.py", at)
    assert at.metric[0].label == "Test accuracy"
    assert float(at.metric[0].value.rstrip("%")) / 100 == pytest.approx(status["test_accuracy"], abs=1e-4)
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
    bars = [f for f in figures(at) if f["data"][0]["type"] == "bar"][0]
    assert sum(bars["data"][0]["x"]) == pytest.approx(1.0, abs=1e-4)
    threshold = json.loads(find_run(at.session_state["run_id"]).best_checkpoint.with_suffix(".json").read_text())["threshold"]
    top, top_name = bars["data"][0]["x"][0], bars["data"][0]["y"][0]  # sorted, surest first
    assert at.metric[0].label == "Prediction"
    assert at.metric[0].value == (top_name if top >= threshold else "Not sure"), (top, threshold)
    assert (top < threshold) == any("perhaps" in w.value for w in at.warning)
    assert at.radio(key="draw_method").value == "saliency" and len(at.get("image")) == 2  # the input, and why


def test_a_second_start_while_one_trains_waits_in_the_queue_and_can_be_cancelled(mnist):
    at = open_page("pages/3_Train.py")
    at.session_state["train_config"] = dataclasses.asdict(TrainConfig(model="lenet-bn", epochs=20, batch_size=32, device="cpu"))
    at.run()
    at.button[0].click().run()
    first = find_run(at.session_state["run_id"])
    other = open_page("pages/3_Train.py")  # another browser session
    other.session_state["train_config"] = dataclasses.asdict(TrainConfig(limit_train=100, device="cpu"))
    other.run()
    other.button[0].click().run()  # Start is not refused: the run is queued
    try:
        second = find_run(other.session_state["run_id"])
        assert second.status()["status"] == RunStatus.QUEUED
        assert any("Queued: 1 run ahead of yours" in i.value for i in other.info), [i.value for i in other.info]
        other.button[1].click().run()  # Cancel
        assert second.status()["status"] == RunStatus.CANCELLED
        at.run()
        at.button[1].click().run()  # Stop
    finally:
        scheduler().stop(first)
    assert wait_until_done(first.id, timeout=60)["status"] == RunStatus.STOPPED


def test_private_workspaces_do_not_see_each_others_runs(small_mnist, tmp_path, monkeypatch):
    from core.engine import train
    from core.workspaces import LOCAL

    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(scheduler(), "settings", HostSettings(workspaces="private"))
    train(TrainConfig(epochs=1, batch_size=64, limit_train=300, device="cpu"), dataset=small_mnist)  # a CLI run: local
    alice, bob = open_page("pages/6_Runs.py"), open_page("pages/6_Runs.py")
    ws_a, ws_b = alice.session_state["workspace"], bob.session_state["workspace"]
    assert LOCAL not in (ws_a, ws_b) and ws_a != ws_b
    assert any("No runs yet" in i.value for i in alice.info)  # the local run is not theirs
    cfg = TrainConfig(epochs=1, batch_size=64, limit_train=300, val_split=0.05, device="cpu")
    alices = scheduler().submit(cfg, ws_a, "mnist")
    assert wait_until_done(alices.id, alices.path.parent)["status"] == RunStatus.FINISHED
    alice.run()
    assert list(alice.dataframe[0].value["id"]) == [alices.id]
    bob.run()
    assert any("No runs yet" in i.value for i in bob.info)
    bob.session_state["run_id"] = alices.id  # whatever Bob's session holds, Alice's run is not reachable
    bob = open_page("pages/3_Train.py", bob)
    assert not any(alices.id in c.value for c in bob.caption) and not bob.success
    bob = open_page("pages/4_Results.py", bob)
    assert any("No finished run yet" in i.value for i in bob.info)


@pytest.fixture
def two_runs(small_mnist, tmp_path, monkeypatch):
    """Two finished runs that differ only in learning rate, in a runs folder of their own."""
    from core.engine import train
    from core.store import list_runs

    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    for lr in (0.003, 0.01):
        train(TrainConfig(lr=lr, epochs=1, batch_size=64, limit_train=500, device="cpu"), dataset=small_mnist)
    return list_runs()


def test_results_of_a_run_whose_csv_was_edited_since_show_no_mistakes_of_other_images(mnist, tmp_path, monkeypatch):
    from core.engine import train

    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    csv_path = tmp_path / "digits.csv"

    def write(count: int, offset: int) -> None:
        images, labels = mnist.train_images[offset:offset + count], mnist.train_labels[offset:offset + count]
        csv_path.write_text("\n".join(",".join(map(str, [int(y), *x.flatten().tolist()])) for x, y in zip(images, labels)))

    write(500, 0)
    train(TrainConfig(dataset=str(csv_path), model="mlp", epochs=1, batch_size=64, device="cpu"))
    write(300, 1000)  # edited afterwards: fewer and other images
    at = open_page("pages/4_Results.py")
    assert not at.exception, [e.message for e in at.exception]
    assert any("not the ones this run was tested on" in i.value for i in at.info)
    assert at.metric[0].label == "Test accuracy"  # the run itself still shows


def select_rows(at: AppTest, rows: list[int]) -> None:
    """Tick rows of the runs table, as a click in the browser would."""
    at.session_state["runs_table"] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    at.run()
    assert not at.exception, [e.message for e in at.exception]


def widget(elements, label: str):
    return next(e for e in elements if e.label.startswith(label))


def test_runs_page_compares_renames_exports_and_deletes(two_runs):
    at = open_page("pages/6_Runs.py")
    table = at.dataframe[0].value
    assert len(table) == 2 and set(table["status"]) == {"finished"}
    assert set(table["lr"]) == {0.003, 0.01}

    select_rows(at, [0, 1])
    assert "2 runs compared" in at.subheader[0].value
    assert any("1 setting differs" in m.value for m in at.markdown)
    assert len(figures(at)[1]["data"]) == 2  # one validation-accuracy line per run

    select_rows(at, [1])
    store = next(s for s in two_runs if s.id == table.iloc[1]["id"])
    widget(at.text_input, "Name").set_value("baseline")
    widget(at.text_input, "Tags").set_value("lenet, course")
    at.get("form_submit_button")[0].click()  # no public helper for form buttons: the element is a Button
    at.run()
    assert store.status()["name"] == "baseline" and store.status()["tags"] == ["lenet", "course"]
    labels = [b.proto.label for b in at.get("download_button")]
    assert any("Download zip" in label for label in labels) and any("script" in label for label in labels)

    assert widget(at.button, "Delete").disabled  # not before the confirmation
    widget(at.checkbox, "Yes, delete").check().run()
    widget(at.button, "Delete").click().run()
    assert not store.path.exists()


def test_runs_page_resumes_a_stopped_run(mnist, tmp_path, monkeypatch):
    import threading

    from core.engine import train
    from core.store import list_runs

    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    stop = threading.Event()
    first = train(TrainConfig(epochs=2, batch_size=64, limit_train=640, device="cpu"),
                  on_event=lambda e: stop.set() if e.kind == "epoch" else None, stop=stop)
    assert first.status == "stopped" and len(first.epochs) == 1

    at = open_page("pages/6_Runs.py")
    select_rows(at, [0])
    widget(at.button, "⏯️ Resume").click().run()
    assert not at.exception, [e.message for e in at.exception]
    store = list_runs()[0]
    assert wait_until_done(store.id)["status"] == RunStatus.FINISHED
    assert [e["epoch"] for e in store.epochs()] == [1, 2]  # the curves include the epoch before the stop
    at = open_page("pages/3_Train.py", at)
    assert [e["epoch"] for e in store.epochs()] == [1, 2] and any("Test accuracy" in s.value for s in at.success)


def test_model_settings_travel_in_the_url(mnist):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("pages/2_Model.py")
    at.query_params.update({"model": "lenet-bn", "lr": "0.02", "epochs": "7", "augment": "rotate,crop", "dataset": "fashion-mnist"})
    at.run()
    assert not at.exception and not at.warning
    assert at.selectbox(key="hp_model").value == "lenet-bn"
    assert at.number_input(key="hp_lr").value == 0.02 and at.number_input(key="hp_epochs").value == 7
    assert at.multiselect(key="hp_augment").value == ["rotate", "crop"]
    assert at.session_state["dataset_name"] == "fashion-mnist"
    at.number_input(key="hp_epochs").set_value(9).run()
    assert at.query_params["epochs"] == "9" and at.query_params["model"] == "lenet-bn"
    at.selectbox(key="hp_tta").set_value("flip-translate").run()
    assert at.query_params["tta"] == "flip-translate" and at.session_state["hp_tta"] == "flip-translate"


def test_a_link_with_invalid_values_opens_with_defaults_and_a_notice(mnist):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("pages/2_Model.py")
    at.query_params.update({"lr": "fast", "model": "lenet-bn"})
    at.run()
    assert not at.exception
    assert "lr='fast'" in at.warning[0].value and "defaults" in at.warning[0].value
    assert at.selectbox(key="hp_model").value == "lenet-bn-fast" and at.number_input(key="hp_lr").value == 0.03


def edge_links() -> list[dict[str, str]]:
    """A link at each end of every limit, with the optimizer or schedule that shows its widget."""
    from core.config import LIMITS

    shows = {"momentum": {"optimizer": "sgd"}, "gamma": {"scheduler": "step"}, "step_epochs": {"scheduler": "step"},
             "rotate_degrees": {"augment": "rotate"}}
    links = [{name: str(value), **shows.get(name, {})} for name, limit in LIMITS.items() for value in (limit.low, limit.high)]
    return links + [{"batch_size": "300"}, {"scheduler": "multistep", "milestones": "3,200,500"},
                    {"model": "mlp", "hidden": "8192,1"}, {"val_split": "0.12", "label_smoothing": "0.33"}]


@pytest.mark.parametrize("link", edge_links(), ids=lambda link: ",".join(f"{k}={v}" for k, v in link.items()))
def test_every_value_the_config_accepts_opens_from_a_link_as_itself(mnist, link):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("pages/2_Model.py")
    at.query_params.update(link)
    at.run()
    assert not at.exception and not at.warning and not at.error, [e.value for e in [*at.warning, *at.error]]
    saved = at.session_state["train_config"]
    for name, text in link.items():
        value = saved[name]
        shown = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        assert shown == text or float(shown) == float(text), (name, shown, text)


def test_a_link_outside_the_limits_opens_with_the_defaults_and_says_which_value(mnist):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("pages/2_Model.py")
    at.query_params.update({"seed": "-1", "epochs": "4"})
    at.run()
    assert not at.exception and "Seed must be a whole number from 0" in at.warning[0].value
    assert at.number_input(key="hp_epochs").value == TrainConfig().epochs != 4


@pytest.mark.parametrize("damage, message", [
    (lambda run: run.joinpath("best.json").write_text(
        run.joinpath("best.json").read_text().replace('"num_classes": 10', '"num_classes": 10000000')), "num_classes is 10000000"),
    (lambda run: run.joinpath("best.json").write_text("[1, 2]"), "not a checkpoint description"),
    (lambda run: run.joinpath("evaluation.json").write_text(
        json.dumps({**json.loads(run.joinpath("evaluation.json").read_text()), "confusion_matrix": [[1], [2]]})),
     "test report does not fit its 10 classes"),
])
def test_results_of_a_run_with_a_damaged_description_or_report_say_so_and_the_other_run_still_shows(
        two_runs, damage, message):
    damage(two_runs[0].path)
    at = open_page("pages/4_Results.py")  # the newest run first: the damaged one
    assert message in at.error[0].value
    at.selectbox[0].set_value(two_runs[1].id).run()
    assert not at.exception and not at.error and at.metric[0].value.endswith("%")


LINK_TEXT = st_.one_of(st_.integers(-3, 600).map(str), st_.floats(-1, 12, allow_nan=False).map(lambda v: f"{v:.3g}"),
                       st_.sampled_from(["", "x", "nan", "inf", "1,2", "sgd", "step", "multistep", "mlp", "lenet-bn",
                                         "rotate,crop", "cifar10", "fashion-mnist", "1", "0"]))
LINK_FIELDS = st_.sampled_from([f for f in TrainConfig().to_dict() if f != "run_dir"] + ["colour"])


@settings(max_examples=25)
@given(link=st_.dictionaries(LINK_FIELDS, LINK_TEXT, max_size=5))
def test_any_link_opens_the_model_page_without_an_exception(mnist, link):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("pages/2_Model.py")
    at.query_params.update(link)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    event("notice" if at.warning else "opened as linked")


def test_a_run_of_a_lecture_recipe_is_drawn_beside_the_lectures_curve(small_mnist, tmp_path, monkeypatch):
    from core.engine import train
    from core.recipes import RECIPES

    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    recipe = RECIPES["course-lenet5-classic-xavier"]
    cfg = dataclasses.replace(recipe.train_config(), epochs=2, device="cpu")  # fewer epochs: still the lecture's recipe
    result = train(cfg, dataset=small_mnist)
    train(dataclasses.replace(cfg, lr=0.1), dataset=small_mnist)  # another recipe: no lecture beside it

    at = open_page("pages/4_Results.py")
    assert not [f for f in figures(at) if any(t.get("name", "").startswith("lecture") for t in f["data"])]
    at.selectbox[0].set_value(Path(result.run_dir).name).run()
    per_epoch = titled(at, "Accuracy per epoch")
    traces = {t["name"]: t for t in per_epoch["data"]}
    assert traces["lecture (test, course-lenet5-classic-xavier)"]["y"] == pytest.approx([v / 100 for v in recipe.curve])
    assert traces["test (after each epoch)"]["y"] == pytest.approx([e["test_accuracy"] for e in result.epochs])
    assert "validation" not in traces  # the notebook had no validation split
    assert any("98.49 %" in c.value for c in at.caption)

    at.session_state["run_id"] = Path(result.run_dir).name
    at = open_page("pages/3_Train.py", at)
    accuracy = titled(at, "Accuracy")
    assert "lecture (test, course-lenet5-classic-xavier)" in {t["name"] for t in accuracy["data"]}


def test_inside_says_a_first_layer_fitted_to_the_data_does_not_learn(tmp_path, monkeypatch):
    """airbench's whitening kernels are computed from the images, not trained: the Filters tab must not tell the
    learner they start as noise. Its test-time flips: Grad-CAM says it explains the plain pass."""
    from core.data import ImageDataset
    from core.engine import train

    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    g = torch.Generator().manual_seed(0)
    tiny = ImageDataset("cifar10", torch.randint(0, 256, (64, 3, 32, 32), generator=g, dtype=torch.uint8),
                        torch.arange(64) % 10, torch.randint(0, 256, (20, 3, 32, 32), generator=g, dtype=torch.uint8),
                        torch.arange(20) % 10, tuple(f"c{i}" for i in range(10)), (0.5,) * 3, (0.25,) * 3)
    train(TrainConfig(dataset="cifar10", model="airbench", epochs=1, batch_size=32, device="cpu", tta="flip"), dataset=tiny)
    at = open_page("pages/5_Inside.py")
    captions = [c.value for c in at.caption]
    assert any("This first layer does not learn" in c for c in captions)
    assert not any("the kernels start as noise" in c for c in captions)
    at.session_state["drawn_input"] = torch.rand(3, 32, 32, generator=g)  # no CIFAR-10 here: an image as drawn
    at.run()
    at.sidebar.radio(key="inside_source").set_value("your drawing").run()
    assert not any("Grad-CAM looks at the image as it is only" in c.value for c in at.caption)  # gradient saliency first
    at.radio(key="inside_method").set_value("gradcam").run()
    assert not at.exception and any("Grad-CAM looks at the image as it is only" in c.value for c in at.caption)


def test_inside_shows_filters_per_epoch_feature_maps_and_why(two_runs):
    at = open_page("pages/5_Inside.py")
    assert at.select_slider(key="filters_epoch").value == 1 and at.select_slider(key="filters_epoch").options == ["0 (as initialised)", "1"]
    assert [m.value for m in at.markdown if m.value.startswith("**") and " · " in m.value] == [
        "**conv1** · Conv2d · 8 x 24 x 24", "**pool1** · MaxPool2x2 · 8 x 12 x 12", "**conv2** · Conv2d · 32 x 8 x 8",
        "**pool2** · MaxPool2x2 · 32 x 4 x 4"]  # the default lenet-bn-fast
    assert titled(at, "conv1, channel 0")["data"][0]["type"] == "heatmap"
    at.selectbox(key="maps_layer").set_value(2).run()
    at.number_input(key="maps_channel").set_value(15).run()
    assert titled(at, "conv2, channel 15")["data"][0]["z"]["shape"] == "8, 8"
    for method in ("integrated-gradients", "gradcam"):
        at.radio(key="inside_method").set_value(method).run()
        assert not at.exception, [e.message for e in at.exception]
    with pytest.MonkeyPatch.context() as patch:  # a map with nothing in it says why
        patch.setattr(insides, "attribution", lambda *args: torch.zeros(28, 28))
        at.run()
        assert any(i.value.startswith("Grad-CAM finds nothing here") for i in at.info)
        at.radio(key="inside_method").set_value("saliency").run()
        assert any(i.value.startswith("This method gives no pixel any weight") for i in at.info)
    trained_filters = at.get("image")[0].proto.imgs[0].url
    at.select_slider(key="filters_epoch").set_value("0 (as initialised)").run()
    assert not at.exception and at.get("image")[0].proto.imgs[0].url != trained_filters  # another picture
    at.sidebar.radio(key="inside_source").set_value("a mistake").run()
    assert not at.exception and at.sidebar.selectbox(key="inside_mistake").value is not None

    scatter = titled(at, "The first 1,000 test images as the network sees them after epoch 1")
    assert [t["name"] for t in scatter["data"] if t["showlegend"]] == [f"{d} - {w}" for d, w in enumerate(
        "zero one two three four five six seven eight nine".split())]
    wrong = [t for t in scatter["data"] if t["marker"]["symbol"] == "x"]  # the wrong answers, in their class's group
    assert wrong and all(t["legendgroup"] == str(int(t["name"][0])) for t in wrong)
    assert sum(len(t["customdata"]) for t in scatter["data"]) == 1000
    for picked, shown in ((5, True), ("5; rm -rf", False), (10**9, False)):  # what a browser may send
        at.session_state["embedding_chart"] = {"selection": {"points": [{"customdata": [picked]}], "point_indices": [],
                                                             "box": [], "lasso": []}}
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        assert any(c.startswith("test image 5: true") for i in at.get("image") for c in i.captions) == shown


def test_results_draws_the_threshold_the_coverage_and_why_a_mistake(two_runs):
    at = open_page("pages/4_Results.py")
    threshold = json.loads(two_runs[0].best_checkpoint.with_suffix(".json").read_text())["threshold"]
    reliability = [f for f in figures(at) if f["layout"].get("title", {}).get("text", "").startswith("Reliability")][0]
    assert reliability["layout"]["shapes"][0]["x0"] == pytest.approx(threshold)
    cover = titled(at, "Answering only when sure: accuracy of the answers kept")
    coverage, accuracy = cover["data"][0]["x"], cover["data"][0]["y"]
    assert coverage[-1] == pytest.approx(1.0) and accuracy[-1] == pytest.approx(two_runs[0].status()["test_accuracy"], abs=1e-6)
    assert cover["data"][1]["name"] == "this run's threshold"
    assert any(f"threshold {threshold:.1%}" in c.value for c in at.caption)
    assert at.selectbox(key="why_mistake").value is not None and at.radio(key="why_method").value == "saliency"
    at.radio(key="why_method").set_value("gradcam").run()
    assert not at.exception, [e.message for e in at.exception]


def test_the_draw_page_says_not_sure_below_the_threshold(two_runs):
    meta_path = two_runs[0].best_checkpoint.with_suffix(".json")
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "threshold": 0.999}))
    at = open_page("pages/5_Draw.py")
    png = io.BytesIO()
    Image.fromarray(stroke_canvas([(150, 40), (135, 240)], width=22)).save(png, format="PNG")
    at.session_state["canvas_0"] = {"drawing": {"raw": {"objects": []}, "data": "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()},
                                    "backgroundFit": None}
    at.run()
    assert at.metric[0].value == "Not sure"
    assert any("Below this model's threshold of 100%: perhaps" in w.value for w in at.warning)
    at = open_page("pages/5_Inside.py", at)  # the drawing is there too
    at.sidebar.radio(key="inside_source").set_value("your drawing").run()
    assert not at.exception and any(m.value.startswith("**conv1** · Conv2d") for m in at.markdown)
    at.session_state["drawn_input"] = torch.rand(1, 32, 32)  # drawn for a model of 32 x 32 grey images
    at.run()
    assert not at.exception and not at.sidebar.warning and any(m.value.startswith("**conv1** · Conv2d · 8 x 24 x 24")
                                                               for m in at.markdown)  # resized to this one's 28 x 28
    at.session_state["drawn_input"] = torch.rand(3, 28, 28)  # a photo, for a colour model
    at.run()
    assert at.sidebar.warning[0].value.startswith("Your drawing is colour and this model reads grey images")


def test_the_inside_page_of_a_run_with_damaged_histories_says_so(two_runs):
    from safetensors.torch import save_file

    run = two_runs[0]
    save_file({"0.weight": torch.zeros(0, 1, 5, 5)}, str(run.path / "filters.safetensors"))
    save_file({"0.points": torch.zeros(0, 2), "0.labels": torch.zeros(0, dtype=torch.long),
               "0.predicted": torch.zeros(0, dtype=torch.long)}, str(run.path / "embedding.safetensors"))
    save_file({"probabilities": torch.rand(5), "labels": torch.tensor([50])}, str(run.path / "evaluation.safetensors"))
    at = open_page("pages/5_Inside.py")
    assert any("damaged filters.safetensors" in i.value for i in at.info)
    assert any("embedding.safetensors is damaged" in i.value for i in at.info)
    at.sidebar.radio(key="inside_source").set_value("a mistake").run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("No mistakes recorded" in i.value for i in at.sidebar.info)
