"""Diagnose checkpoint files: what each one really is, and why it does not load.

    python -m lockstep.doctor PATH...         a human-readable diagnosis per file
    python -m lockstep.doctor --json PATH...  a JSON list with one object per file
    python -m lockstep.doctor --scan DIR...   fail on any Git LFS pointer saved as a weight file under DIR

--scan reads only the first bytes of each file whose suffix marks weights
and never imports torch, so it runs at image build and in CI before
anything is installed. scripts/doctor runs this module from the host.

Exit status: 0 when every file loads, 1 when any is broken, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from lockstep.doctor import LFS_PREFIX, Diagnosis, diagnose

SKIPPED_FOLDERS = frozenset(
    {".git", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
)
WEIGHT_SUFFIXES = frozenset({".bin", ".ckpt", ".h5", ".onnx", ".pkl", ".pt", ".pt2", ".pth", ".safetensors", ".tar"})


def find_lfs_pointers(root: Path) -> tuple[list[Path], int]:
    """Return the weight files under root that start like a Git LFS pointer, and how many weight files it saw.

    Reads 23 bytes per weight file. A file that cannot be read counts as a finding, so that
    a scan never passes over a file it could not check.
    """
    found = []
    checked = 0
    for folder, subfolders, files in os.walk(root):
        # Tool and VCS folders hold no checkpoints; a virtualenv's site-packages has .pth path files.
        subfolders[:] = sorted(name for name in subfolders if name not in SKIPPED_FOLDERS)
        for name in sorted(files):
            path = Path(folder) / name
            if path.suffix.lower() in WEIGHT_SUFFIXES and path.is_file():
                checked += 1
                if _starts_like_pointer(path):
                    found.append(path)
    return found, checked


def _starts_like_pointer(path: Path) -> bool:
    """Return True for a Git LFS pointer, and for a file that cannot be read (so it is never passed over)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(LFS_PREFIX)) == LFS_PREFIX
    except OSError:
        return True


def _scan(roots: list[Path], as_json: bool) -> int:
    missing = [str(root) for root in roots if not root.is_dir()]
    if missing:
        print(f"error: --scan expects folders, but these are not: {', '.join(missing)}", file=sys.stderr)
        return 2
    pointers: list[Path] = []
    checked = 0
    for root in roots:
        found, count = find_lfs_pointers(root)
        pointers += found
        checked += count

    diagnoses = [diagnose(path) for path in pointers]
    if as_json:
        print(json.dumps([d.to_json() for d in diagnoses], indent=2))
    elif diagnoses:
        print("\n\n".join(d.message() for d in diagnoses), file=sys.stderr)
    else:
        files = "weight file" if checked == 1 else "weight files"
        print(f"No Git LFS pointers among {checked} {files} under {', '.join(map(str, roots))}")
    return 1 if diagnoses else 0


def _report(diagnoses: list[Diagnosis]) -> str:
    text = "\n\n".join(d.message() for d in diagnoses)
    if len(diagnoses) > 1:
        broken = sum(not d.ok for d in diagnoses)
        text += f"\n\n{len(diagnoses)} files: {len(diagnoses) - broken} load, {broken} broken"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lockstep.doctor", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="checkpoint files to examine")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of text (default: text)")
    parser.add_argument(
        "--scan",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="only look for Git LFS pointers among weight files under DIR, without importing torch",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    if args.scan and args.paths:
        parser.error("use either PATH... or --scan DIR..., not both")
    if args.scan:
        return _scan(args.scan, args.json)
    if not args.paths:
        parser.error("give at least one PATH, or --scan DIR")

    diagnoses = [diagnose(path) for path in args.paths]
    if args.json:
        print(json.dumps([d.to_json() for d in diagnoses], indent=2))
    else:
        print(_report(diagnoses))
    return 0 if all(d.ok for d in diagnoses) else 1


if __name__ == "__main__":
    sys.exit(main())
