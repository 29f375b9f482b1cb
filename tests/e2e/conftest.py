"""Fixtures for the end-to-end tests, which run on the host and drive docker compose.

Each session brings up its own compose project, with its own volume and a
free port on 127.0.0.1, from the images scripts/test built. Teardown removes
that project's containers and volume; images and other projects stay.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("ARTIFACTS_DIR", REPO / "artifacts"))
# Seconds from `up` to a healthy serve, training included. It only bounds a
# hang: training alone took 235 s on 2 cores shared with other builds.
HEALTHY_TIMEOUT = 600


@dataclass
class ComposeProject:
    name: str
    port: int
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def compose(self, *args: str, timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["docker", "compose", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def run_script(self, script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(REPO / "scripts" / script), *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def service_state(self, service: str) -> dict:
        result = self.compose("ps", "--all", "--format", "json", service, check=True)
        lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        return lines[0] if lines else {}

    def save_logs(self) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}.log"
        path.write_text(self.compose("logs", "--no-color", "--timestamps").stdout)
        return path

    def down(self) -> None:
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "10")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_docker() -> None:
    if shutil.which("docker") is None:
        pytest.skip("Requires: docker on PATH (Docker Engine with Compose v2)")
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.skip("Requires: a running Docker engine (`docker info` failed)")


def new_project(suffix: str, **env: str) -> ComposeProject:
    require_docker()
    name = f"lockstep-e2e-{suffix}-{os.getpid()}"
    port = _free_port()
    merged = dict(os.environ, COMPOSE_PROJECT_NAME=name, SERVE_PORT=str(port), **env)
    return ComposeProject(name, port, merged)


def copy_tracked_files(dest: Path) -> Path:
    """Copy the files git tracks into dest, as a scratch tree that tests may break, and return dest.

    The tree's .venv links to this one's, so scripts/dev-env finds its tools installed.
    """
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in listed.decode().split("\0"):
        source = REPO / name
        if name and source.exists():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    (dest / ".venv").symlink_to(REPO / ".venv")
    return dest


def http_get(url: str, timeout: float = 10) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read().decode("utf-8", "replace")


@pytest.fixture(scope="session")
def stack_up() -> ComposeProject:
    """The whole flow of `docker compose up`: train to completion, then a healthy serve."""
    project = new_project("main")
    started = time.monotonic()
    try:
        up = project.compose("up", "--detach", timeout=HEALTHY_TIMEOUT)
        assert up.returncode == 0, f"docker compose up failed:\n{up.stdout}\n{up.stderr}"
        while time.monotonic() - started < HEALTHY_TIMEOUT:
            if project.service_state("serve").get("Health") == "healthy":
                break
            time.sleep(2)
        else:
            pytest.fail(f"serve not healthy within {HEALTHY_TIMEOUT} s; logs in {project.save_logs()}")
        yield project
    finally:
        project.save_logs()
        project.down()
