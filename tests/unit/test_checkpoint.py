from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch

from lockstep import checkpoint
from lockstep.model import build_model

ARCHITECTURE = {"name": "small-cnn", "num_classes": 3, "width": 4}


def _metadata(run_id: str) -> dict:
    return {
        "format": checkpoint.FORMAT,
        "version": checkpoint.FORMAT_VERSION,
        "run_id": run_id,
        "classes": ["a", "b", "c"],
        "input": {"image_size": 16, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
        "architecture": ARCHITECTURE,
    }


def _save(directory: Path, run_id: str) -> Path:
    model = build_model(ARCHITECTURE)
    return checkpoint.save_run(directory, run_id, model.state_dict(), _metadata(run_id))


def test_save_run_writes_run_and_latest(tmp_path: Path):
    run_dir = _save(tmp_path, "20261204T120000Z-aaaaaa")
    assert run_dir == tmp_path / "runs" / "20261204T120000Z-aaaaaa"
    assert (tmp_path / "latest").read_text() == "20261204T120000Z-aaaaaa\n"
    sidecar = json.loads((run_dir / "metadata.json").read_text())
    assert sidecar["model_file"]["bytes"] == (run_dir / "model.pt").stat().st_size
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["20261204T120000Z-aaaaaa"]


def test_save_run_failure_leaves_no_partial_run(tmp_path: Path, monkeypatch):
    first = _save(tmp_path, "20261204T120000Z-aaaaaa")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.os, "rename", fail)
    with pytest.raises(OSError, match="disk full"):
        _save(tmp_path, "20261204T130000Z-bbbbbb")
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [first.name]
    assert (tmp_path / "latest").read_text().strip() == first.name


def test_latest_run_stale_pointer_uses_newest(tmp_path: Path, caplog):
    _save(tmp_path, "20261204T120000Z-aaaaaa")
    _save(tmp_path, "20261204T130000Z-bbbbbb")
    (tmp_path / "runs" / ".incomplete-20261204T140000Z-cccccc-x").mkdir()
    assert checkpoint.list_runs(tmp_path) == ["20261204T130000Z-bbbbbb", "20261204T120000Z-aaaaaa"]
    (tmp_path / "latest").write_text("20261204T000000Z-gone00\n")
    assert checkpoint.latest_run(tmp_path) == "20261204T130000Z-bbbbbb"
    assert "does not exist" in caplog.text


def test_latest_run_without_runs_is_none(tmp_path: Path):
    assert checkpoint.latest_run(tmp_path) is None


def test_load_checkpoint_round_trips_weights(tmp_path: Path):
    model = build_model(ARCHITECTURE)
    run_dir = checkpoint.save_run(tmp_path, "20261204T120000Z-aaaaaa", model.state_dict(), _metadata("x"))
    loaded = checkpoint.load_checkpoint(run_dir)
    assert loaded.classes == ["a", "b", "c"]
    assert loaded.preprocessing.image_size == 16
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], tensor)
    assert not loaded.model.training


def test_load_checkpoint_rejects_lfs_pointer_with_diagnosis(tmp_path: Path):
    run_dir = _save(tmp_path, "20261204T120000Z-aaaaaa")
    (run_dir / "model.pt").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "b" * 64 + "\nsize 123456\n"
    )
    with pytest.raises(checkpoint.CheckpointError) as raised:
        checkpoint.load_checkpoint(run_dir)
    assert raised.value.diagnosis.kind == "lfs-pointer"
    assert "123456" in str(raised.value)


def test_load_checkpoint_rejects_other_architecture(tmp_path: Path):
    other = build_model({"name": "small-cnn", "num_classes": 5, "width": 4})
    run_dir = checkpoint.save_run(tmp_path, "20261204T120000Z-aaaaaa", other.state_dict(), _metadata("x"))
    with pytest.raises(checkpoint.CheckpointError) as raised:
        checkpoint.load_checkpoint(run_dir)
    assert raised.value.diagnosis.kind == "architecture-mismatch"
    assert "classifier.weight: model [3, 16], file [5, 16]" in str(raised.value)


def test_save_run_latest_mode(tmp_path: Path):
    _save(tmp_path, "20261204T120000Z-aaaaaa")
    assert (tmp_path / "latest").stat().st_mode & 0o777 == 0o644


def test_latest_run_unreadable_pointer_uses_newest(tmp_path: Path, caplog):
    _save(tmp_path, "20261204T120000Z-aaaaaa")
    _save(tmp_path, "20261204T130000Z-bbbbbb")
    (tmp_path / "latest").unlink()
    (tmp_path / "latest").mkdir()
    assert checkpoint.latest_run(tmp_path) == "20261204T130000Z-bbbbbb"
    assert f"Cannot read {tmp_path / 'latest'}" in caplog.text


def test_save_run_removes_stale_staging(tmp_path: Path):
    runs = tmp_path / "runs"
    stale = runs / ".incomplete-20261204T100000Z-dddddd-x"
    (stale / "samples").mkdir(parents=True)
    old = time.time() - checkpoint.STALE_STAGING_SECONDS - 60
    os.utime(stale, (old, old))
    fresh = runs / ".incomplete-20261204T110000Z-eeeeee-y"
    fresh.mkdir()
    _save(tmp_path, "20261204T120000Z-aaaaaa")
    assert sorted(p.name for p in runs.iterdir()) == [fresh.name, "20261204T120000Z-aaaaaa"]
