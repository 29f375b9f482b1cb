"""The Model card tab: what was trained on what, how it learned, and where it still errs."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from lockstep import checkpoint
from views import format_created


def _count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else "?"


def _rounded(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{value:.3f}" for value in values) + ")"


def _details(loaded: checkpoint.Checkpoint) -> str:
    meta = loaded.metadata
    data = meta.get("data") or {}
    training = meta.get("training") or {}
    size = loaded.preprocessing.image_size
    skipped = len(data.get("skipped") or [])
    model_file = loaded.run_dir / checkpoint.MODEL_FILE
    file_size = f"{model_file.stat().st_size / 1e6:.1f} MB" if model_file.is_file() else "size unknown"
    lines = [
        f"**Classes ({len(loaded.classes)}):** {', '.join(loaded.classes)}",
        f"**Data:** {data.get('description', 'not recorded')}: {_count(data.get('train_images'))} training and "
        f"{_count(data.get('val_images'))} validation images"
        + (f", {skipped} unreadable file(s) skipped" if skipped else ""),
        f"**Model:** {(meta.get('architecture') or {}).get('name', 'not recorded')}, input {size}x{size} RGB "
        f"normalised with per-channel mean {_rounded(loaded.preprocessing.mean)} and std "
        f"{_rounded(loaded.preprocessing.std)}",
        f"**Training:** {training.get('epochs', '?')} epochs, batch size {training.get('batch_size', '?')}, "
        f"learning rate {training.get('learning_rate', '?')}, seed {training.get('seed', '?')}, "
        f"on {training.get('device', '?')}, {training.get('seconds', '?')} s in all",
        f"**Run:** `{meta.get('run_id', loaded.run_dir.name)}`, created {format_created(meta)}, "
        f"source revision {meta.get('source_revision') or 'not recorded'}",
        f"**Checkpoint:** `{model_file}` ({file_size})",
    ]
    return "\n".join(f"- {line}" for line in lines)


def _curves(metrics: list[dict]) -> None:
    frame = pd.DataFrame(metrics).set_index("epoch")
    loss, accuracy = st.columns(2)
    with loss:
        st.markdown("**Loss per epoch**")
        curves = frame[["train_loss", "val_loss"]].rename(columns={"train_loss": "training", "val_loss": "validation"})
        st.line_chart(curves, x_label="epoch", y_label="cross-entropy loss")
    with accuracy:
        st.markdown("**Accuracy per epoch**")
        curves = frame[["train_accuracy", "val_accuracy"]].rename(
            columns={"train_accuracy": "training", "val_accuracy": "validation"}
        )
        st.line_chart(curves, x_label="epoch", y_label="accuracy")


def _confusion_chart(matrix: list[list[int]], classes: list[str]) -> alt.LayerChart:
    frame = pd.DataFrame(
        [
            {"true class": classes[i], "predicted class": classes[j], "images": count}
            for i, row in enumerate(matrix)
            for j, count in enumerate(row)
        ]
    )
    largest = max((max(row) for row in matrix if row), default=0)
    base = alt.Chart(frame).encode(
        x=alt.X("predicted class:N", sort=classes, axis=alt.Axis(orient="top", labelAngle=0)),
        y=alt.Y("true class:N", sort=classes),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("images:Q", scale=alt.Scale(scheme="blues"), legend=None),
        tooltip=["true class", "predicted class", "images"],
    )
    # Dark text on pale cells and white text on dark ones, so that every count stays readable.
    counts = base.mark_text(fontSize=14).encode(
        text="images:Q",
        color=alt.condition(alt.datum.images > largest / 2, alt.value("white"), alt.value("black")),
    )
    return (cells + counts).properties(height=alt.Step(44))


def show(loaded: checkpoint.Checkpoint) -> None:
    meta = loaded.metadata
    st.markdown(_details(loaded))

    metrics = meta.get("metrics") or []
    if metrics:
        _curves(metrics)
    else:
        st.info("This run recorded no per-epoch metrics, so there are no training curves to show.")

    matrix = meta.get("confusion_matrix")
    if matrix:
        total = sum(map(sum, matrix))
        correct = sum(matrix[i][i] for i in range(len(matrix)))
        st.markdown(
            f"**Confusion matrix on the validation split**: {correct} of {total} images on the diagonal "
            "(classified correctly); rows are the true class, columns the predicted one."
        )
        st.altair_chart(_confusion_chart(matrix, loaded.classes), width="stretch")
    else:
        st.info("This run recorded no confusion matrix.")
