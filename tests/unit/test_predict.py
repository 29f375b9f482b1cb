from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from lockstep import checkpoint
from lockstep.data import SHAPES, draw_shape
from lockstep.predict import ImageError, open_image, predict


def _png(size=(20, 10)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buffer, "PNG")
    return buffer.getvalue()


def test_open_image_returns_rgb():
    image = open_image(_png(), max_pixels=1000)
    assert image.mode == "RGB"
    assert image.size == (20, 10)


def test_open_image_rejects_non_image():
    with pytest.raises(ImageError, match="not a PNG, JPEG, BMP, GIF, TIFF or WebP image"):
        open_image(b"%PDF-1.7 not an image", max_pixels=1000)


def test_open_image_rejects_format_outside_allowlist():
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, "PPM")
    with pytest.raises(ImageError, match="not a PNG, JPEG, BMP, GIF, TIFF or WebP image"):
        open_image(buffer.getvalue(), max_pixels=1000)


def test_open_image_opens_tiff_and_webp():
    for image_format in ("TIFF", "WEBP"):
        buffer = io.BytesIO()
        Image.new("RGB", (6, 3), (200, 10, 10)).save(buffer, image_format)
        assert open_image(buffer.getvalue(), max_pixels=1000).size == (6, 3)


def test_open_image_applies_exif_orientation():
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    Image.new("RGB", (20, 10)).save(buffer, "JPEG", exif=exif)
    assert open_image(buffer.getvalue(), max_pixels=1000).size == (10, 20)


def test_open_image_puts_transparent_pixels_on_white():
    buffer = io.BytesIO()
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(buffer, "PNG")
    image = open_image(buffer.getvalue(), max_pixels=1000)
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (255, 255, 255)


def test_open_image_rejects_truncated_png():
    with pytest.raises(ImageError, match="corrupt or truncated"):
        open_image(_png((64, 64))[:60], max_pixels=10_000)


def test_open_image_rejects_too_many_pixels():
    with pytest.raises(ImageError, match=r"20x10 = 200 pixels, over the limit of 199"):
        open_image(_png(), max_pixels=199)


def test_predict_ranks_top_k(trained_run: Path):
    import numpy as np

    loaded = checkpoint.load_checkpoint(trained_run)
    images = [draw_shape(shape, np.random.default_rng(1), 16) for shape in SHAPES]
    ranked = predict(loaded, images, top_k=3)
    assert len(ranked) == 4
    for row in ranked:
        assert len(row) == 3
        probabilities = [p.probability for p in row]
        assert probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1.0 + 1e-6
        assert {p.label for p in row} <= set(SHAPES)
    assert predict(loaded, [], top_k=3) == []


def test_open_image_rejects_empty_file():
    with pytest.raises(ImageError, match=r"the file is empty \(0 bytes\)"):
        open_image(b"", max_pixels=1000)


def test_open_image_beyond_pillow_limit(monkeypatch):
    # Pillow refuses such files in Image.open, before the app's own size check runs.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageError) as raised:
        open_image(_png((30, 30)), max_pixels=50)
    assert "more than 100 pixels, over the limit of 50 (LOCKSTEP_MAX_IMAGE_PIXELS)" in str(raised.value)


def test_open_image_above_pillow_default(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert open_image(_png((30, 30)), max_pixels=1000).size == (30, 30)
