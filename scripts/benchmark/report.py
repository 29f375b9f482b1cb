"""Turn the figures scripts/bench collected into a table and a JSON file, and check the targets.

    report.py FACTS --output JSON

FACTS contains `key<TAB>value` lines such as `cold.seconds<TAB>245.3`; dotted
keys become nested objects in the JSON. Keys under `meta.` describe the run
(commit, machine, settings) and go to the top level. Targets whose figures
the run did not measure are reported as n/a, never as passed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SCHEMA_VERSION = 1
# Plain decimals only, so that float() does not read a hash such as 5946e05 as 5946 * 10**5.
_INTEGER = re.compile(r"-?\d+")
_DECIMAL = re.compile(r"-?\d+\.\d+")
# The run's description is text, whatever it looks like (a commit hash may be all digits), except these.
NUMERIC_META = frozenset({"meta.cpus", "meta.load_average_start", "meta.load_average_end", "meta.completed"})


def parse_value(key: str, text: str) -> object:
    if key.startswith("meta.") and key not in NUMERIC_META:
        return text
    if _INTEGER.fullmatch(text):
        return int(text)
    if _DECIMAL.fullmatch(text):
        return float(text)
    return text


def read_facts(path: Path) -> dict:
    """Return the nested figures from key/value lines. A later line for the same key wins."""
    nested: dict = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        key, separator, value = line.partition("\t")
        if not separator:
            raise ValueError(f"{path}:{number}: expected KEY<TAB>VALUE, found {line!r}")
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = parse_value(key, value)
    return nested


def lookup(figures: dict, key: str) -> object:
    node: object = figures
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def ratio(numerator: str, denominator: str) -> Callable[[dict], float | None]:
    def measure(figures: dict) -> float | None:
        top, bottom = lookup(figures, numerator), lookup(figures, denominator)
        if not isinstance(top, int | float) or not isinstance(bottom, int | float) or bottom <= 0:
            return None
        return top / bottom

    return measure


def together_over_larger(figures: dict) -> float | None:
    sizes = [lookup(figures, f"size.{key}") for key in ("together_bytes", "train_bytes", "serve_bytes")]
    if not all(isinstance(size, int) for size in sizes):
        return None
    return sizes[0] / max(sizes[1], sizes[2])


def image_over_base_and_venv(image: str) -> Callable[[dict], float | None]:
    def measure(figures: dict) -> float | None:
        size = lookup(figures, f"size.{image}_bytes")
        base = lookup(figures, "size.base_bytes")
        venv = lookup(figures, f"size.venv_bytes.{image}")
        if not all(isinstance(value, int) for value in (size, base, venv)):
            return None
        return size / (base + venv)

    return measure


def figure(key: str) -> Callable[[dict], float | None]:
    def measure(figures: dict) -> float | None:
        value = lookup(figures, key)
        return value if isinstance(value, int | float) else None

    return measure


@dataclass(frozen=True)
class Target:
    name: str
    measure: Callable[[dict], float | None]
    limit: float
    unit: str  # "%" or "x": a ratio shown in percent or as a factor. "s": seconds. "bool": 1 passes, 0 fails.

    def check(self, figures: dict) -> dict:
        value = self.measure(figures)
        if value is None:
            status = "n/a"
        elif self.unit == "bool":
            status = "PASS" if value == 1 else "FAIL"
        else:
            status = "PASS" if value <= self.limit else "FAIL"
        return {"name": self.name, "value": value, "limit": self.limit, "unit": self.unit, "status": status}


TARGETS = [
    Target("rebuild after editing app/ <= 3 % of cold build", ratio("rebuild.app.seconds", "cold.seconds"), 0.03, "%"),
    Target(
        "rebuild after editing train/ <= 3 % of cold build", ratio("rebuild.train.seconds", "cold.seconds"), 0.03, "%"
    ),
    Target(
        "rebuild after a light package bump <= 20 % of cold build",
        ratio("rebuild.bump.seconds", "cold.seconds"),
        0.20,
        "%",
    ),
    Target("both images together <= 1.01 x the larger", together_over_larger, 1.01, "x"),
    Target("training image <= 1.02 x (base image + venv)", image_over_base_and_venv("train"), 1.02, "x"),
    Target("serving image <= 1.02 x (base image + venv)", image_over_base_and_venv("serve"), 1.02, "x"),
    Target("serve healthy <= 15 s after training finished", figure("run.train_finished_to_healthy_seconds"), 15, "s"),
    Target("first prediction <= 2 s after the page opens", figure("browser.page_open_to_prediction_seconds"), 2, "s"),
    Target("doctor diagnoses the whole test corpus <= 1 s", figure("doctor.total_seconds"), 1, "s"),
    Target("editing app/ leaves the training image as it was", figure("rebuild.app.train_unchanged"), 1, "bool"),
    Target("editing train/ leaves the serving image as it was", figure("rebuild.train.serve_unchanged"), 1, "bool"),
    Target("a light package bump keeps the torch layer", figure("rebuild.bump.torch_layer_reused"), 1, "bool"),
]


def show_seconds(value: object) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def show_bytes(value: object) -> str:
    # Decimal units, as `docker images` prints them.
    if not isinstance(value, int):
        return "-"
    if value >= 1e9:
        return f"{value / 1e9:.2f} GB"
    return f"{value / 1e6:.1f} MB" if value >= 1e6 else f"{value} B"


def show_milliseconds(value: object) -> str:
    return f"{value:.1f} ms" if isinstance(value, int | float) else "-"


def show_target_value(result: dict) -> str:
    value = result["value"]
    if value is None:
        return "-"
    if result["unit"] == "%":
        return f"{value:.1%}"
    if result["unit"] == "x":
        return f"{value:.4f} x"
    if result["unit"] == "s":
        return f"{value:.1f} s"
    return "yes" if value == 1 else "no"


def yes_no(value: object) -> str:
    return {1: "yes", 0: "no"}.get(value, "-")


def text(value: object) -> str:
    return "-" if value is None else str(value)


def rows(figures: dict) -> list[tuple[str, str, str]]:
    """Return (label, value, note) for every figure of the table, grouped under section headers."""

    def get(key: str) -> object:
        return lookup(figures, key)

    bump = get("rebuild.bump.changes") or "a light package"
    table = [
        ("Build", "", ""),
        (
            "cold build, both images",
            show_seconds(get("cold.seconds")),
            f"torch layer {show_seconds(get('cold.build.torch_layer_seconds'))}, "
            f"large libraries {show_seconds(get('cold.build.libraries_layer_seconds'))}, "
            f"rest of the lock {show_seconds(get('cold.build.rest_of_lock_seconds'))}, "
            f"lockstep-pip cache mount afterwards {show_bytes(get('cold.pip_cache_bytes_after'))}",
        ),
        (
            "rebuild with nothing changed",
            show_seconds(get("rebuild.unchanged.seconds")),
            f"torch layer from the cache: {yes_no(get('rebuild.unchanged.build.torch_layer_cached'))}",
        ),
        (
            "rebuild after editing app/",
            show_seconds(get("rebuild.app.seconds")),
            f"training image unchanged: {yes_no(get('rebuild.app.train_unchanged'))}",
        ),
        (
            "rebuild after editing train/",
            show_seconds(get("rebuild.train.seconds")),
            f"serving image unchanged: {yes_no(get('rebuild.train.serve_unchanged'))}",
        ),
        (
            "rebuild after a light package bump",
            show_seconds(get("rebuild.bump.seconds")),
            f"{bump}; torch layer kept: {yes_no(get('rebuild.bump.torch_layer_reused'))}; "
            f"wheels downloaded: {text(get('rebuild.bump.build.wheels_downloaded'))}",
        ),
        ("Size", "", ""),
        ("training image", show_bytes(get("size.train_bytes")), f"{text(get('size.train_layers'))} layers"),
        ("serving image", show_bytes(get("size.serve_bytes")), f"{text(get('size.serve_layers'))} layers"),
        (
            "both images together",
            show_bytes(get("size.together_bytes")),
            f"{text(get('size.shared_layers'))} shared layers counted once",
        ),
        ("base image", show_bytes(get("size.base_bytes")), ""),
        ("installed venv (/opt/venv)", show_bytes(get("size.venv_bytes.serve")), "du -sb in the serving image"),
        ("Run", "", ""),
        ("docker compose up to a healthy serve", show_seconds(get("run.up_to_healthy_seconds")), "training included"),
        (
            "training, from metadata.json",
            show_seconds(get("predict.serve.training_seconds")),
            "training.seconds of the run served",
        ),
        ("training container, start to exit", show_seconds(get("run.train_container_seconds")), ""),
        (
            "serve start to healthy",
            show_seconds(get("run.serve_start_to_healthy_seconds")),
            f"first HTTP 200 from /_stcore/health: {show_seconds(get('run.serve_start_to_http_ok_seconds'))}",
        ),
        ("training finished to serve healthy", show_seconds(get("run.train_finished_to_healthy_seconds")), ""),
    ]
    for image, label in (("serve", "serving"), ("train", "training")):
        table += [
            (
                f"first prediction, {label} image",
                show_seconds(get(f"predict.{image}.process_start_to_first_prediction_seconds")),
                f"process start to result: import {show_seconds(get(f'predict.{image}.import_seconds'))}, "
                f"load {show_seconds(get(f'predict.{image}.load_seconds'))}",
            ),
            (
                f"latency p50 / p95, {label} image",
                f"{show_milliseconds(get(f'predict.{image}.latency_p50_ms'))} / "
                f"{show_milliseconds(get(f'predict.{image}.latency_p95_ms'))}",
                f"one image per call, CPU, {text(get(f'predict.{image}.torch_threads'))} threads, "
                f"{text(get(f'predict.{image}.predictions'))} calls",
            ),
        ]
    skipped = get("browser.skipped")
    table.append(
        (
            "browser: page open to first prediction",
            show_seconds(get("browser.page_open_to_prediction_seconds")),
            f"skipped: {skipped}"
            if skipped
            else f"headless Chromium, first visit (empty cache): sample button after "
            f"{show_seconds(get('browser.page_open_to_sample_button_seconds'))}, one click on it",
        )
    )
    if not skipped:
        table.append(
            (
                "browser: repeat visit, to prediction",
                show_seconds(get("browser.repeat_visit_page_open_to_prediction_seconds")),
                "same browser, Streamlit's frontend already in its cache",
            )
        )
    table += [
        ("Doctor", "", ""),
        (
            "doctor on the whole test corpus",
            show_seconds(get("doctor.total_seconds")),
            f"{text(get('doctor.files'))} files, fastest of {text(get('doctor.rounds'))} passes; slowest file: "
            f"{text(get('doctor.slowest_case'))}, {show_seconds(get('doctor.slowest_seconds'))}",
        ),
    ]
    return table


def render(figures: dict, meta: dict, targets: list[dict]) -> str:
    lines = [
        f"lockstep benchmark: commit {meta.get('commit', '?')}, {meta.get('started_at', '?')}, "
        f"{meta.get('cpus', '?')} CPUs, Docker {meta.get('docker_version', '?')}, "
        f"load average {meta.get('load_average_start', '?')} at start",
        "",
    ]
    if meta.get("completed") == 0:
        lines[1:1] = [f"INCOMPLETE: a part failed; parts requested: {meta.get('parts', '?')}"]
    section = None
    for label, value, note in rows(figures):
        if not value:
            section = label
        elif value.strip(" -/") or note.startswith("skipped"):
            # Figures of parts that did not run are left out; their targets show n/a below.
            if section:
                lines += ["", section] if lines[-1] else [section]
                section = None
            lines.append(f"  {label:<40} {value:>17}   {note}".rstrip())
    lines += ["Targets"] if not lines[-1] else ["", "Targets"]
    for result in targets:
        lines.append(f"  {result['status']:<5} {result['name']:<58} {show_target_value(result)}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("facts", type=Path, help="key/value lines collected by scripts/bench")
    parser.add_argument("--output", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args(argv)

    try:
        figures = read_facts(args.facts)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    meta = figures.pop("meta", {})
    targets = [target.check(figures) for target in TARGETS]
    document = {"schema_version": SCHEMA_VERSION, **meta, "figures": figures, "targets": targets}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    print(render(figures, meta, targets))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
