"""Decoding shared by training and serving: one file gives the model the same pixels in either image.

Imports no torch, so the training entry point can check its settings and
data errors before paying for torch's import.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

# Pillow's single-channel modes of more than 8 bits: 16-bit integers, 32-bit integers, 32-bit floats.
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert an image as a viewer shows it: upright, transparent parts on white, wide pixels scaled to 8 bits.

    Training and serving both decode through this function, so the model gets the
    same pixels for the same file in either image.

    NOTE: modes I and F are scaled by a guess from each image's own values. Mode I
    above 255 is taken as 16-bit data, and mode F at most 1.0 as the range 0..1,
    so two images of one dataset can be scaled differently. A per-dataset setting
    recorded with the checkpoint would remove the guess.
    """
    # Cameras store rotation as an EXIF tag rather than rotating the pixels.
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # convert("RGB") drops alpha and exposes the colour that transparent pixels store, often black.
        # Browsers show those pixels on the page's white, so the model gets the same.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in WIDE_MODES:
        # convert("RGB") clips these to 0..255, so a 16-bit scan turns white and a float image in 0..1 black.
        pixels = np.asarray(image, dtype=np.float64)
        if image.mode == "F":
            if pixels.size and np.nanmax(pixels) <= 1.0:
                pixels = pixels * 255.0
        elif image.mode.startswith("I;16") or (pixels.size and pixels.max() > 255):
            pixels = pixels / 257.0  # 16-bit data: 65535 maps to 255
        gray = np.nan_to_num(pixels).clip(0, 255).round().astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    return image.convert("RGB")
