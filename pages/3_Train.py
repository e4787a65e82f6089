"""Train: queue a run, watch it learn live, stop it; it trains in a process of its own on the server."""

import core  # noqa: F401  (first: one complete import of torch and torchvision, see core/__init__.py)

from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from core.data import save_dataset
from core.device import device_label
from core.metrics import smooth, thinned
from core.models import check_fits
from core.scheduler import QuotaExceeded
from core.store import ACTIVE, RunStatus, RunStore, intact, run_row
from core.workspaces import uploads_dir
from pages.lib import (
    RUN_KEY,
    UPLOAD,
    chosen_dataset,
    chosen_dataset_name,
    current_config,
    dataset_title,
    intro,
    jobs,
    my_run,
    my_runs,
    pct,
    show_cluster,
    workspace,
)
from pages.lib.curves import add_epoch_accuracy, lecture_caption

st.set_page_config(page_title="Train · ConvNet Playground", page_icon="📈", layout="wide")
st.title("📈 Train")
intro("Start a run and watch its loss and accuracy live; it keeps training while you explore other pages.")

ws = workspace()
cfg = current_config()
name = chosen_dataset_name()
st.markdown(
    f"**{cfg.model}** on **{dataset_title(name) if name != UPLOAD else 'your uploaded data'}** · {cfg.optimizer} "
    f"lr {cfg.lr:g} · {cfg.scheduler} schedule · batch {cfg.batch_size} · {cfg.epochs} epoch{'s' * (cfg.epochs > 1)}"
    f"{' · augment: ' + ', '.join(cfg.augment) if cfg.augment else ''}"
    f"{f' · first {cfg.limit_train:,} images' if cfg.limit_train else ''} · on "
    f"{'the Ray cluster' if jobs().cluster else device_label(cfg.device)}")
st.page_link("pages/2_Model.py", label="Change the model or hyperparameters", icon="🧩")


def shown_run() -> RunStore | None:
    """This session's run, else this workspace's newest active or newest run (after a reload)."""
    runs = my_runs()
    return (my_run(st.session_state.get(RUN_KEY)) or next((r for r in runs if r.status()["status"] in ACTIVE), None)
            or (runs[0] if runs else None))


def start() -> None:
    data = chosen_dataset()
    if data is None:
        st.session_state["_train_refusal"] = "There is no dataset to train on yet: choose or upload one on the Data page."
        return
    run_cfg = current_config()
    try:
        check_fits(run_cfg.model, data.input_shape, data.num_classes, run_cfg.hidden)
        jobs().check_model_size(ws, run_cfg, data.input_shape, data.num_classes)
        # the worker process loads an upload from the workspace's own folder
        run_cfg.dataset = str(save_dataset(data, uploads_dir(ws))) if name == UPLOAD else name
        store = jobs().submit(run_cfg, ws, data.name)
    except (QuotaExceeded, ValueError) as exc:
        st.session_state["_train_refusal"] = str(exc)
        return
    st.session_state[RUN_KEY] = store.id


def steps_per_epoch(store: RunStore, steps: list[dict]) -> float:
    """Steps in one epoch of the run, to put per-step points on the epoch axis."""
    return (store.status().get("total_steps") or (steps[-1]["step"] if steps else 1)) / store.config().epochs


@st.cache_resource(max_entries=64, show_spinner=False)
def figures(run_path: str, version: tuple[int, int]) -> tuple[go.Figure, go.Figure, go.Figure]:
    """Loss, accuracy and learning rate, per epoch and per step, on one epoch axis; built once per update of the
    run's files (`version`) and shared by every session watching the run.

    Training loss and accuracy of an epoch are means over that epoch, so they sit at its middle;
    validation (and test, when the config asks for it every epoch) is measured after the epoch, so it sits at its end.
    """
    store = RunStore(Path(run_path))
    steps, epochs = store.steps(), store.epochs()
    per_epoch = steps_per_epoch(store, steps)
    smoothed = smooth([s["loss"] for s in steps])
    keep = thinned(len(steps))  # no more points than a chart's width shows
    steps, smoothed = [steps[i] for i in keep], [smoothed[i] for i in keep]
    step_x = [s["step"] / per_epoch for s in steps]
    losses = [s["loss"] for s in steps]
    epoch_x = [e["epoch"] for e in epochs]
    mid_x = [e["epoch"] - 0.5 for e in epochs]
    legend = dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1)
    loss = go.Figure(layout=dict(title="Loss", xaxis_title="epoch", height=340, margin=dict(t=50, b=10), legend=legend))
    loss.add_scatter(x=step_x, y=losses, name="train (per step)", mode="lines", line=dict(color="#A5B4FC", width=1))
    loss.add_scatter(x=step_x, y=smoothed, name="train (smoothed)", mode="lines", line=dict(color="#4F46E5"))
    loss.add_scatter(x=mid_x, y=[e["train_loss"] for e in epochs], name="train (epoch mean)", mode="lines+markers",
                     line=dict(color="#312E81", dash="dot"))
    loss.add_scatter(x=epoch_x, y=[e["val_loss"] for e in epochs], name="validation", mode="lines+markers",
                     line=dict(color="#EA580C"))
    if any(e.get("test_loss") is not None for e in epochs):
        loss.add_scatter(x=epoch_x, y=[e.get("test_loss") for e in epochs], name="test (after each epoch)",
                         mode="lines+markers", line=dict(color="#0F766E"))
    acc = go.Figure(layout=dict(title="Accuracy", xaxis_title="epoch", yaxis_tickformat=".1%", height=340,
                                margin=dict(t=50, b=10), legend=legend))
    add_epoch_accuracy(acc, epochs, store.config())
    lr = go.Figure(go.Scatter(x=step_x, y=[s["lr"] for s in steps], mode="lines", line=dict(color="#0F766E")),
                   layout=dict(title="Learning rate", xaxis_title="epoch", height=260, margin=dict(t=50, b=10)))
    return loss, acc, lr


LAYER_MEASURES = {"grad_norm": "gradient norm of the weights", "std": "activation standard deviation",
                  "mean": "activation mean"}


@st.cache_resource(max_entries=64, show_spinner=False)
def layer_figure(run_path: str, version: tuple[int, int], measure: str) -> go.Figure | None:
    """One line per layer (conv1, ..., fc1, ...) of `measure` at each reported step; None for a run recorded
    before layers were."""
    store = RunStore(Path(run_path))
    steps = store.steps()
    per_epoch = steps_per_epoch(store, steps)
    steps = [s for s in steps if s.get("layers")]  # every other reported step has them
    steps = [steps[i] for i in thinned(len(steps))]
    if not steps:
        return None
    names = list(dict.fromkeys(name for s in steps for name in s.get("layers", {})))
    fig = go.Figure(layout=dict(title=f"Inside the layers: {LAYER_MEASURES[measure]}", xaxis_title="epoch", height=360,
                                margin=dict(t=50, b=10), yaxis_type="log" if measure == "grad_norm" else "linear"))
    for name in names:
        fig.add_scatter(x=[s["step"] / per_epoch for s in steps],
                        y=[s.get("layers", {}).get(name, {}).get(measure) for s in steps], name=name, mode="lines")
    return fig


def file_version(store: RunStore) -> tuple[int, int]:
    """Changes whenever the run's worker rewrites its curves."""
    def mtime(name: str) -> int:
        try:
            return (store.path / name).stat().st_mtime_ns
        except OSError:
            return 0

    return mtime("steps.json"), mtime("epochs.json")


def curves(store: RunStore) -> None:
    loss, acc, lr = figures(str(store.path), file_version(store))
    left, right = st.columns(2)
    left.plotly_chart(loss, width="stretch")
    left.caption("Plain cross-entropy on both sides, so train and validation compare; with label smoothing "
                 "the optimizer minimises a smoothed version, which is higher.")
    right.plotly_chart(acc, width="stretch")
    if caption := lecture_caption(store.config()):
        right.caption(caption)
    st.plotly_chart(lr, width="stretch")
    if layer_figure(str(store.path), file_version(store), "grad_norm") is not None:  # a run recorded with layers
        measure = st.radio("Inside the layers", list(LAYER_MEASURES), format_func=LAYER_MEASURES.get, horizontal=True,
                           key="layer_measure")
        layers = layer_figure(str(store.path), file_version(store), measure)
        st.plotly_chart(layers, width="stretch")
        st.caption("Every convolution and linear layer, measured on the reported steps. Gradient norms (log scale) "
                   "that sit orders of magnitude lower in the first layers than in the last are vanishing gradients: "
                   "those layers barely learn. Sigmoid networks with PyTorch's default initialisation show it for "
                   "epochs; Xavier initialisation or ReLU lifts them. An activation std collapsing towards 0, or a "
                   "sigmoid's mean stuck near 0.5, says the same from the forward side.")


run = shown_run()
active = run is not None and run.status()["status"] in ACTIVE
PROGRESS_EVERY, CURVES_EVERY = 1.0, 2.0  # seconds; the curves cost the browser most, so they redraw less often


@st.fragment(run_every=PROGRESS_EVERY if active else None)
def live(run: RunStore | None) -> None:
    """The run's controls and progress, redrawn from its files while it is queued or training."""
    status = run.status() if run is not None else None
    state = status["status"] if status else None
    start_col, stop_col, _ = st.columns([1, 1, 4])
    if start_col.button("▶️ Start training", type="primary"):
        start()
        st.rerun()
    if refusal := st.session_state.pop("_train_refusal", None):
        st.warning(refusal)
    if state == RunStatus.QUEUED:
        if stop_col.button("✖️ Cancel"):
            jobs().stop(run)
            st.rerun()
    elif stop_col.button("⏹️ Stop", disabled=state not in ACTIVE):
        jobs().stop(run)
    if run is None:
        st.info("No run yet. Set things up on the Model page, or press Start to train with the defaults.")
        return
    if not intact(run):
        st.error(run_row(run)["message"])
        return
    cfg = run.config()
    if state == RunStatus.QUEUED:
        place = jobs().place(run)
        cluster_problem = jobs().cluster.why_waiting(cfg) if jobs().cluster is not None else None
        wait = (f"about {place.seconds / 60:,.1f} min left" if place.seconds is not None
                else "time left not known until the cluster answers" if cluster_problem
                else "time left not known until a run of this model has trained here")
        st.info(f"Queued: {place.ahead} run{'s' * (place.ahead != 1)} ahead of yours ({place.training} training, "
                f"{place.waiting} waiting), {wait}. It starts by itself; you can leave this page.")
        if cluster_problem:
            st.warning(cluster_problem)
    elif state in (RunStatus.LOADING, RunStatus.RUNNING, RunStatus.EVALUATING) and status.get("step"):
        step, total = status["step"], status.get("total_steps") or status["step"]
        st.progress(min(1.0, step / total),
                    text=f"Epoch {min(cfg.epochs, 1 + (status.get('epoch') or 0))}/{cfg.epochs} · step {step:,}/{total:,} · "
                         f"{status.get('samples_per_second') or 0:,.0f} samples/s · "
                         f"about {status.get('eta_seconds') or 0:,.0f} s left · {status.get('device', '')}"
                         f"{' on ' + status['node'] if status.get('backend') == 'ray' and status.get('node') else ''}")
    elif state in ACTIVE:
        st.progress(0.0, text=status.get("message") or "Starting")
    if state in (RunStatus.FAILED, RunStatus.DIVERGED):
        st.error(status.get("message"))
    elif state == RunStatus.INTERRUPTED:
        st.warning(f"{status.get('message')} The Runs page can resume it.")
    elif state in (RunStatus.FINISHED, RunStatus.STOPPED):
        st.success(f"{status.get('message')} Test accuracy {pct(status.get('test_accuracy'))}, "
                   f"{status.get('samples_per_second') or 0:,.0f} samples/s on {status.get('device', '?')}.")
        st.page_link("pages/4_Results.py", label="Read the results", icon="🔍")
    else:
        st.caption(f"Run {run.id}: {status.get('message', '')}")
    if (state in ACTIVE) != active:
        st.rerun()  # the run started or ended: redraw the page once, so the polling follows


@st.fragment(run_every=CURVES_EVERY if active else None)
def live_curves(run: RunStore | None) -> None:
    if run is not None and intact(run) and file_version(run)[0]:
        curves(run)


live(run)
if jobs().cluster is not None:  # a department's Ray cluster: where the runs train, or why they wait
    with st.expander("The cluster"):
        st.fragment(run_every=5.0)(show_cluster)()
live_curves(run)
interrupted = [s for s in my_runs() if s.status()["status"] == RunStatus.INTERRUPTED and s.has_training_state()]
if interrupted:
    st.warning(f"{len(interrupted)} run{'s were' if len(interrupted) > 1 else ' was'} interrupted when its process stopped; "
               f"the Runs page can resume {'them' if len(interrupted) > 1 else 'it'} from the last finished epoch.")

st.page_link("pages/6_Runs.py", label="Every run, compared, resumed and exported: the Runs page", icon="🗂️")
