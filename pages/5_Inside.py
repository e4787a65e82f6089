"""Inside: what a trained network learned, layer by layer: its filters forming, its feature maps, why it answers."""

import core  # noqa: F401  (first: one complete import of torch and torchvision, see core/__init__.py)

import plotly.graph_objects as go
import streamlit as st

from core.inspect import convolution_layers, feature_maps, filter_grid, tile
from core.metrics import confident_mistakes, predictions_fit
from core.predict import fit_to_input, predict_tensor
from core.preprocess import to_unit
from pages.lib import image_row, intro, workspace
from pages.lib.insides import DRAWN, answer, run_dataset, show, trained_run, why_this_answer

st.set_page_config(page_title="Inside · ConvNet Playground", page_icon="🔬", layout="wide")
st.title("🔬 Inside")
intro("Look inside a network you trained: its first-layer filters forming epoch by epoch, the test images as it "
      "sees them, every layer's feature maps for one image, and which pixels its answer rests on.")

MOST_CHANNELS = 32  # maps or kernel rows drawn per layer; the rest are named, not drawn

ws = workspace()
store, checkpoint = trained_run("Run", "and look inside it", while_training=True)
model, meta, names = checkpoint.model, checkpoint.meta, checkpoint.class_names

filters_tab, embedding_tab, maps_tab, why_tab = st.tabs(["Filters", "Embedding", "Feature maps", "Why this answer"])

with filters_tab:
    convolutions = convolution_layers(model)
    history = store.history("filters")
    if history:
        epochs = list(history)
        epoch = st.select_slider("After epoch", epochs, value=epochs[-1], key="filters_epoch",
                                 format_func=lambda e: "0 (as initialised)" if e == 0 else str(e))
        kernels = history[epoch]["weight"]
        show(filter_grid(kernels[:MOST_CHANNELS], cell=64), width=min(900, 66 * min(8, len(kernels))),
             caption=f"the first convolution's {kernels.shape[0]} kernels of {kernels.shape[2]} x {kernels.shape[3]} "
                     f"pixels after epoch {epoch}")
        if convolutions and not convolutions[0][1].weight.requires_grad:
            st.caption("This first layer does not learn: its kernels are computed from the training images before "
                       "the first step (airbench's whitening: the main directions of the images' 2 x 2 patches, and "
                       "their negatives), so every epoch shows the same ones. The layers after it learn.")
        else:
            st.caption("Slide from epoch 0: the kernels start as noise. A first layer that has learned shows smooth "
                       "patterns with a bright side and a dark side: edge and stroke detectors at one angle each. "
                       "Kernels that stay speckled did not learn (too few epochs, a learning rate too small, or a "
                       "layer that receives no gradient).")
    else:
        st.info("This run has no filter history to show: a network without a convolution, a run trained before "
                "filters were kept, or a damaged filters.safetensors.")
    if len(convolutions) > 1:
        st.subheader("Deeper layers")
        layer = st.selectbox("Convolution", range(1, len(convolutions)), key="filters_layer",
                             format_func=lambda i: f"conv{i + 1} ({convolutions[i][0]}): "
                                                   f"{tuple(convolutions[i][1].weight.shape)}")
        weight = convolutions[layer][1].weight
        rows, columns = min(weight.shape[0], MOST_CHANNELS), min(weight.shape[1], MOST_CHANNELS)
        show(filter_grid(weight[:rows, :columns], cell=24), width=min(1100, 26 * columns),
             caption="one row per output channel, one kernel per input channel, from the best checkpoint"
                     + (f" (the first {rows} x {columns})" if (rows, columns) != tuple(weight.shape[:2]) else ""))
        st.caption("A deeper kernel combines the previous layer's maps, so it means little as a picture: look for rows "
                   "that are all grey, channels that learned nothing.")

CLASS_COLOURS = ["#4F46E5", "#EA580C", "#0F766E", "#DB2777", "#CA8A04", "#2563EB", "#16A34A", "#9333EA", "#DC2626",
                 "#475569"]

with embedding_tab:
    embedding = store.history("embedding")
    if not embedding or any(int(t["labels"].max()) >= len(names) or int(t["predicted"].max()) >= len(names)
                            for t in embedding.values()):
        st.info("This run has no embedding to show: it was trained before embeddings were kept, or its "
                "embedding.safetensors is damaged.")
    else:
        epochs = list(embedding)
        epoch = st.select_slider("After epoch", epochs, value=epochs[-1], key="embedding_epoch",
                                 format_func=lambda e: "0 (as initialised)" if e == 0 else str(e))
        points, labels, predicted = (embedding[epoch][k] for k in ("points", "labels", "predicted"))
        scatter = go.Figure(layout=dict(title=f"The first {len(points):,} test images as the network sees them after "
                                              f"epoch {epoch}", height=560, margin=dict(t=50, b=10),
                                        xaxis_title="first principal component", yaxis_title="second",
                                        legend_title="true class"))
        for c, name in enumerate(names):
            in_legend = False
            for right in (True, False):  # wrong answers as x, in the class's colour, toggled with it in the legend
                mine = ((labels == c) & ((predicted == labels) == right)).nonzero().flatten().tolist()
                if mine:
                    scatter.add_scattergl(
                        x=points[mine, 0].tolist(), y=points[mine, 1].tolist(), mode="markers", name=name[:20],
                        legendgroup=str(c), showlegend=not in_legend,
                        marker=dict(size=5 if right else 7, color=CLASS_COLOURS[c % len(CLASS_COLOURS)],
                                    symbol="circle" if right else "x"),
                        customdata=mine, text=[f"true {name[:20]}, said {names[predicted[i]][:20]}" for i in mine],
                        hovertemplate="test image %{customdata}: %{text}<extra></extra>")
                    in_legend = True
        chosen = st.plotly_chart(scatter, key="embedding_chart", on_select="rerun", selection_mode="points")
        st.caption("Each point is one test image's penultimate-layer features (what the last layer decides on), "
                   "projected on their two principal components; x marks a wrong answer. At epoch 0 the classes lie "
                   "mixed; as the network learns they pull apart into clusters, and the images between two clusters "
                   "are the ones it confuses. Click a point to see its image.")
        picked = (chosen or {}).get("selection", {}).get("points")  # what the browser sent: checked before use
        first = picked[0] if isinstance(picked, list) and picked else None
        value = first.get("customdata") if isinstance(first, dict) else None
        index = value[0] if isinstance(value, list) and value else value
        if isinstance(index, int) and 0 <= index < len(points):
            embedding_data = run_dataset(ws, store.config().dataset, "the image cannot be shown")
            if embedding_data is not None:
                image_row(embedding_data.test_images[index:index + 1],
                          [f"test image {index}: true {names[labels[index]][:14]}, said {names[predicted[index]][:14]}"],
                          width=140)

sources = ["a test image", "a mistake"] + (["your drawing"] if DRAWN in st.session_state else [])
source = st.sidebar.radio("Look at", sources, key="inside_source")
image = None
if source == "your drawing":
    drawn, shape = st.session_state[DRAWN], tuple(meta["input_shape"])
    if drawn.shape[0] == shape[0]:
        image = fit_to_input(drawn, shape)
    else:
        kinds = {1: "grey", 3: "colour"}
        st.sidebar.warning(f"Your drawing is {kinds[drawn.shape[0]]} and this model reads {kinds[shape[0]]} images; "
                           f"pick a test image.")
else:
    data = run_dataset(ws, store.config().dataset, "only your drawing can be shown")
    if data is not None:
        index = None
        predictions = store.test_predictions() if source == "a mistake" else None
        if predictions is not None and not predictions_fit(*predictions, len(names), data.test_labels):
            predictions = None  # they are not this dataset's test images as loaded now
        if predictions is not None and len(order := confident_mistakes(*predictions)[0]):
            test_probs, test_labels = predictions
            index = st.sidebar.selectbox("Mistake", [int(i) for i in order], key="inside_mistake",
                                         format_func=lambda i: f"image {i}: a {names[test_labels[i]]} taken for "
                                                               f"{names[test_probs[i].argmax()]}")
        elif source == "a mistake":
            st.sidebar.info("No mistakes recorded for this run; pick a test image.")
        if index is None:
            index = st.sidebar.number_input("Test image", 0, len(data.test_labels) - 1, 0, key="inside_index")
        image = to_unit(data.test_images[index])

if image is None:
    st.info("Pick an image in the sidebar to see its feature maps and why the model answers as it does.")
    st.stop()

probs = predict_tensor(checkpoint, image.unsqueeze(0))[0]
said, runner_ups = answer(probs, names, meta.get("threshold"))
best = int(probs.argmax())

with maps_tab:
    left, right = st.columns([1, 4])
    with left:
        image_row(image.unsqueeze(0), [f"says {said[:16]} ({float(probs[best]):.0%})"], width=140)
        if runner_ups:
            st.caption(runner_ups)
    layers = feature_maps(model, meta["mean"], meta["std"], image)
    with right:
        if not layers:
            st.info("This network has no convolution or pooling layer: an MLP sees the image as one long vector.")
        for fm in layers:
            channels, height, width = fm.maps.shape
            shown = min(channels, MOST_CHANNELS)
            st.markdown(f"**{fm.layer}** · {fm.module_type} · "
                        f"{channels} x {height} x {width}" + (f" (the first {shown} maps)" if shown < channels else ""))
            show(tile(fm.maps[:shown].unsqueeze(1), cell=56 if height >= 14 else 40, columns=16),
                 width=min(1000, (58 if height >= 14 else 42) * min(16, shown)))
        if layers:
            st.caption("Each map is one channel's response, bright where its filter matches. The first layers keep the "
                       "image's shape (strokes, edges); pooling halves the size, and deeper maps get smaller and more "
                       "abstract: parts of a digit rather than pixels.")
            st.subheader("Enlarge one map")
            pick_layer, pick_channel = st.columns(2)
            chosen = pick_layer.selectbox("Layer", range(len(layers)), key="maps_layer",
                                          format_func=lambda i: f"{layers[i].layer} {tuple(layers[i].maps.shape)}")
            fm = layers[chosen]
            channel = pick_channel.number_input("Channel", 0, fm.maps.shape[0] - 1, 0, key="maps_channel")
            heat = go.Figure(go.Heatmap(z=fm.maps[channel].numpy(), colorscale="Viridis",
                                        hovertemplate="row %{y}, column %{x}<br>activation %{z:.3f}<extra></extra>"))
            heat.update_layout(title=f"{fm.layer}, channel {channel}", yaxis_autorange="reversed", height=420,
                               width=460, margin=dict(t=50, b=10), yaxis_scaleanchor="x")
            st.plotly_chart(heat)

with why_tab:
    left, right = st.columns([1, 3])
    with left:
        image_row(image.unsqueeze(0), [f"says {said[:16]}"], width=168)
    with right:
        why_this_answer(checkpoint, image, best, key="inside_method", width=280)
