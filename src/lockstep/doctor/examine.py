"""diagnose(path): the checks in order, from reading bytes to the restricted torch.load.

Each step returns a Diagnosis as soon as it has found the problem. torch is
imported only for the last step, so files that are no checkpoint at all
(pointers, text, archives of other kinds, dangerous pickles) are diagnosed
without it, and a pickle that imports a dangerous callable never reaches
torch.load.
"""

from __future__ import annotations

import logging
import os
import pickletools
import stat
from pathlib import Path
from typing import BinaryIO

from lockstep.doctor import archives, contents, legacy, sidecar, sniff
from lockstep.doctor.diagnosis import Diagnosis, broken
from lockstep.doctor.safetensors import diagnose_safetensors, looks_like_safetensors
from lockstep.doctor.storages import Structure

log = logging.getLogger(__name__)

HEAD_BYTES = 64 * 1024
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header, or the end record of an empty archive
# First bytes of protocol 0 and 1 pickles, which are mostly printable and could pass for text.
PICKLE_OPCODES = frozenset(opcode.code.encode("latin-1") for opcode in pickletools.opcodes)
TORCH_ERROR_CHARS = 400
# Diagnoses that a run's recorded size and sha256 can make more precise.
DAMAGED = frozenset({"truncated-zip", "truncated-pickle", "corrupt", "unknown-format"})


def _unopened(path: Path) -> Diagnosis | None:
    """Diagnose a path that is missing, not a regular file, or unreadable; return None when it can be opened."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return broken(
            path,
            "missing",
            "a path where no file exists",
            "the path is wrong, or training has not run yet",
            "check the path, or train a model first with `docker compose up` or `docker compose run --rm train`",
        )
    except OSError as error:
        return broken(
            path,
            "unreadable",
            f"a path that cannot be read ({error.strerror})",
            "file permissions or a broken mount",
            "check the file's owner and mode, and the volume mount",
        )
    if stat.S_ISDIR(mode):
        return broken(
            path,
            "not-a-file",
            "a directory, not a checkpoint file",
            "the path names a folder",
            "point at the checkpoint file inside it, such as runs/<run id>/model.pt",
        )
    if not stat.S_ISREG(mode):
        return broken(
            path,
            "not-a-file",
            "a special file (a pipe, socket or device), not a checkpoint file",
            "the path names something other than a regular file",
            "point at the checkpoint file",
        )
    if not os.access(path, os.R_OK):
        return broken(
            path,
            "unreadable",
            "a file this user cannot read (permission denied)",
            "the file's owner or mode keeps this user out (the lockstep containers run as UID 10001)",
            "make the file readable, for example with chmod a+r",
        )
    return None


def _empty(path: Path) -> Diagnosis:
    expected = (sidecar.recorded_file(path) or {}).get("bytes")
    recorded = f", but its run's metadata.json records {expected:,} bytes" if isinstance(expected, int) else ""
    return broken(
        path,
        "empty",
        f"an empty file (0 bytes){recorded}",
        "a save or copy that was interrupted, or a download that failed before any data arrived",
        "train again, or copy the checkpoint again from its source",
        expected_bytes=expected,
    )


def _unknown(path: Path, head: bytes, size: int) -> Diagnosis:
    return broken(
        path,
        "unknown-format",
        f"a binary file of {size:,} bytes in no format the doctor knows (first bytes: {head[:16].hex(' ')})",
        "the file is damaged from its first byte, or it is not a checkpoint at all",
        "find out where the file came from. A torch.save checkpoint starts with 'PK' (zip) or 0x80 (pickle).",
        first_bytes=head[:16].hex(),
    )


def _identify(path: Path, handle: BinaryIO, head: bytes, size: int) -> Diagnosis | Structure:
    """Identify the file from its bytes, and return a Diagnosis or the structure that torch.load may try."""
    if size == 0:
        return _empty(path)
    if head.startswith(sniff.LFS_PREFIX):
        return sniff.lfs_pointer(path, head)
    found = sniff.compressed(path, head, size) or sniff.other_format(path, head, size)
    if found is not None:
        return found

    if head.startswith(ZIP_MAGIC):
        return archives.inspect_zip(path, handle, size)
    if looks_like_safetensors(head):
        return diagnose_safetensors(path, handle, size)
    if head.startswith(b"\x80"):
        return legacy.inspect_pickle_file(path, handle, size)
    if head[:1] in PICKLE_OPCODES:
        found = legacy.inspect_pickle_file(path, handle, size)
        if not (isinstance(found, Diagnosis) and found.kind in ("corrupt", "truncated-pickle")):
            return found
    found = sniff.text(path, head, size)
    if found is None and path.suffix.lower() == ".safetensors":
        found = diagnose_safetensors(path, handle, size)  # named so, but its header is not even JSON
    return found or _unknown(path, head, size)


def _structure(path: Path, handle: BinaryIO, head: bytes, size: int) -> Diagnosis | Structure:
    """Identify the file, then compare a damaged or loadable-looking one with its run's recorded size and sha256.

    The record only refines those two outcomes: a pointer, a text page or a dangerous
    pickle says more about the file than the size it should have had.
    """
    found = _identify(path, handle, head, size)
    if isinstance(found, Diagnosis) and found.kind not in DAMAGED:
        return found
    return sidecar.check_recorded(path, handle, size, complete=not isinstance(found, Diagnosis)) or found


def _restricted_load(path: Path, handle: BinaryIO, structure: Structure, size: int) -> Diagnosis:
    import torch

    handle.seek(0)
    try:
        payload = torch.load(handle, map_location="cpu", weights_only=True)
    except Exception as error:  # every failure of the load becomes a diagnosis
        log.debug("torch.load(weights_only=True) failed on %s", path, exc_info=True)
        message = " ".join(str(error).split())[:TORCH_ERROR_CHARS]
        return broken(
            path,
            "load-failed",
            f"a PyTorch checkpoint ({structure.format} format) that torch.load(weights_only=True) rejects: "
            f"{type(error).__name__}: {message}",
            "the file is damaged in a way the structural checks do not see, or holds objects that this "
            f"torch version ({torch.__version__}) does not accept",
            "read torch's message above, then save the model's state dict with torch.save, or train again",
            error=f"{type(error).__name__}: {message}",
        )
    return contents.examine_payload(path, payload, structure, size)


def diagnose(path: Path | str) -> Diagnosis:
    """Examine one checkpoint file and diagnose what it is, without executing any code from it."""
    path = Path(path)
    found = _unopened(path)
    if found is not None:
        return found
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(HEAD_BYTES)
            result = _structure(path, handle, head, size)
            if isinstance(result, Diagnosis):
                return result
            return _restricted_load(path, handle, result, size)
    except OSError as error:
        return broken(
            path,
            "unreadable",
            f"a file that failed to read ({error})",
            "a broken mount, a disk error, or a file removed while it was read",
            "check the disk and the mount, then run again",
        )
    except Exception as error:  # a bug here must still produce a diagnosis, not a traceback
        log.exception("The checkpoint doctor failed on %s", path)
        return broken(
            path,
            "doctor-error",
            f"a file the doctor failed to examine ({type(error).__name__}: {error})",
            "a bug in lockstep's checkpoint doctor (the file was not loaded)",
            "report the bug with the traceback logged above and the file's first bytes (`xxd FILE | head`)",
        )
