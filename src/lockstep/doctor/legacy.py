"""Read files that start with a pickle: torch's legacy format, or a plain Python pickle.

torch.save(..., _use_new_zipfile_serialization=False), the only format
before torch 1.6, writes five pickles in a row (a magic number, the protocol
version 1001, system info, the saved object, the list of storage keys), then
each storage as an 8-byte element count followed by its bytes. Anything
else that starts with a pickle was written by pickle.dump or a library
built on it, and torch.load does not read it.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from lockstep.doctor.diagnosis import COPY_AGAIN, CUT_OFF, Diagnosis, broken, size_text
from lockstep.doctor.pickles import PickleError, PickleScan, scan_pickle
from lockstep.doctor.policy import dangerous, judge_globals
from lockstep.doctor.storages import Structure, storages

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
LEGACY = "a PyTorch checkpoint (legacy format)"
PARTS = ("magic number", "protocol version", "system info", "saved object", "storage keys")


def _plain_pickle(path: Path, scan: PickleScan, size: int) -> Diagnosis:
    verdict = judge_globals(path, scan, "a plain Python pickle")
    if verdict is not None:
        return verdict
    return broken(
        path,
        "plain-pickle",
        f"a plain Python pickle (protocol {scan.protocol}, {size_text(size)}), not a torch.save file",
        "it was written with pickle.dump or a library built on it (joblib, dill), but torch.load reads only "
        "torch.save's zip format and its legacy format, which starts with torch's magic number",
        "open it with pickle.load where you trust its source, then save the tensors with torch.save",
        protocol=scan.protocol,
    )


def _unreadable_pickle(path: Path, error: PickleError, part: str | None, size: int) -> Diagnosis:
    where = f"its {part} pickle" if part else "its first pickle"
    container = LEGACY if part else "a pickle"
    if error.truncated:
        return broken(
            path,
            "truncated-pickle",
            f"{container} cut off after {size:,} bytes, inside {where}",
            CUT_OFF,
            COPY_AGAIN,
            file_bytes=size,
            part=part,
        )
    return broken(
        path,
        "corrupt",
        f"{container} whose {where.removeprefix('its ')} is damaged ({error})",
        "the file was modified or damaged after saving, or is not a checkpoint at all",
        COPY_AGAIN,
        part=part,
    )


def inspect_pickle_file(path: Path, handle: BinaryIO, size: int) -> Diagnosis | Structure:
    """Diagnose a file that starts with a pickle, or return a legacy checkpoint's structure for torch.load."""
    handle.seek(0)
    try:
        first = scan_pickle(handle, size)
    except PickleError as error:
        return _unreadable_pickle(path, error, None, size)
    if first.root != MAGIC_NUMBER or first.globals:
        return _plain_pickle(path, first, size)

    scans = [first]
    for part in PARTS[1:]:
        try:
            scans.append(scan_pickle(handle, size))
        except PickleError as error:
            return _unreadable_pickle(path, error, part, size)
    for scan in scans:
        if dangerous(scan.globals):
            return judge_globals(path, scan, LEGACY)
    _, protocol, _, saved, keys = scans
    if protocol.root != PROTOCOL_VERSION:
        return broken(
            path,
            "corrupt",
            f"{LEGACY} with protocol version {protocol.root!r}, expected {PROTOCOL_VERSION}",
            "the file was modified or damaged after saving",
            COPY_AGAIN,
        )
    verdict = judge_globals(path, saved, LEGACY)
    if verdict is not None:
        return verdict

    structure = Structure("legacy", saved, storages(saved))
    sizes = [storage.nbytes for storage in structure.storages]
    remaining = size - keys.end
    if None not in sizes:
        needed = sum(8 + nbytes for nbytes in sizes if nbytes is not None)
        if remaining < needed:
            return broken(
                path,
                "truncated-pickle",
                f"{LEGACY} cut off after {size:,} bytes: its {len(sizes)} storages need {needed:,} bytes "
                f"after the pickles, the file has {remaining:,}",
                CUT_OFF,
                COPY_AGAIN,
                file_bytes=size,
                expected_bytes=keys.end + needed,
            )
    return structure
