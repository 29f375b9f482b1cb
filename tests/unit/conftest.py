"""Fixtures for the unit tests, which run inside the serving image (scripts/test unit)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockstep.settings import TrainSettings

# Training shrunk to a few seconds: tiny images, few samples, two epochs.
TINY_TRAINING = {
    "LOCKSTEP_EPOCHS": "2",
    "LOCKSTEP_SAMPLES_PER_CLASS": "24",
    "LOCKSTEP_IMAGE_SIZE": "16",
    "LOCKSTEP_BATCH_SIZE": "16",
    "LOCKSTEP_HOLDOUT_PER_CLASS": "2",
    "LOCKSTEP_DEVICE": "cpu",
}


def tiny_settings(checkpoint_dir: Path, **overrides: str) -> TrainSettings:
    env = dict(TINY_TRAINING, LOCKSTEP_CHECKPOINT_DIR=str(checkpoint_dir), **overrides)
    return TrainSettings.from_env(env)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of the tiny training, shared by the tests that only read it."""
    from train.pipeline import run_training

    return run_training(tiny_settings(tmp_path_factory.mktemp("checkpoints")))


@pytest.fixture(scope="session")
def doctor_corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every kind of broken checkpoint the doctor recognises, plus valid ones, written at test time."""
    from tests.unit.doctor_corpus import build_corpus

    return build_corpus(tmp_path_factory.mktemp("doctor-corpus"))
