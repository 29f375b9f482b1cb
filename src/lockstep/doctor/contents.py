"""Check what a loaded checkpoint contains: the architecture, the training stack, the devices.

Runs only after torch.load(weights_only=True) succeeded, so importing torch
and the model code here costs nothing extra. The imports stay inside the
functions so that importing the doctor never imports torch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from lockstep import stack
from lockstep.doctor.diagnosis import Diagnosis, broken, size_text
from lockstep.doctor.storages import Structure, gpu_note
from lockstep.settings import IMAGE_SIZES

LOCKSTEP_FORMAT = "lockstep-checkpoint"  # lockstep.checkpoint.FORMAT, which imports torch
PROJECT_ARCHITECTURE = "small-cnn"
# Prefixes that wrappers add to every key: DataParallel/DDP and torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
SHOWN_KEYS = 10
# Per-epoch keys that the model card charts.
EPOCH_KEYS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy")
# The payload layout this code reads, written as lockstep.checkpoint.FORMAT_VERSION.
LOCKSTEP_FORMAT_VERSION = 1


def _listed(names: list[str]) -> str:
    return ", ".join(names[:SHOWN_KEYS]) + (f" and {len(names) - SHOWN_KEYS} more" if len(names) > SHOWN_KEYS else "")


def compare_state_dict(expected: dict, actual: dict, path: Path | str) -> Diagnosis | None:
    """Diagnose a state dict whose keys or shapes differ from `expected`, the model's; return None when they match."""
    missing = sorted(set(expected) - set(actual))
    unexpected = sorted(set(actual) - set(expected))
    shapes = {
        name: (list(expected[name].shape), list(getattr(actual[name], "shape", [])))
        for name in sorted(set(expected) & set(actual))
        if tuple(expected[name].shape) != tuple(getattr(actual[name], "shape", ()))
    }
    if not (missing or unexpected or shapes):
        return None

    details = []
    if missing:
        details.append(f"missing keys: {_listed(missing)}")
    if unexpected:
        details.append(f"unexpected keys: {_listed(unexpected)}")
    details += [f"{name}: model {model}, file {found}" for name, (model, found) in shapes.items()]
    cause = "the checkpoint was trained with other model code, or with another number of classes"
    fix = "train again with this code, or load the file with the model code it was trained with"
    for prefix in WRAPPER_PREFIXES:
        if missing and sorted(name.removeprefix(prefix) for name in unexpected) == missing:
            cause = (
                f"every key starts with {prefix!r}, because the model was saved while wrapped "
                "(DataParallel, DDP or torch.compile)"
            )
            fix = f"strip the prefix: {{k.removeprefix({prefix!r}): v for k, v in state_dict.items()}}, then save again"
    return broken(
        path,
        "architecture-mismatch",
        "a state dict for a different architecture than this project's model (" + "; ".join(details) + ")",
        cause,
        fix,
        missing=missing,
        unexpected=unexpected,
        shape_mismatches=shapes,
    )


def _is_state_dict(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(key, str) and hasattr(item, "shape") for key, item in value.items())
    )


def _find_state_dict(payload: Any) -> dict | None:
    if _is_state_dict(payload):
        return payload
    if isinstance(payload, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if _is_state_dict(payload.get(key)):
                return payload[key]
    return None


def _class_count(state: dict) -> int | None:
    """Infer the class count from the classifier's weight, or else from the last 2-D weight."""
    weights = [tensor for name, tensor in state.items() if name.endswith("weight") and len(tensor.shape) == 2]
    head = state.get("classifier.weight")
    if head is not None and len(head.shape) == 2:
        return int(head.shape[0])
    return int(weights[-1].shape[0]) if weights else None


def _stack_note(recorded: Any, facts: dict[str, Any]) -> str | None:
    if not stack.MANIFEST_PATH.exists():  # outside a lockstep image there is nothing to compare with
        return None
    if not isinstance(recorded, dict):
        return "The checkpoint records no training stack, so parity with this image cannot be shown."
    try:
        serving = stack.load_manifest(stack.MANIFEST_PATH)
    except stack.StackError as error:
        return f"This image's stack manifest cannot be read ({error}), so parity cannot be shown."
    differences = stack.diff(recorded, serving)
    if not differences:
        return None
    facts["stack_differences"] = [
        {"field": d.field, "training": d.expected, "this_image": d.actual} for d in differences
    ]
    return (
        f"The training stack recorded in the checkpoint differs from this image's in {len(differences)} place(s):\n"
        + stack.format_diff(differences, "training image", "this image")
        + "\nPredictions may differ from those measured in training. Rebuild both images from one "
        "requirements/lock.txt (docker compose build) and train again."
    )


def _invalid_metadata(path: Path, problem: str) -> Diagnosis:
    return broken(
        path,
        "invalid-metadata",
        f"a lockstep checkpoint {problem}",
        "the checkpoint was written by other code, or its metadata was edited",
        "train again with this code (python -m train, or docker compose up)",
    )


def _numbers(value: Any, count: int) -> bool:
    return (
        isinstance(value, list)
        and len(value) == count
        and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    )


def metadata_problem(metadata: Any) -> str | None:
    """Return what makes a lockstep checkpoint's metadata unusable for serving, or None when it is sound.

    The app, the smoke test and the model card read these fields without
    further checks, so an edited file must fail here, with a diagnosis,
    rather than there, with a traceback.
    """
    if not isinstance(metadata, dict):
        return f"whose metadata is a {type(metadata).__name__}, not a dict"
    classes = metadata.get("classes")
    if not (isinstance(classes, list) and len(classes) >= 2 and all(isinstance(c, str) and c for c in classes)):
        return f"whose classes {classes!r} are not a list of at least two names"
    if len(set(classes)) != len(classes):
        return f"whose classes {classes!r} repeat a name"
    architecture = metadata.get("architecture")
    if not isinstance(architecture, dict) or not isinstance(architecture.get("name"), str):
        return f"whose architecture spec {architecture!r} names no architecture"
    if architecture.get("num_classes") != len(classes):
        return f"whose architecture has num_classes={architecture.get('num_classes')!r} for {len(classes)} classes"
    preprocessing = metadata.get("input")
    if not isinstance(preprocessing, dict):
        return f"whose input settings {preprocessing!r} are not a dict"
    size = preprocessing.get("image_size")
    if not (isinstance(size, int) and size in IMAGE_SIZES):
        low, high = IMAGE_SIZES.start, IMAGE_SIZES.stop - 1
        return f"whose input image_size {size!r} is not a whole number from {low} to {high}"
    if not _numbers(preprocessing.get("mean"), 3):
        return f"whose input mean {preprocessing.get('mean')!r} is not three finite numbers"
    std = preprocessing.get("std")
    if not (_numbers(std, 3) and all(v > 0 for v in std)):
        return f"whose input std {std!r} is not three positive numbers"
    metrics = metadata.get("metrics", [])
    if not (isinstance(metrics, list) and all(_is_epoch_record(epoch) for epoch in metrics)):
        return f"whose metrics are not a list of per-epoch records ({', '.join(EPOCH_KEYS)})"
    matrix = metadata.get("confusion_matrix") or []
    if matrix and not (
        isinstance(matrix, list)
        and len(matrix) == len(classes)
        and all(
            isinstance(row, list)
            and len(row) == len(classes)
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in row)
            for row in matrix
        )
    ):
        return f"whose confusion_matrix is not {len(classes)}x{len(classes)} counts, one row and column per class"
    for key in ("data", "training"):
        if not isinstance(metadata.get(key, {}), dict):
            return f"whose {key} record is a {type(metadata[key]).__name__}, not a dict"
    if not isinstance(metadata.get("data", {}).get("skipped", []), list):
        return "whose data.skipped is not a list of file names"
    if not isinstance(metadata.get("created_at"), str | None):
        return f"whose created_at {metadata['created_at']!r} is not a date and time as text"
    if metadata.get("stack") is not None and (problem := stack.manifest_problem(metadata["stack"])):
        return f"whose recorded training stack {problem}"
    return None


def _is_epoch_record(epoch: Any) -> bool:
    return isinstance(epoch, dict) and all(
        isinstance(epoch.get(key), int | float) and not isinstance(epoch.get(key), bool) for key in EPOCH_KEYS
    )


def _non_finite(path: Path, state: dict) -> Diagnosis | None:
    from lockstep.model import non_finite_tensors

    names = non_finite_tensors(state)
    if not names:
        return None
    return broken(
        path,
        "non-finite-weights",
        f"a checkpoint whose weights hold NaN or infinite values ({len(names)} of {len(state)} tensors: "
        f"{_listed(names)})",
        "training diverged (a learning rate too high, or broken input data) and the weights were saved anyway",
        "train again with a lower learning rate (LOCKSTEP_LEARNING_RATE); lockstep's training stops with an "
        "error instead of saving such weights",
        tensors=names,
    )


def _check_lockstep(path: Path, payload: dict, facts: dict[str, Any], notes: list[str]) -> str | Diagnosis:
    """Check a lockstep checkpoint's metadata, state dict and stack; return a summary or the diagnosis of a problem."""
    import torch

    from lockstep.model import build_model

    if payload.get("version") != LOCKSTEP_FORMAT_VERSION:
        return broken(
            path,
            "invalid-metadata",
            f"a lockstep checkpoint of format version {payload.get('version')!r}; this code reads version "
            f"{LOCKSTEP_FORMAT_VERSION}",
            "the checkpoint was written by another release of lockstep",
            "serve it with the lockstep release that trained it, or train again with this code",
        )
    metadata = payload.get("metadata")
    problem = metadata_problem(metadata)
    if problem is not None:
        return _invalid_metadata(path, problem)
    architecture = metadata["architecture"]
    try:
        # On the meta device the model has shapes but no storage, so an edited spec
        # (a width of a million) cannot make the doctor allocate memory.
        with torch.device("meta"):
            model = build_model(architecture)
    except (TypeError, ValueError, RuntimeError) as error:  # RuntimeError: sizes beyond what torch can address
        return _invalid_metadata(path, f"whose architecture spec {architecture!r} cannot be built: {error}")
    state = payload.get("state_dict")
    if not _is_state_dict(state):
        return _invalid_metadata(path, "without a state dict of tensors")
    mismatch = compare_state_dict(model.state_dict(), state, path) or _non_finite(path, state)
    if mismatch is not None:
        return mismatch

    note = _stack_note(metadata.get("stack"), facts)
    if note:
        notes.append(note)
    return f"run {metadata.get('run_id')}, {len(metadata['classes'])} classes, {architecture['name']}"


def examine_payload(path: Path, payload: Any, structure: Structure, size: int) -> Diagnosis:
    """Diagnose a file that loaded: check its state dict against the model, its stack, its devices."""
    from lockstep.model import build_model

    facts: dict[str, Any] = {"format": structure.format, "devices": sorted({s.location for s in structure.storages})}
    notes: list[str] = []
    kind = "ok"
    container = f"{structure.format} format, {size_text(size)}"

    if isinstance(payload, dict) and payload.get("format") == LOCKSTEP_FORMAT:
        summary = _check_lockstep(path, payload, facts, notes)
        if isinstance(summary, Diagnosis):
            return summary
        description = f"a lockstep checkpoint ({summary}, {container})"
        if "stack_differences" in facts:
            kind = "stack-mismatch"
    elif (state := _find_state_dict(payload)) is not None:
        classes = _class_count(state)
        if classes is not None:
            model = build_model({"name": PROJECT_ARCHITECTURE, "num_classes": classes})
            mismatch = compare_state_dict(model.state_dict(), state, path)
            if mismatch is not None:
                return mismatch
        if (diverged := _non_finite(path, state)) is not None:
            return diverged
        fits = f" that fits this project's model with {classes} classes" if classes else ""
        description = f"a bare state dict ({len(state)} tensors, {container}){fits}"
        notes.append(
            "It has no lockstep metadata (classes, preprocessing), so the app cannot serve it. "
            "Save it with lockstep.checkpoint.save_run, as python -m train does."
        )
        kind = "state-dict"
    else:
        entries = f" of {len(payload)} entries" if isinstance(payload, dict | list | tuple) else ""
        description = f"a PyTorch checkpoint ({container}) that contains a {type(payload).__name__}{entries}"

    gpu = gpu_note(structure.storages)
    if gpu:
        notes.append(gpu)
        if kind in ("ok", "state-dict"):
            kind = "cuda-tensors"
    description += ", which loads with torch.load(weights_only=True)"
    return Diagnosis(kind, True, str(path), description, facts=facts, payload=payload, notes=notes)
