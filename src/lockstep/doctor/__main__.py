"""Say why checkpoint files will not load.

    python -m lockstep.doctor PATH...        human-readable diagnosis per file
    python -m lockstep.doctor --json PATH... one JSON object per file, in a list
    python -m lockstep.doctor --scan DIR...  fail on any Git LFS pointer saved as weights under DIR

Exit status: 0 when every file loads, 1 when any is broken, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lockstep.doctor import LFS_PREFIX, diagnose

WEIGHT_SUFFIXES = frozenset({".bin", ".ckpt", ".h5", ".onnx", ".pkl", ".pt", ".pth", ".safetensors", ".tar"})


def find_lfs_pointers(root: Path) -> list[Path]:
    """Return weight files under root whose first bytes are a Git LFS pointer; reads 24 bytes per file."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in WEIGHT_SUFFIXES:
            with open(path, "rb") as handle:
                if handle.read(len(LFS_PREFIX)) == LFS_PREFIX:
                    found.append(path)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lockstep.doctor", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="*", type=Path, help="checkpoint files to examine")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument(
        "--scan",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="look for Git LFS pointers among weight files under DIR (no torch import)",
    )
    args = parser.parse_args(argv)
    if not args.paths and not args.scan:
        parser.print_usage(sys.stderr)
        print("error: give at least one PATH, or --scan DIR", file=sys.stderr)
        return 2

    if args.scan:
        missing = [str(root) for root in args.scan if not root.is_dir()]
        if missing:
            print(f"error: --scan needs folders; not a folder: {', '.join(missing)}", file=sys.stderr)
            return 2
        pointers = [path for root in args.scan for path in find_lfs_pointers(root)]
        for path in pointers:
            print(diagnose(path).message(), file=sys.stderr)
        if pointers:
            return 1
        if not args.paths:
            return 0

    diagnoses = [diagnose(path) for path in args.paths]
    if args.json:
        print(json.dumps([d.to_json() for d in diagnoses], indent=2))
    else:
        print("\n\n".join(d.message() for d in diagnoses))
    return 0 if all(d.ok for d in diagnoses) else 1


if __name__ == "__main__":
    sys.exit(main())
