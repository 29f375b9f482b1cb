"""`docker compose up` end to end: train, healthy serve, smoke test, and image parity."""

from __future__ import annotations

import json
import struct
import subprocess
import zlib
from pathlib import Path

from tests.e2e.conftest import REPO, http_get, new_project


def _inspect(image: str) -> dict:
    result = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)[0]


def _image(project, service: str) -> str:
    config = json.loads(project.compose("config", "--format", "json", check=True).stdout)
    return config["services"][service]["image"]


def test_train_completed_and_serve_is_healthy(stack_up):
    train = stack_up.service_state("train")
    assert train["State"] == "exited"
    assert train["ExitCode"] == 0
    assert stack_up.service_state("serve")["Health"] == "healthy"


def test_health_endpoints_answer_from_host(stack_up):
    assert http_get(f"{stack_up.url}/_stcore/health") == (200, "ok")
    assert http_get(f"{stack_up.url}/_stcore/script-health-check", timeout=60) == (200, "ok")


def test_serve_log_names_published_port(stack_up):
    logs = stack_up.compose("logs", "--no-color", "serve", check=True).stdout
    assert f"URL: http://localhost:{stack_up.port}" in logs


def test_smoke_test_passes_in_serving_container(stack_up):
    result = stack_up.run_script("smoke")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Stacks match" in output
    assert "Smoke test passed" in output


def test_images_share_every_layer_up_to_the_code(stack_up):
    train = _inspect(_image(stack_up, "train"))["RootFS"]["Layers"]
    serve = _inspect(_image(stack_up, "serve"))["RootFS"]["Layers"]
    # The training image adds one layer (train/) to the shared prefix; serving adds app/ and its scan.
    assert train[:-1] == serve[: len(train) - 1]
    assert train[-1] not in serve


def test_images_carry_identical_manifests_and_lock_labels(stack_up):
    manifests = []
    for service in ("train", "serve"):
        image = _image(stack_up, service)
        manifest_json = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", image, "cat", "/opt/lockstep/stack.json"],
            capture_output=True,
            text=True,
            check=True,
        )
        manifests.append(json.loads(manifest_json.stdout))
        labels = _inspect(image)["Config"]["Labels"]
        facts = subprocess.run(
            ["python3", "src/lockstep/lockfile.py", "facts", "requirements/lock.txt"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        expected = dict(line.split("=", 1) for line in facts.split())
        assert labels["dev.lockstep.lock.sha256"] == expected["LOCK_SHA256"]
        assert labels["dev.lockstep.torch.version"] == expected["LOCK_TORCH_VERSION"]
        assert labels["dev.lockstep.python.version"] == expected["LOCK_PYTHON_VERSION"]
    assert manifests[0] == manifests[1]
    assert manifests[0]["lock_sha256"] == expected["LOCK_SHA256"]


def _png(width: int = 8, height: int = 8) -> bytes:
    """A valid grey PNG, built with the standard library (the host has no Pillow)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_single_class_data_folder_stops_before_serve(tmp_path: Path):
    data = tmp_path / "data"
    (data / "only-class").mkdir(parents=True)
    (data / "only-class" / "pixel.png").write_bytes(_png())
    # The training container runs as UID 10001, which must be able to read the folder.
    for path in (tmp_path, data, data / "only-class"):
        path.chmod(0o755)
    project = new_project("bad-data", DATA_DIR=str(data))
    try:
        up = project.compose("up", "--detach", timeout=300)
        assert up.returncode != 0
        assert project.service_state("train")["ExitCode"] == 2
        logs = project.compose("logs", "--no-color", "train").stdout
        assert "a single class (only-class)" in logs
        assert "one folder per class" in logs
        assert project.service_state("serve").get("State") in (None, "created")
        listing = project.compose("run", "--rm", "--no-deps", "--entrypoint", "ls", "serve", "-A", "/checkpoints")
        assert listing.returncode == 0
        assert listing.stdout.strip() == ""
    finally:
        project.save_logs()
        project.down()


def test_missing_data_dir(tmp_path: Path):
    missing = tmp_path / "no-such-folder"
    project = new_project("missing-data", DATA_DIR=str(missing))
    try:
        run = project.compose("run", "--rm", "train", timeout=300)
        assert run.returncode != 0
        assert f"bind source path does not exist: {missing}" in run.stderr
        assert not missing.exists()
    finally:
        project.down()
