"""Data: browse a dataset before training on it."""

import core  # noqa: F401  (first: one complete import of torch and torchvision, see core/__init__.py)

import plotly.graph_objects as go
import streamlit as st
import torch

from core.augment import AUGMENTATIONS, DESCRIPTIONS
from core.data import DATASETS, ImageDataset
from core.explore import (
    augmentation_preview,
    class_balance,
    examples_per_class,
    mean_images,
    pixel_histogram,
    random_indices,
)
from core.importers import DataImportError, import_upload
from core.workspaces import LOCAL
from pages.lib import (
    DATASET_KEY,
    UPLOAD,
    USER_DATA_KEY,
    chosen_dataset,
    chosen_dataset_name,
    current_config,
    dataset_title,
    image_row,
    intro,
    save_config,
    settings,
    workspace,
)

st.set_page_config(page_title="Data · ConvNet Playground", page_icon="🖼️", layout="wide")
st.title("🖼️ Data")
intro("Look at the images before you train on them: samples, class balance, average images, intensities and augmentations.")
ws = workspace()

# The radio has its own key: Streamlit forgets a widget's state on pages that do not draw it,
# and the choice must outlive a visit to another page.
st.session_state["dataset_radio"] = chosen_dataset_name()
st.radio("Dataset", [*DATASETS, UPLOAD], key="dataset_radio", horizontal=True,
         format_func=lambda n: "Upload your own" if n == UPLOAD else dataset_title(n),
         on_change=lambda: st.session_state.update({DATASET_KEY: st.session_state["dataset_radio"]}))

if chosen_dataset_name() == UPLOAD:
    upload = st.file_uploader(
        "A CSV in the mnist_train.csv layout (label, then 784 pixels per row), or a .zip of an image folder: one "
        "sub-folder per class, or train/ and test/ (and val/) folders of them",
        type=["csv", "zip"])
    if upload is not None and (refused := settings().upload_refused(upload.name, upload.size, ws != LOCAL)):
        st.error(refused)
    elif upload is not None and st.session_state.get("user_upload_id") != upload.file_id:
        bar = st.progress(0.0, text=f"Reading {upload.name}…")
        try:
            st.session_state[USER_DATA_KEY] = import_upload(
                upload.getvalue(), upload.name,
                lambda done, total: bar.progress(done / max(total, 1), text=f"Reading {upload.name}: {done:,} of {total:,} images"))
            st.session_state["user_upload_id"] = upload.file_id
        except DataImportError as exc:
            st.error(f"{exc} Nothing was loaded.")
        bar.empty()

data = chosen_dataset()
if data is None:
    st.stop()
# what the page derives depends on the dataset only: computed once per server and shared by every visitor
data_key = st.session_state.get("user_upload_id", "") if chosen_dataset_name() == UPLOAD else data.name


@st.cache_data(max_entries=16, show_spinner="Computing the dataset's statistics…")
def statistics(key: str, _data: ImageDataset) -> tuple[torch.Tensor, tuple[list[float], list[list[int]]]]:
    """Mean image of each class and the pixel histogram of the training set (`key` names the dataset)."""
    return mean_images(_data), pixel_histogram(_data)


@st.cache_data(max_entries=64, show_spinner=False)
def balance(key: str, _data: ImageDataset, val_split: float, seed: int) -> dict[str, list[int]]:
    return class_balance(_data, val_split, seed)


@st.cache_data(max_entries=16, show_spinner=False)
def per_class_examples(key: str, _data: ImageDataset) -> list[torch.Tensor]:
    return examples_per_class(_data.train_labels, _data.num_classes, 8, seed=1)


cfg = current_config()
c, h, w = data.input_shape
st.markdown(f"**{dataset_title(data.name)}**: {len(data.train_labels):,} training and {len(data.test_labels):,} test images "
            f"of {w} x {h} pixels, {c} channel{'s' if c > 1 else ''}, {data.num_classes} classes. "
            f"Mean {', '.join(f'{m:.4f}' for m in data.mean)}, std {', '.join(f'{s:.4f}' for s in data.std)} (on [0, 1]).")
if data.layout:
    st.caption(f"Read as {data.layout}." + (f" The last {data.val_count:,} training images are its own validation set, "
                                             f"used instead of the Model page's split." if data.val_count else ""))

samples_tab, classes_tab, stats_tab, augment_tab = st.tabs(["Samples", "Classes", "Statistics", "Augmentation"])

with samples_tab:
    if st.button("🔀 Reshuffle"):
        st.session_state["sample_seed"] = st.session_state.get("sample_seed", 0) + 1
    idx = random_indices(len(data.train_labels), 32, st.session_state.get("sample_seed", 0))
    for row in range(4):
        chunk = idx[row * 8:(row + 1) * 8]
        image_row(data.train_images[chunk], [data.class_names[data.train_labels[i]] for i in chunk])

with classes_tab:
    per_class = per_class_examples(data_key, data)
    for k, name in enumerate(data.class_names):
        st.markdown(f"**{name}**")
        image_row(data.train_images[per_class[k]], [""] * len(per_class[k]), width=56)

with stats_tab:
    counts_by_split = balance(data_key, data, cfg.val_split, cfg.seed)
    fig = go.Figure([go.Bar(name=split, x=list(data.class_names), y=counts) for split, counts in counts_by_split.items()])
    split = "its own validation folder" if data.val_count else f"{cfg.val_split:.0%} of train, seed {cfg.seed}"
    fig.update_layout(barmode="group", title=f"Images per class (validation: {split})",
                      yaxis_title="images", height=360, margin=dict(t=50, b=10))
    st.plotly_chart(fig, width="stretch")

    st.markdown("**The mean image of each class**")
    means, (centres, counts) = statistics(data_key, data)
    image_row(means, list(data.class_names), width=56)

    colours = ["#334155"] if len(counts) == 1 else ["#DC2626", "#16A34A", "#2563EB"]
    names = ["grey"] if len(counts) == 1 else ["red", "green", "blue"]
    hist = go.Figure([go.Bar(x=centres, y=n, name=name, marker_color=col, opacity=0.7)
                      for n, name, col in zip(counts, names, colours)])
    hist.update_layout(barmode="overlay", title="Pixel intensities of the training set", xaxis_title="intensity (0 = black, 1 = white)",
                       yaxis_title="pixels", yaxis_type="log", height=320, margin=dict(t=50, b=10))
    st.plotly_chart(hist, width="stretch")

with augment_tab:
    chosen = st.multiselect("Augmentations", list(AUGMENTATIONS), default=list(cfg.augment),
                            format_func=lambda n: f"{n}: {DESCRIPTIONS[n]}")
    if tuple(chosen) != tuple(cfg.augment) and st.button("Use these for training"):
        cfg.augment = tuple(chosen)
        save_config(cfg)
        st.success(f"Training will use: {', '.join(chosen) or 'no augmentation'}.")
    if st.button("🎲 New draw"):
        st.session_state["augment_seed"] = st.session_state.get("augment_seed", 0) + 1
    picks = random_indices(len(data.train_labels), 8, 100)
    before = data.train_images[picks]
    after = augmentation_preview(before, tuple(chosen), st.session_state.get("augment_seed", 0))
    st.markdown("**Before**")
    image_row(before, [data.class_names[data.train_labels[i]] for i in picks])
    st.markdown("**After** (what the network sees during training; validation and test images are never augmented)")
    image_row(after, [""] * len(picks))
