"""The top of the page: run picker, messages that stop the page, model summary, stack parity."""

from __future__ import annotations

import contextlib
import re
from datetime import datetime
from pathlib import Path

import pandas as pd
import streamlit as st

from lockstep import checkpoint, stack

TRAIN_COMMAND = "docker compose run --rm train"
# Beyond this many classes the summary names the first few and the model card lists them all.
SUMMARY_CLASSES = 12


def final_metrics(metadata: dict) -> dict:
    """Return the last epoch's metrics, or {} for runs that recorded none."""
    # The run picker reads every run's metadata.json, which nothing validates, so any type can appear here.
    metrics = metadata.get("metrics")
    if isinstance(metrics, list) and metrics and isinstance(metrics[-1], dict):
        return metrics[-1]
    return {}


def format_created(metadata: dict, layout: str = "%Y-%m-%d %H:%M UTC") -> str:
    created = metadata.get("created_at") or "unknown"
    with contextlib.suppress(ValueError):
        created = datetime.fromisoformat(created).strftime(layout)
    return created


def describe_data(data: dict) -> str:
    """Name the training data in a few words: its kind and how many images."""
    count = data.get("train_images")
    images = f"{count:,} " if isinstance(count, int) else ""
    if data.get("kind") == "generated":
        return f"{images}generated images"
    if data.get("kind") == "folder":
        return f"{images}images from `{data.get('path', 'a data folder')}`"
    return data.get("description", "unrecorded data")


@st.cache_data(show_spinner=False, max_entries=256)
def _run_label(run_dir: str, is_latest: bool) -> str:
    """Label a run with the time it finished and its accuracy, short enough for the sidebar."""
    # Cached per run folder: finished runs never change, and the picker reads every run's metadata.json.
    run_id = Path(run_dir).name
    try:
        label = datetime.strptime(run_id[:16], "%Y%m%dT%H%M%SZ").strftime("%Y-%m-%d %H:%M")
    except ValueError:
        label = run_id
    try:
        metadata = checkpoint.read_metadata(Path(run_dir))
    except (OSError, ValueError):
        metadata = None
    if not isinstance(metadata, dict):
        label += " · metadata unreadable"
    elif isinstance(accuracy := final_metrics(metadata).get("val_accuracy"), float):
        label += f" · acc {accuracy:.1%}"
    return label + (" · latest" if is_latest else "")


def run_picker(checkpoint_dir: Path, runs: list[str], latest: str | None) -> str:
    """Let the user pick a run in the sidebar, with the run that `latest` points at as the default."""
    index = runs.index(latest) if latest in runs else 0
    with st.sidebar:
        st.header("Run")
        chosen = st.selectbox(
            "Checkpoint run",
            runs,
            index=index,
            key="run",
            format_func=lambda run_id: _run_label(str(checkpoint_dir / "runs" / run_id), run_id == latest),
            help="Each training run is saved in its own folder, labelled here with the time it finished (UTC) "
            "and its validation accuracy. `latest` marks the newest finished run, which is not always the best one.",
        )
        st.caption(
            f"{len(runs)} {'run' if len(runs) == 1 else 'runs'} in `{checkpoint_dir / 'runs'}`. `{TRAIN_COMMAND}` "
            "adds one; reload the page to see it."
        )
    return chosen


def plain(text: str) -> str:
    """Escape the Markdown characters that format text mid-line, so that a user's file name shows as written."""
    return re.sub(r"([\\`*_\[\]<>|~$])", r"\\\1", text)


def _literal(text: str) -> str:
    """Escape Markdown outside `code spans`, so that names such as __main__ or *.pt show as written."""
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unmatched backtick: escape everything
        parts = [text]
    escaped = [
        part if index % 2 else re.sub(r"([\\*_{}\[\]<>#|~$])", r"\\\1", part) for index, part in enumerate(parts)
    ]
    return "`".join(escaped)


def show_no_checkpoint(checkpoint_dir: Path) -> None:
    st.error(
        f"No trained model yet: `{checkpoint_dir}` contains no finished run. "
        f"Train one with `{TRAIN_COMMAND}`, then reload this page."
    )
    st.code(TRAIN_COMMAND, language="bash")
    st.caption(
        "`docker compose up` trains before it serves, so this page appears only when the app runs "
        "without a finished training, or LOCKSTEP_CHECKPOINT_DIR points elsewhere."
    )


def show_broken_checkpoint(run_dir: Path, error: checkpoint.CheckpointError) -> None:
    """Explain why a run's checkpoint does not load: what the file is, the likely cause and the fix."""
    diagnosis = error.diagnosis
    if diagnosis is None:
        st.error(f"The checkpoint in `{run_dir}` does not load: {_literal(str(error))}")
        return
    st.error(f"The checkpoint in `{run_dir}` does not load. It is {_literal(diagnosis.what)}.")
    if diagnosis.cause:
        st.markdown(f"**Likely cause:** {_literal(diagnosis.cause)}")
    if diagnosis.fix:
        st.markdown(f"**Fix:** {_literal(diagnosis.fix)}")
    for note in diagnosis.notes:
        st.caption(_literal(note))
    st.caption(
        f"Diagnosis by the checkpoint doctor (kind `{diagnosis.kind}`). The same diagnosis from a shell: "
        f"`docker compose run --rm --no-deps serve python -m lockstep.doctor {diagnosis.path}`."
    )
    st.info(f"Pick another run in the sidebar, or train a new one with `{TRAIN_COMMAND}`.")


def show_invalid_metadata(run_dir: Path, error: Exception) -> None:
    st.error(
        f"The checkpoint in `{run_dir}` does not load: its metadata does not describe a model this code "
        f"can rebuild ({type(error).__name__}: {error}). Pick another run in the sidebar, or train a new "
        f"one with `{TRAIN_COMMAND}`."
    )


def show_summary(loaded: checkpoint.Checkpoint, is_latest: bool) -> None:
    """Say what the model is and how good it is, before any input."""
    meta = loaded.metadata
    size = loaded.preprocessing.image_size
    classes = loaded.classes
    named = ", ".join(classes[:SUMMARY_CLASSES]) + (
        f" and {len(classes) - SUMMARY_CLASSES} more" if len(classes) > SUMMARY_CLASSES else ""
    )
    parameters = sum(parameter.numel() for parameter in loaded.model.parameters())
    data = meta.get("data") or {}
    st.markdown(
        f"Serving run `{meta.get('run_id', loaded.run_dir.name)}`{' (latest)' if is_latest else ''}: "
        f"a {(meta.get('architecture') or {}).get('name', 'model')} with {parameters:,} parameters that sorts "
        f"{size}x{size} RGB images into {len(classes)} classes ({named}), trained on {describe_data(data)}."
    )

    final = final_metrics(meta)
    training = meta.get("training") or {}
    accuracy, count, trained, duration = st.columns(4)
    val_accuracy = final.get("val_accuracy")
    accuracy.metric(
        "Validation accuracy",
        f"{val_accuracy:.1%}" if isinstance(val_accuracy, float) else "not recorded",
        help=f"Share of the {data.get('val_images', '?')} held-out validation images classified "
        "correctly after the last epoch.",
    )
    count.metric("Classes", len(classes))
    trained.metric(
        "Trained",
        format_created(meta, "%Y-%m-%d"),
        help=f"Finished {format_created(meta)} on {training.get('device', 'an unrecorded device')}.",
    )
    seconds = training.get("seconds")
    duration.metric(
        "Training time",
        f"{seconds:.0f} s" if isinstance(seconds, int | float) else "not recorded",
        help=f"{len(meta.get('metrics') or [])} epochs, from reading or generating the data to the last "
        "evaluation; saving the checkpoint is not counted.",
    )


def show_parity(trained_with: dict | None, serving: dict | None) -> None:
    """Say whether the serving stack is the training stack, with the diff one click away when not."""
    if not trained_with:
        st.warning(
            "Stack parity unknown: the checkpoint records no training stack. "
            f"Train in the lockstep training image (`{TRAIN_COMMAND}`) to record it."
        )
        return
    if not serving:
        st.warning(
            f"Stack parity unknown: this image has no stack manifest at `{stack.MANIFEST_PATH}`. "
            "Run the app in the serving image built from Dockerfile.serve."
        )
        return
    differences = stack.diff(trained_with, serving)
    if not differences:
        st.success(
            f"Stack parity: this image runs the stack the model was trained with: "
            f"{len(serving['distributions'])} packages, torch {serving['torch']['version']} "
            f"({serving['torch']['build']}), Python {serving['python']}, lock {serving['lock_sha256'][:12]}."
        )
        return
    st.warning(
        f"Stack parity: this image's stack differs from the training stack in {len(differences)} place(s), "
        "so predictions may differ from those measured in training. Rebuild both images from one lock "
        "(`docker compose build`) and train again."
    )
    with st.expander(f"Show the package-by-package diff ({len(differences)})"):
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "what": difference.field,
                        "training image": difference.expected or "(absent)",
                        "this image": difference.actual or "(absent)",
                    }
                    for difference in differences
                ]
            ),
            hide_index=True,
            width="stretch",
        )
