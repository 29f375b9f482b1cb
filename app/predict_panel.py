"""The Predict tab: uploads and one-click samples in, top-k predictions with charts out."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

import views
from lockstep import checkpoint
from lockstep.data import SHAPES, draw_shape
from lockstep.predict import ImageError, Prediction, open_image, predict
from lockstep.settings import ServeSettings

# The browser offers only these. open_image checks the bytes as well, because a file name proves nothing.
UPLOAD_TYPES = ["png", "jpg", "jpeg", "bmp", "gif", "tif", "tiff", "webp"]
# Side of the two previews in pixels, so that a 32-pixel model input is large enough to see.
PREVIEW_PIXELS = 160
# Samples kept on the page; the oldest goes when one more is picked.
MAX_SAMPLES = 4
SAMPLE_BUTTONS_PER_ROW = 6


def _trained_on_shapes(loaded: checkpoint.Checkpoint) -> bool:
    data = loaded.metadata.get("data") or {}
    return data.get("kind") == "generated" and set(loaded.classes) <= set(SHAPES)


def _new_sample(loaded: checkpoint.Checkpoint, name: str, count: int) -> tuple[str, Image.Image] | None:
    """Draw a fresh shape for runs on generated data, or else take the next of the run's held-out images."""
    if _trained_on_shapes(loaded):
        # A seed sequence that training and validation never use, and a new image on every click.
        seed = (loaded.metadata.get("data") or {}).get("seed", 0)
        rng = np.random.default_rng([seed, 7, count])
        return f"generated {name} #{count + 1}", draw_shape(name, rng, loaded.preprocessing.image_size)
    files = sorted((loaded.run_dir / "samples" / name).glob("*.png"))
    if not files:
        return None
    with Image.open(files[count % len(files)]) as opened:
        return f"held-out {name} #{count % len(files) + 1}", opened.convert("RGB")


def _sample_buttons(loaded: checkpoint.Checkpoint) -> None:
    if _trained_on_shapes(loaded):
        st.caption("Or add a generated sample:")
    else:
        st.caption("Or add a held-out image saved with the run:")
    names = loaded.classes
    per_row = min(len(names), SAMPLE_BUTTONS_PER_ROW)
    for start in range(0, len(names), per_row):
        row = names[start : start + per_row]
        for column, name in zip(st.columns(per_row), row, strict=False):
            if not column.button(name, key=f"sample-{name}", width="stretch"):
                continue
            count = st.session_state.get("sample_count", 0)
            st.session_state.sample_count = count + 1
            sample = _new_sample(loaded, name, count)
            if sample is None:
                st.warning(f"Run `{loaded.run_dir.name}` saved no held-out images of {name}; upload one instead.")
                continue
            st.session_state.samples = [*st.session_state.get("samples", []), sample][-MAX_SAMPLES:]
    if st.session_state.get("samples") and st.button("Clear samples", key="clear-samples"):
        st.session_state.samples = []


def _decode_uploads(uploads: list, settings: ServeSettings) -> list[tuple[str, Image.Image]]:
    """Decode each upload, showing an error for each one that fails and keeping the rest."""
    images = []
    for upload in uploads:
        try:
            images.append((upload.name, open_image(upload.getvalue(), settings.max_image_pixels)))
        except ImageError as error:
            st.error(f"{views.plain(upload.name)} was not classified: {error}.")
    return images


def _probability_chart(ranked: list[Prediction]) -> alt.Chart:
    # The percentage sits in the axis label, where it stays readable whatever the bar's length.
    frame = pd.DataFrame(
        {
            "class": [f"{p.label}  {p.probability:.1%}" for p in ranked],
            "probability": [p.probability for p in ranked],
        }
    )
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%", title=None)),
            y=alt.Y("class:N", sort=None, title=None, axis=alt.Axis(labelLimit=240, labelFontSize=13)),
            tooltip=[alt.Tooltip("class:N"), alt.Tooltip("probability:Q", format=".2%")],
        )
        .properties(height=alt.Step(30))
    )


def _show_result(name: str, image: Image.Image, ranked: list[Prediction], loaded: checkpoint.Checkpoint) -> None:
    with st.container(border=True):
        st.markdown(f"**{views.plain(name)}** → **{views.plain(ranked[0].label)}** ({ranked[0].probability:.1%})")
        original, model_input, chart = st.columns([1, 1, 2])
        original.image(image, caption=f"original, {image.width}x{image.height}", width=PREVIEW_PIXELS)
        size = loaded.preprocessing.image_size
        # NEAREST keeps the model's pixels visible as blocks instead of blurring them back.
        seen = loaded.preprocessing.resize(image).resize((PREVIEW_PIXELS, PREVIEW_PIXELS), Image.Resampling.NEAREST)
        model_input.image(seen, caption=f"what the model saw, {size}x{size}", width=PREVIEW_PIXELS)
        chart.altair_chart(_probability_chart(ranked), width="stretch")


def _show_summary_table(names: list[str], predictions: list[list[Prediction]]) -> None:
    st.dataframe(
        pd.DataFrame(
            {
                "image": names,
                "prediction": [ranked[0].label for ranked in predictions],
                "probability": [ranked[0].probability for ranked in predictions],
            }
        ),
        column_config={
            "probability": st.column_config.ProgressColumn("probability", format="percent", min_value=0, max_value=1)
        },
        hide_index=True,
        width="stretch",
    )


def show(loaded: checkpoint.Checkpoint, settings: ServeSettings) -> None:
    max_upload_mb = st.get_option("server.maxUploadSize")
    uploads = st.file_uploader(
        # The browser rejects a larger file with only a red mark on it, so the label states the limit.
        f"Upload one or more images, up to {max_upload_mb} MB each (drag and drop them here)",
        type=UPLOAD_TYPES,
        accept_multiple_files=True,
        key="uploads",
        help=f"At most {max_upload_mb} MB per file (STREAMLIT_SERVER_MAX_UPLOAD_SIZE) and "
        f"{settings.max_image_pixels:,} pixels per image (LOCKSTEP_MAX_IMAGE_PIXELS).",
    )
    _sample_buttons(loaded)

    inputs = _decode_uploads(uploads or [], settings) + list(st.session_state.get("samples", []))
    if not inputs:
        st.info(f"Upload an image or add a sample to see the model's top {settings.top_k} predictions.")
        return

    predictions = predict(loaded, [image for _, image in inputs], settings.top_k)
    if len(inputs) > 1:
        _show_summary_table([name for name, _ in inputs], predictions)
    for (name, image), ranked in zip(inputs, predictions, strict=True):
        _show_result(name, image, ranked, loaded)
