from __future__ import annotations

import json
from pathlib import Path

import pytest

from lockstep import stack

MANIFEST = {
    "schema": stack.SCHEMA,
    "python": "3.13.5",
    "platform": "linux-x86_64",
    "lock_sha256": "a" * 64,
    "torch": {"version": "2.14.1", "cuda": "13.0", "build": "cuda13.0"},
    "distributions": {"numpy": "2.5.5", "streamlit": "1.67.0", "torch": "2.14.1"},
}


def test_diff_of_identical_manifests_is_empty():
    assert stack.diff(MANIFEST, json.loads(json.dumps(MANIFEST))) == []


def test_diff_lists_each_changed_package_with_both_versions():
    other = json.loads(json.dumps(MANIFEST))
    other["distributions"]["streamlit"] = "1.66.0"
    del other["distributions"]["numpy"]
    other["distributions"]["pandas"] = "3.1.1"
    other["torch"]["build"] = "cpu"
    differences = stack.diff(MANIFEST, other)
    assert stack.Difference("torch.build", "cuda13.0", "cpu") in differences
    assert stack.Difference("distribution numpy", "2.5.5", None) in differences
    assert stack.Difference("distribution pandas", None, "3.1.1") in differences
    assert stack.Difference("distribution streamlit", "1.67.0", "1.66.0") in differences
    assert len(differences) == 4


def test_format_diff_shows_absent_packages_and_labels():
    table = stack.format_diff([stack.Difference("distribution numpy", "2.5.5", None)], "training", "serving")
    header, row = table.splitlines()
    assert header.split() == ["training", "serving"]
    assert row.split() == ["distribution", "numpy", "2.5.5", "(absent)"]


def test_check_matches_lock_reports_missing_and_extra():
    lock = "torch==2.14.1 \\\n    --hash=sha256:aa\nnumpy==2.5.5 \\\n    --hash=sha256:bb\n"
    with pytest.raises(stack.StackError) as raised:
        stack.check_matches_lock({"torch": "2.14.0", "requests": "2.0", "pip": "25.1"}, lock)
    message = str(raised.value)
    assert "torch: locked 2.14.1, installed 2.14.0" in message
    assert "numpy: locked 2.5.5, installed nothing" in message
    assert "requests==2.0: installed but not in the lock" in message
    assert "pip" not in message  # the venv's own pip is expected


def test_load_manifest_rejects_other_schema(tmp_path: Path):
    path = tmp_path / "stack.json"
    path.write_text(json.dumps({"schema": "something/2"}))
    with pytest.raises(stack.StackError, match=r"is not a lockstep\.stack/1 manifest"):
        stack.load_manifest(path)
    with pytest.raises(stack.StackError, match="no stack manifest"):
        stack.load_manifest(tmp_path / "missing.json")


def test_image_manifest_describes_the_running_stack():
    manifest = stack.load_manifest()
    assert manifest["distributions"] == stack.installed_distributions()
    assert manifest["torch"] == stack.torch_build()
    lock = Path("/opt/lockstep/lock.txt").read_text()
    stack.check_matches_lock(manifest["distributions"], lock)


def test_prove_runs_one_op_per_library():
    ran = stack.prove()
    assert [line.split(":")[1].strip() for line in ran] == ["matmul", "ops.nms", "functional.lfilter"]
