"""ConvNet Playground: the home page. Run with `streamlit run app.py`."""

import core  # noqa: F401  (first: one complete import of torch and torchvision, see core/__init__.py)

import os

import streamlit as st

from core.data import ARCHIVE_DIR_VAR, DATASETS, archive_dir, data_dir, is_present
from core.device import describe_device, resolve_device
from core.store import ACTIVE
from core.workspaces import LOCAL
from pages.lib import BROWSER_KEY, my_runs, run_title, settings, workspace
from pages.lib.server import lifespan


def home() -> None:
    """Where a visitor starts: the device, the datasets, their active run, the way through the pages."""
    st.set_page_config(page_title="ConvNet Playground", page_icon="🧠", layout="wide")

    st.title("🧠 ConvNet Playground")
    ws = workspace()
    st.markdown(
        "Learn how convolutional networks train by training them yourself.  \n"
        "Pick a dataset, design a network and its hyperparameters, and watch it learn live.  \n"
        "Then read its mistakes and draw a digit for it to recognise."
    )

    device = resolve_device("auto")
    left, right = st.columns(2)
    with left:
        st.subheader("Where it trains")
        st.metric("Device", describe_device(device))
        active = next((r for r in my_runs() if r.status()["status"] in ACTIVE), None)
        if active is not None:
            st.info(f"Run {run_title(active)}: {active.status().get('message', '')}")
            st.page_link("pages/3_Train.py", label="Watch it on the Train page", icon="📈")
        if ws != LOCAL:
            s = settings()
            st.caption(f"Your runs are private to you on this shared server. Each run may train up to {s.max_epochs} epochs "
                       f"and {s.max_train_seconds / 60:g} minutes; you may have {s.max_active_runs} queued or training at once.")
            if BROWSER_KEY in st.session_state:
                with st.expander("Continue in another browser"):
                    st.markdown("Open this page's address with `?workspace=` and this key to see your runs there. "
                                "Keep it to yourself: whoever has it sees your runs.")
                    st.code(st.session_state[BROWSER_KEY], language=None)
    with right:
        st.subheader("Datasets")
        archives = archive_dir()
        rows = []
        for name, source in DATASETS.items():
            if is_present(name):
                state = "✅ ready"
            elif archives is not None and (archives / source.archive_subdir).exists():
                state = f"📦 will be installed from {ARCHIVE_DIR_VAR}"
            else:
                state = "⬇️ will be downloaded on first use"
            rows.append({"dataset": source.title, "what": source.description, "status": state})
        st.dataframe(rows, hide_index=True, width="stretch")
        st.caption(f"Data folder: `{os.path.abspath(data_dir())}`")

    st.subheader("The journey")
    st.page_link("pages/1_Data.py", label="1. Data: browse samples, classes, statistics and augmentations", icon="🖼️")
    st.page_link("pages/2_Model.py", label="2. Model: choose an architecture and its hyperparameters", icon="🧩")
    st.page_link("pages/3_Train.py", label="3. Train: start a run and watch the curves live", icon="📈")
    st.page_link("pages/4_Results.py", label="4. Results: per-class accuracy, confusion, mistakes, calibration", icon="🔍")
    st.page_link("pages/5_Draw.py", label="5. Draw: sketch a digit and see what the model thinks", icon="✏️")
    st.page_link("pages/5_Inside.py", label="6. Inside: filters forming, feature maps, why it answers", icon="🔬")
    st.page_link("pages/6_Runs.py", label="7. Runs: compare, resume, export and share every run", icon="🗂️")


if __name__ == "__main__":  # Streamlit runs this file as the home page, once per visit
    home()
else:  # `streamlit run app.py` first imports it, finds this app and serves it, calling `lifespan` around the server
    app = st.App("app.py", lifespan=lifespan)
