"""Canvas drawings turned into MNIST-style inputs, on strokes drawn here."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from core.drawing import ink_from_rgba, mnist_style


def stroke_canvas(box, width=24, transparent=True) -> np.ndarray:
    """A 280 x 280 RGBA canvas with one thick black line, as the Draw page's canvas returns it."""
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 0) if transparent else (255, 255, 255, 255))
    ImageDraw.Draw(image).line(box, fill=(0, 0, 0, 255), width=width)
    return np.asarray(image)


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(image.shape)
    return (ys * image).sum() / image.sum(), (xs * image).sum() / image.sum()


def test_an_off_centre_thick_stroke_comes_out_centred_in_a_20px_box():
    canvas = stroke_canvas([(30, 20), (60, 120)], width=30)  # a short stroke in the top-left corner
    digit = mnist_style(ink_from_rgba(canvas))
    assert digit.shape == (28, 28) and digit.dtype == np.float32
    cy, cx = centre_of_mass(digit)
    assert abs(cy - 14) <= 0.75 and abs(cx - 14) <= 0.75
    rows = np.flatnonzero((digit > 0.05).any(1))
    cols = np.flatnonzero((digit > 0.05).any(0))
    assert max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) in (20, 21)  # the longer side fills the box
    assert cols[-1] - cols[0] < rows[-1] - rows[0]  # aspect ratio kept: a tall stroke stays tall
    assert digit.max() > 0.9 and digit.min() == 0.0


def test_opaque_canvas_dark_ink_on_white_gives_the_same_digit():
    transparent = mnist_style(ink_from_rgba(stroke_canvas([(200, 150), (250, 260)])))
    opaque = mnist_style(ink_from_rgba(stroke_canvas([(200, 150), (250, 260)], transparent=False)))
    assert np.abs(transparent - opaque).max() < 0.02


def test_an_empty_canvas_gives_no_input():
    assert mnist_style(ink_from_rgba(np.zeros((280, 280, 4), dtype=np.uint8))) is None
    white = np.full((280, 280, 4), 255, dtype=np.uint8)
    assert mnist_style(ink_from_rgba(white)) is None


def test_a_drawn_one_is_read_as_a_one_by_a_model_trained_on_mnist(small_mnist, tmp_path):
    import torch

    from core.checkpoint import load_checkpoint
    from core.config import TrainConfig
    from core.engine import train
    from core.predict import predict_tensor

    result = train(TrainConfig(model="lenet5", epochs=2, batch_size=64, device="cpu", run_dir=str(tmp_path)), dataset=small_mnist)
    checkpoint = load_checkpoint(result.checkpoint)
    digit = mnist_style(ink_from_rgba(stroke_canvas([(150, 40), (135, 240)], width=22)))
    probs = predict_tensor(checkpoint, torch.from_numpy(digit).view(1, 1, 28, 28))[0]
    assert checkpoint.class_names[int(probs.argmax())].startswith("1")
