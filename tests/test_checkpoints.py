"""Every door that loads a checkpoint (core.predict, the Runs page's zip import, the Draw page) shares one
validator: any best.json and any safetensors header either loads a model that predicts, or is refused
with CheckpointError naming what is wrong."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st
from PIL import Image
from test_export import _zip

from core.checkpoint import MAX_DESCRIPTION_BYTES, CheckpointError, load_checkpoint, save_checkpoint
from core.export import import_checkpoint_zip
from core.models import build_model
from core.predict import predict_tensor

META = {"model": "lenet5", "num_classes": 10, "input_shape": [1, 28, 28], "class_names": [str(i) for i in range(10)],
        "mean": [0.1307], "std": [0.3081], "dataset": "mnist", "config": {"model": "lenet5", "hidden": [256, 128]},
        "threshold": 0.7}
JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=12)
# values near the valid ones are the likeliest to slip through: shapes, counts and lists of the right length
NEAR = {"num_classes": st.integers(-2, 12), "input_shape": st.lists(st.integers(-1, 64), max_size=4),
        "class_names": st.lists(st.text(max_size=4), min_size=9, max_size=11), "mean": st.lists(st.floats(), max_size=3),
        "std": st.lists(st.floats(), max_size=3), "model": st.sampled_from(["mlp", "lenet5", "resnet20", "vgg", ""]),
        "threshold": st.none() | st.floats() | st.integers(-1, 2) | st.booleans()}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("checkpoint")
    save_checkpoint(folder / "best", build_model("lenet5", (1, 28, 28), 10), META)
    return folder / "best.safetensors"


def _with_meta(saved, folder, meta) -> object:
    (folder / "best.safetensors").write_bytes(saved.read_bytes())
    (folder / "best.json").write_text(json.dumps(meta))
    return folder / "best.safetensors"


def _loads_and_predicts_or_is_refused(path) -> None:
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError:
        event("refused")
        return
    event("accepted")
    c, h, w = checkpoint.meta["input_shape"]
    probs = predict_tensor(checkpoint, torch.rand(3, c, h, w))
    assert probs.shape == (3, len(checkpoint.class_names)) and bool(torch.isfinite(probs).all())
    threshold = checkpoint.meta.get("threshold")
    assert threshold is None or (type(threshold) in (int, float) and 0 <= threshold <= 1)  # what is_sure compares with


@given(data=st.data())
def test_any_description_loads_a_model_that_predicts_or_is_refused(saved, tmp_path, data):
    meta = json.loads(json.dumps(META))
    for key in data.draw(st.lists(st.sampled_from([*META, "format"]), min_size=1, max_size=3, unique=True)):
        if data.draw(st.booleans(), label=f"delete {key}"):
            meta.pop(key, None)
        else:
            meta[key] = data.draw(NEAR.get(key, JSON), label=key)
    _loads_and_predicts_or_is_refused(_with_meta(saved, tmp_path, meta))


@given(description=JSON)
def test_a_description_that_is_any_json_at_all_is_refused_or_used(saved, tmp_path, description):
    _loads_and_predicts_or_is_refused(_with_meta(saved, tmp_path, description))


def _header(path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + length]), raw[8 + length:]


def _write_with_header(folder, header: dict, body: bytes, saved) -> object:
    text = json.dumps(header).encode()
    (folder / "best.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + body)
    (folder / "best.json").write_bytes(saved.with_suffix(".json").read_bytes())
    return folder / "best.safetensors"


@given(data=st.data())
def test_any_change_to_the_weights_header_is_refused_or_still_predicts(saved, tmp_path, data):
    header, body = _header(saved)
    name = data.draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")))
    field = data.draw(st.sampled_from(["dtype", "shape", "data_offsets"]))
    header[name][field] = data.draw({"dtype": st.sampled_from(["F32", "F16", "BF16", "I32", "I64", "U8", "BOOL", "F64", "X"]),
                                     "shape": st.lists(st.integers(-1, 1000), max_size=4),
                                     "data_offsets": st.lists(st.integers(-1, len(body) + 10), min_size=0, max_size=3)}[field])
    _loads_and_predicts_or_is_refused(_write_with_header(tmp_path, header, body, saved))


def test_each_kind_of_bad_checkpoint_is_refused_by_name(saved, tmp_path):
    cases = {
        "num_classes is 10000000": {**META, "num_classes": 10_000_000},
        "input_shape is [28, 28]": {**META, "input_shape": [28, 28]},
        "class_names must be 10 names": {**META, "class_names": []},
        "mean must be 1 finite number": {**META, "mean": [0.1, 0.2, 0.3]},
        "std must be above zero": {**META, "std": [0.0]},
        "mean must be from 0 to 1": {**META, "mean": [1e38]},  # finite, yet normalising overflows
        "config must be an object": {**META, "config": "lenet5"},
        "lenet-bn cannot take images of 1 x 4 x 4": {**META, "model": "lenet-bn", "input_shape": [1, 4, 4]},
        "lacks model": {k: v for k, v in META.items() if k != "model"},
        "threshold must be a probability": {**META, "threshold": 1.5},
    }
    for message, meta in cases.items():
        with pytest.raises(CheckpointError, match=message.replace("[", r"\[").replace("]", r"\]")):
            load_checkpoint(_with_meta(saved, tmp_path, meta))
    (tmp_path / "best.json").write_bytes(b" " * (MAX_DESCRIPTION_BYTES + 1))
    with pytest.raises(CheckpointError, match="larger than"):
        load_checkpoint(tmp_path / "best.safetensors")


def test_weights_relabelled_or_not_finite_are_refused(saved, tmp_path):
    header, body = _header(saved)
    name = next(k for k in header if k.endswith("weight"))
    header[name]["dtype"] = "I32"  # the same bytes, read as integers
    with pytest.raises(CheckpointError, match="stored as torch.int32"):
        load_checkpoint(_write_with_header(tmp_path, header, body, saved))
    model = build_model("lenet5", (1, 28, 28), 10)
    with torch.no_grad():
        model[0].weight[0, 0, 0, 0] = float("nan")
    save_checkpoint(tmp_path / "nan", model, META)
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_checkpoint(tmp_path / "nan.safetensors")


def test_predict_json_is_strict_json_even_when_the_scores_overflow(tmp_path):
    model = build_model("lenet5", (1, 28, 28), 10)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1e30)  # finite weights whose scores overflow to infinity
    save_checkpoint(tmp_path / "huge", model, META)
    Image.fromarray(np.full((28, 28), 255, np.uint8)).save(tmp_path / "digit.png")
    out = subprocess.run([sys.executable, "-m", "core.predict", "--checkpoint", str(tmp_path / "huge.safetensors"),
                          str(tmp_path / "digit.png"), "--json"], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    (result,) = json.loads(out.stdout, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert "not finite" in result["error"]


def test_a_checkpoint_zip_with_a_bad_description_or_a_lying_config_is_refused(saved, tmp_path):
    weights = saved.read_bytes()
    for meta, message in [({**META, "num_classes": 10_000_000}, "num_classes"),
                          ({**META, "config": {"model": "mlp"}}, "config trains a mlp, but its weights are a lenet5")]:
        with pytest.raises(CheckpointError, match=message):
            import_checkpoint_zip(_zip({"best.safetensors": weights, "best.json": json.dumps(meta).encode()}), "x.zip", tmp_path)
    assert not list(tmp_path.iterdir())  # nothing was kept of a refused upload
    no_dataset = {k: v for k, v in META.items() if k not in ("dataset", "config")}
    store = import_checkpoint_zip(_zip({"best.safetensors": weights, "best.json": json.dumps(no_dataset).encode()}),
                                  "anonymous.zip", tmp_path)
    assert store.config().dataset == "unknown (imported)"


def test_values_too_large_for_a_float_or_of_the_wrong_kind_are_refused_not_raised(saved, tmp_path):
    for meta, message in [({**META, "mean": [10**400]}, "mean must be 1 finite number"),
                          ({**META, "input_shape": [1.0, 28, 28]}, "input_shape is"),
                          ({**META, "config": {"hidden": [10**400]}}, "config must be an object"),
                          ({**META, "config": {"tta": "rotate"}}, "tta must be one of none, flip"),
                          ({**META, "config": {"tta": ["flip"]}}, "tta must be one of"),
                          ({**META, "input_shape": [1, 1, 28], "config": {"tta": "flip-translate"}}, "at least 2 x 2")]:
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(_with_meta(saved, tmp_path, meta))
