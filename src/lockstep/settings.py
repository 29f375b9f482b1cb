"""Settings read from LOCKSTEP_* environment variables, checked once at start.

Every variable has a default, listed in VARIABLES; a bad value fails at start
with the variable's name, its value and what to set instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

# name: (default, meaning). The README's configuration table lists the same.
VARIABLES: dict[str, tuple[str, str]] = {
    "LOCKSTEP_CHECKPOINT_DIR": ("/checkpoints", "folder holding runs/ and the latest pointer"),
    "LOCKSTEP_DATA_DIR": ("", "image folder in ImageFolder layout; empty: generate a dataset"),
    "LOCKSTEP_EPOCHS": ("12", "training epochs"),
    "LOCKSTEP_BATCH_SIZE": ("32", "images per optimisation step"),
    "LOCKSTEP_LEARNING_RATE": ("0.005", "AdamW learning rate"),
    "LOCKSTEP_IMAGE_SIZE": ("32", "side in pixels that images are resized to"),
    "LOCKSTEP_SEED": ("0", "seed for data generation, splits and weights"),
    "LOCKSTEP_VAL_FRACTION": ("0.2", "share of a data folder held out for validation"),
    "LOCKSTEP_SAMPLES_PER_CLASS": ("400", "training images per class in the generated dataset"),
    "LOCKSTEP_HOLDOUT_PER_CLASS": ("8", "validation images per class saved with the run for the smoke test"),
    "LOCKSTEP_DEVICE": ("auto", "cpu, cuda, or auto (cuda when available)"),
    "LOCKSTEP_TOP_K": ("3", "predictions the app shows per image"),
    "LOCKSTEP_MAX_IMAGE_PIXELS": ("25000000", "largest upload the app decodes, in pixels"),
    "LOCKSTEP_SMOKE_MIN_ACCURACY": ("0.8", "accuracy below which the smoke test fails"),
}


# Input sides the model accepts. Three poolings need at least 8 pixels, and 16
# leaves the last feature map 2x2. Above 512 a small CNN only gets slower.
IMAGE_SIZES = range(16, 513)


class SettingsError(ValueError):
    """An environment variable contains a value the code cannot use."""


class _Reader:
    """Reader of LOCKSTEP_* variables that collects every problem, so that one run reports them all."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def read(self, name: str, parse: Callable[[str], object], expected: str, check=None):
        raw = self.env.get(name, "").strip() or VARIABLES[name][0]
        try:
            # int() and float() also read digits of other scripts, such as full-width ones.
            value = parse(raw) if raw.isascii() else None
        except ValueError:
            value = None
        if value is None or (check is not None and not check(value)):
            default = VARIABLES[name][0]
            self.problems.append(
                f"{name}={raw!r} is invalid: expected {expected}. Set it to e.g. {name}={default}, "
                f"or unset it to use the default ({default})."
            )
        return value

    def int_between(self, name: str, low: int, high: int):
        return self.read(name, int, f"a whole number from {low:,} to {high:,}", lambda v: low <= v <= high)

    def fraction(self, name: str):
        return self.read(name, float, "a number above 0 and below 1", lambda v: 0 < v < 1)

    def check(self) -> None:
        if self.problems:
            raise SettingsError("\n".join(self.problems))


@dataclass(frozen=True)
class TrainSettings:
    checkpoint_dir: Path
    data_dir: Path | None  # None: train on the generated dataset
    epochs: int
    batch_size: int
    learning_rate: float
    image_size: int
    seed: int
    val_fraction: float
    samples_per_class: int
    holdout_per_class: int
    device: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> TrainSettings:
        data_dir = env.get("LOCKSTEP_DATA_DIR", "").strip()
        read = _Reader(env)
        settings = cls(
            checkpoint_dir=Path(read.read("LOCKSTEP_CHECKPOINT_DIR", str, "a folder path")),
            data_dir=Path(data_dir) if data_dir else None,
            epochs=read.int_between("LOCKSTEP_EPOCHS", 1, 10_000),
            batch_size=read.int_between("LOCKSTEP_BATCH_SIZE", 1, 65_536),
            # A rate above 1 is almost surely a typo for AdamW, and inf or nan would train NaN weights.
            learning_rate=read.read(
                "LOCKSTEP_LEARNING_RATE", float, "a number above 0 and at most 1", lambda v: 0 < v <= 1
            ),
            image_size=read.int_between("LOCKSTEP_IMAGE_SIZE", IMAGE_SIZES.start, IMAGE_SIZES.stop - 1),
            # Seeds from 0 to 2**32 - 1 are valid for both numpy and torch.
            seed=read.int_between("LOCKSTEP_SEED", 0, 2**32 - 1),
            val_fraction=read.fraction("LOCKSTEP_VAL_FRACTION"),
            samples_per_class=read.int_between("LOCKSTEP_SAMPLES_PER_CLASS", 1, 100_000),
            holdout_per_class=read.int_between("LOCKSTEP_HOLDOUT_PER_CLASS", 1, 10_000),
            device=read.read("LOCKSTEP_DEVICE", str, "cpu, cuda or auto", lambda v: v in {"cpu", "cuda", "auto"}),
        )
        read.check()
        return settings


@dataclass(frozen=True)
class ServeSettings:
    checkpoint_dir: Path
    top_k: int
    max_image_pixels: int
    smoke_min_accuracy: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ServeSettings:
        read = _Reader(env)
        settings = cls(
            checkpoint_dir=Path(read.read("LOCKSTEP_CHECKPOINT_DIR", str, "a folder path")),
            top_k=read.int_between("LOCKSTEP_TOP_K", 1, 1_000),
            max_image_pixels=read.int_between("LOCKSTEP_MAX_IMAGE_PIXELS", 1, 1_000_000_000),
            smoke_min_accuracy=read.read(
                "LOCKSTEP_SMOKE_MIN_ACCURACY", float, "a number from 0 to 1", lambda v: 0 <= v <= 1
            ),
        )
        read.check()
        return settings


def describe_variables() -> str:
    """Render VARIABLES as help text: one line per variable with its default."""
    width = max(len(name) for name in VARIABLES)
    return "\n".join(
        f"  {name:<{width}}  {meaning} (default: {default or 'empty'})"
        for name, (default, meaning) in VARIABLES.items()
    )
