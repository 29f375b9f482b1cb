"""Measurements for scripts/bench that read Docker's own records: build logs, images, containers.

Each command prints figures as `key<TAB>value` lines, the format that
scripts/bench collects and report.py turns into the table and the JSON:

    measure.py build-log PREFIX LOG...             step times and downloads from BuildKit's plain progress
    measure.py image-sizes PREFIX TRAIN SERVE BASE  image bytes, with shared layers counted once
    measure.py layers-reused PREFIX OLD NEW BASE    how much of OLD's layer stack NEW reuses
    measure.py wait-healthy PREFIX ...              time from `docker compose up` to a healthy serve
    measure.py flatten PREFIX < JSON                one JSON object as key/value lines
    measure.py free-port                            a free TCP port on 127.0.0.1

Needs only the standard library and the docker CLI.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

# BuildKit's plain progress: "#8 [train stage-1 3/9] RUN ...", "#8 12.3 output", "#8 DONE 111.1s", "#8 CACHED".
_STEP = re.compile(r"^#(\d+) \[[^\]]*\] (.*)$")
_DONE = re.compile(r"^#(\d+) DONE ([\d.]+)s$")
_CACHED = re.compile(r"^#(\d+) CACHED$")
# pip download prints "Saved <dest>/<file>" for each wheel it fetched, and
# "File was already downloaded <path>" for each one the cache mount had.
_SAVED = re.compile(r"^#\d+ [\d.]+ Saved (\S+\.whl)$")
_FRACTION = re.compile(r"(\.\d{6})\d+")


def emit(prefix: str, key: str, value: object) -> None:
    """Print one figure as a key/value line; whitespace inside a text value becomes single spaces."""
    if isinstance(value, float):
        value = round(value, 3)
    print(f"{prefix}.{key}\t{' '.join(str(value).split())}")


def docker(*args: str) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"error: docker {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def parse_time(text: str) -> float:
    """Return seconds since the epoch for Docker's RFC 3339 timestamps, which carry nanoseconds."""
    text = _FRACTION.sub(r"\1", text.strip()).replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


def build_log(prefix: str, logs: list[Path]) -> None:
    """Report the seconds of the three lock install steps, whether they were cached, and the wheels downloaded."""
    steps = {
        "torch_layer": "/run/lock/heavy.txt",
        "libraries_layer": "/run/lock/medium.txt",
        "rest_of_lock": "/run/lock/light.txt",
    }
    seconds: dict[str, float] = {}
    cached: dict[str, bool] = {}
    saved = set()
    for log in logs:
        # Step numbers restart in every log, so they map to steps per log.
        owner: dict[str, str] = {}
        for line in log.read_text(errors="replace").splitlines():
            if match := _STEP.match(line):
                for name, marker in steps.items():
                    if f"install-layer.sh {marker}" in match[2]:
                        owner[match[1]] = name
                        cached.setdefault(name, True)
            elif (match := _DONE.match(line)) and match[1] in owner:
                name = owner[match[1]]
                seconds[name] = max(seconds.get(name, 0.0), float(match[2]))
                cached[name] = False
            elif match := _SAVED.match(line):
                saved.add(Path(match[1]).name)
    for name in steps:
        if name in cached:
            emit(prefix, f"{name}_seconds", seconds.get(name, 0.0))
            emit(prefix, f"{name}_cached", int(cached[name]))
    emit(prefix, "wheels_downloaded", len(saved))


def _layers(image: str) -> list[str]:
    return json.loads(docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", image))


def _size(image: str) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", image))


def _history(image: str) -> list[tuple[str, str, int]]:
    """Return (created, instruction, bytes) per history entry, oldest first."""
    lines = docker(
        "history", "--no-trunc", "--human=false", "--format", "{{.CreatedAt}}\t{{.Size}}\t{{.CreatedBy}}", image
    ).splitlines()
    entries = []
    for line in reversed(lines):
        created, size, instruction = line.split("\t", 2)
        entries.append((created, instruction, int(size)))
    return entries


def _common_prefix(first: list, second: list) -> int:
    count = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        count += 1
    return count


def image_sizes(prefix: str, train: str, serve: str, base: str) -> None:
    """Report each image's bytes and what both occupy together, their shared layers counted once.

    Docker keeps a layer once however many images use it. The shared bytes
    are the history entries both images start with: built from the same
    cache, they carry the same instruction, creation time and size.
    """
    sizes = {"train": _size(train), "serve": _size(serve)}
    histories = [_history(train), _history(serve)]
    shared = sum(entry[2] for entry in histories[0][: _common_prefix(*histories)])
    layers = [_layers(train), _layers(serve)]
    emit(prefix, "train_bytes", sizes["train"])
    emit(prefix, "serve_bytes", sizes["serve"])
    emit(prefix, "shared_bytes", shared)
    emit(prefix, "together_bytes", sizes["train"] + sizes["serve"] - shared)
    emit(prefix, "shared_layers", _common_prefix(*layers))
    emit(prefix, "train_layers", len(layers[0]))
    emit(prefix, "serve_layers", len(layers[1]))
    emit(prefix, "base_bytes", _size(base))
    emit(prefix, "base_layers", len(_layers(base)))


def layers_reused(prefix: str, old: str, new: str, base: str) -> None:
    """Report how many of OLD's layers NEW starts with, and whether that includes the torch layer.

    The torch layer is the second layer after the base image's, because the
    Dockerfiles create the user and the venv in one step, then install it.
    """
    old_layers, new_layers = _layers(old), _layers(new)
    reused = _common_prefix(old_layers, new_layers)
    torch_layer = len(_layers(base)) + 1
    emit(prefix, "layers_reused", reused)
    emit(prefix, "layers", len(new_layers))
    emit(prefix, "torch_layer_reused", int(reused > torch_layer))


def _state(container: str) -> dict:
    return json.loads(docker("inspect", "--format", "{{json .State}}", container))


def _first_healthy(state: dict) -> float | None:
    """Return when the first passing health check ended, from the last checks Docker keeps."""
    health = state.get("Health") or {}
    if health.get("Status") != "healthy":
        return None
    passed = [parse_time(entry["End"]) for entry in health.get("Log", []) if entry.get("ExitCode") == 0]
    return min(passed) if passed else None


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310  (main accepts only http:// URLs)
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def wait_healthy(prefix: str, up_started: float, train: str, serve: str, url: str, timeout: float) -> None:
    """Poll until the serve container is healthy, then report the times from `up` and from training's end."""
    deadline = time.monotonic() + timeout
    http_ok_at = None
    healthy_at = None
    while healthy_at is None:
        if time.monotonic() > deadline:
            status = (_state(serve).get("Health") or {}).get("Status")
            raise SystemExit(f"error: serve not healthy {timeout:.0f} s after `up` (health status: {status})")
        if http_ok_at is None and _http_ok(url):
            http_ok_at = time.time()
        state = _state(serve)
        if not state.get("Running"):
            raise SystemExit(f"error: the serve container stopped (exit code {state.get('ExitCode')})")
        healthy_at = _first_healthy(state)
        time.sleep(0.1)

    train_state = _state(train)
    train_started, train_finished = parse_time(train_state["StartedAt"]), parse_time(train_state["FinishedAt"])
    serve_started = parse_time(_state(serve)["StartedAt"])
    emit(prefix, "up_to_healthy_seconds", healthy_at - up_started)
    emit(prefix, "train_container_seconds", train_finished - train_started)
    emit(prefix, "serve_start_to_healthy_seconds", healthy_at - serve_started)
    emit(prefix, "train_finished_to_healthy_seconds", healthy_at - train_finished)
    if http_ok_at is not None:
        emit(prefix, "serve_start_to_http_ok_seconds", http_ok_at - serve_started)


def flatten(prefix: str, data: dict) -> None:
    for key, value in data.items():
        if isinstance(value, dict):
            flatten(f"{prefix}.{key}", value)
        elif value is not None:
            emit(prefix, key, value)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("build-log", help="step times and downloads from BuildKit plain progress")
    command.add_argument("prefix")
    command.add_argument("logs", type=Path, nargs="+")
    command = commands.add_parser("image-sizes", help="image bytes, shared layers counted once")
    command.add_argument("prefix")
    command.add_argument("train")
    command.add_argument("serve")
    command.add_argument("base")
    command = commands.add_parser("layers-reused", help="how much of OLD's layer stack NEW reuses")
    command.add_argument("prefix")
    command.add_argument("old")
    command.add_argument("new")
    command.add_argument("base")
    command = commands.add_parser("wait-healthy", help="wait for a healthy serve and report the times")
    command.add_argument("prefix")
    command.add_argument("--up-started", type=float, required=True, help="epoch seconds when `up` started")
    command.add_argument("--train", required=True, help="train container id")
    command.add_argument("--serve", required=True, help="serve container id")
    command.add_argument("--url", required=True, help="health URL polled from the host")
    command.add_argument("--timeout", type=float, default=300, help="seconds to wait after `up` [300]")
    command = commands.add_parser("flatten", help="a JSON object on stdin as key/value lines")
    command.add_argument("prefix")
    commands.add_parser("free-port", help="print a free TCP port on 127.0.0.1")
    args = parser.parse_args(argv)

    if args.command == "build-log":
        build_log(args.prefix, args.logs)
    elif args.command == "image-sizes":
        image_sizes(args.prefix, args.train, args.serve, args.base)
    elif args.command == "layers-reused":
        layers_reused(args.prefix, args.old, args.new, args.base)
    elif args.command == "wait-healthy":
        if not args.url.startswith("http://"):
            parser.error(f"--url {args.url!r} is invalid: expected an http:// address")
        wait_healthy(args.prefix, args.up_started, args.train, args.serve, args.url, args.timeout)
    elif args.command == "flatten":
        flatten(args.prefix, json.load(sys.stdin))
    else:
        print(free_port())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
