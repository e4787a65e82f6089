"""What every page shares: the visitor's workspace, their choices in session state, a few display helpers.

This folder is not a page (Streamlit only turns `pages/*.py` into pages); the
computations stay in `core`.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
import torch
from PIL import Image

from core.config import TrainConfig
from core.data import DATASETS, DatasetUnavailable, ImageDataset, load_dataset
from core.cluster import node_rows
from core.scheduler import TRAINING, Scheduler, scheduler
from core.settings import HostSettings
from core.store import DamagedRun, RunStore, find_run, list_runs
from core.workspaces import LOCAL, new_browser_key, workspace_for_key, workspace_for_user, workspace_root

UPLOAD = "upload"
DATASET_KEY = "dataset_name"
USER_DATA_KEY = "user_dataset"
CONFIG_KEY = "train_config"
RUN_KEY = "run_id"  # the run this session looks at: Train, Results and Draw open it
WORKSPACE_KEY = "workspace"  # this session's workspace id
BROWSER_KEY = "workspace_key"  # the secret an anonymous browser holds (cookie), from which its workspace id comes
COOKIE = "playground_workspace"

_remember_key = st.components.v2.component(
    "playground_workspace_cookie",
    js=f"""
export default function(component) {{
  const key = component.data && component.data.key;
  if (key) {{
    document.cookie = "{COOKIE}=" + key + "; path=/; max-age=31536000; SameSite=Strict";
  }}
}}
""",
)


def jobs() -> Scheduler:
    """The server's queue and workers (one per server process, shared by every session)."""
    return scheduler()


def settings() -> HostSettings:
    return jobs().settings


def workspace() -> str:
    """This visitor's workspace: the signed-in user's, the local one (a laptop), or an anonymous browser's.
    Each page calls it once, near its top (it may draw a notice); helpers read the session's value.

    The host decides with PLAYGROUND_WORKSPACES: `auto` (default) gives visitors on this machine the local
    workspace, which the command line shares, and everyone else a private one; `private` gives everyone a
    private one; `local` gives everyone the local one. A private workspace's key lives in a cookie, so it
    survives reloads and restarts; `?workspace=KEY` moves it to another browser.
    """
    if WORKSPACE_KEY not in st.session_state:
        st.session_state[WORKSPACE_KEY] = _find_workspace()
    key = st.session_state.get(BROWSER_KEY)
    if key and key != st.context.cookies.get(COOKIE):  # the browser does not hold this session's key yet
        _remember_key(data={"key": key}, key="remember_workspace")
    _offer_linked_workspace()
    return st.session_state[WORKSPACE_KEY]


def _find_workspace() -> str:
    mode = settings().workspaces
    if _login_configured():
        if not st.user.is_logged_in:
            st.info("Sign in to see your own runs.")
            st.button("Sign in", on_click=st.login, type="primary")
            st.stop()
        return workspace_for_user(str(st.user.get("sub") or st.user.get("email")))
    if mode == "local" or (mode == "auto" and not _remote_address()):
        return LOCAL
    return _browser_workspace()


def _remote_address() -> str | None:
    """The visitor's address, None on this machine (Streamlit gives None for localhost; AppTest no string)."""
    ip = st.context.ip_address
    return ip if isinstance(ip, str) and ip else None


def _login_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all: Streamlit raises its own not-found error
        return False


def _browser_workspace() -> str:
    """The workspace of this browser's cookie, else of the key in the link, else a new one (kept in a cookie).

    A link never silently replaces a workspace the browser already has: it offers to switch.
    """
    linked = _valid_key(st.query_params.get("workspace"))
    if "workspace" in st.query_params:
        del st.query_params["workspace"]
        if linked is None:
            st.warning("That workspace link is not valid, so this browser keeps its own workspace.")
    own = _valid_key(st.context.cookies.get(COOKIE))
    if own and linked and linked != own:
        st.session_state["_offered_key"] = linked
    key = own or linked or new_browser_key()
    st.session_state[BROWSER_KEY] = key
    return workspace_for_key(key)


def _offer_linked_workspace() -> None:
    """After opening a workspace link in a browser that has a workspace of its own: switch only if asked."""
    offered = st.session_state.get("_offered_key")
    if not offered:
        return
    st.warning("This link opens another workspace than this browser's own. Your own key is on the Home page: "
               "keep it to come back.")
    switch, keep = st.columns(2)
    if switch.button("Switch to the linked workspace"):
        st.session_state.update({BROWSER_KEY: offered, WORKSPACE_KEY: workspace_for_key(offered), "_offered_key": None})
        st.rerun()
    if keep.button("Keep my own workspace"):
        st.session_state["_offered_key"] = None
        st.rerun()


def _valid_key(key: str | None) -> str | None:
    if not key:
        return None
    try:
        workspace_for_key(key)
        return key
    except ValueError:
        return None


def my_workspace() -> str:
    """The workspace the page found (workspace() when the page has not called it yet)."""
    return st.session_state.get(WORKSPACE_KEY) or workspace()


def my_root() -> Path:
    """Where this visitor's runs live."""
    return workspace_root(my_workspace())


def my_runs() -> list[RunStore]:
    return list_runs(my_root())


def my_run(run_id: str | None) -> RunStore | None:
    """One of this visitor's runs by id; None for anything else, whatever was typed."""
    if not run_id:
        return None
    try:
        return find_run(run_id, my_root()) if "/" not in run_id else None
    except KeyError:
        return None


def show_cluster() -> None:
    """The Ray cluster this server trains on (PLAYGROUND_RAY_ADDRESS): its nodes, their GPUs, the runs on each
    and the queue; or the one message that says why it cannot be used. Nothing on a server without one."""
    sched = jobs()
    cluster = sched.cluster
    if cluster is None:
        return
    if cluster.problem:
        st.warning(cluster.problem)
        return
    entries = sched.entries()
    training_on = [e.node_id for e in entries if e.status in TRAINING]
    st.dataframe(pd.DataFrame(node_rows(cluster.nodes(), training_on)), hide_index=True, width="stretch")
    ask = cluster.request("cuda")["num_gpus"]
    st.caption(f"Runs train on this Ray cluster ({cluster.address}): {len(training_on)} now, {len(sched.queue())} "
               f"waiting in the queue. A GPU run asks for {ask:g} GPU{'s' * (ask > 1)}, a CPU run for "
               f"{cluster.request('cpu')['num_cpus']:g} CPUs.")


def intro(text: str) -> None:
    """The one-line statement of what a page is for."""
    st.caption(text)


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}"


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
    """Show images side by side, each with its caption, upscaled without blurring to the size shown
    (one element for the row: a page of many images stays cheap to send to every visitor)."""
    st.image([png_bytes(array, width) for array in to_display(images)], caption=list(captions), width=width)


@st.cache_data(max_entries=4096, show_spinner=False)
def png_bytes(array: np.ndarray, width: int) -> bytes:
    """One image as PNG at its display size, encoded once per server for every visitor who sees it."""
    buffer = io.BytesIO()
    Image.fromarray(_upscale(array, width)).save(buffer, format="PNG")
    return buffer.getvalue()


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
    status = store.status()
    try:
        cfg = store.config()
    except DamagedRun:
        return f"{store.id} · damaged"
    name = status.get("name") or f"{cfg.model} on {dataset_title(status.get('dataset') or cfg.dataset)}"
    return f"{name} · {status['status']} · test {pct(status.get('test_accuracy'))} · {store.id}"
