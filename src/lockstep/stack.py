"""Describe, prove and compare the Python stack an image runs.

Each image runs `build` once, at build time, from a bind mount and before any
project code is copied, so this module needs only the standard library until
it imports torch to prove the stack:

    python stack.py build --lock LOCK --expect-lock-sha256 SHA --output stack.json
    python -m lockstep.stack show                  # this image's manifest
    python -m lockstep.stack diff A.json B.json    # exit 1 and list what differs

The manifest (schema lockstep.stack/1) holds every installed distribution and
its version, the lock's sha256, the Python version and platform, and torch's
build tag. Checkpoints carry the training image's manifest; the serving app,
the smoke test and scripts/check-parity compare manifests with `diff`.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import platform
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

try:
    from lockstep import lockfile
except ImportError:  # run as a file at build time, with lockfile.py beside it
    import lockfile  # type: ignore[no-redef]

SCHEMA = "lockstep.stack/1"
MANIFEST_PATH = Path("/opt/lockstep/stack.json")

# Installed by `python -m venv` itself rather than from the lock.
VENV_SEED = frozenset({"pip"})


class StackError(RuntimeError):
    """The installed stack does not match the lock, or fails to run."""


@dataclass(frozen=True)
class Difference:
    field: str  # "python", "torch.build", or "distribution NAME"
    expected: str | None  # None: absent on that side
    actual: str | None


def installed_distributions() -> dict[str, str]:
    """Return {normalised name: version} for every distribution on sys.path."""
    found = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found[lockfile.normalize(name)] = dist.version
    return dict(sorted(found.items()))


def torch_build() -> dict[str, str | None]:
    import torch

    if torch.version.cuda:
        build = f"cuda{torch.version.cuda}"
    elif getattr(torch.version, "hip", None):
        build = f"rocm{torch.version.hip}"
    else:
        build = "cpu"
    return {"version": torch.__version__, "cuda": torch.version.cuda, "build": build}


def describe(lock_text: str) -> dict:
    """Return the manifest of the running interpreter's stack."""
    return {
        "schema": SCHEMA,
        "python": platform.python_version(),
        "platform": sysconfig.get_platform(),
        "lock_sha256": hashlib.sha256(lock_text.encode()).hexdigest(),
        "torch": torch_build(),
        "distributions": installed_distributions(),
    }


def check_matches_lock(installed: dict[str, str], lock_text: str) -> None:
    """Raise StackError unless the installed distributions are exactly the lock's pins."""
    pinned = {pin.name: pin.version for pin in lockfile.parse_pins(lock_text)}
    extra = {name: version for name, version in installed.items() if name not in pinned and name not in VENV_SEED}
    problems = [
        f"{name}: locked {version}, installed {installed.get(name, 'nothing')}"
        for name, version in pinned.items()
        if installed.get(name) != version
    ]
    problems += [f"{name}=={version}: installed but not in the lock" for name, version in extra.items()]
    if problems:
        raise StackError("the installed stack differs from requirements/lock.txt:\n  " + "\n  ".join(problems))


def prove() -> list[str]:
    """Run one real op each from torch, torchvision's compiled ops and torchaudio; return what ran."""
    import torch
    import torchaudio
    import torchvision

    generator = torch.Generator().manual_seed(0)
    matrix = torch.randn(64, 64, generator=generator)
    gram = matrix @ matrix.T
    if not torch.allclose(gram, gram.T, atol=1e-4):
        raise StackError("torch: a @ a.T is not symmetric; the BLAS in this image is broken")

    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    kept = torchvision.ops.nms(boxes, scores, iou_threshold=0.5).tolist()
    if kept != [0, 2]:
        raise StackError(f"torchvision: nms kept boxes {kept}, expected [0, 2]")

    # lfilter runs torchaudio's compiled extension on the CPU.
    signal = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    filtered = torchaudio.functional.lfilter(signal, torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.0]), clamp=False)
    if not torch.allclose(filtered, signal * 0.5):
        raise StackError(f"torchaudio: lfilter returned {filtered.tolist()}, expected half the input")

    return [
        f"torch {torch.__version__}: matmul",
        f"torchvision {torchvision.__version__}: ops.nms",
        f"torchaudio {torchaudio.__version__}: functional.lfilter",
    ]


def load_manifest(path: Path = MANIFEST_PATH) -> dict:
    """Read a manifest written by `build`; raise StackError when it is missing or of another schema."""
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise StackError(f"no stack manifest at {path}; is this a lockstep image?") from None
    except (OSError, json.JSONDecodeError) as error:
        raise StackError(f"cannot read the stack manifest {path}: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise StackError(f"{path} is not a {SCHEMA} manifest")
    return manifest


def manifest_problem(manifest: object) -> str | None:
    """Return what makes a recorded manifest unusable for a diff, or None when its shape is sound."""
    if not isinstance(manifest, dict):
        return f"is a {type(manifest).__name__}, not a dict"
    for field in ("python", "platform", "lock_sha256"):
        if not isinstance(manifest.get(field), str | None):
            return f"has a {field} that is not text: {manifest[field]!r}"
    torch = manifest.get("torch")
    if not (torch is None or (isinstance(torch, dict) and all(isinstance(v, str | None) for v in torch.values()))):
        return f"has a torch record that is not a mapping of text: {torch!r}"
    distributions = manifest.get("distributions")
    if not (
        isinstance(distributions, dict)
        and all(isinstance(name, str) and isinstance(version, str) for name, version in distributions.items())
    ):
        return "has no distributions mapping names to versions"
    return None


def diff(expected: dict, actual: dict) -> list[Difference]:
    """List what differs between two manifests: Python, platform, lock, torch build, each distribution."""
    differences = []
    for field in ("python", "platform", "lock_sha256"):
        if expected.get(field) != actual.get(field):
            differences.append(Difference(field, expected.get(field), actual.get(field)))
    expected_torch, actual_torch = expected.get("torch") or {}, actual.get("torch") or {}
    if expected_torch.get("build") != actual_torch.get("build"):
        differences.append(Difference("torch.build", expected_torch.get("build"), actual_torch.get("build")))
    expected_dists, actual_dists = expected.get("distributions") or {}, actual.get("distributions") or {}
    for name in sorted(set(expected_dists) | set(actual_dists)):
        if expected_dists.get(name) != actual_dists.get(name):
            differences.append(Difference(f"distribution {name}", expected_dists.get(name), actual_dists.get(name)))
    return differences


def format_diff(differences: list[Difference], expected_label: str, actual_label: str) -> str:
    """Render differences as an aligned table, one row per field or package."""
    rows = [("", expected_label, actual_label)]
    rows += [(d.field, d.expected or "(absent)", d.actual or "(absent)") for d in differences]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _build(args: argparse.Namespace) -> int:
    lock_text = args.lock.read_text()
    lock_sha256 = hashlib.sha256(lock_text.encode()).hexdigest()
    if args.expect_lock_sha256 != lock_sha256:
        raise StackError(
            f"the build argument LOCK_SHA256={args.expect_lock_sha256} does not match requirements/lock.txt "
            f"(sha256 {lock_sha256}); run scripts/lock, which writes the lock's facts into both Dockerfiles"
        )
    lockfile.check_python(lock_text)
    check_matches_lock(installed_distributions(), lock_text)

    pip_check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    if pip_check.returncode != 0:
        raise StackError(f"pip check failed:\n{pip_check.stdout}{pip_check.stderr}")

    for line in prove():
        print(f"stack proof: {line}")
    manifest = describe(lock_text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(
        f"stack manifest: {len(manifest['distributions'])} distributions, torch {manifest['torch']['build']}, "
        f"Python {manifest['python']}, lock {lock_sha256[:12]} -> {args.output}"
    )
    return 0


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="check the stack against the lock, prove it, write the manifest")
    build.add_argument("--lock", type=Path, required=True, help="the lock the image was built from")
    build.add_argument("--expect-lock-sha256", required=True, help="the LOCK_SHA256 build argument")
    build.add_argument("--output", type=Path, required=True, help="where to write the manifest")
    show = commands.add_parser("show", help="print a manifest")
    show.add_argument("path", type=Path, nargs="?", default=MANIFEST_PATH, help=f"default: {MANIFEST_PATH}")
    compare = commands.add_parser("diff", help="compare two manifests; exit 1 when they differ")
    compare.add_argument("expected", type=Path)
    compare.add_argument("actual", type=Path)
    args = parser.parse_args(argv)

    try:
        if args.command == "build":
            return _build(args)
        if args.command == "show":
            print(json.dumps(load_manifest(args.path), indent=2, sort_keys=True))
            return 0
        differences = diff(load_manifest(args.expected), load_manifest(args.actual))
        if differences:
            print(format_diff(differences, str(args.expected), str(args.actual)))
            return 1
        print("stacks are identical")
        return 0
    except (OSError, lockfile.LockError, StackError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
