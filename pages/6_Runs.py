"""Runs: every run of this workspace (on a laptop: the app's and the command line's), compared, resumed, exported."""

import core  # noqa: F401  (first: one complete import of torch and torchvision, see core/__init__.py)

import tempfile
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.checkpoint import CheckpointError, load_checkpoint
from core.data import DatasetUnavailable
from core.engine import evaluate_checkpoint
from core.export import import_checkpoint_zip, run_zip, standalone_script, to_onnx
from core.scheduler import QuotaExceeded
from core.store import RESUMABLE, RunStore, compare_configs, delete_run, intact, run_row
from core.workspaces import LOCAL
from pages.lib import RUN_KEY, intro, jobs, my_root, my_runs, pct, settings, workspace

st.set_page_config(page_title="Runs · ConvNet Playground", page_icon="🗂️", layout="wide")
st.title("🗂️ Runs")
ws = workspace()
intro("Every run ever trained here, from the app or the command line: compare them, resume, export and share."
      if ws == LOCAL else "Every run of your workspace (only you see them): compare them, resume, export and share.")


def delete_box(store: RunStore, title: str) -> None:
    """Delete one run, after a confirmation; a run that started again or went meanwhile is not deleted."""
    with st.expander(title):
        sure = st.checkbox(f"Yes, delete {store.id} and its checkpoints for good")
        if st.button("Delete", type="primary", disabled=not sure):
            try:
                delete_run(store)
                st.rerun()
            except (ValueError, OSError) as exc:
                st.error(f"Nothing was deleted: {exc}")


with st.expander("⬆️ Upload a checkpoint zip (from another machine's Runs page)"):
    upload = st.file_uploader("A run's zip: only its best.safetensors and best.json are read", type=["zip"])
    if upload is not None and (refused := settings().upload_refused(upload.name, upload.size, ws != LOCAL)):
        st.error(refused)
    elif upload is not None and st.session_state.get("_imported") != upload.file_id:
        try:
            jobs().check_room(ws)
            store = import_checkpoint_zip(upload.getvalue(), upload.name, root=my_root())
            st.session_state["_imported"] = upload.file_id
            try:
                evaluate_checkpoint(store)
                st.success(f"Imported as {store.id} and evaluated on its test set: open it in Results or Draw.")
            except (DatasetUnavailable, CheckpointError, ValueError) as exc:
                st.info(f"Imported as {store.id}; it can draw, but has no test evaluation here ({exc}).")
        except (CheckpointError, QuotaExceeded, ValueError) as exc:
            st.error(f"Refused: {exc}")

stores = my_runs()
if not stores:
    st.info(f"No runs in {my_root().resolve()} yet. Train one, or run `python -m core.train`; "
            f"`tensorboard --logdir {my_root()}` shows the same runs." if ws == LOCAL else "No runs yet: train one first.")
    st.stop()

rows = pd.DataFrame([run_row(s) for s in stores])
search_col, status_col, dataset_col = st.columns([2, 1, 1])
search = search_col.text_input("Filter by name, id, model or tag", placeholder="e.g. lenet or baseline")
statuses = status_col.multiselect("Status", sorted(rows["status"].dropna().unique()))
datasets = dataset_col.multiselect("Dataset", sorted(rows["dataset"].dropna().unique()))
shown = rows
if search:
    text = shown[["id", "name", "model", "tags"]].astype(str).agg(" ".join, axis=1)
    shown = shown[text.str.contains(search, case=False, regex=False)]
if statuses:
    shown = shown[shown["status"].isin(statuses)]
if datasets:
    shown = shown[shown["dataset"].isin(datasets)]

event = st.dataframe(
    shown, hide_index=True, width="stretch", on_select="rerun", selection_mode="multi-row", key="runs_table",
    column_config={"best val acc": st.column_config.NumberColumn(format="percent"),
                   "test acc": st.column_config.NumberColumn(format="percent"),
                   "seconds": st.column_config.NumberColumn(format="%.1f"),
                   "lr": st.column_config.NumberColumn(format="%g")})
st.caption(f"{len(shown)} of {len(rows)} runs; click column headers to sort, tick rows to compare."
           + (f" TensorBoard: `tensorboard --logdir {my_root()}`." if ws == LOCAL else ""))
by_id = {s.id: s for s in stores}
selected = [by_id[shown.iloc[i]["id"]] for i in event.selection.rows if i < len(shown)]
damaged = [s for s in selected if not intact(s)]
if damaged:
    store = damaged[0]
    st.error(run_row(store)["message"])
    delete_box(store, "🗑️ Delete this damaged run")
    st.stop()
if not selected:
    st.info("Select one run to act on it, or several to compare their curves and configs.")
    st.stop()

if len(selected) > 1:
    st.subheader(f"{len(selected)} runs compared")
    loss, acc = go.Figure(), go.Figure()
    for store in selected:
        epochs = store.epochs()
        label = store.status().get("name") or store.id
        x = [e["epoch"] for e in epochs]
        loss.add_scatter(x=x, y=[e["val_loss"] for e in epochs], name=label, mode="lines+markers")
        acc.add_scatter(x=x, y=[e["val_accuracy"] for e in epochs], name=label, mode="lines+markers")
    loss.update_layout(title="Validation loss", xaxis_title="epoch", height=360, margin=dict(t=50, b=10), legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1))
    acc.update_layout(title="Validation accuracy", xaxis_title="epoch", yaxis_tickformat=".1%", height=360,
                      margin=dict(t=50, b=10), legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1))
    left, right = st.columns(2)
    left.plotly_chart(loss, width="stretch")
    right.plotly_chart(acc, width="stretch")
    configs, differing = compare_configs(selected)
    table = pd.DataFrame(configs).map(lambda v: ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v))
    table = table.loc[sorted(table.index, key=lambda k: (k not in differing, k))]
    differ = "1 setting differs" if len(differing) == 1 else f"{len(differing)} settings differ"
    st.markdown(f"**Configs side by side**: {differ} (highlighted, listed first).")
    st.dataframe(table.style.apply(lambda row: ["background-color: #FEF3C7" if row.name in differing else ""] * len(row), axis=1),
                 width="stretch")
    st.stop()

store = selected[0]
status = store.status()
st.subheader(status.get("name") or store.id)
st.caption(f"{status['status']}: {status.get('message', '')} · test accuracy {pct(status.get('test_accuracy'))}"
           + (f" · {store.path}" if ws == LOCAL else ""))

open_col, draw_col, resume_col = st.columns(3)
if open_col.button("🔍 Open in Results", disabled=store.evaluation() is None, width="stretch"):
    st.session_state[RUN_KEY] = store.id
    st.switch_page("pages/4_Results.py")
if draw_col.button("✏️ Open in Draw", disabled=not store.best_checkpoint.is_file(), width="stretch"):
    st.session_state[RUN_KEY] = store.id
    st.switch_page("pages/5_Draw.py")
if resume_col.button("⏯️ Resume", disabled=status.get("status") not in RESUMABLE or not store.has_training_state(),
                     width="stretch", help="Continue an interrupted or stopped run from its last finished epoch"):
    try:
        jobs().resume(store, ws)
        st.session_state[RUN_KEY] = store.id
        st.switch_page("pages/3_Train.py")
    except (QuotaExceeded, ValueError) as exc:
        st.warning(str(exc))

with st.form("rename"):
    name = st.text_input("Name", value=status.get("name", ""))
    tags = st.text_input("Tags (comma-separated)", value=", ".join(status.get("tags", [])))
    if st.form_submit_button("Save name and tags"):
        try:
            store.update_status(name=name.strip()[:200], tags=[t.strip()[:50] for t in tags.split(",") if t.strip()][:20])
            st.rerun()
        except OSError:
            st.error(f"Run {store.id} is no longer here (deleted in another tab?).")

st.markdown("**Export**")
zip_col, onnx_col, script_col = st.columns(3)
zip_col.download_button("📦 Download zip (config, metrics CSV, weights)", lambda: run_zip(store), file_name=f"{store.id}.zip",
                        mime="application/zip", width="stretch")
if store.best_checkpoint.is_file() and onnx_col.button("Prepare ONNX model", width="stretch"):
    with st.spinner("Exporting to ONNX…"), tempfile.TemporaryDirectory() as tmp:
        path = to_onnx(load_checkpoint(store.best_checkpoint), Path(tmp) / "model.onnx")
        st.session_state["_onnx"] = (store.id, path.read_bytes())
onnx = st.session_state.get("_onnx")
if onnx and onnx[0] == store.id:
    onnx_col.download_button("⬇️ Download model.onnx (input: images on [0, 1])", onnx[1], file_name=f"{store.id}.onnx",
                             width="stretch")
try:
    script_col.download_button("🐍 Export as a script", standalone_script(store.config(), f"run {store.id}"),
                               file_name=f"retrain_{store.id}.py", mime="text/x-python", width="stretch",
                               help="One Python file with plain PyTorch and torchvision that retrains this run")
except ValueError as exc:
    script_col.caption(str(exc))

delete_box(store, "🗑️ Delete this run")
