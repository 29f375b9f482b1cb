"""The tensor storages a torch.save pickle refers to, read from its persistent ids.

torch.save replaces each storage with a persistent id, a tuple
("storage", storage type, key, location, element count[, view metadata]),
and writes the bytes elsewhere: a data/<key> record in the zip format, or
after the pickles in the legacy format. The location names the device the
tensor was on when it was saved ("cpu", "cuda:0", "mps").
"""

from __future__ import annotations

from dataclasses import dataclass

from lockstep.doctor.pickles import Global, PickleScan

# Bytes per element of torch's storage types. Untyped storages count bytes.
ELEMENT_BYTES = {
    "UntypedStorage": 1, "ByteStorage": 1, "CharStorage": 1, "BoolStorage": 1,
    "QUInt8Storage": 1, "QInt8Storage": 1, "QUInt4x2Storage": 1, "QUInt2x4Storage": 1,
    "ShortStorage": 2, "HalfStorage": 2, "BFloat16Storage": 2,
    "IntStorage": 4, "FloatStorage": 4, "QInt32Storage": 4,
    "LongStorage": 8, "DoubleStorage": 8, "ComplexFloatStorage": 8,
    "ComplexDoubleStorage": 16,
}  # fmt: skip


@dataclass(frozen=True)
class Storage:
    key: str
    type_name: str  # "FloatStorage"
    location: str  # "cpu", "cuda:0", ...
    elements: int

    @property
    def nbytes(self) -> int | None:
        """Size of the storage's data, or None for storage types this table does not know."""
        size = ELEMENT_BYTES.get(self.type_name)
        return None if size is None else size * self.elements


def storages(scan: PickleScan) -> list[Storage]:
    """Return each storage the pickle references once, in order of first reference."""
    found: dict[str, Storage] = {}
    for value in scan.persistent_ids:
        if not (isinstance(value, tuple) and len(value) >= 5 and value[0] == "storage"):
            continue
        _, storage_type, key, location, elements = value[:5]
        type_name = storage_type.name if isinstance(storage_type, Global) else str(storage_type)
        if isinstance(key, str) and isinstance(elements, int):
            found.setdefault(key, Storage(key, type_name, str(location), elements))
    return list(found.values())


def devices(found: list[Storage]) -> list[str]:
    return sorted({storage.location for storage in found})


def gpu_note(found: list[Storage]) -> str | None:
    """Explain tensors saved on a GPU. They load here because the doctor maps them to the CPU."""
    gpus = [location for location in devices(found) if location != "cpu"]
    if not gpus:
        return None
    count = sum(storage.location != "cpu" for storage in found)
    return (
        f"{count} of {len(found)} tensor storages were saved on {', '.join(gpus)}. They load onto the CPU "
        'with torch.load(..., map_location="cpu"), which this project always passes. Without it, torch.load '
        "fails on a machine without that device. Move tensors to the CPU before saving to avoid this."
    )


@dataclass
class Structure:
    """Structural facts about a file that torch.load may now try: its format, main pickle and storages."""

    format: str  # "zip" or "legacy"
    scan: PickleScan  # of the pickle that contains the saved object
    storages: list[Storage]
