"""Checkpoint doctor: identify what a checkpoint file really is before anything unpickles it.

`diagnose(path)` decides from the file's bytes and structure first (magic
numbers, the zip central directory, pickle opcodes replayed symbolically,
never executed) and only then tries torch.load(weights_only=True,
map_location="cpu"). The Diagnosis names what the file is, the likely cause
and the fix. When the file loads, `payload` is what the restricted load
returned. Importing this package does not import torch.

    python -m lockstep.doctor PATH...     see __main__.py

Modules, in the order diagnose() uses them: sniff (first bytes: LFS pointers,
text, compressed and foreign formats), sidecar (a lockstep run's recorded
size and sha256), archives (zip files), safetensors, legacy (files that
start with a pickle), pickles and policy (opcode replay, dangerous and
rejected globals), storages (tensor storages and devices), contents (what a
loaded checkpoint contains).
"""

from __future__ import annotations

from lockstep.doctor.contents import compare_state_dict
from lockstep.doctor.diagnosis import Diagnosis
from lockstep.doctor.examine import diagnose
from lockstep.doctor.sniff import LFS_PREFIX

__all__ = ["LFS_PREFIX", "Diagnosis", "compare_state_dict", "diagnose"]
