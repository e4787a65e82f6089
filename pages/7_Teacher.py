"""Teacher: every workspace's runs and the queue of this server, with Stop and Delete for any run."""

import core  # noqa: F401  (first: one complete import of torch and torchvision, see core/__init__.py)

import hmac
import time

import pandas as pd
import streamlit as st

from core.store import ACTIVE, RunStatus, delete_run, run_row
from core.workspaces import LOCAL, all_runs
from pages.lib import intro, jobs, settings, show_cluster

st.set_page_config(page_title="Teacher · ConvNet Playground", page_icon="🎓", layout="wide")
st.title("🎓 Teacher")
intro("The whole class at a glance: every student's runs, the queue, and Stop or Delete for any run.")

key = settings().teacher_key
if not key:
    st.info("This server has no teacher key, so this page is closed. The host opens it by setting "
            "`PLAYGROUND_TEACHER_KEY` (or `teacher_key` in the `[playground]` table of `.streamlit/secrets.toml`).")
    st.stop()
if not st.session_state.get("_teacher"):
    typed = st.text_input("Teacher key", type="password")
    if typed and hmac.compare_digest(typed.encode(), key.encode()):
        st.session_state["_teacher"] = True
        st.rerun()
    if typed:
        st.error("That is not this server's teacher key.")
    st.stop()


def short(workspace: str) -> str:
    return "local" if workspace == LOCAL else f"student {workspace[:6]}"


@st.fragment(run_every=2.0)
def overview() -> None:
    sched = jobs()
    entries = sched.entries()
    training = [e for e in entries if e.status != RunStatus.QUEUED]
    queue = sched.queue()
    a, b, c = st.columns(3)
    a.metric("Training now", len(training))
    b.metric("Queued", len(queue))
    c.metric("Workspaces with runs", len({ws for ws, _ in all_runs()}))
    st.subheader("Queue")
    if queue:
        st.dataframe(pd.DataFrame([{"turn": i + 1, "workspace": short(e.workspace), "run": e.store.id,
                                    "model": e.config.model, "epochs": e.config.epochs, "device": e.device,
                                    "waiting (s)": round(time.time() - e.queued_at)} for i, e in enumerate(queue)]),
                     hide_index=True, width="stretch")
    else:
        st.caption("Nobody is waiting.")
    if sched.cluster is not None:
        st.subheader("The cluster")
        show_cluster()


overview()

st.subheader("Every run")
runs = all_runs()
if not runs:
    st.info("No runs yet.")
    st.stop()
rows = pd.DataFrame([{"workspace": short(ws), **run_row(store)} for ws, store in runs])
st.dataframe(rows, hide_index=True, width="stretch",
             column_config={"test acc": st.column_config.NumberColumn(format="percent"),
                            "best val acc": st.column_config.NumberColumn(format="percent")})
by_id = {store.path: (ws, store) for ws, store in runs}
chosen = st.selectbox("Run to stop or delete", list(by_id), index=None, placeholder="Choose a run",
                      format_func=lambda p: f"{short(by_id[p][0])} · {p.name} · {by_id[p][1].status()['status']}")
if chosen is None:
    st.stop()
ws, store = by_id[chosen]
status = store.status()
st.markdown(f"**{store.id}** of {short(ws)}: {status['status']} · {status.get('message', '')}")
stop_col, delete_col = st.columns(2)
if stop_col.button("⏹️ Stop this run", disabled=status["status"] not in ACTIVE):
    if jobs().stop(store):
        st.success(f"Asked {store.id} to stop.")
    else:
        st.info(f"{store.id} had already ended.")
sure = delete_col.checkbox(f"Yes, delete {store.id} for good")
if delete_col.button("🗑️ Delete this run", disabled=not sure or status["status"] in ACTIVE):
    try:
        delete_run(store)
        st.rerun()
    except (ValueError, OSError) as exc:  # it started again, or went, since this page was drawn
        st.error(f"Nothing was deleted: {exc}")
