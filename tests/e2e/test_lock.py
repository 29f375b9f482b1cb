"""scripts/lock's guards, run on scratch copies so the real lock never changes."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, copy_tracked_files, require_docker

WATCHED = ("Dockerfile.train", "Dockerfile.serve", "requirements/torch.in", "requirements/lock.txt")


def _lock(tree: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(tree / "scripts" / "lock"), *args], cwd=tree, capture_output=True, text=True, timeout=timeout
    )


def _base_image() -> str:
    if os.environ.get("BASE_IMAGE"):
        return os.environ["BASE_IMAGE"]
    return re.search(r"^ARG BASE_IMAGE=(.+)$", (REPO / "Dockerfile.train").read_text(), re.MULTILINE)[1]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return copy_tracked_files(tmp_path)


@pytest.mark.parametrize("option", [["--upgrade"], ["--upgrade-package", "numpy"], ["--torch", "2.14.1"]])
def test_lock_check_rejects_options_that_change_pins(tree: Path, option: list[str]):
    require_docker()
    result = _lock(tree, "--check", *option)
    assert result.returncode == 2
    assert "does not mix with" in result.stderr


def test_lock_python_rejects_base_image_of_other_python(tree: Path):
    require_docker()
    base_image = _base_image()
    running = subprocess.run(
        ["docker", "run", "--rm", base_image, "python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if running.returncode != 0:
        pytest.skip(f"Requires: the base image {base_image}, pulled or built (.ci/build-base-image)")
    other = "3.9" if running.stdout.strip() != "3.9" else "3.10"
    before = {name: (tree / name).read_text() for name in WATCHED}
    result = subprocess.run(
        [str(tree / "scripts" / "lock"), "--python", other],
        cwd=tree,
        env=dict(os.environ, BASE_IMAGE=base_image),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 2
    assert f"runs Python {running.stdout.strip()}, not {other}" in result.stderr
    assert {name: (tree / name).read_text() for name in WATCHED} == before


def test_lock_torch_restores_files_when_compile_fails(tree: Path):
    require_docker()
    before = {name: (tree / name).read_text() for name in WATCHED}
    # No torch 2.99 exists, so pip-compile fails after torch.in was rewritten.
    result = _lock(tree, "--torch", "2.99.0")
    assert result.returncode == 1
    assert "pip-compile failed" in result.stderr
    assert "Restored the Dockerfiles and requirements/" in result.stderr
    assert {name: (tree / name).read_text() for name in WATCHED} == before
