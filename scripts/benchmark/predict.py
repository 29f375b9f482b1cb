"""Time the first prediction and the per-image latency inside an image.

Runs inside the training or serving image, against the newest run on the
checkpoint volume. It loads and predicts with the code the app itself uses
(load_checkpoint, predict). scripts/bench starts it like this:

    docker run --rm --network none \
        --mount type=volume,source=VOLUME,target=/checkpoints,readonly \
        --mount type=bind,source=$PWD/scripts/benchmark/predict.py,target=/bench/predict.py,readonly \
        IMAGE python /bench/predict.py --predictions 200

Prints one JSON object. The first-prediction time runs from the process
start (read from /proc, so interpreter start-up counts) through the imports,
the checkpoint load and one prediction. Latency is then measured per call of
one already decoded image on the CPU: preprocessing, forward pass, top-k.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path


def seconds_since_process_start() -> float:
    """Return the seconds since this process started, from /proc/self/stat (10 ms steps on most kernels)."""
    with open("/proc/self/stat") as handle:
        # Field 22 is the start time in clock ticks after boot. The command
        # name before it may contain spaces, so count from its closing bracket.
        fields = handle.read().rsplit(")", 1)[1].split()
    started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return time.clock_gettime(time.CLOCK_BOOTTIME) - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--checkpoints", type=Path, default=Path("/checkpoints"), help="checkpoint folder [/checkpoints]"
    )
    parser.add_argument("--predictions", type=int, default=200, help="timed predictions after the first [200]")
    parser.add_argument("--top-k", type=int, default=3, help="classes ranked per prediction, as in the app [3]")
    args = parser.parse_args()
    if args.predictions < 20:
        parser.error(f"--predictions {args.predictions} is too few for a 95th percentile; use 20 or more")

    # Imported here rather than at the top, so that their cost is timed on its own.
    started = time.perf_counter()
    import torch
    from PIL import Image

    from lockstep import checkpoint
    from lockstep.predict import predict

    imported = time.perf_counter()

    run_id = checkpoint.latest_run(args.checkpoints)
    if run_id is None:
        print(f"error: no finished run under {args.checkpoints}; train one with `docker compose up`", file=sys.stderr)
        return 1
    loaded = checkpoint.load_checkpoint(args.checkpoints / "runs" / run_id)
    loaded_at = time.perf_counter()

    files = sorted((loaded.run_dir / "samples").glob("*/*.png"))
    if not files:
        print(
            f"error: run {run_id} saved no held-out images under samples/; "
            "train with LOCKSTEP_HOLDOUT_PER_CLASS of at least 1",
            file=sys.stderr,
        )
        return 1
    images = []
    for path in files:
        with Image.open(path) as opened:
            images.append(opened.convert("RGB"))

    first_started = time.perf_counter()
    predict(loaded, [images[0]], args.top_k)
    first_done = time.perf_counter()
    to_first_prediction = seconds_since_process_start()

    latencies = []
    for index in range(args.predictions):
        call_started = time.perf_counter()
        predict(loaded, [images[index % len(images)]], args.top_k)
        latencies.append(time.perf_counter() - call_started)
    percentiles = statistics.quantiles(latencies, n=100, method="inclusive")

    result = {
        "process_start_to_first_prediction_seconds": round(to_first_prediction, 3),
        "import_seconds": round(imported - started, 3),
        "load_seconds": round(loaded_at - imported, 3),
        "first_predict_seconds": round(first_done - first_started, 4),
        "latency_p50_ms": round(percentiles[49] * 1000, 3),
        "latency_p95_ms": round(percentiles[94] * 1000, 3),
        "latency_mean_ms": round(statistics.fmean(latencies) * 1000, 3),
        "predictions": len(latencies),
        "torch_threads": torch.get_num_threads(),
        "run_id": run_id,
        "training_seconds": loaded.metadata.get("training", {}).get("seconds"),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
