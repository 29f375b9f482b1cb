"""scripts/doctor from the host: --scan on the host's python3, diagnoses inside the serving image."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO

SCRIPT = REPO / "scripts" / "doctor"
OID = "sha256:" + "4d7a2146" * 8
POINTER = f"version https://git-lfs.github.com/spec/v1\noid {OID}\nsize 1234567\n"


def _doctor(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd or REPO)


def _require_serving_image() -> str:
    image = f"{os.environ.get('IMAGE_NAMESPACE', 'lockstep')}/serve:{os.environ.get('IMAGE_TAG', 'local')}"
    if shutil.which("docker") is None:
        pytest.skip("Requires: docker on PATH (Docker Engine)")
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode != 0:
        pytest.skip(f"Requires: the serving image {image} (docker compose build serve, or scripts/test)")
    return image


def test_doctor_help_lists_usage_and_variables():
    result = _doctor("--help")

    assert result.returncode == 0
    assert "scripts/doctor --scan DIR..." in result.stdout
    assert "IMAGE_TAG" in result.stdout


def test_doctor_without_paths_exits_two():
    result = _doctor()

    assert result.returncode == 2
    assert "error: give at least one PATH" in result.stderr


def test_doctor_scan_finds_pointer_without_image(tmp_path):
    pointer = tmp_path / "models" / "classifier" / "model.pt"
    pointer.parent.mkdir(parents=True)
    pointer.write_text(POINTER)
    result = _doctor("--scan", tmp_path)

    assert result.returncode == 1
    assert f"{pointer}: a Git LFS pointer file" in result.stderr
    assert OID in result.stderr


def test_doctor_scan_passes_clean_folder(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"PK\x05\x06" + bytes(18))
    result = _doctor("--scan", tmp_path)

    assert result.returncode == 0, result.stderr
    assert "No Git LFS pointers among 1 weight file under" in result.stdout


def test_doctor_diagnoses_files_in_serving_image(tmp_path):
    _require_serving_image()
    (tmp_path / "model.pt").write_text(POINTER)
    page = tmp_path / 'downloads, "copy"' / "weights.pth"  # docker's --mount syntax is CSV
    page.parent.mkdir()
    page.write_text("<!doctype html><html><head><title>Sign in</title></head><body></body></html>")
    page.chmod(0o600)  # readable only by this user, as downloads often are
    result = _doctor("--json", "model.pt", page.relative_to(tmp_path), cwd=tmp_path)
    report = json.loads(result.stdout)

    assert result.returncode == 1, result.stderr
    assert [entry["kind"] for entry in report] == ["lfs-pointer", "html"]
    assert [entry["path"] for entry in report] == [str(tmp_path.resolve() / "model.pt"), str(page.resolve())]
    assert report[0]["facts"]["oid"] == OID


def test_doctor_reads_file_directly_in_tmp():
    # The container has a tmpfs at /tmp, which must not hide a file from the host's /tmp.
    _require_serving_image()
    with tempfile.NamedTemporaryFile("w", dir="/tmp", suffix=".pt") as file:
        file.write(POINTER)
        file.flush()
        pointer = Path(file.name)
        result = _doctor("--json", pointer)
    report = json.loads(result.stdout)

    assert result.returncode == 1, result.stderr
    assert report[0]["path"] == str(pointer.resolve())
    assert report[0]["kind"] == "lfs-pointer"


def test_doctor_reads_metadata_beside_file(tmp_path):
    _require_serving_image()
    model = tmp_path / "model.pt"
    model.write_bytes(b"PK\x03\x04" + bytes(12))
    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps({"model_file": {"name": "model.pt", "bytes": 5000}}))
    result = _doctor(model)

    assert result.returncode == 1, result.stderr
    assert f"{model.resolve()}: a checkpoint cut off at 16 bytes" in result.stdout
    assert f"{metadata.resolve()} records 5,000 bytes" in result.stdout


def test_doctor_reports_missing_file_in_root_folder():
    _require_serving_image()
    path = f"/lockstep-doctor-absent-{os.getpid()}.pt"
    result = _doctor(path)

    assert result.returncode == 1, result.stderr
    assert f"{path}: a path where no file exists" in result.stdout


def test_doctor_reads_file_in_system_folder():
    # /etc is in the image too; the host's file must be the one examined.
    _require_serving_image()
    path = Path("/etc/os-release")
    if not path.is_file():
        pytest.skip("Requires: /etc/os-release on the host")
    result = _doctor("--json", path)
    report = json.loads(result.stdout)

    assert result.returncode == 1, result.stderr
    assert report[0]["path"] == str(path)
    assert report[0]["kind"] == "text"
    assert f"({path.stat().st_size} bytes)" in report[0]["what"]
