"""Tell zip archives apart: torch.save checkpoints, TorchScript, torch.export, other zips, cut-off ones.

torch.save (zip format, the default since torch 1.6) writes <name>/data.pkl,
one <name>/data/<key> record per storage, and a few small records such as
<name>/version. TorchScript archives add code/ and constants.pkl; torch.export
packages (.pt2) hold archive_format and models/*.json instead of data.pkl.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

from lockstep.doctor.diagnosis import COPY_AGAIN, CUT_OFF, Diagnosis, broken, size_text
from lockstep.doctor.pickles import PickleError, scan_pickle
from lockstep.doctor.policy import judge_globals
from lockstep.doctor.storages import Structure, storages

LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # the 30-byte zip local file header
DESCRIPTOR_SEARCH = 1 << 20
DAMAGED_CHECKPOINT = "a damaged PyTorch checkpoint (zip format)"
# What zipfile raises, besides BadZipFile, on damaged headers and entries.
ZIP_ERRORS = (EOFError, NotImplementedError, UnicodeDecodeError, ValueError, struct.error, zlib.error)
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".pt2", ".pkl")


def _local_entries(handle: BinaryIO, size: int) -> tuple[list[str], str | None]:
    """Walk the local headers from the start, and return the complete entries and the one cut off, if any."""
    complete: list[str] = []
    offset = 0
    while offset + LOCAL_HEADER.size <= size:
        handle.seek(offset)
        fields = LOCAL_HEADER.unpack(handle.read(LOCAL_HEADER.size))
        signature, _, flags, _, _, _, _, stored_bytes, _, name_bytes, extra_bytes = fields
        if signature != b"PK\x03\x04":
            break
        name = handle.read(name_bytes).decode("utf-8", "replace")
        extra = handle.read(extra_bytes)
        data_start = offset + LOCAL_HEADER.size + name_bytes + extra_bytes
        if flags & 0x08:  # the sizes follow the data, in a data descriptor, as torch writes them
            end = _descriptor_end(handle, data_start, size)
        else:
            if stored_bytes == 0xFFFFFFFF:  # zip64: the sizes moved into the extra field
                stored_bytes = _zip64_stored_bytes(extra)
            end = None if stored_bytes is None else data_start + stored_bytes
        if end is None or end > size:
            return complete, name
        complete.append(name)
        offset = end
    return complete, None


def _descriptor_end(handle: BinaryIO, data_start: int, size: int) -> int | None:
    """Return the end of the data descriptor whose recorded size matches its distance from data_start."""
    position = data_start
    while position < size:
        handle.seek(position)
        chunk = handle.read(DESCRIPTOR_SEARCH + 24)  # overlap, so no descriptor is split between reads
        index = chunk.find(b"PK\x07\x08")
        while index != -1 and index < DESCRIPTOR_SEARCH:
            stored = position + index - data_start
            fields = chunk[index + 8 : index + 16]
            if len(fields) >= 4 and struct.unpack_from("<I", fields)[0] == stored:
                return position + index + 16
            if len(fields) == 8 and struct.unpack_from("<Q", fields)[0] == stored:  # zip64 descriptor
                return position + index + 24
            index = chunk.find(b"PK\x07\x08", index + 1)
        position += DESCRIPTOR_SEARCH
    return None


def _zip64_stored_bytes(extra: bytes) -> int | None:
    position = 0
    while position + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, position)
        if tag == 0x0001 and length >= 16:
            return struct.unpack_from("<Q", extra, position + 12)[0]
        position += 4 + length
    return None


def _truncated(path: Path, handle: BinaryIO, size: int) -> Diagnosis:
    complete, cut = _local_entries(handle, size)
    names = [*complete, cut] if cut else complete
    is_torch = any(name.endswith("data.pkl") for name in names)
    description = "a PyTorch checkpoint (zip format)" if is_torch else "a zip archive"
    detail = f"{len(complete)} entries are complete" + (f", {cut} is cut off" if cut else "")
    return broken(
        path,
        "truncated-zip",
        f"{description} cut off after {size:,} bytes: the zip central directory at its end is missing ({detail})",
        CUT_OFF,
        COPY_AGAIN,
        file_bytes=size,
        complete_entries=complete,
        cut_entry=cut,
    )


def _other_zip(path: Path, names: list[str], size: int) -> Diagnosis:
    weights = [name for name in names if name.lower().endswith(WEIGHT_SUFFIXES)]
    listed = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
    if weights:
        description = f"a zip archive that contains {', '.join(weights[:3])}"
        cause = "the checkpoint was zipped for transfer, and torch.load does not unpack archives"
        fix = f"unzip it (`unzip {path.name}`) and use {weights[0]}"
    elif names and all(name.endswith(".npy") for name in names):
        description = f"a NumPy .npz archive with {listed}"
        cause = "the arrays were saved with numpy.savez, not torch.save"
        fix = "read it with numpy.load, convert each array with torch.from_numpy and save a state dict"
    else:
        description = f"a zip archive with {len(names)} entries: {listed}"
        cause = "a zip file other than a checkpoint was saved or downloaded under the checkpoint's name"
        fix = "find the right file: a torch.save checkpoint contains <name>/data.pkl"
    return broken(
        path,
        "zip-not-checkpoint",
        f"{description} ({size_text(size)}), not a PyTorch checkpoint",
        cause,
        fix,
        entries=names[:20],
    )


def _torchscript(path: Path) -> Diagnosis:
    return broken(
        path,
        "torchscript",
        "a TorchScript archive (written by torch.jit.save), not a torch.save checkpoint",
        "the model was compiled with torch.jit.script or torch.jit.trace and saved with torch.jit.save, and "
        "torch.load(weights_only=True) rejects TorchScript archives",
        'load it with torch.jit.load(path, map_location="cpu") if you trust its source. To serve it here, save '
        'its weights: torch.save(torch.jit.load(path).state_dict(), "model.pt")',
    )


def _exported(path: Path, names: list[str]) -> Diagnosis:
    if any("/aotinductor/" in name for name in names):
        return broken(
            path,
            "torch-export",
            "an AOTInductor package (.pt2, compiled with torch._inductor.aoti_compile_and_package), not a "
            "torch.save checkpoint",
            "the model was compiled ahead of time into a package of native code, which torch.load cannot read",
            "load it with torch._inductor.aoti_load_package(path), or save the source model's state dict",
            package="aoti",
        )
    return broken(
        path,
        "torch-export",
        "a torch.export archive (.pt2, written by torch.export.save), not a torch.save checkpoint",
        "the model was exported with torch.export and saved with torch.export.save, which torch.load cannot read",
        "load it with torch.export.load(path) and call .module() on the result. To serve it here, save its "
        'weights: torch.save(torch.export.load(path).state_dict, "model.pt")',
        package="exported-program",
    )


def _records_problem(archive: zipfile.ZipFile, prefix: str, structure: Structure) -> str | None:
    for storage in structure.storages:
        record = f"{prefix}/data/{storage.key}"
        try:
            info = archive.getinfo(record)
        except KeyError:
            return f"data.pkl refers to the storage record {record}, which the archive lacks"
        if storage.nbytes is not None and info.file_size < storage.nbytes:
            return f"{record} has {info.file_size:,} bytes, but its {storage.type_name} needs {storage.nbytes:,}"
    for info in archive.infolist():
        if info.CRC == 0:  # torch.serialization.set_crc32_options(False) writes no checksums
            continue
        try:
            with archive.open(info) as member:
                while member.read(1 << 20):
                    pass
        except zipfile.BadZipFile:
            return f"{info.filename} fails its CRC-32 check, so its bytes changed after saving"
    return None


def _damaged(path: Path, problem: str, description: str = "a damaged zip archive") -> Diagnosis:
    return broken(
        path,
        "corrupt",
        f"{description}: {problem}",
        "the file was modified or damaged after saving, or is not a checkpoint at all",
        COPY_AGAIN,
    )


def _inspect_checkpoint(path: Path, archive: zipfile.ZipFile, data_pkl: str) -> Diagnosis | Structure:
    data = archive.read(data_pkl)
    try:
        scan = scan_pickle(io.BytesIO(data), len(data))
    except PickleError as error:
        return _damaged(path, f"{data_pkl} is not a valid pickle ({error})", DAMAGED_CHECKPOINT)
    verdict = judge_globals(path, scan, "a PyTorch checkpoint (zip format)")
    if verdict is not None:
        return verdict

    structure = Structure("zip", scan, storages(scan))
    problem = _records_problem(archive, data_pkl.split("/")[0], structure)
    return _damaged(path, problem, DAMAGED_CHECKPOINT) if problem else structure


def inspect_zip(path: Path, handle: BinaryIO, size: int) -> Diagnosis | Structure:
    """Diagnose a zip archive, or return the structure of a torch.save checkpoint for torch.load to try."""
    try:
        archive = zipfile.ZipFile(handle)
    except zipfile.BadZipFile:
        return _truncated(path, handle, size)
    except ZIP_ERRORS as error:
        return _damaged(path, f"its central directory cannot be read ({type(error).__name__}: {error})")

    with archive:
        names = archive.namelist()
        if any(name.endswith(("/archive_format", "serialized_exported_program.json")) for name in names):
            return _exported(path, names)
        if any(name.endswith("/constants.pkl") for name in names) and any("/code/" in name for name in names):
            return _torchscript(path)
        pickles = [name for name in names if name.endswith("/data.pkl") and name.count("/") == 1]
        if not pickles:
            return _other_zip(path, names, size)
        try:
            return _inspect_checkpoint(path, archive, pickles[0])
        except (zipfile.BadZipFile, *ZIP_ERRORS) as error:
            return _damaged(path, f"an entry cannot be read ({type(error).__name__}: {error})")
