"""Draw: sketch a digit and watch the trained model read it."""

import core  # noqa: F401  (first: one complete import of torch and torchvision, see core/__init__.py)

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from streamlit_drawable_canvas import st_canvas

from core.drawing import ink_from_rgba, mnist_style
from core.images import ImageRefused
from core.predict import fit_to_input, image_to_tensor, predict_tensor
from pages.lib import image_row, intro, workspace
from pages.lib.insides import DRAWN, NO_THRESHOLD, answer, trained_run, why_this_answer

st.set_page_config(page_title="Draw · ConvNet Playground", page_icon="✏️", layout="wide")
st.title("✏️ Draw")
intro("Draw a digit and see what the trained model predicts, with the exact input it sees.")


workspace()
store, checkpoint = trained_run("Model", "and draw", while_training=False)
channels, height, width = checkpoint.meta["input_shape"]
names = checkpoint.class_names

draw_col, input_col, chart_col = st.columns([4, 2, 4])  # the canvas needs 280 px at 1280 wide
model_input = None
with draw_col:
    if channels == 1:
        brush = st.slider("Brush size", 8, 40, 20)
        version = st.session_state.setdefault("canvas_version", 0)
        canvas = st_canvas(stroke_width=brush, stroke_color="#000000", background_color="#FFFFFF",
                           width=280, height=280, drawing_mode="freedraw", return_image_data=True,
                           key=f"canvas_{version}")
        if st.button("🧽 Clear"):
            st.session_state["canvas_version"] = version + 1
            st.rerun()
        if canvas.image_data is not None:
            digit = mnist_style(ink_from_rgba(canvas.image_data))
            if digit is not None:
                model_input = fit_to_input(torch.from_numpy(digit)[None], (channels, height, width)).unsqueeze(0)
    else:
        st.markdown("This model was trained on colour images: upload a photo instead of drawing.")
        upload = st.file_uploader("An image (PNG, JPEG, …)", type=["png", "jpg", "jpeg", "bmp", "gif", "webp"])
        if upload is not None:
            try:
                model_input = image_to_tensor(upload, (channels, height, width), name=upload.name).unsqueeze(0)
            except ImageRefused as exc:
                st.error(str(exc))

if model_input is None:
    input_col.caption("The model's input appears here once you draw.")
    st.stop()

st.session_state[DRAWN] = model_input[0]  # the Inside page shows its feature maps
probs = predict_tensor(checkpoint, model_input)[0]
best = int(probs.argmax())
said, runner_ups = answer(probs, names, checkpoint.meta.get("threshold"))
with input_col:
    st.markdown(f"**What the model sees** ({width} x {height})")
    image_row(model_input, ["scaled into 20 x 20, centred by mass" if channels == 1 else "resized"], width=168)
    why_this_answer(checkpoint, model_input[0], best, key="draw_method")
    st.page_link("pages/5_Inside.py", label="Its feature maps, layer by layer", icon="🔬")

with chart_col:
    st.metric("Prediction", said, f"{probs[best]:.1%} sure" if runner_ups is None else f"{probs[best]:.1%} for {names[best]}",
              delta_color="off", delta_arrow="off")
    if runner_ups:
        st.warning(runner_ups)
    elif checkpoint.meta.get("threshold") is None:
        st.caption(NO_THRESHOLD)
    order = np.argsort(-probs.numpy())
    bars = go.Figure(go.Bar(x=[float(probs[i]) for i in order], y=[names[i] for i in order], orientation="h",
                            marker_color=["#4F46E5" if i == best else "#CBD5E1" for i in order],
                            text=[f"{float(probs[i]):.1%}" for i in order], textposition="outside"))
    bars.update_layout(title="Probability of each class", xaxis_tickformat=".0%", xaxis_range=[0, 1.15],
                       yaxis_autorange="reversed", height=380, margin=dict(t=50, b=10))
    if (threshold := checkpoint.meta.get("threshold")) is not None:
        bars.add_vline(x=threshold, line_dash="dash", line_color="#EA580C", annotation_text="not sure below",
                       annotation_position="bottom right")
    st.plotly_chart(bars, width="stretch")
