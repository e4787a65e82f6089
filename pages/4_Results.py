"""Results: what a finished run learned, class by class, and where it goes wrong."""

import core  # noqa: F401  (first: one complete import of torch and torchvision, see core/__init__.py)

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.data import DatasetUnavailable, ImageDataset
from core.checkpoint import CheckpointError
from core.engine import load_result, resolve_dataset
from core.importers import DataImportError
from core.metrics import calibration, confident_mistakes, most_confused
from core.store import DamagedRun, intact
from core.workspaces import may_read_dataset
from pages.lib import choose_run, image_row, intro, my_runs, pct, workspace
from pages.lib.curves import add_epoch_accuracy, lecture_caption

st.set_page_config(page_title="Results · ConvNet Playground", page_icon="🔍", layout="wide")
st.title("🔍 Results")
intro("Read a finished run on the test set: per-class accuracy, the confusion matrix, its mistakes and how calibrated it is.")



@st.cache_resource(show_spinner=False, max_entries=4)
def test_images(dataset: str) -> ImageDataset:
    """The run's dataset (built-in, an upload kept in the workspace, or a CLI run's file), loaded once per server."""
    return resolve_dataset(dataset)


ws = workspace()
stores = [s for s in my_runs() if s.evaluation() is not None and intact(s)]
if not stores:
    st.info("No finished run yet. Train a model first.")
    st.page_link("pages/3_Train.py", label="Go to Train", icon="📈")
    st.stop()

store = choose_run(stores, "Run")
try:
    r = load_result(store)
except (CheckpointError, DamagedRun) as exc:
    st.error(f"{exc} The Runs page can delete it.")
    st.stop()

a, b, c, d, e = st.columns(5)
a.metric("Test accuracy", pct(r.test_accuracy))
b.metric("Test loss", f"{r.test_loss:.4f}" if r.test_loss is not None else "–")
c.metric("Best epoch", r.best_epoch if r.best_epoch is not None else "–", help="By validation accuracy")
d.metric("Training time", f"{r.train_seconds:,.1f} s")
e.metric("Samples per second", f"{r.samples_per_second:,.0f}")
st.caption(f"{r.message} {r.params:,} parameters, trained on {r.device}.")

data = None
if not may_read_dataset(ws, r.config["dataset"]):
    st.info(f"This run was trained on {r.config['dataset']}, which is not in your workspace, so no mistakes are shown.")
else:
    try:
        data = test_images(r.config["dataset"])
    except (DatasetUnavailable, DataImportError) as exc:
        st.warning(f"The test images are not available, so no mistakes are shown: {exc}")
probs, labels = r.test_probabilities, r.test_labels
if probs is None:
    st.warning("This run's test predictions are missing or damaged, so only its summary is shown.")
    st.stop()
predicted = probs.argmax(1)
names = r.class_names

classes_tab, confusion_tab, mistakes_tab, calibration_tab, epochs_tab = st.tabs(
    ["Per class", "Confusion", "Mistakes", "Calibration", "Per epoch"])

with classes_tab:
    table = pd.DataFrame({"class": names, "accuracy": r.per_class_accuracy, "precision": r.precision,
                          "recall": r.recall, "count": r.count})
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "accuracy": st.column_config.ProgressColumn(format="percent", min_value=0, max_value=1),
        "precision": st.column_config.NumberColumn(format="percent"),
        "recall": st.column_config.NumberColumn(format="percent"),
        "count": st.column_config.NumberColumn(format="localized")})
    st.caption("Accuracy on one class is its recall: the share of its test images predicted as that class.")

with confusion_tab:
    short = [n[:14] for n in names]
    heat = go.Figure(go.Heatmap(z=r.confusion_matrix, x=short, y=short, colorscale="Blues", text=r.confusion_matrix,
                                texttemplate="%{text}", hovertemplate="true %{y}<br>predicted %{x}<br>%{z} images<extra></extra>"))
    heat.update_layout(xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed", height=560,
                       margin=dict(t=20, b=10))
    st.plotly_chart(heat, width="stretch")
    pairs = most_confused(r.confusion_matrix, names)
    if pairs:
        st.markdown("**Most confused pairs:** " + "; ".join(f"{t} taken for {p} ({n}×)" for t, p, n in pairs))

with mistakes_tab:
    order, n_wrong = confident_mistakes(probs, labels)
    st.markdown(f"**{n_wrong:,} of {len(labels):,} test images are misclassified.** The most confident mistakes first:")
    if data is None:
        st.info("This run's test images cannot be shown here (see above).")
        order = order[:0]
    for row in range(0, len(order), 8):
        chunk = order[row:row + 8]
        image_row(data.test_images[chunk], [f"true {names[labels[i]][:10]}, said {names[predicted[i]][:10]} "
                                            f"({probs[i].max():.0%})" for i in chunk], width=84)

with calibration_tab:
    cal = calibration(probs, labels)
    bins = [b for b in cal["bins"] if b["count"]]
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration", line=dict(dash="dash", color="#94A3B8"))
    fig.add_scatter(x=[b["confidence"] for b in bins], y=[b["accuracy"] for b in bins], mode="lines+markers",
                    name="this model", text=[f"{b['count']:,} images" for b in bins], line=dict(color="#4F46E5"))
    fig.update_layout(title=f"Reliability: expected calibration error {pct(cal['ece'])}", xaxis_title="confidence",
                      yaxis_title="accuracy", xaxis_tickformat=".0%", yaxis_tickformat=".0%", height=420,
                      margin=dict(t=50, b=10))
    st.plotly_chart(fig, width="stretch")
    st.caption("Points below the diagonal: the model is more confident than it is right (over-confident).")

with epochs_tab:
    run_cfg = store.config()
    fig = go.Figure(layout=dict(title="Accuracy per epoch", xaxis_title="epoch", yaxis_tickformat=".1%", height=420,
                                margin=dict(t=50, b=10)))
    add_epoch_accuracy(fig, r.epochs, run_cfg)
    st.plotly_chart(fig, width="stretch")
    st.caption(lecture_caption(run_cfg) or "A gap between train and validation that widens with the epochs is overfitting.")
    if run_cfg.test_each_epoch:
        st.caption("This run measured the test set after every epoch, as the course notebooks print it; the checkpoint "
                   f"kept was still chosen without it (epoch {r.best_epoch}).")
