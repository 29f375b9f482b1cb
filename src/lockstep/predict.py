"""Turn uploaded bytes into images and images into ranked predictions."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import torch
from PIL import Image, UnidentifiedImageError

from lockstep.checkpoint import Checkpoint
from lockstep.images import to_rgb

# Pillow decoders that uploads may use. Pillow reads dozens of other formats,
# and each extra decoder is attack surface for a public upload form. The JPEG
# decoder also opens the multi-picture (MPO) JPEGs that many cameras write.
IMAGE_FORMATS = ("BMP", "GIF", "JPEG", "PNG", "TIFF", "WEBP")
# Image.open registers only a few plugins on its own, and a format in `formats`
# that is not registered yet raises KeyError, so register them all up front.
Image.init()


class ImageError(ValueError):
    """Uploaded bytes that are not an image this app can decode."""


@dataclass(frozen=True)
class Prediction:
    label: str
    probability: float


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Decode bytes into an RGB image; raise ImageError on non-images, corrupt files and oversized images."""
    if not data:
        raise ImageError("the file is empty (0 bytes); upload the image file itself")
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        # Pillow's limit applies to the whole process and would reject images that ours allows.
        # The check below still applies ours.
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            # Pillow warns past MAX_IMAGE_PIXELS and raises only past twice that; both are refusals here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageError(
                        f"the image is {width}x{height} = {width * height:,} pixels, over the limit of "
                        f"{max_pixels:,} (LOCKSTEP_MAX_IMAGE_PIXELS); downscale it and upload again"
                    )
                image.load()
                return to_rgb(image)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow raises before it reports the size. Its limit is at least ours, so the image exceeds ours too.
        raise ImageError(
            f"the image has more than {Image.MAX_IMAGE_PIXELS:,} pixels, over the limit of {max_pixels:,} "
            "(LOCKSTEP_MAX_IMAGE_PIXELS); downscale it and upload again"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(
            "the file is not a PNG, JPEG, BMP, GIF, TIFF or WebP image; "
            "export it in one of these formats and upload it again"
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(
            f"the image is corrupt or truncated ({error}); export it again and upload the new file"
        ) from None


@torch.inference_mode()
def predict(checkpoint: Checkpoint, images: list[Image.Image], top_k: int) -> list[list[Prediction]]:
    """Return the top_k classes with their probabilities for each image, most likely first."""
    if not images:
        return []
    batch = torch.stack([checkpoint.preprocessing.to_tensor(image) for image in images])
    probabilities = checkpoint.model(batch).softmax(dim=1)
    k = min(top_k, probabilities.shape[1])
    values, indices = probabilities.topk(k, dim=1)
    return [
        [Prediction(checkpoint.classes[i], float(p)) for p, i in zip(row_values, row_indices, strict=True)]
        for row_values, row_indices in zip(values.tolist(), indices.tolist(), strict=True)
    ]
