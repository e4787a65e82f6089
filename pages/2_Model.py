"""Model: an architecture and every hyperparameter of the engine, with limits it accepts."""

import core  # noqa: F401  (first: one complete import of torch and torchvision, see core/__init__.py)


import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.augment import AUGMENTATIONS, DESCRIPTIONS, TEST_TIME_AUGMENTATIONS, TEST_TIME_DESCRIPTIONS
from core.config import BATCH_SIZES, BEST_BY, DEVICES, LIMITS, LIST_LIMITS, TEST_SCALINGS, TrainConfig
from core.data import DATASETS, train_val_indices
from core.models import INITS, MODELS, check_fits
from core.optim import OPTIMIZERS, SCHEDULERS, epoch_steps, lr_preview
from core.preprocess import INPUT_SCALINGS
from core.recipes import RECIPES
from core.summary import layer_table
from core.urlstate import config_from_query, config_to_query
from pages.lib import (
    DATASET_KEY,
    chosen_dataset,
    current_config,
    dataset_title,
    intro,
    save_config,
    workspace,
)

st.set_page_config(page_title="Model · ConvNet Playground", page_icon="🧩", layout="wide")
st.title("🧩 Model and hyperparameters")
intro("Choose a network and how to train it; its layer table and learning-rate schedule update before any training.")

PREFIX = "hp_"  # widget keys: hp_<TrainConfig field>
cached_layer_table = st.cache_data(max_entries=128, show_spinner=False)(layer_table)  # once per server and model


def bounds(name: str) -> dict:
    """A widget's range: the config's own limits, so every value a config or a link may hold can be shown."""
    return dict(min_value=LIMITS[name].low, max_value=LIMITS[name].high)


def apply_recipe(name: str) -> None:
    """Fill the form (and the dataset choice) from a recipe, before the widgets are drawn."""
    cfg = RECIPES[name].train_config()
    st.session_state[DATASET_KEY] = cfg.dataset
    save_config(cfg)
    for key in [k for k in st.session_state if k.startswith(PREFIX)]:
        del st.session_state[key]


def read_link() -> None:
    """Once per session: settings in the URL (a shared link) replace the form's; invalid ones give defaults."""
    st.session_state["_link_read"] = True
    if not st.query_params:
        return
    linked, problems = config_from_query(st.query_params.to_dict())
    if linked.dataset not in DATASETS:
        problems, linked = problems + [f"dataset must be one of {', '.join(DATASETS)}"], TrainConfig()
    if problems:
        st.session_state["_link_problems"] = problems
    save_config(linked)
    st.session_state[DATASET_KEY] = linked.dataset
    for key in [k for k in st.session_state if k.startswith(PREFIX)]:
        del st.session_state[key]


workspace()  # before the link is read: a workspace key in it is taken out
if not st.session_state.get("_link_read"):
    read_link()
if problems := st.session_state.pop("_link_problems", None):
    st.warning(f"This link had settings the app cannot use ({'; '.join(problems)}), so it opened with the defaults.")

cfg = current_config()
for field, value in cfg.to_dict().items():  # widgets start from the saved config
    st.session_state.setdefault(PREFIX + field, list(value) if isinstance(value, tuple) else value)

with st.expander("📖 Recipes: fill the form in one click", expanded=False):
    cols = st.columns(2)
    for i, (name, recipe) in enumerate(RECIPES.items()):
        with cols[i % 2]:
            st.button(recipe.title, key=f"recipe_{name}", on_click=apply_recipe, args=(name,), help=recipe.description,
                      width="stretch")
            st.caption(f"{dataset_title(recipe.config['dataset'])}: {recipe.description}")

data = chosen_dataset()
if data is None:
    st.stop()

arch, train_col = st.columns([1, 1])
with arch:
    st.subheader("Architecture")
    st.selectbox("Model", list(MODELS), key=PREFIX + "model", format_func=lambda n: n, help="The model zoo of core.models")
    st.caption(MODELS[st.session_state[PREFIX + "model"]].description)
    if st.session_state[PREFIX + "model"] == "mlp":
        hidden_text = st.text_input("Hidden layer sizes", value=",".join(map(str, st.session_state[PREFIX + "hidden"])),
                                    help="Comma-separated, e.g. 256,128")
        try:
            hidden = [int(v) for v in hidden_text.split(",") if v.strip()]
            TrainConfig(hidden=tuple(hidden)).validate()
            st.session_state[PREFIX + "hidden"] = hidden
        except ValueError:
            limit, fewest, most = LIST_LIMITS["hidden"]
            st.warning(f"Hidden sizes must be {fewest} to {most} whole numbers from {limit.low} to {limit.high}, "
                       f"e.g. 256,128. Keeping the last valid ones.")
    st.selectbox("Initialisation", list(INITS), key=PREFIX + "init",
                 help="default: PyTorch's per-layer defaults; xavier: Glorot uniform; kaiming: He normal")

with train_col:
    st.subheader("Optimisation")
    st.selectbox("Optimizer", list(OPTIMIZERS), key=PREFIX + "optimizer")
    st.number_input("Learning rate (peak, for one-cycle)", **bounds("lr"), format="%g", key=PREFIX + "lr")
    if st.session_state[PREFIX + "optimizer"] == "sgd":
        st.slider("Momentum", **bounds("momentum"), step=0.001, key=PREFIX + "momentum")
        st.checkbox("Nesterov momentum", key=PREFIX + "nesterov")
    st.number_input("Weight decay", **bounds("weight_decay"), step=1e-4, format="%.5f", key=PREFIX + "weight_decay")
    st.selectbox("Learning-rate schedule", list(SCHEDULERS), key=PREFIX + "scheduler")
    schedule = st.session_state[PREFIX + "scheduler"]
    if schedule == "step":
        st.number_input("Decay every (epochs)", **bounds("step_epochs"), key=PREFIX + "step_epochs")
    if schedule == "multistep":
        limit, _, most = LIST_LIMITS["milestones"]
        st.multiselect("Decay at epochs", list(range(limit.low, limit.high + 1)), max_selections=most, key=PREFIX + "milestones")
    if schedule in ("step", "multistep"):
        st.number_input("Decay factor", **bounds("gamma"), step=0.05, key=PREFIX + "gamma")

run_col, data_col = st.columns([1, 1])
with run_col:
    st.subheader("Run")
    st.number_input("Epochs", **bounds("epochs"), key=PREFIX + "epochs")
    st.select_slider("Batch size", sorted({*BATCH_SIZES, cfg.batch_size}), key=PREFIX + "batch_size")  # a link's own size too
    st.slider("Label smoothing", **bounds("label_smoothing"), step=0.05, key=PREFIX + "label_smoothing")
    st.number_input("Early stopping patience (epochs, 0 = off)", **bounds("patience"), key=PREFIX + "patience")
    st.selectbox("Keep the epoch with the best validation", list(BEST_BY), key=PREFIX + "best_by",
                 help="The checkpoint kept (and tested) is the epoch with the best validation accuracy, or loss")
    st.checkbox("Test after every epoch", key=PREFIX + "test_each_epoch",
                help="Measure the test set after each epoch, as course notebooks print it, to compare with a lecture's "
                     "curve. It is only reported: the checkpoint is still chosen on validation")
    st.number_input("Seed", **bounds("seed"), key=PREFIX + "seed")
    st.selectbox("Device", list(DEVICES), key=PREFIX + "device", help="auto: a CUDA GPU when there is one, else Apple's MPS (a Mac), else the CPU")
    st.checkbox("Channels-last memory", key=PREFIX + "channels_last",
                help="Convolutions on N x H x W x C memory: about 1.3x faster for cnn4 on this project's CPUs, no "
                     "faster for LeNet-5; the numbers differ in the last digits, not in what is learned")
with data_col:
    st.subheader("Data")
    st.slider("Validation split", **bounds("val_split"), step=0.05, key=PREFIX + "val_split", disabled=bool(data.val_count),
              help="Carved from the training set with the seed; the test set is never used for training or choosing a checkpoint")
    if data.val_count:
        st.caption(f"This dataset brings its own validation set ({data.val_count:,} images from its validation "
                   f"folder), used instead of a split.")
    st.selectbox("Input scaling", list(INPUT_SCALINGS), key=PREFIX + "input_scaling",
                 format_func=lambda n: f"{n}: {INPUT_SCALINGS[n]}")
    st.selectbox("Test images fed", list(TEST_SCALINGS), key=PREFIX + "test_scaling",
                 format_func=lambda n: "as the training images (right)" if n == "same" else f"{n}: {INPUT_SCALINGS[n]}",
                 help="Anything but 'as the training images' feeds the test set differently from what the network "
                      "learned on: a mistake a course notebook made, offered to replay it and see what it does")
    st.multiselect("Augmentation (training batches only)", list(AUGMENTATIONS), key=PREFIX + "augment",
                   format_func=lambda n: f"{n}: {DESCRIPTIONS[n]}")
    if "rotate" in st.session_state[PREFIX + "augment"]:
        st.number_input("Rotate by up to (degrees)", **bounds("rotate_degrees"), step=5.0, key=PREFIX + "rotate_degrees")
    st.selectbox("Test-time augmentation", list(TEST_TIME_AUGMENTATIONS), key=PREFIX + "tta",
                 format_func=lambda n: f"{n}: {TEST_TIME_DESCRIPTIONS[n]}",
                 help="Every prediction of the run (validation, test, the Draw and Inside pages) averages the logits of "
                      "these views of each image; training is unchanged. Mirrors suit photographs, not digits")
    limit = st.number_input("Train on only the first N images (0 = all)", min_value=0,
                            max_value=LIMITS["limit_train"].high, value=cfg.limit_train or 0, step=1000)

values = {field: st.session_state[PREFIX + field] for field in cfg.to_dict() if PREFIX + field in st.session_state}
values.update(dataset=st.session_state[DATASET_KEY], limit_train=int(limit) or None)
new_cfg = TrainConfig.from_dict({**cfg.to_dict(), **values})
try:
    new_cfg.validate()
    save_config(new_cfg)
except ValueError as exc:
    st.error(f"{exc} The last valid settings are kept.")
    new_cfg = cfg
link = config_to_query(new_cfg)  # the address bar holds a shareable link (uploaded data cannot travel in one)
if new_cfg.dataset not in DATASETS:
    link.pop("dataset", None)
st.query_params.from_dict(link)

st.divider()
table_col, lr_col = st.columns([1, 1])
with table_col:
    st.subheader(f"{new_cfg.model} on {dataset_title(data.name)}")
    hidden = tuple(new_cfg.hidden) if new_cfg.model == "mlp" else None
    try:
        check_fits(new_cfg.model, data.input_shape, data.num_classes, hidden)
    except ValueError as exc:  # say so before the table: torchinfo cannot trace a model its images do not fit
        st.warning(str(exc))
    else:
        rows, totals = cached_layer_table(new_cfg.model, data.input_shape, data.num_classes, hidden)
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", height=min(560, 38 + 35 * len(rows)),
                     column_config={"parameters": st.column_config.NumberColumn(format="localized")})
        st.markdown(f"**{totals['parameters']:,} parameters** ({totals['trainable']:,} trainable), "
                    f"{totals['mult_adds']:,} multiply-adds per image.")
with lr_col:
    n_train = len(train_val_indices(data, new_cfg.val_split, new_cfg.seed)[0])
    steps_per_epoch = epoch_steps(min(new_cfg.limit_train or n_train, n_train), new_cfg.batch_size)
    epochs, rates = lr_preview(new_cfg, steps_per_epoch)
    fig = go.Figure(go.Scatter(x=epochs, y=rates, mode="lines", line=dict(color="#4F46E5")))
    fig.update_layout(title=f"Learning rate: {new_cfg.scheduler}, {steps_per_epoch:,} steps per epoch",
                      xaxis_title="epoch", yaxis_title="learning rate", height=360, margin=dict(t=50, b=10))
    st.plotly_chart(fig, width="stretch")
    st.page_link("pages/3_Train.py", label="Ready? Go to Train", icon="📈")
