"""Compare the stacks of two built images; scripts/check-parity runs this on the host.

    PYTHONPATH=src python3 -m lockstep.parity TRAIN_IMAGE SERVE_IMAGE

Each image's manifest (/opt/lockstep/stack.json) is read with
`docker run --rm --network none`, and its labels with `docker image inspect`.
The two manifests are compared with lockstep.stack.diff (Python, platform,
lock sha256, torch build, every distribution), then the stack labels of the
two images, then each image's labels against its own manifest.
Needs only the standard library and the docker CLI, no torch.
Exit status: 0 when the stacks are identical, 1 when they differ, 2 when an
image cannot be read.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass

from lockstep import stack

# The labels that state the stack. Title, description and the OCI labels
# differ between the two images by design, so they are not compared.
STACK_LABELS = (
    "dev.lockstep.project",
    "dev.lockstep.lock.sha256",
    "dev.lockstep.torch.version",
    "dev.lockstep.python.version",
)


class ParityError(RuntimeError):
    """An image cannot be inspected or contains no readable manifest."""


@dataclass(frozen=True)
class ImageStack:
    image: str
    labels: dict[str, str]
    manifest: dict


def _docker(*args: str) -> str:
    try:
        result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300)
    except FileNotFoundError:
        raise ParityError("docker not found; install Docker Engine") from None
    if result.returncode != 0:
        raise ParityError(f"`docker {' '.join(args)}` failed: {result.stderr.strip()}")
    return result.stdout


def read_image_stack(image: str) -> ImageStack:
    """Read an image's labels and its stack manifest, without network access or pulling."""
    try:
        inspected = json.loads(_docker("image", "inspect", image))
    except ParityError as error:
        raise ParityError(
            f"image {image} not found ({error}); build it with scripts/build, or set IMAGE_NAMESPACE and IMAGE_TAG"
        ) from None
    labels = inspected[0]["Config"].get("Labels") or {}
    output = _docker(
        "run", "--rm", "--pull", "never", "--network", "none", "--entrypoint", "cat", image, str(stack.MANIFEST_PATH)
    )
    try:
        manifest = json.loads(output)
    except json.JSONDecodeError as error:
        raise ParityError(f"{stack.MANIFEST_PATH} in {image} is not JSON ({error}); rebuild the image") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != stack.SCHEMA:
        raise ParityError(f"{stack.MANIFEST_PATH} in {image} is not a {stack.SCHEMA} manifest; rebuild the image")
    return ImageStack(image, labels, manifest)


def compare(expected: ImageStack, actual: ImageStack) -> list[stack.Difference]:
    """Return the differences between two images: their manifests first, then their stack labels."""
    differences = stack.diff(expected.manifest, actual.manifest)
    for label in STACK_LABELS:
        if expected.labels.get(label) != actual.labels.get(label):
            differences.append(stack.Difference(f"label {label}", expected.labels.get(label), actual.labels.get(label)))
    return differences


def check_labels_against_manifest(image: ImageStack) -> list[str]:
    """Return one line per stack label that disagrees with the image's own manifest."""
    manifest = image.manifest
    # torch.__version__ carries a local build tag ("2.14.1+cu130"); the label holds the lock's pin.
    torch_version = str((manifest.get("torch") or {}).get("version", "")).split("+")[0]
    python_minor = ".".join(str(manifest.get("python", "")).split(".")[:2])
    stated = {
        "dev.lockstep.lock.sha256": manifest.get("lock_sha256"),
        "dev.lockstep.torch.version": torch_version,
        "dev.lockstep.python.version": python_minor,
    }
    return [
        f"{image.image}: label {label}={image.labels.get(label)!r}, but its manifest says {value!r}"
        for label, value in stated.items()
        if image.labels.get(label) != value
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lockstep.parity", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("train_image", help="the training image, e.g. lockstep/train:local")
    parser.add_argument("serve_image", help="the serving image, e.g. lockstep/serve:local")
    args = parser.parse_args(argv)

    try:
        train = read_image_stack(args.train_image)
        serve = read_image_stack(args.serve_image)
    except ParityError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    differences = compare(train, serve)
    mislabelled = check_labels_against_manifest(train) + check_labels_against_manifest(serve)
    if differences:
        print(stack.format_diff(differences, train.image, serve.image))
    for line in mislabelled:
        print(line)
    if differences or mislabelled:
        print(
            f"error: {train.image} and {serve.image} do not hold the same stack (listed above); rebuild both "
            "from one commit of requirements/lock.txt with scripts/build",
            file=sys.stderr,
        )
        return 1

    manifest = train.manifest
    print(
        f"Parity: {train.image} and {serve.image} hold the same stack: {len(manifest['distributions'])} "
        f"distributions, torch {manifest['torch']['build']}, Python {manifest['python']}, "
        f"lock {manifest['lock_sha256'][:12]}; their stack labels agree"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
