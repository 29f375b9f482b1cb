"""Train the classifier end to end and save the run: data, model, epochs, checkpoint."""

from __future__ import annotations

import logging
import math
import os
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from lockstep import checkpoint, stack
from lockstep.data import Dataset, folder_dataset, generated_dataset
from lockstep.model import Preprocessing, build_model, channel_statistics, non_finite_tensors
from lockstep.settings import SettingsError, TrainSettings
from train.engine import ExampleDataset, evaluate, train_one_epoch

log = logging.getLogger(__name__)

# Enough images to estimate the normalisation, few enough to load in a second.
STATISTICS_SAMPLE = 512


class TrainingError(RuntimeError):
    """Training ran but produced nothing worth saving."""


def load_data(settings: TrainSettings) -> Dataset:
    if settings.data_dir is None:
        log.info(
            "LOCKSTEP_DATA_DIR is empty: generating %d images per class (LOCKSTEP_SAMPLES_PER_CLASS)",
            settings.samples_per_class,
        )
        return generated_dataset(settings.samples_per_class, settings.seed, settings.image_size, settings.val_fraction)
    log.info("Reading images from %s (LOCKSTEP_DATA_DIR)", settings.data_dir)
    return folder_dataset(settings.data_dir, settings.seed, settings.val_fraction)


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise SettingsError(
            "LOCKSTEP_DEVICE='cuda', but torch found no CUDA device in this container. Set LOCKSTEP_DEVICE=cpu "
            "or auto, or give the train service a GPU (a deploy.resources.reservations.devices entry with "
            "capabilities: [gpu] in docker-compose.yml, and the NVIDIA Container Toolkit on the host)."
        )
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(requested)


def new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def running_manifest() -> dict | None:
    """Return this image's stack manifest, or None outside an image (tests on a bare checkout)."""
    try:
        return stack.load_manifest()
    except stack.StackError as error:
        log.warning("No stack manifest recorded in the checkpoint: %s", error)
        return None


def run_training(settings: TrainSettings) -> Path:
    """Train, evaluate each epoch, and save the run; return the run folder."""
    started = time.monotonic()
    torch.manual_seed(settings.seed)
    device = pick_device(settings.device)
    dataset = load_data(settings)
    log.info(
        "Data: %d classes (%s), %d training and %d validation images",
        len(dataset.classes),
        ", ".join(dataset.classes),
        len(dataset.train),
        len(dataset.val),
    )

    sample = [example.load() for example in dataset.train[:STATISTICS_SAMPLE]]
    mean, std = channel_statistics(sample, settings.image_size)
    preprocessing = Preprocessing(settings.image_size, tuple(mean), tuple(std))
    generator = torch.Generator().manual_seed(settings.seed)
    train_loader = DataLoader(
        ExampleDataset(dataset.train, preprocessing, augment=True),
        batch_size=settings.batch_size,
        shuffle=True,
        generator=generator,
    )
    val_loader = DataLoader(ExampleDataset(dataset.val, preprocessing), batch_size=settings.batch_size)

    architecture = {"name": "small-cnn", "num_classes": len(dataset.classes), "width": 32}
    model = build_model(architecture).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)
    log.info(
        "Training %s on %s for %d epoch%s (LOCKSTEP_EPOCHS), batch size %d, learning rate %g",
        architecture["name"],
        device,
        settings.epochs,
        "" if settings.epochs == 1 else "s",
        settings.batch_size,
        settings.learning_rate,
    )

    metrics = []
    confusion: list[list[int]] = []
    for epoch in range(1, settings.epochs + 1):
        epoch_started = time.monotonic()
        train_result = train_one_epoch(model, train_loader, optimizer, device)
        val_result, confusion = evaluate(model, val_loader, device, len(dataset.classes))
        scheduler.step()
        if not math.isfinite(train_result.loss):
            # Saving would publish a model of NaN weights as `latest`, which predicts nothing useful.
            raise TrainingError(
                f"the training loss became {train_result.loss} in epoch {epoch}: training diverged. "
                f"Lower LOCKSTEP_LEARNING_RATE (now {settings.learning_rate:g}) and train again"
            )
        seconds = time.monotonic() - epoch_started
        metrics.append(
            {
                "epoch": epoch,
                "train_loss": round(train_result.loss, 5),
                "train_accuracy": round(train_result.accuracy, 5),
                "val_loss": round(val_result.loss, 5),
                "val_accuracy": round(val_result.accuracy, 5),
                "seconds": round(seconds, 2),
            }
        )
        log.info(
            "Epoch %d/%d: train loss %.4f acc %.3f | val loss %.4f acc %.3f | %.1f s",
            epoch,
            settings.epochs,
            train_result.loss,
            train_result.accuracy,
            val_result.loss,
            val_result.accuracy,
            seconds,
        )

    diverged = non_finite_tensors(model.state_dict())
    if diverged:
        # The loss can stay finite while the last optimisation step breaks the weights.
        raise TrainingError(
            f"the weights hold NaN or infinite values after training ({', '.join(diverged[:5])}): training "
            f"diverged. Lower LOCKSTEP_LEARNING_RATE (now {settings.learning_rate:g}) and train again"
        )
    now = datetime.now(UTC)
    run_id = new_run_id(now)
    metadata = {
        "format": checkpoint.FORMAT,
        "version": checkpoint.FORMAT_VERSION,
        "run_id": run_id,
        "created_at": now.isoformat(timespec="seconds"),
        "source_revision": os.environ.get("LOCKSTEP_SOURCE_REVISION") or None,
        "classes": dataset.classes,
        "input": preprocessing.to_dict(),
        "architecture": architecture,
        "data": dataset.source,
        "training": {
            "epochs": settings.epochs,
            "batch_size": settings.batch_size,
            "learning_rate": settings.learning_rate,
            "seed": settings.seed,
            "device": str(device),
            "seconds": round(time.monotonic() - started, 2),
        },
        "metrics": metrics,
        "confusion_matrix": confusion,
        "stack": running_manifest(),
    }
    samples = {name: [] for name in dataset.classes}
    for example in dataset.val:
        bucket = samples[dataset.classes[example.label]]
        if len(bucket) < settings.holdout_per_class:
            bucket.append(example.load())

    run_dir = checkpoint.save_run(settings.checkpoint_dir, run_id, model.state_dict(), metadata, samples)
    log.info(
        "Saved checkpoint %s (%d classes, val acc %.3f, %.1f s in all)",
        run_dir / checkpoint.MODEL_FILE,
        len(dataset.classes),
        metrics[-1]["val_accuracy"],
        time.monotonic() - started,
    )
    return run_dir
