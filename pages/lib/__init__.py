"""What every page shares: the user's choices in session state and a few display helpers.

This folder is not a page (Streamlit only turns `pages/*.py` into pages); the
computations stay in `core`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import streamlit as st
import torch

from core.config import TrainConfig
from core.data import DATASETS, DatasetUnavailable, ImageDataset, load_dataset
from core.runs import RunStore

UPLOAD = "upload"
DATASET_KEY = "dataset_name"
USER_DATA_KEY = "user_dataset"
CONFIG_KEY = "train_config"
RUN_KEY = "run_id"  # the run this session looks at: Train, Results and Draw open it


def intro(text: str) -> None:
    """The one-line statement of what a page is for."""
    st.caption(text)


def pct(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}%}"


def dataset_title(name: str) -> str:
    return DATASETS[name].title if name in DATASETS else name


def chosen_dataset_name() -> str:
    return st.session_state.setdefault(DATASET_KEY, "mnist")


def chosen_dataset() -> ImageDataset | None:
    """The dataset picked on the Data page, loaded; None (with a message shown) when unavailable."""
    name = chosen_dataset_name()
    if name == UPLOAD:
        data = st.session_state.get(USER_DATA_KEY)
        if data is None:
            st.info("No uploaded dataset yet: upload a CSV or a zipped image folder on the Data page.")
        return data
    try:
        with st.spinner(f"Loading {dataset_title(name)}…"):
            return load_dataset(name)
    except DatasetUnavailable as exc:
        st.error(str(exc))
        return None


def current_config() -> TrainConfig:
    """The hyperparameters set on the Model page (defaults until then)."""
    values = st.session_state.setdefault(CONFIG_KEY, dataclasses.asdict(TrainConfig()))
    return TrainConfig.from_dict(values)


def save_config(cfg: TrainConfig) -> None:
    st.session_state[CONFIG_KEY] = dataclasses.asdict(cfg)


def to_display(images: torch.Tensor) -> list[np.ndarray]:
    """uint8 or [0, 1] float images, N x C x H x W, as arrays st.image can show."""
    if images.dtype != torch.uint8:
        images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    arrays = images.permute(0, 2, 3, 1).numpy()
    return [a[:, :, 0] if a.shape[2] == 1 else a for a in arrays]


def image_row(images: torch.Tensor, captions: Sequence[str], width: int = 64) -> None:
    """Show images side by side, each with its caption, upscaled without blurring."""
    cols = st.columns(max(1, len(captions)))
    for col, array, caption in zip(cols, to_display(images), captions):
        col.image(_upscale(array, width), caption=caption)


def _upscale(array: np.ndarray, width: int) -> np.ndarray:
    """Nearest-neighbour enlargement, so 28 x 28 pixels stay crisp squares."""
    factor = max(1, width // array.shape[1])
    return array.repeat(factor, axis=0).repeat(factor, axis=1)


def choose_run(stores: list[RunStore], label: str) -> RunStore:
    """A select box over runs, opened at this session's current run; remembers the choice."""
    by_id = {s.id: s for s in stores}
    ids = list(by_id)
    current = st.session_state.get(RUN_KEY)
    run_id = st.selectbox(label, ids, index=ids.index(current) if current in by_id else 0,
                          format_func=lambda i: run_title(by_id[i]))
    st.session_state[RUN_KEY] = run_id
    return by_id[run_id]


def run_title(store: RunStore) -> str:
    """'lenet5 on mnist · finished · test 98.91% · 20261123-...' for lists of runs."""
    status, cfg = store.status(), store.config()
    name = status.get("name") or f"{cfg.model} on {dataset_title(status.get('dataset', cfg.dataset))}"
    return f"{name} · {status.get('status')} · test {pct(status.get('test_accuracy'))} · {store.id}"
