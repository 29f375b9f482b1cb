"""Train the classifier and save a run to the checkpoint folder.

    python -m train            # in the training image: docker compose run --rm train

Settings come from LOCKSTEP_* environment variables (`python -m train --help`
lists them). Exit status: 0 when a run was saved, 1 when training failed, and
2 when a setting or the data folder is invalid. No checkpoint is written on
failure.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from lockstep.data import DataError
from lockstep.settings import SettingsError, TrainSettings, describe_variables

log = logging.getLogger("train")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m train",
        description="Train the lockstep classifier and save a run.",
        epilog="Environment variables:\n" + describe_variables(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    try:
        settings = TrainSettings.from_env()
    except SettingsError as error:
        log.error("%s", error)
        return 2

    # Imported after the settings check, so a bad variable fails without the cost of importing torch.
    from train.pipeline import run_training

    try:
        run_training(settings)
    except (DataError, SettingsError) as error:
        log.error("%s", error)
        if isinstance(error, DataError) and (on_host := os.environ.get("LOCKSTEP_DATA_DIR_ON_HOST")):
            log.error("%s is the folder DATA_DIR=%s on the host", settings.data_dir, on_host)
        return 2
    except (OSError, RuntimeError) as error:
        log.error("Training failed, no checkpoint written: %s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
