"""Smoke test, run inside the serving container (scripts/smoke wraps it).

    python -m lockstep.smoke [--run RUN_ID]

Loads the newest checkpoint (or RUN_ID) through the doctor, compares the
training stack recorded in it with this image's manifest and fails with a
package-by-package diff when they differ, then predicts the held-out images
saved with the run and fails below LOCKSTEP_SMOKE_MIN_ACCURACY.
Exit status: 0 on success, 1 on any failure, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from PIL import Image

from lockstep import checkpoint, stack
from lockstep.predict import predict
from lockstep.settings import ServeSettings, SettingsError

log = logging.getLogger("lockstep.smoke")


def held_out_images(run_dir: Path, classes: list[str]) -> list[tuple[Image.Image, str]]:
    images = []
    for name in classes:
        for path in sorted((run_dir / "samples" / name).glob("*.png")):
            with Image.open(path) as image:
                images.append((image.convert("RGB"), name))
    return images


def run(settings: ServeSettings, run_id: str | None) -> int:
    run_id = run_id or checkpoint.latest_run(settings.checkpoint_dir)
    if run_id is None:
        log.error(
            "No checkpoint under %s; train one first with: docker compose run --rm train", settings.checkpoint_dir
        )
        return 1
    run_dir = settings.checkpoint_dir / "runs" / run_id
    try:
        loaded = checkpoint.load_checkpoint(run_dir)
    except checkpoint.CheckpointError as error:
        log.error("Checkpoint %s does not load:\n%s", run_dir, error)
        return 1
    log.info("Loaded run %s: %d classes (%s)", run_id, len(loaded.classes), ", ".join(loaded.classes))

    trained_with = loaded.metadata.get("stack")
    if not trained_with:
        log.error("Run %s records no training stack, so parity cannot be shown; retrain in the training image", run_id)
        return 1
    serving = stack.load_manifest()
    differences = stack.diff(trained_with, serving)
    if differences:
        log.error(
            "The serving stack differs from the training stack:\n%s\nRebuild both images from the same "
            "requirements/lock.txt (docker compose build) and train again.",
            stack.format_diff(differences, "training image", "serving image"),
        )
        return 1
    log.info(
        "Stacks match: %d distributions, torch %s, Python %s, lock %s",
        len(serving["distributions"]),
        serving["torch"]["build"],
        serving["python"],
        serving["lock_sha256"][:12],
    )

    samples = held_out_images(run_dir, loaded.classes)
    if not samples:
        log.error("Run %s has no held-out images under %s", run_id, run_dir / "samples")
        return 1
    predictions = predict(loaded, [image for image, _ in samples], top_k=1)
    correct = sum(ranked[0].label == label for ranked, (_, label) in zip(predictions, samples, strict=True))
    accuracy = correct / len(samples)
    floor = settings.smoke_min_accuracy
    if accuracy < floor:
        log.error(
            "Accuracy on %d held-out images is %.3f, below the floor of %.3f (LOCKSTEP_SMOKE_MIN_ACCURACY)",
            len(samples),
            accuracy,
            floor,
        )
        return 1
    log.info("Smoke test passed: accuracy %.3f on %d held-out images (floor %.3f)", accuracy, len(samples), floor)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lockstep.smoke", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", help="run id to test (default: the run `latest` points at)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = ServeSettings.from_env()
    except SettingsError as error:
        log.error("%s", error)
        return 2
    try:
        return run(settings, args.run)
    except stack.StackError as error:
        log.error("%s", error)
        return 1


if __name__ == "__main__":
    sys.exit(main())
