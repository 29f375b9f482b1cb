"""Checkpoint doctor: say why a checkpoint will not load, before anything unpickles it.

`diagnose(path)` reads the file's bytes and structure first (magic numbers,
the zip directory, pickle opcodes read with a disassembler, never executed)
and only then tries torch.load(weights_only=True). The Diagnosis names what
the file is, the likely cause and the fix; when the file loads, `payload`
holds what the restricted load returned.

Run it with `python -m lockstep.doctor PATH...` (see __main__.py).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LFS_PREFIX = b"version https://git-lfs"


@dataclass
class Diagnosis:
    kind: str  # "ok", or what is wrong: "lfs-pointer", "empty", "text", ...
    ok: bool
    path: str
    what: str  # what the file is
    cause: str = ""  # the likely cause
    fix: str = ""  # what to do
    facts: dict[str, Any] = field(default_factory=dict)
    payload: Any = field(default=None, repr=False)  # what the restricted load returned, when it loaded

    def message(self) -> str:
        lines = [f"{self.path}: {self.what}"]
        if self.cause:
            lines.append(f"  Cause: {self.cause}")
        if self.fix:
            lines.append(f"  Fix:   {self.fix}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "kind": self.kind,
            "ok": self.ok,
            "what": self.what,
            "cause": self.cause,
            "fix": self.fix,
            "facts": self.facts,
        }


def _broken(path: Path, kind: str, what: str, cause: str, fix: str, **facts) -> Diagnosis:
    return Diagnosis(kind, False, str(path), what, cause, fix, facts)


def _parse_lfs_pointer(data: bytes) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        key, _, value = line.partition(" ")
        if key == "oid":
            facts["oid"] = value.strip()
        elif key == "size" and value.strip().isdigit():
            facts["size"] = int(value)
    return facts


def diagnose(path: Path | str) -> Diagnosis:
    """Examine one checkpoint file; never executes code from it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _broken(
            path,
            "missing",
            "no such file",
            "the path is wrong, or training has not run yet",
            "check the path; train a model with `docker compose up` or `docker compose run --rm train`",
        )
    except OSError as error:
        return _broken(
            path,
            "unreadable",
            f"cannot be read ({error.strerror})",
            "file permissions or a broken mount",
            "check the file's owner and mode, and the volume mount",
        )

    if not data:
        return _broken(
            path,
            "empty",
            "an empty file (0 bytes)",
            "a save or copy that was interrupted, or a download that failed",
            "train again, or copy the checkpoint again from its source",
        )
    if data.startswith(LFS_PREFIX):
        facts = _parse_lfs_pointer(data)
        size = facts.get("size")
        return _broken(
            path,
            "lfs-pointer",
            f"a Git LFS pointer file ({len(data)} bytes), not a checkpoint; the real file should be "
            f"{size if size is not None else 'an unknown number of'} bytes (oid {facts.get('oid', 'unknown')})",
            "the repository was cloned or deployed without Git LFS, so the pointer was saved where the model should "
            'be. torch.load reports this as "invalid load key, \'v\'" or "Unsupported operand 118".',
            "run `git lfs install && git lfs pull` in the clone (or enable LFS on the host that deploys it), then "
            "check the file is the size above",
            **facts,
        )

    try:
        return _restricted_load(path, data)
    except Exception as error:  # noqa: BLE001 - any failure of the restricted load becomes a diagnosis
        return _broken(
            path,
            "load-failed",
            f"a file that torch.load(weights_only=True) rejects: {error}",
            "the file is damaged, or holds objects that a weights-only load refuses",
            "save the model's state_dict with torch.save, or train again",
        )


def _restricted_load(path: Path, data: bytes) -> Diagnosis:
    import torch

    payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    kind = "zip" if zipfile.is_zipfile(io.BytesIO(data)) else "legacy"
    return Diagnosis(
        "ok",
        True,
        str(path),
        f"a PyTorch checkpoint ({kind} format, {len(data)} bytes) that loads with weights_only=True",
        payload=payload,
    )


def compare_state_dict(expected: dict, actual: dict, path: Path | str) -> Diagnosis | None:
    """Return a diagnosis when actual's keys or shapes differ from expected's (the model's), else None."""
    missing = sorted(set(expected) - set(actual))
    unexpected = sorted(set(actual) - set(expected))
    shapes = {
        name: (list(expected[name].shape), list(actual[name].shape))
        for name in sorted(set(expected) & set(actual))
        if hasattr(actual[name], "shape") and tuple(expected[name].shape) != tuple(actual[name].shape)
    }
    if not (missing or unexpected or shapes):
        return None
    details = []
    if missing:
        details.append(f"missing keys: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
    if unexpected:
        details.append(f"unexpected keys: {', '.join(unexpected[:10])}{' ...' if len(unexpected) > 10 else ''}")
    details += [f"{name}: model {model_shape}, file {file_shape}" for name, (model_shape, file_shape) in shapes.items()]
    return _broken(
        Path(path),
        "architecture-mismatch",
        "a state dict for a different architecture than this project's model (" + "; ".join(details) + ")",
        "the checkpoint was trained with other model code, or another number of classes",
        "train again with this code, or load it with the model code it was trained with",
        missing=missing,
        unexpected=unexpected,
        shape_mismatches=shapes,
    )
