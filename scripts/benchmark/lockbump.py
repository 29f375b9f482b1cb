"""Lock-file helpers for the light-package bump in scripts/bench, which runs them on a copy of the repository.

    lockbump.py diff PREFIX OLD NEW          which pins changed, and whether any of them is in the torch layer
    lockbump.py mark LOCK PACKAGE TOKEN      add a comment line with TOKEN to PACKAGE's entry in LOCK

`mark` makes each benchmark run's lock unique: BuildKit keys the install
layer by the content of the lock's light part, so without it a second run
would find the layer that the first run built from the same bumped lock.
pip ignores the comment.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from lockstep.lockfile import LockError, is_heavy, normalize, parse_pins


def diff(prefix: str, old: Path, new: Path) -> None:
    before = {pin.name: pin.version for pin in parse_pins(old.read_text())}
    after = {pin.name: pin.version for pin in parse_pins(new.read_text())}
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    described = [f"{name} {before.get(name, '(none)')} -> {after.get(name, '(none)')}" for name in changed]
    print(f"{prefix}.pins_changed\t{len(changed)}")
    print(f"{prefix}.changes\t{', '.join(described) or '(none)'}")
    print(f"{prefix}.heavy_pins_changed\t{sum(is_heavy(name) for name in changed)}")


def mark(lock: Path, package: str, token: str) -> None:
    text = lock.read_text()
    blocks = [pin.block for pin in parse_pins(text) if pin.name == normalize(package)]
    if not blocks:
        raise LockError(f"{lock} pins no {package}; pick a package that the lock contains")
    # Indented, the comment stays inside the package's entry, which is what
    # `lockfile.py split` copies into the layer's requirements file.
    block = blocks[0].rstrip("\n")
    lock.write_text(text.replace(block, f"{block}\n    # scripts/bench run {token}", 1))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("diff", help="which pins changed between two locks")
    command.add_argument("prefix")
    command.add_argument("old", type=Path)
    command.add_argument("new", type=Path)
    command = commands.add_parser("mark", help="add a comment line with TOKEN to PACKAGE's entry")
    command.add_argument("lock", type=Path)
    command.add_argument("package")
    command.add_argument("token")
    args = parser.parse_args(argv)
    try:
        if args.command == "diff":
            diff(args.prefix, args.old, args.new)
        else:
            mark(args.lock, args.package, args.token)
    except (OSError, LockError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
