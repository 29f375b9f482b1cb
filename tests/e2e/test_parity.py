"""scripts/check-parity against the images scripts/test built, and against a doctored copy."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.e2e.conftest import REPO, require_docker

# A copy of the serving image whose manifest pins another numpy and whose
# torch label is wrong: both must show up in the diff.
DOCTORED_DOCKERFILE = """\
FROM {serve_image}
USER root
RUN python -c "import json; p = '/opt/lockstep/stack.json'; m = json.load(open(p)); \\
m['distributions']['numpy'] = '0.0.1'; json.dump(m, open(p, 'w'))"
USER 10001:10001
LABEL dev.lockstep.torch.version="0.0.1"
"""


def _check_parity(*images: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(REPO / "scripts" / "check-parity"), *images], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def built_images() -> tuple[str, str]:
    """The image names docker compose uses here, with IMAGE_NAMESPACE and IMAGE_TAG applied."""
    require_docker()
    config = subprocess.run(
        ["docker", "compose", "config", "--format", "json"], cwd=REPO, capture_output=True, text=True, check=True
    )
    services = json.loads(config.stdout)["services"]
    images = (services["train"]["image"], services["serve"]["image"])
    for image in images:
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode != 0:
            pytest.skip(f"Requires: image {image}, built by scripts/test or scripts/build")
    return images


@pytest.fixture
def doctored_image(built_images) -> str:
    tag = f"lockstep-parity-test:{os.getpid()}"
    build = subprocess.run(
        ["docker", "build", "--quiet", "--label", "dev.lockstep.project=lockstep", "--tag", tag, "-"],
        input=DOCTORED_DOCKERFILE.format(serve_image=built_images[1]),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr
    try:
        yield tag
    finally:
        subprocess.run(["docker", "image", "rm", "--force", tag], capture_output=True)


def test_check_parity_passes_for_built_images(built_images):
    train_image, serve_image = built_images
    result = _check_parity(train_image, serve_image)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Parity: {train_image} and {serve_image} hold the same stack" in result.stdout


def test_check_parity_defaults_to_namespace_and_tag(built_images):
    result = _check_parity()
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{built_images[0]} and {built_images[1]}" in result.stdout


def test_check_parity_lists_doctored_package_and_label(built_images, doctored_image):
    train_image = built_images[0]
    result = _check_parity(train_image, doctored_image)
    assert result.returncode == 1, result.stdout + result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[0] == [train_image, doctored_image]
    assert rows[1][:2] == ["distribution", "numpy"]
    assert rows[1][3] == "0.0.1"
    assert rows[2][:2] == ["label", "dev.lockstep.torch.version"]
    assert rows[2][3] == "0.0.1"
    assert f"{doctored_image}: label dev.lockstep.torch.version='0.0.1'" in result.stdout
    assert "do not hold the same stack" in result.stderr


def test_check_parity_rejects_missing_image(built_images):
    result = _check_parity(built_images[0], "lockstep-parity-test:absent")
    assert result.returncode == 2
    assert "image lockstep-parity-test:absent not found" in result.stderr


def test_check_parity_rejects_unknown_option():
    result = _check_parity("--bogus")
    assert result.returncode == 2
    assert "error: unknown option: --bogus" in result.stderr
    assert "Usage: scripts/check-parity" in result.stderr
