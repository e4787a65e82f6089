"""A user's image file as 8-bit pixels: the one door every uploaded or imported image comes through.

Pillow's own decompression-bomb check and a pixel limit of ours refuse a small
file that claims a huge image before it is decoded. 16-bit, 32-bit and float
images are scaled to 0..255 instead of clipped, and an image whose ink is only
in its alpha channel (a transparent background) keeps that ink.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.io import ImageReadMode, decode_image

MAX_PIXELS = 4096 * 4096  # far above any training image; a phone photo is about 12 million
MAX_FILE_BYTES = 64 << 20

Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow warns above this and refuses above twice this


class ImageRefused(ValueError):
    """An image this app will not read; the message says why."""


def read_image(source: str | Path | BinaryIO, colour: bool | None = None, name: str | None = None) -> np.ndarray:
    """H x W (grey) or H x W x 3 (colour) uint8 pixels of an image file or upload; `colour` None keeps the
    image's own kind. ImageRefused, naming the file, for anything else."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = path.name
        if not path.is_file():
            raise ImageRefused(f"{name}: not a regular file.")
        size = path.stat().st_size
    else:  # an upload or an open file: measured where it can seek, else read no further than the limit
        try:
            at = source.tell()
            size = source.seek(0, io.SEEK_END)
            source.seek(at)
        except (OSError, AttributeError):  # a pipe, a socket: io.UnsupportedOperation is an OSError
            source = io.BytesIO(source.read(MAX_FILE_BYTES + 1))
            size = len(source.getbuffer())
    name = name or "the image"
    if size > MAX_FILE_BYTES:
        raise ImageRefused(f"{name} is larger than {MAX_FILE_BYTES >> 20} MB.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused just below, with a message
            img = Image.open(source)
        with img:
            if img.width * img.height > MAX_PIXELS:
                raise ImageRefused(f"{name} is {img.width} x {img.height} pixels; images of up to "
                                   f"{MAX_PIXELS:,} pixels are read.")
            img.load()
            return to_uint8(img, colour)
    except ImageRefused:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageRefused(f"{name} claims to be a larger image than the {MAX_PIXELS:,} pixels this app reads "
                           f"({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageRefused(f"{name}: not a readable image ({exc}).") from None


def to_uint8(img: Image.Image, colour: bool | None = None) -> np.ndarray:
    """The image's pixels on 0..255, grey or RGB, with deep and float images scaled rather than clipped."""
    colour = img.mode not in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F") if colour is None else colour
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        grey = _scaled(np.asarray(img, dtype=np.float64))
        return np.repeat(grey[:, :, None], 3, axis=2) if colour else grey
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = np.asarray(img.convert("RGBA"))
        if rgba[:, :, :3].min() == rgba[:, :, :3].max() and rgba[:, :, 3].min() != rgba[:, :, 3].max():
            ink = rgba[:, :, 3]  # one colour painted through a transparent background: the alpha is the drawing
            return np.repeat(ink[:, :, None], 3, axis=2) if colour else ink
    return np.asarray(img.convert("RGB" if colour else "L"))


def _scaled(values: np.ndarray) -> np.ndarray:
    """Deep or float pixels to 0..255 by their format's range: [0, 1] floats, 16-bit, or 8-bit values in a wider type."""
    top = float(values.max()) if values.size else 0.0
    full = 1.0 if top <= 1.0 else 255.0 if top <= 255 else 65535.0 if top <= 65535 else top
    return np.clip(np.round(values / full * 255.0), 0, 255).astype(np.uint8)


def _jpeg_header(data: bytes) -> tuple[int, int, int] | None:
    """(height, width, components) of a Huffman-coded JPEG (baseline, extended or progressive), read from its
    frame header; None for anything else (arithmetic coding, lossless, no frame header found)."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # a fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if marker in (0xC0, 0xC1, 0xC2):  # the frame header: precision, height, width, components
            if i + 10 > len(data):
                return None
            return int.from_bytes(data[i + 5:i + 7], "big"), int.from_bytes(data[i + 7:i + 9], "big"), data[i + 9]
        if 0xC3 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return None  # a frame this fast path does not take
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def read_image_chw(path: Path) -> torch.Tensor:
    """An image file as C x H x W uint8 (C = 1 grey, 3 colour), as `read_image` reads it. Grey and colour JPEG
    files, whose size their frame header tells before anything is decoded, go through torchvision's decoder
    (libjpeg-turbo, as Pillow's, so the pixels are the same), faster than Pillow for the small images of a
    dataset; every other file, and any JPEG the fast path cannot decode, through `read_image`. (torchvision's
    PNG decoder crashed the process on a PNG whose header claims more pixels than its data holds, so PNG
    files take Pillow's path.)"""
    if path.stat().st_size <= MAX_FILE_BYTES:
        data = path.read_bytes()
        header = _jpeg_header(data)
        if header is not None and header[2] in (1, 3) and 0 < header[0] * header[1] <= MAX_PIXELS:
            try:
                image = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.UNCHANGED)
            except RuntimeError:
                image = None  # damaged: Pillow's path says why
            if image is not None and image.shape == (header[2], header[0], header[1]):
                return image
    array = torch.from_numpy(read_image(path).copy())  # Pillow's arrays are read-only
    return array.unsqueeze(0) if array.ndim == 2 else array.permute(2, 0, 1)
