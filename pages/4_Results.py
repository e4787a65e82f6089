"""Results: what a finished run learned, class by class, and where it goes wrong."""

import core  # noqa: F401  (first: one complete import of torch and torchvision, see core/__init__.py)

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.augment import TEST_TIME_DESCRIPTIONS
from core.checkpoint import CheckpointError
from core.confidence import coverage_at, coverage_curve
from core.engine import load_result
from core.metrics import calibration, confident_mistakes, most_confused, predictions_fit
from core.preprocess import to_unit
from core.store import DamagedRun, intact
from pages.lib import choose_run, image_row, intro, my_runs, pct, workspace
from pages.lib.curves import add_epoch_accuracy, lecture_caption
from pages.lib.insides import NO_THRESHOLD, checkpoint_of, run_dataset, why_this_answer

st.set_page_config(page_title="Results · ConvNet Playground", page_icon="🔍", layout="wide")
st.title("🔍 Results")
intro("Read a finished run on the test set: per-class accuracy, the confusion matrix, its mistakes and how calibrated it is.")


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
c.metric("Best epoch", r.best_epoch if r.best_epoch is not None else "–",
         help=f"By validation {r.config.get('best_by', 'accuracy')}")
d.metric("Training time", f"{r.train_seconds:,.1f} s")
e.metric("Samples per second", f"{r.samples_per_second:,.0f}")
st.caption(f"{r.message} {r.params:,} parameters, trained on {r.device}.")
if (test_scaling := r.config.get("test_scaling", "same")) != "same":
    st.warning(f"This run fed its test images as '{test_scaling}' while it trained on '{r.config['input_scaling']}' "
               f"inputs, replaying a lecture's mistake: every test figure on this page measures that mismatch, not "
               f"what the network learned. \"Why did it say that?\" below, Draw and Inside feed images as it trained, "
               f"so they may not show the mistakes the test figures count.")

if (tta := r.config.get("tta", "none")) != "none":
    st.info(f"Every prediction of this run averages test-time views of each image ({tta}: {TEST_TIME_DESCRIPTIONS[tta]}); "
            f"\"Why did it say that?\" explains the image as it is.")

data = run_dataset(ws, r.config["dataset"], "no mistakes are shown")
probs, labels = r.test_probabilities, r.test_labels
if probs is None:
    st.warning("This run's test predictions are missing or damaged, so only its summary is shown.")
    st.stop()
predicted = probs.argmax(1)
names = r.class_names
if data is not None and not predictions_fit(probs, labels, len(names), data.test_labels):
    st.info(f"The test images of {r.config['dataset']} are not the ones this run was tested on (changed since?), "
            f"so its mistakes are not shown.")
    data = None

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
    if len(order):
        st.subheader("Why did it say that?")
        pick, why_col = st.columns([2, 3])
        index = pick.selectbox("A mistake", [int(i) for i in order], key="why_mistake",
                               format_func=lambda i: f"test image {i}: a {names[labels[i]]} taken for {names[predicted[i]]}")
        with pick:
            image_row(data.test_images[index:index + 1], [f"true {names[labels[index]][:16]}"], width=168)
        try:
            checkpoint = checkpoint_of(store)
        except CheckpointError as exc:
            why_col.error(str(exc))
        else:
            with why_col:
                why_this_answer(checkpoint, to_unit(data.test_images[index]), int(predicted[index]), key="why_method")

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
    if r.threshold is not None:
        fig.add_vline(x=r.threshold, line_dash="dot", line_color="#EA580C", annotation_text="not sure below")
    st.plotly_chart(fig, width="stretch")
    st.caption("Points below the diagonal: the model is more confident than it is right (over-confident).")
    curve = coverage_curve(probs, labels)
    cover = go.Figure(layout=dict(title="Answering only when sure: accuracy of the answers kept", height=380,
                                  xaxis_title="share of test images answered (coverage)", yaxis_title="accuracy",
                                  xaxis_tickformat=".0%", yaxis_tickformat=".1%", margin=dict(t=50, b=10)))
    cover.add_scatter(x=curve["coverage"], y=curve["accuracy"], mode="lines", name="keep answers above a threshold",
                      customdata=curve["threshold"], line=dict(color="#4F46E5"),
                      hovertemplate="threshold %{customdata:.1%}<br>answers %{x:.1%}, right %{y:.2%}<extra></extra>")
    if r.threshold is not None:
        answered, kept_accuracy = coverage_at(probs, labels, r.threshold)
        cover.add_scatter(x=[answered], y=[kept_accuracy], mode="markers", name="this run's threshold",
                          marker=dict(color="#EA580C", size=11))
    st.plotly_chart(cover, width="stretch")
    if r.threshold is None:
        st.caption(NO_THRESHOLD)
    else:
        st.caption(f"The threshold {r.threshold:.1%} was calibrated on the validation set (the midpoint between the wrong "
                   f"answers' mean confidence plus its spread and the right ones' minus theirs). Below it the Draw page "
                   f"says \"not sure\"; here it would answer {answered:.1%} of the test images and be right "
                   f"on {pct(kept_accuracy)} of them.")

with epochs_tab:
    run_cfg = store.config()
    fig = go.Figure(layout=dict(title="Accuracy per epoch", xaxis_title="epoch", yaxis_tickformat=".1%", height=420,
                                margin=dict(t=50, b=10)))
    add_epoch_accuracy(fig, r.epochs, run_cfg)
    st.plotly_chart(fig, width="stretch")
    st.caption(lecture_caption(run_cfg) or "A gap between train and validation that widens with the epochs is overfitting.")
    if run_cfg.test_each_epoch:
        kept = f" (epoch {r.best_epoch})" if r.best_epoch else ""
        st.caption("This run measured the test set after every epoch, as the course notebooks print it; the checkpoint "
                   f"kept was still chosen without it{kept}.")
