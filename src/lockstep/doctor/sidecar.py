"""Compare a checkpoint with the size and sha256 its lockstep run recorded.

lockstep.checkpoint.save_run writes runs/<id>/metadata.json beside model.pt,
with model_file = {"name", "bytes", "sha256"}. Runs never change after they
are renamed into place, so a file that differs from that record was cut off
or altered afterwards.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, BinaryIO

from lockstep.doctor.diagnosis import COPY_AGAIN, CUT_OFF, Diagnosis, broken

METADATA_FILE = "metadata.json"


def recorded_file(path: Path) -> dict[str, Any] | None:
    """Return the model_file entry of the metadata.json beside path, when it describes this file."""
    try:
        metadata = json.loads((path.parent / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return None
    entry = metadata.get("model_file") if isinstance(metadata, dict) else None
    if not isinstance(entry, dict) or entry.get("name") != path.name:
        return None
    return entry


def _sha256(handle: BinaryIO) -> str:
    handle.seek(0)
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def check_recorded(path: Path, handle: BinaryIO, size: int, complete: bool) -> Diagnosis | None:
    """Diagnose a file whose size or sha256 differs from its run's metadata.json; return None when it matches.

    complete is true when the file's own structure is whole (a zip with its central
    directory, a pickle with its STOP): a smaller file is then another file
    put in its place, not a cut-off copy.
    """
    entry = recorded_file(path)
    if entry is None:
        return None
    expected = entry.get("bytes")
    recorded = f"{path.parent / METADATA_FILE} records"
    if isinstance(expected, int) and size < expected and not complete:
        return broken(
            path,
            "truncated",
            f"a checkpoint cut off at {size:,} bytes: {recorded} {expected:,} bytes ({size / expected:.0%} present)",
            CUT_OFF,
            COPY_AGAIN,
            file_bytes=size,
            expected_bytes=expected,
        )

    expected_sha256 = entry.get("sha256")
    if isinstance(expected, int) and size != expected:
        problem = f"{expected:,} bytes, but the file has {size:,}"
        actual_sha256 = None
    else:
        actual_sha256 = _sha256(handle) if expected_sha256 else None
        if actual_sha256 == expected_sha256:
            return None
        problem = f"sha256 {expected_sha256}, but the file's is {actual_sha256}"
    return broken(
        path,
        "checksum-mismatch",
        f"a file that differs from the checkpoint its run saved: {recorded} {problem}",
        "the file was replaced or modified after training saved the run (runs never change once written)",
        "copy the run folder again from where training wrote it, or train again",
        file_bytes=size,
        expected_bytes=expected,
        sha256=actual_sha256,
        expected_sha256=expected_sha256,
    )
