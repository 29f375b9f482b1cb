"""The parts of the page: run picker, parity banner, prediction, model card."""

from __future__ import annotations

import contextlib
import re
from datetime import datetime
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from lockstep import checkpoint, stack
from lockstep.data import SHAPES, draw_shape
from lockstep.predict import ImageError, Prediction, open_image, predict
from lockstep.settings import ServeSettings

UPLOAD_TYPES = ["png", "jpg", "jpeg", "bmp", "gif", "tif", "tiff", "webp"]
# Shown beside each input so that small model inputs stay visible.
PREVIEW_PIXELS = 160


def run_picker(runs: list[str], latest: str | None) -> str:
    """Let the user pick a run in the sidebar; the newest (the `latest` pointer) is the default."""
    labels = {run_id: f"{run_id} (latest)" if run_id == latest else run_id for run_id in runs}
    index = runs.index(latest) if latest in runs else 0
    with st.sidebar:
        st.header("Run")
        chosen = st.selectbox(
            "Checkpoint run",
            runs,
            index=index,
            format_func=labels.get,
            help="Training writes each run to its own folder; `latest` marks the newest.",
        )
        st.caption(f"{len(runs)} run(s) on the volume")
    return chosen


def _literal(text: str) -> str:
    """Escape Markdown outside `code spans`, so that names such as __main__ or *.pt show as written."""
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unmatched backtick: escape everything
        parts = [text]
    escaped = [
        part if index % 2 else re.sub(r"([\\*_{}\[\]<>#|~$])", r"\\\1", part) for index, part in enumerate(parts)
    ]
    return "`".join(escaped)


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
        f"`docker compose run --rm --no-deps serve python -m lockstep.doctor {diagnosis.path}`. "
        "Pick another run in the sidebar."
    )


def show_parity(trained_with: dict | None, serving: dict | None) -> None:
    """Say whether the serving stack is the training stack, with the diff one click away when not."""
    if not trained_with or not serving:
        missing = "the checkpoint records no training stack" if not trained_with else "this image has no manifest"
        st.warning(f"Stack parity unknown: {missing}.")
        return
    differences = stack.diff(trained_with, serving)
    if not differences:
        st.success(
            f"Stack parity: serving runs the training stack: {len(serving['distributions'])} packages, "
            f"torch {serving['torch']['version']} ({serving['torch']['build']}), Python {serving['python']}, "
            f"lock {serving['lock_sha256'][:12]}."
        )
        return
    st.warning(
        f"Stack parity: the serving stack differs from the training stack in {len(differences)} place(s). "
        "Predictions may differ from those measured in training; rebuild both images from one lock."
    )
    with st.expander("Show the package-by-package diff"):
        st.dataframe(
            pd.DataFrame(
                [
                    {"what": d.field, "training": d.expected or "(absent)", "serving": d.actual or "(absent)"}
                    for d in differences
                ]
            ),
            hide_index=True,
            width="stretch",
        )


def _sample_images(loaded: checkpoint.Checkpoint) -> None:
    """Offer one-click samples: freshly generated shapes, or the run's held-out images."""
    generated = loaded.metadata.get("data", {}).get("kind") == "generated" and loaded.classes == list(SHAPES)
    st.caption("Or pick a sample:" if generated else "Or pick a held-out image saved with the run:")
    columns = st.columns(len(loaded.classes))
    for column, name in zip(columns, loaded.classes, strict=True):
        if not column.button(name, key=f"sample-{name}", width="stretch"):
            continue
        count = st.session_state.get("sample_count", 0)
        st.session_state.sample_count = count + 1
        if generated:
            rng = np.random.default_rng([loaded.metadata.get("data", {}).get("seed", 0), 7, count])
            image = draw_shape(name, rng, loaded.preprocessing.image_size)
        else:
            files = sorted((loaded.run_dir / "samples" / name).glob("*.png"))
            if not files:
                st.warning(f"The run saved no held-out images of {name}.")
                continue
            with Image.open(files[count % len(files)]) as opened:
                image = opened.convert("RGB")
        st.session_state.sample = (f"sample: {name}", image)


def _probability_chart(ranked: list[Prediction]) -> alt.Chart:
    frame = pd.DataFrame({"class": [p.label for p in ranked], "probability": [p.probability for p in ranked]})
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
            y=alt.Y("class:N", sort="-x", title=None),
            tooltip=["class", alt.Tooltip("probability:Q", format=".1%")],
        )
        .properties(height=40 + 28 * len(ranked))
    )


def _show_result(name: str, image: Image.Image, ranked: list[Prediction], loaded: checkpoint.Checkpoint) -> None:
    st.subheader(f"{name} → **{ranked[0].label}** ({ranked[0].probability:.1%})")
    original, model_input, chart = st.columns([1, 1, 2])
    original.image(image, caption=f"original, {image.width}x{image.height}", width=PREVIEW_PIXELS)
    size = loaded.preprocessing.image_size
    seen = loaded.preprocessing.resize(image).resize((PREVIEW_PIXELS, PREVIEW_PIXELS), Image.Resampling.NEAREST)
    model_input.image(seen, caption=f"what the model saw, {size}x{size}", width=PREVIEW_PIXELS)
    chart.altair_chart(_probability_chart(ranked), width="stretch")


def predict_section(loaded: checkpoint.Checkpoint, settings: ServeSettings) -> None:
    uploads = st.file_uploader(
        "Upload images (drag and drop works)",
        type=UPLOAD_TYPES,
        accept_multiple_files=True,
        help=f"Up to {settings.max_image_pixels:,} pixels per image.",
    )
    _sample_images(loaded)

    inputs: list[tuple[str, Image.Image]] = []
    for upload in uploads or []:
        try:
            inputs.append((upload.name, open_image(upload.getvalue(), settings.max_image_pixels)))
        except ImageError as error:
            st.error(f"`{upload.name}` was not classified: {error}.")
    if "sample" in st.session_state:
        inputs.append(st.session_state.sample)

    if not inputs:
        st.info("Upload an image or pick a sample to see the model's top predictions.")
        return
    predictions = predict(loaded, [image for _, image in inputs], settings.top_k)
    for (name, image), ranked in zip(inputs, predictions, strict=True):
        _show_result(name, image, ranked, loaded)


def _curves(metrics: list[dict]) -> None:
    frame = pd.DataFrame(metrics).set_index("epoch")
    loss, accuracy = st.columns(2)
    loss.markdown("**Loss per epoch**")
    loss.line_chart(frame[["train_loss", "val_loss"]])
    accuracy.markdown("**Accuracy per epoch**")
    accuracy.line_chart(frame[["train_accuracy", "val_accuracy"]])


def _confusion_chart(matrix: list[list[int]], classes: list[str]) -> alt.Chart:
    frame = pd.DataFrame(
        [
            {"true": classes[i], "predicted": classes[j], "count": count}
            for i, row in enumerate(matrix)
            for j, count in enumerate(row)
        ]
    )
    base = alt.Chart(frame).encode(x=alt.X("predicted:N", sort=classes), y=alt.Y("true:N", sort=classes))
    cells = base.mark_rect().encode(
        color=alt.Color("count:Q", scale=alt.Scale(scheme="blues")), tooltip=["true", "predicted", "count"]
    )
    return (cells + base.mark_text().encode(text="count:Q")).properties(height=60 + 40 * len(classes))


def model_card(loaded: checkpoint.Checkpoint) -> None:
    meta = loaded.metadata
    metrics = meta.get("metrics") or []
    final = metrics[-1] if metrics else {}
    created = meta.get("created_at", "")
    with contextlib.suppress(ValueError):
        created = datetime.fromisoformat(created).strftime("%Y-%m-%d %H:%M UTC")

    st.subheader("Model card")
    first, second, third, fourth = st.columns(4)
    first.metric("Validation accuracy", f"{final.get('val_accuracy', float('nan')):.1%}")
    second.metric("Classes", len(loaded.classes))
    third.metric("Training time", f"{meta.get('training', {}).get('seconds', float('nan')):.0f} s")
    fourth.metric("Epochs", len(metrics))
    data = meta.get("data", {})
    st.markdown(
        f"- **Classes:** {', '.join(loaded.classes)}\n"
        f"- **Data:** {data.get('description', 'unknown')} ({data.get('train_images', '?')} training, "
        f"{data.get('val_images', '?')} validation images)\n"
        f"- **Trained:** {created} on {meta.get('training', {}).get('device', '?')}, run `{meta.get('run_id')}`\n"
        f"- **Architecture:** {meta.get('architecture', {}).get('name')}, input "
        f"{loaded.preprocessing.image_size}x{loaded.preprocessing.image_size} RGB\n"
        f"- **Source revision:** {meta.get('source_revision') or 'not recorded'}"
    )
    if metrics:
        _curves(metrics)
    if meta.get("confusion_matrix"):
        st.markdown("**Confusion matrix on the validation split** (rows: true class, columns: predicted)")
        st.altair_chart(_confusion_chart(meta["confusion_matrix"], loaded.classes), width="stretch")
