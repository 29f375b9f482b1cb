"""Check a safetensors file's layout by hand, because the lock has no safetensors package.

The format is an 8-byte little-endian header length N, N bytes of JSON that
map each tensor name to its dtype, shape and [begin, end) byte offsets into
the data that follows, then the data itself.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import BinaryIO

from lockstep.doctor.diagnosis import Diagnosis, broken, size_text

# The safetensors library rejects larger headers.
MAX_HEADER_BYTES = 100_000_000
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}  # fmt: skip
CONVERT = (
    "load it with safetensors.torch.load_file from the safetensors package, which this project's lock does "
    "not include, and save the state dict with torch.save"
)
CAUSE = "the file was cut off during download or copy, or was written by a broken exporter"


def looks_like_safetensors(head: bytes) -> bool:
    # A JSON header right after a length below 4 GiB. Pickles start with 0x80 and zips with "PK".
    return head[8:9] == b"{" and head[4:8] == b"\0\0\0\0"


def _corrupt(path: Path, problem: str, **facts: object) -> Diagnosis:
    return broken(
        path,
        "safetensors-corrupt",
        f"a safetensors file with an invalid header: {problem}",
        CAUSE,
        "download or export the file again",
        **facts,
    )


def diagnose_safetensors(path: Path, handle: BinaryIO, size: int) -> Diagnosis:
    handle.seek(0)
    prefix = handle.read(8)
    if len(prefix) < 8:
        return _corrupt(path, f"the file is {size} bytes, shorter than the 8-byte header length")
    (header_bytes,) = struct.unpack("<Q", prefix)
    if header_bytes > MAX_HEADER_BYTES:
        return _corrupt(
            path, f"the header length is {header_bytes:,} bytes, over the format's limit", header_bytes=header_bytes
        )
    if 8 + header_bytes > size:
        return broken(
            path,
            "safetensors-truncated",
            f"a safetensors file cut off inside its header: the header needs {header_bytes:,} bytes, "
            f"but the file is {size:,} bytes in total",
            CAUSE,
            "download or copy the file again and compare its size with the source",
            header_bytes=header_bytes,
            file_bytes=size,
        )
    try:
        header = json.loads(handle.read(header_bytes))
    except (UnicodeDecodeError, ValueError) as error:
        return _corrupt(path, f"the header is not JSON ({error})")
    if not isinstance(header, dict):
        return _corrupt(path, f"the header is a JSON {type(header).__name__}, expected an object")

    data_bytes = size - 8 - header_bytes
    needed = 0
    parameters = 0
    dtypes: set[str] = set()
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = (int(offset) for offset in entry["data_offsets"])
            shape = [int(extent) for extent in entry["shape"]]
            dtype = str(entry["dtype"])
        except (KeyError, TypeError, ValueError):
            return _corrupt(path, f"tensor {name!r} lacks a valid dtype, shape or data_offsets")
        expected = math.prod(shape) * DTYPE_BYTES.get(dtype, 0)
        if end < begin or (dtype in DTYPE_BYTES and end - begin != expected):
            return _corrupt(path, f"tensor {name!r} ({dtype} {shape}) has data_offsets [{begin}, {end}]")
        needed = max(needed, end)
        parameters += math.prod(shape)
        dtypes.add(dtype)

    count = len(header) - ("__metadata__" in header)
    tensors = f"{count} tensor" + ("" if count == 1 else "s")
    if needed > data_bytes:
        return broken(
            path,
            "safetensors-truncated",
            f"a safetensors file whose data is shorter than its header promises: the header places {tensors} "
            f"in {needed:,} bytes of data, but the file has {data_bytes:,}",
            CAUSE,
            "download or copy the file again and compare its size with the source",
            expected_data_bytes=needed,
            data_bytes=data_bytes,
        )
    return broken(
        path,
        "safetensors",
        f"a valid safetensors file ({tensors}, {parameters:,} values, {', '.join(sorted(dtypes)) or 'no dtypes'}, "
        f"{size_text(size)}), not a torch.save checkpoint",
        "the weights were saved in the safetensors format, which torch.load does not read",
        CONVERT,
        tensors=count,
        parameters=parameters,
        dtypes=sorted(dtypes),
    )
