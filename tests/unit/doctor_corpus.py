"""Build a corpus of small broken checkpoints, and a few valid ones, at test time.

Nothing here is committed as a binary: every file is written by torch, the
standard library or by hand from the format's specification. The hostile
pickles would create MARKER_NAME in the corpus folder if anything ever
executed them.
"""

from __future__ import annotations

import bz2
import copy
import gzip
import io
import json
import lzma
import os
import pickle
import struct
import subprocess
import warnings
import zipfile
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from torch import nn

from lockstep import checkpoint, stack
from lockstep.model import build_model

MARKER_NAME = "EXECUTED"
ARCHITECTURE = {"name": "small-cnn", "num_classes": 3, "width": 4}
LFS_OID = "sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393"
LFS_SIZE = 44_780_123


class TrainingConfig:
    """A custom class, which weights_only=True rejects."""

    def __init__(self) -> None:
        self.learning_rate = 0.01


class SystemCall:
    """Unpickles into os.system(command)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class SubprocessCall:
    """Unpickles into subprocess.run(argv)."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv

    def __reduce__(self):
        return (subprocess.run, (self.argv,))


class EvalCall:
    """Unpickles into eval(source)."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __reduce__(self):
        return (eval, (self.source,))


def _serving_manifest() -> dict | None:
    try:
        return stack.load_manifest()
    except stack.StackError:
        return None


def _metadata(run_id: str, **overrides: object) -> dict:
    return {
        "format": checkpoint.FORMAT,
        "version": checkpoint.FORMAT_VERSION,
        "run_id": run_id,
        "classes": ["circle", "square", "triangle"],
        "input": {"image_size": 16, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
        "architecture": ARCHITECTURE,
        "stack": _serving_manifest(),
        **overrides,
    }


def _run(folder: Path, run_id: str, state_dict: dict | None = None, **metadata: object) -> Path:
    """Save a lockstep run under folder/runs/<run_id>/ and return the path of its model.pt."""
    state_dict = build_model(ARCHITECTURE).state_dict() if state_dict is None else state_dict
    return checkpoint.save_run(folder, run_id, state_dict, _metadata(run_id, **metadata)) / checkpoint.MODEL_FILE


def _saved(value: object, **options: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer, **options)
    return buffer.getvalue()


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


def _safetensors(header: dict, data: bytes) -> bytes:
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + data


def _stack_global_pickle(marker: Path) -> bytes:
    """A protocol 4 pickle that reaches os.system through builtins.getattr(__import__("os"), "system")."""
    return (
        b"\x80\x04"
        + b"\x8c\x08builtins\x94\x8c\x07getattr\x94\x93\x94"  # STACK_GLOBAL builtins.getattr, memo 0-2
        + b"\x8c\x08builtins\x94\x8c\x0a__import__\x94\x93\x94"  # STACK_GLOBAL builtins.__import__, memo 3-5
        + b"\x8c\x02os\x94\x85\x94R\x94"  # __import__("os")
        + b"\x8c\x06system\x94\x86\x94R\x94"  # getattr(os, "system")
        + b"\x8c"
        + bytes([len(f"touch {marker}")])
        + f"touch {marker}".encode()
        + b"\x94\x85\x94R\x94."  # system("touch ...")
    )


def build_hostile(folder: Path) -> dict[str, Path]:
    """Write pickles that create folder/MARKER_NAME when unpickled; return {case name: path}."""
    marker = folder / MARKER_NAME
    files = {
        "hostile-zip": _write(folder / "hostile.pt", _saved({"hook": SystemCall(f"touch {marker}")})),
        "hostile-legacy": _write(
            folder / "hostile-legacy.pt",
            _saved({"hook": EvalCall(f"open({str(marker)!r}, 'w')")}, _use_new_zipfile_serialization=False),
        ),
        "hostile-protocol-0": _write(folder / "hostile0.pkl", pickle.dumps(SystemCall(f"touch {marker}"), 0)),
        "hostile-subprocess": _write(
            folder / "hostile-subprocess.pkl", pickle.dumps(SubprocessCall(["touch", str(marker)]), 4)
        ),
        "hostile-stack-global": _write(folder / "hostile-getattr.pkl", _stack_global_pickle(marker)),
    }
    return files


def build_corpus(folder: Path) -> dict[str, Path]:
    """Write every case under folder and return {case name: path}."""
    runs = folder / "runs-home"
    files: dict[str, Path] = {}
    state = build_model(ARCHITECTURE).state_dict()
    valid_bytes = _saved({"state_dict": state})

    files["valid"] = _run(runs / "valid", "20261204T120000Z-aaaaaa")
    with mock.patch.object(torch.serialization, "location_tag", lambda storage: "cuda:0"):
        files["cuda"] = _run(runs / "cuda", "20261204T120000Z-cccccc")
    project_model = build_model({"name": "small-cnn", "num_classes": 5}).state_dict()
    files["bare-state-dict"] = _write(folder / "bare.pt", _saved(project_model))
    files["legacy-state-dict"] = _write(
        folder / "legacy.pt", _saved(project_model, _use_new_zipfile_serialization=False)
    )

    if (manifest := _serving_manifest()) is not None:
        changed = copy.deepcopy(manifest)
        changed["distributions"]["streamlit"] = "1.0.0"
        del changed["distributions"]["numpy"]
        files["stack-mismatch"] = _run(runs / "stack", "20261204T120000Z-dddddd", stack=changed)

    files["lfs-pointer"] = _write(
        folder / "lfs" / "model.pt", f"version https://git-lfs.github.com/spec/v1\noid {LFS_OID}\nsize {LFS_SIZE}\n"
    )
    files["html"] = _write(
        folder / "html.pt",
        "<!DOCTYPE html>\n<html lang='en'><head><title>Sign in to continue</title></head>\n"
        "<body><form action='/login'></form></body></html>\n",
    )
    files["xml"] = _write(
        folder / "xml.pt",
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
        "<Message>Access Denied</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>",
    )
    files["json"] = _write(folder / "json.pt", '{"error": "Repository not found", "status": 404}\n')
    files["text"] = _write(folder / "text.pt", "404: Not Found\n")
    files["empty"] = _write(folder / "empty.pt", b"")

    truncated = _run(runs / "truncated", "20261204T120000Z-eeeeee")
    whole = truncated.read_bytes()
    truncated.write_bytes(whole[: len(whole) * 2 // 5])
    files["truncated-by-metadata"] = truncated
    altered = _run(runs / "altered", "20261204T120000Z-ffffff")
    data = bytearray(altered.read_bytes())
    data[len(data) // 2] ^= 0xFF
    altered.write_bytes(bytes(data))
    files["checksum-mismatch"] = altered

    files["truncated-zip"] = _write(folder / "cut-zip.pt", valid_bytes[: len(valid_bytes) // 2])
    legacy = _saved({"state_dict": state}, _use_new_zipfile_serialization=False)
    files["truncated-legacy"] = _write(folder / "cut-legacy.pt", legacy[: len(legacy) - 100])
    files["truncated-legacy-pickle"] = _write(folder / "cut-legacy-pickle.pt", legacy[:200])

    damaged = bytearray(valid_bytes)
    with zipfile.ZipFile(io.BytesIO(valid_bytes)) as archive:
        record = next(info for info in archive.infolist() if "/data/" in info.filename)
    name_bytes, extra_bytes = struct.unpack_from("<HH", valid_bytes, record.header_offset + 26)
    damaged[record.header_offset + 30 + name_bytes + extra_bytes + 2] ^= 0xFF  # inside the tensor data
    files["crc-mismatch"] = _write(folder / "crc.pt", bytes(damaged))

    directory = bytearray(valid_bytes)
    (directory_offset,) = struct.unpack_from("<I", valid_bytes, valid_bytes.rfind(b"PK\x05\x06") + 16)
    directory[directory_offset + 46 + 3] = 0x89  # not UTF-8, in the first name the central directory lists
    files["corrupt-zip-directory"] = _write(folder / "directory.pt", bytes(directory))

    files["gzip"] = _write(folder / "model.pt.gz", gzip.compress(valid_bytes))
    files["bzip2"] = _write(folder / "model.pt.bz2", bz2.compress(valid_bytes))
    files["xz"] = _write(folder / "model.pt.xz", lzma.compress(valid_bytes))
    files["zstd"] = _write(folder / "model.pt.zst", b"\x28\xb5\x2f\xfd" + os.urandom(64))

    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("export/model.pt", valid_bytes)
        archive.writestr("export/README.txt", "weights")
    files["zipped-checkpoint"] = _write(folder / "export.zip", zipped.getvalue())
    other = io.BytesIO()
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
        archive.writestr("[Content_Types].xml", "<Types/>")
    files["zip-not-checkpoint"] = _write(folder / "document.pt", other.getvalue())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated and warns about it
        torch.jit.script(nn.Linear(2, 3)).save(str(folder / "scripted.pt"))
    files["torchscript"] = folder / "scripted.pt"
    exported = torch.export.export(nn.Linear(2, 3), (torch.randn(1, 2),))
    torch.export.save(exported, str(folder / "exported.pt2"))
    files["torch-export"] = folder / "exported.pt2"

    files["pickled-module"] = _write(folder / "module.pt", _saved(nn.Sequential(nn.Linear(2, 3), nn.ReLU())))
    files["numpy-scalar"] = _write(folder / "numpy.pt", _saved({"state_dict": state, "accuracy": np.float64(0.9)}))
    files["custom-class"] = _write(folder / "config.pt", _saved({"state_dict": state, "config": TrainingConfig()}))
    files["plain-pickle"] = _write(folder / "plain.pkl", pickle.dumps({"weights": [0.5, 0.25]}, protocol=4))

    files.update(build_hostile(folder))

    other_architecture = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).state_dict()
    files["architecture-mismatch"] = _write(folder / "other-architecture.pt", _saved(other_architecture))
    files["metadata-architecture-mismatch"] = _run(
        runs / "mismatch", "20261204T120000Z-bbbbbb", build_model(dict(ARCHITECTURE, num_classes=5)).state_dict()
    )
    wrapped = {f"module.{name}": tensor for name, tensor in project_model.items()}
    files["data-parallel-prefix"] = _write(folder / "data-parallel.pt", _saved(wrapped))

    diverged = {name: tensor.clone() for name, tensor in state.items()}
    diverged["classifier.weight"].fill_(float("nan"))
    files["non-finite-weights"] = _run(runs / "diverged", "20261204T120000Z-a1a1a1", diverged)
    files["duplicate-classes"] = _run(runs / "duplicates", "20261204T120000Z-a2a2a2", classes=["a", "b", "a"])
    files["zero-std"] = _run(
        runs / "zero-std", "20261204T120000Z-a3a3a3", input={"image_size": 16, "mean": [0, 0, 0], "std": [0, 0, 0]}
    )
    files["metrics-not-a-list"] = _run(runs / "metrics", "20261204T120000Z-a4a4a4", metrics="x")
    # Built for real, this width would need hundreds of terabytes.
    files["huge-width"] = _run(
        runs / "huge-width", "20261204T120000Z-a5a5a5", architecture=dict(ARCHITECTURE, width=10**6)
    )
    files["unbuildable-width"] = _run(
        runs / "unbuildable-width", "20261204T120000Z-a7a7a7", architecture=dict(ARCHITECTURE, width=10**9)
    )
    files["created-at-not-text"] = _run(runs / "created-at", "20261204T120000Z-a8a8a8", created_at=5)
    files["confusion-matrix-too-large"] = _run(
        runs / "confusion", "20261204T120000Z-a9a9a9", confusion_matrix=[[1] * 9 for _ in range(9)]
    )
    files["stack-malformed"] = _run(
        runs / "stack-malformed", "20261204T120000Z-b1b1b1", stack={"distributions": "x", "torch": 5}
    )
    future = _run(runs / "future", "20261204T120000Z-b2b2b2")
    payload = torch.load(future, weights_only=True)
    future.write_bytes(_saved(dict(payload, version=2)))
    # Without this, the recorded size and sha256 would report the rewrite before the version.
    (future.parent / checkpoint.METADATA_FILE).unlink()
    files["future-format-version"] = future
    replaced = _run(runs / "replaced", "20261204T120000Z-a6a6a6")
    replaced.write_bytes(_saved(build_model({"name": "small-cnn", "num_classes": 3, "width": 2}).state_dict()))
    files["replaced-by-smaller-checkpoint"] = replaced

    tensor_bytes = np.arange(6, dtype=np.float32).tobytes()
    header = {"weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, "__metadata__": {"format": "pt"}}
    files["safetensors"] = _write(folder / "model.safetensors", _safetensors(header, tensor_bytes))
    files["safetensors-truncated"] = _write(folder / "cut.safetensors", _safetensors(header, tensor_bytes[:10]))
    files["safetensors-corrupt"] = _write(
        folder / "bad.safetensors", struct.pack("<Q", 20) + b'{"weight": {"dtype"' + b"\0" * 8
    )
    files["safetensors-by-name"] = _write(folder / "garbage.safetensors", bytes(range(7, 200)))
    files["safetensors-header-cut"] = _write(folder / "header-cut.safetensors", struct.pack("<Q", 4096) + b'{"w')

    files["hdf5"] = _write(folder / "keras.h5", b"\x89HDF\r\n\x1a\n" + bytes(200))
    npy = io.BytesIO()
    np.save(npy, np.zeros(4, dtype=np.float32))
    files["numpy-array"] = _write(folder / "weights.npy", npy.getvalue())
    files["unknown"] = _write(folder / "random.pt", bytes(range(7, 200)))
    files["directory"] = folder / "runs-home"
    files["missing"] = folder / "no-such-file.pt"
    return files
