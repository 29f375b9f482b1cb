"""Training data: a generated shapes dataset, or a folder in ImageFolder layout.

The generated dataset needs no network and no downloads: each image is drawn
with Pillow from a seeded generator, so the same seed gives the same pixels
on every machine. A data folder is scanned once; unreadable images are
skipped with a warning that names the file.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from lockstep.images import to_rgb

log = logging.getLogger(__name__)

SHAPES = ("circle", "cross", "square", "triangle")
IMAGE_SUFFIXES = frozenset({".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"})

FOLDER_LAYOUT = """\
  DATA_DIR/
    cat/      <- one folder per class, named after the class
      001.jpg
      ...
    dog/
      ...
with at least two class folders, each holding at least one image
(.jpg, .png, .bmp, .gif, .tif or .webp)."""


class DataError(ValueError):
    """The data folder cannot be trained on."""


@dataclass
class Example:
    """One image with its class index: a file to open, or an image already in memory."""

    label: int
    path: Path | None = None
    image: Image.Image | None = field(default=None, repr=False)

    def load(self) -> Image.Image:
        if self.image is not None:
            return self.image
        try:
            with Image.open(self.path) as image:
                return to_rgb(image)
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
            # The scan decoded this file, so it changed or vanished while training ran.
            raise DataError(
                f"image {self.path} could no longer be read during training ({error}); "
                "keep the data folder unchanged while training runs, then train again"
            ) from None


@dataclass
class Dataset:
    classes: list[str]
    train: list[Example]
    val: list[Example]
    source: dict  # recorded in the checkpoint: kind, path, counts, skipped files


def draw_shape(shape: str, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """Draw one shape at a random position, scale, rotation and colour on a noisy background.

    The shape is drawn on a canvas up to four times larger and scaled down to size, with noise of a
    random strength, so the model also recognises shapes in large, smooth uploads, which the app
    scales down the same way.
    """
    final_size = size
    size = int(final_size * rng.uniform(1, 4))
    background = rng.integers(0, 256, 3)
    # Keep the shape's colour far from the background so that every image is learnable.
    foreground = (background + rng.integers(96, 160, 3)) % 256
    noise = rng.normal(0, rng.uniform(0, 16), (size, size, 3))
    pixels = np.clip(np.broadcast_to(background, (size, size, 3)) + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)

    radius = rng.uniform(0.22, 0.4) * size
    cx, cy = rng.uniform(radius, size - radius, 2)
    angle = rng.uniform(0, 2 * math.pi)
    color = tuple(int(c) for c in foreground)

    def polygon(points):
        rotated = [
            (cx + x * math.cos(angle) - y * math.sin(angle), cy + x * math.sin(angle) + y * math.cos(angle))
            for x, y in points
        ]
        draw.polygon(rotated, fill=color)

    if shape == "circle":
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=color)
    elif shape == "square":
        half = radius / math.sqrt(2)
        polygon([(-half, -half), (half, -half), (half, half), (-half, half)])
    elif shape == "triangle":
        polygon([(radius * math.cos(a), radius * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)])
    elif shape == "cross":
        arm = radius / 3
        polygon([(-arm, -radius), (arm, -radius), (arm, radius), (-arm, radius)])
        polygon([(-radius, -arm), (radius, -arm), (radius, arm), (-radius, arm)])
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {', '.join(SHAPES)}")
    if size != final_size:
        image = image.resize((final_size, final_size), Image.Resampling.BILINEAR)
    return image


def generate_examples(per_class: int, seed: int, size: int = 64) -> list[Example]:
    """Return per_class generated images of every shape, interleaved by class."""
    rng = np.random.default_rng(seed)
    return [
        Example(label, image=draw_shape(shape, rng, size))
        for _ in range(per_class)
        for label, shape in enumerate(SHAPES)
    ]


def generated_dataset(samples_per_class: int, seed: int, size: int, val_fraction: float) -> Dataset:
    # Validation images come from their own seed, so they are new draws, never training images.
    val_per_class = max(1, round(samples_per_class * val_fraction / (1 - val_fraction)))
    train = generate_examples(samples_per_class, seed, size)
    val = generate_examples(val_per_class, seed + 1_000_003, size)
    source = {
        "kind": "generated",
        "description": f"generated shapes ({', '.join(SHAPES)})",
        "train_images": len(train),
        "val_images": len(val),
        "seed": seed,
    }
    return Dataset(list(SHAPES), train, val, source)


def _readable(path: Path) -> bool:
    # verify() checks only the structure, so a JPEG cut off mid-data passes it: decode the whole image.
    # Pillow warns before it rejects a decompression bomb, and here that warning counts as a rejection.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
        return True
    except (
        OSError,
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
        SyntaxError,
        ValueError,
    ) as error:
        log.warning("Skipping unreadable image %s: %s", path, error)
        return False


def _image_files(folder: Path) -> list[Path]:
    """Return the image files under folder, at any depth; raise DataError for a folder that cannot be listed."""
    unlisted: list[OSError] = []
    found = []
    for parent, _, names in os.walk(folder, onerror=unlisted.append):
        found += [Path(parent, name) for name in names if Path(name).suffix.lower() in IMAGE_SUFFIXES]
    if unlisted:
        # A class folder that cannot be read would vanish from the classes, or lose an unknown number of images.
        where = ", ".join(f"{error.filename} ({error.strerror})" for error in unlisted)
        raise DataError(
            f"cannot list {where}: training would silently miss its images. The training container runs as "
            f"UID {os.getuid()}: make the data readable by it (chmod -R a+rX on the data folder) and train again"
        )
    # os.walk returns directories separately, so the names are files and symlinks. A dangling
    # symlink stays in the list, and _readable skips it with a warning.
    return sorted(path for path in found if path.is_file() or path.is_symlink())


def scan_folder(root: Path) -> tuple[list[str], list[tuple[Path, int]], list[str]]:
    """Return (classes, [(path, label)], skipped paths) for a folder in ImageFolder layout."""
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist or is not a folder. Expected this layout:\n{FOLDER_LAYOUT}")
    items: list[tuple[Path, int]] = []
    skipped: list[str] = []
    classes: list[str] = []
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as error:
        raise DataError(
            f"cannot list data folder {root} ({error.strerror}). The training container runs as UID "
            f"{os.getuid()}: make the data readable by it (chmod -R a+rX on the data folder) and train again"
        ) from None
    for folder in folders:
        readable = []
        for path in _image_files(folder):
            (readable if _readable(path) else skipped).append(path)
        if readable:
            items += [(path, len(classes)) for path in readable]
            classes.append(folder.name)
    skipped = [str(path) for path in skipped]

    if not classes:
        raise DataError(
            f"data folder {root} contains no readable images in class folders. Expected this layout:\n{FOLDER_LAYOUT}"
        )
    if len(classes) == 1:
        raise DataError(
            f"data folder {root} contains a single class ({classes[0]}), but a classifier needs at least two. "
            f"Expected this layout:\n{FOLDER_LAYOUT}"
        )
    return classes, items, skipped


def folder_dataset(root: Path, seed: int, val_fraction: float) -> Dataset:
    """Scan root and split each class into train and validation images with a seeded shuffle."""
    classes, items, skipped = scan_folder(root)
    rng = np.random.default_rng(seed)
    train: list[Example] = []
    val: list[Example] = []
    for label in range(len(classes)):
        paths = [path for path, item_label in items if item_label == label]
        rng.shuffle(paths)
        # A class with one image goes to training only, because it cannot be validated.
        # Every class keeps at least one training image, whatever LOCKSTEP_VAL_FRACTION is.
        n_val = min(max(1, round(len(paths) * val_fraction)), len(paths) - 1)
        val += [Example(label, path=path) for path in paths[:n_val]]
        train += [Example(label, path=path) for path in paths[n_val:]]
    if not val:
        raise DataError(
            f"data folder {root} has too few images to hold any out for validation; "
            "put at least two images in each class folder"
        )
    source = {
        "kind": "folder",
        "description": f"image folder {root}",
        "path": str(root),
        "train_images": len(train),
        "val_images": len(val),
        "skipped": skipped,
    }
    return Dataset(classes, train, val, source)
