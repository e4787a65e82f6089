"""What the Draw, Results and Inside pages share to look inside a trained run: its checkpoint and its dataset
(loaded once per server), "why this answer" over an image, and the "not sure" answer."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import streamlit as st
import torch

from core.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from core.confidence import is_sure
from core.data import DatasetUnavailable, ImageDataset
from core.engine import resolve_dataset
from core.importers import DataImportError
from core.inspect import overlay
from core.saliency import METHODS, attribution
from core.store import ACTIVE, RunStore, intact
from core.workspaces import may_read_dataset
from pages.lib import choose_run, my_runs, png_bytes

NO_THRESHOLD = ("No \"not sure\" threshold was calibrated for this run (no validation set, too few wrong or right "
                "validation answers to take a spread from, or it diverged or was stopped first), so it always answers.")
DRAWN = "drawn_input"  # session state: the Draw page's last drawing as the model sees it (C x H x W on [0, 1])

ONE_PASS = (" This run answers with the mean over test-time views of the image; {label} looks at the image as it is "
            "only, since a mirrored view's maps would not line up with it.")


@st.cache_resource(show_spinner=False, max_entries=8)
def _cached_checkpoint(path: str, modified: float) -> Checkpoint:
    """One rebuilt model per checkpoint file and version (`modified` keys the cache)."""
    return load_checkpoint(path)


def checkpoint_of(store: RunStore) -> Checkpoint:
    """The run's best checkpoint (CheckpointError when it cannot be used)."""
    return _cached_checkpoint(str(store.best_checkpoint), store.best_checkpoint.stat().st_mtime)


@st.cache_resource(show_spinner=False, max_entries=4)
def _dataset(name: str) -> ImageDataset:
    """A run's dataset (built-in, an upload kept in the workspace, or a CLI run's file), loaded once per server."""
    return resolve_dataset(name)


def run_dataset(workspace: str, name: str, otherwise: str) -> ImageDataset | None:
    """The dataset a run trained on, when this workspace may read it and it loads; else None, having said why
    and what the page leaves out (`otherwise`)."""
    if not may_read_dataset(workspace, name):
        st.info(f"This run was trained on {name}, which is not in your workspace, so {otherwise}.")
        return None
    try:
        return _dataset(name)
    except (DatasetUnavailable, DataImportError) as exc:
        st.warning(f"The test images are not available, so {otherwise}: {exc}")
        return None


def trained_run(label: str, purpose: str, while_training: bool) -> tuple[RunStore, Checkpoint]:
    """A select box over this workspace's runs with a best checkpoint (also those still training, if
    `while_training`), and that checkpoint; the page stops, saying what to do, when there is none."""
    stores = [s for s in my_runs() if s.best_checkpoint.is_file() and intact(s)
              and (while_training or s.status()["status"] not in ACTIVE)]
    if not stores:
        st.info(f"No trained model yet: train one first (a short MNIST run is enough), then come back {purpose}.")
        st.page_link("pages/3_Train.py", label="Go to Train", icon="📈")
        st.stop()
    store = choose_run(stores, label)
    try:
        return store, checkpoint_of(store)
    except CheckpointError as exc:
        st.error(f"{exc} Train the model again; the Runs page can delete this one.")
        st.stop()


def show(array: np.ndarray, width: int, caption: str | None = None) -> None:
    """A uint8 picture (H x W or H x W x 3), enlarged without blurring."""
    st.image(png_bytes(array, width), caption=caption, width=width)


def why_this_answer(checkpoint: Checkpoint, image: torch.Tensor, target: int, key: str, width: int = 168) -> None:
    """A method choice and its attribution map over `image` (C x H x W on [0, 1]) for class `target`."""
    method = st.radio("Why this answer?", list(METHODS), key=key, horizontal=True,
                      format_func=lambda m: METHODS[m].label, help="\n\n".join(m.description for m in METHODS.values()))
    try:
        saliency = attribution(checkpoint.model, checkpoint.meta["mean"], checkpoint.meta["std"], image, target, method,
                               checkpoint.tta)
    except ValueError as exc:
        st.info(str(exc))
        return
    show(overlay(image, saliency), width, caption=f"why {checkpoint.class_names[target][:16]}")
    chosen = METHODS[method]
    if not float(saliency.max()) > 0:
        st.info(chosen.empty)
    else:
        one_pass = not chosen.over_views and checkpoint.tta != "none"
        st.caption(chosen.look_for + (ONE_PASS.format(label=chosen.label) if one_pass else ""))


def answer(probs: torch.Tensor, names: Sequence[str], threshold: float | None) -> tuple[str, str | None]:
    """(what the model answers, the runner-ups when it is not sure): below the run's threshold it says "Not sure"."""
    best = int(probs.argmax())
    if is_sure(float(probs[best]), threshold):
        return names[best], None
    order = probs.argsort(descending=True)[:3].tolist()
    return "Not sure", (f"Below this model's threshold of {threshold:.0%}: perhaps "
                        + ", ".join(f"{names[i]} ({float(probs[i]):.0%})" for i in order) + ".")
