"""Runs on the checkpoint volume: atomic saves, the latest pointer, safe loads.

Layout under the checkpoint folder:

    runs/<run_id>/model.pt        torch.save of {"format", "version", "state_dict", "metadata"}
    runs/<run_id>/metadata.json   the same metadata plus the size and sha256 of model.pt
    runs/<run_id>/samples/<class>/<n>.png   held-out validation images for the smoke test
    latest                        the run_id of the newest finished run

A run is written into runs/.incomplete-<run_id>-*, every file fsynced, then
renamed into place; `latest` is replaced the same way. A crash therefore
leaves either a whole run or none, never a half-written one; the next save
removes the staging folder such a crash left behind. Loading goes
through the doctor first, which reads the file's bytes and structure before
anything unpickles it, and then uses torch.load(weights_only=True).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lockstep import doctor
from lockstep.model import Preprocessing, build_model

log = logging.getLogger(__name__)

FORMAT = "lockstep-checkpoint"
FORMAT_VERSION = 1
MODEL_FILE = "model.pt"
METADATA_FILE = "metadata.json"
LATEST_FILE = "latest"
RUN_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")
# A save of this project's checkpoints takes seconds, so a staging folder untouched this long was left by a killed save.
STALE_STAGING_SECONDS = 600


class CheckpointError(RuntimeError):
    """A checkpoint is missing or cannot be loaded. `diagnosis` is the doctor's finding, when it ran."""

    def __init__(self, message: str, diagnosis: doctor.Diagnosis | None = None) -> None:
        super().__init__(message)
        self.diagnosis = diagnosis


@dataclass
class Checkpoint:
    run_dir: Path
    model: nn.Module  # in eval mode, on the CPU
    metadata: dict
    preprocessing: Preprocessing

    @property
    def classes(self) -> list[str]:
        return list(self.metadata["classes"])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, write: Callable) -> None:
    with open(path, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_latest(checkpoint_dir: Path, run_id: str) -> None:
    """Point `latest` at run_id atomically: write a temporary file, fsync, rename over the old pointer."""
    fd, temporary = tempfile.mkstemp(prefix=".latest-", dir=checkpoint_dir)
    try:
        os.fchmod(fd, 0o644)  # mkstemp creates it with mode 0600, and the serving user may be another user
        with os.fdopen(fd, "w") as handle:
            handle.write(run_id + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, checkpoint_dir / LATEST_FILE)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_dir(checkpoint_dir)


def _remove_stale_staging(runs: Path) -> None:
    """Delete the staging folders that killed saves left behind, which are never renamed into place."""
    # Only old ones, because another training run may be writing its staging folder right now.
    cutoff = time.time() - STALE_STAGING_SECONDS
    for staging in runs.glob(".incomplete-*"):
        try:
            if staging.is_dir() and staging.stat().st_mtime < cutoff:
                shutil.rmtree(staging)
                log.info("Removed %s, left by a save that did not finish", staging)
        except OSError as error:
            log.warning("Cannot remove %s, left by a save that did not finish: %s", staging, error)


def save_run(
    checkpoint_dir: Path,
    run_id: str,
    state_dict: dict[str, torch.Tensor],
    metadata: dict,
    samples: dict[str, list] | None = None,
) -> Path:
    """Write a finished run atomically and point `latest` at it; return the run folder.

    state_dict tensors are copied to the CPU, so the file loads on machines without a GPU.
    samples maps class names to PIL images saved as PNG under samples/<class>/.
    """
    if not RUN_ID.match(run_id):
        raise ValueError(f"run id {run_id!r} does not look like 20261204T120000Z-abc123")
    runs = checkpoint_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    final = runs / run_id
    if final.exists():
        raise FileExistsError(f"run {final} already exists; run ids must be unique")

    _remove_stale_staging(runs)
    staging = Path(tempfile.mkdtemp(prefix=f".incomplete-{run_id}-", dir=runs))
    try:
        payload = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "state_dict": {name: tensor.detach().cpu().clone() for name, tensor in state_dict.items()},
            "metadata": metadata,
        }
        _write_file(staging / MODEL_FILE, lambda handle: torch.save(payload, handle))
        sidecar = dict(
            metadata,
            model_file={
                "name": MODEL_FILE,
                "bytes": (staging / MODEL_FILE).stat().st_size,
                "sha256": _sha256(staging / MODEL_FILE),
            },
        )
        _write_file(staging / METADATA_FILE, lambda handle: handle.write(json.dumps(sidecar, indent=2).encode()))

        for class_name, images in (samples or {}).items():
            folder = staging / "samples" / class_name
            folder.mkdir(parents=True)
            for index, image in enumerate(images):
                _write_file(folder / f"{index:03d}.png", lambda handle, image=image: image.save(handle, "PNG"))
            _fsync_dir(folder)
        _fsync_dir(staging)

        staging.chmod(0o755)  # mkdtemp makes it 0700; the serving user may differ
        os.rename(staging, final)
        _fsync_dir(runs)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    write_latest(checkpoint_dir, run_id)
    return final


def list_runs(checkpoint_dir: Path) -> list[str]:
    """Return the ids of finished runs, newest first; staging folders are skipped."""
    runs = checkpoint_dir / "runs"
    if not runs.is_dir():
        return []
    return sorted((p.name for p in runs.iterdir() if RUN_ID.match(p.name) and p.is_dir()), reverse=True)


def latest_run(checkpoint_dir: Path) -> str | None:
    """Return the run `latest` points at, or the newest run when the pointer is missing or stale."""
    pointer = checkpoint_dir / LATEST_FILE
    runs = list_runs(checkpoint_dir)
    try:
        run_id = pointer.read_text().strip()
    except FileNotFoundError:
        run_id = ""
    except (OSError, UnicodeDecodeError) as error:
        log.warning("Cannot read %s (%s); using the newest run instead", pointer, error)
        run_id = ""
    if run_id in runs:
        return run_id
    if run_id:
        log.warning("%s names run %r, which does not exist; using the newest run instead", pointer, run_id)
    return runs[0] if runs else None


def read_metadata(run_dir: Path) -> dict:
    """Read a run's metadata.json without touching model.pt (cheap: for run pickers and model cards)."""
    return json.loads((run_dir / METADATA_FILE).read_text())


def load_checkpoint(run_dir: Path) -> Checkpoint:
    """Load a run's model on the CPU after the doctor has cleared the file; raise CheckpointError if not."""
    path = run_dir / MODEL_FILE
    diagnosis = doctor.diagnose(path)
    if not diagnosis.ok:
        raise CheckpointError(diagnosis.message(), diagnosis)

    payload = diagnosis.payload
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        not_lockstep = doctor.Diagnosis(
            "not-lockstep",
            False,
            str(path),
            f"{diagnosis.what}, but not a {FORMAT} file",
            "it contains no lockstep metadata (classes, preprocessing, architecture) to rebuild the model from",
            "save checkpoints with lockstep.checkpoint.save_run, as python -m train does",
            diagnosis.facts,
        )
        raise CheckpointError(not_lockstep.message(), not_lockstep)
    # The doctor has checked the metadata, and the state dict's keys and shapes against this architecture.
    metadata = payload["metadata"]
    model = build_model(metadata["architecture"])
    preprocessing = Preprocessing.from_dict(metadata["input"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    log.info("Loaded checkpoint %s (%d classes, run %s)", path, len(metadata["classes"]), metadata.get("run_id"))
    return Checkpoint(run_dir, model, metadata, preprocessing)
