"""Time the checkpoint doctor on every file of the unit tests' corpus of broken checkpoints.

Runs inside the serving image, with the repository's tests/ mounted at
/app/tests. scripts/bench starts it like this:

    docker run --rm --network none \
        --mount type=bind,source=$PWD/tests,target=/app/tests,readonly \
        --mount type=bind,source=$PWD/scripts/benchmark/doctor.py,target=/bench/doctor.py,readonly \
        IMAGE python /bench/doctor.py

Writing the corpus (it trains nothing, but saves TorchScript and torch.export
archives) is not timed. The clock covers diagnose() on each file in turn,
after one untimed call that pays for importing torch, as the CLI and the app
pay it once per process. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the corpus; the fastest counts [3]")
    args = parser.parse_args(argv)

    from lockstep import doctor
    from tests.unit.doctor_corpus import build_corpus

    with tempfile.TemporaryDirectory() as folder:
        corpus = build_corpus(Path(folder))
        doctor.diagnose(corpus["valid"])
        passes = []
        for _ in range(args.rounds):
            seconds = {}
            for case, path in corpus.items():
                started = time.perf_counter()
                doctor.diagnose(path)
                seconds[case] = time.perf_counter() - started
            passes.append(seconds)
    fastest = min(passes, key=lambda seconds: sum(seconds.values()))
    slowest_case = max(fastest, key=fastest.get)
    print(
        json.dumps(
            {
                "files": len(fastest),
                "total_seconds": round(sum(fastest.values()), 4),
                "slowest_case": slowest_case,
                "slowest_seconds": round(fastest[slowest_case], 4),
                "rounds": args.rounds,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
