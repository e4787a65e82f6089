"""Train: start a run in the background and watch it learn."""

import plotly.graph_objects as go
import streamlit as st

from core.device import describe_device, resolve_device
from core.jobs import DeviceBusy, Snapshot, TrainingJob, manager
from core.metrics import smooth
from core.runs import list_runs
from pages.lib import (
    RUN_KEY,
    UPLOAD,
    chosen_dataset,
    chosen_dataset_name,
    current_config,
    dataset_title,
    intro,
    pct,
)

st.set_page_config(page_title="Train · ConvNet Playground", page_icon="📈", layout="wide")
st.title("📈 Train")
intro("Start a run and watch its loss and accuracy live; it keeps training while you explore other pages.")

jobs = manager()


def shown_job() -> TrainingJob | None:
    """This session's run, else the server's active or latest run (after a browser reload)."""
    all_jobs = jobs.jobs()
    return jobs.for_run(st.session_state.get(RUN_KEY, "")) or jobs.active() or (all_jobs[-1] if all_jobs else None)


cfg = current_config()
name = chosen_dataset_name()
st.markdown(
    f"**{cfg.model}** on **{dataset_title(name) if name != UPLOAD else 'your uploaded data'}** · {cfg.optimizer} "
    f"lr {cfg.lr:g} · {cfg.scheduler} schedule · batch {cfg.batch_size} · {cfg.epochs} epoch{'s' * (cfg.epochs > 1)}"
    f"{' · augment: ' + ', '.join(cfg.augment) if cfg.augment else ''}"
    f"{f' · first {cfg.limit_train:,} images' if cfg.limit_train else ''} · on {describe_device(resolve_device(cfg.device))}")
st.page_link("pages/2_Model.py", label="Change the model or hyperparameters", icon="🧩")

job = shown_job()
start_col, stop_col, _ = st.columns([1, 1, 4])
if start_col.button("▶️ Start training", type="primary", disabled=job is not None and job.active):
    data = chosen_dataset()
    if data is not None:
        cfg.dataset = data.name if name == UPLOAD else name
        try:
            job = jobs.start(cfg, dataset=data)
            st.session_state[RUN_KEY] = job.run_id
        except DeviceBusy as exc:
            st.warning(str(exc))
if stop_col.button("⏹️ Stop", disabled=job is None or not job.active):
    job.stop()


def curves(snap: Snapshot, steps_per_epoch: float) -> None:
    """Loss, accuracy and learning rate, per epoch and per step, on one epoch axis.

    Training loss and accuracy of an epoch are means over that epoch, so they sit at its middle;
    validation is measured after the epoch, so it sits at its end.
    """
    step_x = [s.step / steps_per_epoch for s in snap.steps]
    epoch_x = [e.epoch for e in snap.epochs]
    mid_x = [e.epoch - 0.5 for e in snap.epochs]
    loss = go.Figure()
    loss.add_scatter(x=step_x, y=[s.loss for s in snap.steps], name="train (per step)", mode="lines",
                     line=dict(color="#A5B4FC", width=1))
    loss.add_scatter(x=step_x, y=smooth([s.loss for s in snap.steps]), name="train (smoothed)", mode="lines",
                     line=dict(color="#4F46E5"))
    loss.add_scatter(x=mid_x, y=[e.train_loss for e in snap.epochs], name="train (epoch mean)", mode="lines+markers",
                     line=dict(color="#312E81", dash="dot"))
    loss.add_scatter(x=epoch_x, y=[e.val_loss for e in snap.epochs], name="validation", mode="lines+markers",
                     line=dict(color="#EA580C"))
    loss.update_layout(title="Loss", xaxis_title="epoch", height=340, margin=dict(t=50, b=10), legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1))
    acc = go.Figure()
    acc.add_scatter(x=mid_x, y=[e.train_accuracy for e in snap.epochs], name="train (epoch mean)", mode="lines+markers",
                    line=dict(color="#4F46E5"))
    acc.add_scatter(x=epoch_x, y=[e.val_accuracy for e in snap.epochs], name="validation", mode="lines+markers",
                    line=dict(color="#EA580C"))
    acc.update_layout(title="Accuracy", xaxis_title="epoch", yaxis_tickformat=".1%", height=340,
                      margin=dict(t=50, b=10), legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1))
    lr = go.Figure(go.Scatter(x=step_x, y=[s.lr for s in snap.steps], mode="lines", line=dict(color="#0F766E")))
    lr.update_layout(title="Learning rate", xaxis_title="epoch", height=260, margin=dict(t=50, b=10))
    left, right = st.columns(2)
    left.plotly_chart(loss, width="stretch")
    left.caption("Plain cross-entropy on both sides, so train and validation compare; with label smoothing "
                 "the optimizer minimises a smoothed version, which is higher.")
    right.plotly_chart(acc, width="stretch")
    st.plotly_chart(lr, width="stretch")


@st.fragment(run_every=1.0 if job is not None and job.active else None)
def live(job: TrainingJob) -> None:
    snap = job.snapshot()
    if snap.steps:
        last = snap.steps[-1]
        st.progress(last.step / last.total_steps,
                    text=f"Epoch {last.epoch}/{job.config.epochs} · step {last.step:,}/{last.total_steps:,} · "
                         f"{last.samples_per_second:,.0f} samples/s · about {last.eta_seconds:,.0f} s left · {job.device}")
    elif job.active:
        st.progress(0.0, text=snap.message)
    if snap.status == "failed":
        st.error(snap.message)
    elif snap.status == "diverged":
        st.error(snap.message)
    elif snap.status in ("finished", "stopped"):
        r = snap.result
        st.success(f"{snap.message} Test accuracy {pct(r.test_accuracy)}, {r.samples_per_second:,.0f} samples/s on {r.device}.")
        st.page_link("pages/4_Results.py", label="Read the results", icon="🔍")
    else:
        st.caption(f"Run {job.title}: {snap.message}")
    if snap.steps:
        curves(snap, snap.steps[-1].total_steps / job.config.epochs)
    if not job.active and st.session_state.get("_seen_active") == job.id:
        st.session_state["_seen_active"] = None
        st.rerun()  # the run just ended: redraw the page once, so the buttons and polling follow
    if job.active:
        st.session_state["_seen_active"] = job.id


if job is not None:
    live(job)
else:
    st.info("No run yet. Set things up on the Model page, or press Start to train with the defaults.")
interrupted = [s for s in list_runs() if s.status().get("status") == "interrupted" and s.has_training_state()]
if interrupted:
    st.warning(f"{len(interrupted)} run{'s were' if len(interrupted) > 1 else ' was'} interrupted when its process stopped; "
               f"the Runs page can resume {'them' if len(interrupted) > 1 else 'it'} from the last finished epoch.")

st.page_link("pages/6_Runs.py", label="Every run, compared, resumed and exported: the Runs page", icon="🗂️")
