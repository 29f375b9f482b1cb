"""Recognise files that are no checkpoint at all from their first bytes.

Git LFS pointers, text saved by a failed download (HTML, XML, JSON, plain
text), compressed files and other model formats each get a diagnosis here,
before anything parses the file as a pickle or an archive.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from lockstep.doctor.diagnosis import Diagnosis, broken, size_text

LFS_PREFIX = b"version https://git-lfs"
TORCH_LOAD_SYMPTOM = (
    "torch.load reports such a file as \"invalid load key, 'v'\" (before torch 2.6, or with weights_only=False) "
    'or as "Weights only load failed ... Unsupported operand 118"'
)

# Magic number, format name, and the command that unpacks FILE next to itself.
COMPRESSED = (
    (b"\x1f\x8b", "gzip", "gzip -dk FILE"),
    (b"BZh", "bzip2", "bzip2 -dk FILE"),
    (b"\xfd7zXZ\x00", "xz", "xz -dk FILE"),
    (b"\x28\xb5\x2f\xfd", "zstd", "zstd -d FILE"),
    (b"\x04\x22\x4d\x18", "lz4", "lz4 -d FILE"),
)
# Magic number, what the file is, how to use its contents from PyTorch.
OTHER_FORMATS = (
    (
        b"\x89HDF\r\n\x1a\n",
        "an HDF5 file, the format of Keras and TensorFlow .h5 weights",
        "torch.load cannot read HDF5, so use the model's PyTorch weights, or convert these with h5py",
    ),
    (
        b"\x93NUMPY",
        "a NumPy .npy array file",
        "read it with numpy.load and wrap the array with torch.from_numpy, then save a state dict",
    ),
    (b"GGUF", "a GGUF model file (llama.cpp)", "torch.load cannot read GGUF, so use the model's PyTorch weights"),
)
TEXT_SAMPLE = 64 * 1024
_HTML = re.compile(rb"<!doctype html|<html[\s>]|<head[\s>]|<body[\s>]", re.IGNORECASE)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_XML_ERROR = re.compile(r"<(Code|Message)>(.*?)</\1>", re.DOTALL)


def parse_lfs_pointer(data: bytes) -> dict[str, object]:
    facts: dict[str, object] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        key, _, value = line.partition(" ")
        if key == "oid":
            facts["oid"] = value.strip()
        elif key == "size" and value.strip().isdigit():
            facts["size"] = int(value)
    return facts


def lfs_pointer(path: Path, data: bytes) -> Diagnosis:
    facts = parse_lfs_pointer(data)
    size = facts.get("size")
    expected = f"{size} bytes ({size_text(size)})" if isinstance(size, int) else "an unknown number of bytes"
    return broken(
        path,
        "lfs-pointer",
        f"a Git LFS pointer file ({len(data)} bytes), not a checkpoint: the real file has {expected}, "
        f"oid {facts.get('oid', 'unknown')}",
        "the repository was cloned or deployed without Git LFS, so the pointer was saved where the model "
        f"should be. {TORCH_LOAD_SYMPTOM}",
        "install Git LFS and run `git lfs install && git lfs pull` in the clone (in CI, enable LFS in the "
        "checkout step), then check that the file has the size above",
        **facts,
    )


def compressed(path: Path, head: bytes, size: int) -> Diagnosis | None:
    for magic, name, command in COMPRESSED:
        if head.startswith(magic):
            return broken(
                path,
                "compressed",
                f"a file compressed with {name} ({size_text(size)}), not a checkpoint",
                f"the checkpoint was compressed for transfer or storage, and torch.load does not unpack {name}",
                f"unpack it first with `{command.replace('FILE', path.name)}` (and `tar -xf` if that yields a .tar), "
                "then use the unpacked file",
                format=name,
            )
    if head[257:262] == b"ustar":
        return broken(
            path,
            "compressed",
            f"a tar archive ({size_text(size)}), not a checkpoint",
            "a folder was packed with tar, and torch.load does not unpack archives",
            f"extract it with `tar -xf {path.name}` and use the checkpoint inside",
            format="tar",
        )
    return None


def other_format(path: Path, head: bytes, size: int) -> Diagnosis | None:
    for magic, description, fix in OTHER_FORMATS:
        if head.startswith(magic):
            return broken(
                path,
                "other-format",
                f"{description} ({size_text(size)}), not a PyTorch checkpoint",
                "a file from another framework was saved or downloaded in place of the checkpoint",
                fix,
            )
    if path.suffix.lower() == ".onnx" and head[:1] == b"\x08":
        return broken(
            path,
            "other-format",
            f"an ONNX model ({size_text(size)}), not a PyTorch checkpoint",
            "the model was exported to ONNX, which torch.load cannot read",
            "run it with onnxruntime, or use the PyTorch checkpoint it was exported from",
        )
    return None


def _decode_text(sample: bytes) -> str | None:
    if not sample or b"\x00" in sample:
        return None
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(sample) - 3:  # not just a character cut at the end of the sample
            return None
        text = sample[: error.start].decode("utf-8")
    printable = sum(char.isprintable() or char in "\t\n\r\f" for char in text)
    return text if printable >= 0.95 * len(text) else None


def _excerpt(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def text(path: Path, sample: bytes, size: int) -> Diagnosis | None:
    """Diagnose a file whose first bytes are text: an HTML or XML page, JSON, or plain text."""
    decoded = _decode_text(sample[:TEXT_SAMPLE])
    if decoded is None:
        return None
    stripped = decoded.lstrip("\ufeff \t\r\n")
    where = f"where the model should be ({size_text(size)})"
    again = "then download the file again and check it with this doctor"

    if _HTML.search(sample[:4096]):
        title = _TITLE.search(decoded)
        titled = f', titled "{_excerpt(title.group(1), 80)}"' if title else ""
        return broken(
            path,
            "html",
            f"an HTML page {where}{titled}",
            "a download saved the web page the server returned (a login, error or confirmation page) instead "
            "of the file. This is typical of links copied from a browser, such as a Hugging Face /blob/ URL or a "
            "Google Drive share link",
            f"use the raw file URL (Hugging Face: /resolve/ instead of /blob/) and any token it needs, {again}",
            title=title.group(1).strip() if title else None,
        )
    if stripped.startswith("<"):
        details = {name.lower(): _excerpt(value, 200) for name, value in _XML_ERROR.findall(decoded)}
        error = ": ".join(details[key] for key in ("code", "message") if key in details)
        return broken(
            path,
            "xml",
            f"an XML document {where}" + (f', with the error "{error}"' if error else ""),
            "an object store (S3, Google Cloud Storage, Azure Blob Storage) returned an error document, such as "
            "AccessDenied or NoSuchKey, and the download saved it as the file",
            f"check the bucket, the object key and the credentials, {again}",
            **details,
        )
    if stripped.startswith(("{", "[")):
        try:
            document = json.loads(decoded)
        except ValueError:
            document = None
        if document is not None or size > TEXT_SAMPLE:  # a large document is only partly in the sample
            return broken(
                path,
                "json",
                f"a JSON document {where}: {_excerpt(stripped, 100)}",
                "an API returned an error or a metadata document in place of the file, or a config file was "
                "saved under the checkpoint's name",
                f"read the JSON above for the error and fix the URL or credentials, {again}",
                keys=sorted(document)[:20] if isinstance(document, dict) else [],
            )
    first_line = next((line for line in stripped.splitlines() if line.strip()), "")
    return broken(
        path,
        "text",
        f'a plain text file {where}: "{_excerpt(first_line)}"',
        "a failed download saved its error message, or a placeholder or another file was copied in its place",
        f"read the text above for what went wrong, {again}",
        first_line=_excerpt(first_line),
    )
