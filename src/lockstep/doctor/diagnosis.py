"""The Diagnosis record: what a file is, the likely cause, the fix, and the facts behind them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CUT_OFF = "the save, copy or download was interrupted (disk full, a killed process, a dropped connection)"
COPY_AGAIN = "copy or download the file again and compare its size with the source, or train again if the save failed"


@dataclass
class Diagnosis:
    """The doctor's verdict on one file.

    `kind` is "ok" or a short stable name of what was found ("lfs-pointer",
    "truncated-zip", ...). `ok` is True when the file loads with
    torch.load(weights_only=True). Loadable files may still carry notes, such
    as tensors saved on a GPU or a training stack that differs from this image's.
    """

    kind: str
    ok: bool
    path: str
    what: str  # a noun phrase: "a Git LFS pointer file (131 bytes) ..."
    cause: str = ""
    fix: str = ""
    facts: dict[str, Any] = field(default_factory=dict)  # JSON-ready details: oid, globals, missing keys, ...
    payload: Any = field(default=None, repr=False)  # the restricted load's result, when the file loaded
    notes: list[str] = field(default_factory=list)

    def message(self) -> str:
        lines = [f"{self.path}: {self.what}"]
        if self.cause:
            lines.append(f"  Cause: {self.cause}")
        if self.fix:
            lines.append(f"  Fix:   {self.fix}")
        for note in self.notes:
            first, *rest = note.splitlines()
            lines.append(f"  Note:  {first}")
            lines.extend(f"         {line}" for line in rest)
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "ok": self.ok,
            "what": self.what,
            "cause": self.cause,
            "fix": self.fix,
            "notes": self.notes,
            "facts": self.facts,
        }


def broken(path: Path | str, kind: str, what: str, cause: str, fix: str, **facts: Any) -> Diagnosis:
    return Diagnosis(kind, False, str(path), what, cause, fix, facts)


def size_text(count: int) -> str:
    """Render a byte count for people: 131 bytes, 48.2 KiB, 1.3 GiB."""
    if count < 1024:
        return f"{count:,} bytes"
    value = count / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
