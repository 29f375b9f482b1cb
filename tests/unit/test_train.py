from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from lockstep import checkpoint, stack
from tests.unit.conftest import TINY_TRAINING, tiny_settings
from train import pipeline
from train.__main__ import main
from train.engine import EpochResult

# The stand-in epochs below never step the optimizer, so torch warns about the scheduler's order.
SCHEDULER_WARNING = pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")


def test_training_run_records_metadata(trained_run: Path):
    meta = json.loads((trained_run / "metadata.json").read_text())
    assert meta["classes"] == ["circle", "cross", "square", "triangle"]
    assert [m["epoch"] for m in meta["metrics"]] == [1, 2]
    assert set(meta["metrics"][0]) >= {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"}
    assert meta["input"]["image_size"] == 16
    assert len(meta["input"]["mean"]) == 3
    assert meta["data"]["kind"] == "generated"
    assert meta["stack"] == stack.load_manifest()
    assert len(meta["confusion_matrix"]) == 4
    assert sum(map(sum, meta["confusion_matrix"])) == meta["data"]["val_images"]
    assert meta["created_at"].endswith("+00:00")


def test_run_saves_cpu_weights_and_samples(trained_run: Path):
    payload = checkpoint.doctor.diagnose(trained_run / "model.pt").payload
    assert all(t.device.type == "cpu" for t in payload["state_dict"].values())
    for name in ["circle", "cross", "square", "triangle"]:
        assert len(list((trained_run / "samples" / name).glob("*.png"))) == 2
    assert checkpoint.latest_run(trained_run.parent.parent) == trained_run.name


def test_main_single_class_writes_nothing(tmp_path: Path, monkeypatch, caplog):
    data_dir = tmp_path / "data" / "only"
    data_dir.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(data_dir / "a.png")
    checkpoints = tmp_path / "checkpoints"
    for name, value in TINY_TRAINING.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LOCKSTEP_CHECKPOINT_DIR", str(checkpoints))
    monkeypatch.setenv("LOCKSTEP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LOCKSTEP_DATA_DIR_ON_HOST", "/home/me/images")
    assert main([]) == 2
    assert "a single class (only)" in caplog.text
    assert f"{tmp_path / 'data'} is the folder DATA_DIR=/home/me/images on the host" in caplog.text
    assert not checkpoints.exists()


def test_main_invalid_setting_exits_2(monkeypatch, caplog):
    monkeypatch.setenv("LOCKSTEP_EPOCHS", "-1")
    assert main([]) == 2
    assert "LOCKSTEP_EPOCHS='-1' is invalid" in caplog.text


def test_main_cuda_without_gpu(tmp_path: Path, monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name, value in TINY_TRAINING.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LOCKSTEP_DEVICE", "cuda")
    monkeypatch.setenv("LOCKSTEP_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    assert main([]) == 2
    assert "torch found no CUDA device" in caplog.text
    assert "Set LOCKSTEP_DEVICE=cpu or auto" in caplog.text


@SCHEDULER_WARNING
def test_run_training_diverged_loss(tmp_path: Path, monkeypatch):
    # A learning rate within the settings' range can still diverge on some data; stand in for it.
    monkeypatch.setattr(pipeline, "train_one_epoch", lambda *args: EpochResult(float("nan"), 0.25))
    with pytest.raises(pipeline.TrainingError) as raised:
        pipeline.run_training(tiny_settings(tmp_path / "checkpoints"))
    assert "the training loss became nan in epoch 1" in str(raised.value)
    assert "Lower LOCKSTEP_LEARNING_RATE" in str(raised.value)
    assert not (tmp_path / "checkpoints" / "runs").exists()


@SCHEDULER_WARNING
def test_run_training_non_finite_weights(tmp_path: Path, monkeypatch):
    def break_weights(model, *args):
        with torch.no_grad():
            model.classifier.weight.fill_(float("inf"))
        return EpochResult(0.5, 0.75)

    monkeypatch.setattr(pipeline, "train_one_epoch", break_weights)
    with pytest.raises(pipeline.TrainingError, match=r"weights hold NaN or infinite values .*classifier\.weight"):
        pipeline.run_training(tiny_settings(tmp_path / "checkpoints", LOCKSTEP_EPOCHS="1"))
    assert not (tmp_path / "checkpoints" / "runs").exists()
