"""The image door: bombs, deep and float images, ink in the alpha channel, hidden folders, files that are not files."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from core.images import ImageRefused, read_image
from core.importers import DataImportError, import_image_folder


def png_claiming(path, width: int, height: int) -> None:
    """A tiny PNG whose header says width x height (a decompression bomb's trick)."""
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data[12:29]  # 'IHDR' + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(data))


def test_a_small_file_claiming_a_huge_image_is_refused_before_decoding(tmp_path):
    png_claiming(tmp_path / "bomb.png", 20000, 20000)
    assert (tmp_path / "bomb.png").stat().st_size < 200
    with pytest.raises(ImageRefused, match="claims to be a larger image than the 16,777,216 pixels"):  # Pillow's check
        read_image(tmp_path / "bomb.png")
    png_claiming(tmp_path / "big.png", 5000, 5000)
    with pytest.raises(ImageRefused, match="5000 x 5000 pixels; images of up to 16,777,216"):  # ours, below Pillow's
        read_image(tmp_path / "big.png")


def test_deep_and_float_images_are_scaled_not_clipped(tmp_path):
    digit = np.random.default_rng(0).integers(0, 256, (28, 28)).astype(np.uint8)
    Image.fromarray(digit.astype(np.uint16) * 257).save(tmp_path / "deep.png")  # 16-bit PNG
    Image.fromarray(digit.astype(np.float32) / 255.0, mode="F").save(tmp_path / "float.tif")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    assert np.array_equal(read_image(tmp_path / "deep.png"), digit)
    assert np.abs(read_image(tmp_path / "float.tif").astype(int) - digit).max() <= 1


def test_ink_only_in_the_alpha_channel_is_kept(tmp_path):
    alpha = np.zeros((28, 28), np.uint8)
    alpha[6:22, 12:16] = 255  # a "1" painted in black through a transparent background
    rgba = np.dstack([np.zeros((28, 28, 3), np.uint8), alpha])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "ink.png")
    grey = read_image(tmp_path / "ink.png")
    assert grey.shape == (28, 28) or grey.shape == (28, 28, 3)
    assert np.array_equal(read_image(tmp_path / "ink.png", colour=False), alpha)


def test_hidden_folders_are_not_classes_and_odd_files_are_refused(tmp_path):
    for name in ("cats", "dogs", ".ipynb_checkpoints"):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (8, 8), 40 * i).save(tmp_path / "pets" / name / f"{i}.png")
    data = import_image_folder(tmp_path / "pets")
    assert data.class_names == ("cats", "dogs")
    png_claiming(tmp_path / "pets" / "dogs" / "huge.png", 20000, 20000)
    with pytest.raises(DataImportError, match=r"dogs/huge.png claims to be a larger image than"):
        import_image_folder(tmp_path / "pets")
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(ImageRefused, match="not a regular file"):
        read_image(tmp_path / "pipe.png")
