from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from lockstep.data import Example
from lockstep.images import to_rgb
from lockstep.predict import open_image


def _saved_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_to_rgb_16_bit_gray():
    pixels = np.array([[0, 32896, 65535]], dtype=np.uint16)
    image = Image.open(io.BytesIO(_saved_png(Image.fromarray(pixels))))
    assert image.mode.startswith("I")
    assert np.asarray(to_rgb(image))[0, :, 0].tolist() == [0, 128, 255]


def test_to_rgb_float_unit_range():
    image = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert image.mode == "F"
    assert np.asarray(to_rgb(image))[0, :, 1].tolist() == [0, 128, 255]


def test_to_rgb_small_int32_values():
    image = Image.fromarray(np.array([[0, 100, 255]], dtype=np.int32))
    assert image.mode == "I"
    assert np.asarray(to_rgb(image))[0, :, 2].tolist() == [0, 100, 255]


def test_transparent_png_decodes_alike(tmp_path: Path):
    rgba = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    path = tmp_path / "clear.png"
    path.write_bytes(_saved_png(rgba))
    trained_on = np.asarray(Example(0, path=path).load())
    served = np.asarray(open_image(path.read_bytes(), max_pixels=100))
    assert np.array_equal(trained_on, served)
    assert trained_on[0, 0].tolist() == [255, 255, 255]
