from __future__ import annotations

import copy

from lockstep import parity, stack

MANIFEST = {
    "schema": stack.SCHEMA,
    "python": "3.13.5",
    "platform": "linux-x86_64",
    "lock_sha256": "a" * 64,
    "torch": {"version": "2.14.1+cu130", "cuda": "13.0", "build": "cuda13.0"},
    "distributions": {"numpy": "2.5.5", "torch": "2.14.1"},
}
LABELS = {
    "dev.lockstep.project": "lockstep",
    "dev.lockstep.lock.sha256": "a" * 64,
    "dev.lockstep.torch.version": "2.14.1",
    "dev.lockstep.python.version": "3.13",
    "org.opencontainers.image.title": "lockstep-train",
}


def _image(name: str, labels: dict | None = None, manifest: dict | None = None) -> parity.ImageStack:
    return parity.ImageStack(name, dict(labels or LABELS), copy.deepcopy(manifest or MANIFEST))


def test_compare_identical_images_is_empty():
    assert parity.compare(_image("train"), _image("serve")) == []


def test_compare_ignores_title_label():
    serve = _image("serve", labels=dict(LABELS, **{"org.opencontainers.image.title": "lockstep-serve"}))
    assert parity.compare(_image("train"), serve) == []


def test_compare_lists_manifest_then_label_differences():
    manifest = copy.deepcopy(MANIFEST)
    manifest["distributions"]["numpy"] = "2.5.4"
    serve = _image("serve", labels=dict(LABELS, **{"dev.lockstep.project": "other"}), manifest=manifest)
    differences = parity.compare(_image("train"), serve)
    assert differences == [
        stack.Difference("distribution numpy", "2.5.5", "2.5.4"),
        stack.Difference("label dev.lockstep.project", "lockstep", "other"),
    ]


def test_compare_reports_missing_label_as_absent():
    labels = {key: value for key, value in LABELS.items() if key != "dev.lockstep.lock.sha256"}
    differences = parity.compare(_image("train"), _image("serve", labels=labels))
    assert differences == [stack.Difference("label dev.lockstep.lock.sha256", "a" * 64, None)]


def test_labels_against_manifest_accept_local_torch_tag():
    assert parity.check_labels_against_manifest(_image("train")) == []


def test_labels_against_manifest_name_image_label_and_value():
    labels = dict(LABELS, **{"dev.lockstep.lock.sha256": "b" * 64, "dev.lockstep.python.version": "3.12"})
    problems = parity.check_labels_against_manifest(_image("lockstep/train:ci", labels=labels))
    assert problems == [
        f"lockstep/train:ci: label dev.lockstep.lock.sha256={'b' * 64!r}, but its manifest says {'a' * 64!r}",
        "lockstep/train:ci: label dev.lockstep.python.version='3.12', but its manifest says '3.13'",
    ]
