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
    with pytest.raises(ImageError, match="not an image"):
        open_image(b"%PDF-1.7 not an image", max_pixels=1000)


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
