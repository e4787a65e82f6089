"""The image door: bombs, deep and float images, ink in the alpha channel, hidden folders, files that are not files."""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from PIL import Image

from core import images
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


def test_an_upload_is_held_to_the_same_size_limit_as_a_file(monkeypatch):
    png = io.BytesIO()
    Image.new("L", (8, 8), 40).save(png, format="PNG")
    monkeypatch.setattr(images, "MAX_FILE_BYTES", len(png.getvalue()))
    assert read_image(io.BytesIO(png.getvalue()), name="digit.png").shape == (8, 8)
    png.seek(0, io.SEEK_END)
    png.write(b"\0")  # one byte over
    png.seek(0)
    with pytest.raises(ImageRefused, match="digit.png is larger than"):
        read_image(png, name="digit.png")
    for data, readable in ((png.getvalue()[:-1], True), (png.getvalue(), False)):  # a stream that cannot seek
        r, w = os.pipe()
        os.write(w, data)
        os.close(w)
        with os.fdopen(r, "rb") as stream:
            if readable:
                assert read_image(stream, name="digit.png").shape == (8, 8)
            else:
                with pytest.raises(ImageRefused, match="digit.png is larger than"):
                    read_image(stream, name="digit.png")


@pytest.mark.parametrize("mode, suffix", [("L", "png"), ("RGB", "png"), ("L", "jpg"), ("RGB", "jpg"),
                                          ("RGBA", "png"), ("P", "png"), ("I;16", "png"), ("RGB", "bmp")])
def test_the_fast_decoder_reads_every_image_as_pillow_does(tmp_path, mode, suffix):
    from core.images import read_image_chw

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (24, 32, 3)).astype(np.uint8)
    image = Image.fromarray(pixels).convert(mode) if mode != "I;16" else Image.fromarray(pixels[:, :, 0].astype(np.uint16) * 257)
    image.save(tmp_path / f"x.{suffix}", **({"quality": 75} if suffix == "jpg" else {}))
    fast, slow = read_image_chw(tmp_path / f"x.{suffix}"), read_image(tmp_path / f"x.{suffix}")
    assert fast.dtype == torch.uint8 and fast.shape[1:] == (24, 32)
    assert np.array_equal(fast.permute(1, 2, 0).numpy().squeeze(-1) if fast.shape[0] == 1 else fast.permute(1, 2, 0).numpy(),
                          slow)


def test_the_fast_decoder_leaves_bombs_and_damage_to_the_door(tmp_path):
    from core.images import read_image_chw

    png_claiming(tmp_path / "bomb.png", 20000, 20000)
    with pytest.raises(ImageRefused, match="claims to be a larger image"):
        read_image_chw(tmp_path / "bomb.png")
    png_claiming(tmp_path / "claims.png", 4000, 4000)  # within the limit, but its data is one pixel
    with pytest.raises(ImageRefused, match="claims.png: not a readable image"):
        read_image_chw(tmp_path / "claims.png")  # torchvision's PNG decoder crashed on this one: Pillow reads PNGs
    Image.new("RGB", (8, 8)).save(tmp_path / "cut.jpg")
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "cut.jpg").read_bytes()[:200])
    with pytest.raises(ImageRefused, match="cut.jpg"):
        read_image_chw(tmp_path / "cut.jpg")


@settings(max_examples=300)
@given(cuts=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=6), keep=st.integers(2, 2000))
def test_any_damaged_jpeg_is_read_or_refused_never_crashes(tmp_path_factory, cuts, keep):
    """torchvision's decoder is fed only what the JPEG frame header vouches for; whatever the bytes, the door
    either reads an image of the right kind or refuses it by name."""
    from core.images import read_image_chw

    folder = tmp_path_factory.mktemp("jpeg")
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (20, 24, 3)).astype(np.uint8)).save(folder / "x.jpg")
    data = bytearray((folder / "x.jpg").read_bytes()[:keep])
    for at, value in cuts:
        if at < len(data):
            data[at] = value
    (folder / "x.jpg").write_bytes(bytes(data))
    try:
        image = read_image_chw(folder / "x.jpg")
    except ImageRefused as exc:
        assert "x.jpg" in str(exc)
        event("refused")
        return
    event("read")
    assert image.dtype == torch.uint8 and image.ndim == 3 and image.shape[0] in (1, 3)
