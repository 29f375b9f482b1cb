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


class SettingsError(ValueError):
    """An environment variable contains a value the code cannot use."""


def _read(env: Mapping[str, str], name: str, parse: Callable[[str], object], expected: str, check=None):
    raw = env.get(name, "").strip() or VARIABLES[name][0]
    try:
        value = parse(raw)
    except ValueError:
        value = None
    if value is None or (check is not None and not check(value)):
        default = VARIABLES[name][0]
        raise SettingsError(
            f"{name}={raw!r} is invalid: expected {expected}. Set it to e.g. {name}={default}, "
            f"or unset it to use the default ({default})."
        )
    return value


def _positive_int(env, name):
    return _read(env, name, int, "a whole number of at least 1", lambda v: v >= 1)


def _fraction(env, name):
    return _read(env, name, float, "a number between 0 and 1", lambda v: 0 < v < 1)


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
        return cls(
            checkpoint_dir=Path(_read(env, "LOCKSTEP_CHECKPOINT_DIR", str, "a folder path")),
            data_dir=Path(data_dir) if data_dir else None,
            epochs=_positive_int(env, "LOCKSTEP_EPOCHS"),
            batch_size=_positive_int(env, "LOCKSTEP_BATCH_SIZE"),
            learning_rate=_read(env, "LOCKSTEP_LEARNING_RATE", float, "a positive number", lambda v: v > 0),
            image_size=_read(
                env, "LOCKSTEP_IMAGE_SIZE", int, "a whole number from 16 to 512", lambda v: 16 <= v <= 512
            ),
            seed=_read(env, "LOCKSTEP_SEED", int, "a whole number"),
            val_fraction=_fraction(env, "LOCKSTEP_VAL_FRACTION"),
            samples_per_class=_positive_int(env, "LOCKSTEP_SAMPLES_PER_CLASS"),
            holdout_per_class=_positive_int(env, "LOCKSTEP_HOLDOUT_PER_CLASS"),
            device=_read(env, "LOCKSTEP_DEVICE", str, "cpu, cuda or auto", lambda v: v in {"cpu", "cuda", "auto"}),
        )


@dataclass(frozen=True)
class ServeSettings:
    checkpoint_dir: Path
    top_k: int
    max_image_pixels: int
    smoke_min_accuracy: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ServeSettings:
        return cls(
            checkpoint_dir=Path(_read(env, "LOCKSTEP_CHECKPOINT_DIR", str, "a folder path")),
            top_k=_positive_int(env, "LOCKSTEP_TOP_K"),
            max_image_pixels=_positive_int(env, "LOCKSTEP_MAX_IMAGE_PIXELS"),
            smoke_min_accuracy=_read(
                env, "LOCKSTEP_SMOKE_MIN_ACCURACY", float, "a number from 0 to 1", lambda v: 0 <= v <= 1
            ),
        )


def describe_variables() -> str:
    """Render VARIABLES as help text: one line per variable with its default."""
    width = max(len(name) for name in VARIABLES)
    return "\n".join(
        f"  {name:<{width}}  {meaning} (default: {default or 'empty'})"
        for name, (default, meaning) in VARIABLES.items()
    )
