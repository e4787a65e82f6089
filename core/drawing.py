"""A drawing on a canvas turned into a digit as MNIST itself was made.

MNIST's digits were scaled to fit a 20 x 20 box (aspect ratio kept), then
placed in 28 x 28 so that their centre of mass is at the centre. A drawing
resized straight to 28 x 28 looks nothing like that and is classified much
worse, so the Draw page goes through `mnist_style` instead.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SIDE = 28
BOX = 20
INK_THRESHOLD = 0.05  # ink below this (on [0, 1]) is background


def ink_from_rgba(rgba: np.ndarray) -> np.ndarray:
    """Ink strength on [0, 1], H x W, from an RGBA canvas.

    A transparent canvas carries the ink in its alpha channel; an opaque one in
    the brightness, dark-on-light or light-on-dark, whichever the background is.
    """
    rgba = np.asarray(rgba, dtype=np.float32) / 255.0
    alpha = rgba[..., 3]
    if alpha.min() < 1.0:
        return alpha
    luminance = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return 1.0 - luminance if np.median(luminance) > 0.5 else luminance


def mnist_style(ink: np.ndarray) -> np.ndarray | None:
    """A 28 x 28 float image on [0, 1] in MNIST's framing, or None when nothing is drawn."""
    ink = np.clip(np.asarray(ink, dtype=np.float32), 0.0, 1.0)
    rows = np.flatnonzero((ink > INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((ink > INK_THRESHOLD).any(axis=0))
    if len(rows) == 0:
        return None
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # PIL wants (width, height)
    patch = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    patch = np.clip(patch, 0.0, 1.0)
    ys, xs = np.indices(patch.shape)
    mass = patch.sum()
    cy, cx = (ys * patch).sum() / mass, (xs * patch).sum() / mass
    top, left = int(round(SIDE / 2 - cy)), int(round(SIDE / 2 - cx))
    out = np.zeros((SIDE, SIDE), dtype=np.float32)
    # paste with clipping: a very lopsided digit may not fit once centred by mass
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + patch.shape[0], SIDE), min(left + patch.shape[1], SIDE)
    out[y0:y1, x0:x1] = patch[y0 - top:y1 - top, x0 - left:x1 - left]
    return out
